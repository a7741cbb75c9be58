"""A stateful race test: hypothesis builds namespace state (a chain of depth 0..3, pids held at some
levels, allocation cursors pushed) and, in that state, races two or three calls whose pid vectors overlap
on one level (the same pid there, or one explicit call against a plain fork whose cursor sits just below
that pid), a few rounds per race. Whatever the interleaving, NOTES.md eclone rule 10 and clone3's "all
freed on failure" promise, and every race step checks:

- a contested pid goes to at most one task of a namespace;
- each racer ends in one of the outcomes the oracle allows (it cannot say who wins, so it gives a set):
  what the call does alone in the state before the race (harness/oracle predict), or the profile's busy
  errno when another racer asks for one of its pids; a plain fork always succeeds. Vectors hold only
  free, held or contested pids above RESERVED_PIDS and eclone's 0, in a chain where every level may
  choose pids, so alone a call succeeds or is busy: EINVAL, EPERM or EAGAIN is never allowed;
- a winner's child has exactly the pids it asked for, at every level it named;
- when every racer would succeed alone, someone wins: levels are taken innermost first and held until the
  call ends, so the racer that refused another either wins or was itself refused further out;
- a refused racer leaves none of its pids in use;
- after the race, with every child released: no live task shares a pid with another in a namespace, the
  chain holds exactly what it held before, and every pid the race asked for is granted again when asked
  for alone (a pid kept by a refused call is invisible in /proc but refused: the leak check).

Each example starts from freshly built namespaces. A failure prints the steps and the example's programs
as JSON, in order, like suite/semantics/test_state_machine.py; a race lost once may be won when
hypothesis replays the steps, so the first failure seen is the one reported.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from harness.hypothesis_profiles import stateful_settings
from harness.oracle.choices import CursorKind, cursor_value, free_pid
from harness.oracle.model import ChainState
from harness.oracle.predict import Spawn, predict, rules_for
from harness.oracle.runner import ChainModel, Run
from harness.oracle.sync import NS_LAST_PID
from harness.programs import chain, occupy_step, race_step, release_step, syscall_step, write_file_step
from harness.race_invariant import Judge, round_problems

from .conftest import (
    CLONE_VM,
    PIDS_WITH_NS,
    RacePlan,
    Racer,
    Races,
    chain_namespaces,
    next_picks,
    require_cpus,
    shared_pids,
    split_rounds,
    unchanged_problems,
)

MAX_DEPTH = 3
INDEX = st.integers(0, 63)
SALTS = st.integers(0, 2**16)
SYS_CLONE, SIGCHLD = 56, 17
GAP = 16  # explicit choices at one level stay this far apart (a fork that misses its pid takes the next)
# An example is many programs: ci keeps it short (both profiles in ~40 s under TCG), fuzz runs long.
MACHINE = {"ci": {"max_examples": 4, "stateful_step_count": 8}, "dev": {"max_examples": 20, "stateful_step_count": 20},
           "fuzz": {"stateful_step_count": 40}}


def race_rounds(session_rounds: int) -> int:
    """Rounds per race: a fifth of the session's race rounds (ci 6), at most 20 (more steps beat longer races).
    The rounds are the cheap part of a race program (its racers are forked once, its checks run once)."""
    return max(2, min(session_rounds // 5, 20))


class Entry(enum.Enum):
    """A vector entry at a level other than the contested one, simplest first."""

    OWN = "own"  # a free pid no other racer asks for
    SHARED = "shared"  # the level's second contested pid, shared by every racer that draws it
    HELD = "held"  # the pid of one of the machine's holders at that level (alone: busy), else OWN
    AUTO = "auto"  # eclone's 0, the kernel's choice (clone3: OWN)


@dataclass(frozen=True)
class RacerShape:
    at: int  # the caller's level, from the contested level down (modulo what the chain has)
    length: int  # how many levels the vector names, at least up to the contested one
    entries: tuple[Entry, ...]  # per level 0..MAX_DEPTH


@dataclass(frozen=True)
class RaceShape:
    level: int  # the contested level (modulo depth + 1)
    racers: tuple[RacerShape, ...]
    fork: bool  # the last racer is a plain fork aimed at the contested pid through that level's cursor
    salt: int


def race_shapes() -> st.SearchStrategy[RaceShape]:
    """Two or three racers; shrinks towards two calls at the root asking for one free pid."""
    racer = st.builds(RacerShape, INDEX, INDEX, st.tuples(*[st.sampled_from(Entry)] * (MAX_DEPTH + 1)))
    return st.builds(RaceShape, INDEX, st.lists(racer, min_size=2, max_size=3).map(tuple), st.booleans(), SALTS)


def plan_race(shape: RaceShape, state: ChainState, held: dict[int, list[int]], auto: bool) -> RacePlan:
    """Concrete pids for a shape in `state`: explicit choices far from every level's cursor and apart."""
    c = shape.level % (state.depth + 1)
    avoid = {k: next_picks(lv) for k, lv in enumerate(state.levels)}
    salt = iter(range(shape.salt, shape.salt + 1000))

    def pick(k: int) -> int:
        pid = free_pid(state.levels[k], next(salt), avoid[k])
        avoid[k] |= set(range(pid - GAP, pid + GAP))
        return pid

    contested, second = pick(c), {}
    racers = []
    for n, r in enumerate(shape.racers):
        at = c + r.at % (state.depth - c + 1)
        if shape.fork and n == len(shape.racers) - 1:
            racers.append(Racer(at, None))
            break
        shortest = at - c + 1
        length = shortest + r.length % (at + 2 - shortest)
        pids = []
        for k in range(at - length + 1, at + 1):
            entry = r.entries[k]
            if k == c:
                pids.append(contested)
            elif entry is Entry.SHARED:
                pids.append(second.setdefault(k, pick(k)))
            elif entry is Entry.HELD and held.get(k):
                pids.append(held[k][shape.salt % len(held[k])])
            else:
                pids.append(0 if entry is Entry.AUTO and auto else pick(k))
        racers.append(Racer(at, tuple(pids)))
    used = frozenset((k, p) for k, lv in enumerate(state.levels) for p in lv.used)
    return RacePlan(tuple(racers), (c, contested) if shape.fork else None, used)


