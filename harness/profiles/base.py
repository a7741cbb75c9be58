"""What every profile offers: encode a spawn with a pid vector, name its errnos, detect support."""

from __future__ import annotations

import abc
import errno
import signal
from dataclasses import dataclass, field
from typing import Any

from ..programs import ARENA

ARGS_ADDR = ARENA  # the args struct sits at the start of the arena
PIDS_ADDR = ARENA + 0x800  # the pid vector / set_tid array
SCRATCH_ADDR = ARENA + 0x1000  # tid words written by the kernel (parent_tid, child_tid)


@dataclass(frozen=True)
class SpawnRequest:
    """A call that creates one child, in profile-neutral terms.

    `pids` is ordered like NSpid: outermost level first (the caller's level-0 view first),
    ending at the caller's own level; `None` means no vector at all (a plain clone).
    """

    at: int = 0
    pids: tuple[int, ...] | None = None
    flags: int = 0
    exit_signal: int = signal.SIGCHLD
    child: str = "report"
    name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Profile(abc.ABC):
    """An ABI for "clone with chosen pids"."""

    name: str
    nr: int
    busy_errno: int = errno.EBUSY
    zero_means_auto: bool = False  # eclone: a 0 entry lets the kernel pick at that level
    needs_init_pid_first: bool = False  # clone3: a new namespace's first pid must be 1

    @abc.abstractmethod
    def spawn_step(self, req: SpawnRequest) -> dict[str, Any]:
        """The `syscall` program step (see PROGRAMS.md) that performs `req`."""

    @abc.abstractmethod
    def probe_steps(self) -> list[dict[str, Any]]:
        """Steps whose results `supported()` reads to decide whether the kernel has this call."""

    @abc.abstractmethod
    def supported(self, results: list[dict[str, Any]]) -> str | None:
        """None when the probe shows the call works, else the skip reason."""

    def max_vector(self, caller_level: int) -> int:
        """The longest pid vector a caller at `caller_level` may pass."""
        return caller_level + 1


def u64(value: int) -> bytes:
    return (value % (1 << 64)).to_bytes(8, "little")


def u32(value: int) -> bytes:
    return (value % (1 << 32)).to_bytes(4, "little")


def i32_vector(pids: tuple[int, ...]) -> bytes:
    return b"".join((p % (1 << 32)).to_bytes(4, "little") for p in pids)


def no_syscall_reason(name: str, nr: int, result: dict[str, Any]) -> str | None:
    """A precise skip reason when the kernel lacks the call entirely."""
    if result.get("errno") == errno.ENOSYS:
        return f"{name}: ENOSYS on this kernel (syscall {nr})"
    return None


def errno_name(number: int) -> str:
    """EINVAL rather than 22 in messages."""
    return errno.errorcode.get(number, str(number)) if number else "success"
