"""Who may choose pids: CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE over the user namespace owning each
target pid namespace (NOTES.md step 6 and its Rule; clone3's checkpoint_restore_ns_capable)."""

from __future__ import annotations

import errno

import pytest

from harness.programs import chain

from ..spec import ANCHORED_AT_THE_CALLERS_SIDE, NOT_INTO_NEW_NAMESPACE, PASS_ZERO_AS_AUTO

CAP_SYS_ADMIN, CAP_CHECKPOINT_RESTORE = 21, 40


def test_without_the_capability_choosing_a_pid_is_eperm(calls):
    spec = chain(1, caps={1: []})
    (pid,) = calls.free([1], spec)
    res = calls.spawn([pid], at=1, spec=spec)
    assert (res["errno"], res["child"]) == (errno.EPERM, None)


@pytest.mark.parametrize("cap", [CAP_SYS_ADMIN, CAP_CHECKPOINT_RESTORE], ids=["sys_admin", "checkpoint_restore"])
def test_either_capability_alone_is_enough(calls, cap):
    spec = chain(1, caps={1: [cap]})
    pids = calls.free([0, 1], spec)
    res = calls.spawn(pids, at=1, spec=spec)
    assert res["errno"] == 0, res
    assert res["child"]["nspid"] == pids


@pytest.mark.profiles(*ANCHORED_AT_THE_CALLERS_SIDE)  # short vectors end at the caller's level
def test_root_of_a_user_namespace_chooses_pids_in_its_own_pid_namespace(calls):
    spec = chain(1, userns_at=[1])
    (pid,) = calls.free([1], spec)
    res = calls.spawn([pid], at=1, spec=spec)
    assert res["errno"] == 0, res
    assert res["child"]["nspid"][1] == pid


def test_root_of_a_user_namespace_cannot_reach_an_ancestor_level_it_does_not_own(calls):
    spec = chain(1, userns_at=[1])
    pids = calls.free([0, 1], spec)
    res = calls.spawn(pids, at=1, spec=spec)
    assert (res["errno"], res["child"]) == (errno.EPERM, None)


@pytest.mark.profiles(*NOT_INTO_NEW_NAMESPACE)
def test_eclone_new_namespace_does_not_extend_privilege_to_ancestor_levels(calls):
    """With CLONE_NEWPID the vector still names the caller's levels (step 9): the privilege walk starts at
    the caller's namespace, not at the new one, so level 0 (not owned) stays out of reach."""
    spec = chain(1, userns_at=[1])
    pids = calls.free([0, 1], spec)
    res = calls.spawn(pids, at=1, spec=spec, newpid=True)
    assert (res["errno"], res["child"]) == (errno.EPERM, None)


@pytest.mark.profiles(*ANCHORED_AT_THE_CALLERS_SIDE)  # short vectors end at the caller's level
def test_user_namespace_in_the_middle_owns_the_levels_below_it(calls):
    spec = chain(3, userns_at=[2])
    pids = calls.free([1, 2, 3], spec)
    ok = calls.spawn(pids[1:], at=3, spec=spec)
    assert ok["errno"] == 0, ok
    assert ok["child"]["nspid"][2:] == pids[1:]
    refused = calls.spawn(pids, at=3, spec=spec)
    assert (refused["errno"], refused["child"]) == (errno.EPERM, None), "level 1 belongs to the initial user ns"


def test_capabilities_dropped_inside_a_user_namespace_are_missing_there_too(calls):
    spec = chain(1, userns_at=[1], caps={1: []})
    (pid,) = calls.free([1], spec)
    res = calls.spawn([pid], at=1, spec=spec)
    assert (res["errno"], res["child"]) == (errno.EPERM, None)


def test_no_vector_needs_no_privilege(calls):
    res = calls.spawn(None, at=1, spec=chain(1, caps={1: []}))
    assert res["errno"] == 0 and res["child"]["nspid"][1] == res["ret"]


@pytest.mark.profiles(*PASS_ZERO_AS_AUTO)
def test_eclone_zero_entries_need_no_privilege(calls):
    res = calls.spawn([0, 0], at=1, spec=chain(1, caps={1: []}))
    assert res["errno"] == 0, res


@pytest.mark.profiles(*PASS_ZERO_AS_AUTO)
def test_eclone_zero_for_a_foreign_level_with_own_levels_explicit(calls):
    spec = chain(1, userns_at=[1])
    (pid,) = calls.free([1], spec)
    res = calls.spawn([0, pid], at=1, spec=spec)
    assert res["errno"] == 0, res
    assert res["child"]["nspid"][1] == pid
