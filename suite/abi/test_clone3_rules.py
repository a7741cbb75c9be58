"""clone3's argument rules (NOTES.md "clone3 + set_tid", Linux 6.1 kernel/fork.c): every refusal is EINVAL and
creates nothing; where a refusal could come from a later check too, a control shows the rule itself decides."""

from __future__ import annotations

import errno

import pytest

from harness.profiles import Profile, SpawnRequest
from harness.profiles.base import ARGS_ADDR, PIDS_ADDR
from harness.programs import chain, program, race_step

from .helpers import (
    CHEAP,
    CLONE_CLEAR_SIGHAND,
    CLONE_DETACHED,
    CLONE_FS,
    CLONE_INTO_CGROUP,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_PARENT,
    CLONE_SIGHAND,
    CLONE_THREAD,
    CLONE_VM,
    KERNEL_ADDR,
    SIGCHLD,
    THREAD,
    check_rejections,
    deviations,
    free_pids,
    run1,
    run_checked,
    spawn,
    sweep,
)

pytestmark = pytest.mark.profiles("clone3")
INT_MAX = (1 << 31) - 1


def call(profile: Profile, flags: int = CHEAP, exit_signal: int = SIGCHLD, size: int | None = None,
         **fields: int) -> dict:
    """A clone3 call at level 1 with these flags, exit signal and raw fields."""
    return spawn(profile, SpawnRequest(at=1, flags=flags, exit_signal=exit_signal, child="exit", extra=fields), size)


def test_set_tid_size_above_max_pid_ns_level_is_einval(target, profile: Profile):
    """33 and more, up to 2^64 - 1, even with that many readable entries; nothing is read or created."""
    base = spawn(profile, SpawnRequest(at=1, pids=tuple(range(1000, 1033)), child="exit"))
    sizes = [33, 34, 64, 1 << 31, 1 << 32, 1 << 63, (1 << 64) - 1]
    (res,), ev, _ = run_checked(target, [sweep(base, {"word_at": ARGS_ADDR + 72, "size": 8}, sizes)])
    report = deviations(sizes, res["results"], lambda s: errno.EINVAL, fmt=hex)
    assert not report, report
    ev.assert_nothing_created()


def test_set_tid_pointer_and_size_must_agree(target, profile: Profile):
    check_rejections(target, [
        ("NULL set_tid with set_tid_size 1", call(profile, set_tid=0, set_tid_size=1), errno.EINVAL),
        ("set_tid with set_tid_size 0", call(profile, set_tid=PIDS_ADDR, set_tid_size=0), errno.EINVAL),
    ])


def test_set_tid_entry_zero_is_einval(target, profile: Profile):
    check_rejections(target, [("set_tid {0}", spawn(profile, SpawnRequest(at=1, pids=(0,))), errno.EINVAL)])


def test_exit_signal_with_high_bits_or_beyond_sigrtmax_is_einval(target, profile: Profile):
    signals = [65, 0x80, 0xFF, 0x100, 0x100000011, (1 << 32) | SIGCHLD, (1 << 63) | SIGCHLD, (1 << 64) - 1]
    (res,), ev, _ = run_checked(target, [sweep(call(profile), {"word_at": ARGS_ADDR + 32, "size": 8}, signals)])
    report = deviations(signals, res["results"], lambda s: errno.EINVAL, fmt=hex)
    assert not report, report
    ev.assert_nothing_created()


def test_into_cgroup_needs_a_ver2_struct_and_a_cgroup_fd_up_to_int_max(target, profile: Profile):
    flags = CHEAP | CLONE_INTO_CGROUP
    check_rejections(target, [
        ("size 64", call(profile, flags, size=64), errno.EINVAL),
        ("size 80", call(profile, flags, size=80), errno.EINVAL),
        ("size 87", call(profile, flags, size=87), errno.EINVAL),
        ("cgroup INT_MAX + 1", call(profile, flags, cgroup=INT_MAX + 1), errno.EINVAL),
        ("cgroup 2^32", call(profile, flags, cgroup=1 << 32), errno.EINVAL),
        ("cgroup 2^64 - 1", call(profile, flags, cgroup=(1 << 64) - 1), errno.EINVAL),
    ])


def test_every_unknown_flag_bit_alone_is_einval(target, profile: Profile):
    """Bits 34..63 (above CLONE_INTO_CGROUP) are not flags."""
    bits = [1 << k for k in range(34, 64)]
    (res,), ev, _ = run_checked(target, [sweep(call(profile, flags=0), {"word_at": ARGS_ADDR, "size": 8}, bits)])
    report = deviations(bits, res["results"], lambda b: errno.EINVAL, fmt=lambda b: f"bit {b.bit_length() - 1}")
    assert not report, report
    ev.assert_nothing_created()


def test_clone_detached_and_csignal_bits_in_flags_are_einval(target, profile: Profile):
    """clone3 keeps CLONE_DETACHED and the CSIGNAL byte (but CLONE_NEWTIME, 0x80) for later use."""
    cases = [("CLONE_DETACHED", call(profile, CHEAP | CLONE_DETACHED), errno.EINVAL)]
    cases += [(f"flags bit {k}", call(profile, CHEAP | 1 << k), errno.EINVAL) for k in range(7)]
    check_rejections(target, cases)


