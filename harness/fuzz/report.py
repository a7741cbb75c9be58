"""The end of a fuzz session: distinct failures on stdout, everything in fuzz.json."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .failures import Failure


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


def render(failures: list[Failure], counts: dict[str, Any], jobs: int, ended: str) -> list[str]:
    """The report a person reads: what ran, then each distinct failure with where to replay it."""
    lines = [f"fuzz: {_clock(counts['seconds'])} on {jobs} VM{'s' if jobs > 1 else ''} ({ended}): "
             f"{counts['examples']} examples ({counts['examples_per_second']}/s), "
             f"{counts['programs']} programs ({counts['programs_per_second']}/s), {counts['test_runs']} test runs"]
    if not failures:
        return [*lines, "no failures"]
    lines.append(f"{len(failures)} distinct failure{'s' if len(failures) > 1 else ''}:")
    for n, f in enumerate(failures, 1):
        lines.append(f"{n}. [{f.kind}] {f.title}")
        lines.append(f"   seen {f.count} time{'s' if f.count > 1 else ''}, first after {_clock(f.first_seen)} "
                     f"({f.first_seen_at}) in {f.test}")
        if len(f.tests) > 1:
            lines.append(f"   also in: {', '.join(t for t in f.tests if t != f.test)}")
        lines.append(f"   reproducer: {f'python -m harness repro {f.reproducer}' if f.reproducer else 'none saved'}")
    return lines


def to_json(failures: list[Failure], counts: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    return {**meta, **counts, "finished": time.time(), "distinct_failures": len(failures),
            "failures": [f.to_json() for f in failures]}


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Whole or not at all: readers (the live line, the other workers) may read it at any moment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)
