"""Make a fork-like call cheap: the child gets only the pages it can use, not a copy of the interpreter.

A fork copies the caller's page tables and write-protects every private page, so the caller then takes a
copy-on-write fault on each page the interpreter touches: under TCG that made the agent's spawn about
ten times slower than a small C program's. The children of our clone stub never run Python (they use
only the stub's page and their copy of the arena), so around a stub call every private mapping of the
caller is marked MADV_DONTFORK except those two, and marked back afterwards: the kernel then copies
almost nothing, and the interpreter's pages are never write-protected.
[vvar] (VM_IO) is left alone: MADV_DOFORK refuses VM_IO mappings, so it could never be marked back.
The page of glibc's rseq area is kept too: the kernel writes it on the child's way back to user space and
kills the child with SIGSEGV when it is not mapped.
"""

from __future__ import annotations

import ctypes
import os

MADV_DONTFORK, MADV_DOFORK = 10, 11
LOW, TOP = 0x10000, 0x7FFF_FFFF_F000  # mmap_min_addr .. the 47-bit user address space

_libc = ctypes.CDLL(None, use_errno=True)
_madvise = _libc.madvise
_madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_spans: list[tuple[int, int]] | None = None
_kernel_touches: list[tuple[int, int]] | None = None
ARCH_GET_FS, SYS_ARCH_PRCTL, PAGE = 0x1003, 158, 4096


def io_mappings() -> list[tuple[int, int]]:
    """The [vvar]-like mappings (VM_IO: never marked), from /proc/self/maps; they do not move."""
    out = []
    with open("/proc/self/maps", "rb") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 6 and fields[5].startswith(b"[vvar"):
                lo, hi = (int(x, 16) for x in fields[0].split(b"-"))
                out.append((lo, hi))
    return sorted(out)


def spans() -> list[tuple[int, int]]:
    """(start, length) pieces of the user address space around the VM_IO mappings."""
    global _spans
    if _spans is None:
        pieces, start = [], LOW
        for lo, hi in io_mappings():
            if lo > start:
                pieces.append((start, lo - start))
            start = max(start, hi)
        if start < TOP:
            pieces.append((start, TOP - start))
        _spans = pieces
    return _spans


def rseq_page() -> list[tuple[int, int]]:
    """The page holding this thread's rseq area (thread pointer + glibc's __rseq_offset), if registered."""
    try:
        offset = ctypes.c_long.in_dll(_libc, "__rseq_offset").value
        size = ctypes.c_uint.in_dll(_libc, "__rseq_size").value
    except ValueError:  # glibc before 2.35 registers no rseq area
        return []
    if size == 0:
        return []
    fs = ctypes.c_ulong()
    _libc.syscall(SYS_ARCH_PRCTL, ARCH_GET_FS, ctypes.byref(fs))
    return [((fs.value + offset) & ~(PAGE - 1), PAGE)]


def kernel_touches() -> list[tuple[int, int]]:
    """What the kernel itself writes in a new child before it runs an instruction."""
    global _kernel_touches
    if _kernel_touches is None:
        _kernel_touches = rseq_page()
    return _kernel_touches


def _advise(start: int, length: int, advice: int) -> None:
    """madvise over a range with holes: ENOMEM (unmapped parts) is expected, the mapped parts are done."""
    _madvise(start, length, advice)


_depth = 0  # nested marks (a sweep marks once around all its calls) madvise only at the outermost
_marked = False  # the marks stay between stub calls: taken off only before a fork of Python
_since = 0  # outermost marks since the address space was last marked
REMARK_EVERY = 64  # mappings made since then (the heap grows) are marked again this often


def mark(keep: list[tuple[int, int]]) -> None:
    """From now on a fork copies only the (start, length) ranges in `keep` (page aligned). The marks of the
    previous stub call are usually still there: madvise over the whole address space costs ~0.3 ms under
    TCG, so it is redone only every REMARK_EVERY calls (to mark mappings made meanwhile) or after a fork of
    Python took the marks off."""
    global _depth, _marked, _since
    _depth += 1
    if _depth > 1:
        return
    _since += 1
    if _marked and _since < REMARK_EVERY:
        return
    for start, length in spans():
        _advise(start, length, MADV_DONTFORK)
    for start, length in [*keep, *kernel_touches()]:
        _advise(start, length, MADV_DOFORK)
    _marked, _since = True, 0


def unmark() -> None:
    """The end of a stub call. The marks stay (see mark); before_python_fork() takes them off."""
    global _depth
    _depth = max(_depth - 1, 0)


def before_python_fork() -> None:
    """Every fork whose child runs Python calls this first: the child needs the interpreter's memory.
    os.fork() calls it by itself (registered below); raw clones (libc.raw_fork, a clone-like syscall step
    without a stub) call it explicitly."""
    global _marked
    if _marked:
        for start, length in spans():
            _advise(start, length, MADV_DOFORK)
        _marked = False


os.register_at_fork(before=before_python_fork)


class lean_fork:  # used like a function: `with lean_fork(keep):`
    """Within: a fork copies only the ranges in `keep` (a class, not contextlib: one import less)."""

    def __init__(self, keep: list[tuple[int, int]]) -> None:
        self.keep = keep

    def __enter__(self) -> None:
        mark(self.keep)

    def __exit__(self, *exc: object) -> None:
        unmark()
