"""Does the child get exactly the pids asked for, in each namespace? (NSpid, return value, getpid)"""

from __future__ import annotations

import pytest

from harness.profiles import SpawnRequest
from harness.programs import chain, program

CLONE_VM, CLONE_SIGHAND, CLONE_THREAD = 0x100, 0x800, 0x10000


def test_explicit_pid_in_root_namespace_is_given_to_child(calls):
    (pid,) = calls.free(1)
    res = calls.spawn([pid])
    assert (res["errno"], res["ret"]) == (0, pid)
    assert res["child"]["nspid"] == [pid]
    assert res["child"]["getpid"] == pid


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_full_vector_sets_every_level_outermost_first(calls, depth):
    spec = chain(depth)
    pids = calls.free(depth + 1, spec)
    res = calls.spawn(pids, at=depth)
    assert res["errno"] == 0, res
    assert res["child"]["nspid"] == pids, "pids[0] is the outermost level, the last one the caller's"
    assert res["ret"] == pids[-1], "the return value is the pid in the caller's namespace"
    assert res["child"]["getpid"] == pids[-1]


def test_caller_in_the_middle_of_a_chain_sets_its_level_and_the_ones_above(calls):
    spec = chain(3)
    pids = calls.free(3, spec)
    res = calls.spawn(pids, at=2, spec=spec)
    assert res["errno"] == 0, res
    assert res["child"]["nspid"] == pids and res["ret"] == pids[-1]


def test_same_pid_at_every_level_is_allowed(calls):
    spec = chain(3)
    state = calls.state(spec)
    pid_max = state.levels[0].pid_max
    pid = next(p for p in range(pid_max // 2, pid_max) if all(lv.is_free(p) for lv in state.levels))
    res = calls.spawn([pid] * 4, at=3, spec=spec)
    assert res["errno"] == 0, res
    assert res["child"]["nspid"] == [pid] * 4


def test_reported_child_frees_its_pids_on_exit(calls):
    spec = chain(2)
    pids = calls.free(3, spec)
    first = calls.spawn(pids, at=2, spec=spec)
    again = calls.spawn(pids, at=2, spec=spec)
    assert first["errno"] == 0 and again["errno"] == 0, (first, again)
    assert again["child"]["nspid"] == pids


def test_new_thread_gets_the_chosen_pid(calls, profile):
    """NOTES.md: CLONE_THREAD with pids is allowed; the pids then name the new thread."""
    spec = chain(1)
    pids = calls.free([0, 1], spec)
    step = profile.spawn_step(SpawnRequest(at=1, pids=tuple(pids), flags=CLONE_THREAD | CLONE_SIGHAND | CLONE_VM,
                                           exit_signal=0, child="exit"))
    res = calls.target.run(program([step], spec))["steps"][0]
    assert (res["errno"], res["ret"]) == (0, pids[-1]), res
