"""Coverage numbers of the profiled files and of the eclone series' own lines; JSON, Cobertura and HTML."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from .gcov import FileCoverage
from .patch_lines import AddedLine, mismatches


def _pct(hit: int, total: int) -> float | None:
    return round(100.0 * hit / total, 1) if total else None


def _totals(cov: FileCoverage, only: set[int] | None = None) -> dict[str, Any]:
    lh, lt = cov.line_totals(only)
    bh, bt = cov.branch_totals(only)
    return {"lines": [lh, lt], "line_percent": _pct(lh, lt), "branches": [bh, bt], "branch_percent": _pct(bh, bt)}


@dataclass(frozen=True)
class Unreached:
    file: str
    line: int
    text: str
    patch: str


def patch_report(files: dict[str, FileCoverage], added: dict[str, dict[int, AddedLine]],
                 series: set[str]) -> dict[str, Any]:
    """Coverage of the executable lines `series` adds (comments, declarations, braces are not executable)."""
    merged = FileCoverage()
    by_patch: dict[str, FileCoverage] = {}
    unreached: list[Unreached] = []
    key = 0  # lines of several files pooled: each gets its own key
    for name, lines in sorted(added.items()):
        cov = files.get(name)
        if cov is None:
            continue
        for number, line in lines.items():
            if line.patch not in series or number not in cov.lines:
                continue
            key += 1
            for sink in (merged, by_patch.setdefault(line.patch, FileCoverage())):
                sink.lines[key] = cov.lines[number]
                if number in cov.branches:
                    sink.branches[key] = cov.branches[number]
            if cov.lines[number] == 0:
                unreached.append(Unreached(name, number, line.text.strip(), line.patch))
    return {**_totals(merged), "by_patch": {p: _totals(c) for p, c in sorted(by_patch.items())},
            "not_reached": [u.__dict__ for u in unreached]}


def build_report(files: dict[str, FileCoverage], sources: tuple[str, ...], added: dict[str, dict[int, AddedLine]],
                 series: set[str], source_text: dict[str, list[str]]) -> dict[str, Any]:
    """The `coverage` object of summary.json; refuses added-line numbers that do not match the compiled source."""
    for name in sources:
        bad = mismatches(added.get(name, {}), source_text[name])
        if bad:
            raise ValueError(f"{name}: the series' added lines {bad[:5]} are not where the patches put them")
    return {"files": {s: _totals(files.get(s, FileCoverage())) for s in sources},
            "patch": patch_report(files, {s: added.get(s, {}) for s in sources}, series)}


def _condition(counts: list[int]) -> str:
    hit = sum(1 for c in counts if c > 0)
    return f"{_pct(hit, len(counts)):.0f}% ({hit}/{len(counts)})"


def cobertura_xml(files: dict[str, FileCoverage], sources: tuple[str, ...], src_dir: Path) -> str:
    """A Cobertura report (what CI systems and gcovr read) of the profiled files, paths relative to src_dir."""
    all_cov = FileCoverage()
    classes = []
    for i, name in enumerate(sources):
        cov = files.get(name, FileCoverage())
        for number, count in cov.lines.items():
            all_cov.lines[i * 10**7 + number] = count
        for number, counts in cov.branches.items():
            all_cov.branches[i * 10**7 + number] = counts
        lines = []
        for number, count in sorted(cov.lines.items()):
            counts = cov.branches.get(number)
            branch = f' branch="true" condition-coverage="{_condition(counts)}"' if counts else ' branch="false"'
            lines.append(f'<line number="{number}" hits="{count}"{branch}/>')
        classes.append(f'<class name={quoteattr(name)} filename={quoteattr(name)} {_rates(cov)} complexity="0">'
                       f'<methods/><lines>{"".join(lines)}</lines></class>')
    return (f'<?xml version="1.0" ?>\n<coverage {_rates(all_cov)} version="eclone-suite" timestamp="0">'
            f'<sources><source>{src_dir}</source></sources><packages><package name="kernel" {_rates(all_cov)} '
            f'complexity="0"><classes>{"".join(classes)}</classes></package></packages></coverage>\n')


def _rates(cov: FileCoverage) -> str:
    lh, lt = cov.line_totals()
    bh, bt = cov.branch_totals()
    return (f'line-rate="{lh / lt if lt else 0:.4f}" branch-rate="{bh / bt if bt else 0:.4f}" '
            f'lines-covered="{lh}" lines-valid="{lt}" branches-covered="{bh}" branches-valid="{bt}"')


def write_html(cobertura: Path, src_dir: Path, out: Path) -> str | None:
    """gcovr renders the Cobertura file with the compiled sources; returns why not when it cannot."""
    gcovr = shutil.which("gcovr") or str(Path(sys.executable).with_name("gcovr"))
    if not Path(gcovr).exists():
        return "gcovr not installed (pip install -r requirements.txt)"
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([gcovr, "--cobertura-add-tracefile", str(cobertura), "--root", str(src_dir),
                           "--html-details", str(out / "index.html"), "--html-title", "eclone-suite kernel coverage"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return f"gcovr failed: {(proc.stderr.strip().splitlines() or ['no output'])[-1]}"
    return None


def terminal_lines(report: dict[str, Any], max_unreached: int = 40) -> list[str]:
    """What the terminal summary prints: one line per file, the series' lines, then the unreached ones."""
    patch = report["patch"]
    width = max(len(label) for label in [*report["files"], "eclone series", *(f"  {p}" for p in patch["by_patch"])])

    def fmt(label: str, t: dict[str, Any]) -> str:
        lp, bp = t["line_percent"], t["branch_percent"]
        lines = f"{'-' if lp is None else f'{lp:5.1f}%'} ({t['lines'][0]}/{t['lines'][1]})"
        return (f"{label:{width}}  lines {lines:18} "
                f"branches {'-' if bp is None else f'{bp:5.1f}%'} ({t['branches'][0]}/{t['branches'][1]})")
    out = [fmt(name, t) for name, t in report["files"].items()]
    out.append(fmt("eclone series", patch))
    out += [fmt(f"  {name}", t) for name, t in patch["by_patch"].items()]
    missed = patch["not_reached"]
    if missed:
        out.append(f"series lines never reached ({len(missed)}):")
        out += [f"  {m['file']}:{m['line']}  {m['text']}" for m in missed[:max_unreached]]
        if len(missed) > max_unreached:
            out.append(f"  ... {len(missed) - max_unreached} more in coverage/coverage.json")
    if report.get("html"):
        out.append(f"html: {report['html']}")
    return out
