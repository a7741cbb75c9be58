"""Step executors that run in the process of one level (a worker, or the agent for level 0)."""

from __future__ import annotations

import errno
import os
import select

from . import arena, child_stub, exec_step, lean_fork, libc, procfs
from .reaper import Reaper

TYPE_CHECKING = False  # typing and collections.abc cost ~80 ms of a cold start under TCG: annotations only
if TYPE_CHECKING:
    from typing import Any

CHILD_REPORT_TIMEOUT = 10.0


class StepError(Exception):
    """A step could not be carried out (bad step or infrastructure failure): aborts the program."""


class Holders:
    """Held processes of this level: by name (may survive a program with keep) or anonymous."""

    def __init__(self, reaper: Reaper) -> None:
        self.reaper = reaper
        self.named: dict[str, int] = {}
        self.anon: list[int] = []
        self.recent: set[str] = set()  # named since the last clear: the current program's

    def add(self, pid: int, name: str | None) -> None:
        self.reaper.own(pid)
        if name is None:
            self.anon.append(pid)
        elif name in self.named:
            self.reaper.kill(pid)
            raise StepError(f"a held process is already named {name!r}")
        else:
            self.named[name] = pid
            self.recent.add(name)

    def release(self, name: str) -> bool:
        pid = self.named.pop(name, None)
        if pid is None:
            return False
        self.reaper.kill(pid)
        return True

    def clear(self, keep: bool, everything: bool = False) -> None:
        """Kill the anonymous holders, and the current program's named ones unless keep (all if everything)."""
        for pid in self.anon:
            self.reaper.kill(pid)
        self.anon = []
        for name in list(self.named) if everything else self.recent if not keep else ():
            self.release(name)
        self.recent = set()


STUB_MODES = ("report", "hold", "exit", "sp", "fs", "nap")


def keep_in_children() -> list[tuple[int, int]]:
    """What a stub child needs of its parent's memory: the stub's page and the arena."""
    return [child_stub.page_range(), (arena.ARENA, arena.ARENA_SIZE), (arena.ARENA32, arena.ARENA32_SIZE)]


def stub_call(nr: int, regs: list[int], mode: str, i386: bool = False) -> tuple[int, int, int]:
    """(ret, errno, rfd) of a clone-like call through the stub; rfd (or -1) carries a report/hold child's
    report. The child gets none of the interpreter's memory (lean_fork)."""
    rfd, wfd = os.pipe() if mode in ("report", "hold") else (-1, -1)
    try:
        with lean_fork.lean_fork(keep_in_children()):
            ret, err = child_stub.syscall(nr, regs, mode, wfd, i386)
    except BaseException:
        if rfd >= 0:
            os.close(rfd)
        raise
    finally:
        if wfd >= 0:
            os.close(wfd)
    return ret, err, rfd


def read_report(rfd: int, timeout: float = CHILD_REPORT_TIMEOUT) -> dict[str, Any]:
    """The child's report from the stub's pipe (one write below PIPE_BUF, so one read); ValueError if none."""
    ready, _, _ = select.select([rfd], [], [], timeout)
    if not ready:
        raise ValueError(f"no report within {timeout:g} s")
    return child_stub.parse_report(os.read(rfd, 8192))


def report_and_exit(pid: int, rfd: int, holders: Holders) -> tuple[dict[str, Any], int | None]:
    """A report child's report and exit status, waiting once: for its exit (a pidfd, with the report
    timeout), then reading the report it left in the pipe. Waiting for the report first and the exit
    after cost the agent two wake-ups, each a switch back into a large process (~0.5 ms under TCG)."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:  # before Linux 5.3, or not a process we can name: report first, then the exit
        return take_report(pid, rfd, holders), holders.reaper.wait(pid)
    try:
        if not select.select([pidfd], [], [], CHILD_REPORT_TIMEOUT)[0]:
            holders.reaper.kill(pid)
            raise StepError(f"child {pid} did not report: no exit within {CHILD_REPORT_TIMEOUT:g} s")
    finally:
        os.close(pidfd)
    code = holders.reaper.wait(pid)
    try:
        return child_stub.parse_report(os.read(rfd, 8192)), code
    except (ValueError, OSError) as e:
        raise StepError(f"child {pid} did not report: {e}") from None


def take_report(pid: int, rfd: int, holders: Holders) -> dict[str, Any]:
    """Read a report/hold child's report; a child that does not report is killed (StepError)."""
    try:
        return read_report(rfd)
    except (ValueError, OSError) as e:
        holders.reaper.kill(pid)
        raise StepError(f"child {pid} did not report: {e}") from None


