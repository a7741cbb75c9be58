"""What each interface must do, written from the spec (seeds, NOTES.md, 6.1's clone3), independently of the
profiles under test: one table per profile. Tests assert these values; they never ask the profile under test
what to expect. A new profile needs its table here (an unknown one fails with a KeyError naming it).
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class InterfaceSpec:
    name: str
    nr: int  # x86_64 and i386 number on the reference kernel
    busy_errno: int
    anchor: str  # a short vector starts at: "caller" (eclone), "root" (level 0), "child" (clone3's set_tid)
    reserved_pids_rule: bool  # pids < 300 refused once the level's cursor passed 300
    zero_means_auto: bool  # a 0 entry lets the kernel pick (else 0 is out of range)
    args_reg: int | None  # register with the struct pointer (None: no struct)
    size_reg: int | None  # register with the struct size (None: no size argument)
    pids_reg: int | None  # register with the pid vector (or pid_set) pointer; None: a struct field
    default_size: int | None  # the struct size tests pass (None: no struct / fixed)
    fields: dict[str, str]  # profile-neutral name -> the field (or register) the encoder knows
    count_offset: int  # offset of the count word from the struct (clone_with_pids: from the pid_set)
    tid_addresses: int  # bits of a tid address the call carries (clone2: 32, zero-extended)
    stack: Callable[[int], dict[str, int]]  # fields that make `top` the child's stack pointer
    high_flags: str | None  # flags above bit 31: "einval" (clone2's u64 flags), "ignored" (clone_with_pids)
    reserved: tuple[tuple[int, int], ...] = ()  # (offset, length) of must-be-zero bytes in the struct
    privilege_first: bool = True  # privilege for every nonzero entry before any value (clone3: per level)
    level_order_from_kernel: bool = False  # errno precedence across levels is the kernel version's (NOTES.md
    # "Newer kernels": mainline's two-pass alloc_pid); the seeds' calls have NOTES.md's fixed order
    notes: dict[str, str] = field(default_factory=dict)


SPECS = {
    "eclone": InterfaceSpec(
        "eclone", 451, errno.EBUSY, "caller", True, True, 1, 2, 3, 56,
        {"parent_tid": "parent_tid_ptr", "child_tid": "child_tid_ptr", "count": "nr_pids", "pidfd": "parent_tid_ptr"},
        40, 64, lambda top: {"child_stack_base": top}, None, ((44, 4), (48, 8))),
    "clone_with_pids": InterfaceSpec(
        "clone_with_pids", 452, errno.EBUSY, "root", False, True, None, None, 5, None,
        {"parent_tid": "parent_tid_ptr", "child_tid": "child_tid_ptr", "count": "num_pids", "pidfd": "parent_tid_ptr"},
        0, 64, lambda top: {"child_stack": top}, "ignored"),
    "clone2": InterfaceSpec(
        "clone2", 453, errno.EBUSY, "root", False, True, 0, None, 1, 40,
        {"parent_tid": "parent_tid", "child_tid": "child_tid", "count": "nr_pids", "pidfd": "parent_tid"},
        16, 32, lambda top: {"child_stack": top}, "einval", ((28, 4), (32, 8))),
    "clone3": InterfaceSpec(
        "clone3", 435, errno.EEXIST, "child", False, False, 0, 1, None, 88,
        {"parent_tid": "parent_tid", "child_tid": "child_tid", "count": "set_tid_size", "pidfd": "pidfd"},
        72, 64, lambda top: {"stack": top - 0x1000, "stack_size": 0x1000}, None, privilege_first=False,
        level_order_from_kernel=True),
}


def spec_of(profile_name: str) -> InterfaceSpec:
    return SPECS[profile_name]


def profiles_where(pred: Callable[[InterfaceSpec], bool]) -> tuple[str, ...]:
    """Names for `@pytest.mark.profiles(...)`: the profiles whose spec table satisfies `pred`."""
    return tuple(name for name, spec in SPECS.items() if pred(spec))


PASS_ZERO_AS_AUTO = profiles_where(lambda s: s.zero_means_auto)
CHOSEN_FROM_CALLER = profiles_where(lambda s: s.anchor == "caller")
ROOT_ANCHORED = profiles_where(lambda s: s.anchor == "root")
WITH_RESERVED_PIDS_RULE = profiles_where(lambda s: s.reserved_pids_rule)
WITHOUT_RESERVED_PIDS_RULE = profiles_where(lambda s: not s.reserved_pids_rule)
WITH_SIZE_ARGUMENT = profiles_where(lambda s: s.size_reg is not None)
WITH_STRUCT = profiles_where(lambda s: s.args_reg is not None)
WIDE_TID_ADDRESSES = profiles_where(lambda s: s.tid_addresses == 64)
# short vectors that end at the caller's level (eclone) or in the child's namespace (clone3); the root-anchored
# calls have their own short-vector tests (abi/test_layout_behaviour count field, oracle agreement)
ANCHORED_AT_THE_CALLERS_SIDE = profiles_where(lambda s: s.anchor != "root")
NOT_INTO_NEW_NAMESPACE = profiles_where(lambda s: s.anchor != "child")  # pids cover the caller's levels only
EBUSY_FAMILY = profiles_where(lambda s: s.busy_errno == errno.EBUSY)  # eclone and its ancestors


# --- write, then create (NOTES.md "next_id (seed 004) and its mainline descendants"; harness/profiles/ids.py)

INT_MAX = 2**31 - 1


@dataclass(frozen=True)
class IdSpec:
    """What a write-then-create file must do, from NOTES.md (and 6.1's kernel/pid_namespace.c, ipc/)."""

    name: str
    path: str
    objects: str  # "process", or the SysV kind its ids name: "msg", "sem", "shm"
    busy_errno: int | None  # a busy id: this errno, or None: the next free one is taken (no error)
    denied_errno: int  # writing without CAP_SYS_ADMIN/CAP_CHECKPOINT_RESTORE over the namespace's owner
    highest: str | int  # the largest value a write accepts ("pid_max": the namespace's own); 0 is the lowest
    reads_after_create: str  # what the file reads after a creation used it: "created" (the new id), "-1"
    atomic: bool  # no other creation can take the id between the write and the caller's creation
    numeric: bool = True  # the file holds one number (False: next_id's "LONG<n> X0 .." syntax)


ID_SPECS = {
    # one-shot ids of the writer's next fork/clone, X0 innermost, clone3's rules with EBUSY; reads empty after use;
    # privilege is judged at the creation, ids up to LONG_MAX are accepted by the write
    "next_id": IdSpec("next_id", "/proc/thread-self/next_id", "process", errno.EBUSY, errno.EPERM,
                      2**63 - 1, "empty", True, numeric=False),
    # its SysV IPC form: one pending id is the next object's exact id (index in use: EBUSY, out of range: EINVAL)
    **{f"next_id_{k}": IdSpec(f"next_id_{k}", "/proc/thread-self/next_id", k, errno.EBUSY, errno.EPERM,
                              2**63 - 1, "empty", True, numeric=False) for k in ("msg", "sem", "shm")},
    # writing N sets the cursor: the next pid is N+1 if free, else the next free one; EPERM from the handler
    "ns_last_pid": IdSpec("ns_last_pid", "/proc/sys/kernel/ns_last_pid", "process", None, errno.EPERM,
                          "pid_max", "created", False),
    # 0444 unless capable over the IPC namespace's owner (ipc_permissions), so the open fails with EACCES;
    # sequence id / 32768, lowest free index >= id % 32768, reset to -1 by the creation
    **{f"{k}_next_id": IdSpec(f"{k}_next_id", f"/proc/sys/kernel/{k}_next_id", k, None, errno.EACCES,
                              INT_MAX, "-1", False) for k in ("msg", "sem", "shm")},
}


def id_spec_of(profile_name: str) -> IdSpec:
    return ID_SPECS[profile_name]


def id_profiles_where(pred: Callable[[IdSpec], bool]) -> tuple[str, ...]:
    return tuple(name for name, spec in ID_SPECS.items() if pred(spec))


IDS_OF_PROCESSES = id_profiles_where(lambda s: s.objects == "process")
IDS_OF_IPC_OBJECTS = id_profiles_where(lambda s: s.objects != "process")
NOT_ATOMIC = id_profiles_where(lambda s: not s.atomic)  # the write-then-fork race is theirs by design
NUMERIC_ID_FILES = id_profiles_where(lambda s: s.numeric)  # the mainline files: one number, checked at the write
CURSOR_FILES = id_profiles_where(lambda s: s.numeric and s.objects == "process")  # ns_last_pid
