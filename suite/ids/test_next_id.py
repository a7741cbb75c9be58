"""Seed 004's per-thread next_id file (NOTES.md "next_id (seed 004) and its mainline descendants", every
"Settled details" bullet): strict syntax, per-thread writes, one-shot ids, X0 innermost, EBUSY, cleared by a
creation that names its own pids. The reference kernel has it (qemu/patches/eclone/0011); other kernels skip
with the probe's reason."""

from __future__ import annotations

import errno
import signal
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from harness.agent.child_stub import NAP_SECONDS
from harness.pidspace import chain_levels, pick_free
from harness.profiles import SpawnRequest, make_profile
from harness.profiles.ids import IPC_CREAT, IPC_PRIVATE, IPC_SEQ, LONG_MAX, SYS_CLONE, SYSV, next_id_text
from harness.programs import (
    chain,
    install_and_exec_steps,
    program,
    read_file_step,
    sleep_step,
    syscall_step,
    write_file_step,
)
from harness.static_c import build_static

pytestmark = pytest.mark.profiles("next_id")

HELPERS = Path(__file__).resolve().parent / "helpers"
CLONE_VM, CLONE_SIGHAND, CLONE_THREAD = 0x100, 0x800, 0x10000  # CLONE_SIGHAND without CLONE_VM: EINVAL


def plain_chain(depth: int) -> dict:
    """No user namespaces: the level-`depth` worker keeps its capabilities over every level above it."""
    return {**chain(depth), "tag": "ids"}


def test_each_level_gets_its_chosen_pid_x0_innermost(ids, id_profile, target):
    spec = plain_chain(2)
    ids.start(spec, own_ipc_at=())
    outer, middle, inner = pick_free(target, [0, 1, 2], spec)
    write, made = ids.run([*id_profile.chain_steps([inner, middle, outer], at=2), id_profile.create_step(at=2)],
                          spec)
    assert write["errno"] == 0, write
    assert (made["errno"], made["ret"]) == (0, inner), made
    assert made["child"]["nspid"] == [outer, middle, inner]


def test_a_single_id_names_the_childs_own_namespace(ids, id_profile, target):
    spec = plain_chain(2)
    ids.start(spec, own_ipc_at=())
    (inner,) = pick_free(target, [2], spec)
    made = ids.run([*id_profile.choose_steps(inner, at=2), id_profile.create_step(at=2)], spec)[-1]
    assert (made["errno"], made["child"]["nspid"][-1]) == (0, inner), made


def test_a_busy_outer_pid_is_ebusy_and_the_inner_one_is_given_back(ids, id_profile, target):
    spec = plain_chain(2)
    ids.start(spec, own_ipc_at=())
    busy = ids.make_busy(spec, 1)
    (inner,) = pick_free(target, [2], spec, seed=7)
    failed = ids.run([*id_profile.chain_steps([inner, busy], at=2), id_profile.create_step(at=2)], spec)[-1]
    again = ids.run([*id_profile.choose_steps(inner, at=2), id_profile.create_step(at=2)], spec)[-1]
    assert failed["errno"] == errno.EBUSY, failed
    assert (again["errno"], again["ret"]) == (0, inner), again


CLONE_NEWPID = 0x20000000


def test_with_clone_newpid_x0_is_the_new_namespaces_pid_1(ids, id_profile):
    spec = ids.chain(1)
    ids.start(spec, own_ipc_at=())
    (outer,) = pick_free(ids.target, [1], spec)
    newpid = syscall_step(SYS_CLONE, [CLONE_NEWPID | signal.SIGCHLD, 0, 0, 0, 0, 0], at=1, clone=True)
    made = ids.run([*id_profile.chain_steps([1, outer], at=1), newpid], spec)[-1]
    assert (made["errno"], made["ret"]) == (0, outer), made
    assert made["child"]["nspid"][1:] == [outer, 1]


