"""The kernel's clone3 selftests as a peer: KTAP parsing, building from the tree, running in a guest."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.peers import PeerResult, build_selftests, parse_ktap, peer_kills, run_selftests

KTAP = """TAP version 13
1..4
# [27] Trying clone3() with flags 0 (size 64)
ok 1 [27] Result (0) matches expectation (0)
not ok 2 [27] Result (-22) matches expectation (0)
ok 3 # SKIP needs root
"""


def test_ktap_cases_are_named_by_number_and_unreported_ones_are_missing():
    assert parse_ktap("clone3", KTAP) == {"clone3/1": "ok", "clone3/2": "not ok", "clone3/3": "skip",
                                          "clone3/4": "missing"}


def test_a_peer_kill_is_a_case_passing_on_the_baseline_and_failing_on_the_mutant():
    base = [PeerResult("clone3", 1, {"clone3/1": "ok", "clone3/2": "not ok", "clone3/3": "ok"})]
    mutant = [PeerResult("clone3", 1, {"clone3/1": "not ok", "clone3/2": "not ok", "clone3/3": "missing"})]
    assert peer_kills(base, mutant) == ["clone3/1", "clone3/3"]


def test_selftests_build_from_the_reference_tree_and_pass_on_the_reference_kernel(reference_kernel: Path):
    from harness.kernel_build import pristine_tree
    from harness.targets.qemu import QemuTarget
    binaries = build_selftests(pristine_tree())
    with QemuTarget(reference_kernel) as target:
        results = {r.binary: r for r in run_selftests(target, binaries)}
    set_tid = results["clone3_set_tid"]
    assert set_tid.status == 0 and set_tid.failed == [], set_tid.output[-2000:]
    assert len(set_tid.cases) >= 20, "the set_tid selftest reported too few cases to be the real one"
    assert results["clone3"].failed == [], results["clone3"].output[-2000:]


def test_a_tree_without_the_selftests_is_a_build_error(tmp_path: Path):
    from harness.errors import BuildError
    with pytest.raises(BuildError, match="clone3 selftests"):
        build_selftests(tmp_path)
