"""Host mode: put the agent in fresh user + pid + mount namespaces so it can never touch host pids."""

from __future__ import annotations

import os
import select
import signal

from . import libc, procfs


def enter() -> None:
    """Unshare, map ourselves to root, fork pid 1 of the new namespace; only that child returns.

    The original process waits for the child and exits with its status; the child dies with it.
    """
    uid, gid = os.geteuid(), os.getegid()
    libc.unshare(libc.CLONE_NEWUSER | libc.CLONE_NEWPID | libc.CLONE_NEWNS)
    for name, data in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
        res = procfs.write_text(f"/proc/self/{name}", data)
        if res["errno"]:
            raise OSError(res["errno"], f"sandbox: writing {name}: {os.strerror(res['errno'])}")
    alive_r, alive_w = os.pipe()  # EOF on alive_r: the parent is gone (getppid() is 0 across the pid ns)
    pid = os.fork()
    if pid == 0:
        libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL)
        os.close(alive_w)
        if select.select([alive_r], [], [], 0)[0]:
            os._exit(1)
        os.close(alive_r)
        _fresh_proc()
        return
    os.close(alive_r)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: os.kill(pid, signal.SIGKILL))
    _, status = os.waitpid(pid, 0)
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def _fresh_proc() -> None:
    """Private mount propagation, then a /proc of our own pid namespace."""
    err = libc.mount("none", "/", None, libc.MS_REC | libc.MS_PRIVATE)
    if err:
        raise OSError(err, f"sandbox: making mounts private: {os.strerror(err)}")
    err = libc.mount("proc", "/proc", "proc", libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC)
    if err:
        raise OSError(err, f"sandbox: mounting /proc: {os.strerror(err)}")