@pytest.mark.parametrize("case, expected", [
    ("more_ids_than_levels", errno.EINVAL),
    ("above_pid_max", errno.EINVAL),
    ("first_pid_of_a_new_namespace_not_1", errno.EINVAL),
    ("outer_level_without_privilege", errno.EPERM),
])
def test_the_creation_follows_clone3s_rules(ids, id_profile, case, expected):
    """The write accepts any syntactically valid ids; the creation judges them (and consumes them)."""
    spec = ids.chain(2)
    ids.start(spec, own_ipc_at=())
    inner, middle = pick_free(ids.target, [2, 1], spec)
    create = id_profile.create_step(at=2)
    if case == "more_ids_than_levels":
        vector = [inner, middle, 400, 401]
    elif case == "above_pid_max":
        vector = [LONG_MAX]
    elif case == "first_pid_of_a_new_namespace_not_1":
        vector = [5, inner]
        create = syscall_step(SYS_CLONE, [CLONE_NEWPID | signal.SIGCHLD, 0, 0, 0, 0, 0], at=2, clone=True)
    else:  # level 1 belongs to the level-1 user namespace, where level 2's worker has no capability
        vector = [inner, middle]
    write, made, read = ids.run([*id_profile.chain_steps(vector, at=2), create, id_profile.read_step(at=2)], spec)
    assert write["errno"] == 0, write
    assert made["errno"] == expected, made
    assert read["data"] == ""


def test_the_file_is_per_thread_only(ids, id_profile):
    """/proc/<pid>/task/<tid>/next_id and /proc/thread-self/next_id, never /proc/<pid>/next_id."""
    spec = ids.chain(1)
    ids.start(spec, own_ipc_at=())
    whole, thread = ids.run([read_file_step("/proc/self/next_id", at=1), id_profile.read_step(at=1)], spec)
    assert whole["errno"] == errno.ENOENT, whole
    assert thread.get("errno", 0) == 0 and thread["data"] == "", thread


def test_the_ids_are_used_once_on_success(ids, id_profile):
    spec = ids.chain(1)
    ids.start(spec, own_ipc_at=())
    want = ids.free_id(spec, 1)
    first, second, read = ids.run([*id_profile.choose_steps(want, at=1), id_profile.create_step(at=1),
                                   id_profile.create_step(at=1), id_profile.read_step(at=1)], spec)[-3:]
    assert (first["errno"], first["ret"]) == (0, want), first
    assert second["errno"] == 0 and second["ret"] != want, second
    assert read["data"] == ""


@pytest.mark.parametrize("failure", ["busy", "bad_flags"])
def test_a_failed_creation_consumes_the_ids(ids, id_profile, failure):
    """Any creation attempt uses them up, also one that fails on its own arguments."""
    spec = ids.chain(1)
    ids.start(spec, own_ipc_at=())
    if failure == "busy":
        want = ids.make_busy(spec, 1)
        attempt = id_profile.create_step(at=1)
        expected = errno.EBUSY
    else:
        want = ids.free_id(spec, 1)
        attempt = syscall_step(SYS_CLONE, [CLONE_SIGHAND | signal.SIGCHLD, 0, 0, 0, 0, 0], at=1, clone=True)
        expected = errno.EINVAL
    failed, read, after = ids.run([*id_profile.choose_steps(want, at=1), attempt, id_profile.read_step(at=1),
                                   id_profile.create_step(at=1)], spec)[-3:]
    assert failed["errno"] == expected, failed
    assert read["data"] == ""
    assert after["errno"] == 0 and after["ret"] != want, after


def test_the_file_reads_empty_after_the_creation(ids, id_profile):
    spec = ids.chain(1)
    ids.start(spec, own_ipc_at=())
    before, _, _, after = ids.run([id_profile.read_step(at=1), *id_profile.choose_steps(ids.free_id(spec, 1), at=1),
                                   id_profile.create_step(at=1), id_profile.read_step(at=1)], spec)
    assert (before["data"], after["data"]) == ("", "")


@pytest.mark.parametrize("raw, normalised", [
    ("LONG1 5", "LONG 5\n"),
    ("LONG\t5\n", "LONG 5\n"),
    ("LONG3 7\t8 9\n", "LONG3 7 8 9\n"),
    (f"LONG2 {LONG_MAX} 1", f"LONG2 {LONG_MAX} 1\n"),
])
def test_the_file_reads_back_normalised(ids, id_profile, raw, normalised):
    spec = ids.chain(1)
    ids.start(spec, own_ipc_at=())
    write, read, rewrite, reread = ids.run([*id_profile.raw_steps(raw, at=1), id_profile.read_step(at=1),
                                            *id_profile.raw_steps(normalised, at=1), id_profile.read_step(at=1)],
                                           spec)
    assert (write["errno"], read["data"]) == (0, normalised)
    assert (rewrite["errno"], reread["data"]) == (0, normalised)


def test_a_later_write_replaces_the_pending_ids(ids, id_profile):
    spec = ids.chain(1)
    ids.start(spec, own_ipc_at=())
    results = ids.run([*id_profile.raw_steps("LONG2 3 4", at=1), *id_profile.raw_steps("LONG 6", at=1),
                       id_profile.read_step(at=1)], spec)
    assert results[-1]["data"] == "LONG 6\n"


