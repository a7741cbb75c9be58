"""One racer process (PROGRAMS.md `race`): its step armed before the barrier, only the call itself after it.

A racer is forked once per race by its level's process and lives across rounds. Per round it gets a go
message, runs its `prepare` steps, arms its step (arena writes, pipes, argument conversion, setns),
meets the other racers at the barrier (race.meet), runs the call, reports. Held children stay with it
until the level drops them (`drop`) or the race ends (`end`: it lists them and exits without killing
them, so the level's init adopts them).
"""

from __future__ import annotations

import ctypes
import mmap
import os
import signal

from . import affinity, arena, child_stub, lean_fork, libc, race, steps, wire

TYPE_CHECKING = False  # typing and collections.abc cost ~80 ms of a cold start under TCG: annotations only
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

SYS_SETNS, SYS_PIDFD_OPEN = 308, 434

_libc = ctypes.CDLL(None, use_errno=True)
_raw_syscall = _libc.syscall
_raw_syscall.restype = ctypes.c_long
_RDTSC = bytes.fromhex("0f31" "48c1e220" "4809d0" "c3")  # rdtsc; shl rdx, 32; or rax, rdx; ret
_tsc_page: mmap.mmap | None = None
_tsc: Callable[[], int] | None = None


def rdtsc() -> int:
    """The CPU's time stamp counter: fine-grained where the guest's clock ticks in jiffies (release skew)."""
    global _tsc_page, _tsc
    if _tsc is None:
        _tsc_page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        _tsc_page.write(_RDTSC)
        _tsc = ctypes.CFUNCTYPE(ctypes.c_uint64)(ctypes.addressof(ctypes.c_char.from_buffer(_tsc_page)))
    return _tsc()


def _prepared_call(nr: int, regs: list[int], mode: str | None, wfd: int) -> Callable[[], tuple[int, int]]:
    """The call with its arguments converted in advance; clone-like calls go through the stub."""
    if mode is not None:
        return child_stub.prepare(nr, regs, mode, wfd)
    args = [ctypes.c_long(nr)] + [ctypes.c_long(r) for r in child_stub.signed_regs(regs)]

    def call() -> tuple[int, int]:
        ctypes.set_errno(0)
        ret = _raw_syscall(*args)
        return ret, (ctypes.get_errno() if ret == -1 else 0)
    return call


def join_pidns(pid: int) -> None:
    """Make `pid`'s pid namespace the one this process's children are created in (pidfd_open + setns)."""
    fd = libc.check(*libc.syscall(SYS_PIDFD_OPEN, pid, 0), f"pidfd_open({pid})")
    try:
        libc.check(*libc.syscall(SYS_SETNS, fd, libc.CLONE_NEWPID), "setns(CLONE_NEWPID)")
    finally:
        os.close(fd)


def _kill(pid: int | None) -> bool:
    """SIGKILL a process of this level that is not ours to reap (the level reaps it after the round)."""
    if pid is None:
        return False
    try:
        os.kill(pid, signal.SIGKILL)
        return True
    except ProcessLookupError:
        return False


