"""eclone's args struct and argument checks (seed 003, NOTES.md "eclone as the seeds define it")."""

from __future__ import annotations

import errno

import pytest

from harness.pidspace import pick_free
from harness.profiles import SpawnRequest
from harness.profiles.eclone import ECLONE_ARGS_SIZE, EcloneProfile
from harness.programs import UNMAPPED, chain, program, write_file_step

pytestmark = pytest.mark.profiles("eclone")


def call(target, step, chain_depth=0, before=()):
    return target.run(program([*before, step], chain(chain_depth)))["steps"][-1]


@pytest.mark.parametrize("size", [0, 48, ECLONE_ARGS_SIZE - 1, ECLONE_ARGS_SIZE + 1, 64, 4096, -1])
def test_args_size_other_than_56_is_einval(target, profile: EcloneProfile, size):
    res = call(target, profile.spawn_step(SpawnRequest(), args_size=size))
    assert (res["ret"], res["errno"], res["child"]) == (-1, errno.EINVAL, None)


@pytest.mark.parametrize("field", ["reserved0", "reserved1", "clone_flags_high"])
def test_nonzero_reserved_or_high_flags_is_einval(target, profile: EcloneProfile, field):
    res = call(target, profile.spawn_step(SpawnRequest(extra={field: 1})))
    assert (res["errno"], res["child"]) == (errno.EINVAL, None)


def test_nonzero_stack_size_is_einval_on_x86(target, profile: EcloneProfile):
    res = call(target, profile.spawn_step(SpawnRequest(extra={"child_stack_size": 4096})))
    assert res["errno"] == errno.EINVAL


def test_zero_nr_pids_is_a_plain_clone_and_ignores_the_pids_pointer(target, profile: EcloneProfile):
    step = profile.spawn_step(SpawnRequest())
    step["regs"][3] = UNMAPPED  # pids: never read when nr_pids is 0
    res = call(target, step)
    assert res["errno"] == 0 and res["ret"] > 0
    assert res["child"]["nspid"] == [res["ret"]]


def test_nr_pids_above_2_to_the_31_is_einval_not_a_negative_count(target, profile: EcloneProfile):
    res = call(target, profile.spawn_step(SpawnRequest(pids=(0,), extra={"nr_pids": 0x80000000})))
    assert (res["errno"], res["child"]) == (errno.EINVAL, None)


def test_unreadable_args_is_efault(target, profile: EcloneProfile):
    step = profile.spawn_step(SpawnRequest())
    step["regs"][1] = UNMAPPED
    res = call(target, step)
    assert (res["errno"], res["child"]) == (errno.EFAULT, None)


def test_unreadable_pids_is_efault(target, profile: EcloneProfile):
    (pid,) = pick_free(target, 1)
    step = profile.spawn_step(SpawnRequest(pids=(pid,)))
    step["regs"][3] = UNMAPPED
    res = call(target, step)
    assert (res["errno"], res["child"]) == (errno.EFAULT, None)


def test_zero_entry_lets_the_kernel_pick_at_that_level(target, profile: EcloneProfile):
    spec = chain(1)
    (inner,) = pick_free(target, [1], spec)
    res = call(target, profile.spawn_step(SpawnRequest(at=1, pids=(0, inner))), chain_depth=1)
    assert res["errno"] == 0, res
    outer_got, inner_got = res["child"]["nspid"]
    assert inner_got == inner and outer_got > 0


def test_pid_below_300_is_einval_once_the_namespace_allocated_past_300(target, profile: EcloneProfile):
    used = pick_free(target, 1)  # a free pid > 300 to push the cursor past RESERVED_PIDS
    push = write_file_step("/proc/sys/kernel/ns_last_pid", str(used[0]))
    res = call(target, profile.spawn_step(SpawnRequest(pids=(150,))), before=[push])
    assert (res["errno"], res["child"]) == (errno.EINVAL, None)


def test_pid_below_300_is_allowed_in_a_namespace_still_below_300(target, profile: EcloneProfile):
    spec = chain(1)
    (outer,) = pick_free(target, [0], spec)
    res = target.run(program([profile.spawn_step(SpawnRequest(at=1, pids=(outer, 150)))], spec, fresh_chain=True))
    step = res["steps"][-1]
    assert step["errno"] == 0, step
    assert step["child"]["nspid"] == [outer, 150]
