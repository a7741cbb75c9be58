"""Namespace chains on the agent side: build them top-down, cache them, route requests, tear them down."""

from __future__ import annotations

import json
import os

from . import procfs, wire
from .executor import Executor
from .steps import StepError

TYPE_CHECKING = False  # typing and collections.abc cost ~80 ms of a cold start under TCG: annotations only
if TYPE_CHECKING:
    from typing import Any

MAX_CACHED = 4
LEAVE_NOTHING = ("read_file", "write_file", "pids")  # steps after which a level needs no cleanup
WORKER_TIMEOUT = 30.0


class Worker:
    """The agent's handle on the worker of one level: its request and reply pipes."""

    def __init__(self, level: int, req_w: int, rep_r: int) -> None:
        self.level = level
        self.req_w = req_w
        self.rep_r = rep_r
        self.nspid: list[int] = []
        self.pid_max = 0  # per pid namespace since Linux 6.14

    def call(self, req: dict[str, Any], timeout: float = WORKER_TIMEOUT) -> Any:
        """One request/reply; StepError on a failed reply, WireError when the worker is gone."""
        wire.send(self.req_w, req)
        return unwrap(wire.recv(self.rep_r, timeout), self.level)

    def close(self) -> None:
        for fd in (self.req_w, self.rep_r):
            os.close(fd)


def unwrap(reply: dict[str, Any], level: int) -> Any:
    """The result of an ok reply; StepError carrying the worker's message otherwise."""
    if not reply.get("ok"):
        raise StepError(reply.get("error") or f"worker {level} failed")
    return reply.get("result")


def canonical(spec: dict[str, Any]) -> str:
    """The cache key of a chain spec."""
    return json.dumps(spec, sort_keys=True, separators=(",", ":"))


