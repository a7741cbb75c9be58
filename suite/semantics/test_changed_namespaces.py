"""Callers whose children go to another pid namespace than their own (after unshare(CLONE_NEWPID) or setns): the
vector still starts from the caller's *active* namespace, the deeper level is always the kernel's choice
(NOTES.md eclone, settled details: "Levels deeper than the active one ... after unshare(CLONE_NEWPID)/setns are
always chosen by the kernel"), and a namespace whose init died takes no process (ENOMEM, NOTES.md "Newer
kernels": b26ebfe12f34, also with set_tid/pids)."""

from __future__ import annotations

import errno

import pytest

from harness.programs import chain, occupy_step, release_step, setns_step, unshare_step

from ..spec import spec_of

NAMESPACE_DYING = errno.ENOMEM  # NOTES.md "Newer kernels" (b26ebfe12f34: ENOMEM, not EPERM, also with set_tid)
INSIDE = 2  # a free pid of a namespace whose only process so far was its init


def vector(profile, callers: list[int], inside: int = 1) -> list[int]:
    """The caller's levels as asked; a call whose vector starts in the child's namespace (clone3's set_tid)
    also names the pid there (`inside`)."""
    return [*callers, inside] if spec_of(profile.name).anchor == "child" else list(callers)


def test_after_unshare_the_vector_names_the_callers_levels_and_the_new_one_is_pid_1(calls, profile):
    spec = chain(1)
    pids = calls.free([0, 1], spec)
    res = calls.spawn(vector(profile, pids), at=1, spec=spec, setup=[unshare_step(at=1)])
    assert res["errno"] == 0, res
    assert res["child"]["nspid"] == [*pids, 1], "pids start at the caller's active level, the new level is 1"
    assert res["ret"] == pids[-1], "the return value is the pid in the caller's active namespace"


def test_after_setns_the_vector_names_the_callers_levels(calls, profile):
    spec = chain(1)
    pids = calls.free([0, 1], spec)
    init = calls.step(None, at=1, newpid=True, child="hold", name="init")
    res = calls.spawn(vector(profile, pids, INSIDE), at=1, spec=spec, setup=[init, setns_step("init", at=1)])
    assert res["errno"] == 0, res
    nspid = res["child"]["nspid"]
    assert nspid[:2] == pids and len(nspid) == 3 and nspid[2] > 1, res
    assert res["ret"] == pids[-1]


def test_after_unshare_a_refused_call_leaves_the_new_namespace_its_pid_1(calls, profile, needs_ns_last_pid):
    """A call refused at the caller's level (busy pid) after the kernel had picked the new namespace's first
    pid frees it and resets that namespace's cursor: the next child there is still pid 1 (its init)."""
    spec = chain(1)
    outer, busy = calls.free([0, 1], spec)
    setup = [occupy_step(busy, at=1, name="h"), unshare_step(at=1)]
    res = calls.spawn(vector(profile, [outer, busy]), at=1, spec=spec, setup=setup,
                      after=[calls.step(None, at=1)])
    assert (res["errno"], res["child"]) == (profile.busy_errno, None), res
    after = res["after"][0]
    assert after["errno"] == 0, after
    assert after["child"]["nspid"][-1] == 1, "the first process of the unshared namespace is not its pid 1"


@pytest.mark.parametrize("with_pids", [False, True], ids=["no_pids", "pids"])
def test_no_process_in_an_unshared_namespace_whose_init_exited(calls, profile, with_pids):
    """The first child after unshare is the new namespace's init; once it has exited every call fails with
    ENOMEM, with or without chosen pids, and creates nothing."""
    spec = chain(1)
    pids = calls.free([0, 1], spec)
    init = calls.step(None, at=1)
    res = calls.spawn(vector(profile, pids, INSIDE) if with_pids else None, at=1, spec=spec,
                      setup=[unshare_step(at=1), init])
    assert (res["errno"], res["child"]) == (NAMESPACE_DYING, None), res
    again = calls.spawn(pids, at=1, spec=spec)  # a new program: the level's children are in its own namespace
    assert again["errno"] == 0, f"the refused call kept a pid at the caller's levels: {again}"


def test_no_process_in_a_joined_namespace_whose_init_was_killed(calls, profile):
    spec = chain(1)
    pids = calls.free([0, 1], spec)
    init = calls.step(None, at=1, newpid=True, child="hold", name="init")
    kill = release_step("init", at=1)
    res = calls.spawn(vector(profile, pids, INSIDE), at=1, spec=spec,
                      setup=[init, setns_step("init", at=1), kill])
    assert (res["errno"], res["child"]) == (NAMESPACE_DYING, None), res
