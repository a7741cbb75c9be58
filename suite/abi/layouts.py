"""The spec's struct tables, written out here independently of harness/profiles (seeds 002 and 003, NOTES.md,
include/uapi/linux/sched.h of Linux 6.1): name, offset, size of every field, per struct version."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Layout:
    profile: str
    version: str
    header: str  # where our series / mainline puts it (documentation only: the check finds it by member names)
    struct: str  # its C name there (likewise)
    size_macro: str | None  # a size macro that, if the header defines it, must equal `size`
    size: int
    fields: tuple[tuple[str, int, int], ...]  # (name, offset, size)
    extensible: bool = False  # the struct may grow by appending (clone3's sizes): sizeof >= size, not ==

    @property
    def names(self) -> list[str]:
        return [name for name, _, _ in self.fields]


ECLONE = Layout("eclone", "seed003", "linux/eclone.h", "eclone_args", "ECLONE_ARGS_SIZE_VER0", 56, (
    ("clone_flags_high", 0, 8), ("child_stack_base", 8, 8), ("child_stack_size", 16, 8),
    ("parent_tid_ptr", 24, 8), ("child_tid_ptr", 32, 8), ("nr_pids", 40, 4), ("reserved0", 44, 4),
    ("reserved1", 48, 8)))

CLONE2 = Layout("clone2", "seed002", "linux/clone2.h", "clone_struct", "CLONE_STRUCT_SIZE_VER0", 40, (
    ("flags", 0, 8), ("child_stack", 8, 8), ("nr_pids", 16, 4), ("parent_tid", 20, 4), ("child_tid", 24, 4),
    ("reserved1", 28, 4), ("reserved2", 32, 8)))

_VER0 = (("flags", 0, 8), ("pidfd", 8, 8), ("child_tid", 16, 8), ("parent_tid", 24, 8), ("exit_signal", 32, 8),
         ("stack", 40, 8), ("stack_size", 48, 8), ("tls", 56, 8))
_VER1 = (*_VER0, ("set_tid", 64, 8), ("set_tid_size", 72, 8))
_VER2 = (*_VER1, ("cgroup", 80, 8))
CLONE3_VER0 = Layout("clone3", "VER0", "linux/sched.h", "clone_args", "CLONE_ARGS_SIZE_VER0", 64,
                     _VER0, extensible=True)
CLONE3_VER1 = Layout("clone3", "VER1", "linux/sched.h", "clone_args", "CLONE_ARGS_SIZE_VER1", 80,
                     _VER1, extensible=True)
CLONE3_VER2 = Layout("clone3", "VER2", "linux/sched.h", "clone_args", "CLONE_ARGS_SIZE_VER2", 88,
                     _VER2, extensible=True)

LAYOUTS = (ECLONE, CLONE2, CLONE3_VER0, CLONE3_VER1, CLONE3_VER2)
NEWEST = {"eclone": ECLONE, "clone2": CLONE2, "clone3": CLONE3_VER2}  # every field the struct has (clone_with_pids:
# no struct but the 4-byte pid_set header, checked behaviourally)
