"""Mutation results: junit -> failing tests, failing tests + baseline -> verdict, verdicts -> table and JSON.

Knows nothing about kernels or VMs (the runner in harness/mutants.py does); it only reads what a
run left behind and decides whether a mutant was killed. A mutant can be judged by several
*detectors*: "suite" (this repository's tests, which the verdict is about) and "selftests" (the
kernel's clone3 selftests, a peer: harness/mutant_peers.py); the table has a column per detector.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Verdicts, in the order the totals list them. Only "killed" counts as a kill: a mutant that does
# not compile or boot, or whose run timed out or broke, proves nothing about the suite.
KILLED, SURVIVED = "killed", "survived"
BUILD_FAILED, BOOT_FAILED, TIMEOUT, ERROR = "build-failed", "boot-failed", "timeout", "error"
VERDICTS = (KILLED, SURVIVED, BUILD_FAILED, BOOT_FAILED, TIMEOUT, ERROR)


@dataclass
class RunOutcome:
    """What one detector run produced, before it is compared with the baseline."""

    status: str  # "completed", or BUILD_FAILED / BOOT_FAILED / TIMEOUT / ERROR
    failed: list[str] = field(default_factory=list)  # node ids that failed or errored
    tests: int = 0  # test cases in the report
    seconds: float = 0.0
    detail: str = ""  # why it did not complete (last compiler lines, the boot error, ...)


@dataclass
class DetectorResult:
    """One detector's verdict on one mutant."""

    verdict: str
    killed_by: list[str] = field(default_factory=list)
    failed_on_baseline_too: list[str] = field(default_factory=list)
    tests: int = 0
    seconds: float = 0.0
    detail: str = ""


@dataclass
class MutantResult:
    name: str
    bug_class: str
    breaks: str
    patch: str
    build_seconds: float = 0.0
    detectors: dict[str, DetectorResult] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        """The suite's verdict: the table judges the suite; other detectors (the selftests) are peers."""
        judged = self.detectors.get("suite") or next(iter(self.detectors.values()), None)
        return judged.verdict if judged is not None else ERROR


def nodeid_of(classname: str, name: str, root: Path) -> str:
    """pytest's node id from junit's dotted classname ("suite.abi.test_x[.TestClass]") and test name."""
    parts = classname.split(".") if classname else []
    for k in range(len(parts), 0, -1):
        module = "/".join(parts[:k]) + ".py"
        if (root / module).is_file():
            return "::".join([module, *parts[k:], name])
    return "::".join([*([classname] if classname else []), name])


def parse_junit(path: Path, root: Path) -> tuple[int, list[str]]:
    """(number of test cases, node ids with a <failure> or <error>) from a pytest junit file."""
    tree = ET.parse(path)
    total = 0
    failed: list[str] = []
    for case in tree.iter("testcase"):
        total += 1
        if case.find("failure") is not None or case.find("error") is not None:
            nodeid = nodeid_of(case.get("classname", ""), case.get("name", ""), root)
            if nodeid not in failed:
                failed.append(nodeid)
    return total, failed


def judge(outcome: RunOutcome, baseline_failed: set[str]) -> DetectorResult:
    """A completed run kills the mutant if a test fails that passed on the reference kernel."""
    if outcome.status != "completed":
        return DetectorResult(verdict=outcome.status, tests=outcome.tests, seconds=outcome.seconds,
                              detail=outcome.detail)
    killers = [t for t in outcome.failed if t not in baseline_failed]
    also = [t for t in outcome.failed if t in baseline_failed]
    return DetectorResult(verdict=KILLED if killers else SURVIVED, killed_by=killers, failed_on_baseline_too=also,
                          tests=outcome.tests, seconds=outcome.seconds, detail=outcome.detail)


def short_test(nodeid: str, width: int = 56) -> str:
    """suite/semantics/test_x.py::test_y[eclone] -> test_y[eclone], cut to `width` (the JSON has full ids)."""
    name = nodeid.rsplit("::", 1)[-1]
    return name if len(name) <= width else name[: width - 1] + "~"


def _cells(result: MutantResult, detectors: list[str], killers_shown: int) -> list[str]:
    cells = [result.name, result.bug_class, result.verdict]
    first: list[str] = []
    seconds = 0.0
    for name in detectors:
        det = result.detectors.get(name)
        if det is None:
            cells.append("-")
            continue
        cells.append(str(len(det.killed_by)) if det.verdict in (KILLED, SURVIVED) else det.verdict)
        if name == detectors[0]:
            first.extend(det.killed_by)
        seconds += det.seconds
    shown = ", ".join(short_test(t) for t in first[:killers_shown])
    if len(first) > killers_shown:
        shown += f", +{len(first) - killers_shown}"
    if not first:
        shown = next((d.detail for d in result.detectors.values() if d.detail), "")[:80]
    return [*cells, shown, f"{result.build_seconds:.0f}", f"{seconds:.0f}"]


def render_table(results: list[MutantResult], killers_shown: int = 2) -> list[str]:
    """One row per mutant: verdict, number of killing tests per detector, the first killers, times."""
    detectors = sorted({d for r in results for d in r.detectors}, key=lambda d: (d != "suite", d))
    rows = [["mutant", "bug class", "verdict", *detectors, "first killers / why", "build s", "run s"]]
    rows += [_cells(r, detectors, killers_shown) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]


def totals(results: list[MutantResult]) -> dict[str, int]:
    counts = {v: 0 for v in VERDICTS}
    for result in results:
        counts[result.verdict] += 1
    return {"mutants": len(results), **counts}


def exit_code(results: list[MutantResult], baseline_failed: list[str]) -> int:
    """0 only when every mutant is killed and the reference kernel passes the selected tests."""
    if baseline_failed or any(r.verdict != KILLED for r in results):
        return 1
    return 0


def to_json(results: list[MutantResult], baseline: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    return {**meta, "baseline": baseline, "totals": totals(results),
            "mutants": [{**asdict(r), "verdict": r.verdict} for r in results]}


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)
