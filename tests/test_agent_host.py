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
    setns_step,
    syscall_step,
    unshare_step,
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


def test_close_kills_the_whole_sandbox(host_sandbox):
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


def test_pids_with_ns_names_each_tasks_pid_namespace(target):
    res = target.run(program([{"op": "pids", "ns": True}], chain(2)))
    step, workers = res["steps"][0], res["chain"]["workers"]
    assert len(step["ns"]) == len(step["nspids"]) and all(step["ns"])
    ns_of = {tuple(v): ino for v, ino in zip(step["nspids"], step["ns"], strict=True)}
    levels = [ns_of[(1,)]] + [ns_of[tuple(w)] for w in workers]
    assert len(set(levels)) == 3, "the agent and the two workers are in three different pid namespaces"
    assert all(len(v) == 3 for v, ino in ns_of.items() if ino == levels[2]), "a level-2 task has 3 pids"


def test_sweep_varies_a_register_and_returns_compact_results(target):
    from harness.programs import sweep_step
    args, _ = clone3_args([], flags=CLONE_VM | CLONE_VFORK)
    base = syscall_step(SYS_CLONE3, [ARGS, 80], write={ARGS: args}, clone=True, child="exit")
    res = target.run(program([sweep_step(base, {"reg": 1}, range(62, 66))]))["steps"][0]
    assert [r[1] for r in res["results"]] == [errno.EINVAL, errno.EINVAL, 0, 0]
    assert all(r[0] > 0 and r[2] == 0 for r in res["results"][2:])


def test_sweep_writes_bytes_or_words_after_the_steps_own_writes(target):
    from harness.programs import sweep_step
    args, _ = clone3_args([])
    base = syscall_step(SYS_CLONE3, [ARGS, 128], write={ARGS: args}, clone=True, child="exit")
    tail = target.run(program([sweep_step(base, {"write_at": "00"}, [ARGS + 100]),
                               sweep_step(base, {"write_at": "01"}, [ARGS + 100, ARGS + 127])]))["steps"]
    assert [r[1] for r in tail[0]["results"]] == [0]
    assert [r[1] for r in tail[1]["results"]] == [errno.E2BIG, errno.E2BIG]
    words = target.run(program([sweep_step(base, {"word_at": ARGS + 32, "size": 8}, [SIGCHLD, 65, 1 << 32])]))
    assert [r[1] for r in words["steps"][0]["results"]] == [0, errno.EINVAL, errno.EINVAL]


def test_sweep_without_a_syscall_step_or_with_an_unknown_vary_is_a_program_error(target):
    with pytest.raises(ProgramError):
        target.run(program([{"op": "sweep", "step": pids_step(), "vary": {"reg": 0}, "values": [1]}]))
    with pytest.raises(ProgramError):
        target.run(program([{"op": "sweep", "step": syscall_step(SYS_GETPID), "vary": {"nope": 1}, "values": [1]}]))
    target.ping()


def test_sp_child_stores_its_stack_pointer_where_a_clone_vm_caller_sees_it(target):
    from harness.agent import arena
    from harness.programs import SP_SLOT
    assert SP_SLOT == arena.SP_SLOT
    top = ARENA + 0x9000
    step = syscall_step(SYS_CLONE, [CLONE_VM | CLONE_VFORK | SIGCHLD, top, 0, 0, 0], clone=True, child="sp",
                        read=[(SP_SLOT, 8)])
    res = target.run(program([step]))["steps"][0]
    assert res["ret"] > 0 and res["child_exit"] == 0
    assert int.from_bytes(bytes.fromhex(res["read"][0]), "little") == top
    forked = syscall_step(SYS_CLONE, [SIGCHLD, 0, 0, 0, 0], clone=True, child="sp", read=[(SP_SLOT, 8)])
    res = target.run(program([forked]))["steps"][0]
    assert res["child_exit"] == 0 and res["read"][0] == "00" * 8, "without CLONE_VM the store stays in the child"


CLONE_SETTLS = 0x80000


