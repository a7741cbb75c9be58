"""The clone stub's committed bytes match its source, and its children behave as PROGRAMS.md says.

The behaviour cases run the stub in a forked copy of this test process (x86_64 Linux only), with and
without lean_fork: a report child must report, a hold child must stay, and none may run Python.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from harness import stub_asm
from harness.agent import arena, child_stub, lean_fork, steps
from harness.agent.reaper import Reaper

SYS_CLONE, SIGCHLD = 56, 17
x86_64 = pytest.mark.skipif(platform.machine() != "x86_64" or sys.platform != "linux",
                            reason="the stub is x86_64 Linux machine code")


@pytest.mark.skipif(shutil.which("as") is None, reason="binutils (as) not installed")
def test_committed_bytes_match_the_assembly_source() -> None:
    assert child_stub.CODE == stub_asm.assemble(), "run python -m harness.stub_asm"


def test_report_parsing_takes_getpid_and_the_nspid_line() -> None:
    data = (1234).to_bytes(4, "little") + b"Name:\tx\nNSpid:\t600\t7\t1\nPid:\t600\n"
    assert child_stub.parse_report(data) == {"nspid": [600, 7, 1], "getpid": 1234}
    with pytest.raises(ValueError):
        child_stub.parse_report(b"\x01\x00")
    with pytest.raises(ValueError):
        child_stub.parse_report((1).to_bytes(4, "little") + b"Name:\tx\n")


def _in_fork(body: Callable[[], None]) -> None:
    """Run body() in a forked copy (the arena is mapped at a fixed address); fail on its exit status."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            arena.map_arena()
            body()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@x86_64
@pytest.mark.parametrize("lean", [False, True])
def test_report_child_reports_its_own_pid_and_exits_zero(lean: bool) -> None:
    def body() -> None:
        rfd, wfd = os.pipe()
        if lean:
            lean_fork.mark(steps.keep_in_children())
        ret, err = child_stub.syscall(SYS_CLONE, [SIGCHLD], "report", wfd)
        lean_fork.unmark()
        assert ret > 0 and err == 0
        os.close(wfd)
        report = steps.read_report(rfd, 10)
        assert report["getpid"] == ret and report["nspid"][-1] == ret
        assert os.waitstatus_to_exitcode(os.waitpid(ret, 0)[1]) == 0
    _in_fork(body)


@x86_64
def test_hold_child_stays_until_killed_and_exit_child_exits() -> None:
    def body() -> None:
        ret, err, rfd = steps.stub_call(SYS_CLONE, [SIGCHLD], "hold")
        assert steps.read_report(rfd, 10)["getpid"] == ret
        assert os.waitpid(ret, os.WNOHANG) == (0, 0)
        os.kill(ret, signal.SIGKILL)
        assert os.waitstatus_to_exitcode(os.waitpid(ret, 0)[1]) == -signal.SIGKILL
        ret, err, _ = steps.stub_call(SYS_CLONE, [SIGCHLD], "exit")
        assert os.waitstatus_to_exitcode(os.waitpid(ret, 0)[1]) == 0
    _in_fork(body)


@x86_64
def test_failed_call_returns_errno_in_the_caller() -> None:
    def body() -> None:
        ret, err, rfd = steps.stub_call(SYS_CLONE, [0xFFFF_FFFF_FFFF_FFFF], "report")  # every flag: EINVAL
        assert (ret, err) == (-1, 22)
        os.close(rfd)
    _in_fork(body)


@x86_64
def _marked_mappings() -> int:
    """Mappings of this process a fork would not copy (VmFlags "dc": MADV_DONTFORK)."""
    text = Path("/proc/self/smaps").read_text()
    return sum(1 for line in text.splitlines() if line.startswith("VmFlags:") and " dc" in line)


def test_the_marks_stay_between_calls_and_os_fork_takes_them_off() -> None:
    def body() -> None:
        with lean_fork.lean_fork(steps.keep_in_children()):
            pass
        assert _marked_mappings() > 0, "the next stub call reuses the marks"
        pid = os.fork()  # a Python child needs the whole interpreter again: os.fork's atfork hook unmarks
        if pid == 0:
            os._exit(sum(range(10)) - 45)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        assert _marked_mappings() == 0
    _in_fork(body)


I386_CLONE, I386_GETPID, I386_GETPPID = 120, 20, 64


def _needs_ia32() -> None:
    if not child_stub.ia32():
        pytest.skip("this kernel has no IA32 emulation (int 0x80 raised SIGSEGV)")


@x86_64
def test_i386_mode_calls_the_i386_table_through_int_0x80() -> None:
    """i386 getpid is 20 (x86_64's 20 is writev), getppid 64 (x86_64's 64 is semget)."""
    def body() -> None:
        _needs_ia32()
        assert child_stub.syscall(I386_GETPID, [], "exit", i386=True) == (os.getpid(), 0)
        assert child_stub.syscall(I386_GETPPID, [], "exit", i386=True) == (os.getppid(), 0)
    _in_fork(body)


@x86_64
def test_i386_mode_passes_six_registers_in_i386_order() -> None:
    """i386 clone(flags, stack, ptid, tls, ctid) (CLONE_BACKWARDS): CLONE_PARENT_SETTID stores the tid at the
    third argument (edx), a 32-bit address: the low window of the arena; a report child still reports."""
    clone_parent_settid = 0x00100000

    def body() -> None:
        _needs_ia32()
        word = arena.ARENA32 + 0x10
        arena.zero()
        ret, err, rfd = steps.stub_call(I386_CLONE, [SIGCHLD | clone_parent_settid, 0, word, 0, 0, 0], "report",
                                        i386=True)
        assert ret > 0 and err == 0
        assert steps.read_report(rfd, 10)["getpid"] == ret
        os.close(rfd)
        assert arena.read(word, 4) == ret.to_bytes(4, "little")
        assert os.waitstatus_to_exitcode(os.waitpid(ret, 0)[1]) == 0
        ret, err, _ = steps.stub_call(I386_CLONE, [0xFFFF_FFFF], "exit", i386=True)  # every low flag: EINVAL
        assert (ret, err) == (-1, 22)
    _in_fork(body)


@x86_64
def test_i386_step_reports_a_missing_ia32_emulation_instead_of_dying(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(child_stub, "_ia32", False)
    res = steps.invoke_syscall({"op": "syscall", "nr": I386_GETPID, "abi": "i386"}, None)  # type: ignore[arg-type]
    assert (res["ret"], res["errno"], res["ia32"]) == (-1, 38, False)


@x86_64
def test_i386_sweep_probes_ia32_before_marking_the_interpreters_memory() -> None:
    """The probe's throwaway fork runs Python: inside a sweep's lean_fork it would die and say "no ia32"."""
    def body() -> None:
        child_stub._ia32 = None
        ia32 = child_stub.ia32()
        child_stub._ia32 = None
        base = {"op": "syscall", "nr": I386_GETPID, "abi": "i386", "clone": True, "child": "exit", "regs": []}
        res = steps.sweep({"step": base, "vary": {"reg": 5}, "values": [0, 1]}, steps.Holders(Reaper()))
        want = [os.getpid(), 0, None] if ia32 else [-1, 38, None]
        assert res["results"] == [want, want]
    _in_fork(body)