class Chain:
    """Workers of levels 1..depth, all descendants of the agent's level-0 executor."""

    def __init__(self, spec: dict[str, Any], local: Executor) -> None:
        self.spec = spec
        self.local = local
        self.workers: list[Worker] = []
        self.first_pid = 0  # the level-1 worker, a child of the agent
        self.broken = False  # a worker died or missed a reply: its pipes are out of sync
        self.used: set[int] = set()  # levels that got a request since the last cleanup

    @property
    def depth(self) -> int:
        return len(self.spec.get("levels", []))

    def build(self) -> None:
        """Spawn level 1..depth top-down, then drop capabilities deepest first."""
        levels = self.spec.get("levels", [])
        if len(levels) > 32:
            raise StepError("a chain has at most 32 levels")
        theirs: list[tuple[int, int]] = []  # worker-side ends, inherited down the chain
        ours_to_close: list[int] = []
        for k in range(1, len(levels) + 1):
            req_r, req_w = os.pipe()
            rep_r, rep_w = os.pipe()
            self.workers.append(Worker(k, req_w, rep_r))
            theirs.append((req_r, rep_w))
            ours_to_close += [req_r, rep_w]
        try:
            for k, level in enumerate(levels, start=1):
                req = {"op": "spawn", "userns": bool(level.get("userns")), "fds": theirs[k - 1:]}
                if k == 1:
                    self.first_pid = self.local.handle(req)["pid"]
                    while ours_to_close:
                        os.close(ours_to_close.pop())
                else:
                    self.workers[k - 2].call(req)
                ready = unwrap(wire.recv(self.workers[k - 1].rep_r, WORKER_TIMEOUT), k)
                self.workers[k - 1].nspid, self.workers[k - 1].pid_max = ready["nspid"], ready["pid_max"]
            for k in range(len(levels), 0, -1):
                caps = levels[k - 1].get("caps")
                if caps is not None:
                    self.workers[k - 1].call({"op": "caps", "caps": caps})
        except BaseException:
            for fd in ours_to_close:
                os.close(fd)
            self.teardown()
            raise

    def alive(self) -> bool:
        """False when a worker died (its reply pipe reads EOF)."""
        return not any(wire.is_dead(w.rep_r) for w in self.workers)

    def call(self, level: int, req: dict[str, Any]) -> Any:
        """Route a request to the process of `level` (the agent itself for 0)."""
        if level == 0:
            return self.local.handle(req)
        worker = self._worker(level, req)
        try:
            return worker.call(req)
        except wire.WireError as e:
            self.broken = True
            raise StepError(f"worker of level {level}: {e}") from None

    def wave(self, calls: list[tuple[int, dict[str, Any]]]) -> list[Any]:
        """Requests whose order across levels does not matter (reads, the final cleanup), answered in the
        order given: every worker gets all of its requests before the first reply is read, and level 0's
        are handled last, locally. Under TCG a switch between two CPython processes costs about 1 ms (the
        soft TLB is refilled), so workers that run back to back save two switches each."""
        replies = self.gather(self.post(calls))
        out = [replies.pop(0) if level else None for level, _ in calls]
        for i, (level, req) in enumerate(calls):
            if not level:
                out[i] = self.local.handle(req)
        return out

    def post(self, calls: list[tuple[int, dict[str, Any]]]) -> list[Worker]:
        """Send the requests of levels 1.. without waiting (gather() reads the replies; level 0's are
        the caller's to handle); the workers they went to, in order."""
        sent: list[Worker] = []
        try:
            for level, req in calls:
                if level:
                    worker = self._worker(level, req)
                    wire.send(worker.req_w, req)
                    sent.append(worker)
        except wire.WireError as e:
            self.broken = True
            raise StepError(f"worker of level {level}: {e}") from None
        return sent

    def gather(self, sent: list[Worker]) -> list[Any]:
        """The replies to post()'s requests, in order; every one is read (the pipes stay in step) before
        the first failed reply raises."""
        try:
            replies = [wire.recv(w.rep_r, WORKER_TIMEOUT) for w in sent]
        except wire.WireError as e:
            self.broken = True
            raise StepError(f"a worker of levels {sorted({w.level for w in sent})}: {e}") from None
        return [unwrap(reply, w.level) for reply, w in zip(replies, sent, strict=True)]

    def _worker(self, level: int, req: dict[str, Any]) -> Worker:
        """The worker a request goes to; its level will need cleaning up unless the request leaves
        nothing behind (a read or a file write, or the cleanup itself)."""
        if not 0 < level <= self.depth:
            raise StepError(f"level {level} is outside the chain (depth {self.depth})")
        if req.get("op") != "cleanup" and (req.get("step") or {}).get("op") not in LEAVE_NOTHING:
            self.used.add(level)
        return self.workers[level - 1]

    def teardown(self) -> None:
        """Kill the level-1 worker: its namespace dies, and every deeper process with it."""
        if self.first_pid:
            self.local.reaper.kill(self.first_pid)
            self.first_pid = 0
        for w in self.workers:
            w.close()
        self.workers = []

    def describe(self, reread_pid_max: bool = True) -> dict[str, Any]:
        return {"spec": self.spec, "workers": [w.nspid for w in self.workers],
                "pid_maxes": [level0_pid_max(reread_pid_max)] + [w.pid_max for w in self.workers]}


_pid_max: list[int] = []


def level0_pid_max(reread: bool) -> int:
    """Level 0's pid_max, read again only when the program may have changed it (a file read costs ~0.6 ms
    of a 5 ms spawn program under TCG); the workers' were read when they started, as before."""
    if reread or not _pid_max:
        _pid_max[:] = [procfs.pid_max()]
    return _pid_max[0]


class ChainCache:
    """Live chains by canonical spec, least recently used torn down first."""

    def __init__(self, local: Executor) -> None:
        self.local = local
        self.chains: dict[str, Chain] = {}

    def get(self, spec: dict[str, Any], fresh: bool) -> Chain:
        key = canonical(spec)
        chain = self.chains.pop(key, None)
        if chain is not None and (fresh or chain.broken or not chain.alive()):
            chain.teardown()
            chain = None
        if chain is None:
            while len(self.chains) >= MAX_CACHED:
                self.chains.pop(next(iter(self.chains))).teardown()
            chain = Chain(spec, self.local)
            chain.build()
        self.chains[key] = chain  # most recently used last
        return chain

    def drop(self, chain: Chain) -> None:
        """Tear down a chain that may be out of sync (after a failure)."""
        self.chains.pop(canonical(chain.spec), None)
        chain.teardown()

    def clear(self) -> None:
        for chain in self.chains.values():
            chain.teardown()
        self.chains = {}
