"""A vector shorter than the caller's depth applies from the youngest level outwards; the kernel
picks the rest (NOTES.md eclone step 8; clone3's set_tid_size < level + 1). eclone's 0 = "kernel picks"."""

from __future__ import annotations

import errno

import pytest

from harness.oracle.sync import NS_LAST_PID
from harness.programs import chain, write_file_step

from ..spec import ANCHORED_AT_THE_CALLERS_SIDE, PASS_ZERO_AS_AUTO


@pytest.mark.profiles(*ANCHORED_AT_THE_CALLERS_SIDE)  # short vectors end at the caller's level
def test_one_entry_names_the_callers_own_level(calls):
    spec = chain(3)
    (pid,) = calls.free([3], spec)
    res = calls.spawn([pid], at=3, spec=spec)
    assert res["errno"] == 0, res
    assert res["child"]["nspid"][3] == pid and res["ret"] == pid
    assert len(res["child"]["nspid"]) == 4


@pytest.mark.profiles(*ANCHORED_AT_THE_CALLERS_SIDE)  # short vectors end at the caller's level
def test_short_vector_sets_the_youngest_levels(calls):
    spec = chain(4)
    pids = calls.free([2, 3, 4], spec)
    res = calls.spawn(pids, at=4, spec=spec)
    assert res["errno"] == 0, res
    assert res["child"]["nspid"][2:] == pids, "a level-4 caller passing 3 pids sets levels 2, 3 and 4"


@pytest.mark.profiles(*ANCHORED_AT_THE_CALLERS_SIDE)  # short vectors end at the caller's level
def test_levels_left_out_get_the_next_automatic_pid(calls, needs_ns_last_pid):
    """Level 1 is used only by this chain: its next pid is exactly ns_last_pid + 1."""
    spec = chain(2)
    outer, inner = calls.free([1, 2], spec)
    res = calls.spawn([inner], at=2, spec=spec, setup=[write_file_step(NS_LAST_PID, str(outer - 1), at=1)])
    assert res["errno"] == 0, res
    assert res["child"]["nspid"][1:] == [outer, inner]
    assert res["child"]["nspid"][0] not in calls.in_use(spec)[0]


@pytest.mark.profiles(*PASS_ZERO_AS_AUTO)
def test_zero_lets_the_kernel_pick_at_that_level_only(calls, needs_ns_last_pid):
    spec = chain(2)
    outer, auto, inner = calls.free([0, 1, 2], spec)
    res = calls.spawn([outer, 0, inner], at=2, spec=spec, setup=[write_file_step(NS_LAST_PID, str(auto - 1), at=1)])
    assert res["errno"] == 0, res
    assert res["child"]["nspid"] == [outer, auto, inner]


@pytest.mark.profiles(*PASS_ZERO_AS_AUTO)
def test_all_zero_vector_is_a_call_where_the_kernel_picks_every_level(calls):
    spec = chain(2)
    res = calls.spawn([0, 0, 0], at=2, spec=spec)
    assert res["errno"] == 0, res
    assert len(res["child"]["nspid"]) == 3 and res["ret"] == res["child"]["nspid"][2]


@pytest.mark.profiles("clone3")
def test_clone3_zero_entry_is_einval_at_any_level(calls):
    spec = chain(1)
    (outer,) = calls.free([0], spec)
    res = calls.spawn([outer, 0], at=1, spec=spec)
    assert (res["errno"], res["child"]) == (errno.EINVAL, None)


@pytest.mark.profiles(*ANCHORED_AT_THE_CALLERS_SIDE)  # short vectors end at the caller's level
def test_explicit_pid_does_not_move_the_cursor(calls, needs_ns_last_pid):
    spec = chain(1)
    (pid,) = calls.free([1], spec)
    before = calls.last_pid(spec, 1)
    res = calls.spawn([pid], at=1, spec=spec)
    assert res["errno"] == 0, res
    assert calls.last_pid(spec, 1) == before, "NOTES.md: an explicitly chosen pid does not move the cursor"


def test_explicit_pids_at_every_level_do_not_move_the_cursor(calls, needs_ns_last_pid):
    """NOTES.md: an explicitly chosen pid does not move the cursor. A full vector names every level whatever
    the profile's anchoring, so this holds for the root-anchored calls too; level 1 is the chain's own."""
    spec = chain(1)
    pids = calls.free([0, 1], spec)
    before = calls.last_pid(spec, 1)
    res = calls.spawn(pids, at=1, spec=spec)
    assert res["errno"] == 0, res
    assert calls.last_pid(spec, 1) == before, "NOTES.md: an explicitly chosen pid does not move the cursor"
