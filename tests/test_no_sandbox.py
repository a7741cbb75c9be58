"""Where the host target's sandbox cannot exist (a chroot, a container), `--target host` is one error line
and exit 2, and the harness's own tests that need the sandbox skip with that reason.

The place is made by chroot'ing into a bind mount of / in a private mount namespace: unshare(CLONE_NEWUSER)
is then refused with EPERM, as in a debootstrap chroot. Needs root (mount, chroot).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.paths import REPO_ROOT


def _can_make_a_chroot() -> bool:
    return os.geteuid() == 0 and shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "--mount", "true"], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(not _can_make_a_chroot(), reason="making a chroot needs root and a mount namespace")

# $0 = the new root (an rbind of /), $1 = working dir, then the command
CHROOTED = 'mount --rbind / "$0" && exec chroot "$0" sh -c \'cd "$0" && exec "$@"\' "$@"'


def in_chroot(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    root = tmp_path / "root"
    root.mkdir()
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", CHROOTED,
                           str(root), str(REPO_ROOT), *argv], capture_output=True, text=True, timeout=300)


def test_the_chroot_cannot_create_user_namespaces(tmp_path: Path) -> None:
    proc = in_chroot(tmp_path, "unshare", "--user", "--pid", "--fork", "true")
    assert proc.returncode != 0 and "Operation not permitted" in proc.stderr


def test_target_host_there_is_one_error_line_and_exit_2(tmp_path: Path) -> None:
    results = tmp_path / "results"
    proc = in_chroot(tmp_path, sys.executable, "-m", "harness", "run", "--target", "host", "--results", str(results))
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: the host target cannot create user+pid "
                                                                     "namespaces here (unshare: EPERM)")
    assert not results.exists(), "no empty reports"


def test_tests_needing_the_sandbox_skip_there_with_its_reason(tmp_path: Path) -> None:
    proc = in_chroot(tmp_path, sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", "-q",
                     "tests/test_kernel_features.py", "tests/test_agent_exec.py")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert re.fullmatch(r"\d+ passed, \d+ skipped in [\d.]+s", proc.stdout.strip().splitlines()[-1]), proc.stdout
    assert "cannot create user+pid namespaces here (unshare: EPERM)" in proc.stdout
