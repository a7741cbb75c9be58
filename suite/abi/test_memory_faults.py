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

from ..spec import WITH_STRUCT, spec_of
from .helpers import (
    GUARD,
    KERNEL_ADDR,
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
    moved["regs"][spec_of(profile.name).args_reg] = addr
    return moved


def straddles(size: int) -> range:
    """Struct addresses that put 1 .. size-1 of its bytes into the guard page."""
    return range(GUARD - size + 1, GUARD)


@pytest.mark.profiles(*WITH_STRUCT)
def test_unreadable_args_is_efault_and_creates_nothing(target, profile: Profile):
    size = spec_of(profile.name).default_size
    base = cheap(profile, at=1)
    pointers = [*BAD_POINTERS, *straddles(size)]
    control = args_at(base, profile, GUARD - size)  # the same struct, its last byte just below the guard
    (res,), ev, (ctl,) = run_checked(target, [sweep(base, {"reg": spec_of(profile.name).args_reg}, pointers)],
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
    (res,), ev, (ctl,) = run_checked(target, [sweep(base, {"reg": spec_of(profile.name).args_reg}, pointers)],
                                     after=[control])
    report = deviations(pointers, res["results"], lambda p: errno.EFAULT, fmt=lambda p: f"GUARD-{GUARD - p}")
    assert not report, report
    ev.assert_nothing_created()
    assert (ctl["errno"], ctl["child_exit"]) == (0, 0), ctl


def vector_at(profile: Profile, req: SpawnRequest, addr: int) -> dict:
    """A spawn whose pid vector (pids, pid_set or set_tid) is written at `addr` and pointed to there."""
    pids_reg = spec_of(profile.name).pids_reg
    if pids_reg is None:  # clone3: a struct field
        req = replace(req, extra={**req.extra, "set_tid": addr})
    step = spawn(profile, req)
    step["write"][-1][0] = addr
    if pids_reg is not None:
        step["regs"][pids_reg] = addr
    return step


# where the vector pointer lives, and whether NULL is an error (clone3: set_tid NULL with a size is EINVAL;
# clone_with_pids: a NULL pid_set is a plain clone) -- from NOTES.md
VECTOR_POINTER = {"eclone": ({"reg": 3}, True), "clone_with_pids": ({"reg": 5}, False),
                  "clone2": ({"reg": 1}, True), "clone3": ({"word_at": SET_TID_FIELD, "size": 8}, False)}
VECTOR_BYTES = {"eclone": 8, "clone_with_pids": 12, "clone2": 8, "clone3": 8}  # two pids (+ the pid_set header)
# bytes whose straddling must fault: clone_with_pids reads its count first, so a pointer moved into the
# entries reads another count (EINVAL for a huge one is right): only its header straddles here
STRADDLE_BYTES = {**VECTOR_BYTES, "clone_with_pids": 4}


def test_unreadable_pid_vector_is_efault_and_creates_nothing(target, profile: Profile):
    """Two pids at level 1, the vector's pointer bad or straddling the guard; then the same two pids,
    readable, are still free."""
    spec = chain(1)
    outer, inner = free_pids(target, 2, spec)
    req = SpawnRequest(at=1, pids=(outer, inner), child="exit")
    control = vector_at(profile, req, GUARD - VECTOR_BYTES[profile.name])
    vary, null_faults = VECTOR_POINTER[profile.name]
    pointers = [p for p in BAD_POINTERS if p or null_faults] + list(straddles(STRADDLE_BYTES[profile.name]))
    (res,), ev, (ctl,) = run_checked(target, [sweep(control, vary, pointers)], spec=spec, after=[control])
    report = deviations(pointers, res["results"], lambda p: errno.EFAULT, fmt=hex)
    assert not report, report
    ev.assert_nothing_created()
    assert (ctl["errno"], ctl["child_exit"]) == (0, 0), f"the pids were not free again: {ctl}"
    assert ctl["ret"] == inner
