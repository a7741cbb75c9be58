"""The oracle model on its own (no VM): each rule of NOTES.md for clone3 and eclone, with hand-made states."""

from __future__ import annotations

import errno

import pytest

from harness.oracle import Spawn, Unpredictable, build_chain_state, rules_for
from harness.oracle.check import result_disagreements, state_disagreements
from harness.oracle.choices import CursorKind, Kind, PidChoice, cursor_value, free_pid, resolve_vector
from harness.oracle.effects import after_exit, after_spawn, occupy_outcome
from harness.oracle.model import Level
from harness.oracle.predict import predict
from harness.oracle.scenario import CallShape, concrete_spawn
from harness.oracle.sync import observe
from harness.programs import chain

CLONE3, ECLONE = rules_for("clone3"), rules_for("eclone")
PID_MAX = 4096


def make(depth=2, userns_at=(), caps=None, root_level=0, cursor=None, pid_max=PID_MAX, shared=()):
    """A chain as the agent builds it: worker j is pid 1 of level j and pid j - k + 1 at level k < j."""
    state = build_chain_state(chain(depth, userns_at, caps or {}), [pid_max] * (depth + 1), root_level, set(shared))
    for k, level in enumerate(state.levels):
        level.used = {1} | {j - k + 1 for j in range(k + 1, depth + 1)}  # the workers of levels k..depth
        level.cursor = max(level.used) + 1 if cursor is None else cursor
    return state


def run(rules, state, at, pids, newpid=False):
    return predict(state, Spawn(at, None if pids is None else tuple(pids), newpid), rules)


# --- explicit vectors and their order ---------------------------------------------------------------

@pytest.mark.parametrize("rules", [CLONE3, ECLONE], ids=["clone3", "eclone"])
def test_full_vector_gives_every_level_its_pid_outermost_first(rules):
    out = run(rules, make(), 2, [500, 600, 700])
    assert (out.errno, out.nspid) == (0, (500, 600, 700))
    assert out.cursors == {}, "explicit pids do not move the cursor"


@pytest.mark.parametrize("rules", [CLONE3, ECLONE], ids=["clone3", "eclone"])
def test_partial_vector_sets_the_innermost_levels_and_the_rest_is_picked(rules):
    state = make()  # cursors: level 0 -> 4, level 1 -> 3, level 2 -> 2
    out = run(rules, state, 2, [700])
    assert (out.errno, out.nspid) == (0, (4, 3, 700))
    assert out.cursors == {0: 5, 1: 4}


def test_zero_entry_is_einval_for_clone3_and_automatic_for_eclone():
    assert run(CLONE3, make(), 1, [0, 700]).errno == errno.EINVAL
    out = run(ECLONE, make(), 1, [0, 700])
    assert (out.errno, out.nspid, out.cursors) == (0, (4, 700), {0: 5})


@pytest.mark.parametrize(("rules", "busy"), [(CLONE3, errno.EEXIST), (ECLONE, errno.EBUSY)], ids=["clone3", "eclone"])
def test_levels_are_checked_innermost_first(rules, busy):
    state = make()
    assert run(rules, state, 1, [3, PID_MAX]).errno == errno.EINVAL  # level 1 out of range wins over level 0 busy
    assert run(rules, state, 1, [PID_MAX, 2]).errno == busy  # level 1 busy (worker 2) wins over level 0 range


@pytest.mark.parametrize(("rules", "busy"), [(CLONE3, errno.EEXIST), (ECLONE, errno.EBUSY)], ids=["clone3", "eclone"])
def test_busy_pid_is_refused_with_the_profiles_errno(rules, busy):
    out = run(rules, make(), 0, [2])
    assert (out.errno, out.nspid) == (busy, None)


def test_pid_one_at_a_level_with_an_init():
    assert run(CLONE3, make(), 1, [1]).errno == errno.EEXIST
    assert run(ECLONE, make(), 1, [1]).errno == errno.EBUSY
    assert run(ECLONE, make(cursor=301), 1, [1]).errno == errno.EINVAL, "RESERVED_PIDS rule comes before busy"


# --- ranges ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rules", [CLONE3, ECLONE], ids=["clone3", "eclone"])
@pytest.mark.parametrize("pid", [PID_MAX, PID_MAX + 1, -1, -(2**31)])
def test_pid_outside_the_range_is_einval(rules, pid):
    assert run(rules, make(), 0, [pid]).errno == errno.EINVAL


@pytest.mark.parametrize("rules", [CLONE3, ECLONE], ids=["clone3", "eclone"])
def test_pid_max_minus_one_is_accepted(rules):
    assert run(rules, make(), 0, [PID_MAX - 1]).nspid == (PID_MAX - 1,)


