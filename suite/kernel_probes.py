"""Kernel behaviour NOTES.md leaves to the kernel version, probed once per target rather than assumed.

Each probe makes a call whose outcome differs between correct kernels (NOTES.md "Newer kernels"), checks that
the outcome is one of the known correct ones, and returns which. Tests take their expectation from it, so
a 6.1 kernel and a 6.18 kernel both pass, and a kernel that is neither fails the probe's own assertion.
The places that use a probe are listed in docs/TRACEABILITY.md (`harness trace`, rule ids `V-*`).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from harness.programs import ARENA, chain, program, syscall_step

if TYPE_CHECKING:
    from harness.targets.base import Target

SYS_CLONE = 56  # x86_64
SYS_CLONE3 = 435
CLONE_VM, CLONE_SIGHAND, CLONE_PIDFD, CLONE_THREAD = 0x100, 0x800, 0x1000, 0x10000

_cache: dict[tuple[int, str], Any] = {}


def _once(target: Target, key: str, compute: Any) -> Any:
    k = (id(target), key)
    if k not in _cache:
        _cache[k] = compute(target)
    return _cache[k]


def _clone_accepts_pidfd_thread(target: Target) -> bool:
    """clone(2) with CLONE_PIDFD|CLONE_THREAD (a thread that exits at once): EINVAL before 6.9, a thread since."""
    flags = CLONE_PIDFD | CLONE_THREAD | CLONE_SIGHAND | CLONE_VM
    step = syscall_step(SYS_CLONE, [flags, 0, ARENA, 0, 0, 0], at=1, clone=True, child="exit")
    res = target.run(program([step], chain(1)))["steps"][0]
    assert res["errno"] in (0, errno.EINVAL), f"clone(2) CLONE_PIDFD|CLONE_THREAD: neither a thread nor EINVAL: {res}"
    return res["errno"] == 0


def clone_accepts_pidfd_thread(target: Target) -> bool:
    """V-PIDFD-THREAD: whether this kernel's clone(2) takes CLONE_PIDFD|CLONE_THREAD (NOTES.md: since 6.9)."""
    return _once(target, "pidfd_thread", _clone_accepts_pidfd_thread)


def _clone3_outer_eperm_beats_inner_eexist(target: Target) -> bool:
    """clone3 at level 1 (root of its own user namespace, so privileged over level 1 only) with set_tid naming
    pid 1 of level 1 (busy: the worker) and any pid of level 0 (not its own): 6.1 walks innermost first and
    stops at the busy pid (EEXIST); the two-pass alloc_pid checks privilege at every level first (EPERM)."""
    from harness.profiles import SpawnRequest, make_profile

    step = make_profile("clone3").spawn_step(SpawnRequest(at=1, pids=(2, 1), child="exit"))
    res = target.run(program([step], chain(1, userns_at=[1])))["steps"][0]
    assert res["errno"] in (errno.EEXIST, errno.EPERM), f"clone3, outer level foreign, inner pid busy: {res}"
    return res["errno"] == errno.EPERM


def clone3_privilege_pass_first(target: Target) -> bool:
    """V-CLONE3-TWO-PASS: whether alloc_pid checks privilege at every level before allocating any (NOTES.md
    "Newer kernels": an outer EPERM beats an inner EEXIST); False: 6.1's one walk, innermost first."""
    return _once(target, "clone3_two_pass", _clone3_outer_eperm_beats_inner_eexist)