def prepare_syscall(step: dict[str, Any]) -> None:
    """Zero the arena and apply the step's writes (before a race barrier, if any)."""
    arena.zero()
    for addr, hexdata in step.get("write", []):
        arena.write(int(addr), bytes.fromhex(hexdata))


def invoke_syscall(step: dict[str, Any], holders: Holders) -> dict[str, Any]:
    """Make the call (after prepare_syscall) and handle a child it may create."""
    regs = [int(r) for r in step.get("regs", [])]
    mode = step.get("child", "report") if step.get("clone") else None
    if mode not in (None, *STUB_MODES):
        raise StepError(f"unknown child mode {mode!r}")
    abi = step.get("abi", "x86_64")
    if abi not in ("x86_64", "i386"):
        raise StepError(f"unknown abi {abi!r}")
    rfd = -1
    if abi == "i386" and not child_stub.ia32():
        return {"ret": -1, "errno": errno.ENOSYS, "child": None, "child_exit": None, "read": [], "ia32": False}
    if abi == "i386" and mode is None:  # a child nobody announced exits at once, in the stub
        ret, err = child_stub.syscall(int(step["nr"]), regs, "exit", i386=True)
    elif mode is None:
        lean_fork.before_python_fork()  # a child nobody announced runs Python until its _exit
        me = os.getpid()
        ret, err = libc.syscall(int(step["nr"]), *regs)
        if os.getpid() != me:
            os._exit(0)  # a child nobody announced: it must never run the agent's loop
    else:
        ret, err, rfd = stub_call(int(step["nr"]), regs, mode, abi == "i386")
    result: dict[str, Any] = {"ret": ret, "errno": err, "child": None, "child_exit": None}
    result["read"] = [arena.read(int(a), int(n)).hex() for a, n in step.get("read", [])]
    try:
        if ret > 0 and mode == "report":
            result["child"], result["child_exit"] = report_and_exit(ret, rfd, holders)
        elif ret > 0 and mode == "hold":
            result["child"] = take_report(ret, rfd, holders)
            holders.add(ret, step.get("as"))
        elif ret > 0 and mode in ("exit", "sp", "fs"):
            result["child_exit"] = holders.reaper.wait(ret)
    finally:
        if rfd >= 0:
            os.close(rfd)
    return result


SWEEP_MAX = 100_000


def sweep_values(step: dict[str, Any]) -> list[int]:
    """`values`, or `range: [start, stop]` (stop excluded)."""
    if "range" in step:
        start, stop = (int(v) for v in step["range"])
        values = range(start, stop)
    else:
        values = [int(v) for v in step.get("values", [])]
    if len(values) > SWEEP_MAX:
        raise StepError(f"a sweep has at most {SWEEP_MAX} values")
    return list(values)


def sweep(step: dict[str, Any], holders: Holders) -> dict[str, Any]:
    """One syscall step repeated with one thing varied per value; compact results (PROGRAMS.md)."""
    base = step.get("step")
    vary = step.get("vary")
    if not isinstance(base, dict) or base.get("op") != "syscall" or not isinstance(vary, dict):
        raise StepError("a sweep needs a syscall `step` and a `vary` object")
    values = sweep_values(step)
    if not base.get("clone"):  # no stub calls: nothing to mark (an unannounced child runs Python)
        lean_fork.before_python_fork()
        return {"results": [_sweep_one(base, vary, value, holders) for value in values]}
    if base.get("abi") == "i386":
        child_stub.ia32()  # its throwaway fork runs Python: probe before the interpreter's memory is marked
    with lean_fork.lean_fork(keep_in_children()):  # once around all the stub calls, not around each
        return {"results": [_sweep_one(base, vary, value, holders) for value in values]}


