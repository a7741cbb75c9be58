"""Cheap probes of the kernel features the suite relies on, reported in the ready event's info."""

from __future__ import annotations

import errno
import os

from . import libc

TYPE_CHECKING = False  # typing and collections.abc cost ~80 ms of a cold start under TCG: annotations only
if TYPE_CHECKING:
    from typing import Any


def _unshare_newpid_errno() -> int:
    """The errno of unshare(CLONE_NEWPID) in a throwaway forked child (0: it worked)."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            libc.unshare(libc.CLONE_NEWPID)
        except OSError as e:
            code = e.errno or 255
        except BaseException:
            code = 255
        os._exit(code & 0xFF)
    _, status = os.waitpid(pid, 0)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 255


def probe() -> dict[str, Any]:
    """Which features this kernel has; pid_ns_errno says why pid_ns is false (or 0)."""
    has_pid_ns_file = os.path.exists("/proc/self/ns/pid")
    err = _unshare_newpid_errno() if has_pid_ns_file else errno.ENOENT
    return {
        "pid_ns": has_pid_ns_file and err != errno.EINVAL,
        "pid_ns_errno": err,
        "user_ns": os.path.exists("/proc/self/ns/user"),
        "ns_last_pid": os.path.exists("/proc/sys/kernel/ns_last_pid"),
        "proc_sysctl": os.path.exists("/proc/sys/kernel/pid_max"),
    }


_cached: dict[str, Any] | None = None


def features() -> dict[str, Any]:
    """probe(), once per process (the agent asks at start; the info op reuses it)."""
    global _cached
    if _cached is None:
        _cached = probe()
    return dict(_cached)
