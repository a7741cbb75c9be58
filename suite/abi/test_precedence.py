"""When two checks fail at once, the errno follows the documented order (NOTES.md: eclone steps 1..7 and
"Details ... settled"; clone3: 6.1's copy_clone_args_from_user, clone3_args_valid, then alloc_pid). Each pair is
chosen so that the two checks give different errnos, or so that the later one alone would not fail."""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from harness.profiles import Profile, SpawnRequest
from harness.profiles.base import ARGS_ADDR
from harness.programs import UNMAPPED, chain

from .helpers import CHEAP, CLONE_DETACHED, CLONE_SIGHAND, PAGE_SIZE, check_rejections, spawn, too_many

if TYPE_CHECKING:
    from harness.targets.base import Target

NO_CAPS = chain(1, caps={1: []})  # level 1 without CAP_SYS_ADMIN / CAP_CHECKPOINT_RESTORE
UNKNOWN_FLAG = 1 << 40


@dataclass(frozen=True)
class Case:
    build: Callable[[Profile, Any], dict]  # (profile, target) -> step at level 1
    errno: int
    spec: dict | None = None


def at1(profile: Profile, size: int | None = None, **kw: Any) -> dict:
    kw.setdefault("child", "exit")
    return spawn(profile, SpawnRequest(at=1, **kw), size)


def many(target: Target) -> tuple[int, ...]:
    """Nonzero pids, one more than a level-1 caller may pass."""
    return tuple(range(5001, 5001 + too_many(target, 1)))


def with_reg(step: dict, index: int, value: int) -> dict:
    step["regs"][index] = value
    return step


def with_byte(step: dict, offset: int) -> dict:
    step["write"].append([ARGS_ADDR + offset, "01"])
    return step


ECLONE = {
    "size-before-reading-args": Case(lambda p, t: with_reg(at1(p, size=55), 1, UNMAPPED), errno.EINVAL),
    "reserved-before-reading-pids": Case(
        lambda p, t: with_reg(at1(p, pids=(0,), extra={"reserved0": 1}), 3, UNMAPPED), errno.EINVAL),
    "high-flags-before-reading-pids": Case(
        lambda p, t: with_reg(at1(p, pids=(0,), extra={"clone_flags_high": 1}), 3, UNMAPPED), errno.EINVAL),
    "flags-before-reading-pids": Case(
        lambda p, t: with_reg(at1(p, pids=(0,), flags=CLONE_SIGHAND), 3, UNMAPPED), errno.EINVAL),
    "stack-size-before-reading-pids": Case(
        lambda p, t: with_reg(at1(p, pids=(0,), extra={"child_stack_size": 8}), 3, UNMAPPED), errno.EINVAL),
    "count-before-reading-pids": Case(lambda p, t: with_reg(at1(p, pids=(0,) * too_many(t, 1)), 3, UNMAPPED),
                                      errno.EINVAL),
    "count-before-privilege": Case(lambda p, t: at1(p, pids=many(t)), errno.EINVAL, NO_CAPS),
    "reading-pids-before-privilege": Case(lambda p, t: with_reg(at1(p, pids=(5001,)), 3, UNMAPPED), errno.EFAULT,
                                          NO_CAPS),
    "privilege-before-negative-pid": Case(lambda p, t: at1(p, pids=(-5,)), errno.EPERM, NO_CAPS),
    "privilege-before-pid-max": Case(lambda p, t: at1(p, pids=(t.info.pid_max,)), errno.EPERM, NO_CAPS),
    "privilege-before-busy-pid": Case(lambda p, t: at1(p, pids=(1,)), errno.EPERM, NO_CAPS),
}

CLONE3 = {
    "size-above-page-before-reading-args": Case(lambda p, t: with_reg(at1(p, size=PAGE_SIZE + 1), 0, UNMAPPED),
                                                errno.E2BIG),
    "size-above-page-before-flags": Case(lambda p, t: at1(p, size=PAGE_SIZE + 1, flags=UNKNOWN_FLAG), errno.E2BIG),
    "size-below-ver0-before-reading-args": Case(lambda p, t: with_reg(at1(p, size=63), 0, UNMAPPED), errno.EINVAL),
    "nonzero-tail-before-flags": Case(lambda p, t: with_byte(at1(p, size=128, flags=UNKNOWN_FLAG), 100),
                                      errno.E2BIG),
    "nonzero-tail-before-set-tid-size": Case(
        lambda p, t: with_byte(at1(p, size=128, extra={"set_tid_size": 33}), 100), errno.E2BIG),
    "set-tid-size-before-reading-set-tid": Case(
        lambda p, t: at1(p, pids=tuple(range(2000, 2033)), extra={"set_tid": UNMAPPED}), errno.EINVAL),
    "reading-set-tid-before-flags": Case(
        lambda p, t: at1(p, pids=(5001,), flags=CHEAP | CLONE_DETACHED, extra={"set_tid": UNMAPPED}), errno.EFAULT),
    "flags-before-busy-tid": Case(lambda p, t: at1(p, pids=(1,), flags=CHEAP | CLONE_DETACHED), errno.EINVAL),
    "count-before-privilege": Case(lambda p, t: at1(p, pids=many(t)), errno.EINVAL, NO_CAPS),
    "tid-range-before-privilege": Case(lambda p, t: at1(p, pids=(-5,)), errno.EINVAL, NO_CAPS),
    "privilege-before-busy-tid": Case(lambda p, t: at1(p, pids=(1,)), errno.EPERM, NO_CAPS),
}


@pytest.mark.profiles("eclone")
@pytest.mark.parametrize("case", list(ECLONE.values()), ids=list(ECLONE))
def test_eclone_check_order(target, profile: Profile, case: Case):
    check_rejections(target, [("", case.build(profile, target), case.errno)], spec=case.spec)


@pytest.mark.profiles("clone3")
@pytest.mark.parametrize("case", list(CLONE3.values()), ids=list(CLONE3))
def test_clone3_check_order(target, profile: Profile, case: Case):
    check_rejections(target, [("", case.build(profile, target), case.errno)], spec=case.spec)
