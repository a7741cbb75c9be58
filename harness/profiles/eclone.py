"""eclone(flags_low, struct clone_args *, args_size, pid_t *pids) as seeds 000/003 define it.

pids[0] is the outermost namespace; EBUSY for a busy pid; 0 lets the kernel pick at that level.
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

NR_ECLONE = 451  # first free x86_64 number on 6.1; cachestat() from 6.5 on
ECLONE_ARGS_SIZE = 56
LINUX_CR_ARGS_SIZE = 48  # the final Linux-CR eclone (v13/v14, 2010) dropped reserved1

# name, offset, size: struct clone_args of seed 003 (named eclone_args in the kernel)
FIELDS = (
    ("clone_flags_high", 0, 8), ("child_stack_base", 8, 8), ("child_stack_size", 16, 8),
    ("parent_tid_ptr", 24, 8), ("child_tid_ptr", 32, 8), ("nr_pids", 40, 4), ("reserved0", 44, 4),
    ("reserved1", 48, 8),
)


def encode_args(**values: int) -> bytes:
    """The 56-byte args struct with the given fields set, the rest zero."""
    return encode_struct(FIELDS, ECLONE_ARGS_SIZE, values)


class EcloneProfile(Profile):
    name = "eclone"
    busy_errno = errno.EBUSY
    zero_means_auto = True
    needs_init_pid_first = False
    anchor = Anchor.CALLER
    reserved_pids_rule = True
    args_reg, size_reg, pids_reg = 1, 2, 3
    struct_size = ECLONE_ARGS_SIZE
    fields = FIELDS
    pointer_regs = (1, 3)
    pointer_fields = ("child_stack_base", "parent_tid_ptr", "child_tid_ptr")
    oracle_rules = "eclone"

    def __init__(self, nr: int = NR_ECLONE) -> None:
        self.nr = nr
        self.nr_i386 = nr  # the series wires one number in both tables

    def spawn_step(self, req: SpawnRequest, size: int | None = None) -> dict[str, Any]:
        args_size = ECLONE_ARGS_SIZE if size is None else size
        values = dict(req.extra)
        write = []
        pids_ptr = 0
        if req.pids is not None:
            values.setdefault("nr_pids", len(req.pids))
            pids_ptr = PIDS_ADDR
            write.append([PIDS_ADDR, i32_vector(req.pids).hex()])
        args = encode_args(**values)
        write.insert(0, [ARGS_ADDR, args.hex()])
        flags_low = (req.flags | req.exit_signal) & 0xFFFFFFFF
        step: dict[str, Any] = {"op": "syscall", "at": req.at, "nr": self.nr,
                                "regs": [flags_low, ARGS_ADDR, args_size, pids_ptr, 0, 0],
                                "write": write, "clone": True, "child": req.child}
        if req.name:
            step["as"] = req.name
        return step

    def probe_steps(self) -> list[dict[str, Any]]:
        """A plain eclone (nr_pids 0) must create a child; args_size 55 must say EINVAL.

        Another call at the same number (cachestat on >= 6.5) cannot do both. A third call with the
        48-byte struct of the final Linux-CR eclone tells that ABI apart, for a precise skip reason.
        """
        plain = self.spawn_step(SpawnRequest())
        short = self.spawn_step(SpawnRequest(), size=ECLONE_ARGS_SIZE - 1)
        linux_cr = self.spawn_step(SpawnRequest(), size=LINUX_CR_ARGS_SIZE)
        return [plain, short, linux_cr]

    def supported(self, results: list[dict[str, Any]]) -> str | None:
        plain, short, linux_cr = results
        if reason := no_syscall_reason(self.name, self.nr, plain):
            return reason
        if plain.get("errno") == errno.EINVAL and linux_cr.get("ret", -1) > 0 and linux_cr.get("child"):
            return (f"eclone: syscall {self.nr} takes a {LINUX_CR_ARGS_SIZE}-byte struct (the final Linux-CR "
                    f"eclone, without reserved1); this profile tests the seeds' {ECLONE_ARGS_SIZE}-byte ABI")
        if plain.get("ret", -1) <= 0 or not plain.get("child"):
            return (f"eclone: syscall {self.nr} is not eclone on this kernel (a plain call gave "
                    f"{errno_name(plain.get('errno', 0))}; 451 is cachestat() from Linux 6.5 on)")
        if short.get("errno") != errno.EINVAL:
            return f"eclone: syscall {self.nr} accepted args_size 55: not eclone"
        return None
