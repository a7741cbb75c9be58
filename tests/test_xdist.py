"""Scale-out: `pytest -n N` gives each xdist worker its own VM, and the controller still writes one report.

The same holds for workers on other machines (`--tx ssh=...`): each worker is its own pytest session
with its own target, so what is checked here with local `popen` workers is what the ssh transport
relies on.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from harness.paths import REPO_ROOT

SELECTION = "suite/abi/test_precedence.py"


def run_pytest(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", SELECTION, "-q", "-p", "no:cacheprovider", *argv],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)


def booted_kernels(console: Path) -> list[str]:
    """One header per VM the worker started (cold boots and restored saved states alike)."""
    return re.findall(r"^===== boot \d+: (\S+)", console.read_text(errors="replace"), re.M)


def test_two_workers_boot_one_vm_each_and_share_one_report(tmp_path: Path, reference_kernel: Path) -> None:
    results = tmp_path / "results"
    run = run_pytest("-n", "2", "--kernel", str(reference_kernel), "--results", str(results),
                     "--junitxml", str(tmp_path / "junit.xml"), "--ktap", str(tmp_path / "results.ktap"))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    consoles = sorted(p.name for p in results.glob("console-*.log"))
    assert consoles == ["console-gw0.log", "console-gw1.log"]
    for name in consoles:  # each worker booted its own guest
        assert len(booted_kernels(results / name)) == 1, name
    summary = json.loads((results / "summary.json").read_text())
    tests = summary["totals"]["passed"] + summary["totals"]["failed"] + summary["totals"]["skipped"]
    assert summary["totals"]["failed"] == 0
    assert tests == len(summary["tests"]) > 2  # one summary from the controller, with every worker's tests
    ktap_cases = re.findall(r"^ +(?:not )?ok \d+ ", (tmp_path / "results.ktap").read_text(), re.M)
    assert len(ktap_cases) == tests


def test_execnet_popen_workers_are_what_the_ssh_transport_uses(tmp_path: Path, reference_kernel: Path) -> None:
    """`--tx 2*popen` goes through execnet gateways like `--tx ssh=host`: both workers must report back."""
    results = tmp_path / "results"
    run = run_pytest("-d", "--tx", f"2*popen//python={sys.executable}", "--kernel", str(reference_kernel),
                     "--results", str(results))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert len(list(results.glob("console-gw*.log"))) == 2
    assert json.loads((results / "summary.json").read_text())["totals"]["failed"] == 0
