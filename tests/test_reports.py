"""A run on a mutant kernel leaves junit.xml, summary.json, KTAP and reproducers (JSON, and C built from the
failed assertion) that fail there only."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.paths import MUTANTS_DIR, REPO_ROOT
from harness.programs import install_and_exec_steps, program

MUTANT = MUTANTS_DIR / "eclone-busy-wrong-errno.patch"
CASE = "suite/semantics/test_pid_ranges.py::test_busy_pid_is_refused_with_the_profiles_errno_and_no_child"


def harness(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *argv], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=1500)


def run_binary(kernel: Path, binary: Path) -> dict:
    from harness.targets.qemu import QemuTarget
    with QemuTarget(kernel) as target:
        reply = target.run(program(install_and_exec_steps(binary.read_bytes(), "/tmp/repro", timeout=20)))
    return reply["steps"][1]


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc to build the C reproducer")
def test_a_mutant_run_leaves_reports_and_a_c_reproducer_that_fails_only_there(tmp_path: Path,
                                                                              reference_kernel: Path):
    from harness.kernel_build import build_kernel, reference_request
    results = tmp_path / "run"
    run = harness("run", "--patch", str(MUTANT), "--profile", "eclone", "--results", str(results), "--", CASE)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-2000:]
    junit = (results / "junit.xml").read_text()
    assert 'failures="1"' in junit
    assert "--- kernel console during the test ---" in junit  # the failed case carries its console excerpt
    assert json.loads((results / "summary.json").read_text())["totals"]["failed"] == 1
    ktap = (results / "results.ktap").read_text()
    assert "not ok 1 test_busy_pid_is_refused_with_the_profiles_errno_and_no_child[eclone]" in ktap
    (recording,) = (results / "repro").glob("*.json")
    (left,) = (results / "repro").glob("*.c")  # beside the JSON: its expectation is the test's assertion
    assert left.stem == recording.stem and "expected: the test's failed assertion" in left.read_text()
    subprocess.run(["gcc", "-static", "-O1", "-o", str(tmp_path / "left-static"), str(left)], check=True)
    subprocess.run(["gcc", "-O1", "-o", str(tmp_path / "left"), str(left)], check=True)  # smaller over ttyS1
    mutant = build_kernel(reference_request(extra_patches=(MUTANT,)))
    assert run_binary(mutant, tmp_path / "left")["status"] == 1
    assert run_binary(reference_kernel, tmp_path / "left")["status"] == 0

    source = tmp_path / "repro.c"
    replay = harness("repro", str(recording), "--c", str(source))  # on the reference kernel: behaves differently
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "DIFFERS" in replay.stdout
    binary = tmp_path / "repro"
    subprocess.run(["gcc", "-O1", "-o", str(binary), str(source)], check=True)

    on_reference = run_binary(reference_kernel, binary)
    assert on_reference["status"] == 0, on_reference["stdout"]
    on_mutant = run_binary(mutant, binary)
    assert on_mutant["status"] == 1, on_mutant["stdout"]
    assert "expected EBUSY: MISMATCH" in on_mutant["stdout"]
