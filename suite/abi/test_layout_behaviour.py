"""The kernel reads each field at its offset: every pointer, count, signal and stack field has a visible effect
exactly where the spec puts it (and the never-defined eclone high flags are refused bit by bit)."""

from __future__ import annotations

import errno
import signal

import pytest

from harness.profiles import Profile, SpawnRequest
from harness.profiles.base import ARGS_ADDR, SCRATCH_ADDR
from harness.programs import ARENA, SP_SLOT, chain, program, read_file_step

from ..spec import WIDE_TID_ADDRESSES, spec_of
from .helpers import (
    CHEAP,
    CLONE_CHILD_SETTID,
    CLONE_PARENT_SETTID,
    CLONE_PIDFD,
    SIGWINCH,
    free_pids,
    run1,
    run_checked,
    spawn,
    stat_exit_signal,
    sweep,
    u32_at,
)

PARENT_TID = SCRATCH_ADDR + 0x10
CHILD_TID = SCRATCH_ADDR + 0x20
WINDOW = (SCRATCH_ADDR, 0x40)  # both tid words and the bytes around them


def tid_words(profile: Profile, flags: int, child: str = "exit") -> dict:
    """A call with distinct parent and child tid pointers, reading back the window around both."""
    names = spec_of(profile.name).fields
    step = spawn(profile, SpawnRequest(flags=flags, child=child,
                                       extra={names["parent_tid"]: PARENT_TID, names["child_tid"]: CHILD_TID}))
    step["read"] = [list(WINDOW)]
    return step


def window_with(tids: dict[int, int]) -> str:
    """The expected window: zero but for the given tid words."""
    buf = bytearray(WINDOW[1])
    for addr, tid in tids.items():
        buf[addr - WINDOW[0]:addr - WINDOW[0] + 4] = tid.to_bytes(4, "little")
    return buf.hex()


@pytest.mark.profiles(*WIDE_TID_ADDRESSES)  # the window is above 4 GiB: clone2 has its own tests
def test_child_settid_writes_the_tid_at_child_tid_ptr_only(target, profile: Profile):
    """With CLONE_VM the child's memory is ours; CLONE_VFORK makes us resume only after the child exited."""
    res = run1(target, tid_words(profile, CHEAP | CLONE_CHILD_SETTID))
    assert res["errno"] == 0 and res["ret"] > 0, res
    assert res["read"][0] == window_with({CHILD_TID: res["ret"]})


@pytest.mark.profiles(*WIDE_TID_ADDRESSES)
def test_child_settid_writes_into_the_childs_memory_not_the_callers(target, profile: Profile):
    res = run1(target, tid_words(profile, CLONE_CHILD_SETTID))
    assert res["errno"] == 0 and res["ret"] > 0, res
    assert res["read"][0] == window_with({}), "a fork-like child's tid word went into the caller's memory"


@pytest.mark.profiles(*WIDE_TID_ADDRESSES)
def test_parent_settid_writes_the_tid_at_parent_tid_ptr_only(target, profile: Profile):
    res = run1(target, tid_words(profile, CLONE_PARENT_SETTID))
    assert res["errno"] == 0 and res["ret"] > 0, res
    assert res["read"][0] == window_with({PARENT_TID: res["ret"]})


@pytest.mark.profiles(*WIDE_TID_ADDRESSES)
def test_both_settid_flags_fill_both_words(target, profile: Profile):
    res = run1(target, tid_words(profile, CHEAP | CLONE_PARENT_SETTID | CLONE_CHILD_SETTID))
    assert res["errno"] == 0 and res["ret"] > 0, res
    assert res["read"][0] == window_with({PARENT_TID: res["ret"], CHILD_TID: res["ret"]})


@pytest.mark.profiles(*WIDE_TID_ADDRESSES)
def test_pidfd_lands_in_the_pidfd_field(target, profile: Profile):
    """clone3: the pidfd field (offset 8); the others: parent_tid, as clone(2) returns it through parent_tid.
    The fd is the caller's (a level-1 worker's); /proc/self/fdinfo names the child it refers to."""
    field = spec_of(profile.name).fields["pidfd"]
    spec = chain(1)
    step = spawn(profile, SpawnRequest(at=1, flags=CLONE_PIDFD, child="hold", extra={field: PARENT_TID}))
    step["read"] = [list(WINDOW)]
    fdinfo = [read_file_step(f"/proc/self/fdinfo/{fd}", at=1) for fd in range(64)]
    spawned, *infos = target.run(program([step, *fdinfo], spec))["steps"]
    assert spawned["errno"] == 0 and spawned["ret"] > 0, spawned
    fd = u32_at(spawned["read"][0], PARENT_TID - WINDOW[0])
    assert spawned["read"][0] == window_with({PARENT_TID: fd}), "the pidfd must be the only word written"
    assert fd < len(infos) and f"Pid:\t{spawned['child']['nspid'][0]}\n" in infos[fd].get("data", ""), \
        f"fd {fd} is not a pidfd of the child: {infos[fd] if fd < len(infos) else None}"


