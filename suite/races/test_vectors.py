"""Racing pid vectors that collide at some levels only, in nested namespaces: every call is
all-or-nothing (NOTES.md eclone rule 10, clone3 "all freed on failure"), and nothing stays allocated.

A racer's vector is {level: pid} over its innermost levels (eclone may put 0 = "kernel's choice" in
it). Children stay alive until the round's check, then are killed; after the race every vector is
asked for again, one call at a time, and must be granted: a pid that leaked would be refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.programs import chain, release_step

from .conftest import CLONE_VM, PIDS_WITH_NS, RaceRun, Races, Round, chain_namespaces, shared_pids, tasks_with

DEPTH = 2


@dataclass(frozen=True)
class Racer:
    """A call at level `at` asking for `pids` (outermost first) at levels at-len(pids)+1 .. at."""

    at: int
    pids: tuple[int, ...]

    def asked(self) -> dict[int, int]:
        """Level -> pid this racer names (0 entries are the kernel's choice, not asked)."""
        first = self.at - len(self.pids) + 1
        return {first + i: pid for i, pid in enumerate(self.pids) if pid}


def run_vectors(races: Races, racers: list[Racer], spec: dict, rounds: int | None = None) -> RaceRun:
    """The race (children parked until the check), then every vector again, alone, in report mode."""
    steps = [races.spawn(r.pids, r.at, child="park", flags=CLONE_VM, **{"as": f"r{i}"}) for i, r in enumerate(racers)]
    after = [release_step(f"r{i}", at=r.at) for i, r in enumerate(racers)]
    after += [races.spawn(r.pids, r.at, child="exit", flags=CLONE_VM) for r in racers]
    return races.run(steps, spec, rounds=rounds, check=[PIDS_WITH_NS], after=after)


def check_round(rnd: Round, racers: list[Racer], workers: list[list[int]], busy: int) -> None:
    """What every round must show, whatever the interleaving."""
    results, pids = rnd.racers, rnd.check[0]
    where = f"round {rnd.index}: racers {racers} got {[(r['ret'], r['errno']) for r in results]}"
    assert all(r["errno"] in (0, busy) for r in results), where
    namespaces = chain_namespaces(pids, workers)
    won = [i for i, r in enumerate(results) if r["errno"] == 0]
    taken: dict[tuple[int, int], int] = {}
    for i in won:
        children = tasks_with(pids, namespaces, racers[i].at, results[i]["ret"])
        assert len(children) == 1, f"{where}: racer {i}'s child is not the one live task with its pid"
        vector = children[0]
        assert {lv: vector[lv] for lv in racers[i].asked()} == racers[i].asked(), \
            f"{where}: racer {i}'s child has {vector}"
        for key in racers[i].asked().items():
            assert key not in taken, f"{where}: racers {taken.get(key)} and {i} both got pid {key[1]} at level {key[0]}"
            taken[key] = i
    # Levels are taken innermost first and a level's pid is held until the call ends, so whoever
    # refused a racer either won or was refused further out: the chain ends at a winner.
    assert won, f"{where}: nobody won, so some pid was refused that no racer held"
    for i, r in enumerate(racers):
        if i not in won:
            others = {key for j, o in enumerate(racers) if j != i for key in o.asked().items()}
            assert others & set(r.asked().items()), \
                f"{where}: racer {i} was refused although no other racer asked for any of its pids"
            for level, pid in r.asked().items():
                if (level, pid) not in taken:
                    assert tasks_with(pids, namespaces, level, pid) == [], \
                        f"{where}: refused racer {i}'s pid {pid} at level {level} is in use (half-allocated)"
    assert shared_pids(pids, namespaces) == [], f"{where}: two live tasks share a pid"


def check_all_free_again(run: RaceRun, racers: list[Racer]) -> None:
    """After the race (holders released), each vector alone must be granted: a leaked pid is refused."""
    again = run.after[len(racers):]
    for r, res in zip(racers, again, strict=True):
        assert res["errno"] == 0, f"{r}: asked for again after the race, refused with errno {res['errno']}"
        assert res["ret"] == (r.pids[-1] or res["ret"]), f"{r}: got pid {res['ret']} when asked again"


def test_vectors_colliding_at_some_levels_are_all_or_nothing_and_leave_nothing(races, profile):
    """Innermost levels are allocated first: a vector that loses only at the root has already taken its
    inner pids when it fails, and must give them back (each vector is granted again after the race)."""
    spec = chain(DEPTH)
    s0, s2, a1, a2, b1, c0, c1, d0 = races.free([0, 2, 1, 2, 1, 0, 1, 0], spec)
    racers = [Racer(2, (s0, a1, a2)),  # collides with B at the root only
              Racer(2, (s0, b1, s2)),  # with A at the root, with C innermost
              Racer(2, (c0, c1, s2)),  # with B innermost
              Racer(1, (d0, a1))]  # with A in the middle level (D's innermost)
    run = run_vectors(races, racers, spec)
    for rnd in run.rounds:
        check_round(rnd, racers, run.workers, profile.busy_errno)
    check_all_free_again(run, racers)


@st.composite
def racing_vectors(draw: st.DrawFn, auto: bool) -> list[tuple[int, tuple[int, ...]]]:
    """2..4 racers: (level, which pid of that level's pool per vector entry, innermost levels); with
    `auto` an entry may be 2 = the kernel's choice. Shrinks towards two racers at the root."""
    racers = []
    for _ in range(draw(st.integers(2, 4))):
        at = draw(st.integers(0, DEPTH))
        length = draw(st.integers(1, at + 1))
        racers.append((at, tuple(draw(st.integers(0, 2 if auto else 1)) for _ in range(length))))
    return racers


def test_drawn_racing_vectors_are_all_or_nothing_and_leave_nothing(races, profile):
    """Shapes drawn by hypothesis. An example is a whole race program (racers forked, rounds, every
    vector asked for again), worth several ordinary examples: a quarter of the active profile's
    max_examples, a thirtieth of the race rounds each (ci: 6 examples of 1 round)."""
    spec = chain(DEPTH)
    rounds = max(1, races.rounds // 30)
    races.strict = False  # one-round examples: the test as a whole must race (assert_raced below)

    @settings(max_examples=max(1, settings().max_examples // 4))
    @given(shape=racing_vectors(auto=profile.zero_means_auto))
    def check(shape: list[tuple[int, tuple[int, ...]]]) -> None:
        pool = races.free([lv for lv in range(DEPTH + 1) for _ in (0, 1)], spec)  # fresh: cursors move
        racers = []
        for at, choice in shape:
            first = at - len(choice) + 1
            racers.append(Racer(at, tuple(0 if c == 2 else pool[2 * (first + i) + c] for i, c in enumerate(choice))))
        run = run_vectors(races, racers, spec, rounds=rounds)
        for rnd in run.rounds:
            check_round(rnd, racers, run.workers, profile.busy_errno)
        check_all_free_again(run, racers)

    check()
    races.assert_raced()
