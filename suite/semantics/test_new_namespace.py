"""The first process of a new pid namespace is its pid 1: clone3 must ask for 1 (set_tid[0]); eclone
gives 1 automatically and its vector starts at the caller's level (NOTES.md step 9)."""

from __future__ import annotations

import errno

import pytest

from harness.programs import chain

from ..spec import NOT_INTO_NEW_NAMESPACE


@pytest.mark.profiles("clone3")
def test_clone3_new_namespace_with_pid_1_first(calls):
    spec = chain(1)
    outer, mid = calls.free([0, 1], spec)
    res = calls.spawn([outer, mid, 1], at=1, spec=spec, newpid=True)
    assert res["errno"] == 0, res
    assert res["child"]["nspid"] == [outer, mid, 1]
    assert res["ret"] == mid, "the return value is the pid in the caller's namespace"
    assert res["child"]["getpid"] == 1


@pytest.mark.profiles("clone3")
@pytest.mark.parametrize("first", [2, 300])
def test_clone3_new_namespace_first_pid_other_than_1_is_einval(calls, first):
    spec = chain(1)
    outer, mid = calls.free([0, 1], spec)
    res = calls.spawn([outer, mid, first], at=1, spec=spec, newpid=True)
    assert (res["errno"], res["child"]) == (errno.EINVAL, None)


@pytest.mark.profiles("clone3")
def test_clone3_one_entry_with_a_new_namespace_names_the_new_namespace(calls):
    res = calls.spawn([1], at=1, newpid=True)
    assert res["errno"] == 0, res
    assert len(res["child"]["nspid"]) == 3 and res["child"]["nspid"][-1] == 1


@pytest.mark.profiles(*NOT_INTO_NEW_NAMESPACE)
def test_eclone_new_namespace_child_gets_pid_1_automatically(calls):
    spec = chain(1)
    pids = calls.free([0, 1], spec)
    res = calls.spawn(pids, at=1, spec=spec, newpid=True)
    assert res["errno"] == 0, res
    assert res["child"]["nspid"] == [*pids, 1], "pids cover the caller's namespace and its ancestors"
    assert res["ret"] == pids[-1] and res["child"]["getpid"] == 1


@pytest.mark.profiles(*NOT_INTO_NEW_NAMESPACE)
def test_eclone_cannot_name_the_new_namespace(calls):
    spec = chain(1)
    pids = calls.free([0, 1], spec)
    res = calls.spawn([*pids, 1], at=1, spec=spec, newpid=True)
    assert (res["errno"], res["child"]) == (errno.EINVAL, None), "3 pids for a level-1 caller"


def test_new_namespace_without_a_vector_starts_at_pid_1(calls):
    res = calls.spawn(None, at=2, newpid=True)
    assert res["errno"] == 0, res
    assert len(res["child"]["nspid"]) == 4 and res["child"]["getpid"] == 1


def test_new_namespace_needs_cap_sys_admin_even_with_checkpoint_restore(calls):
    spec = chain(1, caps={1: [40]})
    res = calls.spawn(None, at=1, spec=spec, newpid=True)
    assert (res["errno"], res["child"]) == (errno.EPERM, None)
