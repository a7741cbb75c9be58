"""Which pids are free at which level, read from a target through the oracle's view of a chain."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .oracle.choices import free_pid
from .oracle.model import RESERVED_PIDS, Level
from .oracle.runner import shared_levels
from .oracle.sync import chain_base, observe, sync_steps
from .programs import pids_step, program

if TYPE_CHECKING:
    from harness.targets.base import Target

SHARED_MARGIN = 64  # stay this far ahead of each level's cursor (automatic pids are handed out there)


def used_pids(target: Target, chain_spec: dict | None = None) -> dict[int, set[int]]:
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


def chain_levels(target: Target, chain_spec: dict | None = None) -> tuple[list[Level], dict[int, set[int]]]:
    """The chain's levels as the oracle sees them (exact pids in use in *its* namespaces, cursors), and
    the conservative per-index union of every task's NSpid (for levels deeper than the chain)."""
    spec = chain_spec or {"levels": []}
    depth = len(spec["levels"])
    reply = target.run(program(sync_steps(depth), spec))
    base = chain_base(spec, reply["chain"], target.info.root_level, shared_levels(target))
    state = observe(base, reply["chain"]["workers"], reply["steps"]).state
    union: dict[int, set[int]] = {}
    for vector in reply["steps"][0]["nspids"]:
        for level, pid in enumerate(vector):
            union.setdefault(level, set()).add(pid)
    return state.levels, union


def pick_free(target: Target, levels: int | Sequence[int], chain_spec: dict | None = None, seed: int | None = None,
              low: int | None = None) -> list[int]:
    """Distinct pids, each free at its level: `levels` is a count (levels 0..n-1, outermost first)
    or an explicit list of levels; drawn from the upper half of pid_max (or from `low` up).

    Free means free in the chain's own namespace (exact); levels deeper than the chain use the
    conservative union; on every level the next SHARED_MARGIN pids after the cursor are avoided.
    """
    known, union = chain_levels(target, chain_spec)
    rng = random.Random(seed)
    chosen: list[int] = []
    for level in range(levels) if isinstance(levels, int) else levels:
        lv = known[level] if level < len(known) else Level(pid_max=target.info.pid_max, used=union.get(level, set()))
        lo = low if low is not None else max(lv.pid_max // 2, RESERVED_PIDS + 1)
        # Forks at this level (kernel threads on a shared level; racers, their children, helpers on a
        # chain's own level) take the pids right after the cursor: a pid chosen there could be taken by
        # one of them between the choice and its use, or right after a refused call released it.
        avoid = set(chosen) | set(range(lv.cursor, lv.cursor + SHARED_MARGIN))
        pid = rng.randrange(lo, lv.pid_max)
        chosen.append(pid if lv.is_free(pid) and pid not in avoid else free_pid(lv, rng.randrange(1 << 16), avoid))
    return chosen
