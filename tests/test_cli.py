"""Bad input gets one clear line on stderr and exit status 2 (no kernel needed for these)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.paths import REPO_ROOT


def harness(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, env=env, timeout=120)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0]


def test_missing_kernel_image(tmp_path: Path) -> None:
    proc = harness("run", "--kernel", str(tmp_path / "nope"), "--results", str(tmp_path / "r"))
    assert_one_line_error(proc, "no such kernel image", "nope")


def test_file_that_is_not_a_kernel(tmp_path: Path) -> None:
    fake = tmp_path / "bzImage"
    fake.write_bytes(b"\x7fELF" + b"\0" * 4096)
    proc = harness("run", "--kernel", str(fake), "--results", str(tmp_path / "r"))
    assert_one_line_error(proc, "not an x86 bzImage")


def test_missing_qemu_binary(tmp_path: Path, any_bzimage: Path) -> None:
    env = dict(os.environ, PATH=str(tmp_path))  # no qemu-system-x86_64 on this PATH
    proc = harness("run", "--kernel", str(any_bzimage), "--results", str(tmp_path / "r"), env=env)
    assert_one_line_error(proc, "qemu-system-x86_64 not found")


@pytest.mark.parametrize("args, needle", [
    (["kernel", "build", "--fragment", "no-such-fragment"], "unknown kconfig fragment"),
    (["kernel", "build", "--jobs", "0"], "--jobs must be at least 1"),
    (["kernel", "build", "--tree", "/nonexistent-tree"], "not a Linux source tree"),
    (["run", "--target", "host", "--stock"], "--target host tests the running kernel"),
])
def test_bad_cli_values(args: list[str], needle: str, tmp_path: Path) -> None:
    proc = harness(*args, "--results", str(tmp_path / "r")) if args[0] == "run" else harness(*args)
    assert_one_line_error(proc, needle)


def test_unknown_profile_is_a_usage_error(tmp_path: Path) -> None:
    proc = harness("run", "--target", "host", "--profile", "clone9", "--results", str(tmp_path / "r"))
    assert proc.returncode == 2
    assert "unknown profile 'clone9'" in proc.stderr


def test_help_lists_the_commands() -> None:
    proc = harness("--help")
    assert proc.returncode == 0
    for command in ("run", "kernel", "bench"):
        assert command in proc.stdout
