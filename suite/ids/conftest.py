"""Fixtures of the write-then-create suite: `ids` runs an `IdProfile`'s steps in chains of its own.

Every test starts a fresh chain tagged "ids" (PROGRAMS.md: keys beside `levels` are part of the agent's cache
key), so no other test reuses its workers, and the workers that create SysV objects first move to a new IPC
namespace (`unshare(CLONE_NEWIPC)`): nothing a test creates outlives its namespace, and the writer is root of
the user namespace that owns it.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pytest

from harness.pidspace import chain_levels, pick_free
from harness.profiles import IdProfile, SpawnRequest, make_profile
from harness.profiles.ids import IPC_SEQ, unshare_ipc_step
from harness.programs import chain, program
from harness.targets.base import Target

from ..spec import IdSpec, id_spec_of

SEQ = 5  # the IPC sequence number the tests ask for (a fresh namespace starts at 0)


class Ids:
    """One write-then-create interface on the target, with its spec table."""

    def __init__(self, target: Target, prof: IdProfile) -> None:
        self.target = target
        self.prof = prof
        self.spec: IdSpec = id_spec_of(prof.name)

    @staticmethod
    def chain(depth: int = 1, caps: Mapping[int, Sequence[int] | None] = {}) -> dict:
        """`depth` levels, each with its own user namespace (its worker owns its pid namespace)."""
        return {**chain(depth, userns_at=range(1, depth + 1), caps=caps), "tag": "ids"}

    def start(self, spec: dict, own_ipc_at: Iterable[int] = (1,)) -> dict[str, Any]:
        """A fresh chain whose workers at `own_ipc_at` have their own IPC namespaces; the reply."""
        reply = self.target.run(program([unshare_ipc_step(k) for k in own_ipc_at], spec, fresh_chain=True))
        if any(r["errno"] == errno.EINVAL for r in reply["steps"]):
            pytest.skip("unshare(CLONE_NEWIPC) gives EINVAL: no CONFIG_IPC_NS, the tests need an IPC namespace of "
                        "their own")
        assert all(r["errno"] == 0 for r in reply["steps"]), reply["steps"]
        return reply

    def run(self, steps: Sequence[dict[str, Any]], spec: dict) -> list[dict[str, Any]]:
        return self.target.run(program(steps, spec))["steps"]

    def remove(self, made: dict[str, Any], spec: dict, at: int) -> None:
        """Remove what a creation step made (nothing when it failed), so no object outlives its test."""
        if made["errno"] == 0:
            self.run([self.prof.remove_step(made["ret"], at=at)], spec)

    def free_id(self, spec: dict, at: int) -> int:
        """An id nothing holds at level `at` (processes: with the pid after it free as well)."""
        if self.spec.objects != "process":
            return SEQ * IPC_SEQ + 17
        level = chain_levels(self.target, spec)[0][at]
        for seed in range(100):
            (pid,) = pick_free(self.target, [at], spec, seed=seed)
            if level.is_free(pid + 1):
                return pid
        raise AssertionError("no free pid with a free successor")

    def make_busy(self, spec: dict, at: int) -> int:
        """Make an id busy at level `at` by other means than the file under test; the id a write should name
        to hit it (IPC: the busy index under another sequence number, the index is what collides)."""
        if self.spec.objects == "process":
            pid = self.free_id(spec, at)
            step = make_profile("clone3").spawn_step(SpawnRequest(at=at, pids=(pid,), child="hold", name="busy"))
            res = self.target.run(program([step], spec, keep=True))["steps"][0]
            assert res["errno"] == 0 and res["ret"] == pid, res
            return pid
        res = self.run([self.prof.create_step(at)], spec)[0]
        assert res["errno"] == 0, res
        return (SEQ + 1 + res["ret"] // IPC_SEQ) * IPC_SEQ + res["ret"] % IPC_SEQ


@pytest.fixture
def ids(target: Target, id_profile: IdProfile) -> Ids:
    return Ids(target, id_profile)
