"""What a race must never show, whatever the interleaving: the invariant a race reproducer checks.

A race's per-round outcome depends on timing (which racer wins), so a replay cannot compare it with the
recording round by round. What does not depend on timing (NOTES.md eclone rule 10, clone3's set_tid):
- a racer that asked for a full pid vector and got a child got exactly pids it asked for;
- racers that ask for the same vector and keep their children alive through the round: at most one wins;
- a racer that lost was refused with an errno a correct kernel gives for it (taken from the reference).
The C reproducer (runtime_race.c) checks the same rules, so `harness repro` and the C program agree.
"""

from __future__ import annotations

import struct
from typing import Any

from ..profiles.base import PIDS_ADDR

ALIVE_MODES = ("park", "hold")  # children that live until the round ends


def requested(step: dict[str, Any]) -> list[int]:
    """The pid vector a syscall racer writes (at PIDS_ADDR, both profiles), in the order written."""
    for addr, hexdata in step.get("write", []):
        if int(addr) == PIDS_ADDR:
            data = bytes.fromhex(hexdata)
            return [v for (v,) in struct.iter_unpack("<i", data[: len(data) // 4 * 4])]
    return []


def full_vector(step: dict[str, Any]) -> list[int]:
    """The requested pids when they name one pid for every level up to the caller's (else [])."""
    want = requested(step)
    if step.get("op") != "syscall" or not want or len(want) < int(step.get("at", 0)) + 1 or min(want) <= 0:
        return []
    return want


def group_key(step: dict[str, Any]) -> str | None:
    """Racers with the same key contest the same pids and hold them through the round (None: no group)."""
    if step.get("op") != "syscall" or not full_vector(step) or step.get("child") not in ALIVE_MODES:
        return None
    if step.get("pidns_of") is not None:
        return None
    return repr((step.get("at", 0), step.get("nr"), step.get("regs"), step.get("write")))


def round_problems(racers: list[dict[str, Any]], results: list[dict[str, Any]]) -> list[str]:
    """The invariant's violations in one round (racer results as the agent reports them)."""
    problems = []
    winners: dict[str, list[int]] = {}
    for slot, (step, res) in enumerate(zip(racers, results, strict=False)):
        want = full_vector(step)
        ret = int(res.get("ret", -1))
        if not want or int(res.get("errno", 0)) or ret <= 0:
            continue
        if ret not in want:
            problems.append(f"racer {slot} asked for {want} and got pid {ret}")
        nspid = (res.get("child") or {}).get("nspid") or []
        if len(nspid) == len(want) and set(nspid) != set(want):
            problems.append(f"racer {slot} asked for {want} and its child has {nspid}")
        key = group_key(step)
        if key is not None:
            winners.setdefault(key, []).append(slot)
    problems += [f"racers {slots} each got a child for the same pids" for slots in winners.values() if len(slots) > 1]
    return problems


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
