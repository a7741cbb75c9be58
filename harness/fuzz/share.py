"""Time shares of a fuzz worker: every test gets about the same VM time, not the same number of examples.

With a fixed example count per test run the dearest test takes the session: 2 examples of the race state
machine (40 races of 20 rounds each) cost ~45 s under TCG where 20 examples of the oracle agreement
property cost 2 s, so two thirds of a session went to one test of twenty. Like HypoFuzz's scheduler, a
worker here hands out time instead:

- examples: a test's next run asks for as many nominal examples as fit in a slice, from what its earlier
  runs in this worker cost per nominal example (the first run gets the default count). A stateful test
  turns the nominal count into examples itself (a tenth, at least 2), so its cost per nominal example is
  what is measured and the slice holds for it too, down to its floor;
- turns: a round of a test is skipped while the test has had more than a slice over the least served test
  of this worker, so a test whose run cannot be shorter than its floor (the race state machine) runs
  less often rather than longer.

Only calls that ran (passed or failed) count: a test skipped for its profile never holds the others back.
The workers of a run see each other's records (`others`, from files beside the live counters), so a test
one worker ran is not run again on the other just because it is new there: without that, each worker ran
each of the four race state machines once before any share applied (~200 s of a 10-minute session).
"""

from __future__ import annotations

from dataclasses import dataclass, field

MIN_EXAMPLES, MAX_EXAMPLES = 1, 5000


@dataclass
class Share:
    """Seconds and nominal examples each test (its node id without the round) ran in this worker."""

    slice_s: float
    default_examples: int
    seconds: dict[str, float] = field(default_factory=dict)  # this worker's
    nominal: dict[str, int] = field(default_factory=dict)
    others: list[dict[str, list[float]]] = field(default_factory=list)  # the other workers': test -> [s, n]

    def _total(self, test: str) -> tuple[float, int]:
        spent, asked = self.seconds.get(test, 0.0), self.nominal.get(test, 0)
        for record in self.others:
            s, n = record.get(test, (0.0, 0))
            spent, asked = spent + s, asked + int(n)
        return spent, asked

    def _spent(self) -> dict[str, float]:
        tests = set(self.seconds).union(*self.others)
        return {t: self._total(t)[0] for t in tests if self._total(t)[1]}

    def examples_for(self, test: str) -> int:
        """Nominal examples for the test's next run: a slice's worth at its measured cost."""
        spent, asked = self._total(test)
        if not spent or not asked:
            return self.default_examples
        return max(MIN_EXAMPLES, min(MAX_EXAMPLES, round(self.slice_s * asked / spent)))

    def waits(self, test: str) -> str | None:
        """Why the test sits this round out (it is a slice ahead of the least served test), or None."""
        spent = self._spent()
        if test not in spent:
            return None
        least = min(spent.values())
        if spent[test] - least <= self.slice_s:
            return None
        return (f"fuzz share: this test has had {spent[test]:.0f} s of the run's workers, the least served "
                f"{least:.0f} s; it runs again when that is within {self.slice_s:.0f} s")

    def record(self, test: str, seconds: float, nominal: int) -> None:
        self.seconds[test] = self.seconds.get(test, 0.0) + seconds
        self.nominal[test] = self.nominal.get(test, 0) + nominal

    def mine(self) -> dict[str, list[float]]:
        """This worker's records, for the other workers."""
        return {t: [s, self.nominal[t]] for t, s in self.seconds.items()}
