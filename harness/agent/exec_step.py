"""The `exec` step (run a program, capture its output, kill it after a timeout) and file writes with a mode."""

from __future__ import annotations

import os
import select
import signal
import time

from . import affinity
from .reaper import Reaper

TYPE_CHECKING = False  # typing and collections.abc cost ~80 ms of a cold start under TCG: annotations only
if TYPE_CHECKING:
    from typing import Any

MAX_TIMEOUT = 25.0  # below the agent's 30 s worker-call timeout, so a slow program never breaks a chain
MAX_OUTPUT = 1 << 20  # bytes kept per stream; the rest is read and dropped
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ExecError(Exception):
    """A malformed exec step (the program's own failures are results, not errors)."""


def _child(argv: list[str], env: dict[str, str], out_w: int, err_w: int) -> None:
    """In the forked child: own session, stdin from /dev/null, pipes on 1 and 2, execve. Never returns."""
    try:
        os.setsid()
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.closerange(3, 1 << 16)
        for sig in (signal.SIGPIPE, signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        os.sched_setaffinity(0, affinity.race_cpus())  # the agent sits on one CPU; a program gets them all
        os.execvpe(argv[0], argv, env)
    except BaseException as e:
        try:
            os.write(2, f"exec {argv[0]}: {e}\n".encode())
        finally:
            os._exit(127)


def _drain(fds: dict[int, bytearray], deadline: float) -> bool:
    """Read both pipes until EOF on both (True) or the deadline (False)."""
    while fds:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        ready = select.select(list(fds), [], [], left)[0]
        for fd in ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                del fds[fd]
                continue
            buf = fds[fd]
            buf += chunk[:max(0, MAX_OUTPUT - len(buf))]
    return True


def _kill_group(pgid: int, reaper: Reaper) -> None:
    """SIGKILL the program's process group (it is a session leader: its own children go too)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass


def _reap_group(pgid: int, reaper: Reaper, limit: float = 2.0) -> None:
    """Reap the killed group's members (orphans of this level now) so that no zombie outlives the step."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        reaper.reap_orphans()
        try:
            os.killpg(pgid, 0)
        except OSError:
            return
        time.sleep(0.005)


def run_exec(step: dict[str, Any], reaper: Reaper) -> dict[str, Any]:
    """Fork + execve step["argv"]; {"status": exit code or -signal, "stdout": str, "stderr": str}."""
    argv = step.get("argv")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise ExecError("exec needs a non-empty argv list of strings")
    timeout = float(step.get("timeout", 10.0))
    if not 0 < timeout <= MAX_TIMEOUT:
        raise ExecError(f"exec timeout must be in (0, {MAX_TIMEOUT}] s")
    env = dict(step.get("env") or {"PATH": os.environ.get("PATH", DEFAULT_PATH)})
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    t0 = time.monotonic()
    try:
        pid = os.fork()
        if pid == 0:
            _child(argv, env, out_w, err_w)
        reaper.own(pid)
        os.close(out_w)
        os.close(err_w)
        out_w = err_w = -1
        bufs = {out_r: bytearray(), err_r: bytearray()}
        finished = _drain(dict(bufs), t0 + timeout)
        if not finished:
            _kill_group(pid, reaper)
        status = reaper.kill(pid) if not finished else reaper.wait(pid)
        if not finished:
            _reap_group(pid, reaper)
    finally:
        for fd in (out_r, out_w, err_r, err_w):
            if fd >= 0:
                os.close(fd)
    return {"status": status, "stdout": bufs[out_r].decode(errors="replace"),
            "stderr": bufs[err_r].decode(errors="replace"), "timed_out": not finished,
            "elapsed_ms": round((time.monotonic() - t0) * 1000, 3)}


def write_file(step: dict[str, Any]) -> dict[str, int]:
    """`data` (text) or `hex` (bytes) into `path`; with `mode` the file is created/truncated with that mode.

    Without `mode` the file must exist (procfs and sysfs files: one write(2), as the kernel wants them).
    """
    if "hex" in step:
        data = bytes.fromhex(str(step["hex"]))
    else:
        data = str(step["data"]).encode()
    path = str(step["path"])
    mode = step.get("mode")
    flags = os.O_WRONLY | os.O_CLOEXEC
    if mode is not None:
        flags |= os.O_CREAT | os.O_TRUNC
    try:
        fd = os.open(path, flags, int(mode) if mode is not None else 0o644)
    except OSError as e:
        return {"errno": e.errno or 0}
    try:
        if mode is not None:
            os.fchmod(fd, int(mode))  # whatever the umask
        view = memoryview(data)
        while True:
            view = view[os.write(fd, view):]
            if not view:
                break
        return {"errno": 0}
    except OSError as e:
        return {"errno": e.errno or 0}
    finally:
        os.close(fd)
