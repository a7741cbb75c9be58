"""The agent's request loop: host requests in, one reply line each."""

from __future__ import annotations

import os
import sys

from . import affinity, arena, features, libc, procfs, race
from .chains import ChainCache
from .channel import Channel
from .executor import Executor
from .program import run_program

TYPE_CHECKING = False  # typing and collections.abc cost ~80 ms of a cold start under TCG: annotations only
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

PR_SET_CHILD_SUBREAPER = 36
IDLE_REAP_SECONDS = 1.0


def info(root_level: int = 0) -> dict[str, Any]:
    """What the ready event and the info op tell the host."""
    feats = features.features()
    try:
        pid_max = procfs.pid_max()
    except OSError:  # no CONFIG_PROC_SYSCTL: the host says so (features) instead of a dead agent
        pid_max = 0
    return {"kernel": os.uname().release, "pid_max": pid_max, "root_level": root_level,
            "python": sys.version.split()[0], "pid": os.getpid(), "features": feats,
            "cpus": len(affinity.race_cpus())}  # racers spread over these, the agent itself sits on one


class Server:
    """Owns the level-0 executor and the chain cache; serves until shutdown or EOF."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        arena.map_arena()
        race.init()
        affinity.pin_home()
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1)  # orphans come back to us even when we are not pid 1
        self.local = Executor(0, is_agent=True)
        self.cache = ChainCache(self.local)

    def serve(self) -> bool:
        """Returns True when the host asked for shutdown, False on EOF."""
        self.channel.send({"event": "ready", "info": info()})
        while True:
            req = self.channel.receive(IDLE_REAP_SECONDS)
            if req is None:
                if self.channel.eof:
                    self.cache.clear()
                    return False
                self.local.reaper.reap_orphans()
                continue
            reply = self.answer(req)
            self.channel.send(reply)
            if req.get("op") == "shutdown":
                self.cache.clear()
                return True

    def answer(self, req: dict[str, Any]) -> dict[str, Any]:
        ops: dict[str, Callable[[dict[str, Any]], Any]] = {
            "ping": lambda r: "pong",
            "info": lambda r: info(),
            "run": lambda r: run_program(r["program"], self.cache),
            "reset": lambda r: self.reset(),
            "shutdown": lambda r: None,
        }
        rid = req.get("id")
        try:
            op = ops.get(req.get("op"))
            if op is None:
                raise ValueError(f"unknown op {req.get('op')!r}")
            return {"id": rid, "ok": True, "result": op(req)}
        except Exception as e:
            return {"id": rid, "ok": False, "error": f"{type(e).__name__}: {e}".replace("\n", " "),
                    "trace": format_exc()}

    def reset(self) -> None:
        self.cache.clear()
        self.local.holders.clear(keep=False, everything=True)
        self.local.reaper.reap_orphans()


def format_exc() -> str:
    """The traceback of the exception being handled; traceback is imported only then (it pulls in
    linecache, tokenize and re: ~170 ms of the agent's start under TCG)."""
    import traceback
    return traceback.format_exc()
