"""The slow figures of `bench`: the default suite once (`--suite`) and a short fuzz session (`--fuzz S`).

Each runs the real command in a child process on the same kernel image, so what is measured is what a
user gets: `suite_s` is pytest's own session time from the run's junit.xml (the boot before it is
`boot_s`), `fuzz_examples_per_s` the session's examples per second from fuzz.json.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from .errors import HarnessError
from .paths import REPO_ROOT


def _harness(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "harness", *args]
    return subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)


def suite_seconds(kernel: Path, timeout: float = 1800.0) -> dict[str, Any]:
    """`harness run --kernel IMAGE` once: pytest's session time, the counts, the exit status."""
    with tempfile.TemporaryDirectory(prefix="eclone-bench-suite-") as tmp:
        done = _harness(["run", "--kernel", str(kernel), "--results", tmp], timeout)
        junit = Path(tmp) / "junit.xml"
        if not junit.exists():
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["?"]
            raise HarnessError(f"bench --suite: the run wrote no junit.xml (exit {done.returncode}): {tail[0]}")
        root = ET.parse(junit).getroot()
        suite = root if root.tag == "testsuite" else root.find("testsuite")
        assert suite is not None
        counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
        return {"suite_s": round(float(suite.get("time", 0.0)), 1), "exit": done.returncode, **counts}


def fuzz_rate(kernel: Path, seconds: float, jobs: int = 2) -> dict[str, Any]:
    """`harness fuzz` for `seconds` on `jobs` VMs: examples and programs per second overall."""
    with tempfile.TemporaryDirectory(prefix="eclone-bench-fuzz-") as tmp:
        (Path(tmp) / "db").mkdir()
        done = _harness(["fuzz", "--kernel", str(kernel), "--duration", f"{int(seconds)}s", "--jobs", str(jobs),
                         "--results", tmp, "--db", str(Path(tmp) / "db")], seconds + 600.0)
        report = Path(tmp) / "fuzz.json"
        if not report.exists():
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["?"]
            raise HarnessError(f"bench --fuzz: the session wrote no fuzz.json (exit {done.returncode}): {tail[0]}")
        data = json.loads(report.read_text())
    return {"fuzz_examples_per_s": data.get("examples_per_second"),
            "fuzz_programs_per_s": data.get("programs_per_second"), "fuzz_jobs": jobs, "fuzz_seconds": seconds}
