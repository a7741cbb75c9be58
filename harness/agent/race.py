"""Races (PROGRAMS.md `race`): the barrier racers meet at, and the agent's side of the rounds.

Racers (agent/racer.py) are forked once per race by their level's process and live across rounds.
Per round the agent runs the `setup` steps, sends every level its go messages, collects the racers'
results, runs the `check` steps while what the racers hold is alive, and has the levels drop those
children before the next round.

The barrier is a page of MAP_SHARED memory mapped by the agent before it forks anything, so every
worker and racer shares it. Byte 0 is the abort byte: the round's generation | ABORT when the round is
called off. Byte READY + i is racer i's ready generation, byte SENT + i the generation of the last go
message its level sent it. A racer marks itself ready and spins until every racer is ready, so the last
racer to arrive releases everyone: neither the agent nor a worker is on the critical path. Spinning
racers call sched_yield() (they stay runnable, never sleep) until every go message is out, so that a
level process still sending, or a racer still preparing, is not starved on a 2-CPU guest; from then on,
when there are no more racers than CPUs (each has one of its own), they spin tight. Since no process
opens a gate, the agent can send every level its go messages at once and read the replies after (a
wave: one switch into each level's process per round, not three).
"""

from __future__ import annotations

import mmap
import os
import time

from .steps import StepError

TYPE_CHECKING = False  # typing and collections.abc cost ~80 ms of a cold start under TCG: annotations only
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

READY = 64
MAX_RACERS = (mmap.PAGESIZE - READY) // 2
SENT = READY + MAX_RACERS
ABORT = 0x80
BARRIER_TIMEOUT = 10.0  # a racer gives up waiting for the others (the round is then aborted)
CPUS = os.cpu_count() or 1

_shm: mmap.mmap | None = None
_gen = 0


def init() -> None:
    """Map the shared page (call before the first fork)."""
    global _shm
    if _shm is None:
        _shm = mmap.mmap(-1, mmap.PAGESIZE, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)


def begin_round(count: int) -> int:
    """In the agent: clear the abort, ready and sent bytes, return the new round's generation (1..127)."""
    global _gen
    _gen = _gen % 127 + 1
    _shm[0] = 0
    _shm[READY:READY + count] = bytes(count)
    _shm[SENT:SENT + count] = bytes(count)
    return _gen


def sent(slot: int, gen: int) -> None:
    """In a level's process: racer `slot`'s go message of round `gen` is out."""
    _shm[SENT + slot] = gen


def abort(gen: int) -> None:
    """Let every racer of this round stop waiting at the barrier without running its step."""
    _shm[0] = gen | ABORT


def meet(slot: int, gen: int, count: int, timeout: float = BARRIER_TIMEOUT) -> bool:
    """In a racer: mark ready, spin until all `count` racers are; False if the round was aborted."""
    shm = _shm
    want, aborted = bytes([gen]) * count, gen | ABORT
    ready, sent_ = slice(READY, READY + count), slice(SENT, SENT + count)
    tight = count <= CPUS  # racers are pinned round-robin: each has a CPU of its own
    shm[READY + slot] = gen
    deadline = time.monotonic() + timeout
    spins = 0
    while True:
        if shm[ready] == want:
            return True
        if shm[0] == aborted:
            return False
        spins += 1
        if not spins & 0x3FF and time.monotonic() > deadline:
            abort(gen)
            return False
        if not tight or shm[sent_] != want:
            os.sched_yield()


def run_race(chain: Any, step: dict[str, Any], run_step: Callable[[Any, dict[str, Any]], Any]) -> dict[str, Any]:
    """Start the racers, run `rounds` rounds (drop, setup, go, collect, check), end the racers."""
    racers = step.get("racers", [])
    if not 0 < len(racers) <= MAX_RACERS:
        raise StepError(f"a race needs 1..{MAX_RACERS} racers")
    if int(step.get("rounds", 1)) < 1:
        raise StepError("a race needs at least one round")
    return _Race(chain, step, run_step).run()


