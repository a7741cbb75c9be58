"""Racers that ask for the same free pid at the same moment: one gets it, the others are told it is busy.

This answers the seed reviewer's question ("are all pids checked for availability before cloning? If
so, is there a race?") on any kernel, every run: NOTES.md eclone rule 10 says each level's check is
its allocation, so no call can pass a check that a concurrent call invalidates.
"""

from __future__ import annotations

import pytest

from harness.programs import chain

from .conftest import CLONE_VM, PIDS_WITH_NS, chain_namespaces, shared_pids, tasks_with

RACERS = 3


@pytest.mark.parametrize(("at", "child", "flags"), [(0, "park", 0), (2, "park", CLONE_VM)],
                         ids=["root-fork", "nested-vm"])
def test_one_racer_gets_a_free_pid_and_the_others_are_busy(races, profile, at, child, flags):
    """Children stay alive until the round's check, so a second winner cannot hide; at the root the racers
    fork (the restore path), nested they share memory with the child (the fastest path to alloc_pid)."""
    spec = chain(at)
    vector = races.free(at + 1, spec)
    run = races.run([races.spawn(vector, at, child=child, flags=flags)] * RACERS, spec, check=[PIDS_WITH_NS])
    for rnd in run.rounds:
        winners = [r for r in rnd.racers if r["errno"] == 0]
        assert len(winners) == 1, f"round {rnd.index}: {len(winners)} racers got {vector}: {rnd.racers}"
        losers = [r for r in rnd.racers if r is not winners[0]]
        refused = [(profile.busy_errno, -1)] * (RACERS - 1)
        assert [(r["errno"], r["ret"]) for r in losers] == refused, \
            f"round {rnd.index}: a loser was not refused with {profile.busy_errno}: {losers}"
        pids = rnd.check[0]
        namespaces = chain_namespaces(pids, run.workers)
        assert tasks_with(pids, namespaces, at, winners[0]["ret"]) == [vector], \
            f"round {rnd.index}: the winner's child does not have exactly {vector}"
        for level, pid in enumerate(vector):
            assert len(tasks_with(pids, namespaces, level, pid)) == 1, \
                f"round {rnd.index}: pid {pid} at level {level} is not held by exactly the winner's child"
        assert shared_pids(pids, namespaces) == [], f"round {rnd.index}: two live tasks share a pid"


def test_racers_never_get_a_pid_they_did_not_ask_for(races, profile):
    """The cheapest clone (CLONE_VM, a child that exits at once) brings the racers' allocations closest
    together: a kernel that checks a pid outside the lock that allocates it hands one racer the next
    free pid here. Children exit at once, so a later racer may legitimately get the pid again."""
    spec = chain(1)
    vector = races.free(2, spec)
    run = races.run([races.spawn(vector, 1, child="exit", flags=CLONE_VM)] * 2, spec)
    for rnd in run.rounds:
        for r in rnd.racers:
            assert r["errno"] in (0, profile.busy_errno), f"round {rnd.index}: {r}"
            if r["errno"] == 0:
                assert r["ret"] == vector[-1], \
                    f"round {rnd.index}: asked for {vector}, got pid {r['ret']} at level 1: {rnd.racers}"
                assert r["child_exit"] == 0, f"round {rnd.index}: {r}"
