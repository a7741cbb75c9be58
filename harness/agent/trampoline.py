"""A syscall stub whose child exits at once: clone-like calls with CLONE_VM or a new stack cannot run Python.

x86_64 only. long stub(nr, a1, a2, a3, a4, a5, a6): moves the SysV arguments into the syscall registers,
issues the syscall and, where it returned 0 (the child), calls exit(0) (not exit_group: with CLONE_THREAD
the child is a thread of the caller). The "sp" variant's child first stores its stack pointer at
arena.SP_SLOT (seen by the caller only when the child shares its memory: CLONE_VM).
"""

from __future__ import annotations

import ctypes
import mmap

from .arena import SP_SLOT
from .libc import MASK64

_CODE = bytes.fromhex(
    "4889f8"  # mov rax, rdi
    "4889f7"  # mov rdi, rsi
    "4889d6"  # mov rsi, rdx
    "4889ca"  # mov rdx, rcx
    "4d89c2"  # mov r10, r8
    "4d89c8"  # mov r8, r9
    "4c8b4c2408"  # mov r9, [rsp+8]
    "0f05"  # syscall
    "4885c0"  # test rax, rax
    "7509"  # jnz ret
    "b83c000000"  # mov eax, 60 (exit)
    "31ff"  # xor edi, edi
    "0f05"  # syscall
    "c3"  # ret
)

_CODE_SP = _CODE[:_CODE.index(bytes.fromhex("7509"))] + bytes.fromhex(
    "7516"  # jnz ret
    "48b9") + SP_SLOT.to_bytes(8, "little") + bytes.fromhex(  # mov rcx, SP_SLOT
    "488921"  # mov [rcx], rsp
    "b83c000000"  # mov eax, 60 (exit)
    "31ff"  # xor edi, edi
    "0f05"  # syscall
    "c3"  # ret
)

_stubs: dict[bool, ctypes._CFuncPtr] = {}
_pages: list[mmap.mmap] = []


def _load(store_sp: bool = False) -> ctypes._CFuncPtr:
    if store_sp not in _stubs:
        page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        page.write(_CODE_SP if store_sp else _CODE)
        _pages.append(page)
        addr = ctypes.addressof(ctypes.c_char.from_buffer(page))
        proto = ctypes.CFUNCTYPE(ctypes.c_long, *([ctypes.c_long] * 7))
        _stubs[store_sp] = proto(addr)
    return _stubs[store_sp]


def syscall_child_exits(nr: int, *args: int, store_sp: bool = False) -> tuple[int, int]:
    """Raw syscall like libc.syscall, but a child (return 0 in a new task) exits without running Python.

    With store_sp the child first writes its initial stack pointer to arena.SP_SLOT."""
    regs = [a & MASK64 for a in (list(args) + [0] * 6)[:6]]
    regs = [r - (1 << 64) if r >= 1 << 63 else r for r in regs]
    ret = _load(store_sp)(nr, *regs)
    if -4096 < ret < 0:
        return -1, -ret
    return ret, 0
