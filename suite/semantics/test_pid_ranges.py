"""Which pid values a level accepts: 1..pid_max-1 (eclone also 0 = kernel picks); eclone refuses pids
below RESERVED_PIDS (300) once the namespace's cursor passed 300 (NOTES.md step 7 and the settled rules)."""

from __future__ import annotations

import errno

import pytest

from harness.oracle.sync import NS_LAST_PID
from harness.programs import chain, occupy_step, write_file_step

from ..spec import EBUSY_FAMILY, WITH_RESERVED_PIDS_RULE, WITHOUT_RESERVED_PIDS_RULE


def pid_maxes(calls, spec):
    return [lv.pid_max for lv in calls.state(spec).levels]


@pytest.mark.parametrize("offset", [0, 1])
def test_pid_at_or_above_pid_max_is_einval(calls, offset):
    (pid_max,) = pid_maxes(calls, chain(0))
    res = calls.spawn([pid_max + offset])
    assert (res["errno"], res["child"]) == (errno.EINVAL, None)


@pytest.mark.parametrize("pid", [-1, -(2**31)])
def test_negative_pid_is_einval(calls, pid):
    res = calls.spawn([pid])
    assert (res["errno"], res["child"]) == (errno.EINVAL, None)


def test_pid_max_minus_one_is_accepted(calls):
    spec = chain(1)
    top = pid_maxes(calls, spec)[1] - 1
    if top in calls.in_use(spec)[1]:
        pytest.skip(f"pid {top} is in use at level 1")
    (outer,) = calls.free([0], spec)
    res = calls.spawn([outer, top], at=1, spec=spec)
    assert res["errno"] == 0, res
    assert res["child"]["nspid"] == [outer, top]


def test_each_level_checks_its_own_pid_max(calls):
    """An inner pid out of range fails even when the outer ones are fine (and vice versa)."""
    spec = chain(1)
    outer, inner = calls.free([0, 1], spec)
    maxes = pid_maxes(calls, spec)
    assert calls.spawn([outer, maxes[1]], at=1, spec=spec)["errno"] == errno.EINVAL
    assert calls.spawn([maxes[0], inner], at=1, spec=spec)["errno"] == errno.EINVAL


@pytest.mark.profiles(*WITH_RESERVED_PIDS_RULE)
@pytest.mark.parametrize(("last_pid", "pid", "want"), [(299, 299, 0), (299, 100, 0), (300, 299, errno.EINVAL),
                                                       (300, 100, errno.EINVAL), (300, 300, 0)])
def test_eclone_reserved_pids_depend_on_the_namespaces_cursor(calls, needs_ns_last_pid, last_pid, pid, want):
    """NOTES.md: below 300 only while ns_last_pid <= 299 (checked in a level used by this chain only)."""
    spec = chain(1)
    (outer,) = calls.free([0], spec)
    if pid in calls.in_use(spec)[1]:
        pytest.skip(f"pid {pid} is in use at level 1")
    res = calls.spawn([outer, pid], at=1, spec=spec, setup=[write_file_step(NS_LAST_PID, str(last_pid), at=1)])
    assert res["errno"] == want, res
    if not want:
        assert res["child"]["nspid"] == [outer, pid]


@pytest.mark.profiles(*WITH_RESERVED_PIDS_RULE)
def test_eclone_reserved_pids_are_judged_by_each_levels_own_cursor(calls, needs_ns_last_pid):
    """Step 7 is per level: a young inner namespace (cursor below 300) does not let a pid below 300
    through at an outer level whose cursor is past 300."""
    spec = chain(1)
    (inner,) = calls.free([1], spec)
    low = [p for p in range(299, 200, -1) if p not in calls.in_use(spec)[0]]
    if not low:
        pytest.skip("no free pid in 201..299 at level 0")
    young = write_file_step(NS_LAST_PID, str(min(inner, 200) - 1), at=1)
    res = calls.spawn([low[0], inner], at=1, spec=spec,
                      setup=[write_file_step(NS_LAST_PID, "999", at=0), young])
    assert (res["errno"], res["child"]) == (errno.EINVAL, None), res


@pytest.mark.profiles(*WITHOUT_RESERVED_PIDS_RULE)
def test_accepts_pids_below_300_whatever_the_cursor_without_a_reserved_pids_rule(calls, needs_ns_last_pid):
    spec = chain(1)
    (outer,) = calls.free([0], spec)
    res = calls.spawn([outer, 150], at=1, spec=spec, setup=[write_file_step(NS_LAST_PID, "1000", at=1)])
    assert res["errno"] == 0, res
    assert res["child"]["nspid"] == [outer, 150]


@pytest.mark.profiles(*EBUSY_FAMILY)
def test_eclone_pid_1_where_an_init_lives_is_ebusy(calls, needs_ns_last_pid):
    spec = chain(1)
    (outer,) = calls.free([0], spec)
    res = calls.spawn([outer, 1], at=1, spec=spec, setup=[write_file_step(NS_LAST_PID, "10", at=1)])
    assert (res["errno"], res["child"]) == (errno.EBUSY, None)


@pytest.mark.profiles("clone3")
def test_clone3_pid_1_where_an_init_lives_is_eexist(calls):
    spec = chain(1)
    (outer,) = calls.free([0], spec)
    res = calls.spawn([outer, 1], at=1, spec=spec)
    assert (res["errno"], res["child"]) == (errno.EEXIST, None)


def test_busy_pid_is_refused_with_the_profiles_errno_and_no_child(calls, profile, needs_ns_last_pid):
    spec = chain(2)
    pids = calls.free(3, spec)
    for level in range(3):
        res = calls.spawn(pids, at=2, spec=spec, setup=[occupy_step(pids[level], at=level)])
        assert (res["errno"], res["ret"], res["child"]) == (profile.busy_errno, -1, None), f"busy at level {level}"
