"""Host-side builders for agent programs (harness/agent/PROGRAMS.md); profiles put the syscall args in."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# Duplicated from harness/agent/arena.py (which needs ctypes); tests/test_protocol.py checks they match.
ARENA = 0x1_0000_0000
ARENA_SIZE = 0x10000
GUARD_SIZE = 0x1000
UNMAPPED = ARENA + 0x100000
SP_SLOT = ARENA + ARENA_SIZE - 8  # where a child of mode "sp" stores its stack pointer
ARENA32 = 0xB000_0000  # two pages below 4 GiB for the structs of i386 calls ("abi": "i386")
ARENA32_SIZE = 0x2000

Step = dict[str, Any]


def chain(depth: int, userns_at: Iterable[int] = (), caps: Mapping[int, Sequence[int] | None] = {}) -> dict:
    """A chain spec of `depth` levels below the root; userns_at/caps are keyed by level (1..depth)."""
    users = set(userns_at)
    return {"levels": [{"userns": k in users, "caps": None if caps.get(k) is None else list(caps[k])}
                       for k in range(1, depth + 1)]}


def program(steps: Sequence[Step], chain_spec: dict | None = None, keep: bool = False,
            fresh_chain: bool = False) -> dict:
    """A whole program."""
    return {"chain": chain_spec or {"levels": []}, "fresh_chain": fresh_chain, "keep": keep,
            "steps": list(steps)}


def syscall_step(nr: int, regs: Sequence[int] = (), at: int = 0, write: Mapping[int, bytes] = {},
                 read: Sequence[tuple[int, int]] = (), clone: bool = False, child: str = "report",
                 name: str | None = None) -> Step:
    """One raw syscall; `write` maps arena addresses to bytes placed there first."""
    step: Step = {"op": "syscall", "at": at, "nr": nr, "regs": [r % (1 << 64) for r in regs],
                  "write": [[addr, data.hex()] for addr, data in write.items()],
                  "read": [[addr, n] for addr, n in read], "clone": clone, "child": child}
    if name is not None:
        step["as"] = name
    return step


def occupy_step(pid: int, at: int = 0, name: str | None = None) -> Step:
    """Make `pid` busy at level `at` (ns_last_pid + fork)."""
    step: Step = {"op": "occupy", "at": at, "pid": pid}
    if name is not None:
        step["as"] = name
    return step


def release_step(name: str, at: int | None = None) -> Step:
    step: Step = {"op": "release", "name": name}
    if at is not None:
        step["at"] = at
    return step


def unshare_step(at: int = 0) -> Step:
    """unshare(CLONE_NEWPID) in a level's process: its later children go into a new pid namespace (its own
    active one is unchanged); undone at the end of the program. Result {"errno": n}."""
    return {"op": "unshare", "at": at}


def setns_step(pidns_of: str, at: int = 0) -> Step:
    """setns(CLONE_NEWPID) into the pid namespace of the level's held process `pidns_of`: the level's later
    children are created there; undone at the end of the program. Result {"errno": n}."""
    return {"op": "setns", "at": at, "pidns_of": pidns_of}


def pids_step() -> Step:
    return {"op": "pids"}


def read_file_step(path: str, at: int = 0) -> Step:
    return {"op": "read_file", "at": at, "path": path}


def sleep_step(seconds: float, at: int = 0) -> Step:
    """nanosleep(2) in a level's worker: lets deferred kernel work (RCU callbacks freeing a namespace) run."""
    whole = int(seconds)
    timespec = whole.to_bytes(8, "little") + int((seconds - whole) * 1e9).to_bytes(8, "little")
    return {"op": "syscall", "at": at, "nr": 35, "regs": [ARENA, 0, 0, 0, 0, 0],
            "write": [[ARENA, timespec.hex()]]}


def write_file_step(path: str, data: str, at: int = 0) -> Step:
    return {"op": "write_file", "at": at, "path": path, "data": data}


def install_and_exec_steps(binary: bytes, guest_path: str, args: Sequence[str] = (), timeout: float = 10,
                           at: int = 0) -> list[Step]:
    """Copy a binary into the target (executable) and run it there: the way host-built programs reach a guest."""
    return [{"op": "write_file", "at": at, "path": guest_path, "hex": binary.hex(), "mode": 0o755},
            {"op": "exec", "at": at, "argv": [guest_path, *args], "timeout": timeout}]


def race_step(racers: Sequence[Step], rounds: int = 1, setup: Sequence[Step] = (),
              check: Sequence[Step] = ()) -> Step:
    """Racers released together, `rounds` times; each carries its own `at`. `setup` steps run before
    every round, `check` steps after it while what the racers hold is still alive."""
    step: Step = {"op": "race", "racers": list(racers), "rounds": rounds}
    if setup:
        step["setup"] = list(setup)
    if check:
        step["check"] = list(check)
    return step


def sweep_step(step: Step, vary: Mapping[str, Any], values: Sequence[int] | range) -> Step:
    """One syscall step repeated per value (PROGRAMS.md `sweep`): vary is {"reg": i}, {"write_at": hex}
    or {"word_at": addr, "size": n}; a contiguous range travels as its two ends."""
    out: Step = {"op": "sweep", "at": step.get("at", 0), "step": step, "vary": dict(vary)}
    if isinstance(values, range) and values.step == 1:
        out["range"] = [values.start, values.stop]
    else:
        out["values"] = [int(v) for v in values]
    return out