def test_another_processes_file_is_eperm_even_for_root(ids, id_profile):
    """Only the thread itself may write its file; the owner's pending ids stay as they were (none)."""
    spec = ids.chain(1)
    ids.start(spec, own_ipc_at=())
    held = ids.target.run(program([id_profile.create_step(at=0, child="hold", name="nextid-victim")], spec,
                                  keep=True))["steps"][0]
    assert held["errno"] == 0, held
    pid = held["ret"]
    path = f"/proc/{pid}/task/{pid}/next_id"
    write, read = ids.run([write_file_step(path, next_id_text([ids.free_id(spec, 1)])),
                           read_file_step(path)], spec)
    ids.run([{"op": "release", "at": 0, "name": "nextid-victim"}], spec)
    assert write["errno"] == errno.EPERM, write
    assert read["data"] == ""


def test_a_sibling_threads_file_is_eperm_before_any_syntax_check(ids, id_profile):
    """Per thread, not per process: the leader may not write a sibling thread's file (EPERM first, also for a
    malformed write), and the refused writes store nothing, neither for the sibling nor for the writer.

    The sibling is a CLONE_THREAD child of the agent (level 0, so the root /proc names it by the tid it got)
    that naps NAP_SECONDS in machine code: created, written and read in one program, then outslept."""
    spec = ids.chain(1)
    ids.start(spec, own_ipc_at=())
    tid = ids.free_id(spec, 0)
    thread = make_profile("clone3").spawn_step(SpawnRequest(at=0, pids=(tid,), flags=CLONE_THREAD | CLONE_SIGHAND
                                                            | CLONE_VM, exit_signal=0, child="nap"))
    task = f"/proc/self/task/{tid}"
    made, alive, wellformed, malformed, oversized, sibling, own, _, gone = ids.run([
        thread, read_file_step(f"{task}/comm"),
        write_file_step(f"{task}/next_id", next_id_text([ids.free_id(spec, 1)])),
        write_file_step(f"{task}/next_id", "LONG2 7\n"),  # n and the count of ids disagree: EINVAL for the owner
        write_file_step(f"{task}/next_id", "LONG 7" + " " * 2000),  # over 1024 bytes: EINVAL for the owner
        read_file_step(f"{task}/next_id"), read_file_step("/proc/thread-self/next_id"),
        sleep_step(NAP_SECONDS + 0.5), read_file_step(f"{task}/comm")], spec)
    assert (made["errno"], made["ret"]) == (0, tid), made
    assert alive.get("errno", 0) == 0, f"the sibling thread was gone before the writes: {alive}"
    assert wellformed["errno"] == errno.EPERM, wellformed
    assert malformed["errno"] == errno.EPERM, f"EPERM comes before the syntax check: {malformed}"
    assert oversized["errno"] == errno.EPERM, f"EPERM comes before the size check: {oversized}"
    assert sibling["data"] == "" and own["data"] == "", (sibling, own)
    assert gone.get("errno") == errno.ENOENT, f"the sibling thread outlived its nap: {gone}"


def test_pending_ids_survive_execve(ids, id_profile):
    """A thread writes its file and execs (suite/ids/helpers/next_id_exec.c): the new image still has the ids
    pending, and its first fork takes them."""
    binary = build_static(HELPERS / "next_id_exec.c", why="the next_id execve test").read_bytes()
    spec = ids.chain(1)
    ids.start(spec, own_ipc_at=())
    want = ids.free_id(spec, 1)
    text = next_id_text([want])
    path = f"/tmp/eclone-next-id-exec-{uuid.uuid4().hex[:12]}"
    _, ran = ids.run(install_and_exec_steps(binary, path, ["--write-then-exec", text], at=1), spec)
    assert ran["status"] == 0, ran
    assert ran["stdout"].strip() == f"pending={text};child={want}", ran


@pytest.mark.parametrize("maker", ["clone3", "eclone"])
def test_a_creation_naming_its_own_pids_clears_them(ids, id_profile, maker):
    spec = ids.chain(1)
    ids.start(spec, own_ipc_at=())
    pending, named = pick_free(ids.target, [1, 1], spec, seed=3)
    step = make_profile(maker).spawn_step(SpawnRequest(at=1, pids=(named,)))
    made, read, plain = ids.run([*id_profile.choose_steps(pending, at=1), step, id_profile.read_step(at=1),
                                 id_profile.create_step(at=1)], spec)[-3:]
    if made["errno"] == errno.ENOSYS:
        pytest.skip(f"{maker} is not on this kernel")
    assert (made["errno"], made["ret"]) == (0, named), made
    assert read["data"] == ""
    assert plain["errno"] == 0 and plain["ret"] != pending, plain