def test_sighand_with_clear_sighand_is_einval(target, profile: Profile):
    """Each flag alone is fine (the controls); together they contradict each other."""
    both = call(profile, CHEAP | CLONE_SIGHAND | CLONE_CLEAR_SIGHAND)
    controls = [call(profile, CHEAP | CLONE_SIGHAND), call(profile, CHEAP | CLONE_CLEAR_SIGHAND)]
    (res,), ev, ctl = run_checked(target, [both], after=controls)
    assert (res["ret"], res["errno"]) == (-1, errno.EINVAL), res
    ev.assert_nothing_created()
    assert [(c["errno"], c["child_exit"]) for c in ctl] == [(0, 0), (0, 0)], ctl


def test_thread_with_an_exit_signal_is_einval(target, profile: Profile):
    """clone(2) ignores a thread's exit signal; clone3 refuses it. Control: the same thread with signal 0."""
    thread = CLONE_THREAD | CLONE_SIGHAND | CLONE_VM
    (res,), ev, (ctl,) = run_checked(target, [call(profile, thread, SIGCHLD)], after=[call(profile, thread, 0)])
    assert (res["ret"], res["errno"]) == (-1, errno.EINVAL), res
    ev.assert_nothing_created()
    assert ctl["errno"] == 0 and ctl["ret"] > 0, f"a thread with exit signal 0 must be created: {ctl}"


def test_parent_with_an_exit_signal_is_einval(target, profile: Profile):
    """Run by a racer (not a namespace's init, for which CLONE_PARENT is refused anyway)."""
    spec = chain(1)
    bad = race_step([call(profile, CHEAP | CLONE_PARENT, SIGCHLD)])
    good = race_step([call(profile, CHEAP | CLONE_PARENT, 0)])
    res = target.run(program([bad, good], spec))["steps"]
    (refused,), (control,) = (r["racers"] for r in res)
    assert (refused["ret"], refused["errno"]) == (-1, errno.EINVAL), refused
    assert control["errno"] == 0 and control["ret"] > 0, f"CLONE_PARENT with signal 0 must work: {control}"


def test_stack_and_stack_size_must_come_together_inside_user_space(target, profile: Profile):
    check_rejections(target, [
        ("stack without stack_size", call(profile, stack=ARGS_ADDR + 0x4000), errno.EINVAL),
        ("stack_size without stack", call(profile, stack_size=0x1000), errno.EINVAL),
        ("stack in kernel space", call(profile, stack=KERNEL_ADDR, stack_size=0x1000), errno.EINVAL),
        ("stack end past user space", call(profile, stack=(1 << 47) - 0x1000, stack_size=0x2000), errno.EINVAL),
    ])


def test_a_busy_set_tid_is_eexist_and_a_free_one_is_given(target, profile: Profile):
    """The level's init (pid 1) is busy; a free pid is taken as asked (the flip side of the rules above)."""
    (pid,) = free_pids(target, 1, chain(1))
    busy = run1(target, spawn(profile, SpawnRequest(at=1, pids=(1,))), chain(1))
    free = run1(target, spawn(profile, SpawnRequest(at=1, pids=(pid,))), chain(1))
    assert (busy["ret"], busy["errno"]) == (-1, errno.EEXIST), busy
    assert (free["errno"], free["ret"]) == (0, pid), free


# Flags and exit signal that pass clone3's own checks and fail copy_process()'s. Not CLONE_PIDFD|CLONE_THREAD:
# Linux 6.9 made that valid (a thread pidfd), so it is a version difference, not a rule.
COPY_PROCESS_REFUSES = {
    "SIGHAND without VM": (CLONE_SIGHAND, SIGCHLD),
    "THREAD without SIGHAND": (CLONE_THREAD | CLONE_VM, 0),
    "NEWNS|FS": (CLONE_NEWNS | CLONE_FS, SIGCHLD),
    "NEWUSER|FS": (CLONE_NEWUSER | CLONE_FS, SIGCHLD),
    "THREAD|NEWPID": (THREAD | CLONE_NEWPID, 0),
    "PARENT from an init": (CLONE_PARENT | CLONE_VM, 0),
}


def test_flag_combinations_copy_process_refuses_are_einval_with_or_without_set_tid(target, profile: Profile):
    """clone(2)'s flag rules hold for clone3 too: copy_process() refuses these before any pid is allocated,
    so a valid set_tid changes nothing (the level's init may not use CLONE_PARENT either)."""
    (pid,) = free_pids(target, 1, chain(1))
    cases = []
    for name, (flags, signal) in COPY_PROCESS_REFUSES.items():
        cases.append((name, call(profile, flags, signal), errno.EINVAL))
        with_tid = spawn(profile, SpawnRequest(at=1, pids=(pid,), flags=flags, exit_signal=signal, child="exit"))
        cases.append((f"{name}, set_tid {{{pid}}}", with_tid, errno.EINVAL))
    check_rejections(target, cases)
