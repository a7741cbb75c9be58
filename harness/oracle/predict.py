"""Predict what a clone-with-pids call does to a chain: the child's exact NSpid, or the exact errno.

Three rule sets; each profile names its own (`Profile.oracle_rules`, looked up by `rules_for`):
- clone3 (Linux 6.1/6.18 copy_clone_args_from_user + alloc_pid): set_tid is innermost first; per level,
  innermost first: range 1..pid_max-1 -> EINVAL, tid != 1 without an init -> EINVAL, no
  CAP_SYS_ADMIN/CAP_CHECKPOINT_RESTORE over the level's user namespace -> EPERM, busy -> EEXIST.
- eclone (NOTES.md steps 5-10 and the settled rules; qemu/patches/eclone/0002): the vector starts at the
  caller's active level, 0 = the kernel picks; the capability is checked for every nonzero entry first;
  then per level, innermost first: range 0..pid_max-1 -> EINVAL, 0 < pid < 300 once the cursor passed
  300 -> EINVAL, busy -> EBUSY.
- root-anchored (clone_with_pids, clone2; NOTES.md "clone_with_pids (v6, seed 001) and clone2 (v7, seed 002)"):
  pids[0] is level 0 (the initial pid namespace), a k-entry vector names levels 0..k-1, the rest are the kernel's;
  otherwise eclone's rules without the RESERVED_PIDS one.
Automatic picks follow idr_alloc_cyclic(); on 6.1 they move the cursor even when an outer level then fails
(`Outcome.cursors`), which NOTES.md does not promise: the runner accepts an unmoved cursor after a refusal too.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass, field

from .model import CAP_SYS_ADMIN, MAX_PID_NS_LEVEL, RESERVED_PIDS, ChainState, Level


class Unpredictable(Exception):
    """The call would depend on levels the harness cannot see (above the host target's sandbox)."""


@dataclass(frozen=True)
class Spawn:
    """One call at level `at`: `pids` outermost first (as NSpid), None = no vector; `newpid`: CLONE_NEWPID."""

    at: int
    pids: tuple[int, ...] | None = None
    newpid: bool = False


@dataclass(frozen=True)
class Outcome:
    """errno 0 with the child's NSpid (outermost first; None = the kernel's pick at a shared level), or the errno.

    `cursors`: level -> cursor after the call (None: unknown, a shared level), for every level the call moved.
    `why`: the rule that decided, for failure messages.
    """

    errno: int
    nspid: tuple[int | None, ...] | None = None
    cursors: dict[int, int | None] = field(default_factory=dict)
    why: str = ""
    level: int | None = None  # the level whose check refused the call (inside alloc_pid's walk)

    @property
    def ok(self) -> bool:
        return self.errno == 0


LevelCheck = Callable[[ChainState, Spawn, Level, int, "int | None"], "tuple[int, str] | None"]


@dataclass(frozen=True)
class Rules:
    """One ABI's rules: what it checks before alloc_pid(), and per level inside it."""

    name: str
    busy_errno: int
    predict: Callable[[ChainState, Spawn], Outcome]
    anchor: str  # where a vector starts: "child" (set_tid[0] innermost), "caller" (last entry), "root" (level 0)


def child_levels(state: ChainState, spawn: Spawn) -> list[Level]:
    """The child's pid namespaces, outermost first: the caller's, plus a fresh one with CLONE_NEWPID."""
    levels = state.levels[:spawn.at + 1]
    if spawn.newpid:
        caller = levels[-1]
        levels = [*levels, Level(pid_max=caller.pid_max, owner=state.creds[spawn.at].userns, has_init=False,
                                 shared=False)]
    return levels


def newpid_error(state: ChainState, spawn: Spawn) -> Outcome | None:
    """copy_namespaces()/create_pid_namespace(): CAP_SYS_ADMIN in the caller's user namespace, depth <= 32."""
    if not spawn.newpid:
        return None
    creds = state.creds[spawn.at]
    if not state.capable(creds, creds.userns, CAP_SYS_ADMIN):
        return Outcome(errno.EPERM, why="CLONE_NEWPID without CAP_SYS_ADMIN in the caller's user namespace")
    if state.kernel_level(spawn.at) + 1 > MAX_PID_NS_LEVEL:
        return Outcome(errno.ENOSPC, why="CLONE_NEWPID below level 32")
    return None


def walk(state: ChainState, spawn: Spawn, tids: dict[int, int], check: LevelCheck, busy_errno: int) -> Outcome:
    """alloc_pid()'s loop: levels innermost first; `tids` maps level -> requested pid (absent/0: automatic)."""
    levels = child_levels(state, spawn)
    picks: list[int | None] = [None] * len(levels)
    cursors: dict[int, int | None] = {}
    for i in range(len(levels) - 1, -1, -1):
        level = levels[i]
        tid = tids.get(i)
        failed = check(state, spawn, level, i, tid)
        if failed is None and tid:
            failed = (busy_errno, f"level {i}: pid {tid} is in use") if tid in level.used else None
        if failed is not None:
            return Outcome(failed[0], cursors=_visible(cursors, spawn.at), why=failed[1], level=i)
        if tid:
            picks[i] = tid
            continue
        nr = level.next_auto()
        if nr is None:
            return Outcome(errno.EAGAIN, cursors=_visible(cursors, spawn.at), why=f"level {i}: no free pid",
                           level=i)
        picks[i] = None if level.shared else nr
        cursors[i] = None if level.shared else nr + 1
    return Outcome(0, tuple(picks), _visible(cursors, spawn.at), why="every level allocated")


def _visible(cursors: dict[int, int | None], at: int) -> dict[int, int | None]:
    """Cursor moves of the chain's own levels (a CLONE_NEWPID namespace dies with its child)."""
    return {k: v for k, v in cursors.items() if k <= at}


def requested(spawn: Spawn, innermost: int) -> dict[int, int]:
    """Level -> pid asked for, when the last entry of `spawn.pids` names level `innermost`."""
    return {innermost - idx: tid for idx, tid in enumerate(reversed(spawn.pids or ()))}


def vector_levels(profile_name: str, spawn: Spawn) -> dict[int, int]:
    """Level -> pid asked for, as the profile's rule set maps the vector (clone3 starts in a CLONE_NEWPID
    namespace, eclone at the caller's level, clone_with_pids and clone2 at level 0)."""
    anchor = rules_for(profile_name).anchor
    if anchor == "root":
        return dict(enumerate(spawn.pids or ()))
    return requested(spawn, spawn.at + (spawn.newpid and anchor == "child"))


def _too_long(state: ChainState, n: int, level: int, ok_levels: int) -> Outcome | None:
    """A vector longer than the kernel allows -> EINVAL; one that reaches above the sandbox -> Unpredictable."""
    if n > state.kernel_level(level) + 1:
        return Outcome(errno.EINVAL, why=f"{n} pids for a namespace at kernel level {state.kernel_level(level)}")
    if n > ok_levels:
        raise Unpredictable(f"{n} pids reach above the agent's root namespace (root_level {state.root_level})")
    return None


def _clone3_check(state: ChainState, spawn: Spawn, level: Level, i: int, tid: int | None) -> tuple[int, str] | None:
    if tid is None:
        return None
    if not 1 <= tid < level.pid_max:
        return errno.EINVAL, f"level {i}: set_tid {tid} outside 1..pid_max-1 ({level.pid_max - 1})"
    if tid != 1 and not level.has_init:
        return errno.EINVAL, f"level {i}: set_tid {tid} != 1 in a namespace without an init"
    if not state.may_choose_pids(state.creds[spawn.at], level.owner):
        return errno.EPERM, f"level {i}: no CAP_SYS_ADMIN/CAP_CHECKPOINT_RESTORE over its user namespace"
    return None


def predict_clone3(state: ChainState, spawn: Spawn) -> Outcome:
    """clone3() with set_tid = reversed(spawn.pids)."""
    pids = spawn.pids
    if pids is not None:
        if len(pids) == 0:
            return Outcome(errno.EINVAL, why="set_tid non-NULL with set_tid_size 0")
        if len(pids) > MAX_PID_NS_LEVEL:
            return Outcome(errno.EINVAL, why=f"set_tid_size {len(pids)} > MAX_PID_NS_LEVEL")
    if failed := newpid_error(state, spawn):
        return failed
    ns_level = spawn.at + spawn.newpid
    tids: dict[int, int] = {}
    if pids:
        if failed := _too_long(state, len(pids), ns_level, ns_level + 1):
            return failed
        tids = requested(spawn, ns_level)
    return walk(state, spawn, tids, _clone3_check, errno.EEXIST)


def _eclone_check(state: ChainState, spawn: Spawn, level: Level, i: int, tid: int | None) -> tuple[int, str] | None:
    if not tid:
        return None
    if not 0 <= tid < level.pid_max:
        return errno.EINVAL, f"level {i}: pid {tid} outside 0..pid_max-1 ({level.pid_max - 1})"
    if tid < RESERVED_PIDS and level.cursor > RESERVED_PIDS:
        return errno.EINVAL, f"level {i}: pid {tid} < 300 after the namespace allocated past 300"
    return None


def predict_eclone(state: ChainState, spawn: Spawn) -> Outcome:
    """eclone() with pids[0] = the outermost level, applied from the caller's active level outwards."""
    pids = spawn.pids or ()
    tids: dict[int, int] = {}
    if pids:
        if failed := _too_long(state, len(pids), spawn.at, spawn.at + 1):
            return failed
    if failed := newpid_error(state, spawn):
        return failed
    if pids:
        tids = requested(spawn, spawn.at)
        creds = state.creds[spawn.at]
        for i in sorted(tids, reverse=True):
            if tids[i] and not state.may_choose_pids(creds, state.levels[i].owner):
                return Outcome(errno.EPERM, why=f"level {i}: pid {tids[i]} without the capability over it")
    return walk(state, spawn, tids, _eclone_check, errno.EBUSY)


def _root_anchored_check(state: ChainState, spawn: Spawn, level: Level, i: int,
                         tid: int | None) -> tuple[int, str] | None:
    if not tid:
        return None
    if not 0 <= tid < level.pid_max:
        return errno.EINVAL, f"level {i}: pid {tid} outside 0..pid_max-1 ({level.pid_max - 1})"
    return None


def predict_root_anchored(state: ChainState, spawn: Spawn) -> Outcome:
    """clone_with_pids()/clone2(): pids[0] names level 0; count, then privilege, then per level (no RESERVED_PIDS)."""
    pids = spawn.pids or ()
    tids: dict[int, int] = {}
    if pids:
        if failed := _too_long(state, len(pids), spawn.at, spawn.at + 1):
            return failed
        if state.root_level:
            raise Unpredictable(f"a root-anchored vector names levels above the agent's root "
                                f"(root_level {state.root_level})")
    if failed := newpid_error(state, spawn):
        return failed
    if pids:
        tids = dict(enumerate(pids))
        creds = state.creds[spawn.at]
        for i in sorted(tids, reverse=True):
            if tids[i] and not state.may_choose_pids(creds, state.levels[i].owner):
                return Outcome(errno.EPERM, why=f"level {i}: pid {tids[i]} without the capability over it")
    return walk(state, spawn, tids, _root_anchored_check, errno.EBUSY)


RULES = {  # by rule-set name (Profile.oracle_rules)
    "clone3": Rules("clone3", errno.EEXIST, predict_clone3, "child"),
    "eclone": Rules("eclone", errno.EBUSY, predict_eclone, "caller"),
    "root-anchored": Rules("root-anchored", errno.EBUSY, predict_root_anchored, "root"),
}


def rules_for(profile_name: str) -> Rules:
    """The rule set the profile names (ValueError for a profile or rule set the oracle does not know)."""
    from ..errors import UsageError
    from ..profiles import make_profile
    try:
        return RULES[make_profile(profile_name).oracle_rules]
    except (KeyError, UsageError):
        raise ValueError(f"the oracle has no rules for profile {profile_name!r}") from None


def predict(state: ChainState, spawn: Spawn, rules: Rules) -> Outcome:
    return rules.predict(state, spawn)
