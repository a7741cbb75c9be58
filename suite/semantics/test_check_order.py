"""Which error wins when several rules are broken at once (NOTES.md: the order is part of the contract).

eclone: vector length (5) -> privilege for every nonzero entry (6) -> per level, innermost first:
range, RESERVED_PIDS, busy (7). clone3: set_tid_size -> per level, innermost first: range, init, privilege, busy.
"""

from __future__ import annotations

import errno

import pytest

from harness.oracle.sync import NS_LAST_PID
from harness.programs import chain, occupy_step, write_file_step

from ..kernel_probes import clone3_privilege_pass_first
from ..spec import WITH_RESERVED_PIDS_RULE, spec_of


def test_too_long_vector_is_einval_even_without_privilege(target, calls):
    spec = chain(1, caps={1: []})
    n = target.info.root_level + 3  # a level-1 caller: one more than its kernel level + 1
    res = calls.spawn([1000 + i for i in range(n)], at=1, spec=spec)
    assert (res["errno"], res["child"]) == (errno.EINVAL, None)


@pytest.mark.parametrize("bad", ["pid_max", "negative"])
def test_bad_value_without_privilege_is_eperm_for_eclone_einval_for_clone3(calls, profile, bad):
    spec = chain(1, caps={1: []})
    pid = calls.state(spec).levels[1].pid_max if bad == "pid_max" else -1
    res = calls.spawn([pid], at=1, spec=spec)
    want = errno.EPERM if spec_of(profile.name).privilege_first else errno.EINVAL  # clone3: range first, per level
    assert (res["errno"], res["child"]) == (want, None)


def test_privilege_comes_before_busy(calls):
    spec = chain(1, caps={1: []})
    res = calls.spawn([1], at=1, spec=spec)  # pid 1 of level 1 is its worker
    assert (res["errno"], res["child"]) == (errno.EPERM, None)


def test_eclone_checks_privilege_on_every_level_before_any_value(calls, profile):
    """The level-1 root owns level 1 only: a bad value at level 1 loses to the foreign level 0 for eclone,
    while clone3 stops at level 1 (innermost first) before looking at level 0's privilege."""
    spec = chain(1, userns_at=[1])
    (outer,) = calls.free([0], spec)
    res = calls.spawn([outer, calls.state(spec).levels[1].pid_max], at=1, spec=spec)
    want = errno.EPERM if spec_of(profile.name).privilege_first else errno.EINVAL
    assert (res["errno"], res["child"]) == (want, None)


def test_inner_level_error_wins_over_outer_busy(calls, needs_ns_last_pid):
    spec = chain(1)
    (outer,) = calls.free([0], spec)
    pid_max = calls.state(spec).levels[1].pid_max
    res = calls.spawn([outer, pid_max], at=1, spec=spec, setup=[occupy_step(outer, at=0)])
    assert (res["errno"], res["child"]) == (errno.EINVAL, None)


def test_inner_busy_wins_over_outer_range(target, calls, profile, needs_ns_last_pid):
    """eclone: NOTES.md settles a per-level walk, innermost first. clone3: 6.1 walks the same way; NOTES.md's
    "Newer kernels" two-pass alloc_pid checks range and privilege at every level first (V-CLONE3-TWO-PASS),
    so the outer EINVAL wins there: the order is taken from a probe of this kernel."""
    spec = chain(1)
    (inner,) = calls.free([1], spec)
    pid_max = calls.state(spec).levels[0].pid_max
    res = calls.spawn([pid_max, inner], at=1, spec=spec, setup=[occupy_step(inner, at=1)])
    two_pass = spec_of(profile.name).level_order_from_kernel and clone3_privilege_pass_first(target)
    assert (res["errno"], res["child"]) == (errno.EINVAL if two_pass else profile.busy_errno, None)


@pytest.mark.profiles(*WITH_RESERVED_PIDS_RULE)
def test_eclone_reserved_rule_comes_before_busy(calls, needs_ns_last_pid):
    spec = chain(1)
    (outer,) = calls.free([0], spec)
    res = calls.spawn([outer, 1], at=1, spec=spec, setup=[write_file_step(NS_LAST_PID, "400", at=1)])
    assert (res["errno"], res["child"]) == (errno.EINVAL, None), "pid 1 < 300 once the cursor passed 300"
