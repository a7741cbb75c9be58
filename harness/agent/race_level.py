"""The racers of one level (PROGRAMS.md `race`): forked by the level's process (a worker, or the agent for
level 0) at the start of a race, driven through pipes round by round, adopted or killed at its end.

Requests from the agent: race_start (fork), race_round (go messages, then the racers' replies),
race_drop (racers kill what they hold), race_end (racers exit, their held children become the level's),
race_kill (an aborted race: racers and their process groups die).
"""

from __future__ import annotations

import os
import signal

from . import race, steps, wire
from .racer import racer_main

TYPE_CHECKING = False  # typing and collections.abc cost ~80 ms of a cold start under TCG: annotations only
if TYPE_CHECKING:
    from typing import Any

COLLECT_TIMEOUT = 20.0  # below the agent's worker call timeout (30 s)


class _Handle:
    """A level's view of one racer: its step, process, pipes, and whether a reply is outstanding."""

    def __init__(self, step: dict[str, Any]) -> None:
        self.step = step
        self.pid = 0
        self.msg_w = self.res_r = -1
        self.pending = False


class LevelRacers:
    """The racers one level's process (worker or agent) forked, by slot; requests race_* from the agent."""

    def __init__(self, holders: steps.Holders) -> None:
        self.holders = holders
        self.racers: dict[int, _Handle] = {}

    def handle(self, op: str, req: dict[str, Any]) -> Any:
        slots = [int(s) for s in req.get("slots", [])]
        if op == "race_start":  # forked now, before any setup step (e.g. one that moves a cursor)
            for slot, step in req["racers"]:
                self.racers[int(slot)] = h = _Handle(step)
                self._fork(int(slot), h)
            return None
        if op == "race_round":
            self.go(slots, int(req["gen"]), int(req["count"]), bool(req.get("drop")))
            return [self.collect(s) for s in slots]
        if op == "race_drop":  # all racers kill their children at once, then every reply is read
            alive = [s for s in slots if self.racers[s].pid]
            for s in alive:
                wire.send(self.racers[s].msg_w, {"op": "drop"})
                self.racers[s].pending = True
            return [self._reply(s, self.racers[s]) for s in alive]
        if op == "race_end":
            return self.end(slots)
        if op == "race_kill":
            return self.kill_all()
        raise steps.StepError(f"unknown race op {op!r}")

    def _fork(self, slot: int, h: _Handle) -> None:
        msg_r, msg_w = os.pipe()
        res_r, res_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                racer_main(slot, h.step, msg_r, res_w, self.holders)
            finally:
                os._exit(0)
        os.close(msg_r)
        os.close(res_w)
        try:
            os.setpgid(pid, pid)  # as the racer does itself: whichever runs first, the group exists
        except OSError:
            pass
        self.holders.reaper.own(pid)
        h.pid, h.msg_w, h.res_r = pid, msg_w, res_r

    def go(self, slots: list[int], gen: int, count: int, drop: bool) -> None:
        """Send each racer its go message (forking racers not alive yet); holder names are resolved here.
        With `drop` racers first kill what they still hold from the previous round."""
        for slot in slots:
            h = self.racers[slot]
            msg: dict[str, Any] = {"op": "go", "gen": gen, "count": count, "drop": drop}
            if h.step.get("op") == "release":
                msg["pid"] = self.holders.named.get(str(h.step["name"]))
            if h.step.get("pidns_of") is not None:
                msg["ns_pid"] = self.holders.named.get(str(h.step["pidns_of"]))
                if msg["ns_pid"] is None:
                    race.abort(gen)
                    raise steps.StepError(f"pidns_of: no held process named {h.step['pidns_of']!r}")
            if not h.pid:
                self._fork(slot, h)
            wire.send(h.msg_w, msg)
            h.pending = True
            race.sent(slot, gen)

    def collect(self, slot: int) -> dict[str, Any]:
        """A racer's reply to its go message; a racer that exited instead is reaped (forked anew next round)."""
        h = self.racers[slot]
        reply = self._reply(slot, h)
        if reply is None:
            return {"ok": True, "result": {"racer_exit": self._reap(h)}}
        if reply.get("ok") and h.step.get("op") == "release" and reply["result"].get("ok"):
            self.holders.release(str(h.step["name"]))  # a holder of this level: reap it, forget its name
        return reply

    def exchange(self, slot: int, msg: dict[str, Any]) -> dict[str, Any] | None:
        h = self.racers[slot]
        if not h.pid:
            return None
        wire.send(h.msg_w, msg)
        h.pending = True
        return self._reply(slot, h)

    def _reply(self, slot: int, h: _Handle) -> dict[str, Any] | None:
        """The outstanding reply; None when the racer is gone (EOF); StepError on a timeout."""
        if not h.pending:
            raise steps.StepError(f"racer {slot} has no outstanding message")
        try:
            return wire.recv(h.res_r, COLLECT_TIMEOUT)
        except wire.WireTimeout:
            self._kill(h)
            raise steps.StepError(f"racer {slot} did not answer in {COLLECT_TIMEOUT} s") from None
        except wire.WireError:
            return None
        finally:
            h.pending = False

    def end(self, slots: list[int]) -> None:
        """Racers exit; what they still hold is reparented to this level's init and becomes ours."""
        try:
            for slot in slots:
                h = self.racers[slot]
                if not h.pid:
                    continue
                reply = self.exchange(slot, {"op": "end"})
                self._reap(h)
                held = reply["result"] if reply and reply.get("ok") else {"named": {}, "anon": []}
                for name, pid in held["named"].items():
                    self.holders.add(int(pid), name)
                for pid in held["anon"]:
                    self.holders.add(int(pid), None)
        finally:
            self.kill_all()

    def _reap(self, h: _Handle) -> int | None:
        status = self.holders.reaper.wait(h.pid)
        for fd in (h.msg_w, h.res_r):
            if fd >= 0:
                os.close(fd)
        h.pid, h.msg_w, h.res_r, h.pending = 0, -1, -1, False
        return status

    def _kill(self, h: _Handle) -> None:
        """The racer and its process group (what it holds); the racer itself even if it has no group yet."""
        for kill in (os.killpg, os.kill):
            try:
                kill(h.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._reap(h)

    def kill_all(self) -> None:
        """Racers still alive (an aborted race) are killed with everything they hold; the table empties."""
        for h in self.racers.values():
            if h.pid:
                self._kill(h)
        self.racers = {}