def test_per_level_pid_max_is_used():
    state = make(depth=1)
    state.levels[1].pid_max = 1000
    assert run(CLONE3, state, 1, [2000, 999]).ok
    assert run(CLONE3, state, 1, [999, 2000]).errno == errno.EINVAL


@pytest.mark.parametrize(("cursor", "pid", "want"), [(300, 299, 0), (301, 299, errno.EINVAL), (301, 300, 0),
                                                      (301, 150, errno.EINVAL), (101, 150, 0)])
def test_eclone_reserved_pids_follow_the_cursor(cursor, pid, want):
    assert run(ECLONE, make(depth=0, cursor=cursor), 0, [pid]).errno == want


def test_clone3_has_no_reserved_pids_rule():
    assert run(CLONE3, make(depth=0, cursor=1000), 0, [150]).ok


# --- vector length -----------------------------------------------------------------------------------

@pytest.mark.parametrize("rules", [CLONE3, ECLONE], ids=["clone3", "eclone"])
def test_vector_longer_than_depth_plus_one_is_einval(rules):
    assert run(rules, make(), 1, [500, 501, 502]).errno == errno.EINVAL


def test_deepest_caller_clone3_takes_32_and_eclone_33():
    state = make(depth=32)
    full = list(range(2000, 2033))
    assert run(CLONE3, state, 32, full[1:]).nspid == (state.levels[0].cursor, *full[1:])
    assert run(CLONE3, state, 32, full).errno == errno.EINVAL, "set_tid_size > MAX_PID_NS_LEVEL"
    assert run(ECLONE, state, 32, full).nspid == tuple(full)
    assert run(ECLONE, state, 32, [1999, *full]).errno == errno.EINVAL


def test_a_vector_reaching_above_the_sandbox_is_unpredictable_but_longer_ones_are_einval():
    state = make(depth=1, root_level=2)
    with pytest.raises(Unpredictable):
        run(CLONE3, state, 1, [500, 501, 502])
    assert run(CLONE3, state, 1, [500] * 5).errno == errno.EINVAL


def test_empty_vector_is_einval_for_clone3_and_a_plain_call_for_eclone():
    assert run(CLONE3, make(), 0, []).errno == errno.EINVAL
    assert run(ECLONE, make(), 0, []).nspid == (4,)


# --- new pid namespace -------------------------------------------------------------------------------

def test_clone3_first_pid_of_a_new_namespace_must_be_1():
    assert run(CLONE3, make(), 1, [500, 600, 1], newpid=True).nspid == (500, 600, 1)
    assert run(CLONE3, make(), 1, [500, 600, 2], newpid=True).errno == errno.EINVAL
    assert run(CLONE3, make(), 1, None, newpid=True).nspid == (4, 3, 1)


def test_eclone_new_namespace_gets_1_and_the_vector_starts_at_the_caller():
    assert run(ECLONE, make(), 1, [500, 600], newpid=True).nspid == (500, 600, 1)
    assert run(ECLONE, make(), 1, [500, 600, 1], newpid=True).errno == errno.EINVAL


@pytest.mark.parametrize("rules", [CLONE3, ECLONE], ids=["clone3", "eclone"])
def test_new_namespace_needs_cap_sys_admin_and_a_level_to_spare(rules):
    assert run(rules, make(caps={1: [40]}), 1, None, newpid=True).errno == errno.EPERM
    assert run(rules, make(depth=32), 32, None, newpid=True).errno == errno.ENOSPC


# --- privilege ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("rules", [CLONE3, ECLONE], ids=["clone3", "eclone"])
@pytest.mark.parametrize(("caps", "ok"), [([], False), ([21], True), ([40], True), ([1, 2], False)])
def test_choosing_a_pid_needs_cap_sys_admin_or_checkpoint_restore(rules, caps, ok):
    out = run(rules, make(caps={1: caps}), 1, [700])
    assert out.ok is ok and (ok or out.errno == errno.EPERM)


@pytest.mark.parametrize("rules", [CLONE3, ECLONE], ids=["clone3", "eclone"])
def test_own_user_namespace_levels_only(rules):
    state = make(depth=3, userns_at=[2])
    assert run(rules, state, 3, [700, 800]).ok, "levels 3 and 2 belong to the caller's user namespace"
    assert run(rules, state, 3, [600, 700, 800]).errno == errno.EPERM, "level 1 belongs to the initial one"


def test_eclone_checks_privilege_before_any_value_clone3_per_level():
    state = make(caps={1: []})
    assert run(ECLONE, state, 1, [PID_MAX]).errno == errno.EPERM
    assert run(ECLONE, state, 1, [-1]).errno == errno.EPERM
    assert run(CLONE3, state, 1, [PID_MAX]).errno == errno.EINVAL
    assert run(ECLONE, state, 1, [0]).ok, "an explicit 0 needs no privilege"
    assert run(ECLONE, state, 1, [500, 600, 700]).errno == errno.EINVAL, "too long beats EPERM"


