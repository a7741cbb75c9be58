"""The agent on the host target: real programs on the running kernel, inside a sandbox."""

from __future__ import annotations

import errno
import os
import struct
import time

import pytest

from harness.errors import ProgramError
from harness.programs import (
    ARENA,
    chain,
    occupy_step,
    pids_step,
    program,
    race_step,
    read_file_step,
    release_step,
    syscall_step,
    write_file_step,
)
from harness.targets.host import HostTarget

SYS_CLONE, SYS_CLONE3, SYS_GETPID = 56, 435, 39
SIGCHLD, CLONE_VM, CLONE_VFORK = 17, 0x100, 0x4000
CAP_SYS_ADMIN = 21
ARGS = ARENA
SET_TID = ARENA + 0x100


def clone3_args(set_tid: list[int], flags: int = 0, exit_signal: int = SIGCHLD) -> tuple[bytes, bytes]:
    """struct clone_args VER1 (80 bytes) pointing at a set_tid array (innermost level first)."""
    args = struct.pack("<10Q", flags, 0, 0, 0, exit_signal, 0, 0, 0,
                       SET_TID if set_tid else 0, len(set_tid))
    assert len(args) == 80
    return args, struct.pack(f"<{len(set_tid)}i", *set_tid)


def clone3_step(at: int, set_tid: list[int], child: str = "report") -> dict:
    args, tids = clone3_args(set_tid)
    return syscall_step(SYS_CLONE3, [ARGS, len(args)], at=at, write={ARGS: args, SET_TID: tids},
                        clone=True, child=child)


@pytest.fixture(scope="module")
def target(host_target):
    """These tests run on the host target, whatever --target says."""
    return host_target


def test_ping_round_trip_is_well_under_20ms(target):
    t0 = time.perf_counter()
    for _ in range(50):
        target.ping()
    assert (time.perf_counter() - t0) / 50 < 0.020


def test_info_reports_nesting_below_the_host(target):
    assert target.info.name == "host"
    assert target.info.root_level >= 1
    assert target.info.kernel == os.uname().release


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_chain_workers_are_init_of_each_level(target, depth):
    res = target.run(program([pids_step()], chain(depth)))
    workers = res["chain"]["workers"]
    assert len(workers) == depth
    for k, nspid in enumerate(workers, start=1):
        assert len(nspid) == k + 1 and nspid[-1] == 1


def test_userns_level_is_root_of_its_own_user_namespace(target):
    res = target.run(program([read_file_step("/proc/self/uid_map", at=1),
                              read_file_step("/proc/self/uid_map", at=2)], chain(2, userns_at=[2])))
    level1, level2 = (r["data"].split() for r in res["steps"])
    assert level1 == level1[:3] and level2[:1] == ["0"] and level2[2] == "1"
    assert level2[1] == "0"  # seen from level 1's user namespace: the outer uid is its root


def test_level_without_cap_sys_admin_cannot_move_ns_last_pid(target):
    res = target.run(program([write_file_step("/proc/sys/kernel/ns_last_pid", "400", at=1),
                              write_file_step("/proc/sys/kernel/ns_last_pid", "400", at=2)],
                             chain(2, userns_at=[2], caps={1: []})))
    assert res["steps"][0]["errno"] in (errno.EPERM, errno.EACCES)
    assert res["steps"][1]["errno"] == 0


@pytest.mark.parametrize("at", [0, 1, 2, 3])
def test_clone3_set_tid_at_every_level_gives_the_child_those_pids(target, at):
    wanted = [700 + 10 * level + at for level in range(at + 1)]  # outermost first
    res = target.run(program([clone3_step(at, wanted[::-1])], chain(3)))
    step = res["steps"][0]
    assert step["errno"] == 0 and step["ret"] == wanted[-1]
    assert step["child"]["nspid"] == wanted and step["child"]["getpid"] == wanted[-1]
    assert step["child_exit"] == 0


def test_clone3_with_a_short_size_is_einval(target):
    args, _ = clone3_args([])
    res = target.run(program([syscall_step(SYS_CLONE3, [ARGS, 63], write={ARGS: args}, clone=True)]))
    assert (res["steps"][0]["ret"], res["steps"][0]["errno"]) == (-1, errno.EINVAL)


def test_occupied_pid_makes_clone3_set_tid_fail_with_eexist(target):
    res = target.run(program([occupy_step(600, at=1, name="h"), clone3_step(1, [600])], chain(1)))
    occ, clone = res["steps"]
    assert occ["ok"] and occ["nspid"][-1] == 600
    assert (clone["ret"], clone["errno"], clone["child"]) == (-1, errno.EEXIST, None)


