"""Random scenarios (chain, cursor moves, occupied pids, one call) against the oracle: the kernel must
give exactly the NSpid or the errno the model predicts, and leave the chain as the model says.

A failure prints the concrete program(s) as JSON ("replay: ...") and hypothesis shrinks the scenario
towards depth 0, free pids and no setup.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from harness.oracle.runner import ChainModel
from harness.oracle.scenario import run_scenario
from harness.strategies import scenarios

MAX_DEPTH = 3


@given(data=st.data())
def test_kernel_agrees_with_the_model(target, profile, needs_ns_last_pid, data):
    scenario = data.draw(scenarios(profile.name, max_depth=MAX_DEPTH), label="scenario")
    verdict = run_scenario(ChainModel(target, scenario.chain), profile, scenario)
    assert not verdict.problems, verdict.report()
