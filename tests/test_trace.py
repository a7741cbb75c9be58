"""`harness trace`: rules -> tests -> mutants, per profile, with the gaps; the committed table is current."""

from __future__ import annotations

import json

import pytest

from harness import paths, trace
from harness.errors import ConfigError
from harness.rules import RULES, Rule

TESTS = {"abi/test_a::test_x": ("eclone", "clone3"), "semantics/test_b::test_y": ("clone3",)}
MUTANTS = {"eclone-bug", "clone3-bug", "pid-bug"}


def rule(tests: tuple[str, ...], mutants: tuple[str, ...], id: str = "X1") -> Rule:
    return Rule(id, "somewhere", "text", ("eclone", "clone3"), tests, mutants)


def test_each_profile_gets_the_tests_marked_for_it_and_the_mutants_that_reach_it():
    cells = trace.trace(TESTS, MUTANTS, rules=(rule(("abi/test_a::test_x", "semantics/test_b::test_y"),
                                                    ("eclone-bug", "pid-bug")),))
    got = {c.profile: (c.tests, c.mutants, c.gap) for c in cells}
    assert got == {"eclone": (["abi/test_a::test_x"], ["eclone-bug", "pid-bug"], ""),
                   "clone3": (["abi/test_a::test_x", "semantics/test_b::test_y"], ["pid-bug"], "")}


def test_a_profile_without_a_test_or_a_mutant_is_a_gap_but_a_version_place_needs_no_mutant():
    cells = trace.trace(TESTS, MUTANTS, rules=(rule(("semantics/test_b::test_y",), ("clone3-bug",)),
                                               rule(("abi/test_a::test_x",), (), id="V-SOMETHING")))
    gaps = {(c.rule.id, c.profile): c.gap for c in cells}
    assert gaps == {("X1", "eclone"): "no test and no killed mutant", ("X1", "clone3"): "",
                    ("V-SOMETHING", "eclone"): "", ("V-SOMETHING", "clone3"): ""}
    text = trace.render(cells, MUTANTS, rules=(cells[0].rule,))
    assert "- X1 / eclone: no test and no killed mutant" in text
    assert "`eclone-bug`" in text.split("## Mutants no rule names")[1], "an untraced mutant is listed"


def test_names_that_do_not_exist_are_an_error():
    with pytest.raises(ConfigError, match="abi/test_a::test_nope.*no-such-mutant"):
        trace.trace(TESTS, MUTANTS, rules=(rule(("abi/test_a::test_nope",), ("no-such-mutant",)),))


def test_measured_kills_count_only_where_a_test_of_the_rule_killed_the_mutant(tmp_path):
    data = {"mutants": [
        {"name": "pid-bug", "verdict": "killed",
         "detectors": {"suite": {"killed_by": ["suite/abi/test_a.py::test_x[eclone]"]}}},
        {"name": "eclone-bug", "verdict": "killed",
         "detectors": {"suite": {"killed_by": ["suite/abi/test_z.py::test_other[eclone]"]}}}]}
    (tmp_path / "mutants.json").write_text(json.dumps(data))
    kills = trace.measured_kills(tmp_path / "mutants.json")
    assert kills == {"pid-bug": {("abi/test_a::test_x", "eclone")},
                     "eclone-bug": {("abi/test_z::test_other", "eclone")}}
    eclone, clone3 = trace.trace(TESTS, MUTANTS, kills,
                                 rules=(rule(("abi/test_a::test_x",), ("eclone-bug", "pid-bug")),))
    assert (eclone.mutants, clone3.mutants) == (["pid-bug"], []), "killed by a test of the rule, for eclone only"


def test_the_rule_table_names_only_real_tests_and_mutants_and_the_committed_table_is_current():
    tests = trace.suite_tests(paths.REPO_ROOT / "suite")
    mutants = trace.mutant_names(paths.REPO_ROOT)
    cells = trace.trace(tests, mutants, recorded=trace.kill_pairs(trace.recorded_kills(paths.REPO_ROOT)))
    assert {r.id for r in RULES} >= {"E8-CHANGED-NS", "DYING-NS", "E3-SETTLS", "E10-SUCCESS-LEAK", "V-PIDFD-THREAD",
                                     "V-CLONE3-TWO-PASS", "V-CURSOR-ON-FAILURE"}
    assert len({r.id for r in RULES}) == len(RULES), "rule ids are unique"
    committed = (paths.REPO_ROOT / "docs" / "TRACEABILITY.md").read_text()
    assert committed == trace.render(cells, mutants), "docs/TRACEABILITY.md is stale: run python -m harness trace"


def test_recorded_kills_add_the_profiles_a_measured_run_saw_to_those_the_name_reaches(tmp_path):
    run = {"mutants": [
        {"name": "eclone-bug", "verdict": "killed",
         "detectors": {"suite": {"killed_by": ["suite/semantics/test_b.py::test_y[clone3]"]}}},
        {"name": "clone3-bug", "verdict": "survived", "detectors": {"suite": {"killed_by": []}}}]}
    (tmp_path / "qemu" / "mutants").mkdir(parents=True)
    (tmp_path / "run.json").write_text(json.dumps(run))
    assert trace.record_kills(tmp_path, tmp_path / "run.json") == {
        "eclone-bug": ["suite/semantics/test_b.py::test_y[clone3]"]}
    recorded = trace.kill_pairs(trace.recorded_kills(tmp_path))
    cells = trace.trace(TESTS, MUTANTS, rules=(rule(("abi/test_a::test_x", "semantics/test_b::test_y"),
                                                    ("eclone-bug",)),), recorded=recorded)
    assert {c.profile: c.mutants for c in cells} == {"eclone": ["eclone-bug"], "clone3": ["eclone-bug"]}
