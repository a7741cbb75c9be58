"""The `unshare` and `setns` steps: a level's process moves the pid namespace its later children are created in
(its own, active pid namespace never changes), and gets its own back when the program's cleanup comes."""

from __future__ import annotations

import os

from . import libc
from .steps import Holders, StepError

TYPE_CHECKING = False  # typing and collections.abc cost ~80 ms of a cold start under TCG: annotations only
if TYPE_CHECKING:
    from typing import Any

SYS_SETNS, SYS_PIDFD_OPEN = 308, 434


class PidnsSwitch:
    """Remembers this process's own pid namespace while its children's one is another (after unshare/setns)."""

    def __init__(self) -> None:
        self.home = -1  # an fd of /proc/self/ns/pid while switched (or about to be)
        self.switched = False

    def _save_home(self) -> None:
        if self.home < 0:
            self.home = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)

    def unshare(self) -> dict[str, Any]:
        """unshare(CLONE_NEWPID): the next child is pid 1 of a new namespace nested in this level's."""
        self._save_home()
        try:
            libc.unshare(libc.CLONE_NEWPID)
        except OSError as e:
            self._forget_if_unchanged()
            return {"errno": e.errno}
        self.switched = True
        return {"errno": 0}

    def setns(self, step: dict[str, Any], holders: Holders) -> dict[str, Any]:
        """setns(CLONE_NEWPID) into the pid namespace of this level's held process `pidns_of`."""
        name = str(step.get("pidns_of"))
        pid = holders.named.get(name)
        if pid is None:
            raise StepError(f"setns: no held process named {name!r} at this level")
        fd, err = libc.syscall(SYS_PIDFD_OPEN, pid, 0)
        if fd < 0:
            raise StepError(f"setns: pidfd_open({pid}): {os.strerror(err)}")
        self._save_home()
        try:
            _, err = libc.syscall(SYS_SETNS, fd, libc.CLONE_NEWPID)
        finally:
            os.close(fd)
        if err:
            self._forget_if_unchanged()
        else:
            self.switched = True
        return {"errno": err}

    def _forget_if_unchanged(self) -> None:
        """A refused first switch changed nothing: no need to restore anything."""
        if self.home >= 0 and not self.switched:
            os.close(self.home)
            self.home = -1

    def restore(self) -> None:
        """Children in this process's own pid namespace again; StepError if that is refused (the chain is then
        dropped: a worker whose children would land elsewhere must not serve another program)."""
        if self.home < 0:
            return
        try:
            _, err = libc.syscall(SYS_SETNS, self.home, libc.CLONE_NEWPID)
        finally:
            os.close(self.home)
            self.home, self.switched = -1, False
        if err:
            raise StepError(f"cannot return to the own pid namespace after unshare/setns: {os.strerror(err)}")


def run(step: dict[str, Any], switch: PidnsSwitch, holders: Holders) -> dict[str, Any]:
    """An `unshare` or `setns` step."""
    if step.get("op") == "unshare":
        flags = int(step.get("flags", libc.CLONE_NEWPID))
        if flags != libc.CLONE_NEWPID:
            raise StepError("unshare: only CLONE_NEWPID is supported")
        return switch.unshare()
    return switch.setns(step, holders)
