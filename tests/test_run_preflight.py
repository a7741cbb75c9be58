"""`harness run` boots the kernel before pytest: a kernel that cannot serve is one line and exit 2, with no
pytest output and no results left behind (issue 17: a truncated image, random bytes, an ELF that is not
a kernel)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.paths import REPO_ROOT


def run_harness(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", "run", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("kind", ["truncated", "random", "elf"])
def test_a_kernel_that_cannot_serve_is_one_line_and_exit_2(kind: str, tmp_path: Path, reference_kernel: Path) -> None:
    image = tmp_path / "bzImage"
    if kind == "truncated":
        image.write_bytes(reference_kernel.read_bytes()[:1_000_000])
    elif kind == "random":
        image.write_bytes(bytes(range(256)) * 400)
    else:
        image.write_bytes(Path(sys.executable).resolve().read_bytes())
    results = tmp_path / "results"
    done = run_harness("--kernel", str(image), "--results", str(results))
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 2, lines
    assert len(lines) <= 3 and lines[-1].startswith("error: "), lines
    assert not results.exists()
    assert "session starts" not in done.stdout
