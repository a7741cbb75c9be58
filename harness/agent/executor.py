"""What one level's process (a worker, or the agent for level 0) does on request: steps, spawning, racers."""

from __future__ import annotations

import os

from . import libc, pidns_switch, procfs, race_level, steps, wire
from .reaper import Reaper

TYPE_CHECKING = False  # typing and collections.abc cost ~80 ms of a cold start under TCG: annotations only
if TYPE_CHECKING:
    from typing import Any


class Executor:
    """Per-process state of one level: its reaper, held processes, running racers."""

    def __init__(self, level: int, is_agent: bool) -> None:
        self.level = level
        self.is_agent = is_agent
        self.reaper = Reaper()
        self.holders = steps.Holders(self.reaper)
        self.racers = race_level.LevelRacers(self.holders)
        self.pidns = pidns_switch.PidnsSwitch()  # unshare/setns steps: where this level's children go

    def handle(self, req: dict[str, Any]) -> Any:
        """Dispatch one request; raises StepError (or anything) on failure."""
        op = req["op"]
        if op == "step":
            if req["step"].get("op") in ("unshare", "setns"):
                return pidns_switch.run(req["step"], self.pidns, self.holders)
            return steps.run_simple(req["step"], self.holders)
        if op == "spawn":
            return self.spawn(req)
        if op.startswith("race_"):
            return self.racers.handle(op, req)
        if op == "cleanup":
            self.racers.kill_all()
            self.holders.clear(bool(req.get("keep")), bool(req.get("everything")))
            self.reaper.reap_orphans()
            self.pidns.restore()
            return None
        if op == "caps":
            libc.capset([int(c) for c in req["caps"]])
            return None
        if op == "ping":
            return "pong"
        raise steps.StepError(f"unknown worker op {op!r}")

    def spawn(self, req: dict[str, Any]) -> dict[str, int]:
        """Create the worker of the next level: pid 1 of a new pid namespace (and user namespace)."""
        userns = bool(req.get("userns"))
        fds = [tuple(pair) for pair in req["fds"]]  # worker-side (req_r, rep_w) of levels level+1..
        uid, gid = os.geteuid(), os.getegid()
        flags = libc.SIGCHLD | libc.CLONE_NEWPID | (libc.CLONE_NEWUSER if userns else 0)
        pid = libc.raw_fork(flags)
        if pid == 0:
            try:
                worker_main(self.level + 1, userns, uid, gid, fds)
            finally:
                os._exit(1)
        self.reaper.own(pid)
        if not self.is_agent:
            for pair in fds:
                for fd in pair:
                    os.close(fd)
        return {"pid": pid}


def _close_fds_except(keep: set[int]) -> None:
    """A new worker keeps only its own pipes (and stderr): EOF on a pipe then means its peer died."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
    try:
        null = os.open("/dev/null", os.O_RDWR)
    except OSError:
        return
    for fd in (0, 1):
        if fd not in keep:
            os.dup2(null, fd)
    if null not in keep and null > 2:
        os.close(null)


def _map_ids(uid: int, gid: int) -> None:
    """Become root of the new user namespace: 0 <outer id> 1, setgroups denied."""
    for name, data in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
        res = procfs.write_text(f"/proc/self/{name}", data)
        if res["errno"]:
            raise OSError(res["errno"], f"writing {name}: {os.strerror(res['errno'])}")


def worker_main(level: int, userns: bool, uid: int, gid: int, fds: list[tuple[int, int]]) -> None:
    """Body of a chain worker: set up, say ready, serve requests from the agent until EOF."""
    req_r, rep_w = fds[0]
    _close_fds_except({2} | {fd for pair in fds for fd in pair})
    try:
        if userns:
            _map_ids(uid, gid)
        wire.send(rep_w, {"ok": True, "result": {"nspid": procfs.nspid(), "pid_max": procfs.pid_max()}})
    except Exception as e:
        wire.send(rep_w, {"ok": False, "error": f"worker {level} setup: {e}"})
        return
    ex = Executor(level, is_agent=False)
    serve(ex, req_r, rep_w)


def serve(ex: Executor, req_r: int, rep_w: int) -> None:
    """Request loop of a worker; returns when the agent closes the pipe."""
    while True:
        ex.reaper.reap_orphans()
        try:
            req = wire.recv(req_r)
        except wire.WireError:
            return
        try:
            reply = {"ok": True, "result": ex.handle(req)}
        except Exception as e:
            reply = {"ok": False, "error": f"level {ex.level}: {type(e).__name__}: {e}",
                     "trace": format_exc()}
        wire.send(rep_w, reply)


def format_exc() -> str:
    """The traceback of the exception being handled; traceback is imported only then (it pulls in
    linecache, tokenize and re: ~170 ms of the agent's start under TCG)."""
    import traceback
    return traceback.format_exc()
