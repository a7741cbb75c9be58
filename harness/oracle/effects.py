"""How a chain changes: after a call the model predicted, an occupy step, a held process exiting."""

from __future__ import annotations

import errno
from collections.abc import Sequence

from .model import ChainState
from .predict import Outcome, Spawn, walk


def after_spawn(state: ChainState, spawn: Spawn, outcome: Outcome, nspid: Sequence[int] | None,
                held: bool) -> ChainState:
    """The chain after the call: cursors moved by automatic picks (even on failure), the child's pids in
    use while it is held (a reported child has exited and freed them)."""
    new = state.copy()
    for k, cursor in outcome.cursors.items():
        if cursor is None and nspid is not None:
            cursor = nspid[k] + 1  # a shared level: where the kernel picked
        if cursor is not None:
            new.levels[k].cursor = cursor
    if held and outcome.ok and nspid is not None:
        for k in range(spawn.at + 1):
            new.levels[k].used.add(nspid[k])
    return new


def occupy_outcome(state: ChainState, level: int, pid: int) -> Outcome:
    """The `occupy` step: ns_last_pid = pid - 1 at `level`, then a plain fork (automatic at every level).

    ok when the holder got `pid` at `level`; errno EPERM when ns_last_pid could not be written.
    """
    if not state.may_choose_pids(state.creds[level], state.levels[level].owner):
        return Outcome(errno.EPERM, why=f"level {level}: ns_last_pid needs the capability")
    moved = state.copy()
    moved.levels[level].cursor = pid
    got = moved.levels[level].next_auto()  # exact even on a shared level: the cursor was just set
    out = walk(moved, Spawn(at=level), {}, lambda *_: None, errno.EEXIST)
    if not out.ok or out.nspid is None:
        return out
    nspid = (*out.nspid[:level], got)
    cursors = {**out.cursors, level: None if got is None else got + 1}
    if got != pid:
        return Outcome(errno.EEXIST, nspid, cursors, why=f"level {level}: {pid} was busy")
    return Outcome(0, nspid, cursors, why=f"level {level}: the fork took {pid}")


def after_occupy(state: ChainState, level: int, pid: int, outcome: Outcome, nspid: Sequence[int] | None) -> ChainState:
    """Cursors moved by the fork (also when the holder missed and was killed); the holder's pids in use."""
    new = state.copy()
    if outcome.errno == errno.EPERM:
        return new  # ns_last_pid was not written, nothing forked
    new.levels[level].cursor = pid
    return after_spawn(new, Spawn(at=level), outcome, nspid, held=outcome.ok)


def after_exit(state: ChainState, nspid: Sequence[int]) -> ChainState:
    """A held process was killed and reaped: its pid is free at every level."""
    new = state.copy()
    for k, pid in enumerate(nspid[:len(new.levels)]):
        new.levels[k].used.discard(pid)
    return new


def after_cursor_write(state: ChainState, level: int, last_pid: int) -> ChainState:
    new = state.copy()
    new.levels[level].cursor = last_pid + 1
    return new
