"""The agent's `exec` step and binary `write_file`, on the host target."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import uuid

import pytest

from harness.errors import ProgramError
from harness.programs import chain, pids_step, program, read_file_step

SH = shutil.which("sh") or "/bin/sh"


def exec_step(argv: list[str], at: int = 0, timeout: float = 5.0) -> dict:
    return {"op": "exec", "at": at, "argv": argv, "timeout": timeout}


def write_binary_step(path: str, data: bytes, mode: int = 0o755, at: int = 0) -> dict:
    return {"op": "write_file", "at": at, "path": path, "hex": data.hex(), "mode": mode}


@pytest.fixture(scope="module")
def target(host_target):
    """These tests run on the host target, whatever --target says."""
    return host_target


@pytest.fixture
def tmp_name():
    path = f"/tmp/eclone-exec-test-{uuid.uuid4().hex}"
    yield path
    if os.path.exists(path):
        os.unlink(path)


def test_exec_reports_exit_status_stdout_and_stderr(target):
    res = target.run(program([exec_step([SH, "-c", "echo out; echo err >&2; exit 3"])]))
    step = res["steps"][0]
    assert (step["status"], step["stdout"], step["stderr"], step["timed_out"]) == (3, "out\n", "err\n", False)


def test_exec_searches_path_for_a_bare_name(target):
    res = target.run(program([exec_step(["true"])]))
    assert res["steps"][0]["status"] == 0


def test_exec_runs_inside_the_pid_namespace_of_its_level(target):
    res = target.run(program([exec_step([SH, "-c", "echo $$"], at=2)], chain(2), fresh_chain=True))
    assert res["steps"][0]["status"] == 0
    assert res["steps"][0]["stdout"] == "2\n"  # the worker is pid 1 of level 2, the program its first child


def test_exec_after_the_timeout_is_killed(target):
    res = target.run(program([exec_step(["sleep", "30"], timeout=0.3)]))
    step = res["steps"][0]
    assert step["status"] == -signal.SIGKILL and step["timed_out"]
    assert step["elapsed_ms"] < 3000


def test_exec_timeout_also_kills_what_the_program_started(target):
    before = target.run(program([pids_step()], chain(1)))["steps"][0]["nspids"]
    res = target.run(program([exec_step([SH, "-c", "sleep 30 & sleep 30"], at=1, timeout=0.3), pids_step()],
                             chain(1)))
    assert res["steps"][0]["timed_out"]
    assert res["steps"][1]["nspids"] == before


def test_exec_of_a_missing_program_is_status_127_with_the_reason(target):
    step = target.run(program([exec_step(["/nonexistent/prog"])]))["steps"][0]
    assert step["status"] == 127 and "No such file" in step["stderr"]


def test_exec_killed_by_a_signal_reports_minus_the_signal(target):
    step = target.run(program([exec_step([SH, "-c", "kill -TERM $$"])]))["steps"][0]
    assert step["status"] == -signal.SIGTERM


def test_exec_stdin_is_empty(target):
    step = target.run(program([exec_step(["cat"])]))["steps"][0]
    assert (step["status"], step["stdout"]) == (0, "")


@pytest.mark.parametrize("argv", [[], "true", [1]])
def test_exec_with_a_bad_argv_is_a_program_error(target, argv):
    with pytest.raises(ProgramError):
        target.run(program([exec_step(argv)]))
    target.ping()


def test_exec_with_a_timeout_beyond_the_limit_is_a_program_error(target):
    with pytest.raises(ProgramError):
        target.run(program([exec_step(["true"], timeout=600)]))


def test_write_file_hex_with_mode_creates_an_executable(target, tmp_name):
    script = b"#!/bin/sh\nprintf '\\001\\377'\necho \"$@\"\n"
    res = target.run(program([write_binary_step(tmp_name, script), exec_step([tmp_name, "a", "b"], at=1)],
                             chain(1)))
    assert res["steps"][0] == {"errno": 0}
    assert res["steps"][1]["status"] == 0 and res["steps"][1]["stdout"].endswith("a b\n")
    assert stat.S_IMODE(os.stat(tmp_name).st_mode) == 0o755
    with open(tmp_name, "rb") as f:
        assert f.read() == script


def test_write_file_hex_round_trips_every_byte(target, tmp_name):
    data = bytes(range(256)) * 64
    res = target.run(program([write_binary_step(tmp_name, data, mode=0o600)]))
    assert res["steps"][0] == {"errno": 0}
    with open(tmp_name, "rb") as f:
        assert f.read() == data
    assert stat.S_IMODE(os.stat(tmp_name).st_mode) == 0o600


def test_write_file_with_mode_truncates_an_existing_file(target, tmp_name):
    target.run(program([write_binary_step(tmp_name, b"x" * 100)]))
    target.run(program([write_binary_step(tmp_name, b"yz")]))
    with open(tmp_name, "rb") as f:
        assert f.read() == b"yz"


def test_write_file_without_mode_does_not_create(target, tmp_name):
    res = target.run(program([{"op": "write_file", "path": tmp_name, "data": "x"}, read_file_step(tmp_name)]))
    assert res["steps"][0]["errno"] == 2 and res["steps"][1]["errno"] == 2


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc to build a static binary")
def test_a_static_binary_dropped_by_write_file_runs_at_a_nested_level(target, tmp_name, tmp_path):
    src = tmp_path / "hello.c"
    src.write_text('#include <stdio.h>\n#include <unistd.h>\nint main(void){printf("pid %d\\n", getpid());'
                   'return 7;}\n')
    binary = tmp_path / "hello"
    built = subprocess.run(["gcc", "-O2", "-static", "-o", str(binary), str(src)], capture_output=True)
    if built.returncode != 0:
        pytest.skip(f"gcc -static failed: {built.stderr.decode(errors='replace')[-200:]}")
    res = target.run(program([write_binary_step(tmp_name, binary.read_bytes(), at=1),
                              exec_step([tmp_name], at=1)], chain(1), fresh_chain=True))
    assert res["steps"][0] == {"errno": 0}
    assert (res["steps"][1]["status"], res["steps"][1]["stdout"]) == (7, "pid 2\n")


def test_pid_max_is_read_again_only_after_steps_that_may_write_files():
    from harness.agent.program import only_calls_and_reads
    spawn = {"op": "syscall", "nr": 435, "clone": True}
    assert only_calls_and_reads([spawn, {"op": "pids"}, {"op": "read_file", "path": "x"}, {"op": "occupy", "pid": 5}])
    assert only_calls_and_reads([{"op": "sweep", "step": spawn}, {"op": "race", "racers": [spawn]}])
    assert not only_calls_and_reads([{"op": "write_file", "path": "/proc/sys/kernel/pid_max", "data": "500"}])
    assert not only_calls_and_reads([{"op": "syscall", "nr": 1}])  # a raw write(2) could
    assert not only_calls_and_reads([{"op": "exec", "argv": ["/tmp/x"]}])
    assert not only_calls_and_reads([{"op": "race", "racers": [spawn], "setup": [{"op": "write_file"}]}])
    assert not only_calls_and_reads([{"op": "sweep", "step": {"op": "syscall", "nr": 1}}])


def test_exec_programs_get_every_cpu_the_agent_started_with(monkeypatch):
    """The agent pins itself (and its workers) to one CPU; a program it execs (a C reproducer racing its
    own threads, the kernel's selftests) must get them all back."""
    import os

    from harness.agent import affinity, exec_step
    from harness.agent.reaper import Reaper
    want = sorted(os.sched_getaffinity(0))
    if len(want) < 2:
        pytest.skip("one CPU: nothing to pin away")
    monkeypatch.setattr(affinity, "race_cpus", lambda: want)
    os.sched_setaffinity(0, {want[0]})  # as the agent after pin_home()
    try:
        res = exec_step.run_exec({"op": "exec", "argv": ["/usr/bin/python3", "-c",
                                                          "import os; print(sorted(os.sched_getaffinity(0)))"],
                                  "timeout": 10}, Reaper())
    finally:
        os.sched_setaffinity(0, want)
    assert res["status"] == 0 and res["stdout"].strip() == str(want)
