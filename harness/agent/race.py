"""Race barrier: racers spin on a byte in MAP_SHARED memory that the agent flips to release them together.

The page is mapped once by the agent before it forks anything, so every worker and racer shares it.
Byte 0 is the go byte (generation, bit 7 = abort); byte SLOTS + i is racer i's ready generation.
"""

from __future__ import annotations

import mmap
import os
import time

SLOTS = 64
MAX_RACERS = mmap.PAGESIZE - SLOTS
ABORT = 0x80

_shm: mmap.mmap | None = None
_gen = 0


def init() -> None:
    """Map the shared page (call before the first fork)."""
    global _shm
    if _shm is None:
        _shm = mmap.mmap(-1, mmap.PAGESIZE, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)


def new_generation() -> int:
    """A generation (1..127) different from the previous race's go byte."""
    global _gen
    _gen = _gen % 127 + 1
    return _gen


def racer_wait(slot: int, gen: int) -> bool:
    """In a racer: announce readiness, spin until released; False when the race was aborted."""
    shm = _shm
    shm[SLOTS + slot] = gen
    while shm[0] & 0x7F != gen:
        pass
    return not shm[0] & ABORT


def release_when_ready(count: int, gen: int, timeout: float) -> bool:
    """In the agent: wait until `count` racers spin, then release them; False (and abort) on timeout."""
    shm = _shm
    deadline = time.monotonic() + timeout
    while any(shm[SLOTS + i] != gen for i in range(count)):
        if time.monotonic() > deadline:
            abort(gen)
            return False
        os.sched_yield()
    shm[0] = gen
    return True


def abort(gen: int) -> None:
    """Let every spinning racer of this generation exit without running its step."""
    _shm[0] = gen | ABORT
