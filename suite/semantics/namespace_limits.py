"""Refused CLONE_NEWPID calls must give their pid namespace back: one check, shared by the caller-anchored
and the root-anchored versions of the test (they differ only in the busy vector they pass)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.programs import chain, program, sleep_step, write_file_step

MAX_PID_NAMESPACES = "/proc/sys/user/max_pid_namespaces"
NS_LIMIT = 2  # per user namespace; the chain's own level-1 pid namespace takes one
RCU_WAIT = 0.5  # a dropped pid namespace gives its count back from an RCU callback (delayed_free_pidns)


def assert_refused_newpid_calls_give_their_namespace_back(calls: Any, busy_errno: int, busy: Sequence[int]) -> None:
    """With max_pid_namespaces one above what the chain uses, NS_LIMIT + 1 refused CLONE_NEWPID calls at
    level 1 (vector `busy`), each after an RCU wait, must all be refused with `busy_errno` (a leaked
    namespace makes the later ones ENOSPC), and a plain CLONE_NEWPID after them must still work."""
    spec = chain(1, userns_at=[1])
    steps, refusals = [write_file_step(MAX_PID_NAMESPACES, str(NS_LIMIT), at=1)], []
    for _ in range(NS_LIMIT + 1):  # each after a wait, so a correct kernel has the count back every time
        refusals.append(len(steps) + 1)
        steps += [sleep_step(RCU_WAIT, at=1), calls.step(list(busy), at=1, newpid=True)]
    plain = len(steps) + 1
    steps += [sleep_step(RCU_WAIT, at=1), calls.step(None, at=1, newpid=True),
              write_file_step(MAX_PID_NAMESPACES, str(2**31 - 1), at=1)]
    results = calls.target.run(program(steps, spec, fresh_chain=True))["steps"]
    assert results[0] == {"errno": 0}, f"cannot set {MAX_PID_NAMESPACES} at level 1: {results[0]}"
    refused = [(results[i]["errno"], results[i]["child"]) for i in refusals]
    assert refused == [(busy_errno, None)] * len(refusals), "ENOSPC (28): a refused call kept its namespace"
    after = results[plain]
    assert after["errno"] == 0, f"no new pid namespace after {len(refusals)} refused ones: {after}"
    assert after["child"]["nspid"][-1] == 1
