"""clone_with_pids(flags, child_stack, parent_tid_ptr, child_tid_ptr, tls, struct pid_set *) as seed 001 (v6, 2009)
and NOTES.md define it.

`struct pid_set { u32 num_pids @0; pid_t pids[] @4; }`; pids[0] is the initial pid namespace (a k-entry vector
names levels 0 .. k-1, deeper ones are the kernel's); 0 lets the kernel pick; EBUSY for a busy pid; no
RESERVED_PIDS rule. The six arguments are registers, in this order on i386 too; no struct size.
"""

from __future__ import annotations

import errno
from typing import Any

from .base import PIDS_ADDR, Anchor, Profile, SpawnRequest, encode_struct, errno_name, i32_vector, no_syscall_reason

NR_CLONE_WITH_PIDS = 452  # first free number after eclone's 451 on 6.1; fchmodat2() from 6.6 on
PID_SET_HEADER = 4
COUNT_LIMIT = 0x80000000  # a num_pids no kernel level can accept (u32: must not pass as negative)

FIELDS = (("num_pids", 0, 4),)  # the pid_set header; entries follow at offset 4
REGISTERS = ("flags", "child_stack", "parent_tid_ptr", "child_tid_ptr", "tls", "pid_setp")


class CloneWithPidsProfile(Profile):
    name = "clone_with_pids"
    nr = NR_CLONE_WITH_PIDS
    nr_i386 = NR_CLONE_WITH_PIDS
    busy_errno = errno.EBUSY
    zero_means_auto = True
    needs_init_pid_first = False
    anchor = Anchor.ROOT
    reserved_pids_rule = False
    args_reg, size_reg, pids_reg = None, None, 5
    struct_size = None
    fields = FIELDS
    pointer_regs = (1, 2, 3, 5)
    pointer_fields = ()
    oracle_rules = "root-anchored"

    def spawn_step(self, req: SpawnRequest, size: int | None = None) -> dict[str, Any]:
        """`req.extra` may set registers by name (REGISTERS; "flags" replaces flags|exit_signal whole) and
        the header's num_pids; `size` is ignored (there is no size argument)."""
        extra = dict(req.extra)
        regs = {name: extra.pop(name, 0) for name in REGISTERS}
        if "flags" not in req.extra:
            regs["flags"] = req.flags | req.exit_signal
        write = []
        if req.pids is not None:
            header = encode_struct(FIELDS, PID_SET_HEADER, {"num_pids": extra.pop("num_pids", len(req.pids))})
            write.append([PIDS_ADDR, (header + i32_vector(req.pids)).hex()])
            if "pid_setp" not in req.extra:
                regs["pid_setp"] = PIDS_ADDR
        if extra:
            raise ValueError(f"clone_with_pids has no field {sorted(extra)}")
        step: dict[str, Any] = {"op": "syscall", "at": req.at, "nr": self.nr,
                                "regs": [regs[name] for name in REGISTERS],
                                "write": write, "clone": True, "child": req.child}
        if req.name:
            step["as"] = req.name
        return step

    def probe_steps(self) -> list[dict[str, Any]]:
        """A plain call (pid_setp NULL) must create a child; num_pids 2^31 must say EINVAL and create none.

        fchmodat2(dirfd, path, mode, flags), the call at 452 from 6.6 on, fails the first (path NULL)."""
        plain = self.spawn_step(SpawnRequest())
        huge = self.spawn_step(SpawnRequest(pids=(0,), extra={"num_pids": COUNT_LIMIT}))
        return [plain, huge]

    def supported(self, results: list[dict[str, Any]]) -> str | None:
        plain, huge = results
        if reason := no_syscall_reason(self.name, self.nr, plain):
            return reason
        if plain.get("ret", -1) <= 0 or not plain.get("child"):
            return (f"clone_with_pids: syscall {self.nr} is not clone_with_pids on this kernel (a plain call gave "
                    f"{errno_name(plain.get('errno', 0))}; 452 is fchmodat2() from Linux 6.6 on)")
        if huge.get("errno") != errno.EINVAL:
            return f"clone_with_pids: syscall {self.nr} accepted num_pids 2^31: not clone_with_pids"
        return None