class Racer:
    """The racer process: one step, armed and run once per round."""

    def __init__(self, slot: int, step: dict[str, Any], holders: steps.Holders) -> None:
        self.slot = slot
        self.step = step
        self.holders = holders
        self.joined = False  # children go to another pid namespace (pidns_of) until the next round

    def serve(self, msg_r: int, res_w: int) -> None:
        """Handle go / drop / end messages until `end` or EOF."""
        while True:
            try:
                msg = wire.recv(msg_r)
            except wire.WireError:
                return
            op = msg.get("op")
            if op == "end":
                held = {"named": self.holders.named, "anon": self.holders.anon}
                wire.send(res_w, {"ok": True, "result": held})
                return
            try:
                if op == "drop" or msg.get("drop"):
                    self.holders.clear(keep=False, everything=True)
                    self.holders.reaper.reap_orphans()
                reply: dict[str, Any] = {"ok": True, "result": None} if op == "drop" else self.round(msg)
            except Exception as e:
                if op == "go":
                    race.abort(int(msg["gen"]))
                reply = {"ok": False, "error": f"racer {self.slot}: {type(e).__name__}: {e}"}
            reply["holds"] = len(self.holders.named) + len(self.holders.anon)
            wire.send(res_w, reply)

    def round(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Prepare, arm, meet the others, run, report (the step's result plus where and when it ran)."""
        step, gen = self.step, int(msg["gen"])
        if self.joined:
            join_pidns(os.getpid())
            self.joined = False
        prepared = [self.now(s) for s in step.get("prepare", [])]
        run, finish = self.arm(step, msg)
        try:
            if not race.meet(self.slot, gen, int(msg["count"])):
                finish(None)
                return {"ok": False, "aborted": True, "error": f"racer {self.slot}: round aborted"}
            if step.get("op") == "exit":
                os._exit(0)
            tsc = rdtsc()
            raw = run()
            tsc_end = rdtsc()
            result = finish(raw)
        except BaseException:
            finish(None)
            raise
        result["cpu"] = _libc.sched_getcpu()
        result["tsc"] = tsc
        result["tsc_end"] = tsc_end
        if prepared:
            result["prepare"] = prepared
        return {"ok": True, "result": result}

    def now(self, step: dict[str, Any]) -> Any:
        """A `prepare` step, run in the racer before the barrier (syscalls may use child mode "park")."""
        if step.get("op") == "syscall":
            run, finish = self.arm_syscall(step, {})
            return finish(run())
        return steps.run_simple(step, self.holders)

    def arm(self, step: dict[str, Any], msg: dict[str, Any]) -> tuple[Callable[[], Any], Callable[[Any], Any]]:
        """(run, finish): run is the only thing done after the barrier; finish(None) just cleans up."""
        op = step.get("op")
        if op == "syscall":
            return self.arm_syscall(step, msg)
        if op == "release":
            name, pid = str(step["name"]), msg.get("pid")
            if name in self.holders.named:  # our own child (from `prepare`): killed and reaped, pid freed
                return (lambda: self.holders.release(name)), lambda ok: {"ok": bool(ok)}
            return (lambda: _kill(pid)), lambda ok: {"ok": bool(ok)}
        if op in ("write_file", "read_file"):
            return (lambda: steps.run_simple(step, self.holders)), lambda res: res
        if op == "exit":
            return (lambda: None), lambda _: {}
        raise steps.StepError(f"step {op!r} cannot race")

    def arm_syscall(self, step: dict[str, Any], msg: dict[str, Any]) -> tuple[Callable, Callable]:
        """A `syscall` step split around the barrier (children handled as in steps.invoke_syscall)."""
        mode = step.get("child", "report") if step.get("clone") else None
        if mode not in (None, "report", "hold", "exit", "park"):
            raise steps.StepError(f"child mode {mode!r} cannot race")
        steps.prepare_syscall(step)
        if msg.get("ns_pid") is not None:
            join_pidns(int(msg["ns_pid"]))
            self.joined = True
        fds = list(os.pipe()) if mode in ("report", "hold") else [-1, -1]
        run = _prepared_call(int(step["nr"]), [int(r) for r in step.get("regs", [])], mode, fds[1])
        if mode is not None:
            lean_fork.mark(steps.keep_in_children())
        else:
            lean_fork.before_python_fork()  # a child nobody announced runs Python until its _exit
        me = os.getpid()

        def finish(raw: tuple[int, int] | None) -> dict[str, Any]:
            if mode is not None:
                lean_fork.unmark()
            if os.getpid() != me:
                os._exit(0)  # a child nobody announced: it must never run the racer's loop
            try:
                if fds[1] >= 0:
                    os.close(fds[1])
                    fds[1] = -1
                return self.after_syscall(step, mode, raw, fds[0]) if raw is not None else {}
            finally:
                for fd in fds:
                    if fd >= 0:
                        os.close(fd)
        return run, finish

    def after_syscall(self, step: dict[str, Any], mode: str | None, raw: tuple[int, int],
                      rfd: int) -> dict[str, Any]:
        ret, err = raw
        result: dict[str, Any] = {"ret": ret, "errno": err, "child": None, "child_exit": None,
                                  "read": [arena.read(int(a), int(n)).hex() for a, n in step.get("read", [])]}
        if ret > 0 and mode in ("report", "hold"):
            result["child"] = steps.take_report(ret, rfd, self.holders)
            if mode == "hold":
                self.holders.add(ret, step.get("as"))
            else:
                result["child_exit"] = self.holders.reaper.wait(ret)
        elif ret > 0 and mode == "exit":
            result["child_exit"] = self.holders.reaper.wait(ret)
        elif ret > 0 and mode == "park":
            self.holders.add(ret, step.get("as"))
        return result


def racer_main(slot: int, step: dict[str, Any], msg_r: int, res_w: int, holders: steps.Holders) -> None:
    """Body of a forked racer: its own process group (an aborted race kills it with its children), pinned
    to one CPU (`cpu`, else round-robin by slot) so that racers on different CPUs really run at once."""
    os.setpgid(0, 0)
    cpus = affinity.race_cpus()
    os.sched_setaffinity(0, {int(step["cpu"]) if "cpu" in step else cpus[slot % len(cpus)]})
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in (msg_r, res_w, 2):
            try:
                os.close(fd)
            except OSError:
                pass
    holders.named, holders.anon, holders.recent = {}, [], set()  # the level's holders stay the level's
    holders.reaper.owned, holders.reaper.statuses = set(), {}
    Racer(slot, step, holders).serve(msg_r, res_w)
