"""Write, then create: a file says which id the caller's next object gets (seed 004's next_id and its mainline
descendants, NOTES.md "next_id (seed 004) and its mainline descendants").

These interfaces do not take a pid vector in a call, so they are not `Profile`s (no `spawn_step`): an
`IdProfile` encodes the write that asks for an id (`choose_steps`) and the plain creation that consumes it
(`create_step`), each a program step of harness/agent/PROGRAMS.md. A creation's `ret` is the new object's id
(a child's pid in the caller's namespace, a SysV IPC id). What the spec says each interface does with a busy
or out-of-range id is in `suite/spec.py`'s `ID_SPECS`, not here.
"""

from __future__ import annotations

import abc
import errno
import signal
from typing import Any

from ..programs import read_file_step, syscall_step, write_file_step

SYS_CLONE = 56
SYS_UNSHARE = 272
CLONE_NEWIPC = 0x08000000
IPC_PRIVATE, IPC_CREAT, IPC_RMID = 0, 0o1000, 0
IPC_SEQ = 32768  # an IPC id is seq * 32768 + index (without ipcmni_extend)

# x86_64 numbers: (get, its arguments after the key, ctl, where ctl takes the command)
SYSV = {
    "msg": (68, (IPC_CREAT | 0o600,), 71, 1),  # msgget(key, flags); msgctl(id, cmd, buf)
    "sem": (64, (1, IPC_CREAT | 0o600), 66, 2),  # semget(key, nsems, flags); semctl(id, semnum, cmd, arg)
    "shm": (29, (4096, IPC_CREAT | 0o600), 31, 1),  # shmget(key, size, flags); shmctl(id, cmd, buf)
}


def unshare_ipc_step(at: int) -> dict[str, Any]:
    """The worker of level `at` moves to a new IPC namespace (owned by its user namespace): objects made
    there die with the namespace, never leak into another test."""
    return syscall_step(SYS_UNSHARE, [CLONE_NEWIPC], at=at)


class IdProfile(abc.ABC):
    """An interface of the "write, then create" kind; `objects` is "process" or a SysV kind (msg, sem, shm)."""

    name: str
    path: str  # the file the caller writes
    objects: str = "process"

    @abc.abstractmethod
    def choose_steps(self, ident: int, at: int = 0) -> list[dict[str, Any]]:
        """Steps by the worker of level `at` asking that its next object get `ident` (a pid at level `at`, or
        a full IPC id)."""

    def write_steps(self, raw: str, at: int = 0) -> list[dict[str, Any]]:
        """The file written with exactly `raw` (range and syntax cases)."""
        return [write_file_step(self.path, raw, at=at)]

    def read_step(self, at: int = 0) -> dict[str, Any]:
        return read_file_step(self.path, at=at)

    def create_step(self, at: int = 0, child: str = "report", name: str | None = None) -> dict[str, Any]:
        """A plain creation by the worker of level `at` (child modes are PROGRAMS.md's, for processes)."""
        if self.objects == "process":
            return syscall_step(SYS_CLONE, [signal.SIGCHLD, 0, 0, 0, 0, 0], at=at, clone=True, child=child,
                                name=name)
        nr, args, _, _ = SYSV[self.objects]
        return syscall_step(nr, [IPC_PRIVATE, *args], at=at)

    def remove_step(self, ident: int, at: int = 0) -> dict[str, Any]:
        """IPC_RMID of an object this profile created (processes: nothing to remove, a no-op getpid)."""
        if self.objects == "process":
            return syscall_step(39, [], at=at)
        _, _, ctl, cmd_reg = SYSV[self.objects]
        regs = [ident, 0, 0, 0]
        regs[cmd_reg] = IPC_RMID
        return syscall_step(ctl, regs, at=at)

    def probe_steps(self) -> list[dict[str, Any]]:
        steps = [self.read_step()]
        if self.objects != "process":
            nr, _, _, _ = SYSV[self.objects]
            steps.append(syscall_step(nr, [IPC_PRIVATE, 0, 0], at=0))  # no IPC_CREAT: ENOENT, never creates
        return steps

    def supported(self, results: list[dict[str, Any]]) -> str | None:
        if results[0].get("errno"):
            return f"{self.name}: {self.path} is missing ({self.needs})"
        if len(results) > 1 and results[1].get("errno") == errno.ENOSYS:
            return f"{self.name}: SysV IPC calls give ENOSYS (no CONFIG_SYSVIPC)"
        return None

    needs = "CONFIG_CHECKPOINT_RESTORE"


class NsLastPidProfile(IdProfile):
    """/proc/sys/kernel/ns_last_pid: the allocation cursor of the writer's active pid namespace; N-1 asks for N."""

    name = "ns_last_pid"
    path = "/proc/sys/kernel/ns_last_pid"

    def choose_steps(self, ident: int, at: int = 0) -> list[dict[str, Any]]:
        return self.write_steps(str(ident - 1), at)


class IpcNextIdProfile(IdProfile):
    """/proc/sys/kernel/{msg,sem,shm}_next_id of the writer's IPC namespace: the next object's id."""

    needs = "CONFIG_SYSVIPC and CONFIG_CHECKPOINT_RESTORE"

    def __init__(self, kind: str) -> None:
        self.objects = kind
        self.name = f"{kind}_next_id"
        self.path = f"/proc/sys/kernel/{kind}_next_id"

    def choose_steps(self, ident: int, at: int = 0) -> list[dict[str, Any]]:
        return self.write_steps(str(ident), at)


LONG_MAX = 2**63 - 1


def next_id_text(ids: tuple[int, ...] | list[int]) -> str:
    """next_id's normalised form (NOTES.md): "LONG X" for one id, "LONG<n> X0 .. X<n-1>" (X0 innermost)."""
    head = "LONG" if len(ids) == 1 else f"LONG{len(ids)}"
    return " ".join([head, *(str(i) for i in ids)])


class NextIdProfile(IdProfile):
    """Seed 004's per-thread /proc/<pid>/task/<tid>/next_id (the reference kernel's patch 0011): the ids of the
    writer's next fork/clone, X0 in the child's own namespace. The worker writes its own thread's file."""

    name = "next_id"
    path = "/proc/thread-self/next_id"
    needs = "the reference kernel's next_id patch (qemu/patches/eclone/0011)"

    def choose_steps(self, ident: int, at: int = 0) -> list[dict[str, Any]]:
        return self.chain_steps([ident], at)

    def chain_steps(self, ids: list[int], at: int = 0) -> list[dict[str, Any]]:
        """Ids for several levels of the next child, innermost first."""
        return [write_file_step(self.path, next_id_text(ids), at=at)]

    def write_steps(self, raw: str, at: int = 0) -> list[dict[str, Any]]:
        """A single id written as `LONG raw` (the range cases of the numeric files)."""
        return [write_file_step(self.path, f"LONG {raw}", at=at)]

    def raw_steps(self, raw: str, at: int = 0) -> list[dict[str, Any]]:
        """The file written with exactly `raw` (syntax cases)."""
        return [write_file_step(self.path, raw, at=at)]


class NextIdIpcProfile(NextIdProfile):
    """next_id's SysV IPC form (patch 0012): one pending id is the exact id of the writer's next msg/sem/shm
    object (index id % 32768, sequence id / 32768)."""

    needs = "the reference kernel's next_id patches (qemu/patches/eclone/0011, 0012) and CONFIG_SYSVIPC"

    def __init__(self, kind: str) -> None:
        self.objects = kind
        self.name = f"next_id_{kind}"
