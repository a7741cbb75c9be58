"""The success path leaves nothing behind either (NOTES.md step 10 states it for refusals; a child that was
created and has exited is gone just as completely): its pids are free again at every level, the chain has the
tasks it had, and a pid namespace the call created is freed (its user namespace's max_pid_namespaces count
comes back: a leaked reference is otherwise invisible)."""

from __future__ import annotations

from harness.programs import chain, program, sleep_step, write_file_step

from ..spec import spec_of
from .namespace_limits import MAX_PID_NAMESPACES, NS_LIMIT, RCU_WAIT

ROUNDS = 3


def callers_vector(profile, pids: list[int]) -> list[int]:
    """`pids` for the caller's levels 0..k (a 0 where the call lets the kernel pick: no privilege needed
    there), plus pid 1 of a new namespace where the vector starts in the child's namespace (clone3)."""
    spec = spec_of(profile.name)
    if spec.anchor == "child":
        return [p for p in pids if p] + [1]
    return list(pids)


def test_pids_of_a_child_that_exited_are_free_again(calls, profile):
    """The same pids, asked for again and again: each call succeeds only if the previous child gave them back."""
    spec = chain(2)
    pids = calls.free(3, spec)
    before = calls.nspids(spec)
    steps = [calls.step(pids, at=2) for _ in range(ROUNDS)]
    results = calls.target.run(program(steps, spec))["steps"]
    assert [(r["errno"], r["child"]["nspid"] if r["child"] else None) for r in results] == \
        [(0, pids)] * ROUNDS, "a pid of an exited child stayed allocated"
    assert calls.nspids(spec) == before, "the chain's tasks changed"


def test_held_children_are_gone_after_the_program(calls, profile):
    spec = chain(1)
    pids = calls.free(2, spec)
    before = calls.nspids(spec)
    res = calls.target.run(program([calls.step(pids, at=1, child="hold")], spec))["steps"][0]
    assert res["errno"] == 0 and res["child"]["nspid"] == pids, res
    assert calls.nspids(spec) == before, "a held child (or its pids) outlived the program"
    again = calls.spawn(pids, at=1, spec=spec)
    assert again["errno"] == 0, again


def test_successful_calls_with_a_new_namespace_free_that_namespace(calls, profile):
    """More successful CLONE_NEWPID calls with chosen pids than max_pid_namespaces allows at once: each child
    exits and its namespace must be freed (after an RCU grace period), else the next call fails with ENOSPC."""
    spec = chain(1, userns_at=[1])
    (own,) = calls.free([1], spec)
    vec = callers_vector(profile, [0, own])
    steps, made = [write_file_step(MAX_PID_NAMESPACES, str(NS_LIMIT), at=1)], []
    for _ in range(NS_LIMIT + 1):
        made.append(len(steps) + 1)
        steps += [sleep_step(RCU_WAIT, at=1), calls.step(vec, at=1, newpid=True)]
    steps.append(write_file_step(MAX_PID_NAMESPACES, str(2**31 - 1), at=1))
    results = calls.target.run(program(steps, spec, fresh_chain=True))["steps"]
    assert results[0] == {"errno": 0}, f"cannot set {MAX_PID_NAMESPACES} at level 1: {results[0]}"
    got = [(results[i]["errno"], results[i]["child"]["nspid"][1:] if results[i]["child"] else None) for i in made]
    assert got == [(0, [own, 1])] * len(made), "ENOSPC (28): an exited child's namespace was never freed"
