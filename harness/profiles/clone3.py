"""clone3(struct clone_args *, size) with set_tid (Linux >= 5.5): set_tid[0] is the innermost level."""

from __future__ import annotations

import errno
import struct
from typing import Any

from .base import ARGS_ADDR, PIDS_ADDR, Anchor, Profile, SpawnRequest, i32_vector, no_syscall_reason

NR_CLONE3 = 435
CLONE_ARGS_SIZE_VER0 = 64
CLONE_ARGS_SIZE_VER1 = 80
CLONE_ARGS_SIZE_VER2 = 88

# name, offset, size: struct clone_args in include/uapi/linux/sched.h
FIELDS = (
    ("flags", 0, 8), ("pidfd", 8, 8), ("child_tid", 16, 8), ("parent_tid", 24, 8),
    ("exit_signal", 32, 8), ("stack", 40, 8), ("stack_size", 48, 8), ("tls", 56, 8),
    ("set_tid", 64, 8), ("set_tid_size", 72, 8), ("cgroup", 80, 8),
)


def encode_args(**values: int) -> bytes:
    """struct clone_args (VER2, 88 bytes) with the given fields set, the rest zero."""
    buf = bytearray(CLONE_ARGS_SIZE_VER2)
    known = {name: off for name, off, _ in FIELDS}
    for name, value in values.items():
        struct.pack_into("<Q", buf, known[name], value % (1 << 64))
    return bytes(buf)


class Clone3Profile(Profile):
    name = "clone3"
    nr = NR_CLONE3
    busy_errno = errno.EEXIST
    zero_means_auto = False
    needs_init_pid_first = True
    anchor = Anchor.CHILD
    reserved_pids_rule = False
    args_reg, size_reg, pids_reg = 0, 1, None
    struct_size = CLONE_ARGS_SIZE_VER2
    fields = FIELDS
    pointer_regs = (0,)
    pointer_fields = ("pidfd", "child_tid", "parent_tid", "stack", "set_tid")
    nr_i386 = NR_CLONE3
    oracle_rules = "clone3"

    def spawn_step(self, req: SpawnRequest, size: int | None = None) -> dict[str, Any]:
        size = CLONE_ARGS_SIZE_VER1 if size is None else size
        values = {"flags": req.flags, "exit_signal": req.exit_signal}
        write = []
        if req.pids is not None:
            inner_first = tuple(reversed(req.pids))
            values.update(set_tid=PIDS_ADDR, set_tid_size=len(inner_first))
            write.append([PIDS_ADDR, i32_vector(inner_first).hex()])
        args = encode_args(**{**values, **req.extra})  # extra fields win: tests break the struct on purpose
        write.insert(0, [ARGS_ADDR, args[:max(size, 0)].hex()])
        step: dict[str, Any] = {"op": "syscall", "at": req.at, "nr": self.nr, "regs": [ARGS_ADDR, size, 0, 0, 0, 0],
                                "write": write, "clone": True, "child": req.child}
        if req.name:
            step["as"] = req.name
        return step

    def probe_steps(self) -> list[dict[str, Any]]:
        return [self.spawn_step(SpawnRequest(), size=CLONE_ARGS_SIZE_VER0)]

    def supported(self, results: list[dict[str, Any]]) -> str | None:
        first = results[0]
        if reason := no_syscall_reason(self.name, self.nr, first):
            return reason
        if first.get("ret", -1) <= 0 or not first.get("child"):
            return f"clone3: a plain clone3 call failed (errno {first.get('errno')}): not usable here"
        return None
