"""The race suite's helpers: racers for a profile, rounds from the session. What a round's `pids` check
says about the chain's namespaces, and what every round must show, is harness/race_invariant.py (shared
with the reproducers).

Every race test runs `race_rounds` rounds (ci 30, dev 200, fuzz 2000, or --race-rounds) inside one
program: the agent keeps the racers alive across rounds (PROGRAMS.md `race`). A kernel report on the
console during a test (KCSAN, lockdep, BUG, WARNING...) fails that test (harness/pytest_plugin.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import pytest

from harness.oracle.model import ChainState, Level
from harness.pidspace import pick_free
from harness.profiles import Profile, SpawnRequest
from harness.programs import program, race_step, read_file_step
from harness.race_invariant import (  # noqa: F401 (the race tests import them from here)
    RacePlan,
    Racer,
    chain_namespaces,
    overlap,
    shared_pids,
    tasks_with,
)
from harness.summary import RACE_PROPERTY

if TYPE_CHECKING:
    from harness.targets.base import Target

from ..spec import spec_of

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


RACE_BUDGET = 5  # rounds run at most, per round asked for, before the test fails "did not race"
RACED_SHARE = 5  # of the rounds asked for, at least 1 in RACED_SHARE must race (measured under TCG on a loaded
# 2-core host: ~30% of rounds had two calls at once, median release skew ~4M cycles; unloaded host: 58/60)



class DidNotRace(AssertionError):
    """Rounds whose racers never ran at once (one CPU busy elsewhere, racers released too far apart)."""


class Races:
    """Race programs of one profile on the session's target."""

    def __init__(self, target: Target, profile: Profile, rounds: int, node: Any = None) -> None:
        self.target = target
        self.profile = profile
        self.rounds = rounds
        self.node = node
        self.strict = True  # a run() short of raced rounds fails; False: only recorded (see assert_raced)
        self.raced_total = self.ran_total = 0

    def spawn(self, pids: Sequence[int] | None, at: int, child: str = "hold", flags: int = 0,
              **fields: Any) -> dict[str, Any]:
        """A racer that calls the profile's syscall with `pids` (outermost first, ending at the caller's level
        `at`). A root-anchored call (spec table) gets the vector padded with 0s (the kernel picks) for the
        levels above it, so that it names the same levels (NOTES.md: pids[0] is level 0)."""
        pids = self.vector(pids, at)
        step = self.profile.spawn_step(SpawnRequest(at=at, pids=None if pids is None else tuple(pids),
                                                    flags=flags, child=child))
        return {**step, **fields}

    def vector(self, pids: Sequence[int] | None, at: int) -> tuple[int, ...] | None:
        """The vector the call gets for `pids` (outermost first, ending at level `at`): as is, or for a
        root-anchored call padded with 0s above, so it names the same levels. The oracle must be asked
        about this vector, not `pids`."""
        if pids is None:
            return None
        if spec_of(self.profile.name).anchor == "root":
            return (0,) * (at + 1 - len(pids)) + tuple(pids)
        return tuple(pids)

    def free(self, levels: int | Sequence[int], spec: dict) -> list[int]:
        return pick_free(self.target, levels, spec)

    def cursor(self, spec: dict, level: int) -> int:
        """Level `level`'s allocation cursor (ns_last_pid), to put back after a test that moves it."""
        res = self.target.run(program([read_file_step(NS_LAST_PID, at=level)], spec))
        return int(res["steps"][0]["data"])

    def run(self, racers: Sequence[dict], spec: dict, rounds: int | None = None, setup: Sequence[dict] = (),
            check: Sequence[dict] = (), before: Sequence[dict] = (), after: Sequence[dict] = ()) -> RaceRun:
        """`before`, one race of `rounds` rounds (default: the session's), `after`; in one program. A round whose
        racers did not run at once (race_invariant.overlap) does not count: more rounds are run (a program per
        attempt, sized by the rate seen so far) until `rounds` / RACED_SHARE rounds raced, within RACE_BUDGET x
        `rounds` rounds in all; short of that the test fails (DidNotRace). Every round, raced or not, is returned: the
        invariant holds whatever the interleaving."""
        n = self.rounds if rounds is None else rounds
        want = max(1, n // RACED_SHARE)
        timed = sum(r.get("op") != "exit" for r in racers)
        if timed >= 2:
            require_cpus(self.target)
        out: RaceRun | None = None
        todo, raced, ran, why = n, 0, 0, ""
        while True:
            steps = [*before, race_step(racers, todo, setup, check), *after]
            reply = self.target.run(program(steps, spec), timeout=120 + todo)
            res = reply["steps"][len(before)]
            run = RaceRun(split_rounds(res, todo), reply["steps"][len(before) + 1:], reply["chain"]["workers"])
            if out is None:
                out = run
            else:
                out.rounds += [replace(r, index=len(out.rounds) + i) for i, r in enumerate(run.rounds)]
                out.after, out.workers = run.after, run.workers
            verdicts = [overlap(r.racers) for r in run.rounds]
            got = self.note_rounds(run.rounds, verdicts)
            raced, ran = raced + got, ran + todo
            why = next((v[2] for v in verdicts if not v[0]), why)
            if timed < 2 or raced >= want or ran >= RACE_BUDGET * n:
                break
            rate = max(raced / ran, 1 / RACE_BUDGET)
            todo = min(RACE_BUDGET * n - ran, max(2, round((want - raced) / rate)))
        if timed >= 2 and raced < want and self.strict:
            raise DidNotRace(f"did not race: {raced} of {ran} rounds had two calls at once on different CPUs, "
                             f"{want} wanted (e.g. {why})")
        return out

    def note_rounds(self, rounds: Sequence[Round], verdicts: Sequence[tuple] | None = None) -> int:
        """Record, for the run summary, how many rounds raced and their release skews; returns the raced count."""
        verdicts = [overlap(r.racers) for r in rounds] if verdicts is None else verdicts
        raced = sum(v[0] for v in verdicts)
        self.raced_total, self.ran_total = self.raced_total + raced, self.ran_total + len(rounds)
        if self.node is not None:
            self.node.user_properties.append((RACE_PROPERTY, {"rounds": len(rounds), "raced": raced,
                                                              "skews": [v[1] for v in verdicts if v[1] is not None]}))
        return raced


    def assert_raced(self) -> None:
        """For tests made of many short races (hypothesis examples): at least one round of them all raced."""
        if self.ran_total and not self.raced_total:
            raise DidNotRace(f"did not race: none of {self.ran_total} rounds had two calls at once on different CPUs")


def require_cpus(target: Target) -> None:
    """Racers on one CPU never run at once: skip with the reason."""
    cpus = target.info.extra.get("agent", {}).get("cpus")
    if cpus is not None and cpus < 2:
        pytest.skip(f"the target has {cpus} CPU: racers cannot run at once (a race needs two)")


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
def races(target: Target, profile: Profile, race_rounds: int, request: pytest.FixtureRequest) -> Races:
    return Races(target, profile, race_rounds, request.node)


# --- racers whose vectors overlap (test_race_state_machine.py; each round judged by harness/race_invariant.py) ---
WINDOW = 256  # pids the cyclic allocator hands out next: racers, their children and forks take pids there


def next_picks(level: Level, count: int = WINDOW) -> set[int]:
    """The next `count` pids the cyclic allocator would hand out at `level`, in use or not."""
    lo = level.pid_min()
    start, span = max(level.cursor, lo), level.pid_max - lo
    return {lo + (start - lo + i) % span for i in range(min(count, span))}


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