def test_owner_of_a_child_user_namespace_has_every_capability_in_it():
    state = make(depth=2, userns_at=[2], caps={1: []})
    assert state.capable(state.creds[1], 2, 21) and not state.capable(state.creds[1], 0, 21)
    assert not state.capable(state.creds[2], 0, 21), "no capability over an ancestor user namespace"


# --- automatic picks ---------------------------------------------------------------------------------

def test_automatic_pick_wraps_to_300_after_pid_max():
    level = Level(pid_max=1000, used={1, 300, 301}, cursor=1000)
    assert level.next_auto() == 302
    assert Level(pid_max=1000, used={1, 2}, cursor=200).next_auto() == 200
    assert Level(pid_max=400, used=set(range(1, 400)), cursor=10).next_auto() is None


def test_failed_call_keeps_the_cursor_moves_of_inner_levels():
    out = run(ECLONE, make(depth=1), 1, [2, 0])  # level 1 picks 2, then level 0's pid 2 (worker 1) is busy
    assert (out.errno, out.cursors) == (errno.EBUSY, {1: 3})


def test_full_level_is_eagain():
    state = make(depth=0, pid_max=310, cursor=305)
    state.levels[0].used |= set(range(300, 310))
    assert run(CLONE3, state, 0, None).errno == errno.EAGAIN


def test_shared_level_pick_is_any_free_pid():
    out = run(CLONE3, make(shared={0}), 1, [700])
    assert out.nspid == (None, 700) and out.cursors == {0: None}


def test_unknown_profile_has_no_rules():
    with pytest.raises(ValueError, match="no rules"):
        rules_for("clone4")


# --- effects -----------------------------------------------------------------------------------------

def test_held_child_keeps_its_pids_until_it_exits():
    state, spawn = make(), Spawn(2, (500, 600, 700))
    held = after_spawn(state, spawn, predict(state, spawn, CLONE3), [500, 600, 700], held=True)
    assert [500 in held.levels[0].used, 600 in held.levels[1].used, 700 in held.levels[2].used] == [True] * 3
    gone = after_exit(held, [500, 600, 700])
    assert [lv.used for lv in gone.levels] == [lv.used for lv in state.levels]


def test_occupy_takes_the_pid_through_the_cursor_or_misses_a_busy_one():
    state = make(depth=1)
    hit = occupy_outcome(state, 1, 50)
    assert hit.nspid == (3, 50) and hit.cursors == {1: 51, 0: 4}
    miss = occupy_outcome(state, 1, 1)  # pid 1 is the worker: the fork gets 2
    assert miss.errno and miss.nspid == (3, 2)
    assert occupy_outcome(make(depth=1, caps={1: []}), 1, 50).errno == errno.EPERM


# --- sync: the model from agent reports --------------------------------------------------------------

def test_observe_counts_only_the_chains_own_namespaces_beyond_level_0():
    base = build_chain_state(chain(2), [PID_MAX] * 3)
    workers = [[10, 1], [11, 2, 1]]
    nspids = [[1], [2], [10, 1], [11, 2, 1], [12, 3, 2], [20, 1], [21, 5], [30, 7, 9]]
    inodes = [100, 100, 101, 102, 102, 201, 201, 202]  # 20/21/30: another chain with the same depths
    pids = {"nspids": nspids, "ns": inodes}
    cursors = [{"data": "40\n"}, {"data": "3\n"}, {"data": "3\n"}]
    obs = observe(base, workers, [pids, *cursors])
    assert obs.ns == (100, 101, 102)
    assert [lv.used for lv in obs.state.levels] == [{1, 2, 10, 11, 12, 20, 21, 30}, {1, 2, 3}, {1, 2}]
    assert [lv.cursor for lv in obs.state.levels] == [41, 4, 4]


# --- check: kernel against model ---------------------------------------------------------------------

def ok_result(nspid, ret=None):
    return {"ret": nspid[-1] if ret is None else ret, "errno": 0, "child": {"nspid": nspid, "getpid": nspid[-1]}}


def test_agreeing_result_has_no_problems_and_each_kind_of_difference_is_named():
    state, spawn = make(), Spawn(2, (500, 600, 700))
    out = predict(state, spawn, CLONE3)
    assert result_disagreements(out, spawn, ok_result([500, 600, 700]), state) == []
    assert result_disagreements(out, spawn, ok_result([700, 600, 500]), state)
    assert result_disagreements(out, spawn, ok_result([500, 600, 700], ret=500), state)
    assert result_disagreements(out, spawn, {"ret": -1, "errno": errno.EEXIST, "child": None}, state)
    busy = predict(state, Spawn(0, (2,)), CLONE3)
    assert result_disagreements(busy, Spawn(0, (2,)), {"ret": 3, "errno": 0, "child": {"nspid": [3]}}, state)