def test_fs_child_stores_the_fs_base_clone_settls_gave_it(target):
    from harness.programs import SP_SLOT
    tls = ARENA + 0x7000
    fs_base = []
    for flags, arg in ((0, 0), (CLONE_SETTLS, tls), (CLONE_SETTLS, 0)):
        step = syscall_step(SYS_CLONE, [flags | CLONE_VM | CLONE_VFORK | SIGCHLD, 0, 0, 0, arg], clone=True,
                            child="fs", read=[(SP_SLOT, 8)])
        res = target.run(program([step]))["steps"][0]
        assert res["ret"] > 0 and res["child_exit"] == 0, res
        fs_base.append(int.from_bytes(bytes.fromhex(res["read"][0]), "little"))
    inherited, set_, zero = fs_base
    assert inherited not in (0, tls), "without CLONE_SETTLS the child has the caller's fs base (glibc's TLS)"
    assert (set_, zero) == (tls, 0)


# --- race: racers live across rounds, setup/check steps, park children, pidns_of, prepare (issue 6) ---

CLONE_NEWPID = 0x20000000

def _park_step(at: int, set_tid: list[int], name: str | None = None) -> dict:
    """clone3(CLONE_VM) whose child parks (stays alive in machine code until the round ends)."""
    args, tids = clone3_args(set_tid, flags=CLONE_VM)
    return syscall_step(SYS_CLONE3, [ARGS, len(args)], at=at, write={ARGS: args, SET_TID: tids}, clone=True,
                        child="park", name=name)


def test_racers_live_across_rounds_pinned_to_one_cpu_each(target):
    res = target.run(program([race_step([syscall_step(SYS_GETPID, at=1)] * 2, rounds=4)], chain(1)))["steps"][0]
    assert len(res["rounds"]) == 4 and res["racers"] == res["rounds"][-1]
    pids = {tuple(r["ret"] for r in rnd) for rnd in res["rounds"]}
    assert len(pids) == 1, "the same two racer processes ran every round"
    if len(os.sched_getaffinity(0)) >= 2:
        assert all(rnd[0]["cpu"] != rnd[1]["cpu"] for rnd in res["rounds"])
    assert all(isinstance(r["tsc"], int) and "child" not in r and "read" not in r for r in res["racers"])
    assert set(res["ms"]) == {"drop", "setup", "go", "check"}


def test_race_setup_and_check_run_every_round_while_parked_children_live(target):
    setup = [write_file_step("/proc/sys/kernel/ns_last_pid", "1499", at=1)]
    res = target.run(program([race_step([_park_step(1, [1600, 1550], name="p")], rounds=3, setup=setup,
                                        check=[pids_step()]), pids_step()], chain(1)))
    race = res["steps"][0]
    assert [s[0]["errno"] for s in race["setup"]] == [0, 0, 0]
    assert [r[0]["ret"] for r in race["rounds"]] == [1600] * 3, "each round's child was gone before the next"
    first, *repeats = race["check"]
    assert [1550, 1600] in first[0]["nspids"]
    assert repeats == [[None], [None]], "a check result equal to the previous round's comes back as null"
    assert [1550, 1600] in res["steps"][1]["nspids"], "the last round's child was adopted by the worker"
    assert [1550, 1600] not in target.run(program([pids_step()], chain(1)))["steps"][0]["nspids"]


def test_pidns_of_creates_the_racers_children_in_a_held_processs_namespace(target):
    init = syscall_step(SYS_CLONE, [CLONE_NEWPID | SIGCHLD, 0, 0, 0, 0], clone=True, child="hold", name="init")
    racer = {**clone3_step(0, [7, 1700]), "pidns_of": "init"}  # set_tid: 7 in init's namespace, 1700 outside
    res = target.run(program([race_step([racer], setup=[init])]))["steps"][0]
    assert res["setup"][0][0]["child"]["nspid"][-1] == 1
    assert res["racers"][0]["child"]["nspid"] == [1700, 7]
    with pytest.raises(ProgramError, match="pidns_of"):
        target.run(program([race_step([racer])]))


