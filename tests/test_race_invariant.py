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


def test_a_round_raced_only_when_calls_on_different_cpus_overlap() -> None:
    from harness.race_invariant import overlap
    a = {"cpu": 0, "tsc": 1000, "tsc_end": 5000}
    assert overlap([a, {"cpu": 1, "tsc": 4000, "tsc_end": 9000}]) == (True, 3000, "")
    raced, skew, why = overlap([a, {"cpu": 1, "tsc": 6000, "tsc_end": 9000}])
    assert (raced, skew) == (False, 5000) and "closest releases 5000 cycles apart" in why
    assert overlap([a, {"cpu": 0, "tsc": 2000, "tsc_end": 3000}]) == (False, None, "every racer ran on CPU 0")
    assert overlap([a, {"racer_exit": 0}])[0] is False  # an exit racer makes no timed call


def test_the_summary_reports_raced_rounds_and_the_median_release_skew() -> None:
    from types import SimpleNamespace

    from harness.summary import RACE_PROPERTY, SummaryCollector
    collector = SummaryCollector(SimpleNamespace())
    for i, skews in enumerate(([10, 30], [20])):
        report = SimpleNamespace(nodeid=f"suite/races/test_x.py::t{i}[clone3]", duration=0.1, failed=False,
                                 skipped=False, when="call", longrepr=None,
                                 user_properties=[(RACE_PROPERTY, {"rounds": 3, "raced": len(skews), "skews": skews})])
        collector.pytest_runtest_logreport(report)
    assert collector.races() == {"tests": 2, "rounds": 6, "raced": 3, "median_release_skew_cycles": 20}
