"""Racing against the other ways a pid changes hands: its holder exiting, and an ordinary fork that
takes it by cyclic allocation. Either the call gets the pid or it is busy; never both, never a leak.
"""

from __future__ import annotations

from harness.programs import chain, release_step, syscall_step, write_file_step

from .conftest import CLONE_VM, NS_LAST_PID, PIDS_WITH_NS, chain_namespaces, shared_pids, tasks_with

SYS_CLONE, SIGCHLD = 56, 17
REQUESTERS = 2


def test_pid_freed_while_racers_ask_for_it_goes_to_at_most_one(races, profile):
    """A racer kills and reaps the pid's holder (its own child, forked onto the pid through ns_last_pid
    before the barrier, so the pid is free the moment it is reaped) while others ask for it: each asker
    gets it or is busy, at most one gets it."""
    spec = chain(1)
    (victim,) = races.free([1], spec)
    cursor = races.cursor(spec, 1)
    holder = syscall_step(SYS_CLONE, [CLONE_VM | SIGCHLD, 0, 0, 0, 0], clone=True, child="park", name="victim")
    killer = {"op": "release", "at": 1, "name": "victim",
              "prepare": [write_file_step(NS_LAST_PID, str(victim - 1)), holder]}
    askers = [races.spawn([victim], 1, child="park", flags=CLONE_VM, **{"as": f"a{i}"}) for i in range(REQUESTERS)]
    run = races.run([killer, *askers], spec, check=[PIDS_WITH_NS],
                    after=[*(release_step(f"a{i}", at=1) for i in range(REQUESTERS)),
                           write_file_step(NS_LAST_PID, str(cursor), at=1),  # occupy moved level 1's cursor
                           races.spawn([victim], 1, child="exit", flags=CLONE_VM)])
    got = 0
    for rnd in run.rounds:
        kill, *asked = rnd.racers
        assert kill["prepare"][1]["ret"] == victim, f"round {rnd.index}: pid {victim} was not free at the start"
        assert kill["ok"], f"round {rnd.index}: the holder of {victim} was gone before it was killed"
        assert all(r["errno"] in (0, profile.busy_errno) for r in asked), f"round {rnd.index}: {asked}"
        winners = [r for r in asked if r["errno"] == 0]
        assert len(winners) <= 1 and all(r["ret"] == victim for r in winners), f"round {rnd.index}: {asked}"
        pids = rnd.check[0]
        namespaces = chain_namespaces(pids, run.workers)
        assert len(tasks_with(pids, namespaces, 1, victim)) == len(winners), \
            f"round {rnd.index}: {len(winners)} racers got {victim}, but other tasks have it"
        assert shared_pids(pids, namespaces) == [], f"round {rnd.index}: two live tasks share a pid"
        got += len(winners)
    assert run.after[-1]["errno"] == 0, f"pid {victim} is not free after the race (got it {got} times)"


def test_ordinary_fork_and_a_call_for_the_same_pid_never_share_it(races, profile):
    """Level 1's cursor is set just below the pid before every round, so a plain fork lands on it by
    cyclic allocation while the call asks for it: exactly one task ends up with it, and the call
    either has it or is busy."""
    spec = chain(1)
    (pid,) = races.free([1], spec)
    cursor = races.cursor(spec, 1)
    fork = syscall_step(SYS_CLONE, [CLONE_VM | SIGCHLD, 0, 0, 0, 0], at=1, clone=True, child="park")
    asker = races.spawn([pid], 1, child="park", flags=CLONE_VM)
    run = races.run([asker, fork], spec, setup=[write_file_step(NS_LAST_PID, str(pid - 1), at=1)],
                    check=[PIDS_WITH_NS], after=[write_file_step(NS_LAST_PID, str(cursor), at=1)])
    for rnd in run.rounds:
        call, *forks = rnd.racers
        assert rnd.setup[0]["errno"] == 0
        assert all(f["errno"] == 0 for f in forks), f"round {rnd.index}: the plain fork failed: {forks}"
        assert call["errno"] in (0, profile.busy_errno), f"round {rnd.index}: {call}"
        forked = [f["ret"] for f in forks]
        if call["errno"] == 0:
            assert call["ret"] == pid and pid not in forked, f"round {rnd.index}: call {call}, forks got {forked}"
        else:
            assert pid in forked, f"round {rnd.index}: the call was refused {pid} but the fork got {forked}"
        pids = rnd.check[0]
        namespaces = chain_namespaces(pids, run.workers)
        assert len(tasks_with(pids, namespaces, 1, pid)) == 1, f"round {rnd.index}: pid {pid} is not held once"
        assert shared_pids(pids, namespaces) == [], f"round {rnd.index}: two live tasks share a pid"
