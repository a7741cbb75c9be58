"""The race invariant (harness/race_invariant.py) with what the race suite knows: a round's snapshot of live
tasks judged against the plan (the racers' own-result rules are in test_repro.py)."""

from __future__ import annotations

import errno

from harness.profiles import Clone3Profile, SpawnRequest
from harness.race_invariant import Judge, RacePlan, Racer, round_problems

WORKER = [2, 1]  # NSpid of the chain's level-1 worker
ROOT_NS, LEVEL1_NS = 10, 11
RACERS = (Racer(1, (3000, 500)), Racer(1, (3001, 500)))  # both ask for pid 500 at level 1
PLAN = RacePlan(RACERS, fork_near=None, held=frozenset())
JUDGE = Judge(PLAN, alone=[0, 0], busy=errno.EEXIST, workers=[WORKER])
STEPS = [Clone3Profile().spawn_step(SpawnRequest(at=1, pids=r.pids, child="park")) for r in RACERS]


def snapshot(*children: list[int]) -> dict:
    nspids = [[1], WORKER, *children]
    return {"nspids": nspids, "ns": [ROOT_NS, LEVEL1_NS] + [LEVEL1_NS] * len(children)}


def test_one_winner_holding_what_it_asked_for_is_clean() -> None:
    results = [{"ret": 500, "errno": 0}, {"ret": -1, "errno": errno.EEXIST}]
    assert round_problems(STEPS, results, JUDGE, snapshot([3000, 500]), 4) == []


def test_two_holders_of_a_contested_pid_are_reported_with_the_round() -> None:
    results = [{"ret": 500, "errno": 0}, {"ret": 500, "errno": 0}]
    problems = round_problems(STEPS, results, JUDGE, snapshot([3000, 500], [3001, 500]), 4)
    assert problems and all(p.startswith("round 4: racers ") for p in problems)
    assert any("pid 500 at level 1 is held by [[3000, 500], [3001, 500]]" in p for p in problems)


def test_a_loser_with_an_errno_the_oracle_does_not_allow_is_reported() -> None:
    results = [{"ret": 500, "errno": 0}, {"ret": -1, "errno": errno.EINVAL}]
    [problem] = round_problems(STEPS, results, JUDGE, snapshot([3000, 500]), 0)
    assert problem.endswith(f"racer 1 ended with errno {errno.EINVAL}, possible: {sorted({0, errno.EEXIST})}")
