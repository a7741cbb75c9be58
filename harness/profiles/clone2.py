"""clone2(struct clone_struct *, pid_t *pids) as seed 002 (v7, 2009) and NOTES.md define it.

`struct clone_struct { u64 flags @0; u64 child_stack @8; u32 nr_pids @16; u32 parent_tid @20; u32 child_tid @24;
u32 reserved1 @28; u64 reserved2 @32; }`, 40 bytes, no size argument. flags bits 32-63, reserved1, reserved2
-> EINVAL; the tid fields are 32-bit addresses. pids[0] is the initial pid namespace (root-anchored, as
clone_with_pids); EBUSY for a busy pid; no RESERVED_PIDS rule.
"""

from __future__ import annotations

import errno
from typing import Any

from .base import (
    ARGS_ADDR,
    PIDS_ADDR,
    Anchor,
    Profile,
    SpawnRequest,
    encode_struct,
    errno_name,
    i32_vector,
    no_syscall_reason,
)

NR_CLONE2 = 453  # first free number after clone_with_pids' 452 on 6.1; map_shadow_stack() from 6.6 on
CLONE_STRUCT_SIZE = 40

# name, offset, size: struct clone_struct of seed 002
FIELDS = (
    ("flags", 0, 8), ("child_stack", 8, 8), ("nr_pids", 16, 4), ("parent_tid", 20, 4), ("child_tid", 24, 4),
    ("reserved1", 28, 4), ("reserved2", 32, 8),
)


def encode_args(**values: int) -> bytes:
    """The 40-byte struct with the given fields set, the rest zero."""
    return encode_struct(FIELDS, CLONE_STRUCT_SIZE, values)


class Clone2Profile(Profile):
    name = "clone2"
    nr = NR_CLONE2
    nr_i386 = NR_CLONE2
    busy_errno = errno.EBUSY
    zero_means_auto = True
    needs_init_pid_first = False
    anchor = Anchor.ROOT
    reserved_pids_rule = False
    args_reg, size_reg, pids_reg = 0, None, 1
    struct_size = CLONE_STRUCT_SIZE
    fields = FIELDS
    pointer_regs = (0, 1)
    pointer_fields = ("child_stack",)
    oracle_rules = "root-anchored"

    def spawn_step(self, req: SpawnRequest, size: int | None = None) -> dict[str, Any]:
        """`req.extra` sets struct fields ("flags" replaces flags|exit_signal whole); `size` is ignored."""
        values = {"flags": req.flags | req.exit_signal}
        write = []
        pids_ptr = 0
        if req.pids is not None:
            values["nr_pids"] = len(req.pids)
            pids_ptr = PIDS_ADDR
            write.append([PIDS_ADDR, i32_vector(req.pids).hex()])
        values.update(req.extra)
        write.insert(0, [ARGS_ADDR, encode_args(**values).hex()])
        step: dict[str, Any] = {"op": "syscall", "at": req.at, "nr": self.nr, "regs": [ARGS_ADDR, pids_ptr, 0, 0, 0, 0],
                                "write": write, "clone": True, "child": req.child}
        if req.name:
            step["as"] = req.name
        return step

    def probe_steps(self) -> list[dict[str, Any]]:
        """A plain call must create a child; reserved1 = 1 must say EINVAL.

        map_shadow_stack(addr, size, flags), the call at 453 from 6.6 on, refuses size 0 (the first)."""
        return [self.spawn_step(SpawnRequest()), self.spawn_step(SpawnRequest(extra={"reserved1": 1}))]

    def supported(self, results: list[dict[str, Any]]) -> str | None:
        plain, reserved = results
        if reason := no_syscall_reason(self.name, self.nr, plain):
            return reason
        if plain.get("ret", -1) <= 0 or not plain.get("child"):
            return (f"clone2: syscall {self.nr} is not clone2 on this kernel (a plain call gave "
                    f"{errno_name(plain.get('errno', 0))}; 453 is map_shadow_stack() from Linux 6.6 on)")
        if reserved.get("errno") != errno.EINVAL:
            return f"clone2: syscall {self.nr} accepted a nonzero reserved1: not clone2"
        return None
