"""SIGTERM and SIGHUP clean up as Ctrl-C does: nonzero exit, no QEMU left, no /tmp/eclone-vm-* dir.

The run-level cases kill a real run against the reference kernel once its VM is up; each runs with its own
TMPDIR so that its VM dirs and QEMU processes can be told apart from anyone else's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.paths import REPO_ROOT

from .test_crash_recovery import qemu_processes_under

SLEEPER = """
import atexit, sys, time
from harness.interrupt import interrupt_on_termination
interrupt_on_termination()
atexit.register(lambda: open(sys.argv[1], "w").write("cleaned up"))
print("ready", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_termination_signal_takes_the_ctrl_c_path(sig: signal.Signals, tmp_path: Path) -> None:
    """The child gets the signal's default disposition: under nohup (a CI runner, a background job) SIGHUP
    is inherited ignored, and an ignored SIGHUP rightly stays ignored (the next test)."""
    marker = tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, "-c", SLEEPER, str(marker)], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=lambda: signal.signal(sig, signal.SIG_DFL))
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert f"terminated by {sig.name}" in err
    assert marker.read_text() == "cleaned up", "atexit handlers (harness.vm.close_all) run"


def test_an_ignored_hangup_stays_ignored() -> None:
    code = ("import signal; signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
            "from harness.interrupt import interrupt_on_termination; interrupt_on_termination()\n"
            "print(signal.getsignal(signal.SIGHUP) == signal.SIG_IGN, signal.getsignal(signal.SIGTERM).__name__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
                         check=True).stdout.split()
    assert out == ["True", "_raise"], "nohup's SIG_IGN is kept; SIGTERM gets the handler"


def _wait_for_vm(vm_tmp: Path, proc: subprocess.Popen[str], timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before its VM started"
        if list(vm_tmp.glob("eclone-vm-*/agent.sock")) and qemu_processes_under(vm_tmp):
            return
        time.sleep(0.2)
    pytest.fail("no VM within the deadline")


@pytest.mark.parametrize(("command", "sig"), [
    (["-m", "harness", "run"], signal.SIGTERM),
    (["-m", "pytest", "suite", "-p", "no:cacheprovider"], signal.SIGHUP),
], ids=["harness-run-SIGTERM", "pytest-SIGHUP"])
def test_a_run_killed_mid_way_leaves_no_qemu_and_no_vm_dir(command: list[str], sig: signal.Signals,
                                                          reference_kernel: Path, tmp_path: Path) -> None:
    vm_tmp = tmp_path / "vmtmp"
    vm_tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(vm_tmp))
    argv = [sys.executable, *command, "--kernel", str(reference_kernel), "--results", str(tmp_path / "results")]
    proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, preexec_fn=lambda: signal.signal(sig, signal.SIG_DFL))  # as above
    try:
        _wait_for_vm(vm_tmp, proc)
        time.sleep(1.0)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0, out[-2000:]
    assert qemu_processes_under(vm_tmp) == []
    assert list(vm_tmp.iterdir()) == [], "VM temp dirs are removed"
