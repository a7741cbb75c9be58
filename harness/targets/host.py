"""HostTarget: the agent as a subprocess of this kernel, in fresh user + pid + mount namespaces."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import tempfile
from typing import Any

from harness.errors import AgentError, EnvError, SandboxUnavailable
from harness.paths import AGENT_DIR
from harness.protocol import AgentConnection
from harness.targets.base import Target, TargetInfo

READY_TIMEOUT = 15.0
# unshare(2)'s refusals that mean "no sandbox on this machine": EPERM (chroot, seccomp,
# kernel.unprivileged_userns_clone = 0), ENOSPC (user.max_user_namespaces = 0)
_REFUSALS = {f"unshare: {os.strerror(e)}": errno.errorcode[e] for e in (errno.EPERM, errno.ENOSPC)}


def _refusal(stderr: str) -> str | None:
    """EPERM/ENOSPC when the agent's stderr shows unshare(2) refused the sandbox, else None."""
    return next((name for text, name in _REFUSALS.items() if text in stderr), None)


def _nspid(pid: int) -> list[int]:
    """The NSpid vector of a host process, as this process's /proc shows it."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("NSpid:"):
                return [int(x) for x in line.split()[1:]]
    raise EnvError("kernel without NSpid in /proc/<pid>/status")


class HostTarget(Target):
    """Runs programs on the running kernel; never touches host pids (all work is inside the sandbox)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.conn: AgentConnection | None = None
        self._stderr = None

    def start(self) -> None:
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-S", "-m", "agent", "--channel", "stdio", "--sandbox"],
            cwd=AGENT_DIR.parent, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._stderr, bufsize=0)
        self.conn = AgentConnection(self.proc.stdout, self.proc.stdin)
        try:
            ready = self.conn.wait_ready(READY_TIMEOUT)
            # the agent process stays in our pid namespace; the sandbox's root is one level below it
            root_level = len(_nspid(self.proc.pid))
        except (AgentError, OSError) as e:
            tail = self.stderr_tail()
            self.close()
            refused = _refusal(tail)
            if refused:
                raise SandboxUnavailable(
                    f"the host target cannot create user+pid namespaces here (unshare: {refused}): user "
                    "namespaces are disabled (user.max_user_namespaces, kernel.unprivileged_userns_clone), "
                    "refused by a container's seccomp profile, or this is a chroot; use --target qemu") from None
            last = tail.strip().splitlines()[-1:] or ["(no stderr)"]
            raise EnvError(f"host agent did not start: {e}; {last[0]}") from None
        self.info = TargetInfo(name="host", kernel=ready["kernel"], pid_max=int(ready["pid_max"]),
                               root_level=root_level, extra={"agent": ready})
        self.require_features(ready)

    def _conn(self) -> AgentConnection:
        if self.conn is None:
            raise AgentError("host target is not started")
        return self.conn

    def run(self, program: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        return self._conn().request("run", timeout, program=program)

    def ping(self, timeout: float = 5.0) -> None:
        self._conn().request("ping", timeout)

    def reset(self) -> None:
        self._conn().request("reset", 60.0)

    def stderr_tail(self, limit: int = 4000) -> str:
        """The agent's recent stderr (tracebacks of a crashed agent)."""
        if self._stderr is None:
            return ""
        self._stderr.seek(0, os.SEEK_END)
        size = self._stderr.tell()
        self._stderr.seek(max(0, size - limit))
        return self._stderr.read().decode(errors="replace")

    def close(self) -> None:
        """Kill and reap the agent and its sandbox.

        SIGTERM first: the agent's outer process then SIGKILLs the sandbox's pid 1 and reaps it, so no
        zombie is left to the host's init; SIGKILL if that takes too long (PR_SET_PDEATHSIG still kills
        the sandbox, and its namespace takes every process in it along).
        """
        proc, self.proc, self.conn = self.proc, None, None
        if proc is not None:
            try:
                proc.terminate()
                proc.wait(timeout=5.0)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
            proc.wait()
            for f in (proc.stdin, proc.stdout):
                if f is not None:
                    f.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


def check_sandbox() -> None:
    """Start and stop a sandbox: SandboxUnavailable (one line) where none can exist here."""
    with HostTarget():
        pass
