"""Child bookkeeping for a process that may be an init: reap orphans without losing our own children's status."""

from __future__ import annotations

import os

from .libc import WALL


class Reaper:
    """Tracks the pids this process owns; statuses reaped early are kept until asked for."""

    def __init__(self) -> None:
        self.owned: set[int] = set()
        self.statuses: dict[int, int] = {}

    def own(self, pid: int) -> None:
        """Remember that a later wait() will want this child's status."""
        self.owned.add(pid)

    def reap_orphans(self) -> None:
        """Reap every zombie now (orphans reparented to us are discarded, owned statuses kept)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG | WALL)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in self.owned:
                self.statuses[pid] = status
                self.owned.discard(pid)

    def wait(self, pid: int) -> int | None:
        """Block until `pid` exits; its exit code (or -signal), None when it is not our child."""
        self.owned.discard(pid)
        if pid in self.statuses:
            return _code(self.statuses.pop(pid))
        try:
            _, status = os.waitpid(pid, WALL)
        except ChildProcessError:
            return None
        return _code(status)

    def kill(self, pid: int) -> int | None:
        """SIGKILL and reap one owned process."""
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        return self.wait(pid)


def _code(status: int) -> int:
    """Exit code, or minus the signal number for a killed process."""
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)