@pytest.mark.parametrize("count", [1, 2, 3])
def test_count_field_says_how_many_pids_are_read(target, profile: Profile, count: int):
    """Three pids in memory, the count field says `count`: only that many are used (eclone: pids[0..count)
    outermost first, ending at the caller's level; clone_with_pids/clone2: pids[0..count) from level 0;
    clone3: set_tid[0..count) innermost first)."""
    spec = chain(2)
    a, b, c = free_pids(target, 3, spec)
    interface = spec_of(profile.name)
    step = spawn(profile, SpawnRequest(at=2, pids=(a, b, c), extra={interface.fields["count"]: count}))
    res = run1(target, step, spec)
    assert res["errno"] == 0, res
    nspid = res["child"]["nspid"]
    if interface.anchor == "caller":  # memory [a, b, c]; the first `count` go to levels 3-count .. 2
        want = {3 - count + i: pid for i, pid in enumerate((a, b, c)[:count])}
    elif interface.anchor == "root":  # memory [a, b, c]; the first `count` go to levels 0 .. count-1
        want = dict(enumerate((a, b, c)[:count]))
    else:  # set_tid memory [c, b, a]; entry i goes to level 2 - i
        want = {2 - i: pid for i, pid in enumerate((c, b, a)[:count])}
    assert {level: nspid[level] for level in want} == want, f"NSpid {nspid}"
    unread = {a, b, c} - set(want.values())
    assert not unread & set(nspid), f"a pid beyond the count was used: NSpid {nspid}"


@pytest.mark.parametrize("exit_signal", [0, SIGWINCH, signal.SIGCHLD])
def test_exit_signal_field_becomes_the_childs_exit_signal(target, profile: Profile, exit_signal: int):
    """eclone: the low byte of flags_low; clone3: exit_signal. /proc/<pid>/stat field 38 is task->exit_signal."""
    (pid,) = free_pids(target, 1)
    step = spawn(profile, SpawnRequest(pids=(pid,), exit_signal=exit_signal, child="hold"))
    res = target.run(program([step, read_file_step(f"/proc/{pid}/stat")]))
    spawned, stat = res["steps"]
    assert (spawned["errno"], spawned["ret"]) == (0, pid), spawned
    assert stat_exit_signal(stat["data"]) == exit_signal


def stack_fields(profile: Profile, top: int) -> dict[str, int]:
    """eclone: child_stack_base is the stack pointer; clone_with_pids, clone2: child_stack; clone3: stack +
    stack_size is."""
    return spec_of(profile.name).stack(top)


def test_stack_fields_give_the_childs_stack_pointer(target, profile: Profile):
    top = ARENA + 0x8000
    step = spawn(profile, SpawnRequest(flags=CHEAP, child="sp", extra=stack_fields(profile, top)))
    step["read"] = [[SP_SLOT, 8]]
    res = run1(target, step)
    assert (res["errno"], res["child_exit"]) == (0, 0), res
    assert int.from_bytes(bytes.fromhex(res["read"][0]), "little") == top


def test_no_stack_means_the_child_runs_on_the_callers_stack_pointer(target, profile: Profile):
    step = spawn(profile, SpawnRequest(flags=CHEAP, child="sp"))
    step["read"] = [[SP_SLOT, 8]]
    res = run1(target, step)
    assert (res["errno"], res["child_exit"]) == (0, 0), res
    sp = int.from_bytes(bytes.fromhex(res["read"][0]), "little")
    assert 0 < sp < 1 << 47 and not ARENA <= sp < ARENA + 0x10000, hex(sp)


@pytest.mark.profiles("eclone")
def test_every_bit_of_clone_flags_high_alone_is_einval(target, profile: Profile):
    """No high flags are defined: each of the 64 bits alone is refused, and nothing is created."""
    bits = [1 << k for k in range(64)]
    step = sweep(spawn(profile, SpawnRequest(at=1, flags=CHEAP, child="exit")), {"word_at": ARGS_ADDR, "size": 8},
                 bits)
    (res,), ev, _ = run_checked(target, [step])
    bad = [f"bit {k}: {r}" for k, r in enumerate(res["results"]) if r[:2] != [-1, errno.EINVAL]]
    assert not bad, "; ".join(bad)
    ev.assert_nothing_created()
