"""A failed test's C reproducer takes its expectation from the failed assertion, not from a second kernel."""

from __future__ import annotations

import errno
import shutil
import subprocess

import pytest

from harness.programs import chain, occupy_step, program, syscall_step
from harness.repro.asserted import derive, write_c
from harness.repro.record import Recording

EBUSY, EEXIST = errno.EBUSY, errno.EEXIST


def recording() -> Recording:
    """occupy 500, then a call asking for it that got EEXIST (a wrong errno), then one that succeeded."""
    rec = Recording(test="suite/semantics/test_x.py::test_busy[eclone]", kernel="6.1.0", target="qemu")
    prog = program([occupy_step(500, at=1, name="h"), syscall_step(451, [17, 0, 56, 0], at=1, clone=True),
                    syscall_step(451, [17, 0, 56, 0], at=1, clone=True)], chain(1))
    rec.add(prog, {"steps": [{"ok": True, "nspid": [400, 500]},
                             {"ret": -1, "errno": EEXIST, "child": None},
                             {"ret": 600, "errno": 0, "child": {"nspid": [600, 3], "getpid": 3}}]})
    return rec


@pytest.mark.parametrize("compared, step, expect", [
    ([(EEXIST, EBUSY)], 1, {"errno": EBUSY}),  # assert res["errno"] == profile.busy_errno
    ([((EEXIST, None), (EBUSY, None))], 1, {"errno": EBUSY}),  # assert (res["errno"], res["child"]) == (...)
    ([([600, 3], [600, 7])], 2, {"errno": 0, "nspid": [600, 7]}),  # assert nspid == pids
    ([([(0, [600, 3])], [(0, [600, 7])])], 2, {"errno": 0, "nspid": [600, 7]}),  # lists of tuples
])
def test_the_step_showing_the_actual_side_expects_the_asserted_side(compared, step, expect):
    run, expected = derive(recording(), compared)
    assert run == 0
    assert expected[step] == expect and sum(e is not None for e in expected) == 1


def test_nothing_matching_derives_nothing():
    assert derive(recording(), [(1, 2), ("a", "b")]) is None
    assert derive(recording(), [(EBUSY, EEXIST)]) is None, "the actual side must be what a step gave"


def test_the_c_file_sits_beside_the_json_and_builds_statically(tmp_path):
    json_path = tmp_path / "test_busy_eclone_.json"
    path, line = write_c(recording(), json_path, [(EEXIST, EBUSY)])
    assert path == tmp_path / "test_busy_eclone_.c" and "failed assertion" in line
    source = path.read_text()
    assert f"{{1, {EBUSY}, 0, {{0}}}}" in source, "step 1 expects EBUSY"
    if shutil.which("gcc") is None:
        pytest.skip("no gcc")
    subprocess.run(["gcc", "-static", "-O1", "-o", str(tmp_path / "repro"), str(path)], check=True,
                   capture_output=True)


def test_no_match_writes_no_c_and_says_why(tmp_path):
    path, line = write_c(recording(), tmp_path / "x.json", [])
    assert path is None and "harness repro FILE --c" in line


def test_without_a_matching_comparison_the_oracles_prediction_is_the_expectation(tmp_path):
    from harness.repro import predicted
    rec = recording()
    predicted.clear()
    predicted.note(rec.runs[0]["result"]["steps"][1], EBUSY, None)
    try:
        path, line = write_c(rec, tmp_path / "x.json", [])
    finally:
        predicted.clear()
    assert path is not None and "oracle's prediction" in line
    assert f"{{1, {EBUSY}, 0, {{0}}}}" in path.read_text()


def test_a_prediction_is_checked_in_the_chains_history_with_level_0_steps_of_other_chains():
    from harness.repro.asserted import merged_history
    rec = Recording(test="t")
    one, two = chain(1), chain(2)
    hold = syscall_step(451, [17, 0, 56, 0], at=1, clone=True, child="hold")
    rec.add(program([], one, fresh_chain=True, keep=True), {"steps": []})
    rec.add(program([hold, occupy_step(700, at=0, name="k")], one, keep=True), {"steps": [{}, {}]})
    rec.add(program([occupy_step(800, at=0), occupy_step(900, at=2)], two), {"steps": [{}, {}]})
    rec.add(program([{"op": "release", "name": "k"}, hold], one, keep=True), {"steps": [{}, {}]})
    merged = merged_history(rec, 3)
    got = [(s["op"], s.get("at"), s.get("as", s.get("name"))) for s in merged["steps"]]
    assert got == [("syscall", 1, "_run1_step0"), ("occupy", 0, "k"), ("release", 1, "_run1_step0"),
                   ("occupy", 0, "_run2_step0"), ("release", 0, "_run2_step0"),
                   ("release", 0, "k"), ("syscall", 1, "_run3_step1")]
    assert merged["chain"] == one and merged["fresh_chain"]