def test_nothing_leaks_after_a_program(target):
    spec = chain(2, userns_at=[1])
    before = target.run(program([pids_step()], spec))["steps"][0]["nspids"]
    res = target.run(program([occupy_step(650, at=2), clone3_step(2, [651], child="hold"),
                              clone3_step(1, [652]), syscall_step(SYS_GETPID, at=2)], spec))
    assert [s.get("ret") for s in res["steps"]] == [None, 651, 652, res["chain"]["workers"][1][-1]]
    after = target.run(program([pids_step()], spec))["steps"][0]["nspids"]
    assert after == before


def test_kept_holder_survives_until_released(target):
    spec = chain(1)
    target.run(program([occupy_step(660, at=1, name="keeper")], spec, keep=True))
    pids = target.run(program([pids_step()], spec))["steps"][0]["nspids"]
    assert any(v[-1] == 660 and len(v) == 2 for v in pids)
    res = target.run(program([release_step("keeper"), pids_step()], spec))
    assert res["steps"][0] == {"ok": True}
    assert not any(v[-1] == 660 and len(v) == 2 for v in res["steps"][1]["nspids"])


def test_four_racers_asking_the_same_pid_one_wins(target):
    # held children keep the pid: a winner's child exiting early would let a later racer win too
    res = target.run(program([race_step([clone3_step(1, [670], child="hold") for _ in range(4)]),
                              pids_step()], chain(1)))
    racers = res["steps"][0]["racers"]
    winners = [r for r in racers if r["ret"] > 0]
    assert len(winners) == 1 and winners[0]["child"]["nspid"][-1] == 670
    assert sorted(r["errno"] for r in racers) == [0, errno.EEXIST, errno.EEXIST, errno.EEXIST]
    assert sum(v[-1] == 670 and len(v) == 2 for v in res["steps"][1]["nspids"]) == 1
    after = target.run(program([pids_step()], chain(1)))["steps"][0]["nspids"]
    assert not any(v[-1] == 670 and len(v) == 2 for v in after)


def test_clone_vm_child_exits_without_running_python(target):
    res = target.run(program([syscall_step(SYS_CLONE, [CLONE_VM | SIGCHLD, 0, 0, 0, 0], at=1,
                                           clone=True, child="exit")], chain(1)))
    step = res["steps"][0]
    assert step["ret"] > 0 and step["errno"] == 0 and step["child_exit"] == 0


def test_clone_vm_vfork_with_a_stack_in_the_arena(target):
    stack_top = ARENA + 0x8000
    res = target.run(program([syscall_step(SYS_CLONE, [CLONE_VM | CLONE_VFORK | SIGCHLD, stack_top, 0, 0, 0],
                                           clone=True, child="exit")]))
    assert res["steps"][0]["ret"] > 0 and res["steps"][0]["child_exit"] == 0


def test_a_bad_step_is_a_program_error_and_the_agent_keeps_serving(target):
    with pytest.raises(ProgramError):
        target.run(program([{"op": "no-such-op"}], chain(1)))
    with pytest.raises(ProgramError):
        target.run(program([pids_step() | {"op": "read_file", "at": 5, "path": "/"}], chain(1)))
    target.ping()


def test_a_simple_clone3_spawn_program_is_fast(target):
    prog = program([clone3_step(1, [])], chain(1))
    assert target.run(prog)["steps"][0]["ret"] > 0
    t0 = time.perf_counter()
    for _ in range(10):
        target.run(prog)
    assert (time.perf_counter() - t0) / 10 < 0.050


def _descendants(pid: int) -> set[int]:
    """Host pids below `pid` (through /proc/<pid>/task/*/children)."""
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                with open(f"/proc/{p}/task/{t}/children") as f:
                    kids = [int(x) for x in f.read().split()]
            except OSError:
                continue
            out.update(kids)
            todo.extend(kids)
    return out


def test_close_kills_the_whole_sandbox():
    t = HostTarget()
    t.start()
    t.run(program([occupy_step(680, at=2, name="k"), clone3_step(1, [681], child="hold")], chain(2)),
          timeout=10)
    t.run(program([pids_step()], chain(2, userns_at=[1])), timeout=10)
    pids = _descendants(t.proc.pid) | {t.proc.pid}
    assert len(pids) >= 5
    t.close()
    t.close()  # idempotent
    time.sleep(0.2)
    assert not [p for p in pids if os.path.exists(f"/proc/{p}")]


def test_list_deps_names_the_interpreter_modules_and_shared_objects():
    import json
    import subprocess
    import sys

    from harness.paths import REPO_ROOT

    out = subprocess.run([sys.executable, "-S", "-m", "agent", "--list-deps"], cwd=REPO_ROOT / "harness",
                         capture_output=True, check=True, text=True).stdout
    deps = json.loads(out)
    names = {os.path.basename(p) for p in deps}
    assert all(os.path.isabs(p) and os.path.isfile(p) for p in deps)
    assert {"libc.so.6", "decoder.py", "traceback.py"} <= names
    assert any(n.startswith("_ctypes") for n in names) and any(n.startswith("libffi") for n in names)
