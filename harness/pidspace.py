"""Which pids are free at which level, read from a target (before the oracle model takes over)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from .programs import pids_step, program


def used_pids(target: Any, chain_spec: dict | None = None) -> dict[int, set[int]]:
    """Pids in use per level index of NSpid, across every namespace seen from the root /proc.

    Conservative: chains built by other programs have their own namespaces at the same index,
    so a pid counted busy here may be free in the namespace a test uses, never the reverse.
    """
    result = target.run(program([pids_step()], chain_spec))
    used: dict[int, set[int]] = {}
    for vector in result["steps"][0]["nspids"]:
        for level, pid in enumerate(vector):
            used.setdefault(level, set()).add(pid)
    return used


def pick_free(target: Any, levels: int | Sequence[int], chain_spec: dict | None = None, seed: int | None = None,
              low: int | None = None) -> list[int]:
    """Distinct pids, each free at its level: `levels` is a count (levels 0..n-1, outermost first)
    or an explicit list of levels; drawn from the upper half of pid_max."""
    used = used_pids(target, chain_spec)
    rng = random.Random(seed)
    pid_max = target.info.pid_max
    lo = low if low is not None else max(pid_max // 2, 301)
    chosen: list[int] = []
    for level in range(levels) if isinstance(levels, int) else levels:
        while True:
            pid = rng.randrange(lo, pid_max)
            if pid not in used.get(level, set()) and pid not in chosen:
                chosen.append(pid)
                break
    return chosen
