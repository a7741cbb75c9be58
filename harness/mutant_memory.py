"""Which tests killed each mutant last time, kept across runs, so `harness mutants` can run them first.

A --quick run stops at its first kill; with the known killers first, a mutant that is still killed by
them costs seconds instead of the minutes the suite takes to reach them. The verdict stays exact: a
mutant the old killers no longer kill is judged by the rest of the suite, in its usual order.
"""

from __future__ import annotations

import json
from pathlib import Path

from .paths import cache_dir

FIRST = 3  # killers put first per mutant: enough to survive one test being renamed or deselected


def memory_file() -> Path:
    return cache_dir() / "mutants" / "killers.json"


def load(path: Path | None = None) -> dict[str, list[str]]:
    """Mutant name -> node ids of the tests that killed it; {} when nothing was recorded yet."""
    try:
        data = json.loads((path or memory_file()).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): [str(t) for t in v] for k, v in data.items() if isinstance(v, list)}


def first_args(killers: list[str]) -> tuple[str, ...]:
    """pytest arguments that run these killers before the rest of the suite."""
    return tuple(arg for nodeid in killers[:FIRST] for arg in ("--run-first", nodeid))


def remember(name: str, killed_by: list[str], path: Path | None = None) -> None:
    """Record a mutant's killers (kept when this run found none: a build failure says nothing)."""
    if not killed_by:
        return
    path = path or memory_file()
    data = load(path)
    data[name] = list(killed_by)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(path)
