"""Helpers of the ABI area: profile-neutral step builders, sweeps, and proof that a rejected call created nothing.

Clone flag values are written here from include/uapi/linux/sched.h, not taken from the code under test.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.pidspace import used_pids
from harness.profiles import Profile, SpawnRequest
from harness.profiles.base import errno_name
from harness.programs import ARENA, ARENA_SIZE, chain, pids_step, program, read_file_step, sweep_step

from ..spec import spec_of

if TYPE_CHECKING:
    from harness.targets.base import Target

PAGE_SIZE = 4096
GUARD = ARENA + ARENA_SIZE  # first byte of the PROT_NONE guard page (PROGRAMS.md)
KERNEL_ADDR = 0xFFFF_8880_0000_0000  # the direct map: never readable from user space
NON_CANONICAL = 0x8000_0000_0000_0000
NS_LAST_PID = "/proc/sys/kernel/ns_last_pid"
SWEEP_TIMEOUT = 120.0

CLONE_VM = 0x00000100
CLONE_FS = 0x00000200
CLONE_SIGHAND = 0x00000800
CLONE_PIDFD = 0x00001000
CLONE_VFORK = 0x00004000
CLONE_PARENT = 0x00008000
CLONE_THREAD = 0x00010000
CLONE_NEWNS = 0x00020000
CLONE_PARENT_SETTID = 0x00100000
CLONE_CHILD_SETTID = 0x01000000
CLONE_DETACHED = 0x00400000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_CLEAR_SIGHAND = 1 << 32
CLONE_INTO_CGROUP = 1 << 33
SIGCHLD = 17
SIGWINCH = 28  # default action: ignore, so a test child may announce its death with it safely

CHEAP = CLONE_VM | CLONE_VFORK  # children of accepted calls: no page tables copied, parent waits for the exit
THREAD = CLONE_THREAD | CLONE_SIGHAND | CLONE_VM  # the cheapest task (~0.5 ms under TCG, a vfork child ~3 ms)



def spawn(profile: Profile, req: SpawnRequest | None = None, size: int | None = None) -> dict[str, Any]:
    """profile.spawn_step with the struct size of the spec table unless `size` is given."""
    req = req or SpawnRequest()
    return profile.spawn_step(req, size=spec_of(profile.name).default_size if size is None else size)


def cheap(profile: Profile, size: int | None = None, at: int = 0, **extra: int) -> dict[str, Any]:
    """A valid call whose child (if any) costs little: CLONE_VM|CLONE_VFORK, child exits at once."""
    return spawn(profile, SpawnRequest(at=at, flags=CHEAP, child="exit", extra=extra), size)


def thread(profile: Profile, size: int | None = None, at: int = 0, **extra: int) -> dict[str, Any]:
    """A valid call that creates a thread of the caller which exits at once (exit signal 0, as clone3 wants):
    for sweeps where thousands of calls are accepted."""
    return spawn(profile, SpawnRequest(at=at, flags=THREAD, exit_signal=0, child="exit", extra=extra), size)


def run1(target: Target, step: dict[str, Any], spec: dict | None = None, before: Sequence[dict] = ()) -> dict:
    """Run one step (after `before`) and return its result."""
    return target.run(program([*before, step], spec), timeout=SWEEP_TIMEOUT)["steps"][-1]


sweep = sweep_step  # one syscall step repeated per value, in one round trip (PROGRAMS.md `sweep`)


@dataclass
class Evidence:
    """ns_last_pid of the level and its process table, read before and after the steps under test."""

    at: int
    pids_before: list[list[int]]
    cursor_before: int
    cursor_after: int
    pids_after: list[list[int]]

    def new_processes(self) -> set[tuple[int, ...]]:
        """Tasks at level `at` or deeper that appeared (level 0 also holds kernel threads, which come and go)."""
        def deep(vectors: list[list[int]]) -> set[tuple[int, ...]]:
            return {tuple(v) for v in vectors if len(v) > self.at}
        return deep(self.pids_after) - deep(self.pids_before)

    def assert_nothing_created(self, allowed_pids: int = 0) -> None:
        """No pid was allocated at the level (not even one freed again: the cursor would have moved)."""
        moved = self.cursor_after - self.cursor_before
        assert moved == allowed_pids, (
            f"level {self.at}: ns_last_pid moved {self.cursor_before} -> {self.cursor_after}: "
            f"{moved - allowed_pids} pid(s) allocated by rejected calls")
        assert not self.new_processes(), f"processes left behind: {sorted(self.new_processes())}"


def run_checked(target: Target, steps: Sequence[dict], at: int = 1, spec: dict | None = None,
                after: Sequence[dict] = ()) -> tuple[list[dict], Evidence, list[dict]]:
    """Run `steps` at level `at` (>= 1: a namespace nobody else allocates in) between two readings of its
    ns_last_pid and of the process table; `after` runs once the evidence is taken (controls)."""
    assert at >= 1, "level 0 also holds kernel threads: their pids would blur the evidence"
    spec = spec or chain(at)
    cursor = read_file_step(NS_LAST_PID, at=at)
    res = target.run(program([pids_step(), cursor, *steps, cursor, pids_step(), *after], spec),
                     timeout=SWEEP_TIMEOUT)["steps"]
    n = len(steps)
    ev = Evidence(at, res[0]["nspids"], int(res[1]["data"]), int(res[n + 2]["data"]), res[n + 3]["nspids"])
    return res[2:n + 2], ev, res[n + 4:]


def outcome(ret: int, err: int, child_exit: int | None) -> str:
    """One word per call: "created" (a child that exited 0, or a thread: not ours to wait for), an errno name,
    or what else happened."""
    if err:
        return errno_name(err)
    if ret > 0 and child_exit in (0, None):
        return "created"
    return f"ret={ret},child_exit={child_exit}"


def expected_word(err: int) -> str:
    return "created" if err == 0 else errno_name(err)


def deviations(values: Sequence[int], results: Sequence[Sequence[Any]], expect: Callable[[int], int],
               fmt: Callable[[int], str] = str) -> str:
    """Values whose outcome differs from `expect(value)` (an errno, 0 = a child is created), as ranges."""
    assert len(values) == len(results), f"{len(results)} results for {len(values)} values"
    bad: list[tuple[int, str, str]] = []
    for value, (ret, err, child_exit) in zip(values, results, strict=True):
        got, want = outcome(ret, err, child_exit), expected_word(expect(value))
        if got != want:
            bad.append((value, got, want))
    groups: list[list[Any]] = []
    for value, got, want in bad:
        if groups and groups[-1][2:] == [got, want] and groups[-1][1] + 1 == value:
            groups[-1][1] = value
        else:
            groups.append([value, value, got, want])
    parts = [f"{fmt(a)}{'' if a == b else '..' + fmt(b)}: got {g}, want {w}" for a, b, g, w in groups]
    return f"{len(bad)} of {len(values)} deviate: " + "; ".join(parts) if parts else ""


def free_pids(target: Target, n: int, spec: dict | None = None, seed: int | None = None) -> list[int]:
    """Distinct pids free at every level (so any of them may go to any level), from the upper half."""
    used = set().union(*used_pids(target, spec).values())
    rng = random.Random(seed)
    lo, hi = max(target.info.pid_max // 2, 301), target.info.pid_max
    chosen: list[int] = []
    while len(chosen) < n:
        pid = rng.randrange(lo, hi)
        if pid not in used and pid not in chosen:
            chosen.append(pid)
    return chosen


def too_many(target: Target, at: int) -> int:
    """One more pid than a caller at `at` may pass: its namespace's absolute level is root_level + at."""
    return target.info.root_level + at + 2


def u32_at(hexdata: str, offset: int) -> int:
    return int.from_bytes(bytes.fromhex(hexdata)[offset:offset + 4], "little")


def stat_exit_signal(stat: str) -> int:
    """Field 38 (exit_signal) of /proc/<pid>/stat; fields after the `(comm)` start at field 3."""
    return int(stat.rsplit(")", 1)[1].split()[38 - 3])


def check_rejections(target: Target, cases: Sequence[tuple[str, dict, int]], at: int = 1,
                     spec: dict | None = None) -> None:
    """Run every (name, step, errno) case in one program at level `at`; each must fail with its errno and,
    together, create nothing."""
    assert all(err for _, _, err in cases), "check_rejections is for calls that must fail"
    results, ev, _ = run_checked(target, [step for _, step, _ in cases], at, spec)
    bad = [f"{name}: got {outcome(r['ret'], r['errno'], r['child_exit'])}, want {expected_word(err)}"
           for (name, _, err), r in zip(cases, results, strict=True)
           if outcome(r["ret"], r["errno"], r["child_exit"]) != expected_word(err)]
    assert not bad, "; ".join(bad)
    ev.assert_nothing_created()
