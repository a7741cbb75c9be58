"""A failed test's C reproducer without a second kernel: its expectation is what the test asserted.

pytest calls `pytest_assertrepr_compare` for every failing `==` of a rewritten assert; the suite writes them
`actual == expected` (`assert res["errno"] == profile.busy_errno`, `assert (res["errno"], res["child"]) ==
(errno.EBUSY, None)`, `assert res["child"]["nspid"] == pids`). The actual side is found among the recorded
step results (an errno, or a child's NSpid) and that step expects the other side; the C file beside the JSON
then prints expected versus actual and exits 1 where the kernel still gives the asserted-against outcome.
Where the test compares no values itself (the state machines), the oracle's prediction for the call it judged
wrong is the expectation (predicted.py); a race is judged by its invariant.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import UsageError
from . import predicted
from .c_reproducer import render_c
from .race_check import race_expectation
from .record import Recording

MAX_ERRNO = 4095


def _scalar_pairs(left: Any, right: Any) -> list[tuple[Any, Any]]:
    """Element-wise pairs of two compared values (tuples and lists of the same length are zipped, recursively);
    a list of ints is kept whole too (an NSpid)."""
    pairs = [(left, right)]
    if isinstance(left, tuple | list) and isinstance(right, tuple | list) and len(left) == len(right):
        for a, b in zip(left, right, strict=True):
            pairs += _scalar_pairs(a, b)
    return pairs


def _is_nspid(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, int) and v > 0 for v in value)


def _is_errno(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ERRNO


def _match(result: dict[str, Any], left: Any, right: Any) -> dict[str, Any] | None:
    """The expectation for one syscall step whose result shows `left` where the test wanted `right`."""
    if left == right:
        return None
    nspid = (result.get("child") or {}).get("nspid")
    if _is_nspid(left) and _is_nspid(right) and left == nspid:
        return {"errno": 0, "nspid": list(right)}
    if _is_errno(left) and _is_errno(right) and left == result.get("errno", 0):
        return {"errno": right}
    return None


def _syscall_results(recording: Recording) -> Iterator[tuple[int, int, int, dict[str, Any]]]:
    """(run index, step index, steps in that run, result) of every syscall step, the latest first."""
    for run_index in range(len(recording.runs) - 1, -1, -1):
        run = recording.runs[run_index]
        steps, results = run["program"].get("steps", []), run["result"].get("steps", [])
        for index in range(min(len(steps), len(results)) - 1, -1, -1):
            if steps[index].get("op") == "syscall":
                yield run_index, index, len(steps), results[index]


def derive(recording: Recording, compared: list[tuple[Any, Any]]) -> tuple[int, list[dict[str, Any] | None]] | None:
    """(run index, per-step expectations) from the failed comparisons, latest step first; None if no match."""
    pairs = [p for left, right in reversed(compared) for p in _scalar_pairs(left, right)]
    for run_index, index, nsteps, result in _syscall_results(recording):
        for left, right in pairs:
            expect = _match(result, left, right)
            if expect is not None:
                out: list[dict[str, Any] | None] = [None] * nsteps
                out[index] = expect
                return run_index, out
    return None


HOLDING = ("hold",)


def merged_history(recording: Recording, run_index: int) -> dict[str, Any]:
    """One program with the steps of every run on the same chain since it was last asked fresh, up to
    `run_index`, and the level-0 steps of runs on other chains in between (level 0 is the agent's, shared by
    every chain): the oracle judged the call against the state those runs built (the state machines keep
    holders across programs). What a program's end would have killed is released explicitly."""
    spec = recording.runs[run_index]["program"].get("chain")
    first = run_index
    while first > 0 and not (recording.runs[first]["program"].get("chain") == spec
                             and recording.runs[first]["program"].get("fresh_chain")):
        first -= 1
    steps: list[dict[str, Any]] = []
    where: dict[str, int] = {}  # held name -> level, for releases that name no level
    for k in range(first, run_index + 1):
        prog = recording.runs[k]["program"]
        own = prog.get("chain") == spec
        held: list[tuple[str, int]] = []
        for n, step in enumerate(prog.get("steps", [])):
            step = dict(step)
            if step.get("op") == "release" and "at" not in step:
                step["at"] = where.get(str(step.get("name")), 0)
            if not own and int(step.get("at", 0)) != 0:
                continue
            holds = step.get("op") == "occupy" or (step.get("op") == "syscall" and step.get("child") in HOLDING)
            if holds and "as" not in step:
                step["as"] = f"_run{k}_step{n}"  # anonymous holders die at every program's end
                held.append((step["as"], int(step.get("at", 0))))
            elif holds and not prog.get("keep"):
                held.append((step["as"], int(step.get("at", 0))))
            if holds:
                where[step["as"]] = int(step.get("at", 0))
            steps.append(step)
        if k < run_index:
            steps += [{"op": "release", "name": name, "at": at} for name, at in held]
    return {"chain": spec, "fresh_chain": True, "keep": False, "steps": steps}


def _from_predictions(recording: Recording) -> tuple[dict[str, Any], list[dict[str, Any] | None]] | None:
    """The oracle's prediction for the latest call it judged wrong (predicted.NOTED), found among the steps,
    in the history of its chain."""
    for noted, expect in reversed(predicted.NOTED):
        for run_index, index, nsteps, result in _syscall_results(recording):
            if result == noted:
                merged = merged_history(recording, run_index)
                out: list[dict[str, Any] | None] = [None] * len(merged["steps"])
                out[len(merged["steps"]) - nsteps + index] = expect
                return merged, out
    return None


def _races_only(recording: Recording) -> tuple[int, list[dict[str, Any] | None]] | None:
    """A race's invariant needs no reference outcome (errnos are not checked: the recorded ones may be wrong)."""
    for run_index in range(len(recording.runs) - 1, -1, -1):
        run = recording.runs[run_index]
        steps, results = run["program"].get("steps", []), run["result"].get("steps", [])
        if any(s.get("op") == "race" for s in steps):
            return run_index, [{**race_expectation(s, r), "errnos": []} if s.get("op") == "race" else None
                               for s, r in zip(steps, results, strict=False)]
    return None


def write_c(recording: Recording, json_path: Path, compared: list[tuple[Any, Any]]) -> tuple[Path | None, str]:
    """The C reproducer beside `json_path` (same stem, .c), and one line saying what it expects."""
    found: Any = derive(recording, compared)
    how = "the test's failed assertion"
    if found is None:
        found = _from_predictions(recording)
        how = ("the oracle's prediction; the program is the chain's history, but processes outside the chain "
               "(other chains' workers) are not recreated, so check it on a reference kernel too")
        if found is not None:
            program, expected = found
    if found is None:
        found, how = _races_only(recording), "the race invariant"
    if found is None:
        return None, "no C reproducer: no recorded outcome matches the failed assertion (harness repro FILE --c)"
    if not how.startswith("the oracle's prediction"):
        run_index, expected = found
        program = recording.runs[run_index]["program"]
    try:
        source = render_c(program, expected, title=f"{recording.test} (expected: {how})")
    except UsageError as err:
        return None, f"no C reproducer: {err}"
    path = json_path.with_suffix(".c")
    path.write_text(source)
    return path, f"C reproducer (expected from {how}): gcc -static -o repro {path} && ./repro"
