"""The race invariant: what one round of a race must show whatever the interleaving. The one copy, used by
the race suite (suite/races/) and by the reproducers (harness/repro/).

From the racers' own steps and results (NOTES.md eclone rule 10, clone3's set_tid; the C reproducer,
repro/runtime_race.c, checks the same rules, so `harness repro` and the C program agree):
- a racer that asked for a full pid vector and got a child got exactly pids it asked for;
- racers that ask for the same vector and keep their children alive through the round: at most one wins.

With what the race suite knows besides (a `Judge`: the racers as levels and pids, the oracle's errno for
each racer alone, and a snapshot of the live tasks taken in the round):
- each racer ends with the errno it gets alone, or the busy errno when another racer claims its pids;
- a winner's child is the one live task with its pid, holding at every level the pid it asked for;
- a pid two racers claim is held by one task at most; somebody wins when everybody would alone;
- a refused racer's pids are not in use (unless a winner or someone before the race holds them);
- no two live tasks share a pid in one of the chain's namespaces.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from .profiles.base import PIDS_ADDR

ALIVE_MODES = ("park", "hold")  # children that live until the round ends


# --- the racers' own steps and results -----------------------------------------------------------------
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


def _own_problems(racers: list[dict[str, Any]], results: list[dict[str, Any]]) -> list[str]:
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


# --- what the race suite knows besides -----------------------------------------------------------------
@dataclass(frozen=True)
class Racer:
    """A call at level `at` asking for `pids` (outermost first, 0 = the kernel's choice), or a plain fork
    at `at` (pids None)."""

    at: int
    pids: tuple[int, ...] | None

    def asked(self) -> dict[int, int]:
        """Level -> pid this racer names."""
        pids = self.pids or ()
        first = self.at - len(pids) + 1
        return {first + i: pid for i, pid in enumerate(pids) if pid}


@dataclass(frozen=True)
class RacePlan:
    """Concrete racers; `fork_near`: (level, pid) the last racer, a plain fork, is aimed at through that
    level's cursor (None: every racer is a call under test)."""

    racers: tuple[Racer, ...]
    fork_near: tuple[int, int] | None
    held: frozenset[tuple[int, int]]  # (level, pid) in use before the race

    def claims(self, i: int) -> set[tuple[int, int]]:
        if self.racers[i].pids is None:
            return {self.fork_near} if self.fork_near else set()
        return set(self.racers[i].asked().items())

    def contested(self) -> set[tuple[int, int]]:
        """(level, pid) pairs claimed by two racers or more."""
        seen: set[tuple[int, int]] = set()
        twice: set[tuple[int, int]] = set()
        for i in range(len(self.racers)):
            twice |= seen & self.claims(i)
            seen |= self.claims(i)
        return twice

    def allowed(self, i: int, alone: int, busy: int) -> set[int]:
        """The errnos racer i may end with: what it gets alone, or busy when another racer claims its pids."""
        if self.racers[i].pids is None:
            return {0}
        return {alone, busy} if self.claims(i) & self.contested() else {alone}


def chain_namespaces(pids: dict[str, Any], workers: list[list[int]]) -> list[int]:
    """Pid namespace inode of each chain level, 0..depth: the agent is pid 1 of level 0 (its NSpid is [1]),
    worker k is pid 1 of level k."""
    ino = dict(zip(map(tuple, pids["nspids"]), pids["ns"], strict=True))
    return [ino[(1,)]] + [ino[tuple(w)] for w in workers]


def _in_level(namespaces: list[int], level: int, ino: int) -> bool:
    """Is a task whose own pid namespace is `ino` inside the chain's namespace of `level`? Every task is
    in level 0's; a task of another namespace below the chain's (CLONE_NEWPID) is not counted."""
    return level == 0 or ino in namespaces[level:]


def tasks_with(pids: dict[str, Any], namespaces: list[int], level: int, pid: int) -> list[list[int]]:
    """Live tasks that have `pid` in the chain's namespace of `level`."""
    return [v for v, ino in zip(pids["nspids"], pids["ns"], strict=True)
            if _in_level(namespaces, level, ino) and len(v) > level and v[level] == pid]


def shared_pids(pids: dict[str, Any], namespaces: list[int]) -> list[tuple[int, int]]:
    """(level, pid) pairs that two live tasks share in one of the chain's namespaces: must be none."""
    dupes = []
    for level in range(len(namespaces)):
        seen: set[int] = set()
        for vector, ino in zip(pids["nspids"], pids["ns"], strict=True):
            if _in_level(namespaces, level, ino) and len(vector) > level:
                if vector[level] in seen:
                    dupes.append((level, vector[level]))
                seen.add(vector[level])
    return dupes


@dataclass(frozen=True)
class Judge:
    """What the race suite knows of a race besides the racers' steps and results: the racers as levels and
    pids, each racer's errno alone (the oracle's), the profile's busy errno, and the chain's workers
    (NSpid of levels 1..depth) to place the round's snapshot of live tasks in the chain's namespaces."""

    plan: RacePlan
    alone: list[int]
    busy: int
    workers: list[list[int]]

    def where(self, index: int, results: list[dict[str, Any]]) -> str:
        return f"round {index}: racers {list(self.plan.racers)} got {[(r['ret'], r['errno']) for r in results]}"

    def problems(self, results: list[dict[str, Any]], pids: dict[str, Any], where: str) -> list[str]:
        """`pids`: the round's snapshot of live tasks (a `pids` step with `ns`)."""
        plan = self.plan
        namespaces = chain_namespaces(pids, self.workers)
        problems, won = [], set()
        for i, (racer, res) in enumerate(zip(plan.racers, results, strict=True)):
            allowed = plan.allowed(i, self.alone[i], self.busy)
            if res["errno"] not in allowed:
                problems.append(f"{where}: racer {i} ended with errno {res['errno']}, possible: {sorted(allowed)}")
            if res["errno"]:
                continue
            children = tasks_with(pids, namespaces, racer.at, res["ret"])
            if len(children) != 1:
                problems.append(f"{where}: racer {i}'s child is not the one live task with pid {res['ret']}")
                continue
            vector = children[0]
            if any(vector[k] != pid for k, pid in racer.asked().items()):
                problems.append(f"{where}: racer {i} asked for {racer.asked()} (level: pid), its child has {vector}")
            won |= {(k, vector[k]) for k in range(len(vector))} & plan.contested() | set(racer.asked().items())
        for level, pid in sorted(plan.contested()):
            if len(holders := tasks_with(pids, namespaces, level, pid)) > 1:
                problems.append(f"{where}: pid {pid} at level {level} is held by {holders}")
        if all(a == 0 for a in self.alone) and not any(r["errno"] == 0 for r in results):
            problems.append(f"{where}: every racer would succeed alone, yet nobody won")
        for i, res in enumerate(results):
            if res["errno"]:
                for level, pid in sorted(plan.claims(i) - won - plan.held):
                    if tasks_with(pids, namespaces, level, pid):
                        problems.append(f"{where}: refused racer {i}'s pid {pid} at level {level} is in use")
        if dupes := shared_pids(pids, namespaces):
            problems.append(f"{where}: two live tasks share (level, pid) {dupes}")
        return problems


def round_problems(racers: list[dict[str, Any]], results: list[dict[str, Any]], judge: Judge | None = None,
                   snapshot: dict[str, Any] | None = None, index: int = 0) -> list[str]:
    """The invariant's violations in round `index`: `racers` are the race's racer steps, `results` their
    results as the agent reports them. With a `judge` and the round's `snapshot` of live tasks, also the
    rules that need what the suite knows; every problem then names the round and its outcomes."""
    if judge is None or snapshot is None:
        return _own_problems(racers, results)
    where = judge.where(index, results)
    return [f"{where}: {p}" for p in _own_problems(racers, results)] + judge.problems(results, snapshot, where)


# --- did the round race at all? ----------------------------------------------------------------------------
def overlap(racers: list[dict[str, Any]]) -> tuple[bool, int | None, str]:
    """Whether two racers ran their calls at once: on different CPUs, with overlapping [tsc, tsc_end] (the time
    stamp counter just before and after the call, PROGRAMS.md `race`). Returns (raced, release skew in cycles
    between the first two timed racers on different CPUs or None, why not)."""
    timed = [r for r in racers if "tsc" in r and "cpu" in r]
    if len(timed) < 2:
        return False, None, f"{len(timed)} racer(s) made a timed call"
    pairs = [(a, b) for i, a in enumerate(timed) for b in timed[i + 1:] if a["cpu"] != b["cpu"]]
    if not pairs:
        return False, None, f"every racer ran on CPU {timed[0]['cpu']}"
    skew = min(abs(a["tsc"] - b["tsc"]) for a, b in pairs)
    for a, b in pairs:
        if a["tsc"] <= b.get("tsc_end", b["tsc"]) and b["tsc"] <= a.get("tsc_end", a["tsc"]):
            return True, skew, ""
    return False, skew, f"no two calls on different CPUs overlapped (closest releases {skew} cycles apart)"
