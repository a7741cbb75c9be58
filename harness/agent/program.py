"""Run one program (PROGRAMS.md): get its chain, run its steps level by level, clean up."""

from __future__ import annotations

import time

from . import race
from .chains import Chain, ChainCache
from .steps import StepError

TYPE_CHECKING = False  # typing and collections.abc cost ~80 ms of a cold start under TCG: annotations only
if TYPE_CHECKING:
    from typing import Any


def run_program(prog: dict[str, Any], cache: ChainCache) -> dict[str, Any]:
    """The reply of a run request; StepError (after cleanup) when a step cannot be carried out."""
    t0 = time.monotonic()
    spec = prog.get("chain") or {"levels": []}
    chain = cache.get(spec, bool(prog.get("fresh_chain")))
    keep = bool(prog.get("keep"))
    batched = batches(prog.get("steps", []))
    last = batched.pop() if batched and len(batched[-1]) > 1 else []
    results = []
    try:
        for batch in batched:
            if len(batch) == 1:
                results.append(run_step(chain, batch[0]))
            else:
                results += chain.wave([routed(s) for s in batch])
        results += _finish(chain, last, keep)
    except BaseException:
        if chain.broken:
            cache.drop(chain)
        else:
            try:
                _cleanup(chain, keep=False)
            except StepError:
                cache.drop(chain)  # the step's own error is the one to report
        raise
    out = chain.describe(reread_pid_max=not only_calls_and_reads(prog.get("steps", [])))
    out["pid_max"] = out["pid_maxes"][0]  # read once: a file read is dear under TCG
    return {"chain": out, "steps": results, "elapsed_ms": round((time.monotonic() - t0) * 1000, 3)}


CANNOT_WRITE_FILES = ("occupy", "release", "pids", "read_file")


def only_calls_and_reads(steps: list[dict[str, Any]]) -> bool:
    """True when no step can have written a file such as pid_max: clone-like calls (and sweeps of them),
    occupy, release, pids, read_file, and races made of those. Anything else (write_file, exec, a raw
    syscall that is not clone-like) may have."""
    for step in steps:
        op = step.get("op")
        if op == "race":
            nested = [*step.get("racers", []), *step.get("setup", []), *step.get("check", [])]
            nested += [p for r in step.get("racers", []) for p in r.get("prepare", [])]
            if not only_calls_and_reads(nested):
                return False
        elif op == "sweep":
            if not (step.get("step") or {}).get("clone"):
                return False
        elif op == "syscall":
            if not step.get("clone"):
                return False
        elif op not in CANNOT_WRITE_FILES:
            return False
    return True


READS = ("read_file",)  # steps that may run at several levels at once: no order among them


def batches(steps: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The steps in order, one per batch, except that consecutive reads at distinct levels are one
    batch (a sync reads every level's cursor)."""
    out: list[list[dict[str, Any]]] = []
    for step in steps:
        last = out[-1] if out else None
        if (last is not None and step.get("op") in READS and all(s.get("op") in READS for s in last)
                and int(step.get("at", 0)) not in {int(s.get("at", 0)) for s in last}):
            last.append(step)
        else:
            out.append([step])
    return out


def run_step(chain: Chain, step: dict[str, Any]) -> Any:
    """One step, routed to its level."""
    op = step.get("op")
    if op == "race":
        return race.run_race(chain, step, run_step)
    if op == "release" and "at" not in step:
        for level in range(chain.depth + 1):
            if chain.call(level, {"op": "step", "step": step})["ok"]:
                return {"ok": True}
        return {"ok": False}
    return chain.call(*routed(step))


def routed(step: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """(level, request) of a step."""
    return int(step.get("at", 0)), {"op": "step", "step": step}


def _finish(chain: Chain, reads: list[dict[str, Any]], keep: bool) -> list[Any]:
    """The program's last reads and the cleanup of every level it used, in one wave through the workers.

    A worker that got no request, or only reads, has nothing to clean: skipping it saves a pipe round
    trip per level (~1.5 ms under TCG) on every program of a deep chain."""
    calls = [routed(s) for s in reads]
    cleanup = {"op": "cleanup", "keep": keep}
    calls += [(level, cleanup) for level in sorted(chain.used, reverse=True)] + [(0, cleanup)]
    try:
        out = chain.wave(calls)
    except StepError:
        chain.broken = True
        raise
    chain.used = set()
    return out[:len(reads)]


def _cleanup(chain: Chain, keep: bool) -> None:
    """Kill what the program created at every level it used (after a failed step; named holders
    survive with keep)."""
    try:
        for level in [*sorted(chain.used, reverse=True), 0]:
            chain.call(level, {"op": "cleanup", "keep": keep})
        chain.used = set()
    except StepError:
        chain.broken = True
        raise