def test_a_racer_that_kills_its_own_prepared_holder_frees_the_pid_at_once(target):
    holder = occupy_step(1800, at=1, name="victim")
    killer = {"op": "release", "at": 1, "name": "victim", "prepare": [holder]}
    res = target.run(program([race_step([killer], rounds=2, check=[pids_step()])], chain(1)))["steps"][0]
    for rnd, check in zip(res["rounds"], res["check"], strict=True):
        assert rnd[0]["prepare"][0]["ok"] and rnd[0]["ok"]
        assert check[0] is None or not any(v[-1] == 1800 and len(v) == 2 for v in check[0]["nspids"])


def test_an_exiting_racer_is_forked_again_for_the_next_round(target):
    res = target.run(program([race_step([{"op": "exit", "at": 1}, syscall_step(SYS_GETPID, at=1)], rounds=3)],
                             chain(1)))["steps"][0]
    assert [rnd[0] for rnd in res["rounds"]] == [{"racer_exit": 0}] * 3
    assert all(rnd[1]["errno"] == 0 for rnd in res["rounds"])


def test_a_failing_racer_aborts_the_race_and_leaves_no_racer_behind(target):
    before = target.run(program([pids_step()], chain(1)))["steps"][0]["nspids"]
    bad = {**clone3_step(1, [1900]), "child": "no-such-mode"}
    with pytest.raises(ProgramError, match="cannot race"):
        target.run(program([race_step([_park_step(1, [1901]), bad], rounds=3)], chain(1)))
    after = target.run(program([pids_step()], chain(1)))["steps"][0]["nspids"]
    assert sorted(after) == sorted(before)


def fork_step(at: int, child: str = "report", name: str | None = None, flags: int = 0) -> dict:
    return syscall_step(SYS_CLONE, [flags | SIGCHLD, 0, 0, 0, 0], at=at, clone=True, child=child, name=name)


def test_unshare_puts_the_levels_later_children_in_a_new_namespace_until_the_program_ends(target):
    spec = chain(1)
    res = target.run(program([unshare_step(at=1), fork_step(1, child="hold"), fork_step(1),
                              syscall_step(SYS_GETPID, at=1)], spec))
    unshared, init, second, getpid = res["steps"]
    assert unshared == {"errno": 0}
    assert len(init["child"]["nspid"]) == 3 and init["child"]["nspid"][-1] == 1 and init["child"]["getpid"] == 1
    assert second["child"]["nspid"][-1] == 2
    assert getpid["ret"] == 1, "the worker's own pid namespace did not change"
    after = target.run(program([fork_step(1)], spec))["steps"][0]
    assert len(after["child"]["nspid"]) == 2, "the next program's children are in the level's own namespace"


def test_unshare_twice_or_without_cap_sys_admin_is_refused(target):
    res = target.run(program([unshare_step(at=1), unshare_step(at=1)], chain(1)))
    assert [s["errno"] for s in res["steps"]] == [0, errno.EINVAL]
    res = target.run(program([unshare_step(at=1), fork_step(1)], chain(1, caps={1: []})))
    assert res["steps"][0]["errno"] == errno.EPERM
    assert len(res["steps"][1]["child"]["nspid"]) == 2


def test_no_fork_in_an_unshared_namespace_whose_init_has_exited(target):
    res = target.run(program([unshare_step(at=1), fork_step(1), fork_step(1)], chain(1)))
    _, init, late = res["steps"]
    assert init["child"]["nspid"][-1] == 1 and init["child_exit"] == 0
    assert (late["ret"], late["errno"]) == (-1, errno.ENOMEM)


def test_setns_puts_the_levels_later_children_in_a_held_processs_namespace(target):
    spec = chain(1)
    res = target.run(program([fork_step(1, child="hold", name="init", flags=CLONE_NEWPID),
                              setns_step("init", at=1), fork_step(1)], spec))
    init, joined, child = res["steps"]
    assert joined == {"errno": 0}
    assert len(child["child"]["nspid"]) == 3 and child["child"]["nspid"][-1] == 2
    assert len(target.run(program([fork_step(1)], spec))["steps"][0]["child"]["nspid"]) == 2
    with pytest.raises(ProgramError, match="no held process"):
        target.run(program([setns_step("nobody", at=1)], spec))
