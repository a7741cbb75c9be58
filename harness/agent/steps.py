"""Step executors that run in the process of one level (a worker, or the agent for level 0)."""

from __future__ import annotations

import os
import signal
from typing import Any

from . import arena, exec_step, libc, procfs, trampoline, wire
from .reaper import Reaper

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


def child_main(fd: int, hold: bool) -> None:
    """In a fork-like child: report NSpid and getpid to the caller, then exit or hold. Never returns."""
    try:
        wire.send(fd, {"nspid": procfs.nspid(), "getpid": os.getpid()})
        while hold:
            signal.pause()
    finally:
        os._exit(0)


def prepare_syscall(step: dict[str, Any]) -> None:
    """Zero the arena and apply the step's writes (before a race barrier, if any)."""
    arena.zero()
    for addr, hexdata in step.get("write", []):
        arena.write(int(addr), bytes.fromhex(hexdata))


def invoke_syscall(step: dict[str, Any], holders: Holders) -> dict[str, Any]:
    """Make the call (after prepare_syscall) and handle a child it may create."""
    regs = [int(r) for r in step.get("regs", [])]
    mode = step.get("child", "report") if step.get("clone") else None
    if mode not in (None, "report", "hold", "exit", "sp"):
        raise StepError(f"unknown child mode {mode!r}")
    rfd = wfd = -1
    if mode in ("report", "hold"):
        rfd, wfd = os.pipe()
    me = os.getpid()
    if mode in ("exit", "sp"):
        ret, err = trampoline.syscall_child_exits(int(step["nr"]), *regs, store_sp=mode == "sp")
    else:
        ret, err = libc.syscall(int(step["nr"]), *regs)
    if (ret == 0 and mode in ("report", "hold")) or os.getpid() != me:
        if mode in ("report", "hold") and ret == 0:
            child_main(wfd, mode == "hold")
        os._exit(0)  # a child nobody announced: it must never run the agent's loop
    result: dict[str, Any] = {"ret": ret, "errno": err, "child": None, "child_exit": None}
    result["read"] = [arena.read(int(a), int(n)).hex() for a, n in step.get("read", [])]
    try:
        if ret > 0 and mode in ("report", "hold"):
            try:
                result["child"] = wire.recv(rfd, CHILD_REPORT_TIMEOUT)
            except wire.WireError as e:
                holders.reaper.kill(ret)
                raise StepError(f"child {ret} did not report: {e}") from None
            if mode == "hold":
                holders.add(ret, step.get("as"))
            else:
                result["child_exit"] = holders.reaper.wait(ret)
        elif ret > 0 and mode in ("exit", "sp"):
            result["child_exit"] = holders.reaper.wait(ret)
    finally:
        for fd in (rfd, wfd):
            if fd >= 0:
                os.close(fd)
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
    out = []
    for value in sweep_values(step):
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
        out.append([res["ret"], res["errno"], res["child_exit"]])
    return {"results": out}


def occupy(step: dict[str, Any], holders: Holders) -> dict[str, Any]:
    """Make `pid` busy at this level via ns_last_pid + fork; the holder is killed if it missed."""
    pid = int(step["pid"])
    res = procfs.write_text("/proc/sys/kernel/ns_last_pid", str(pid - 1))
    if res["errno"]:
        return {"ok": False, "nspid": None, "errno": res["errno"]}
    rfd, wfd = os.pipe()
    try:
        child = os.fork()
        if child == 0:
            child_main(wfd, True)
        holders.reaper.own(child)
        try:
            report = wire.recv(rfd, CHILD_REPORT_TIMEOUT)
        except wire.WireError as e:
            holders.reaper.kill(child)
            raise StepError(f"occupy holder did not report: {e}") from None
    finally:
        os.close(rfd)
        os.close(wfd)
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
