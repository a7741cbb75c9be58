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
        out = []
        checks: list[Any] = []
        for i, racers_ in enumerate(res.get("rounds", [res["racers"]])):
            # the agent leaves out null/empty fields of racer results and repeats of a check result
            full = [{"child": None, "child_exit": None, "read": [], **r} for r in racers_]
            checks = [checks[j] if c is None else c for j, c in enumerate(res.get("check", [[]] * n)[i])]
            out.append(Round(i, full, res.get("setup", [[]] * n)[i], checks))
        return RaceRun(out, reply["steps"][len(before) + 1:], reply["chain"]["workers"])


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
