"""Symbolic pids ("a free pid", "a busy one", "pid_max - 1", ...) and cursors, made concrete against a
ChainState. Strategies generate the symbols (they shrink well and mean the same on every target);
the resolver turns them into numbers just before a program is built."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .model import RESERVED_PIDS, ChainState, Level


class Kind(enum.Enum):
    """What a vector entry is, simplest first (hypothesis shrinks towards the first)."""

    FREE = "free"
    ZERO = "0"
    ONE = "1"
    BUSY = "busy"
    BELOW_RESERVED = "299"
    RESERVED = "300"
    PID_MAX_MINUS_1 = "pid_max-1"
    PID_MAX = "pid_max"
    NEGATIVE = "negative"
    DUPLICATE = "duplicate"
    RECENT = "recent"


class CursorKind(enum.Enum):
    """Where a setup step puts a level's allocation cursor (ns_last_pid)."""

    LOW = "low"  # ns_last_pid 100: still below RESERVED_PIDS
    AT_299 = "299"  # cursor 300: not yet past RESERVED_PIDS
    AT_300 = "300"  # cursor 301: past it
    HIGH = "high"  # the middle of the range
    NEAR_MAX = "pid_max-1"  # the next automatic pid wraps


@dataclass(frozen=True)
class PidChoice:
    kind: Kind
    salt: int = 0  # which free/busy/recent pid, or which entry a duplicate copies


def cursor_value(kind: CursorKind, level: Level) -> int:
    """The ns_last_pid value a CursorKind stands for at `level`."""
    return {CursorKind.LOW: 100, CursorKind.AT_299: RESERVED_PIDS - 1, CursorKind.AT_300: RESERVED_PIDS,
            CursorKind.HIGH: level.pid_max // 2, CursorKind.NEAR_MAX: level.pid_max - 1}[kind]


def free_pid(level: Level, salt: int, avoid: set[int] = frozenset()) -> int:
    """A pid free at `level`, above RESERVED_PIDS; on a shared level far from the cursor (other tasks
    allocate near it)."""
    lo = RESERVED_PIDS + 1
    span = level.pid_max - lo
    anchor = (level.cursor + span // 2) if level.shared else lo + span // 4
    start = lo + (anchor - lo + salt * 7919) % span
    for i in range(span):
        pid = lo + (start - lo + i) % span
        if pid not in level.used and pid not in avoid:
            return pid
    raise ValueError("no free pid above RESERVED_PIDS")


def resolve_pid(choice: PidChoice, level: Level, busy: Sequence[int], recent: Sequence[int],
                avoid: set[int] = frozenset()) -> int | None:
    """The number a choice stands for at `level` (None for DUPLICATE: resolved against the vector)."""
    kind, salt = choice.kind, choice.salt
    fixed = {Kind.ZERO: 0, Kind.ONE: 1, Kind.BELOW_RESERVED: RESERVED_PIDS - 1, Kind.RESERVED: RESERVED_PIDS,
             Kind.PID_MAX_MINUS_1: level.pid_max - 1, Kind.PID_MAX: level.pid_max,
             Kind.NEGATIVE: (-1, -(2**31))[salt % 2]}
    if kind in fixed:
        return fixed[kind]
    if kind is Kind.BUSY and busy:
        return sorted(busy)[salt % len(busy)]
    if kind is Kind.RECENT and recent:
        return list(recent)[salt % len(recent)]
    if kind is Kind.DUPLICATE:
        return None
    return free_pid(level, salt, avoid)


def stable_busy(state: ChainState, level: int, tasks: Sequence[Sequence[int]]) -> list[int]:
    """Busy pids that stay busy: on a shared level only the chain's own tasks (and pid 1), elsewhere all."""
    lv = state.levels[level]
    if not lv.shared:
        return sorted(lv.used)
    return sorted(({1} | {t[level] for t in tasks if len(t) > level}) & lv.used)


def resolve_vector(choices: Sequence[PidChoice], levels: Sequence[Level], busy: Mapping[int, Sequence[int]],
                   recent: Mapping[int, Sequence[int]] = {}, avoid: Mapping[int, set[int]] = {},
                   indices: Sequence[int] | None = None) -> tuple[int, ...]:
    """Concrete pids for `choices` (outermost first); entry j is resolved against `levels[j]`.

    `indices[j]` is the level number entry j targets (for `busy`/`recent`/`avoid` lookups).
    """
    idx = list(indices) if indices is not None else list(range(len(choices)))
    out: list[int | None] = [resolve_pid(c, lv, busy.get(k, ()), recent.get(k, ()), avoid.get(k, set()))
                             for c, lv, k in zip(choices, levels, idx, strict=True)]
    concrete = [p for p in out if p is not None]
    for j, (c, p) in enumerate(zip(choices, out, strict=True)):
        if p is None:
            out[j] = concrete[c.salt % len(concrete)] if concrete else free_pid(levels[j], c.salt)
    return tuple(int(p) for p in out if p is not None)
