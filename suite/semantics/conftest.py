"""Fixtures of the semantics suite: `calls` runs one call in a chain and reads the chain back."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pytest

from harness.oracle.model import ChainState
from harness.oracle.runner import CLONE_NEWPID, ChainModel
from harness.oracle.sync import NS_LAST_PID
from harness.pidspace import pick_free
from harness.profiles import Profile, SpawnRequest
from harness.programs import chain, pids_step, program, read_file_step

if TYPE_CHECKING:
    from harness.targets.base import Target


class Calls:
    """Calls of one profile on the target, in chains built on demand (cached by the agent)."""

    def __init__(self, target: Target, profile: Profile) -> None:
        self.target = target
        self.profile = profile

    def step(self, pids: Sequence[int] | None, at: int = 0, newpid: bool = False, child: str = "report",
             name: str | None = None) -> dict[str, Any]:
        req = SpawnRequest(at=at, pids=None if pids is None else tuple(pids),
                           flags=CLONE_NEWPID if newpid else 0, child=child, name=name)
        return self.profile.spawn_step(req)

    def spawn(self, pids: Sequence[int] | None, at: int = 0, spec: dict | None = None, setup: Sequence[dict] = (),
              newpid: bool = False, after: Sequence[dict] = ()) -> dict[str, Any]:
        """One call at level `at` of `spec` (default: a chain of depth `at`) after `setup`; its step result.
        With `after`, the results of those steps are in result["after"]."""
        spec = chain(at) if spec is None else spec
        steps = [*setup, self.step(pids, at, newpid), *after]
        results = self.target.run(program(steps, spec))["steps"]
        res = dict(results[len(setup)])
        res["after"] = results[len(setup) + 1:]
        return res

    def free(self, levels: int | Sequence[int], spec: dict | None = None) -> list[int]:
        """Distinct pids free at those levels of `spec`."""
        return pick_free(self.target, levels, spec)

    def state(self, spec: dict) -> ChainState:
        """The oracle's view of the chain: pids in use per level, cursors, pid_max."""
        return ChainModel(self.target, spec).sync()

    def model(self, spec: dict) -> ChainModel:
        """The oracle's runner on that chain (sync before and after in the same program)."""
        return ChainModel(self.target, spec)

    def in_use(self, spec: dict) -> list[set[int]]:
        return [lv.used for lv in self.state(spec).levels]

    def last_pid(self, spec: dict, level: int) -> int:
        res = self.target.run(program([read_file_step(NS_LAST_PID, at=level)], spec))
        return int(res["steps"][0]["data"])

    def nspids(self, spec: dict) -> list[list[int]]:
        return self.target.run(program([pids_step()], spec))["steps"][0]["nspids"]


@pytest.fixture
def calls(target: Target, profile: Profile) -> Calls:
    return Calls(target, profile)


@pytest.fixture
def hypothesis_profile(request: pytest.FixtureRequest) -> str:
    """The hypothesis profile of this run (ci unless --hypothesis-profile or ECLONE_SUITE_HYPOTHESIS)."""
    return (request.config.getoption("--hypothesis-profile", None) or
            os.environ.get("ECLONE_SUITE_HYPOTHESIS", "ci"))


@pytest.fixture
def needs_ns_last_pid(target: Target) -> None:
    """Tests that occupy pids or move cursors need /proc/sys/kernel/ns_last_pid."""
    features = target.info.extra.get("agent", {}).get("features", {})
    if not features.get("ns_last_pid", True):
        pytest.skip("needs /proc/sys/kernel/ns_last_pid (CONFIG_CHECKPOINT_RESTORE)")

