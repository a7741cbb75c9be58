"""eclone's own argument rules (NOTES.md "eclone as the seeds define it" and "Details ... settled"): the flags
are exactly clone(2)'s, so clone3-only refusals do not apply; stack size must be 0; nr_pids is a u32 bounded
by the caller's level; 0 entries let the kernel choose; RESERVED_PIDS applies once a namespace passed 300."""

from __future__ import annotations

import errno

import pytest

from harness.pidspace import pick_free
from harness.profiles import Profile, SpawnRequest
from harness.profiles.base import ARGS_ADDR
from harness.programs import UNMAPPED, chain, program, read_file_step, write_file_step

from ..kernel_probes import clone_accepts_pidfd_thread
from .helpers import (
    CHEAP,
    CLONE_DETACHED,
    CLONE_FS,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_PARENT,
    CLONE_PARENT_SETTID,
    CLONE_PIDFD,
    CLONE_SIGHAND,
    CLONE_THREAD,
    CLONE_VM,
    SIGCHLD,
    THREAD,
    check_rejections,
    deviations,
    free_pids,
    run1,
    run_checked,
    spawn,
    stat_exit_signal,
    sweep,
    too_many,
)

pytestmark = pytest.mark.profiles("eclone")


def call(profile: Profile, flags: int = CHEAP, exit_signal: int = SIGCHLD, **fields: int) -> dict:
    """An eclone call at level 1 (nr_pids 0) with these low flags, exit signal and raw fields."""
    return spawn(profile, SpawnRequest(at=1, flags=flags, exit_signal=exit_signal, child="exit", extra=fields))


BAD_FLAGS = {
    "SIGHAND without VM": CLONE_SIGHAND,
    "THREAD without SIGHAND": CLONE_THREAD | CLONE_VM,
    "NEWNS|FS": CLONE_NEWNS | CLONE_FS,
    "NEWUSER|FS": CLONE_NEWUSER | CLONE_FS,
    "PIDFD|DETACHED": CLONE_PIDFD | CLONE_DETACHED,
    "PIDFD|PARENT_SETTID": CLONE_PIDFD | CLONE_PARENT_SETTID,
    "THREAD|NEWPID": THREAD | CLONE_NEWPID,
    "PARENT from an init": CLONE_PARENT | CLONE_VM,
}


def test_flag_combinations_clone_refuses_are_einval_even_with_unreadable_pids(target, profile: Profile):
    """The checks of copy_process() and clone(2)'s CLONE_PIDFD|CLONE_PARENT_SETTID, made by the level's init
    (which may not use CLONE_PARENT either), come before the pid vector is read: EINVAL, never EFAULT."""
    cases = []
    for name, flags in BAD_FLAGS.items():
        cases.append((f"{name}", call(profile, flags), errno.EINVAL))
        unreadable = spawn(profile, SpawnRequest(at=1, pids=(0,), flags=flags, child="exit"))
        unreadable["regs"][3] = UNMAPPED
        cases.append((f"{name}, unreadable pids", unreadable, errno.EINVAL))
    check_rejections(target, cases)


def test_pidfd_with_thread_is_decided_as_clone_2_decides_it_on_this_kernel(target, profile: Profile):
    """V-PIDFD-THREAD: eclone's flags are exactly clone(2)'s (NOTES.md), and clone(2) accepts
    CLONE_PIDFD|CLONE_THREAD since 6.9 (EINVAL before): probed on this kernel's clone(2), not assumed."""
    res = run1(target, call(profile, CLONE_PIDFD | THREAD, 0, parent_tid_ptr=ARGS_ADDR + 0x1000), chain(1))
    if clone_accepts_pidfd_thread(target):
        assert res["errno"] == 0 and res["ret"] > 0, f"clone(2) takes CLONE_PIDFD|CLONE_THREAD here: {res}"
    else:
        assert (res["errno"], res["ret"]) == (errno.EINVAL, -1), f"clone(2) refuses CLONE_PIDFD|CLONE_THREAD: {res}"


@pytest.mark.parametrize("flags, exit_signal", [(CHEAP | CLONE_DETACHED, SIGCHLD), (CHEAP, 65), (CHEAP, 0x80),
                                                 (CHEAP, 0xFF), (THREAD, SIGCHLD)],
                         ids=["CLONE_DETACHED", "signal-65", "signal-128", "signal-255", "thread-with-signal"])
