"""Run gcov on a .gcda/.gcno pair and read its JSON (gcc >= 9 `--json-format`) into line and branch counts."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EnvError


@dataclass
class FileCoverage:
    """Counts of one source file: every executable line, and each line's branch counts in gcov's order."""

    lines: dict[int, int] = field(default_factory=dict)
    branches: dict[int, list[int]] = field(default_factory=dict)

    def merge(self, other: FileCoverage) -> None:
        """Add another run's counters (xdist workers, several boots): sums per line and per branch."""
        for line, count in other.lines.items():
            self.lines[line] = self.lines.get(line, 0) + count
        for line, counts in other.branches.items():
            mine = self.branches.setdefault(line, [0] * len(counts))
            if len(mine) != len(counts):
                raise ValueError(f"line {line}: {len(mine)} branches in one run, {len(counts)} in another")
            self.branches[line] = [a + b for a, b in zip(mine, counts, strict=True)]

    def line_totals(self, only: set[int] | None = None) -> tuple[int, int]:
        """(executed, executable), optionally restricted to some lines."""
        lines = [c for n, c in self.lines.items() if only is None or n in only]
        return sum(1 for c in lines if c > 0), len(lines)

    def branch_totals(self, only: set[int] | None = None) -> tuple[int, int]:
        """(taken, total) branches; gcov counts each outcome of a condition as one branch."""
        counts = [c for n, cs in self.branches.items() if only is None or n in only for c in cs]
        return sum(1 for c in counts if c > 0), len(counts)


def _relative(name: str, cwd: str, src_root: Path | None) -> str:
    path = Path(name) if Path(name).is_absolute() else Path(cwd) / name
    if src_root is not None:
        try:
            return str(path.resolve().relative_to(src_root.resolve()))
        except ValueError:
            pass
    return str(path) if Path(name).is_absolute() else name


def parse_gcov_json(data: dict[str, Any], src_root: Path | None = None) -> dict[str, FileCoverage]:
    """gcov's JSON -> {source path (relative to src_root when under it): FileCoverage}.

    A line listed twice (code of two functions on one line) counts once with the summed count, as gcov's
    text output does. Exception edges ("throw") are not branches of C code and are left out.
    """
    if str(data.get("format_version")) not in ("1", "2"):
        raise ValueError(f"unsupported gcov JSON format_version {data.get('format_version')!r}")
    out: dict[str, FileCoverage] = {}
    cwd = str(data.get("current_working_directory", ""))
    for entry in data.get("files", []):
        cov = out.setdefault(_relative(str(entry["file"]), cwd, src_root), FileCoverage())
        for line in entry.get("lines", []):
            number = int(line["line_number"])
            cov.lines[number] = cov.lines.get(number, 0) + int(line["count"])
            counts = [int(b["count"]) for b in line.get("branches", []) if not b.get("throw")]
            if counts:
                cov.branches[number] = cov.branches.get(number, []) + counts
    return out


def run_gcov(gcda: bytes, gcno: Path, src_root: Path | None = None) -> dict[str, FileCoverage]:
    """gcov on one object's counters (bytes from the guest) and notes file, in a scratch dir."""
    gcov = shutil.which("gcov")
    if gcov is None:
        raise EnvError("gcov not found: it comes with gcc (run ./setup.sh)")
    with tempfile.TemporaryDirectory(prefix="eclone-gcov-") as tmp:
        stem = Path(tmp) / gcno.stem
        shutil.copyfile(gcno, stem.with_suffix(".gcno"))
        stem.with_suffix(".gcda").write_bytes(gcda)
        proc = subprocess.run([gcov, "--json-format", "--stdout", "--branch-probabilities", stem.name + ".gcda"],
                              cwd=tmp, capture_output=True, text=True)
        if proc.returncode != 0 or not proc.stdout.strip():
            raise EnvError(f"gcov failed on {gcno.name}: {(proc.stderr.strip().splitlines() or ['no output'])[-1]}")
        return parse_gcov_json(json.loads(proc.stdout.splitlines()[0]), src_root)
