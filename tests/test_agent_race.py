"""The agent's side of a race round, with the levels faked: which error a failed round reports."""

from __future__ import annotations

from typing import Any

import pytest

from harness.agent import race
from harness.agent.steps import StepError


class _Local:
    def handle(self, req: dict[str, Any]) -> Any:
        raise StepError("level 0: the racer's own error")


class _Chain:
    """Level 0 fails its round; the worker of level 1 then answers with an error of its own."""

    local = _Local()

    def post(self, calls: list[tuple[int, dict[str, Any]]]) -> list[int]:
        return [level for level, _ in calls]

    def gather(self, sent: list[int]) -> list[Any]:
        raise StepError("level 1: aborted by level 0")


def test_a_round_that_fails_at_level_0_reports_level_0_s_error_not_the_worker_s_abort() -> None:
    race.init()
    step = {"op": "race", "racers": [{"at": 0}, {"at": 1}], "rounds": 1}
    one = race._Race(_Chain(), step, lambda chain, s: None)
    with pytest.raises(StepError, match="the racer's own error"):
        one.go(drop=True)
