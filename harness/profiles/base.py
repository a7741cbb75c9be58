"""What every profile offers: encode a spawn with a pid vector, name its errnos, detect support."""

from __future__ import annotations

import abc
import copy
import errno
import signal
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ..programs import ARENA, ARENA32, ARENA32_SIZE

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


class Anchor(str, Enum):
    """Which level a pid vector shorter than the chain starts from (SpawnRequest.pids is outermost first)."""

    CALLER = "caller"  # eclone: the last entry names the caller's active level, the vector goes outwards
    ROOT = "root"  # clone_with_pids, clone2: pids[0] is the initial pid namespace, k entries name levels 0..k-1
    CHILD = "child"  # clone3: set_tid[0] is the child's own (innermost) level, a CLONE_NEWPID one included


class Profile(abc.ABC):
    """An ABI for "clone with chosen pids": the one owner of its interface's facts.

    What a new profile sets (docs/DESIGN.md, "Adding a profile"): the call (`nr`, `spawn_step`), where
    its arguments live (`args_reg`, `size_reg`, `pids_reg`, `struct_size`, `fields`), how a vector is read
    (`anchor`, `zero_means_auto`, `needs_init_pid_first`, `reserved_pids_rule`, `max_vector`), its busy
    errno, i386 availability, the oracle rule set, and a probe that cannot be fooled by another call at `nr`.
    """

    name: str
    nr: int
    busy_errno: int = errno.EBUSY
    zero_means_auto: bool = False  # eclone: a 0 entry lets the kernel pick at that level
    needs_init_pid_first: bool = False  # clone3: a new namespace's first pid must be 1
    anchor: Anchor = Anchor.CALLER
    reserved_pids_rule: bool = False  # eclone: pids < 300 only while the level's cursor is <= 300
    args_reg: int | None = None  # register holding the struct pointer (None: no struct)
    size_reg: int | None = None  # register holding the struct size (None: no size argument)
    pids_reg: int | None = None  # register holding the pid vector pointer (None: it is a struct field)
    struct_size: int | None = None  # the size the profile passes (and the kernel reads) by default
    fields: tuple[tuple[str, int, int], ...] = ()  # (name, offset, size) of the struct the encoder writes
    nr_i386: int | None = None  # the number on the i386 table (None: not wired there)
    pointer_regs: tuple[int, ...] = ()  # registers that carry user addresses (i386_step moves them below 4 GiB)
    pointer_fields: tuple[str, ...] = ()  # 64-bit struct fields that carry user addresses (likewise)
    oracle_rules: str = ""  # the rule set of harness/oracle/predict.py that models this call

    @abc.abstractmethod
    def spawn_step(self, req: SpawnRequest, size: int | None = None) -> dict[str, Any]:
        """The `syscall` program step (see PROGRAMS.md) that performs `req`; `size` replaces the struct size
        argument (profiles without one ignore it)."""

    @abc.abstractmethod
    def probe_steps(self) -> list[dict[str, Any]]:
        """Steps whose results `supported()` reads to decide whether the kernel has this call."""

    @abc.abstractmethod
    def supported(self, results: list[dict[str, Any]]) -> str | None:
        """None when the probe shows the call works, else the skip reason."""

    def i386_step(self, step: dict[str, Any]) -> dict[str, Any]:
        """The same call through the i386 table (`"abi": "i386"`, `nr_i386`): the step's arena writes and reads
        move to the low window (ARENA32, same offsets), and so does every address in `pointer_regs` and in
        the struct's `pointer_fields` that points into the arena; other values stay (an unmapped pointer
        stays unmapped; flag bits are not addresses)."""
        if self.nr_i386 is None:
            raise ValueError(f"{self.name} is not wired in the i386 table")
        out = copy.deepcopy(step)
        out.update(abi="i386", nr=self.nr_i386)
        regs = (list(out.get("regs", [])) + [0] * 6)[:6]
        for i in self.pointer_regs:
            regs[i] = to_arena32(regs[i])
        out["regs"] = regs
        layout = {name: off for name, off, width in self.fields if width == 8}
        writes = []
        for addr, data in out.get("write", []):
            raw = bytearray.fromhex(data)
            if addr == ARGS_ADDR:
                for name in self.pointer_fields:
                    off = layout[name]
                    if off + 8 <= len(raw):
                        value = int.from_bytes(raw[off:off + 8], "little")
                        raw[off:off + 8] = to_arena32(value).to_bytes(8, "little")
            writes.append([to_arena32(addr, strict=True), raw.hex()])
        out["write"] = writes
        out["read"] = [[to_arena32(addr, strict=True), n] for addr, n in out.get("read", [])]
        return out

    def max_vector(self, caller_level: int) -> int:
        """The longest pid vector a caller at `caller_level` may pass."""
        return caller_level + 1

    def vector_levels(self, at: int, newpid: bool) -> int:
        """How many levels a full vector names for a caller at `at` (clone3 also names a new namespace)."""
        return at + 1 + (newpid and self.anchor is Anchor.CHILD)

    def named_levels(self, at: int, newpid: bool, count: int) -> range:
        """The levels (0 = the agent's root) a `count`-entry vector names, outermost first."""
        if self.anchor is Anchor.ROOT:
            return range(0, count)
        inner = self.vector_levels(at, newpid) - 1
        return range(inner - count + 1, inner + 1)


def to_arena32(addr: int, strict: bool = False) -> int:
    """An arena address moved to the same offset of the low window; others unchanged (strict: refused unless
    already in the window)."""
    if ARENA32 <= addr < ARENA32 + ARENA32_SIZE:
        return addr
    if ARENA <= addr < ARENA + ARENA32_SIZE:
        return addr - ARENA + ARENA32
    if strict:
        raise ValueError(f"{addr:#x} is not in the first {ARENA32_SIZE:#x} bytes of the arena")
    return addr


def u64(value: int) -> bytes:
    return (value % (1 << 64)).to_bytes(8, "little")


def u32(value: int) -> bytes:
    return (value % (1 << 32)).to_bytes(4, "little")


def encode_struct(fields: tuple[tuple[str, int, int], ...], size: int, values: dict[str, int]) -> bytes:
    """`size` bytes with the named fields set (little-endian, modulo their width), the rest zero."""
    buf = bytearray(size)
    layout = {name: (off, width) for name, off, width in fields}
    for name, value in values.items():
        off, width = layout[name]
        buf[off:off + width] = (value % (1 << (8 * width))).to_bytes(width, "little")
    return bytes(buf)


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
