"""KTAP output must parse with the kernel's own KTAP parser (tools/testing/kunit/kunit_parser.py)."""

from __future__ import annotations

import sys

import pytest

from harness.ktap import render_ktap

ENTRIES = [
    {"nodeid": "suite/abi/test_a.py::test_size[eclone]", "area": "abi", "outcome": "passed", "message": ""},
    {"nodeid": "suite/abi/test_a.py::test_flags[clone3]", "area": "abi", "outcome": "failed",
     "message": "assert 22 == 0\n# not a directive"},
    {"nodeid": "suite/races/test_r.py::test_one_winner[eclone]", "area": "races", "outcome": "skipped",
     "message": "eclone: ENOSYS on this kernel (syscall 451)"},
]


def test_areas_are_subtests_and_cases_keep_their_verdicts():
    text = render_ktap(ENTRIES)
    lines = text.splitlines()
    assert lines[:2] == ["KTAP version 1", "1..2"]
    assert "    not ok 2 test_size[eclone]" not in lines
    assert "    ok 2 test_size[eclone]" in lines and "    not ok 1 test_flags[clone3]" in lines
    assert "    ok 1 test_one_winner[eclone] # SKIP eclone: ENOSYS on this kernel (syscall 451)" in lines
    assert "not ok 1 abi" in lines and "ok 2 races # SKIP" in lines


@pytest.fixture(scope="module")
def kunit_parser():
    from harness.kernel_build import pristine_tree
    kunit_dir = pristine_tree() / "tools" / "testing" / "kunit"
    sys.path.insert(0, str(kunit_dir))
    try:
        import kunit_parser
        yield kunit_parser
    finally:
        sys.path.remove(str(kunit_dir))


def test_the_kernels_ktap_parser_reads_the_same_verdicts(kunit_parser):
    test = kunit_parser.parse_run_tests(render_ktap(ENTRIES).splitlines())
    areas = {sub.name: sub for sub in test.subtests}
    assert set(areas) == {"abi", "races"}
    assert areas["abi"].status == kunit_parser.TestStatus.FAILURE
    assert {t.name: t.status for t in areas["abi"].subtests} == {
        "test_flags[clone3]": kunit_parser.TestStatus.FAILURE, "test_size[eclone]": kunit_parser.TestStatus.SUCCESS}
    assert areas["races"].status == kunit_parser.TestStatus.SKIPPED
    assert test.counts.errors == 0
