"""The clone stub: machine code (child_stub.S) that makes a clone-like call so that no child runs Python.

A child of the agent never runs the interpreter: it exits, stores its stack pointer, reports (getpid and
its /proc/self/status in one pipe write), holds or parks, all in machine code. That is what makes a
spawn cheap (with lean_fork, the child does not even get a copy of the interpreter's memory) and lets
CLONE_VM, CLONE_THREAD and new-stack children work at all.
"""

from __future__ import annotations

import ctypes
import mmap

from .libc import MASK64

TYPE_CHECKING = False  # typing and collections.abc cost ~80 ms of a cold start under TCG: annotations only
if TYPE_CHECKING:
    from collections.abc import Callable

MODES = {"exit": 0, "sp": 1, "report": 2, "hold": 3, "park": 4, "fs": 5, "nap": 6}
NAP_SECONDS = 1  # how long a "nap" child lives (child_stub.S nap_time)
I386 = 0x100  # or-ed into the mode: the call goes through int 0x80 (child_stub.S)
I386_GETPID = 20

# Generated from child_stub.S by `python -m harness.stub_asm`; tests/test_child_stub.py checks it.
CODE = bytes.fromhex(
    "534154488b5c24204c8b6424284889f8f7c300010000751f4889f74889d64889"
    "ca4d89c24d89c84c8b4c24180f054885c07431415c5bc35541554989dd4889f3"
    "4c89c64989c84889d14c89c24c89cf488b6c2428cd80410fb6dd4885c0740541"
    "5d5debcf4883fb05751bb89e000000bf0310000048bef8ff0000010000000f05"
    "e9b20000004883fb01751248b9f8ff000001000000488921e99a0000004883fb"
    "040f84870000004883fb067512b823000000488d3d9b00000031f60f05eb7848"
    "83fb027272b8270000000f0548b900800000010000008901b802000000488d3d"
    "5e00000031f631d20f054531c04885c0781e4889c731c048be04800000010000"
    "00ba9c0f00000f054885c078034989c0b8010000004c89e748be008000000100"
    "0000498d50040f054883fb037509b8220000000f05ebf7b83c00000031ff0f05"
    "0f0b2f70726f632f73656c662f73746174757300010000000000000000000000"
    "00000000"
)

_page: mmap.mmap | None = None
_stub: ctypes._CFuncPtr | None = None
_ia32: bool | None = None


def page_range() -> tuple[int, int]:
    """Where the stub lives (lean_fork must keep this page in every child)."""
    _load()
    assert _page is not None
    start = ctypes.addressof(ctypes.c_char.from_buffer(_page))
    return start, mmap.PAGESIZE


def _load() -> ctypes._CFuncPtr:
    global _page, _stub
    if _stub is None:
        _page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        _page.write(CODE)
        proto = ctypes.CFUNCTYPE(ctypes.c_long, *([ctypes.c_long] * 9))
        _stub = proto(ctypes.addressof(ctypes.c_char.from_buffer(_page)))
    return _stub


def signed_regs(regs: list[int]) -> list[int]:
    """Six registers as c_long values (programs give them unsigned 64-bit)."""
    out = [r & MASK64 for r in (list(regs) + [0] * 6)[:6]]
    return [r - (1 << 64) if r >= 1 << 63 else r for r in out]


def prepare(nr: int, regs: list[int], mode: str, wfd: int = -1,
            i386: bool = False) -> Callable[[], tuple[int, int]]:
    """The call with everything converted in advance (racers run only this after their barrier).
    With i386 it goes through int 0x80: ask ia32() first, a kernel without IA32 emulation kills the caller."""
    stub = _load()
    args = [nr, *signed_regs(regs), MODES[mode] | (I386 if i386 else 0), wfd]

    def call() -> tuple[int, int]:
        ret = stub(*args)
        return (-1, -ret) if -4096 < ret < 0 else (ret, 0)
    return call


def syscall(nr: int, regs: list[int], mode: str, wfd: int = -1, i386: bool = False) -> tuple[int, int]:
    """(ret, errno) of the call in the caller; a child it creates follows `mode` and never returns."""
    return prepare(nr, regs, mode, wfd, i386)()


def ia32() -> bool:
    """Whether int 0x80 reaches the i386 syscall table (CONFIG_IA32_EMULATION, not disabled at boot): a
    throwaway fork asks getpid() through it (without IA32 emulation the kernel answers with SIGSEGV)."""
    global _ia32
    if _ia32 is None:
        import os
        call = prepare(I386_GETPID, [], "exit", i386=True)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = 0 if call() == (os.getpid(), 0) else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        _ia32 = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    return _ia32


def parse_report(data: bytes) -> dict[str, object]:
    """The report a `report`/`hold` child wrote: {"nspid": [...], "getpid": n}; ValueError if it is not one."""
    if len(data) < 4:
        raise ValueError(f"short report ({len(data)} bytes)")
    getpid = int.from_bytes(data[:4], "little", signed=True)
    for line in data[4:].split(b"\n"):
        if line.startswith(b"NSpid:"):
            return {"nspid": [int(x) for x in line.split()[1:]], "getpid": getpid}
    raise ValueError("no NSpid line in the child's /proc/self/status")
