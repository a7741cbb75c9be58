"""Time shares of a fuzz run: every test function gets about the same VM time, not the same examples.

With a fixed example count per test run the dearest test takes the session: 2 examples of the race state
machine (40 races of 20 rounds each) cost ~50 s under TCG where 20 examples of the oracle agreement
property cost 2 s, so two thirds of a session went to one test function of five. Like HypoFuzz's
scheduler, the workers here hand out time instead:

- examples: a test's next run asks for as many nominal examples as fit in a slice, from what its earlier
  runs cost per nominal example (a test not run yet: what its function's other profiles cost; nothing
  known: the default count). A stateful test turns the nominal count into examples itself (a tenth, at
  least 2), so its cost per nominal example is what is measured and the slice holds for it too, down to
  its floor;
- turns: a test sits a round out (skipped, with the reason) while its function has had more than a slice
  over the least served function, or while it has had more than a slice over the least served of its
  function's profiles; so a function whose run cannot be shorter than its floor (the race state machine)
  runs less often rather than longer, and its profiles take turns.

Only calls that ran (passed or failed) count: a test skipped for its profile never holds the others back.
The workers of a run see each other's records (`others`, from files beside the live counters), so a test
one worker ran is not run again on the other just because it is new there: without that, each worker ran
each of the four race state machines once before any share applied (~200 s of a 10-minute session).
"""

from __future__ import annotations

from dataclasses import dataclass, field

MIN_EXAMPLES, MAX_EXAMPLES = 1, 5000
SHARE_SKIP = "fuzz share:"  # how a turn's skip reason starts (a test's own skips do not)


def function_of(test: str) -> str:
    """The test function of a node id without its round: suite/x.py::test_y[eclone] -> suite/x.py::test_y."""
    return test.split("[", 1)[0]


@dataclass
class Share:
    """Seconds and nominal examples each test (its node id without the round) ran, here and elsewhere."""

    slice_s: float
    default_examples: int
    collected: set[str] = field(default_factory=set)  # every test of the run (profiles take turns)
    seconds: dict[str, float] = field(default_factory=dict)  # this worker's runs
    nominal: dict[str, int] = field(default_factory=dict)
    skips: set[str] = field(default_factory=set)  # tests that skipped themselves here (e.g. their profile)
    others: list[dict] = field(default_factory=list)  # the other workers' mine()

    def _totals(self) -> dict[str, tuple[float, int]]:
        """Every test that ran somewhere in the run: (seconds, nominal examples)."""
        out = {t: (s, self.nominal[t]) for t, s in self.seconds.items()}
        for record in self.others:
            for test, (s, n) in record.get("runs", {}).items():
                spent, asked = out.get(test, (0.0, 0))
                out[test] = (spent + s, asked + int(n))
        return {t: v for t, v in out.items() if v[1]}

    def _candidates(self, totals: dict[str, tuple[float, int]]) -> set[str]:
        """The tests that take turns: collected or run, minus those that skip themselves."""
        skipped = self.skips.union(*(record.get("skips", []) for record in self.others))
        return (self.collected | set(totals)) - skipped

    def examples_for(self, test: str) -> int:
        """Nominal examples for the test's next run: a slice's worth at its (or its function's) cost."""
        totals = self._totals()
        known = [totals[test]] if test in totals else [
            v for t, v in totals.items() if function_of(t) == function_of(test)]
        spent, asked = sum(s for s, _ in known), sum(n for _, n in known)
        if not spent or not asked:
            return self.default_examples
        return max(MIN_EXAMPLES, min(MAX_EXAMPLES, round(self.slice_s * asked / spent)))

    def waits(self, test: str) -> str | None:
        """Why the test sits this round out (its function is a slice ahead of the least served function,
        or it is a slice ahead of the least served of its function's profiles), or None. A test not run
        yet counts as 0 s: it is served first."""
        totals = self._totals()
        candidates = self._candidates(totals) | {test}
        by_function: dict[str, float] = {}
        for t in candidates:
            by_function[function_of(t)] = by_function.get(function_of(t), 0.0) + totals.get(t, (0.0, 0))[0]
        mine, least = by_function[function_of(test)], min(by_function.values())
        if mine - least > self.slice_s:
            return (f"{SHARE_SKIP} this test function has had {mine:.0f} s of the run's workers, the least "
                    f"served {least:.0f} s; it runs again when that is within {self.slice_s:g} s")
        spent = totals.get(test, (0.0, 0))[0]
        fewest = min(totals.get(t, (0.0, 0))[0] for t in candidates if function_of(t) == function_of(test))
        if spent - fewest > self.slice_s:
            return (f"{SHARE_SKIP} this profile has had {spent:.0f} s, the least served of its function "
                    f"{fewest:.0f} s; it runs again when that is within {self.slice_s:g} s")
        return None

    def record(self, test: str, seconds: float, nominal: int) -> None:
        self.seconds[test] = self.seconds.get(test, 0.0) + seconds
        self.nominal[test] = self.nominal.get(test, 0) + nominal

    def mine(self) -> dict:
        """This worker's runs and self-skipped tests, for the other workers."""
        return {"runs": {t: [s, self.nominal[t]] for t, s in self.seconds.items()}, "skips": sorted(self.skips)}