# --- malformed writes: EINVAL, nothing stored ---

numbers = st.integers(min_value=1, max_value=LONG_MAX).map(str)


@st.composite
def near_miss_writes(draw: st.DrawFn) -> str:
    """Strings one mistake away from a valid next_id write."""
    ids = draw(st.lists(numbers, min_size=1, max_size=4))
    n = len(ids)
    kind = draw(st.sampled_from(["count", "sign", "zero", "overflow", "blank", "garbage", "lower", "n0", "n34",
                                 "lead", "two_newlines", "bare", "empty", "hex", "n_zero_padded"]))
    body = " ".join(ids)
    head = f"LONG{n}"
    if kind == "count":
        head = f"LONG{draw(st.integers(1, 33).filter(lambda k: k != n))}"
    elif kind == "sign":
        body = " ".join([draw(st.sampled_from(["+", "-"])) + ids[0], *ids[1:]])
    elif kind == "zero":
        body = " ".join(["0" + ids[0], *ids[1:]]) if draw(st.booleans()) else " ".join(["0", *ids[1:]])
    elif kind == "overflow":
        body = " ".join([str(LONG_MAX + draw(st.integers(1, 10**20))), *ids[1:]])
    elif kind == "blank":
        sep = draw(st.sampled_from(["  ", " \t", "\t\t", "\n", "\v", "\r"]))
        return head + sep + sep.join(ids)
    elif kind == "garbage":
        return f"{head} {body}" + draw(st.sampled_from([" ", "\t", "x", " 1", "\n\n", "\x00", " \n"]))
    elif kind == "lower":
        head = draw(st.sampled_from(["long", "Long", "LonG"])) + str(n)
    elif kind == "n0":
        head = "LONG0"
    elif kind == "n34":
        head = f"LONG{draw(st.sampled_from([34, 99, 2**64]))}"
    elif kind == "lead":
        return draw(st.sampled_from([" ", "\t", "\n"])) + f"{head} {body}"
    elif kind == "two_newlines":
        return f"{head} {body}\n\n"
    elif kind == "bare":
        return draw(st.sampled_from(["LONG", "LONG\n", "LONG1", "LONG1\n", "LONG "]))
    elif kind == "empty":
        return draw(st.sampled_from(["", "\n"]))
    elif kind == "hex":
        body = " ".join(["0x" + ids[0], *ids[1:]])
    elif kind == "n_zero_padded":
        head = f"LONG0{n}"
    return f"{head} {body}"


ONE_OF_EACH = ["LONG2 5", "LONG1 5 6", "LONG -5", "LONG +5", "LONG 05", "LONG 0", "LONG 9223372036854775808",
               "LONG  5", "LONG2 5  6", "LONG 5 ", "LONG 5\n\n", "LONG 5x", "long 5", "LONG0 5",
               "LONG34 " + " ".join(["1"] * 34), " LONG 5", "LONG", "LONG\n", "", "LONG 0x5", "LONG01 5",
               "LONG\t\t5", "LONG 5\x00"]


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raws=st.lists(near_miss_writes(), min_size=1, max_size=30))
@example(raws=ONE_OF_EACH)
def test_near_miss_writes_are_einval_and_store_nothing(ids, id_profile, raws):
    spec = ids.chain(1)
    results = ids.run([s for raw in raws for s in (*id_profile.raw_steps(raw, at=1), id_profile.read_step(at=1))],
                      spec)
    for raw, write, read in zip(raws, results[::2], results[1::2], strict=True):
        assert (write["errno"], read["data"]) == (errno.EINVAL, ""), raw


def test_a_write_over_1024_bytes_is_einval(ids, id_profile):
    spec = ids.chain(1)
    raw = "LONG2 1 " + "1" * 1020  # 1028 bytes, and 1020 digits overflow as well: checked on size first
    write, read = ids.run([*id_profile.raw_steps(raw, at=1), id_profile.read_step(at=1)], spec)
    assert (write["errno"], read["data"]) == (errno.EINVAL, "")


# --- the SysV IPC form (patch 0012) ---

IPC_FORMS = ("next_id_msg", "next_id_sem", "next_id_shm")


