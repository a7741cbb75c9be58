"""A race in a recording: judged by the race invariant (harness/race_invariant.py), not round by round.

A race's per-round outcome depends on timing (which racer wins), so a replay cannot compare it with the
recording round by round: it compares whether any round broke the invariant's rules that the racers' own
steps and results decide. A C reproducer checks the same rules (runtime_race.c), and also that a racer
that lost was refused with an errno a correct kernel gives for it (taken from the reference run).
"""

from __future__ import annotations

from typing import Any

from ..race_invariant import round_problems


def race_rounds(result: dict[str, Any]) -> list[list[dict[str, Any]]]:
    return result.get("rounds") or [result.get("racers") or []]


def race_signature(step: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """{"ok": True} when no round of the race broke the invariant (compared by `harness repro`)."""
    racers = step.get("racers", [])
    return {"ok": not any(round_problems(racers, rnd) for rnd in race_rounds(result))}


def race_expectation(step: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """What a C reproducer expects of a race, from a correct kernel's run: the invariant, and the errnos
    a syscall racer may lose with (every one the reference gave; none seen = errnos are not checked)."""
    racers = step.get("racers", [])
    errnos = sorted({int(res.get("errno", 0)) for rnd in race_rounds(result)
                     for s, res in zip(racers, rnd, strict=False) if s.get("op") == "syscall"} - {0})
    return {**race_signature(step, result), "errnos": errnos}
