"""Hypothesis strategies of the semantics suite, named for what they make; all shrink towards the
simple case (a free pid, depth 0, no user namespace, every capability, a call at level 0).

They make symbols (harness.oracle.choices), not numbers: the same example means the same thing on
every target and is made concrete against the live chain just before it runs.
"""

from __future__ import annotations

from hypothesis import strategies as st

from .oracle.choices import CursorKind, Kind, PidChoice
from .oracle.model import CAP_CHECKPOINT_RESTORE, CAP_SYS_ADMIN
from .oracle.scenario import CallShape, Scenario, innermost_level
from .programs import chain

CAPABILITY_SETS: tuple[tuple[int, ...] | None, ...] = (None, (), (CAP_SYS_ADMIN,), (CAP_CHECKPOINT_RESTORE,))
SALTS = st.integers(0, 2**16)
# Free and busy entries are drawn more often than the other kinds: a busy outer level after free inner
# ones is what exposes a pid kept by a refused call.
KINDS = (Kind.FREE, Kind.FREE, Kind.FREE, Kind.BUSY, Kind.BUSY, *(k for k in Kind if k not in (Kind.FREE, Kind.BUSY)))


def pid_choices(kinds: tuple[Kind, ...] = KINDS) -> st.SearchStrategy[PidChoice]:
    """One vector entry: free, 0, 1, busy, 299, 300, pid_max-1, pid_max, negative, a duplicate, a recent pid."""
    return st.builds(PidChoice, st.sampled_from(kinds), SALTS)


def pid_vectors(levels: int, kinds: tuple[Kind, ...] = KINDS) -> st.SearchStrategy[tuple[PidChoice, ...]]:
    """1..levels entries (any length equally likely), outermost first (the last names the innermost level)."""
    return st.integers(1, max(levels, 1)).flatmap(
        lambda n: st.lists(pid_choices(kinds), min_size=n, max_size=n).map(tuple))


def capability_sets() -> st.SearchStrategy[tuple[int, ...] | None]:
    """A worker's capabilities: all (None), none, only CAP_SYS_ADMIN, only CAP_CHECKPOINT_RESTORE."""
    return st.sampled_from(CAPABILITY_SETS)


@st.composite
def namespace_chains(draw: st.DrawFn, max_depth: int = 3, min_depth: int = 0) -> dict:
    """A chain spec (PROGRAMS.md): depth, the levels that get their own user namespace, dropped capabilities."""
    depth = draw(st.integers(min_depth, max_depth))
    levels = range(1, depth + 1)
    userns_at = draw(st.sets(st.sampled_from(levels))) if depth else set()
    caps = {k: draw(capability_sets()) for k in levels}
    return chain(depth, userns_at, {k: v for k, v in caps.items() if v is not None})


def cursor_settings(depth: int) -> st.SearchStrategy[tuple[tuple[int, CursorKind], ...]]:
    """ns_last_pid writes before the call: (level, where), at most two."""
    return st.lists(st.tuples(st.integers(0, depth), st.sampled_from(CursorKind)), max_size=2).map(tuple)


def occupations(depth: int) -> st.SearchStrategy[tuple[tuple[int, PidChoice], ...]]:
    """Pids made busy before the call (by ns_last_pid + fork): (level, which free pid), at most two."""
    return st.lists(st.tuples(st.integers(0, depth), st.builds(PidChoice, st.just(Kind.FREE), SALTS)),
                    max_size=2).map(tuple)


@st.composite
def call_shapes(draw: st.DrawFn, spec: dict, profile_name: str, newpid: bool = True,
                overflow: bool = True) -> CallShape:
    """A call in a chain: caller level, CLONE_NEWPID or not, a vector of 1..levels entries (or none),
    rarely one longer than the kernel allows."""
    depth = len(spec.get("levels", []))
    at = draw(st.integers(0, depth))
    new = newpid and draw(st.integers(0, 7)) == 7
    levels = innermost_level(profile_name, CallShape(at, (), new)) + 1
    vector = draw(st.one_of(pid_vectors(levels), st.none()))
    extra = draw(st.integers(0, 9)) if overflow and vector is not None else 0
    return CallShape(at, vector, new, overflow=max(0, extra - 7))


@st.composite
def scenarios(draw: st.DrawFn, profile_name: str, max_depth: int = 3) -> Scenario:
    """A chain, setup (cursor moves, occupied pids) and one call in it."""
    spec = draw(namespace_chains(max_depth))
    depth = len(spec["levels"])
    return Scenario(spec, draw(call_shapes(spec, profile_name)), draw(cursor_settings(depth)),
                    draw(occupations(depth)))
