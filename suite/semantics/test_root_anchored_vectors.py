"""Short vectors of the root-anchored calls (clone_with_pids, clone2; seed 001: "->pids[0] corresponding to the
init_pid_ns"): a k-entry vector names levels 0 .. k-1 and the kernel picks the deeper ones, so a caller that
wants to name only its own levels pads every ancestor level with 0 (NOTES.md, "History": a one-entry vector
always names level 0, EPERM for a container root). These are the counterparts of the caller-anchored tests
(test_partial_vectors, test_privilege, test_atomicity, test_depth) that end their vectors at the caller."""

from __future__ import annotations

import errno

import pytest

from harness.oracle.sync import NS_LAST_PID
from harness.programs import chain, write_file_step

from ..spec import ROOT_ANCHORED
from .namespace_limits import assert_refused_newpid_calls_give_their_namespace_back

pytestmark = pytest.mark.profiles(*ROOT_ANCHORED)


def padded(pids: dict[int, int], upto: int) -> list[int]:
    """A vector naming levels 0..upto: the given pid at each level in `pids`, 0 (the kernel picks) elsewhere."""
    return [pids.get(level, 0) for level in range(upto + 1)]


def test_one_entry_names_level_0_and_the_kernel_picks_the_callers_levels(calls):
    spec = chain(3)
    (pid,) = calls.free([0], spec)
    res = calls.spawn([pid], at=3, spec=spec)
    assert res["errno"] == 0, res
    nspid = res["child"]["nspid"]
    assert nspid[0] == pid and len(nspid) == 4 and res["ret"] == nspid[3]


def test_padded_one_entry_names_the_callers_own_level(calls):
    spec = chain(3)
    (pid,) = calls.free([3], spec)
    res = calls.spawn(padded({3: pid}, 3), at=3, spec=spec)
    assert res["errno"] == 0, res
    assert res["child"]["nspid"][3] == pid and res["ret"] == pid


def test_short_vector_sets_the_oldest_levels(calls):
    spec = chain(4)
    pids = calls.free([0, 1, 2], spec)
    res = calls.spawn(pids, at=4, spec=spec)
    assert res["errno"] == 0, res
    assert res["child"]["nspid"][:3] == pids, "a level-4 caller passing 3 pids sets levels 0, 1 and 2"
    assert len(res["child"]["nspid"]) == 5


def test_padded_short_vector_sets_the_youngest_levels(calls):
    spec = chain(4)
    pids = calls.free([2, 3, 4], spec)
    res = calls.spawn([0, 0, *pids], at=4, spec=spec)
    assert res["errno"] == 0, res
    assert res["child"]["nspid"][2:] == pids


def test_levels_left_out_get_the_next_automatic_pid(calls, needs_ns_last_pid):
    """Level 2 is used only by this chain: its next pid is exactly ns_last_pid + 1."""
    spec = chain(2)
    outer, middle, auto = calls.free([0, 1, 2], spec)
    res = calls.spawn([outer, middle], at=2, spec=spec, setup=[write_file_step(NS_LAST_PID, str(auto - 1), at=2)])
    assert res["errno"] == 0, res
    assert res["child"]["nspid"] == [outer, middle, auto]


def test_explicit_pid_does_not_move_the_cursor(calls, needs_ns_last_pid):
    spec = chain(1)
    (pid,) = calls.free([1], spec)
    before = calls.last_pid(spec, 1)
    res = calls.spawn([0, pid], at=1, spec=spec)
    assert res["errno"] == 0, res
    assert res["child"]["nspid"][1] == pid
    assert calls.last_pid(spec, 1) == before, "NOTES.md: an explicitly chosen pid does not move the cursor"


def test_container_root_one_entry_names_level_0_so_is_eperm(calls):
    """NOTES.md: a one-entry vector always names level 0, EPERM for a container root."""
    spec = chain(1, userns_at=[1])
    (pid,) = calls.free([1], spec)
    res = calls.spawn([pid], at=1, spec=spec)
    assert (res["errno"], res["child"]) == (errno.EPERM, None)


def test_container_root_chooses_its_own_level_with_level_0_padded(calls):
    spec = chain(1, userns_at=[1])
    (pid,) = calls.free([1], spec)
    res = calls.spawn([0, pid], at=1, spec=spec)
    assert res["errno"] == 0, res
    assert res["child"]["nspid"][1] == pid


def test_user_namespace_in_the_middle_owns_the_levels_below_it(calls):
    spec = chain(3, userns_at=[2])
    pids = calls.free([1, 2, 3], spec)
    ok = calls.spawn([0, 0, *pids[1:]], at=3, spec=spec)
    assert ok["errno"] == 0, ok
    assert ok["child"]["nspid"][2:] == pids[1:]
    refused = calls.spawn([0, *pids], at=3, spec=spec)
    assert (refused["errno"], refused["child"]) == (errno.EPERM, None), "level 1 belongs to the initial user ns"


def test_foreign_outer_level_frees_the_own_inner_ones(calls):
    spec = chain(1, userns_at=[1])
    outer, inner = calls.free([0, 1], spec)
    first = calls.spawn([outer, inner], at=1, spec=spec)
    assert first["errno"] == errno.EPERM
    again = calls.spawn([0, inner], at=1, spec=spec)
    assert again["errno"] == 0 and again["child"]["nspid"][1] == inner




def test_refused_calls_with_a_new_namespace_free_that_namespace(calls, profile):
    """As test_atomicity's caller-anchored version: level 1's pid 1 is its init, so busy; the vector pads
    level 0 (no privilege is needed for a 0) and names level 1; the new namespace is the kernel's."""
    busy = [0, 1]
    assert_refused_newpid_calls_give_their_namespace_back(calls, profile.busy_errno, busy)


def test_deepest_caller_sets_32_levels_and_the_kernel_picks_the_root(target, calls):
    if target.info.root_level:
        pytest.skip(f"host target: the agent's root is at kernel level {target.info.root_level}")
    depth = target.info.max_depth
    spec = chain(depth)
    pids = calls.free(range(1, depth + 1), spec)
    res = calls.spawn([0, *pids], at=depth, spec=spec)
    assert res["errno"] == 0, res
    nspid = res["child"]["nspid"]
    assert nspid[1:] == pids and res["ret"] == pids[-1] and res["child"]["getpid"] == pids[-1]
