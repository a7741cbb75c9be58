"""A one-call scenario in symbols (chain, setup, call) and how it becomes a concrete, checked program."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..profiles import Profile
from ..programs import occupy_step, write_file_step
from .choices import CursorKind, PidChoice, cursor_value, free_pid, resolve_vector, stable_busy
from .effects import occupy_outcome
from .model import ChainState, Level
from .predict import Outcome, Spawn, child_levels, rules_for
from .runner import ChainModel, Verdict
from .sync import NS_LAST_PID


@dataclass(frozen=True)
class CallShape:
    """A call in symbols: caller level, vector (None: no vector), CLONE_NEWPID, and an overflow.

    `overflow` > 0 pads the vector to (the kernel level of the namespace it starts in) + 1 + overflow
    entries: longer than any kernel accepts, without ever naming a level above the agent's root.
    """

    at: int
    vector: tuple[PidChoice, ...] | None
    newpid: bool = False
    overflow: int = 0


@dataclass(frozen=True)
class Scenario:
    chain: dict[str, Any]
    call: CallShape
    cursors: tuple[tuple[int, CursorKind], ...] = ()
    occupied: tuple[tuple[int, PidChoice], ...] = ()


def innermost_level(profile_name: str, call: CallShape) -> int:
    """The deepest level a full vector names: clone3 starts in the child's namespace, the others in the caller's."""
    return call.at + (call.newpid and rules_for(profile_name).anchor == "child")


def named_levels(profile_name: str, call: CallShape, n: int) -> list[int]:
    """The levels an `n`-entry vector names, outermost first (root-anchored ones start at level 0)."""
    if rules_for(profile_name).anchor == "root":
        return list(range(n))
    inner = innermost_level(profile_name, call)
    return list(range(inner - n + 1, inner + 1))


def concrete_spawn(profile_name: str, call: CallShape, state: ChainState, tasks: Any = (),
                   recent: Mapping[int, list[int]] = {}, occupied: Mapping[int, set[int]] = {}) -> Spawn:
    """The Spawn a CallShape stands for in `state`; `occupied` pids (taken by setup steps) count as busy."""
    if call.vector is None:
        return Spawn(call.at, None, call.newpid)
    inner = innermost_level(profile_name, call)
    levels: list[Level] = child_levels(state, Spawn(call.at, None, call.newpid))
    n = len(call.vector)
    if n > inner + 1:
        raise ValueError(f"{n} symbolic pids for {inner + 1} levels: use overflow for longer vectors")
    targets = named_levels(profile_name, call, n)
    busy = {k: sorted(set(stable_busy(state, k, tasks)) | occupied.get(k, set()))
            for k in targets if k <= call.at}
    pids = resolve_vector(call.vector, [levels[k] for k in targets], busy, recent, occupied, targets)
    if call.overflow:
        total = state.kernel_level(inner) + 1 + call.overflow
        pad = [free_pid(levels[0], i) for i in range(total - n)]
        pids = (*pad, *pids)
    return Spawn(call.at, pids, call.newpid)


def setup_steps(scenario: Scenario, state: ChainState) -> tuple[list[dict[str, Any]], dict[int, set[int]]]:
    """Cursor writes and occupied pids as steps (levels whose worker lacks the capability are left out),
    and the pids the occupations take per level (a free choice in the call must avoid them)."""
    steps: list[dict[str, Any]] = []
    for level, kind in scenario.cursors:
        if state.may_choose_pids(state.creds[level], state.levels[level].owner):
            steps.append(write_file_step(NS_LAST_PID, str(cursor_value(kind, state.levels[level])), at=level))
    taken: dict[int, set[int]] = {}
    for level, choice in scenario.occupied:
        pid = free_pid(state.levels[level], choice.salt, taken.get(level, set()))
        if occupy_outcome(state, level, pid).errno == 0:
            steps.append(occupy_step(pid, at=level))
            taken.setdefault(level, set()).add(pid)
    return steps, taken


def run_scenario(model: ChainModel, profile: Profile, scenario: Scenario) -> Verdict:
    """Sync, make the scenario concrete, run setup + call in one program, judge the call.

    When the model says the call was refused after it had allocated its inner levels, a second program
    asks for those inner pids again (outer levels left to the kernel): they must be free (NOTES.md step 10).
    """
    state = model.sync()
    tasks = _tasks(model)
    setup, taken = setup_steps(scenario, state)
    spawn = concrete_spawn(profile.name, scenario.call, state, tasks, occupied=taken)
    verdict = model.spawn(profile, spawn, setup=setup)
    again = reask_allocated(profile.name, spawn, verdict.outcome)
    if verdict.problems or again is None:
        return verdict
    return model.spawn(profile, again)


def reask_allocated(profile_name: str, spawn: Spawn, outcome: Outcome) -> Spawn | None:
    """The same call with only the entries of the levels a refused call had allocated (inner to the
    level that refused it); None when it allocated none of them."""
    if outcome.ok or outcome.level is None or not spawn.pids:
        return None
    if rules_for(profile_name).anchor == "root":  # the levels inner to the refusal, outer ones left at 0
        kept = tuple(0 if k <= outcome.level else pid for k, pid in enumerate(spawn.pids))
        return Spawn(spawn.at, kept, spawn.newpid) if any(kept) else None
    inner = innermost_level(profile_name, CallShape(spawn.at, (), spawn.newpid))
    keep = min(inner - outcome.level, len(spawn.pids))
    if keep <= 0 or not any(spawn.pids[-keep:]):
        return None
    return Spawn(spawn.at, spawn.pids[-keep:], spawn.newpid)


def _tasks(model: ChainModel) -> list[list[int]]:
    """The chain's workers (stable busy pids at every level they live in)."""
    return [list(w) for w in model.workers or []]
