"""The oracle's picture of a namespace chain: per level the pids in use, pid_max, allocation cursor, init,
owning user namespace, and per level the credentials of the worker that makes calls there.

Plain data, no I/O: `sync.py` fills it from what the agent reports, `predict.py` reads it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

RESERVED_PIDS = 300  # include/linux/pid_namespace.h (via threads.h)
MAX_PID_NS_LEVEL = 32
CAP_SYS_ADMIN = 21
CAP_CHECKPOINT_RESTORE = 40


@dataclass(frozen=True)
class UserNs:
    """A user namespace; `ident` is the chain level whose worker created it (0: the agent's own)."""

    ident: int
    parent: int | None
    depth: int


@dataclass(frozen=True)
class Creds:
    """What a worker may do: its user namespace and effective capabilities (None: all of them)."""

    userns: int
    caps: frozenset[int] | None = None

    def has(self, cap: int) -> bool:
        return self.caps is None or cap in self.caps


@dataclass
class Level:
    """One pid namespace of the chain.

    `cursor` is the idr cursor (`ns_last_pid` + 1): where the kernel starts looking for an automatic pid.
    `shared`: other tasks (kernel threads in a guest's initial namespace) allocate here too, so the
    kernel's automatic choice can only be predicted as "some free pid".
    """

    pid_max: int
    used: set[int] = field(default_factory=set)
    cursor: int = 0
    owner: int = 0
    has_init: bool = True
    shared: bool = False

    def is_free(self, pid: int) -> bool:
        return 0 < pid < self.pid_max and pid not in self.used

    def pid_min(self) -> int:
        """alloc_pid(): init needs pid 1, but once the cursor passed RESERVED_PIDS picks wrap to 300."""
        return RESERVED_PIDS if self.cursor > RESERVED_PIDS else 1

    def next_auto(self) -> int | None:
        """idr_alloc_cyclic(pid_min, pid_max) from the cursor, wrapping once; None when the level is full."""
        lo = self.pid_min()
        start = max(self.cursor, lo)
        for first, end in ((start, self.pid_max), (lo, start)):
            for pid in range(first, end):
                if pid not in self.used:
                    return pid
        return None


@dataclass
class ChainState:
    """Levels 0..depth (index = level as the agent numbers them) and the kernel level of level 0."""

    levels: list[Level]
    creds: list[Creds]
    userns: dict[int, UserNs]
    root_level: int = 0

    @property
    def depth(self) -> int:
        return len(self.levels) - 1

    def kernel_level(self, level: int) -> int:
        return self.root_level + level

    def capable(self, creds: Creds, owner: int, cap: int) -> bool:
        """cap_capable(): walk from the target user namespace towards the caller's."""
        ns = self.userns[owner]
        mine = self.userns[creds.userns]
        while True:
            if ns.ident == mine.ident:
                return creds.has(cap)
            if ns.depth <= mine.depth or ns.parent is None:
                return False
            if ns.parent == mine.ident:
                return True  # the owner of a child user namespace (every worker has the same kuid)
            ns = self.userns[ns.parent]

    def may_choose_pids(self, creds: Creds, owner: int) -> bool:
        """checkpoint_restore_ns_capable(): CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN over `owner`."""
        return self.capable(creds, owner, CAP_CHECKPOINT_RESTORE) or self.capable(creds, owner, CAP_SYS_ADMIN)

    def copy(self) -> ChainState:
        return copy.deepcopy(self)


def build_chain_state(spec: dict, pid_maxes: list[int], root_level: int = 0, shared: set[int] = frozenset(),
                      agent_caps: frozenset[int] | None = None) -> ChainState:
    """A chain as PROGRAMS.md describes `spec`: level k's pid namespace is owned by worker k's user namespace.

    Pids in use and cursors start empty; sync.py fills them from the agent's reports.
    """
    userns = {0: UserNs(0, None, 0)}
    creds = [Creds(0, agent_caps)]
    for k, level in enumerate(spec.get("levels", []), start=1):
        mine = creds[-1].userns
        if level.get("userns"):
            userns[k] = UserNs(k, mine, userns[mine].depth + 1)
            mine = k
        caps = level.get("caps")
        creds.append(Creds(mine, None if caps is None else frozenset(int(c) for c in caps)))
    levels = [Level(pid_max=pid_maxes[k], owner=creds[k].userns, shared=k in shared) for k in range(len(creds))]
    return ChainState(levels=levels, creds=creds, userns=userns, root_level=root_level)
