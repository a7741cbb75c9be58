"""A kernel crash fails only the test in flight; a hung guest is killed; no QEMU outlives the session.

Each case runs an inner pytest session (pytester, in a subprocess) against the reference kernel,
with its own TMPDIR so that its QEMU processes can be told apart from anyone else's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.paths import REPO_ROOT

INNER_TESTS = '''
from harness.programs import program, write_file_step, syscall_step
from harness.profiles import Clone3Profile, SpawnRequest


def test_a_before_the_crash(target):
    target.ping()


def test_b_crashes_the_kernel(target):
    target.run(program([write_file_step("/proc/sysrq-trigger", "c")]), timeout=60)


def test_c_after_the_crash(target):
    res = target.run(program([Clone3Profile().spawn_step(SpawnRequest())]))
    assert res["steps"][0]["errno"] == 0 and res["steps"][0]["child"]


def test_d_hangs_the_agent(target):
    target.run(program([syscall_step(34)]), timeout=5)  # pause(): the agent never answers


def test_e_after_the_hang(target):
    target.ping()
'''


def qemu_processes_under(tmp: Path) -> list[str]:
    out = subprocess.run(["pgrep", "-af", "qemu-system"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(tmp) in line]


@pytest.fixture(scope="module")
def inner_run(reference_kernel: Path, tmp_path_factory: pytest.TempPathFactory):
    """Run the inner session once for this module: (stdout text, the TMPDIR its VMs used)."""
    work = tmp_path_factory.mktemp("inner")
    vm_tmp = work / "vmtmp"
    vm_tmp.mkdir()
    (work / "test_inner.py").write_text(INNER_TESTS)
    env = dict(os.environ, TMPDIR=str(vm_tmp), PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "harness.pytest_plugin", "-c", "/dev/null",
                           "--rootdir", str(work), "--kernel", str(reference_kernel), "-p", "no:cacheprovider",
                           "--results", str(work / "results"),
                           "-v", str(work / "test_inner.py")],
                          cwd=work, env=env, capture_output=True, text=True, timeout=600)
    return proc.stdout + proc.stderr, vm_tmp, work / "results"


def test_crash_fails_only_that_test_and_the_run_goes_on(inner_run) -> None:
    text, _, _ = inner_run
    outcomes = {}
    for line in text.splitlines():
        for name in ("test_a", "test_b", "test_c", "test_d", "test_e"):
            if f"::{name}_" in line and (" PASSED" in line or " FAILED" in line):
                outcomes[name] = "passed" if " PASSED" in line else "failed"
    assert outcomes == {"test_a": "passed", "test_b": "failed", "test_c": "passed",
                        "test_d": "failed", "test_e": "passed"}, text[-3000:]
    assert "sysrq triggered crash" in text, "the panic text belongs in the failed test's report"
    assert "timed out" in text, "the hung agent is reported as a timeout"


def test_no_qemu_is_left_after_the_session(inner_run) -> None:
    _, vm_tmp, _ = inner_run
    assert qemu_processes_under(vm_tmp) == []
    assert list(vm_tmp.iterdir()) == [], "VM temp dirs are removed"


def test_the_summary_counts_the_crash_and_names_it(inner_run) -> None:
    import json
    text, _, results = inner_run
    summary = json.loads((results / "summary.json").read_text())
    (crash,) = summary["crashes"]
    assert crash["nodeid"].endswith("test_b_crashes_the_kernel") and "sysrq" in crash["title"].lower(), crash
    assert [row["crashes"] for row in summary["table"]] == [1]
    assert f"kernel crash: {crash['title']}" in text