def test_shared_level_pick_must_be_free_and_above_the_lower_bound():
    state, spawn = make(shared={0}, cursor=500), Spawn(1, (700,))
    out = predict(state, spawn, CLONE3)
    assert result_disagreements(out, spawn, ok_result([900, 700]), state) == []
    assert result_disagreements(out, spawn, ok_result([2, 700]), state), "pid 2 is busy (and below 300)"


def test_state_differences_name_leaked_pids_and_moved_cursors():
    want, got = make(), make()
    got.levels[1].used.add(77)
    got.levels[2].cursor += 1
    problems = state_disagreements(want, got)
    assert any("unexpected [77]" in p for p in problems) and any("ns_last_pid" in p for p in problems)


# --- choices: symbols made concrete ------------------------------------------------------------------

def test_choices_resolve_to_their_values_and_free_ones_are_free():
    state = make(depth=1)
    levels = state.levels
    kinds = [Kind.ZERO, Kind.ONE, Kind.BELOW_RESERVED, Kind.RESERVED, Kind.PID_MAX_MINUS_1, Kind.PID_MAX]
    for kind, want in zip(kinds, [0, 1, 299, 300, PID_MAX - 1, PID_MAX], strict=True):
        assert resolve_vector([PidChoice(kind)], [levels[0]], {}) == (want,)
    free = resolve_vector([PidChoice(Kind.FREE, 3), PidChoice(Kind.DUPLICATE)], levels, {})
    assert free[0] == free[1] and levels[0].is_free(free[0]) and free[0] > 300
    assert resolve_vector([PidChoice(Kind.BUSY, 1)], [levels[0]], {0: [1, 2]}) == (2,)
    assert free_pid(Level(pid_max=303, used={301}), 0) == 302
    assert cursor_value(CursorKind.NEAR_MAX, levels[0]) == PID_MAX - 1


def test_call_shape_overflow_pads_past_the_kernels_bound():
    state = make(depth=1, root_level=3)
    spawn = concrete_spawn("clone3", CallShape(1, (PidChoice(Kind.FREE),), overflow=1), state)
    assert len(spawn.pids) == 3 + 1 + 1 + 1
    assert predict(state, spawn, CLONE3).errno == errno.EINVAL


def test_a_refused_call_is_asked_again_for_the_inner_pids_it_had_allocated():
    from harness.oracle.scenario import reask_allocated

    state = make(depth=2)
    spawn = Spawn(2, (2, 600, 700))  # level 0: pid 2 is worker 1 -> refused after levels 2 and 1
    out = predict(state, spawn, CLONE3)
    assert (out.errno, out.level) == (errno.EEXIST, 0)
    assert reask_allocated("clone3", spawn, out) == Spawn(2, (600, 700))
    inner_fail = Spawn(2, (500, 600, 1))
    assert reask_allocated("clone3", inner_fail, predict(state, inner_fail, CLONE3)) is None
    newpid = Spawn(1, (2, 600, 1), newpid=True)
    assert reask_allocated("clone3", newpid, predict(state, newpid, CLONE3)) == Spawn(1, (600, 1), True)


# --- root-anchored vectors (clone_with_pids, clone2) ---------------------------------------------------

ROOT = rules_for("clone2")


def test_clone_with_pids_and_clone2_share_the_root_anchored_rule_set():
    assert rules_for("clone_with_pids") is ROOT and ROOT.anchor == "root" and ROOT.busy_errno == errno.EBUSY


def test_root_anchored_short_vector_names_the_outermost_levels_and_the_rest_is_picked():
    out = run(ROOT, make(), 2, [500])  # cursors: level 0 -> 4, level 1 -> 3, level 2 -> 2
    assert (out.errno, out.nspid) == (0, (500, 3, 2))
    assert out.cursors == {1: 4, 2: 3}


def test_root_anchored_pid_below_300_is_allowed_after_the_cursor_passed_300():
    out = run(ROOT, make(cursor=2000), 1, [150, 120])
    assert (out.errno, out.nspid) == (0, (150, 120))
    assert run(ECLONE, make(cursor=2000), 1, [150, 120]).errno == errno.EINVAL


def test_root_anchored_count_above_the_callers_level_is_einval():
    assert run(ROOT, make(), 1, [0, 0, 0]).errno == errno.EINVAL


def test_root_anchored_busy_outer_level_refuses_at_level_0_after_the_inner_ones():
    out = run(ROOT, make(), 2, [1, 600])  # level 0's pid 1 is the agent
    assert (out.errno, out.level) == (errno.EBUSY, 0)


def test_root_anchored_vector_above_a_nested_agent_root_is_unpredictable():
    with pytest.raises(Unpredictable):
        run(ROOT, make(root_level=1), 1, [500])
