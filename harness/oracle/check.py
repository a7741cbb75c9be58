"""Compare the kernel with the model: a call's result against an Outcome, a chain against a ChainState."""

from __future__ import annotations

import errno as errno_mod
from collections.abc import Iterable, Mapping
from typing import Any

from .model import ChainState, Level
from .predict import Outcome, Spawn


def errno_name(number: int) -> str:
    return errno_mod.errorcode.get(number, str(number)) if number else "success"


def describe(outcome: Outcome) -> str:
    if outcome.ok:
        shown = ["?" if p is None else str(p) for p in outcome.nspid or ()]
        return f"success, NSpid [{' '.join(shown)}]"
    return f"{errno_name(outcome.errno)} ({outcome.why})"


def describe_result(res: Mapping[str, Any]) -> str:
    if res.get("errno"):
        extra = f", yet a child {res['child']['nspid']}" if res.get("child") else ""
        return f"{errno_name(res['errno'])} (ret {res.get('ret')}{extra})"
    child = res.get("child") or {}
    return f"success, ret {res.get('ret')}, NSpid {child.get('nspid')}, getpid {child.get('getpid')}"


def result_disagreements(outcome: Outcome, spawn: Spawn, res: Mapping[str, Any], before: ChainState) -> list[str]:
    """Why the syscall step result `res` is not what `outcome` says (empty: they agree)."""
    if res.get("errno", 0) != outcome.errno:
        return [f"expected {describe(outcome)}, kernel gave {describe_result(res)}"]
    if not outcome.ok:
        if res.get("ret") != -1 or res.get("child") is not None:
            return [f"the call failed with {errno_name(outcome.errno)} but returned {res.get('ret')} "
                    f"and child {res.get('child')}"]
        return []
    child = res.get("child")
    if child is None:
        return ["the call succeeded but no child reported"]
    problems = _nspid_disagreements(outcome, child["nspid"], before, spawn.at)
    got_ret, want_ret = res.get("ret"), child["nspid"][spawn.at] if len(child["nspid"]) > spawn.at else None
    if got_ret != want_ret:
        problems.append(f"returned {got_ret}, but the child's pid in the caller's namespace is {want_ret}")
    if child.get("getpid") != child["nspid"][-1]:
        problems.append(f"getpid() in the child is {child.get('getpid')}, NSpid ends with {child['nspid'][-1]}")
    return problems


def _nspid_disagreements(outcome: Outcome, got: list[int], before: ChainState, at: int) -> list[str]:
    want = outcome.nspid or ()
    if len(got) != len(want):
        return [f"expected {describe(outcome)}, the child's NSpid is {got}"]
    problems = []
    for k, (w, g) in enumerate(zip(want, got, strict=True)):
        if w is not None and w != g:
            problems.append(f"level {k}: expected pid {w}, the child got {g}")
        elif w is None and not _acceptable_pick(before.levels[k], g):
            problems.append(f"level {k} (shared): the kernel picked {g}, which was not free or is out of range")
    if problems:
        problems.insert(0, f"expected {describe(outcome)}, the child's NSpid is {got}")
    return problems


def _acceptable_pick(level: Level, pid: int) -> bool:
    """A kernel pick at a shared level: free before the call and at or above alloc_pid's lower bound."""
    return level.is_free(pid) and pid >= level.pid_min()


def state_disagreements(expected: ChainState, observed: ChainState,
                        touched: Mapping[int, Iterable[int]] = {}) -> list[str]:
    """Per level: pids in use and cursor must match on levels only the chain uses; on shared levels only
    the `touched` pids (requested, picked, released) are compared."""
    problems = []
    for k, (want, got) in enumerate(zip(expected.levels, observed.levels, strict=True)):
        if want.shared:
            for pid in sorted(set(touched.get(k, ()))):
                if (pid in want.used) != (pid in got.used):
                    problems.append(f"level {k}: pid {pid} should be {'in use' if pid in want.used else 'free'}")
            continue
        if want.used != got.used:
            extra, missing = sorted(got.used - want.used), sorted(want.used - got.used)
            problems.append(f"level {k}: pids in use differ (unexpected {extra}, missing {missing})")
        if want.cursor != got.cursor:
            problems.append(f"level {k}: ns_last_pid is {got.cursor - 1}, the model says {want.cursor - 1}")
    return problems
