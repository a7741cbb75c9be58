"""Replayable JSON reproducers: the programs a failing test ran, with the results the kernel gave.

A test's assertion is Python, but what it sent to the kernel is data: replaying the same programs on
another kernel and comparing the outcomes that do not depend on timing (errnos, whether a child was
made, the pids a vector asked for) tells whether that kernel shows the same behaviour.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .race_check import race_expectation, race_signature

FORMAT = "eclone-suite-repro/1"


@dataclass
class Recording:
    """Programs in the order a test ran them, each with the result it got."""

    test: str = ""
    kernel: str = ""
    target: str = ""
    runs: list[dict[str, Any]] = field(default_factory=list)

    def add(self, program: dict[str, Any], result: dict[str, Any]) -> None:
        self.runs.append({"program": program, "result": result})

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "test": self.test, "kernel": self.kernel, "target": self.target, "runs": self.runs}


def load(path: Path) -> Recording:
    """Read a reproducer file; a clear UsageError for anything else."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UsageError(f"{path}: not a readable reproducer ({err})") from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UsageError(f"{path}: not a reproducer file (expected format {FORMAT})")
    return Recording(data.get("test", ""), data.get("kernel", ""), data.get("target", ""), data.get("runs", []))


def save(recording: Recording, directory: Path) -> Path:
    """Write under `directory`, named after the test (safe for any file system)."""
    directory.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", recording.test.split("/")[-1])[:150] or "program"
    path = directory / f"{name}.json"
    path.write_text(json.dumps(recording.to_json(), indent=1))
    return path


def _requested_pids(step: dict[str, Any]) -> set[int]:
    """Every 32-bit value written for a syscall step: a child pid found here was asked for."""
    values: set[int] = set()
    for _, hexdata in step.get("write", []):
        data = bytes.fromhex(hexdata)
        values.update(v for (v,) in struct.iter_unpack("<i", data[: len(data) // 4 * 4]) if v > 0)
    return values


def signature(step: dict[str, Any], result: dict[str, Any]) -> dict[str, Any] | None:
    """The timing-independent part of one step's outcome (None: nothing comparable)."""
    if step.get("op") == "syscall":
        child = result.get("child") or {}
        asked = _requested_pids(step)
        nspid = child.get("nspid") or []
        sig: dict[str, Any] = {"errno": result.get("errno", 0), "child": bool(child)}
        if nspid and all(p in asked or p == 1 for p in nspid):
            sig["nspid"] = list(nspid)
        return sig
    if step.get("op") in ("occupy", "release"):
        return {"ok": bool(result.get("ok"))}
    if step.get("op") == "race" and result:
        return race_signature(step, result)
    return None


def expectations(program: dict[str, Any], result: dict[str, Any]) -> list[dict[str, Any] | None]:
    """Per-step expectations for a C reproducer, from a result taken as the correct behaviour."""
    return [signature(s, r) if s.get("op") == "syscall" else race_expectation(s, r) if s.get("op") == "race"
            else None for s, r in zip(program.get("steps", []), result.get("steps", []), strict=False)]


@dataclass
class StepDiff:
    run: int
    step: int
    op: str
    recorded: dict[str, Any] | None
    now: dict[str, Any] | None

    @property
    def same(self) -> bool:
        return self.recorded == self.now


def compare(recording: Recording, results: Iterable[dict[str, Any]]) -> list[StepDiff]:
    """Step by step: the recorded signature versus the one just obtained."""
    diffs = []
    for run_index, (run, now) in enumerate(zip(recording.runs, results, strict=False)):
        triples = zip(run["program"].get("steps", []), run["result"].get("steps", []), now.get("steps", []),
                      strict=False)
        for index, (step, old, new) in enumerate(triples):
            diffs.append(StepDiff(run_index, index, step.get("op", "?"), signature(step, old), signature(step, new)))
    return diffs