def _sweep_one(base: dict[str, Any], vary: dict[str, Any], value: int, holders: Holders) -> list[Any]:
    """One value of a sweep: the step with that value put where `vary` says, run; [ret, errno, child_exit]."""
    one = dict(base)
    if "reg" in vary:
        regs = (list(base.get("regs", [])) + [0] * 6)[:6]
        regs[int(vary["reg"])] = value
        one["regs"] = regs
    elif "write_at" in vary:
        one["write"] = [*base.get("write", []), [value, vary["write_at"]]]
    elif "word_at" in vary:
        size = int(vary.get("size", 8))
        data = (value % (1 << (8 * size))).to_bytes(size, "little").hex()
        one["write"] = [*base.get("write", []), [int(vary["word_at"]), data]]
    else:
        raise StepError(f"unknown sweep vary {vary!r}")
    prepare_syscall(one)
    res = invoke_syscall(one, holders)
    return [res["ret"], res["errno"], res["child_exit"]]


def occupy(step: dict[str, Any], holders: Holders) -> dict[str, Any]:
    """Make `pid` busy at this level via ns_last_pid + fork; the holder is killed if it missed."""
    pid = int(step["pid"])
    res = procfs.write_text("/proc/sys/kernel/ns_last_pid", str(pid - 1))
    if res["errno"]:
        return {"ok": False, "nspid": None, "errno": res["errno"]}
    child, err, rfd = stub_call(libc.SYS_CLONE, [libc.SIGCHLD, 0, 0, 0, 0, 0], "hold")
    try:
        if child < 0:
            raise StepError(f"occupy: fork failed: {os.strerror(err)}")
        holders.reaper.own(child)
        report = take_report(child, rfd, holders)
    finally:
        os.close(rfd)
    if child != pid:
        holders.reaper.kill(child)
        return {"ok": False, "nspid": report["nspid"], "errno": 0}
    holders.add(child, step.get("as"))
    return {"ok": True, "nspid": report["nspid"], "errno": 0}


def mount(step: dict[str, Any]) -> dict[str, Any]:
    """mount(2) unless something is mounted there already (debugfs for the gcov counters)."""
    target = str(step["target"])
    if os.path.ismount(target):
        return {"errno": 0, "mounted": False}
    err = libc.mount(str(step.get("source", "none")), target, str(step["fstype"]), int(step.get("flags", 0)))
    return {"errno": err, "mounted": err == 0}


def run_simple(step: dict[str, Any], holders: Holders) -> dict[str, Any]:
    """Every step kind but race (which needs the chain) and exit (racers only)."""
    op = step.get("op")
    if op == "syscall":
        prepare_syscall(step)
        return invoke_syscall(step, holders)
    if op == "sweep":
        return sweep(step, holders)
    if op == "occupy":
        return occupy(step, holders)
    if op == "release":
        return {"ok": holders.release(str(step["name"]))}
    if op == "pids":
        holders.reaper.reap_orphans()
        if step.get("ns"):
            tasks = procfs.all_tasks()
            return {"nspids": [v for v, _ in tasks], "ns": [ino for _, ino in tasks]}
        return {"nspids": procfs.all_nspids()}
    if op == "read_file":
        try:
            return procfs.read_text(str(step["path"]), str(step.get("encoding", "text")))
        except ValueError as e:
            raise StepError(str(e)) from None
    if op == "mount":
        return mount(step)
    if op == "write_file":
        return exec_step.write_file(step)
    if op == "exec":
        try:
            return exec_step.run_exec(step, holders.reaper)
        except exec_step.ExecError as e:
            raise StepError(str(e)) from None
    raise StepError(f"unknown step op {op!r}")
