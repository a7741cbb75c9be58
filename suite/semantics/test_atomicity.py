"""A refused call creates no child and leaves no pid allocated at any level (NOTES.md step 10);
proved by asking for the same pids again, and by the chain's tasks before and after."""

from __future__ import annotations

import errno

import pytest

from harness.oracle.sync import NS_LAST_PID
from harness.programs import chain, occupy_step, release_step, write_file_step

from ..spec import ANCHORED_AT_THE_CALLERS_SIDE, PASS_ZERO_AS_AUTO
from .namespace_limits import assert_refused_newpid_calls_give_their_namespace_back


@pytest.mark.parametrize("busy_level", [0, 1])
def test_refused_vector_frees_the_inner_levels_it_had_allocated(calls, profile, needs_ns_last_pid, busy_level):
    spec = chain(2)
    pids = calls.free(3, spec)
    res = calls.spawn(pids, at=2, spec=spec, setup=[occupy_step(pids[busy_level], at=busy_level, name="h")],
                      after=[release_step("h", at=busy_level), calls.step(pids, at=2)])
    assert res["errno"] == profile.busy_errno, res
    again = res["after"][-1]
    assert again["errno"] == 0, "a pid of the refused call stayed allocated"
    assert again["child"]["nspid"] == pids


def test_out_of_range_outer_pid_frees_the_inner_ones(calls):
    spec = chain(2)
    inner = calls.free([1, 2], spec)
    pid_max = calls.state(spec).levels[0].pid_max
    first = calls.spawn([pid_max, *inner], at=2, spec=spec)
    assert first["errno"] == errno.EINVAL
    (outer,) = calls.free([0], spec)
    again = calls.spawn([outer, *inner], at=2, spec=spec)
    assert again["errno"] == 0, "an inner pid stayed allocated after EINVAL at level 0"
    assert again["child"]["nspid"] == [outer, *inner]


@pytest.mark.profiles(*ANCHORED_AT_THE_CALLERS_SIDE)  # short vectors end at the caller's level
def test_foreign_outer_level_frees_the_own_inner_ones(calls, profile):
    """clone3 allocates the caller's own level, then finds no privilege over level 0: EPERM, nothing kept."""
    spec = chain(1, userns_at=[1])
    outer, inner = calls.free([0, 1], spec)
    first = calls.spawn([outer, inner], at=1, spec=spec)
    assert first["errno"] == errno.EPERM
    again = calls.spawn([inner], at=1, spec=spec)
    assert again["errno"] == 0 and again["child"]["nspid"][1] == inner


@pytest.mark.profiles(*PASS_ZERO_AS_AUTO)
def test_kernel_picked_inner_pid_is_freed_when_an_outer_level_fails(calls, needs_ns_last_pid):
    spec = chain(1)
    auto, busy = calls.free([1, 0], spec)
    res = calls.spawn([busy, 0], at=1, spec=spec,
                      setup=[occupy_step(busy, at=0), write_file_step(NS_LAST_PID, str(auto - 1), at=1)],
                      after=[calls.step([0, auto], at=1)])
    assert res["errno"] == errno.EBUSY, res
    again = res["after"][-1]
    assert again["errno"] == 0, f"pid {auto} picked at level 1 by the refused call was not freed"
    assert again["child"]["nspid"][1] == auto


def test_refused_call_leaves_the_chains_tasks_unchanged(calls, profile, needs_ns_last_pid):
    """Read inside the same program, right before and right after the call."""
    spec = chain(2)
    pids = calls.free(3, spec)
    run = calls.model(spec).run([calls.step(pids, at=2)], setup=[occupy_step(pids[0], at=0)])
    assert run.results[0]["errno"] == profile.busy_errno and run.results[0]["child"] is None
    before, after = run.before.state.levels, run.after.state.levels
    assert [lv.used for lv in after[1:]] == [lv.used for lv in before[1:]], "a task appeared in the chain"
    assert run.after.tasks == run.before.tasks
    assert all(p not in lv.used for p, lv in zip(pids[1:], after[1:], strict=True))





@pytest.mark.profiles(*ANCHORED_AT_THE_CALLERS_SIDE)  # short vectors end at the caller's level
def test_refused_calls_with_a_new_namespace_free_that_namespace(calls, profile):
    """A refused CLONE_NEWPID call drops the pid namespace it made (NOTES.md step 10: nothing of a refused
    call survives). A leaked reference is invisible to the call itself, but the user namespace's
    max_pid_namespaces count is never given back: with one namespace left under the limit, every
    refusal after the first would fail with ENOSPC, and so would a plain CLONE_NEWPID after them."""
    # level 1's pid 1 is its init, so busy; a profile that names the new namespace's pid asks for 1 there
    busy = [1, 1] if profile.needs_init_pid_first else [1]
    assert_refused_newpid_calls_give_their_namespace_back(calls, profile.busy_errno, busy)
