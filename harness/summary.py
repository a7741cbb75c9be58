"""The run's verdict as a table (area x profile) and as summary.json, from pytest's reports."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from .profiles import ALL_PROFILES

OUTCOMES = ("passed", "failed", "skipped")
COLUMNS = (*OUTCOMES, "crashes")  # crashes: failed tests during which the kernel oopsed/panicked
CRASH_PROPERTY = "kernel_crash"  # user property the plugin sets on a test the kernel crashed in
RACE_PROPERTY = "race"  # user property of a race run: {"rounds", "raced", "skews"} (suite/races/conftest.py)


def area_of(nodeid: str) -> str:
    """suite/<area>/... -> area; the harness's own tests are "harness"."""
    parts = nodeid.split("::", 1)[0].split("/")
    if len(parts) >= 2 and parts[0] == "suite":
        return parts[1]
    return "harness"


def profile_of(report: pytest.TestReport) -> str:
    for key, value in getattr(report, "user_properties", []):
        if key == "profile":
            return str(value)
    name = report.nodeid.rsplit("[", 1)
    if len(name) == 2:
        parts = name[1].rstrip("]").split("-")
        for candidate in ALL_PROFILES:
            if candidate in parts:
                return candidate
    return "-"


def render_table(counts: dict[tuple[str, str], Counter[str]]) -> list[str]:
    """Plain-text table; one row per (area, profile)."""
    rows = [("area", "profile", *COLUMNS)]
    for (area, prof), c in sorted(counts.items()):
        rows.append((area, prof, *(str(c[k]) for k in COLUMNS)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]


class SummaryCollector:
    """Collects one outcome per test (the worst of setup/call/teardown)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.tests: dict[str, dict[str, Any]] = {}
        self.started = time.time()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        entry = self.tests.setdefault(report.nodeid, {
            "nodeid": report.nodeid, "area": area_of(report.nodeid), "profile": profile_of(report),
            "outcome": "passed", "duration": 0.0, "message": ""})
        entry["duration"] += report.duration
        for key, value in getattr(report, "user_properties", []):
            if key == CRASH_PROPERTY:
                entry["crash"] = str(value)
            elif key == RACE_PROPERTY and isinstance(value, dict) and report.when == "call":
                race = entry.setdefault("race", {"rounds": 0, "raced": 0, "skews": []})
                race["rounds"] += int(value.get("rounds", 0))
                race["raced"] += int(value.get("raced", 0))
                race["skews"] += [int(x) for x in value.get("skews", [])]
        if report.failed:
            entry["outcome"] = "failed"
            entry["message"] = str(report.longrepr)[-4000:]
        elif report.skipped and entry["outcome"] != "failed":
            entry["outcome"] = "skipped"
            longrepr = report.longrepr
            entry["message"] = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)

    def counts(self) -> dict[tuple[str, str], Counter[str]]:
        table: dict[tuple[str, str], Counter[str]] = {}
        for entry in self.tests.values():
            cell = table.setdefault((entry["area"], entry["profile"]), Counter())
            cell[entry["outcome"]] += 1
            cell["crashes"] += "crash" in entry
        return table

    def races(self) -> dict[str, Any] | None:
        """Race rounds over the run: how many, how many raced (two calls at once on different CPUs), and the
        median release skew (cycles of the time stamp counter between racers on different CPUs)."""
        entries = [e["race"] for e in self.tests.values() if "race" in e]
        if not entries:
            return None
        skews = sorted(x for e in entries for x in e["skews"])
        return {"tests": len(entries), "rounds": sum(e["rounds"] for e in entries),
                "raced": sum(e["raced"] for e in entries),
                "median_release_skew_cycles": skews[len(skews) // 2] if skews else None}

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.tests:
            return
        terminalreporter.section("eclone-suite summary")
        for line in render_table(self.counts()):
            terminalreporter.write_line(line)
        if races := self.races():
            terminalreporter.write_line(f"races: {races['raced']} of {races['rounds']} rounds raced in "
                                        f"{races['tests']} tests; median release skew "
                                        f"{races['median_release_skew_cycles']} cycles")
        for entry in self.crashes():
            terminalreporter.write_line(f"kernel crash: {entry['title']} (in {entry['nodeid']})")

    def crashes(self) -> list[dict[str, str]]:
        return [{"nodeid": e["nodeid"], "title": e["crash"]} for e in sorted(self.tests.values(),
                                                                             key=lambda e: e["nodeid"]) if "crash" in e]

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if hasattr(self.config, "workerinput"):
            return
        ktap = self.config.getoption("--ktap", None)
        if ktap is not None:
            from .ktap import render_ktap
            Path(ktap).parent.mkdir(parents=True, exist_ok=True)
            Path(ktap).write_text(render_ktap(self.tests.values()))
        results = self.config.getoption("--results", None)
        if results is None:
            return
        Path(results).mkdir(parents=True, exist_ok=True)
        totals = Counter(e["outcome"] for e in self.tests.values())
        data = {"started": self.started, "finished": time.time(), "exitstatus": int(exitstatus),
                "totals": {k: totals[k] for k in OUTCOMES},
                "table": [{"area": a, "profile": p, **{k: c[k] for k in COLUMNS}}
                          for (a, p), c in sorted(self.counts().items())],
                "crashes": self.crashes(),
                "races": self.races(),
                "tests": sorted(self.tests.values(), key=lambda e: e["nodeid"])}
        (Path(results) / "summary.json").write_text(json.dumps(data, indent=1))