@pytest.mark.profiles(*IPC_FORMS)
@pytest.mark.parametrize("case", ["two_ids", "index_out_of_range"])
def test_an_ipc_creation_refuses_what_it_cannot_give_with_einval(ids, id_profile, case):
    """n > 1 pending ids, or an index at or above the namespace's msgmni/semmni/shmmni: EINVAL, nothing created,
    the ids consumed."""
    spec = ids.chain(1)
    ids.start(spec)
    raw = "LONG2 17 18" if case == "two_ids" else f"LONG {5 * IPC_SEQ + IPC_SEQ - 1}"
    write, made, read = ids.run([*id_profile.raw_steps(raw, at=1), id_profile.create_step(at=1),
                                 id_profile.read_step(at=1)], spec)
    ids.remove(made, spec, at=1)
    assert write["errno"] == 0, write
    assert made["errno"] == errno.EINVAL, made
    assert read["data"] == ""


@pytest.mark.profiles(*IPC_FORMS)
def test_an_ipc_call_that_creates_nothing_keeps_the_id(ids, id_profile):
    """A get without IPC_CREAT on a missing key (ENOENT) keeps the pending id for the next creation."""
    spec = ids.chain(1)
    ids.start(spec)
    want = ids.free_id(spec, 1)
    nr = SYSV[id_profile.objects][0]
    missing = syscall_step(nr, [0x5EED, 0, 0], at=1)
    lookup, read, made = ids.run([*id_profile.choose_steps(want, at=1), missing, id_profile.read_step(at=1),
                                  id_profile.create_step(at=1)], spec)[-3:]
    ids.remove(made, spec, at=1)
    assert lookup["errno"] == errno.ENOENT, lookup
    assert read["data"] == next_id_text([want]) + "\n"
    assert (made["errno"], made["ret"]) == (0, want), made


@pytest.mark.profiles("next_id_shm")
def test_a_shmget_refused_at_the_creation_consumes_the_id(ids, id_profile):
    """shmget with size 0 reaches the creation (newseg refuses it): EINVAL, and the id is used up."""
    spec = ids.chain(1)
    ids.start(spec)
    zero = syscall_step(SYSV["shm"][0], [IPC_PRIVATE, 0, IPC_CREAT | 0o600], at=1)
    made, read = ids.run([*id_profile.choose_steps(ids.free_id(spec, 1), at=1), zero, id_profile.read_step(at=1)],
                         spec)[-2:]
    assert made["errno"] == errno.EINVAL, made
    assert read["data"] == ""


@pytest.mark.profiles(*IPC_FORMS)
def test_next_id_wins_over_the_sysctl_and_leaves_it_set(ids, id_profile):
    spec = ids.chain(1)
    ids.start(spec)
    want = ids.free_id(spec, 1)
    sysctl = f"/proc/sys/kernel/{id_profile.objects}_next_id"
    results = ids.run([write_file_step(sysctl, str(want + 3), at=1), *id_profile.choose_steps(want, at=1),
                       id_profile.create_step(at=1), read_file_step(sysctl, at=1)], spec)
    set_sysctl, made, read = results[0], results[-2], results[-1]
    ids.remove(made, spec, at=1)
    assert set_sysctl["errno"] == 0, set_sysctl
    assert (made["errno"], made["ret"]) == (0, want), made
    assert int(read["data"]) == want + 3


@pytest.mark.profiles(*IPC_FORMS)
@pytest.mark.parametrize("first", ["process", "ipc_object"])
def test_whichever_object_comes_first_takes_the_id(ids, id_profile, first):
    """One pending id is taken by the thread's next process or its next SysV object, whichever comes first;
    the other then gets an id of its own (NOTES.md next_id SysV IPC)."""
    spec = ids.chain(1)
    ids.start(spec)
    level = chain_levels(ids.target, spec)[0][1]
    # a pid the fresh namespace's cursor is far from, and an index below every *mni limit of a fresh IPC ns
    want = next(p for p in range(3000, 4096) if level.is_free(p))
    fork = syscall_step(SYS_CLONE, [signal.SIGCHLD, 0, 0, 0, 0, 0], at=1, clone=True)
    order = [fork, id_profile.create_step(at=1)] if first == "process" else [id_profile.create_step(at=1), fork]
    one, other = ids.run([*id_profile.choose_steps(want, at=1), *order], spec)[-2:]
    process, made = (one, other) if first == "process" else (other, one)
    ids.remove(made, spec, at=1)
    assert process["errno"] == 0 and made["errno"] == 0, (process, made)
    pid = process["child"]["nspid"][-1]
    took, then = (pid, made["ret"]) if first == "process" else (made["ret"], pid)
    assert took == want, f"the {first.replace('_', ' ')} came first and must get {want}: {one}"
    assert then != want, f"the id is used once, yet the second creation got it too: {other}"
