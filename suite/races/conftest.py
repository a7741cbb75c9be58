"""The race suite's helpers: racers for a profile, rounds from the session, and what a round's
`pids` check says about the chain's namespaces.

Every race test runs `race_rounds` rounds (ci 30, dev 200, fuzz 2000, or --race-rounds) inside one
program: the agent keeps the racers alive across rounds (PROGRAMS.md `race`). A kernel report on the
console during a test (KCSAN, lockdep, BUG, WARNING...) fails that test (harness/pytest_plugin.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from harness.oracle.model import ChainState, Level
from harness.pidspace import pick_free
from harness.profiles import Profile, SpawnRequest
from harness.programs import program, race_step, read_file_step

CLONE_VM = 0x100
CLONE_NEWPID = 0x20000000
NS_LAST_PID = "/proc/sys/kernel/ns_last_pid"
PIDS_WITH_NS = {"op": "pids", "ns": True}  # every live task's NSpid and the inode of its pid namespace


@dataclass
class Round:
    """One round of a race: the racers' results, and the results of the race's setup and check steps."""

    index: int
    racers: list[dict[str, Any]]
    setup: list[Any]
    check: list[Any]


@dataclass
class RaceRun:
    """A race program's reply, split into rounds; `after` holds the results of the steps after the race."""

    rounds: list[Round]
    after: list[Any]
    workers: list[list[int]]  # NSpid of the chain's worker of level 1..depth


class Races:
    """Race programs of one profile on the session's target."""

    def __init__(self, target: Any, profile: Profile, rounds: int) -> None:
        self.target = target
        self.profile = profile
        self.rounds = rounds

    def spawn(self, pids: Sequence[int] | None, at: int, child: str = "hold", flags: int = 0,
              **fields: Any) -> dict[str, Any]:
        """A racer that calls the profile's syscall with `pids` (outermost first) at level `at`."""
        step = self.profile.spawn_step(SpawnRequest(at=at, pids=None if pids is None else tuple(pids),
                                                    flags=flags, child=child))
        return {**step, **fields}

    def free(self, levels: int | Sequence[int], spec: dict) -> list[int]:
        return pick_free(self.target, levels, spec)

    def cursor(self, spec: dict, level: int) -> int:
        """Level `level`'s allocation cursor (ns_last_pid), to put back after a test that moves it."""
        res = self.target.run(program([read_file_step(NS_LAST_PID, at=level)], spec))
        return int(res["steps"][0]["data"])

    def run(self, racers: Sequence[dict], spec: dict, rounds: int | None = None, setup: Sequence[dict] = (),
            check: Sequence[dict] = (), before: Sequence[dict] = (), after: Sequence[dict] = ()) -> RaceRun:
        """`before`, one race of `rounds` rounds (default: the session's), `after`; in one program."""
        n = self.rounds if rounds is None else rounds
        steps = [*before, race_step(racers, n, setup, check), *after]
        reply = self.target.run(program(steps, spec), timeout=120 + n)
        res = reply["steps"][len(before)]
        return RaceRun(split_rounds(res, n), reply["steps"][len(before) + 1:], reply["chain"]["workers"])


def split_rounds(res: dict[str, Any], rounds: int) -> list[Round]:
    """A race step's result as one Round per round, with what the agent leaves out put back: null/empty
    fields of racer results, and check results equal to the previous round's (sent as null)."""
    out = []
    checks: list[Any] = []
    for i, racers_ in enumerate(res.get("rounds", [res["racers"]])):
        full = [{"child": None, "child_exit": None, "read": [], **r} for r in racers_]
        checks = [checks[j] if c is None else c for j, c in enumerate(res.get("check", [[]] * rounds)[i])]
        out.append(Round(i, full, res.get("setup", [[]] * rounds)[i], checks))
    return out


@pytest.fixture
def races(target: Any, profile: Profile, race_rounds: int) -> Races:
    return Races(target, profile, race_rounds)


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


# --- racers whose vectors overlap, and what every round of them must show (test_race_state_machine.py) ---
WINDOW = 256  # pids the cyclic allocator hands out next: racers, their children and forks take pids there


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



def next_picks(level: Level, count: int = WINDOW) -> set[int]:
    """The next `count` pids the cyclic allocator would hand out at `level`, in use or not."""
    lo = level.pid_min()
    start, span = max(level.cursor, lo), level.pid_max - lo
    return {lo + (start - lo + i) % span for i in range(min(count, span))}



def round_problems(rnd: Round, plan: RacePlan, alone: list[int], busy: int, workers: list[list[int]]) -> list[str]:
    """Everything a round must show whatever the interleaving (test_race_state_machine.py lists it); `alone`
    is each racer's errno in the state before the race, as the oracle predicts it."""
    results, pids = rnd.racers, rnd.check[0]
    where = f"round {rnd.index}: racers {list(plan.racers)} got {[(r['ret'], r['errno']) for r in results]}"
    namespaces = chain_namespaces(pids, workers)
    problems, won = [], set()
    for i, (racer, res) in enumerate(zip(plan.racers, results, strict=True)):
        allowed = plan.allowed(i, alone[i], busy)
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
    if all(a == 0 for a in alone) and not any(r["errno"] == 0 for r in results):
        problems.append(f"{where}: every racer would succeed alone, yet nobody won")
    for i, res in enumerate(results):
        if res["errno"]:
            for level, pid in sorted(plan.claims(i) - won - plan.held):
                if tasks_with(pids, namespaces, level, pid):
                    problems.append(f"{where}: refused racer {i}'s pid {pid} at level {level} is in use")
    if dupes := shared_pids(pids, namespaces):
        problems.append(f"{where}: two live tasks share (level, pid) {dupes}")
    return problems



def unchanged_problems(before: ChainState, after: ChainState, touched: set[tuple[int, int]], where: str) -> list[str]:
    """The chain's own levels hold exactly what they held before (only the holders); a shared level
    (kernel threads) is compared on the pids the race asked for."""
    problems = []
    for k, (old, new) in enumerate(zip(before.levels, after.levels, strict=True)):
        pids = {p for lv, p in touched if lv == k} if old.shared else old.used | new.used
        for pid in sorted(p for p in pids if (p in old.used) != (p in new.used)):
            problems.append(f"{where}: level {k} pid {pid} was {'in use' if pid in old.used else 'free'} "
                            f"before, is {'in use' if pid in new.used else 'free'} after")
    return problems


# The semantics suite's fixtures for stateful tests (the hypothesis profile of the run; a skip without
# ns_last_pid), shared rather than copied.
from suite.semantics.conftest import hypothesis_profile, needs_ns_last_pid  # noqa: E402, F401
