"""clone3's size and set_tid argument rules (Linux 6.1 kernel/fork.c), as NOTES.md lists them."""

from __future__ import annotations

import errno

import pytest

from harness.pidspace import pick_free
from harness.profiles import SpawnRequest
from harness.profiles.base import ARGS_ADDR
from harness.profiles.clone3 import CLONE_ARGS_SIZE_VER2, Clone3Profile
from harness.programs import program

pytestmark = pytest.mark.profiles("clone3")
PAGE_SIZE = 4096


def call(target, step):
    return target.run(program([step]))["steps"][-1]


@pytest.mark.parametrize("size", [0, 8, 63])
def test_size_below_ver0_is_einval(target, profile: Clone3Profile, size):
    res = call(target, profile.spawn_step(SpawnRequest(), size=size))
    assert (res["errno"], res["child"]) == (errno.EINVAL, None)


@pytest.mark.parametrize("size", [64, 80, 88, 96, PAGE_SIZE])
def test_known_sizes_and_zero_tails_are_accepted(target, profile: Clone3Profile, size):
    res = call(target, profile.spawn_step(SpawnRequest(), size=size))
    assert res["errno"] == 0 and res["child"]["nspid"] == [res["ret"]]


@pytest.mark.parametrize("offset", [CLONE_ARGS_SIZE_VER2, 95, PAGE_SIZE - 1])
def test_nonzero_byte_past_the_known_struct_is_e2big(target, profile: Clone3Profile, offset):
    step = profile.spawn_step(SpawnRequest(), size=PAGE_SIZE)
    step["write"].append([ARGS_ADDR + offset, "01"])
    res = call(target, step)
    assert (res["errno"], res["child"]) == (errno.E2BIG, None)


def test_size_above_page_size_is_e2big(target, profile: Clone3Profile):
    res = call(target, profile.spawn_step(SpawnRequest(), size=PAGE_SIZE + 1))
    assert res["errno"] == errno.E2BIG


def test_set_tid_size_above_max_pid_ns_level_is_einval(target, profile: Clone3Profile):
    res = call(target, profile.spawn_step(SpawnRequest(pids=tuple(range(1000, 1033)))))
    assert (res["errno"], res["child"]) == (errno.EINVAL, None)


def test_set_tid_null_with_nonzero_size_is_einval(target, profile: Clone3Profile):
    (pid,) = pick_free(target, 1)
    res = call(target, profile.spawn_step(SpawnRequest(pids=(pid,), extra={"set_tid": 0})))
    assert res["errno"] == errno.EINVAL


def test_set_tid_entry_zero_is_einval(target, profile: Clone3Profile):
    res = call(target, profile.spawn_step(SpawnRequest(pids=(0,))))
    assert res["errno"] == errno.EINVAL