@dataclass(frozen=True)
class Holder:
    level: int
    nspid: tuple[int, ...]


class RacesOverNamespaceState(RuleBasedStateMachine):
    """The chain in use, the pids the machine holds in it, and the model's view after the last step.

    Every rule ends with a race (with hypothesis's swarm testing a rule set without a race would be a
    wasted example, and ci has only a few): the race alone, or after building state."""

    def __init__(self, races: Races, rounds: int, failures: list[str]) -> None:
        super().__init__()
        self.races, self.profile, self.rounds = races, races.profile, rounds
        self.failures = failures  # every failed example's report, for the test
        self.trace: list[str] = []  # what the rules did, for the report
        self.model: ChainModel | None = None
        self.belief: ChainState | None = None
        self.holders: dict[str, Holder] = {}
        self.programs: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.serial = 0

    # --- plumbing ----------------------------------------------------------------------------------------
    def _run(self, action: list[dict[str, Any]], keep: bool = True, fresh: bool = False) -> Run:
        """The action and a sync after it, on the chain in use (keep: holders it names outlive it)."""
        assert self.model is not None
        workers = self.model.workers
        run = self.model.run(action, keep=keep, fresh=fresh, presync=False)
        self.programs.append(run.program)
        assert workers is None or self.model.workers == workers, f"chain rebuilt under the test: {self._replay()}"
        self.belief = run.after.state
        return run

    def _replay(self) -> str:
        return json.dumps({"profile": self.profile.name, "programs": self.programs}, separators=(",", ":"))

    def _note(self, what: str, **args: Any) -> None:
        self.trace.append(f"{what}({', '.join(f'{k}={v!r}' for k, v in args.items())})")

    def _level(self, index: int) -> int:
        assert self.belief is not None
        return index % (self.belief.depth + 1)

    def _release_all(self) -> None:
        if self.model is not None and self.holders:
            self._run([release_step(name, at=h.level) for name, h in sorted(self.holders.items())])
        self.holders.clear()

    def _use_chain(self, depth: int) -> None:
        """Holders are released first. The chain is built afresh: a pid another test (or the other profile's
        run) leaked in a cached chain is invisible to a sync and would be blamed on this example."""
        self._release_all()
        self.model = ChainModel(self.races.target, chain(depth))
        self._note("use_chain", depth=depth)
        self._run([], fresh=True)

    # --- rules -------------------------------------------------------------------------------------------
    @initialize(depth=st.integers(0, MAX_DEPTH), holds=st.lists(st.tuples(INDEX, SALTS), max_size=2))
    def build_chain(self, depth: int, holds: list[tuple[int, int]]) -> None:
        self._use_chain(depth)
        for level, salt in holds:
            self._occupy(level, salt)

    @rule(shape=race_shapes())
    def race(self, shape: RaceShape) -> None:
        self._race(shape)

    @rule(step=st.integers(1, MAX_DEPTH), shape=race_shapes())
    def switch_chain_then_race(self, step: int, shape: RaceShape) -> None:
        assert self.belief is not None
        self._use_chain((self.belief.depth + step) % (MAX_DEPTH + 1))
        self._race(shape)

    @rule(level=INDEX, salt=SALTS, shape=race_shapes())
    def occupy_then_race(self, level: int, salt: int, shape: RaceShape) -> None:
        self._occupy(level, salt)
        self._race(shape)

    @rule(pick=INDEX, shape=race_shapes())
    def free_then_race(self, pick: int, shape: RaceShape) -> None:
        """Without holders only the race: whether an occupy held its pid is the kernel's (a kernel thread may
        take it first), and a precondition on it would make hypothesis's draws differ between two runs of
        the same steps (FlakyStrategyDefinition when fuzzing replays them)."""
        if self.holders:
            self._free(sorted(self.holders)[pick % len(self.holders)])
        self._race(shape)

    @rule(level=INDEX, kind=st.sampled_from(CursorKind), shape=race_shapes())
    def push_cursor_then_race(self, level: int, kind: CursorKind, shape: RaceShape) -> None:
        self._push_cursor(self._level(level), kind)
        self._race(shape)

    # --- state -------------------------------------------------------------------------------------------
    def _occupy(self, level: int, salt: int) -> None:
        """A free pid far from the cursor held at a level (ns_last_pid + fork), kept across programs."""
        assert self.belief is not None
        k = self._level(level)
        lv = self.belief.levels[k]
        pid = free_pid(lv, salt, next_picks(lv))
        self.serial += 1
        name = f"h{self.serial}"
        self._note("occupy", level=k, pid=pid, name=name)
        res = self._run([occupy_step(pid, at=k, name=name)]).results[0]
        if res["ok"] and res["nspid"][k] == pid:
            self.holders[name] = Holder(k, tuple(res["nspid"]))
        elif not lv.shared:  # on a shared level a kernel thread may take the pid first
            self.problems.append(f"occupy {pid} at level {k} (free, ns_last_pid {pid - 1}): {res}")

    def _free(self, name: str) -> None:
        holder = self.holders.pop(name)
        self._note("free", name=name, nspid=holder.nspid)
        run = self._run([release_step(name, at=holder.level)])
        if run.results[0] != {"ok": True}:
            self.problems.append(f"release {name}: {run.results[0]}")
        for k, pid in enumerate(holder.nspid):
            if pid in run.after.state.levels[k].used and not run.after.state.levels[k].shared:
                self.problems.append(f"holder {name} {list(holder.nspid)} was released, pid {pid} is still in use")

    def _push_cursor(self, k: int, kind: CursorKind) -> None:
        assert self.belief is not None
        value = cursor_value(kind, self.belief.levels[k])
        self._note("push_cursor", level=k, ns_last_pid=value)
        run = self._run([write_file_step(NS_LAST_PID, str(value), at=k)])
        if run.results[0].get("errno"):
            self.problems.append(f"ns_last_pid {value} at level {k}: errno {run.results[0]['errno']}")

    def _held(self) -> dict[int, list[int]]:
        held: dict[int, list[int]] = {}
        for h in self.holders.values():
            for k in range(h.level + 1):
                held.setdefault(k, []).append(h.nspid[k])
        return {k: sorted(v) for k, v in held.items()}

    # --- races -------------------------------------------------------------------------------------------
    def _racer_step(self, i: int, racer: Racer) -> dict[str, Any]:
        """Children are parked (CLONE_VM: the cheapest that stays alive) and named, to release them after."""
        if racer.pids is None:
            return syscall_step(SYS_CLONE, [CLONE_VM | SIGCHLD, 0, 0, 0, 0], at=racer.at, clone=True,
                                child="park", name=f"r{i}")
        return self.races.spawn(racer.pids, racer.at, child="park", flags=CLONE_VM, **{"as": f"r{i}"})

    def _race(self, shape: RaceShape) -> None:
        """One program: the race (a pids check per round), its children released, a pids check, every pid
        it asked for asked for again alone (a one-entry vector names the caller's level), a sync."""
        before = self.belief
        assert before is not None and self.model is not None
        plan = plan_race(shape, before, self._held(), self.profile.zero_means_auto)
        self._note("race", racers=list(plan.racers), fork_near=plan.fork_near, rounds=self.rounds)
        alone = [0 if r.pids is None else predict(before, Spawn(r.at, self.races.vector(r.pids, r.at)),
                                                  rules_for(self.profile.name)).errno
                 for r in plan.racers]
        near = plan.fork_near
        setup = [write_file_step(NS_LAST_PID, str(near[1] - 1), at=near[0])] if near else []
        releases = [release_step(f"r{i}", at=r.at) for i, r in enumerate(plan.racers)]
        claimed = {pair for i in range(len(plan.racers)) for pair in plan.claims(i)}
        again = sorted(claimed - plan.held)
        steps = [race_step([self._racer_step(i, r) for i, r in enumerate(plan.racers)], self.rounds, setup,
                           [PIDS_WITH_NS]), *releases, PIDS_WITH_NS,
                 *(self.races.spawn([pid], level, child="exit", flags=CLONE_VM) for level, pid in again)]
        run = self._run(steps, keep=False)
        judge = Judge(plan, alone, self.profile.busy_errno, self.model.workers or [])
        rounds = split_rounds(run.results[0], self.rounds)
        for rnd in rounds:
            self.problems += round_problems(steps[0]["racers"], rnd.racers, judge, rnd.check[0], rnd.index)
        self.races.note_rounds(rounds)  # no retry inside a stateful run: the test asserts some round raced
        where = f"after the race of {list(plan.racers)}"
        pids = run.results[1 + len(releases)]
        if dupes := shared_pids(pids, chain_namespaces(pids, self.model.workers or [])):
            self.problems.append(f"{where}, children released: two live tasks share (level, pid) {dupes}")
        for (level, pid), res in zip(again, run.results[2 + len(releases):], strict=True):
            if res["errno"] or res["ret"] != pid:
                self.problems.append(f"{where}: pid {pid} at level {level}, asked for alone, gave "
                                     f"ret {res['ret']} errno {res['errno']} (a pid the race kept?)")
        self.problems += unchanged_problems(before, run.after.state, claimed, where)

    # --- checks ------------------------------------------------------------------------------------------
    @invariant()
    def every_race_kept_each_pid_once_and_left_nothing(self) -> None:
        problems, self.problems = self.problems, []
        if problems:
            steps = "\n".join(f"  {i}. {step}" for i, step in enumerate(self.trace, 1))
            self.failures.append("\n".join(problems) + f"\nsteps:\n{steps}\nreplay: {self._replay()}")
            raise AssertionError(self.failures[-1])

    def teardown(self) -> None:
        try:
            self._release_all()
        except Exception:  # the example's own failure is the one to report
            pass


def test_races_over_namespace_state_keep_each_pid_once_and_leave_nothing(races, profile, needs_ns_last_pid,
                                                                         hypothesis_profile):
    """Rounds per race from the session's race rounds (ci: 6); examples and steps from the hypothesis
    profile (ci: 4 examples of up to 8 steps)."""
    machine_settings = settings(stateful_settings(hypothesis_profile), **MACHINE.get(hypothesis_profile, {}))
    failures: list[str] = []
    require_cpus(races.target)  # racers on one CPU never race: skip with the reason
    try:
        run_state_machine_as_test(lambda: RacesOverNamespaceState(races, race_rounds(races.rounds), failures),
                                  settings=machine_settings)
    except Flaky as err:
        # A race lost in one run of the steps may be won when hypothesis replays them: the first failure
        # seen is the report (hypothesis's own says only that the example did not fail again).
        if not failures:
            raise
        raise AssertionError(failures[0]) from err
    races.assert_raced()
