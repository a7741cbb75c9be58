"""The arena: memory at a fixed address so that the host can put pointers into syscall arguments."""

from __future__ import annotations

import ctypes

ARENA = 0x1_0000_0000
ARENA_SIZE = 0x10000
GUARD_SIZE = 0x1000
UNMAPPED = ARENA + 0x100000
SP_SLOT = ARENA + ARENA_SIZE - 8  # child mode "sp" stores its stack pointer here
ARENA32 = 0xB000_0000  # two pages below 4 GiB (above 2 GiB) for the structs of i386 calls ("abi": "i386")
ARENA32_SIZE = 0x2000

_PROT_NONE, _PROT_RW = 0, 3
_MAP_PRIVATE, _MAP_ANONYMOUS, _MAP_FIXED_NOREPLACE = 0x02, 0x20, 0x100000


def map_arena() -> None:
    """Map the arena and its guard page once in the agent; forked workers inherit them."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    flags = _MAP_PRIVATE | _MAP_ANONYMOUS | _MAP_FIXED_NOREPLACE
    for addr, size, prot in ((ARENA, ARENA_SIZE, _PROT_RW), (ARENA + ARENA_SIZE, GUARD_SIZE, _PROT_NONE),
                             (ARENA32, ARENA32_SIZE, _PROT_RW)):
        got = libc.mmap(addr, size, prot, flags, -1, 0)
        if got != addr:
            raise OSError(ctypes.get_errno(), f"cannot map arena at {addr:#x} (got {got})")


def check_address(addr: int, length: int) -> None:
    """Writes and reads by the agent itself must stay inside the RW parts (the guard is for the kernel)."""
    inside = any(start <= addr and addr + length <= start + size
                 for start, size in ((ARENA, ARENA_SIZE), (ARENA32, ARENA32_SIZE)))
    if not inside or length < 0:
        raise ValueError(f"arena access {addr:#x}+{length} is outside the arena")


def zero() -> None:
    """Zero-fill the RW parts before every syscall step."""
    ctypes.memset(ARENA, 0, ARENA_SIZE)
    ctypes.memset(ARENA32, 0, ARENA32_SIZE)


def write(addr: int, data: bytes) -> None:
    """Copy bytes into the arena."""
    check_address(addr, len(data))
    ctypes.memmove(addr, data, len(data))


def read(addr: int, length: int) -> bytes:
    """Copy bytes out of the arena."""
    check_address(addr, length)
    return ctypes.string_at(addr, length)
