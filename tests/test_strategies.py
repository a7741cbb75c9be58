"""The suite's hypothesis strategies: what they make stays within bounds, and they shrink to simple cases."""

from __future__ import annotations

from hypothesis import find, given, settings
from hypothesis import strategies as st

from harness.oracle.choices import Kind, PidChoice
from harness.oracle.scenario import innermost_level
from harness.strategies import call_shapes, namespace_chains, pid_vectors, scenarios

FAST = settings(max_examples=200, database=None, deadline=None)


@FAST
@given(spec=namespace_chains(max_depth=5))
def test_chains_are_agent_chain_specs(spec):
    levels = spec["levels"]
    assert len(levels) <= 5
    assert all(set(level) == {"userns", "caps"} for level in levels)
    assert all(level["caps"] is None or set(level["caps"]) <= {21, 40} for level in levels)


@FAST
@given(data=st.data(), profile=st.sampled_from(["clone3", "eclone"]))
def test_call_vectors_never_name_more_levels_than_exist(data, profile):
    spec = data.draw(namespace_chains(max_depth=4))
    call = data.draw(call_shapes(spec, profile))
    assert 0 <= call.at <= len(spec["levels"])
    if call.vector is not None:
        assert 1 <= len(call.vector) <= innermost_level(profile, call) + 1
    assert call.overflow == 0 or call.vector is not None


@FAST
@given(scenario=scenarios("clone3", max_depth=3))
def test_scenario_setup_targets_levels_of_its_chain(scenario):
    depth = len(scenario.chain["levels"])
    assert all(0 <= level <= depth for level, _ in (*scenario.cursors, *scenario.occupied))


def test_vectors_shrink_to_one_free_entry():
    assert find(pid_vectors(4), lambda v: True) == (PidChoice(Kind.FREE, 0),)


def test_a_busy_entry_shrinks_to_a_single_busy_pid():
    found = find(pid_vectors(4), lambda v: any(c.kind is Kind.BUSY for c in v))
    assert found == (PidChoice(Kind.BUSY, 0),)


def test_chains_shrink_to_depth_0():
    assert find(namespace_chains(max_depth=4), lambda s: True) == {"levels": []}
    deep = find(namespace_chains(max_depth=4), lambda s: len(s["levels"]) >= 2)
    assert deep == {"levels": [{"userns": False, "caps": None}] * 2}
