"""KTAP output (Documentation/dev-tools/ktap.rst) so KernelCI/LAVA-style systems can ingest a run.

One subtest per suite area, one result line per pytest case; skips carry `# SKIP reason`,
failures a few `#` diagnostic lines before their result (KTAP puts diagnostics before the line).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

_DIAG_LINES = 8


def _name(nodeid: str) -> str:
    """The case's name without the area's path: KTAP names are one line with no '#'."""
    return nodeid.split("::", 1)[-1].replace("#", "_")


def _case_lines(number: int, entry: Mapping[str, Any], indent: str) -> list[str]:
    lines = []
    name = _name(entry["nodeid"])
    if entry["outcome"] == "failed":
        message = [m for m in str(entry.get("message", "")).splitlines() if m.strip()]
        lines += [f"{indent}# {m}" for m in message[-_DIAG_LINES:]]
        lines.append(f"{indent}not ok {number} {name}")
    elif entry["outcome"] == "skipped":
        reason = " ".join(str(entry.get("message", "")).split()).replace("#", "_")
        lines.append(f"{indent}ok {number} {name} # SKIP {reason}".rstrip())
    else:
        lines.append(f"{indent}ok {number} {name}")
    return lines


def render_ktap(entries: Iterable[Mapping[str, Any]]) -> str:
    """KTAP v1 text: entries are summary.json's tests (nodeid, area, outcome, message)."""
    by_area: dict[str, list[Mapping[str, Any]]] = {}
    for entry in sorted(entries, key=lambda e: e["nodeid"]):
        by_area.setdefault(entry["area"], []).append(entry)
    out = ["KTAP version 1", f"1..{len(by_area)}"]
    for number, (area, cases) in enumerate(sorted(by_area.items()), start=1):
        out += ["    KTAP version 1", f"    # Subtest: {area}", f"    1..{len(cases)}"]
        for case_number, entry in enumerate(cases, start=1):
            out += _case_lines(case_number, entry, "    ")
        failed = any(e["outcome"] == "failed" for e in cases)
        skipped = all(e["outcome"] == "skipped" for e in cases)
        out.append(f"{'not ok' if failed else 'ok'} {number} {area}{' # SKIP' if skipped and not failed else ''}")
    return "\n".join(out) + "\n"