def test_what_only_clone3_refuses_is_accepted(target, profile: Profile, flags: int, exit_signal: int):
    """CLONE_DETACHED alone, an exit signal above 64, a thread with an exit signal: fine for clone(2)."""
    res = run1(target, call(profile, flags, exit_signal), chain(1))
    assert res["errno"] == 0 and res["ret"] > 0, res


def test_exit_signal_above_64_is_kept_as_the_childs_exit_signal(target, profile: Profile):
    (pid,) = free_pids(target, 1)
    step = spawn(profile, SpawnRequest(pids=(pid,), exit_signal=65, child="hold"))
    spawned, stat = target.run(program([step, read_file_step(f"/proc/{pid}/stat")]))["steps"]
    assert (spawned["errno"], spawned["ret"]) == (0, pid), spawned
    assert stat_exit_signal(stat["data"]) == 65


def test_nonzero_child_stack_size_is_einval_on_x86(target, profile: Profile):
    sizes = [1, 8, 4096, 1 << 32, 1 << 63, (1 << 64) - 1]
    base = call(profile, child_stack_base=ARGS_ADDR + 0x8000)
    (res,), ev, _ = run_checked(target, [sweep(base, {"word_at": ARGS_ADDR + 16, "size": 8}, sizes)])
    report = deviations(sizes, res["results"], lambda s: errno.EINVAL, fmt=hex)
    assert not report, report
    ev.assert_nothing_created()


def test_zero_nr_pids_is_a_plain_clone_and_ignores_the_pids_pointer(target, profile: Profile):
    step = spawn(profile)
    step["regs"][3] = UNMAPPED  # pids: never read when nr_pids is 0
    res = run1(target, step)
    assert res["errno"] == 0 and res["ret"] > 0
    assert res["child"]["nspid"] == [res["ret"]]


def test_nr_pids_above_level_plus_one_is_einval_including_2_to_the_31_and_up(target, profile: Profile):
    """At level 1 up to 2 pids; nr_pids is a u32, so 0x80000000.. are huge, not negative."""
    first = too_many(target, 1)
    counts = [first, first + 1, 34, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF]
    base = spawn(profile, SpawnRequest(at=1, pids=(0, 0), child="exit"))
    (res,), ev, _ = run_checked(target, [sweep(base, {"word_at": ARGS_ADDR + 40, "size": 4}, counts)])
    report = deviations(counts, res["results"], lambda n: errno.EINVAL, fmt=hex)
    assert not report, report
    ev.assert_nothing_created()


def test_zero_entries_need_no_privilege(target, profile: Profile):
    """Only nonzero entries are checked against CAP_SYS_ADMIN: a level without it may pass zeros."""
    spec = chain(1, caps={1: []})
    res = run1(target, spawn(profile, SpawnRequest(at=1, pids=(0, 0))), spec)
    assert res["errno"] == 0 and res["ret"] > 0, res
    assert res["child"]["nspid"][1] == res["ret"]


def test_nr_pids_of_2_to_the_31_at_level_0_is_einval(target, profile: Profile):
    res = run1(target, spawn(profile, SpawnRequest(pids=(0,), extra={"nr_pids": 0x80000000})))
    assert (res["errno"], res["child"]) == (errno.EINVAL, None)


def test_zero_entry_lets_the_kernel_pick_at_that_level(target, profile: Profile):
    spec = chain(1)
    (inner,) = pick_free(target, [1], spec)
    res = run1(target, spawn(profile, SpawnRequest(at=1, pids=(0, inner))), spec)
    assert res["errno"] == 0, res
    outer_got, inner_got = res["child"]["nspid"]
    assert inner_got == inner and outer_got > 0


def test_pid_below_300_is_einval_once_the_namespace_allocated_past_300(target, profile: Profile):
    used = pick_free(target, 1)  # a free pid > 300 to push the cursor past RESERVED_PIDS
    push = write_file_step("/proc/sys/kernel/ns_last_pid", str(used[0]))
    res = run1(target, spawn(profile, SpawnRequest(pids=(150,))), before=[push])
    assert (res["errno"], res["child"]) == (errno.EINVAL, None)


def test_pid_below_300_is_allowed_in_a_namespace_still_below_300(target, profile: Profile):
    spec = chain(1)
    (outer,) = pick_free(target, [0], spec)
    res = target.run(program([spawn(profile, SpawnRequest(at=1, pids=(outer, 150)))], spec, fresh_chain=True))
    step = res["steps"][-1]
    assert step["errno"] == 0, step
    assert step["child"]["nspid"] == [outer, 150]
