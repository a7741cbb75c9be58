"""Vector length against nesting depth: at most (the caller's kernel level) + 1 entries; clone3 also
stops at MAX_PID_NS_LEVEL (32) entries, so a caller at level 32 may pass 33 pids to eclone only."""

from __future__ import annotations

import errno

import pytest

from harness.programs import chain

from ..spec import ANCHORED_AT_THE_CALLERS_SIDE, NOT_INTO_NEW_NAMESPACE

MAX_PID_NS_LEVEL = 32


def deepest(target):
    """A chain whose deepest worker sits at kernel level 32 (depth 32 in a guest, less on the host)."""
    return chain(target.info.max_depth)


@pytest.mark.parametrize("at", [0, 1, 3])
def test_vector_longer_than_kernel_level_plus_one_is_einval(target, calls, at):
    spec = chain(at)
    n = target.info.root_level + at + 2
    pids = calls.free(n, spec)
    res = calls.spawn(pids, at=at, spec=spec)
    assert (res["errno"], res["child"]) == (errno.EINVAL, None)


@pytest.mark.profiles(*ANCHORED_AT_THE_CALLERS_SIDE)  # short vectors end at the caller's level
def test_deepest_caller_sets_32_levels_and_the_kernel_picks_the_root(target, calls):
    spec = deepest(target)
    depth = target.info.max_depth
    pids = calls.free(range(depth - 31, depth + 1), spec)
    assert len(pids) == MAX_PID_NS_LEVEL
    res = calls.spawn(pids, at=depth, spec=spec)
    assert res["errno"] == 0, res
    nspid = res["child"]["nspid"]
    assert nspid[-32:] == pids and res["ret"] == pids[-1] and res["child"]["getpid"] == pids[-1]


@pytest.mark.profiles("clone3")
def test_clone3_33_entries_are_einval_even_at_level_32(target, calls):
    spec = deepest(target)
    res = calls.spawn([1000 + i for i in range(33)], at=target.info.max_depth, spec=spec)
    assert (res["errno"], res["child"]) == (errno.EINVAL, None)


def _guest_only(target):
    if target.info.root_level:
        pytest.skip(f"host target: the agent's root is at kernel level {target.info.root_level}, "
                    f"so no level-32 caller sees 33 levels")


@pytest.mark.profiles(*NOT_INTO_NEW_NAMESPACE)
def test_eclone_caller_at_level_32_may_pass_33_pids(target, calls):
    _guest_only(target)
    spec = chain(MAX_PID_NS_LEVEL)
    pids = calls.free(MAX_PID_NS_LEVEL + 1, spec)
    res = calls.spawn(pids, at=MAX_PID_NS_LEVEL, spec=spec)
    assert res["errno"] == 0, res
    assert res["child"]["nspid"] == pids


@pytest.mark.profiles(*NOT_INTO_NEW_NAMESPACE)
def test_eclone_34_pids_at_level_32_are_einval(target, calls):
    _guest_only(target)
    res = calls.spawn([1000 + i for i in range(34)], at=MAX_PID_NS_LEVEL, spec=chain(MAX_PID_NS_LEVEL))
    assert (res["errno"], res["child"]) == (errno.EINVAL, None)


def test_no_namespace_below_level_32(target, calls):
    """The depth bound itself: a level-32 caller cannot create a 33rd nested pid namespace."""
    res = calls.spawn(None, at=target.info.max_depth, spec=deepest(target), newpid=True)
    assert (res["errno"], res["child"]) == (errno.ENOSPC, None)