class _Race:
    """The agent's side of one race step."""

    def __init__(self, chain: Any, step: dict[str, Any], run_step: Callable[[Any, dict[str, Any]], Any]) -> None:
        self.chain, self.step, self.run_step = chain, step, run_step
        self.racers = step["racers"]
        self.by_level: dict[int, list[int]] = {}
        for slot, racer in enumerate(self.racers):
            self.by_level.setdefault(int(racer.get("at", 0)), []).append(slot)
        self.levels = sorted(self.by_level)
        # Without setup or prepare steps nothing runs between one round's check and the next round's
        # barrier but the racers themselves: each drops its children when its go message arrives.
        self.separate_drop = bool(step.get("setup")) or any(r.get("prepare") for r in self.racers)
        self.holding: set[int] = set()  # levels whose racers hold children (dropped before the next round)
        self.out: dict[str, list[Any]] = {"rounds": [], "setup": [], "check": []}
        self.last_checks: list[Any] = []
        self.ms = dict.fromkeys(("drop", "setup", "go", "check"), 0.0)  # where the rounds' time went

    def run(self) -> dict[str, Any]:
        started: list[int] = []
        ok = False
        try:
            for level in self.levels:
                racers = [[s, self.racers[s]] for s in self.by_level[level]]
                self.chain.call(level, {"op": "race_start", "racers": racers})
                started.append(level)
            for _ in range(int(self.step.get("rounds", 1))):
                self.one_round()
            ok = True
        finally:
            for level in started:
                try:
                    self.chain.call(level, {"op": "race_end" if ok else "race_kill", "slots": self.by_level[level]})
                except StepError:
                    if ok:
                        raise
        return self.shaped()

    def one_round(self) -> None:
        t = time.monotonic()
        if self.separate_drop and self.holding:
            drop = [(lv, {"op": "race_drop", "slots": self.by_level[lv]}) for lv in sorted(self.holding)]
            drops = self.chain.wave(drop)
            _check_replies([r for replies in drops for r in replies])
        t = self.tick("drop", t)
        self.out["setup"].append([self.run_step(self.chain, s) for s in self.step.get("setup", [])])
        t = self.tick("setup", t)
        replies = self.go(drop=not self.separate_drop)
        self.holding = {lv for lv in self.levels if any(replies[s].get("holds") for s in self.by_level[lv])}
        self.out["rounds"].append([_lean(replies[s]["result"]) for s in range(len(self.racers))])
        t = self.tick("go", t)
        checks = [self.run_step(self.chain, s) for s in self.step.get("check", [])]
        # a check result equal to the previous round's is sent as null (the serial line is slow)
        self.out["check"].append([None if self.last_checks and res == self.last_checks[j] else res
                                  for j, res in enumerate(checks)])
        self.last_checks = checks
        self.tick("check", t)

    def go(self, drop: bool) -> dict[int, Any]:
        """Every level gets its go request at once (workers first, then the agent's own level, handled
        here); each sends its racers their go messages and answers with their replies."""
        gen = begin_round(len(self.racers))
        go = {"op": "race_round", "gen": gen, "count": len(self.racers), "drop": drop}
        workers = [lv for lv in self.levels if lv]
        try:
            sent = self.chain.post([(lv, {**go, "slots": self.by_level[lv]}) for lv in workers])
        except BaseException:
            abort(gen)
            raise
        replies: dict[int, Any] = {}
        try:
            if 0 in self.by_level:
                replies.update(zip(self.by_level[0], self.chain.local.handle({**go, "slots": self.by_level[0]}),
                                   strict=True))
        except BaseException:
            abort(gen)  # the workers' racers stop waiting for ours; their replies are read all the same
            try:
                self.chain.gather(sent)
            except StepError:
                pass  # level 0's error is the one to report (a dead worker has marked the chain broken)
            raise
        for lv, got in zip(workers, self.chain.gather(sent), strict=True):
            replies.update(zip(self.by_level[lv], got, strict=True))
        _check_replies(list(replies.values()))
        return replies

    def tick(self, phase: str, since: float) -> float:
        now = time.monotonic()
        self.ms[phase] += (now - since) * 1000
        return now

    def shaped(self) -> dict[str, Any]:
        """`racers` = the last round; `rounds`/`setup`/`check` lists only where they say something."""
        out = self.out
        shaped: dict[str, Any] = {"racers": out["rounds"][-1]}
        if len(out["rounds"]) > 1:
            shaped["rounds"] = out["rounds"]
        for key in ("setup", "check"):
            if self.step.get(key):
                shaped[key] = out[key]
        shaped["ms"] = {k: round(v, 1) for k, v in self.ms.items()}
        return shaped


def _lean(result: Any) -> Any:
    """A racer's result without its null and empty fields: 30 rounds of results cross a slow serial line."""
    if isinstance(result, dict):
        return {k: v for k, v in result.items() if v is not None and v != []}
    return result


def _check_replies(replies: list[Any]) -> None:
    """A racer that failed (not merely aborted because another one did) fails the race step."""
    failed = [r for r in replies if r is not None and not r.get("ok")]
    if failed:
        first = next((r for r in failed if not r.get("aborted")), failed[0])
        raise StepError(first.get("error") or "racer failed")
