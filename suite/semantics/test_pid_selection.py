"""Does the child get exactly the pids asked for, in each namespace, and no pid when refused?"""

from __future__ import annotations

import errno

from harness.pidspace import pick_free
from harness.profiles import SpawnRequest
from harness.programs import chain, occupy_step, program


def spawn(target, profile, pids, at=0, depth=None, extra_steps=()):
    """Run one spawn (after `extra_steps`) in a chain of `depth` levels; return the spawn's result."""
    spec = chain(at if depth is None else depth)
    steps = [*extra_steps, profile.spawn_step(SpawnRequest(at=at, pids=tuple(pids)))]
    return target.run(program(steps, spec))["steps"][-1]


def test_explicit_pid_in_root_namespace_is_given_to_child(target, profile):
    (pid,) = pick_free(target, 1)
    res = spawn(target, profile, [pid])
    assert (res["errno"], res["ret"]) == (0, pid)
    assert res["child"]["nspid"] == [pid]
    assert res["child"]["getpid"] == pid


def test_full_vector_sets_every_level_outermost_first(target, profile):
    spec = chain(2)
    pids = pick_free(target, 3, spec)
    res = spawn(target, profile, pids, at=2)
    assert res["errno"] == 0, res
    assert res["child"]["nspid"] == pids
    assert res["ret"] == pids[2], "the return value is the pid in the caller's namespace"
    assert res["child"]["getpid"] == pids[2]


def test_busy_pid_is_refused_with_the_profiles_errno(target, profile):
    (pid,) = pick_free(target, 1)
    res = spawn(target, profile, [pid], extra_steps=[occupy_step(pid)])
    assert res["errno"] == profile.busy_errno
    assert res["ret"] == -1 and res["child"] is None


def test_vector_longer_than_depth_plus_one_is_einval(target, profile):
    pids = pick_free(target, 3, chain(1))
    res = spawn(target, profile, pids, at=1)
    assert res["errno"] == errno.EINVAL
    assert res["child"] is None


def test_pid_at_pid_max_is_einval(target, profile):
    res = spawn(target, profile, [target.info.pid_max])
    assert res["errno"] == errno.EINVAL


def test_refused_vector_leaves_inner_pid_free(target, profile):
    """Busy at level 0 -> the level-1 pid allocated first must be freed again (atomic vector)."""
    spec = chain(1)
    outer, inner, outer2 = pick_free(target, [0, 1, 0], spec)
    occupy = occupy_step(outer)
    first = spawn(target, profile, [outer, inner], at=1, extra_steps=[occupy])
    assert first["errno"] == profile.busy_errno
    again = spawn(target, profile, [outer2, inner], at=1)
    assert again["errno"] == 0, "the inner pid stayed allocated after a refused call"
    assert again["child"]["nspid"] == [outer2, inner]
