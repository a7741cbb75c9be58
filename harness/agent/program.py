"""Run one program (PROGRAMS.md): get its chain, run its steps level by level, clean up."""

from __future__ import annotations

import time
from typing import Any

from . import procfs, race
from .chains import Chain, ChainCache
from .steps import StepError

BARRIER_TIMEOUT = 30.0


def run_program(prog: dict[str, Any], cache: ChainCache) -> dict[str, Any]:
    """The reply of a run request; StepError (after cleanup) when a step cannot be carried out."""
    t0 = time.monotonic()
    spec = prog.get("chain") or {"levels": []}
    chain = cache.get(spec, bool(prog.get("fresh_chain")))
    keep = bool(prog.get("keep"))
    results = []
    try:
        for step in prog.get("steps", []):
            results.append(run_step(chain, step))
    except BaseException:
        if chain.broken:
            cache.drop(chain)
        else:
            try:
                _cleanup(chain, keep=False, cache=cache)
            except StepError:
                pass  # the chain was dropped; the step's own error is the one to report
        raise
    _cleanup(chain, keep, cache)
    out = chain.describe()
    out["pid_max"] = procfs.pid_max()
    return {"chain": out, "steps": results, "elapsed_ms": round((time.monotonic() - t0) * 1000, 3)}


def run_step(chain: Chain, step: dict[str, Any]) -> Any:
    """One step, routed to its level."""
    op = step.get("op")
    if op == "race":
        return run_race(chain, step)
    if op == "release" and "at" not in step:
        for level in range(chain.depth + 1):
            if chain.call(level, {"op": "step", "step": step})["ok"]:
                return {"ok": True}
        return {"ok": False}
    return chain.call(int(step.get("at", 0)), {"op": "step", "step": step})


def run_race(chain: Chain, step: dict[str, Any]) -> dict[str, Any]:
    """Start every racer, release them together once all spin, collect their results; `rounds` times."""
    racers = step.get("racers", [])
    if not 0 < len(racers) <= race.MAX_RACERS:
        raise StepError(f"a race needs 1..{race.MAX_RACERS} racers")
    rounds = []
    for _ in range(int(step.get("rounds", 1))):
        gen = race.new_generation()
        started = []
        try:
            for slot, racer in enumerate(racers):
                chain.call(int(racer.get("at", 0)), {"op": "race_start", "step": racer, "slot": slot,
                                                     "gen": gen})
                started.append(slot)
            released = race.release_when_ready(len(racers), gen, BARRIER_TIMEOUT)
        except BaseException:
            race.abort(gen)
            _collect(chain, racers, started)
            raise
        results = _collect(chain, racers, started)
        if not released:
            raise StepError("racers did not reach the barrier in time")
        rounds.append(results)
    out: dict[str, Any] = {"racers": rounds[-1]}
    if len(rounds) > 1:
        out["rounds"] = rounds
    return out


def _collect(chain: Chain, racers: list[dict[str, Any]], slots: list[int]) -> list[Any]:
    return [chain.call(int(racers[s].get("at", 0)), {"op": "race_collect", "slot": s}) for s in slots]


def _cleanup(chain: Chain, keep: bool, cache: ChainCache) -> None:
    """Kill what the program created at every level (named holders survive with keep)."""
    try:
        for level in range(chain.depth, -1, -1):
            chain.call(level, {"op": "cleanup", "keep": keep})
    except StepError:
        cache.drop(chain)
        raise
