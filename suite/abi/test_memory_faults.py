"""Unreadable args or pid vector: NULL, unmapped, kernel, non-canonical, or straddling into the guard page
(ARENA + 0x10000, PROT_NONE) -> EFAULT, and nothing is created: no child, no pid allocated at the caller's
level (its ns_last_pid stays put), and the explicit pids asked for are still free afterwards."""

from __future__ import annotations

import copy
import errno
from dataclasses import replace

import pytest

from harness.profiles import Profile, SpawnRequest
from harness.profiles.base import ARGS_ADDR
from harness.programs import UNMAPPED, chain

from .helpers import (
    ARGS_REG,
    GUARD,
    KERNEL_ADDR,
    KNOWN_SIZE,
    NON_CANONICAL,
    PAGE_SIZE,
    cheap,
    deviations,
    free_pids,
    run_checked,
    spawn,
    sweep,
)

BAD_POINTERS = [0, UNMAPPED, KERNEL_ADDR, NON_CANONICAL, GUARD]
SET_TID_FIELD = ARGS_ADDR + 64


def args_at(step: dict, profile: Profile, addr: int) -> dict:
    """The same call with its struct written at `addr` (and the pointer register pointing there)."""
    moved = copy.deepcopy(step)
    moved["write"][0][0] = addr
    moved["regs"][ARGS_REG[profile.name]] = addr
    return moved


def straddles(size: int) -> range:
    """Struct addresses that put 1 .. size-1 of its bytes into the guard page."""
    return range(GUARD - size + 1, GUARD)


def test_unreadable_args_is_efault_and_creates_nothing(target, profile: Profile):
    size = KNOWN_SIZE[profile.name]
    base = cheap(profile, at=1)
    pointers = [*BAD_POINTERS, *straddles(size)]
    control = args_at(base, profile, GUARD - size)  # the same struct, its last byte just below the guard
    (res,), ev, (ctl,) = run_checked(target, [sweep(base, {"reg": ARGS_REG[profile.name]}, pointers)],
                                     after=[control])
    report = deviations(pointers, res["results"], lambda p: errno.EFAULT, fmt=hex)
    assert not report, report
    ev.assert_nothing_created()
    assert (ctl["errno"], ctl["child_exit"]) == (0, 0), f"a struct ending at the guard page must be readable: {ctl}"


@pytest.mark.profiles("clone3")
def test_page_sized_struct_whose_tail_reaches_the_guard_is_efault(target, profile: Profile):
    """The zero check of the tail past 88 bytes reads user memory too."""
    base = cheap(profile, size=PAGE_SIZE, at=1)
    pointers = [GUARD - PAGE_SIZE + k for k in (1, 8, 87, 88, 89, 1024, 4000, 4095)]
    control = args_at(base, profile, GUARD - PAGE_SIZE)
    (res,), ev, (ctl,) = run_checked(target, [sweep(base, {"reg": ARGS_REG[profile.name]}, pointers)],
                                     after=[control])
    report = deviations(pointers, res["results"], lambda p: errno.EFAULT, fmt=lambda p: f"GUARD-{GUARD - p}")
    assert not report, report
    ev.assert_nothing_created()
    assert (ctl["errno"], ctl["child_exit"]) == (0, 0), ctl


def vector_at(profile: Profile, req: SpawnRequest, addr: int) -> dict:
    """A spawn whose pid vector (eclone pids / clone3 set_tid) is written at `addr` and pointed to there."""
    if profile.name == "clone3":
        req = replace(req, extra={**req.extra, "set_tid": addr})
    step = spawn(profile, req)
    step["write"][1][0] = addr
    if profile.name == "eclone":
        step["regs"][3] = addr
    return step


def test_unreadable_pid_vector_is_efault_and_creates_nothing(target, profile: Profile):
    """Two pids at level 1, the vector's pointer bad or straddling the guard; then the same two pids,
    readable, are still free."""
    spec = chain(1)
    outer, inner = free_pids(target, 2, spec)
    req = SpawnRequest(at=1, pids=(outer, inner), child="exit")
    control = vector_at(profile, req, GUARD - 8)
    vary = {"reg": 3} if profile.name == "eclone" else {"word_at": SET_TID_FIELD, "size": 8}
    pointers = [p for p in BAD_POINTERS if p or profile.name == "eclone"] + list(straddles(8))
    (res,), ev, (ctl,) = run_checked(target, [sweep(control, vary, pointers)], spec=spec, after=[control])
    report = deviations(pointers, res["results"], lambda p: errno.EFAULT, fmt=hex)
    assert not report, report
    ev.assert_nothing_created()
    assert (ctl["errno"], ctl["child_exit"]) == (0, 0), f"the pids were not free again: {ctl}"
    assert ctl["ret"] == inner
