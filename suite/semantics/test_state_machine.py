"""A stateful test: chains are created (deeper, with a user namespace, with capabilities dropped), pids
are occupied and freed, calls are made with symbolic vectors; after every step the kernel must agree
with the oracle's model, and the chain must hold exactly the pids the model says (nothing leaked).

Every step is one program with a sync before and after the action; a failure prints the concrete
programs of the example, in order, as JSON (the first program of each chain asks for a fresh chain).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from harness.hypothesis_profiles import stateful_settings
from harness.oracle.check import state_disagreements
from harness.oracle.choices import CursorKind, Kind, PidChoice, cursor_value, resolve_pid
from harness.oracle.effects import after_cursor_write, after_exit, after_occupy, occupy_outcome
from harness.oracle.model import ChainState
from harness.oracle.predict import Spawn, newpid_error, vector_levels
from harness.oracle.runner import ChainModel, Run, Verdict, judge
from harness.oracle.scenario import CallShape, concrete_spawn, reask_allocated
from harness.oracle.sync import NS_LAST_PID
from harness.programs import occupy_step, release_step, unshare_step, write_file_step
from harness.strategies import namespace_chains, pid_choices, pid_vectors
from suite.semantics.conftest import Calls

MAX_DEPTH, MAX_CHAINS, RECENT = 4, 3, 8
OCCUPY_KINDS = (Kind.FREE, Kind.RECENT, Kind.BELOW_RESERVED, Kind.RESERVED, Kind.PID_MAX_MINUS_1, Kind.ONE)
INDEX = st.integers(0, 63)
STEPS = {"count": 0}  # rules run in this process, for the report


@dataclass
class Tracked:
    model: ChainModel
    belief: ChainState  # the model's view after the last step, checked against the next sync


@dataclass(frozen=True)
class Holder:
    chain: int
    level: int
    nspid: tuple[int, ...]


class PidNamespaces(RuleBasedStateMachine):
    def __init__(self, calls: Calls) -> None:
        super().__init__()
        self.target, self.profile = calls.target, calls.profile
        self.chains: list[Tracked] = []
        self.holders: dict[str, Holder] = {}
        self.recent: dict[tuple[int, int], list[int]] = {}
        self.programs: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.serial = 0

    # --- plumbing ----------------------------------------------------------------------------------------
    def _add_chain(self, spec: dict) -> None:
        if len(self.chains) >= MAX_CHAINS or any(t.model.spec == spec for t in self.chains):
            return
        model = ChainModel(self.target, spec)
        run = model.run([], fresh=True, keep=True)
        self.programs.append(run.program)
        self.chains.append(Tracked(model, run.after.state))
        self._share_level_0(run)

    def _share_level_0(self, run: Run) -> None:
        """Level 0 is one namespace for every chain: what a program saw there holds for all of them."""
        for tracked in self.chains:
            tracked.belief.levels[0] = copy.deepcopy(run.after.state.levels[0])

    def _run(self, c: int, action: list[dict[str, Any]]) -> Run:
        """One program on chain c: the action and a sync after it (the state before is the model's belief,
        verified by the previous step's sync; keep=True cleanup changes nothing in between)."""
        STEPS["count"] += 1
        tracked = self.chains[c]
        workers = tracked.model.workers
        run = tracked.model.run(action, keep=True, presync=False)
        self.programs.append(run.program)
        assert tracked.model.workers == workers, f"chain {c} was rebuilt under the test: {self._replay()}"
        return run

    def _expect(self, problems: list[str], what: str) -> None:
        self.problems += [f"{what}: {p}" for p in problems]

    def _settle(self, c: int, expected: ChainState, run: Run, touched: dict[int, set[int]]) -> None:
        self._expect(state_disagreements(expected, run.after.state, touched), "after the step")
        self.chains[c].belief = run.after.state
        self._share_level_0(run)

    def _remember(self, c: int, level: int, pids: Any) -> None:
        """Pids asked for by refused calls, or freed by an exit: asking for them again proves them free."""
        pid_max = self.chains[c].belief.levels[level].pid_max
        mem = self.recent.setdefault((c, level), [])
        mem[:] = [*[p for p in pids if p not in mem and 0 < p < pid_max], *mem][:RECENT]

    def _tasks(self, c: int) -> list[list[int]]:
        return [*(self.chains[c].model.workers or []), *(list(h.nspid) for h in self.holders.values() if h.chain == c)]

    def _replay(self) -> str:
        return json.dumps({"profile": self.profile.name, "programs": self.programs}, separators=(",", ":"))

    # --- rules -------------------------------------------------------------------------------------------
    @initialize(spec=namespace_chains(max_depth=2))
    def first_chain(self, spec: dict) -> None:
        self._add_chain(spec)

    @precondition(lambda self: len(self.chains) < MAX_CHAINS)
    @rule(which=INDEX, userns=st.booleans())
    def create_namespace(self, which: int, userns: bool) -> None:
        spec = copy.deepcopy(self.chains[which % len(self.chains)].model.spec)
        if len(spec["levels"]) < MAX_DEPTH:
            spec["levels"].append({"userns": userns, "caps": None})
            self._add_chain(spec)

    @precondition(lambda self: len(self.chains) < MAX_CHAINS)
    @rule(which=INDEX, level=INDEX, caps=st.sampled_from([(), (21,), (40,)]))
    def drop_capabilities(self, which: int, level: int, caps: tuple[int, ...]) -> None:
        spec = copy.deepcopy(self.chains[which % len(self.chains)].model.spec)
        if spec["levels"]:
            spec["levels"][level % len(spec["levels"])]["caps"] = list(caps)
            self._add_chain(spec)

    @rule(which=INDEX, level=INDEX, choice=pid_choices(OCCUPY_KINDS))
    def occupy(self, which: int, level: int, choice: PidChoice) -> None:
        c = which % len(self.chains)
        state = self.chains[c].belief
        k = level % (state.depth + 1)
        pid = resolve_pid(choice, state.levels[k], (), self.recent.get((c, k), ()))
        if not pid or not 1 <= pid < state.levels[k].pid_max:
            return  # ns_last_pid = pid - 1 would be out of its range
        predicted = occupy_outcome(state, k, pid)
        if predicted.errno and predicted.nspid is None:
            return  # ns_last_pid cannot be written there (no capability)
        self.serial += 1
        name = f"o{self.serial}"
        run = self._run(c, [occupy_step(pid, at=k, name=name)])
        res = run.results[0]
        got = tuple(res["nspid"]) if res.get("nspid") else None
        want = predicted.nspid or ()
        if res["ok"] != predicted.ok or (got and any(w not in (None, g) for w, g in zip(want, got, strict=True))):
            self._expect([f"occupy {pid} at level {k}: model {predicted.ok, want}, agent {res}"], "occupy")
        if res["ok"]:
            self.holders[name] = Holder(c, k, got)
        expected = after_occupy(state, k, pid, predicted, got)
        self._settle(c, expected, run, {j: {p} for j, p in enumerate(got or ())})

    @rule(which=INDEX, at=INDEX, vector=st.one_of(pid_vectors(MAX_DEPTH + 2), st.none()), newpid=st.booleans(),
          hold=st.booleans())
    def spawn(self, which: int, at: int, vector: tuple[PidChoice, ...] | None, newpid: bool, hold: bool) -> None:
        c = which % len(self.chains)
        state = self.chains[c].belief
        at = at % (state.depth + 1)
        newpid = newpid and not hold  # a held child must not be the init of a namespace of its own
        room = self.profile.vector_levels(at, newpid)
        self._spawn(c, CallShape(at, None if vector is None else vector[-room:], newpid), hold)

    @rule(which=INDEX, at=INDEX, busy=INDEX, salt=st.integers(0, 2**16), hold=st.booleans())
    def spawn_over_a_busy_outer_level(self, which: int, at: int, busy: int, salt: int, hold: bool) -> None:
        """Free pids from the caller's level up to a busy one: refused after the inner levels were taken."""
        c = which % len(self.chains)
        depth = self.chains[c].belief.depth
        if depth == 0:
            return
        at = 1 + at % depth
        outer = busy % at
        vector = (PidChoice(Kind.BUSY, salt), *(PidChoice(Kind.FREE, salt + i) for i in range(at - outer)))
        self._spawn(c, CallShape(at, vector), hold)

    @rule(which=INDEX, at=INDEX, vector=st.one_of(pid_vectors(MAX_DEPTH + 2), st.none()))
    def spawn_after_unshare(self, which: int, at: int, vector: tuple[PidChoice, ...] | None) -> None:
        """The caller first unshares its pid namespace for children (NOTES.md eclone settled: the vector still
        names the caller's active levels; the child is the new namespace's pid 1): the model predicts it as
        CLONE_NEWPID, or as a plain call where the unshare itself is refused (no CAP_SYS_ADMIN, too deep)."""
        c = which % len(self.chains)
        state = self.chains[c].belief
        at = at % (state.depth + 1)
        refused = newpid_error(state, Spawn(at, None, True))  # unshare(CLONE_NEWPID) has CLONE_NEWPID's checks
        room = self.profile.vector_levels(at, refused is None)  # a refused unshare leaves a plain call
        shape = CallShape(at, None if vector is None else vector[-room:], refused is None)
        self._spawn(c, shape, hold=False, unshare_errno=refused.errno if refused else 0)

    def _spawn(self, c: int, shape: CallShape, hold: bool, unshare_errno: int | None = None) -> None:
        """Make the call a shape stands for; if refused after allocating inner levels, ask for those again.
        With `unshare_errno` the call follows an unshare step (see _call)."""
        state = self.chains[c].belief
        recent = {k: self.recent.get((c, k), []) for k in range(shape.at + 1)}
        spawn = concrete_spawn(self.profile.name, shape, state, self._tasks(c), recent)
        verdict = self._call(c, spawn, hold, unshare_errno)
        again = reask_allocated(self.profile.name, spawn, verdict.outcome)
        if not verdict.problems and again is not None:
            self._call(c, again, hold=False)  # the pids the refused call had allocated must be free

    def _call(self, c: int, spawn: Spawn, hold: bool, unshare_errno: int | None = None) -> Verdict:
        """One call on chain c, judged against the model's belief; a held child is remembered. With
        `unshare_errno` (what the model expects of it) an unshare step comes first and the call has no
        CLONE_NEWPID of its own."""
        state = self.chains[c].belief
        self.serial += 1
        name = f"s{self.serial}" if hold else None
        unshared = unshare_errno is not None
        step = Calls(self.target, self.profile).step(spawn.pids, spawn.at, spawn.newpid and not unshared,
                                                     "hold" if hold else "report", name)
        history = self.programs[:]
        run = self._run(c, [unshare_step(at=spawn.at), step] if unshared else [step])
        res = run.results[-1]
        if unshared and run.results[0].get("errno") != unshare_errno:
            self.problems.append(f"unshare(CLONE_NEWPID) at level {spawn.at}: model errno {unshare_errno}, "
                                 f"agent {run.results[0]}")
        verdict = judge(self.profile.name, spawn, run, res, hold, history, before=state)
        if verdict.problems:
            self.problems.append(verdict.summary())  # the invariant adds the replay of the whole example
        if hold and res.get("child") and res["ret"] > 0:
            self.holders[name] = Holder(c, spawn.at, tuple(res["child"]["nspid"]))
        elif res.get("errno"):
            for k, pid in vector_levels(self.profile.name, spawn).items():
                if k <= spawn.at:
                    self._remember(c, k, [pid])
        self.chains[c].belief = run.after.state
        self._share_level_0(run)
        return verdict

    @rule(pick=INDEX)
    def exit(self, pick: int) -> None:
        """Nothing without holders: whether a hold or an occupy kept its process is the kernel's answer, and a
        precondition on it would make hypothesis's draws differ between two runs of the same steps
        (FlakyStrategyDefinition when fuzzing replays them)."""
        if not self.holders:
            return
        name = sorted(self.holders)[pick % len(self.holders)]
        holder = self.holders.pop(name)
        run = self._run(holder.chain, [release_step(name, at=holder.level)])
        if run.results[0] != {"ok": True}:
            self._expect([f"release {name}: {run.results[0]}"], "exit")
        for k, pid in enumerate(holder.nspid):
            self._remember(holder.chain, k, [pid])
        expected = after_exit(self.chains[holder.chain].belief, holder.nspid)
        self._settle(holder.chain, expected, run, {k: {p} for k, p in enumerate(holder.nspid)})

    @rule(which=INDEX, level=INDEX, kind=st.sampled_from(CursorKind))
    def move_cursor(self, which: int, level: int, kind: CursorKind) -> None:
        c = which % len(self.chains)
        state = self.chains[c].belief
        k = level % (state.depth + 1)
        if not state.may_choose_pids(state.creds[k], state.levels[k].owner):
            return
        value = cursor_value(kind, state.levels[k])
        run = self._run(c, [write_file_step(NS_LAST_PID, str(value), at=k)])
        if run.results[0].get("errno"):
            self._expect([f"ns_last_pid {value} at level {k}: errno {run.results[0]['errno']}"], "cursor")
        self._settle(c, after_cursor_write(state, k, value), run, {})

    # --- checks ------------------------------------------------------------------------------------------
    @invariant()
    def kernel_agrees_with_the_model_and_nothing_leaked(self) -> None:
        problems, self.problems = self.problems, []
        assert not problems, "\n".join(problems) + "\nreplay: " + self._replay()

    def teardown(self) -> None:
        by_chain: dict[int, list[dict[str, Any]]] = {}
        for name, holder in self.holders.items():
            by_chain.setdefault(holder.chain, []).append(release_step(name, at=holder.level))
        for c, steps in by_chain.items():
            try:
                self.target.run({"chain": self.chains[c].model.spec, "keep": True, "steps": steps})
            except Exception:  # the example's own failure is the one to report
                pass


def test_chains_stay_in_step_with_the_model(target, profile, needs_ns_last_pid, hypothesis_profile):
    run_state_machine_as_test(lambda: PidNamespaces(Calls(target, profile)),
                              settings=stateful_settings(hypothesis_profile))
