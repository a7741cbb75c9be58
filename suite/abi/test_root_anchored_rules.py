"""clone_with_pids' and clone2's own rules (NOTES.md "clone_with_pids (v6, seed 001) and clone2 (v7, seed 002)"):
high flag bits (clone2: EINVAL; clone_with_pids: ignored, as clone(2) ignores them), the count (u32, > active
level + 1 -> EINVAL, 2^31 and up too, before the entries are read and before privilege), no RESERVED_PIDS rule,
and clone2's 32-bit tid addresses."""

from __future__ import annotations

import errno

import pytest

from harness.pidspace import pick_free, used_pids
from harness.profiles import Profile, SpawnRequest
from harness.profiles.base import ARGS_ADDR, PIDS_ADDR
from harness.programs import ARENA, UNMAPPED, chain, program, read_file_step, write_file_step

from ..spec import ROOT_ANCHORED, spec_of
from .helpers import (
    CHEAP,
    CLONE_PARENT_SETTID,
    CLONE_PIDFD,
    CLONE_SIGHAND,
    check_rejections,
    deviations,
    run1,
    run_checked,
    spawn,
    sweep,
    too_many,
)

pytestmark = pytest.mark.profiles(*ROOT_ANCHORED)

NO_CAPS = chain(1, caps={1: []})
COUNTS_ABOVE = (0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF)
NS_LAST_PID = "/proc/sys/kernel/ns_last_pid"


def count_word(profile: Profile) -> int:
    """Where the count lives: clone2's nr_pids in the struct, clone_with_pids' num_pids in the pid_set."""
    base = ARGS_ADDR if spec_of(profile.name).args_reg is not None else PIDS_ADDR
    return base + spec_of(profile.name).count_offset


def unreadable_vector(step: dict, profile: Profile) -> dict:
    step["regs"][spec_of(profile.name).pids_reg] = UNMAPPED
    return step


def test_count_above_level_plus_one_is_einval_including_2_to_the_31_and_up(target, profile: Profile):
    first = too_many(target, 1)
    counts = [first, first + 1, 34, *COUNTS_ABOVE]
    base = spawn(profile, SpawnRequest(at=1, pids=(0, 0), child="exit"))
    (res,), ev, _ = run_checked(target, [sweep(base, {"word_at": count_word(profile), "size": 4}, counts)])
    report = deviations(counts, res["results"], lambda n: errno.EINVAL, fmt=hex)
    assert not report, report
    ev.assert_nothing_created()


def test_count_2_to_the_31_at_level_0_is_einval(target, profile: Profile):
    step = spawn(profile, SpawnRequest(pids=(0,), extra={spec_of(profile.name).fields["count"]: 0x80000000}))
    res = run1(target, step)
    assert (res["errno"], res["child"]) == (errno.EINVAL, None)


@pytest.mark.profiles("clone_with_pids")
def test_clone_with_pids_count_and_flags_come_before_reading_the_pid_set(target, profile: Profile):
    """Bad flags with an unreadable pid_setp -> EINVAL; too large num_pids with entries unreadable -> EINVAL
    (the header is readable, the entries would straddle the guard page)."""
    guard = ARENA + 0x10000
    too_large = spawn(profile, SpawnRequest(at=1, pids=(), child="exit", extra={"pid_setp": guard - 4}))
    too_large["write"] = [[guard - 4, too_many(target, 1).to_bytes(4, "little").hex()]]  # entries in the guard
    entries_unreadable = spawn(profile, SpawnRequest(at=1, pids=(), child="exit", extra={"pid_setp": guard - 4}))
    entries_unreadable["write"] = [[guard - 4, (1).to_bytes(4, "little").hex()]]
    bad_flags = unreadable_vector(spawn(profile, SpawnRequest(at=1, pids=(0,), flags=CLONE_SIGHAND, child="exit")),
                                  profile)
    unreadable = unreadable_vector(spawn(profile, SpawnRequest(at=1, pids=(0,), child="exit")), profile)
    check_rejections(target, [("num_pids too large, entries unreadable", too_large, errno.EINVAL),
                              ("bad flags, pid_setp unreadable", bad_flags, errno.EINVAL),
                              ("pid_setp unreadable", unreadable, errno.EFAULT),
                              ("one entry, in the guard page", entries_unreadable, errno.EFAULT)])


@pytest.mark.profiles("clone2")
def test_clone2_count_and_flags_come_before_reading_the_pids(target, profile: Profile):
    too_large = unreadable_vector(spawn(profile, SpawnRequest(at=1, pids=(0,) * too_many(target, 1),
                                                              child="exit")), profile)
    bad_flags = unreadable_vector(spawn(profile, SpawnRequest(at=1, pids=(0,), flags=CLONE_SIGHAND, child="exit")),
                                  profile)
    high = unreadable_vector(spawn(profile, SpawnRequest(at=1, pids=(0,), flags=CHEAP | 1 << 40, child="exit")),
                             profile)
    check_rejections(target, [("nr_pids too large, pids unreadable", too_large, errno.EINVAL),
                              ("bad flags, pids unreadable", bad_flags, errno.EINVAL),
                              ("high flag, pids unreadable", high, errno.EINVAL)])


def test_count_comes_before_privilege(target, profile: Profile):
    many = tuple(range(5001, 5001 + too_many(target, 1)))
    check_rejections(target, [("too many pids, no capability", spawn(profile, SpawnRequest(at=1, pids=many,
                                                                                           child="exit")),
                                errno.EINVAL)], spec=NO_CAPS)


def test_zero_count_is_a_plain_clone_and_never_reads_the_vector(target, profile: Profile):
    step = spawn(profile, SpawnRequest(pids=(), child="report"))
    unreadable_vector(step, profile)
    if spec_of(profile.name).args_reg is None:  # clone_with_pids: num_pids 0 in a readable pid_set
        step["regs"][5] = PIDS_ADDR
    res = run1(target, step)
    assert res["errno"] == 0 and res["ret"] > 0, res
    assert res["child"]["nspid"] == [res["ret"]]


@pytest.mark.profiles("clone2")
def test_clone2_every_high_flag_bit_alone_is_einval(target, profile: Profile):
    bits = [1 << k for k in range(32)]  # bits 32..63 of the u64 flags
    step = sweep(spawn(profile, SpawnRequest(at=1, flags=CHEAP, child="exit")), {"word_at": ARGS_ADDR + 4, "size": 4},
                 bits)
    (res,), ev, _ = run_checked(target, [step])
    bad = [f"bit {32 + k}: {r}" for k, r in enumerate(res["results"]) if r[:2] != [-1, errno.EINVAL]]
    assert not bad, "; ".join(bad)
    ev.assert_nothing_created()


@pytest.mark.profiles("clone_with_pids")
def test_clone_with_pids_ignores_flag_bits_32_to_63_as_clone_does(target, profile: Profile):
    bits = [1 << k for k in range(32, 64)]
    base = spawn(profile, SpawnRequest(at=1, flags=CHEAP, child="exit"))
    res = run1(target, sweep(base, {"reg": 0}, [b | CHEAP | 17 for b in bits]), chain(1))
    bad = [f"bit {32 + k}: {r}" for k, r in enumerate(res["results"]) if r[1] != 0 or r[0] <= 0]
    assert not bad, "; ".join(bad)


def _free_below_300(target, spec: dict | None, level: int) -> int:
    used = used_pids(target, spec).get(level, set())
    return next(pid for pid in range(299, 100, -1) if pid not in used)


def test_pid_below_300_is_allowed_after_the_namespace_allocated_past_300(target, profile: Profile):
    """No RESERVED_PIDS rule: ns_last_pid past 300, and a pid below 300 may still be chosen."""
    spec = chain(1)
    low = _free_below_300(target, spec, 1)
    (outer,) = pick_free(target, [0], spec)
    push = write_file_step(NS_LAST_PID, "2000", at=1)
    res = target.run(program([push, spawn(profile, SpawnRequest(at=1, pids=(outer, low)))], spec))["steps"][-1]
    assert res["errno"] == 0, res
    assert res["child"]["nspid"] == [outer, low]


def test_pid_below_300_at_level_0_after_the_cursor_passed_300(target, profile: Profile):
    low = _free_below_300(target, None, 0)
    res = run1(target, spawn(profile, SpawnRequest(pids=(low,))))
    assert (res["errno"], res["ret"]) == (0, low), res


LOW_PAGE = 0xC000_0000  # below 4 GiB (above 2 GiB: a sign-extended address would be a kernel one)
MMAP, MREMAP = 9, 25
PROT_RW, MAP_PRIVATE_ANON_FIXED_NOREPLACE = 3, 0x02 | 0x20 | 0x100000
MREMAP_MAYMOVE_FIXED = 3
PEEK = ARENA + 0x8000  # the low page is moved over this arena page to be read back


@pytest.mark.profiles("clone2")
def test_clone2_tid_addresses_below_4gib_get_the_tids(target, profile: Profile):
    """parent_tid and child_tid are 32-bit addresses: a page mapped below 4 GiB gets both words (CLONE_VM so
    the child's store lands in our memory); the page is then moved into the arena to be read."""
    from .helpers import CLONE_CHILD_SETTID
    mapping = {"op": "syscall", "nr": MMAP, "regs": [LOW_PAGE, 4096, PROT_RW, MAP_PRIVATE_ANON_FIXED_NOREPLACE,
                                                      (1 << 64) - 1, 0], "write": [], "clone": False}
    call = spawn(profile, SpawnRequest(flags=CHEAP | CLONE_PARENT_SETTID | CLONE_CHILD_SETTID, child="exit",
                                       extra={"parent_tid": LOW_PAGE + 0x10, "child_tid": LOW_PAGE + 0x20}))
    peek = {"op": "syscall", "nr": MREMAP, "regs": [LOW_PAGE, 4096, 4096, MREMAP_MAYMOVE_FIXED, PEEK, 0],
            "write": [], "read": [[PEEK, 0x40]], "clone": False}
    mapped, spawned, moved = target.run(program([mapping, call, peek]))["steps"]
    assert mapped["ret"] == LOW_PAGE, mapped
    assert spawned["errno"] == 0 and spawned["ret"] > 0, spawned
    assert moved["ret"] == PEEK, moved
    words = bytes.fromhex(moved["read"][0])
    tid = spawned["ret"].to_bytes(4, "little")
    assert (words[0x10:0x14], words[0x20:0x24]) == (tid, tid), words.hex()
    assert words[:0x10] == bytes(0x10) and words[0x14:0x20] == bytes(12) and words[0x24:] == bytes(0x1C)


@pytest.mark.profiles("clone2")
def test_clone2_tid_fields_hold_32_bits_so_an_arena_address_is_cut_to_its_low_half(target, profile: Profile):
    """The arena is above 4 GiB: its address does not fit the u32 fields; what the field holds is the low half
    (unmapped), so the store is lost (ignored, as clone(2) ignores it) and nothing lands in the arena."""
    from .helpers import CLONE_CHILD_SETTID
    target_word = ARENA + 0x100
    step = spawn(profile, SpawnRequest(flags=CHEAP | CLONE_PARENT_SETTID | CLONE_CHILD_SETTID, child="exit",
                                       extra={"parent_tid": target_word, "child_tid": target_word + 8}))
    step["read"] = [[ARENA + 0x100, 0x10]]
    res = run1(target, step)
    assert res["errno"] == 0 and res["ret"] > 0, res
    assert res["read"][0] == bytes(0x10).hex(), "a tid was stored at a 64-bit address clone2 cannot carry"


@pytest.mark.profiles("clone2")
def test_clone2_pidfd_goes_through_a_parent_tid_below_4gib(target, profile: Profile):
    """CLONE_PIDFD returns the pidfd through parent_tid (NOTES.md eclone settled, clone2 alike), a 32-bit address:
    a page mapped below 4 GiB gets the fd, and /proc/self/fdinfo says it refers to the held child. All at level 1
    (a worker), so the fd is the worker's."""
    mapping = {"op": "syscall", "at": 1, "nr": MMAP, "write": [], "clone": False,
               "regs": [LOW_PAGE, 4096, PROT_RW, MAP_PRIVATE_ANON_FIXED_NOREPLACE, (1 << 64) - 1, 0]}
    call = spawn(profile, SpawnRequest(at=1, flags=CLONE_PIDFD, child="hold", extra={"parent_tid": LOW_PAGE + 0x10}))
    peek = {"op": "syscall", "at": 1, "nr": MREMAP, "regs": [LOW_PAGE, 4096, 4096, MREMAP_MAYMOVE_FIXED, PEEK, 0],
            "write": [], "read": [[PEEK, 0x40]], "clone": False}
    fdinfo = [read_file_step(f"/proc/self/fdinfo/{fd}", at=1) for fd in range(64)]
    mapped, spawned, moved, *infos = target.run(program([mapping, call, peek, *fdinfo], chain(1)))["steps"]
    assert mapped["ret"] == LOW_PAGE, mapped
    assert spawned["errno"] == 0 and spawned["ret"] > 0, spawned
    assert moved["ret"] == PEEK, moved
    words = bytes.fromhex(moved["read"][0])
    fd = int.from_bytes(words[0x10:0x14], "little")
    assert words[:0x10] == bytes(0x10) and words[0x14:] == bytes(0x2C), f"only the pidfd is written: {words.hex()}"
    assert fd < len(infos) and f"Pid:\t{spawned['child']['nspid'][0]}\n" in infos[fd].get("data", ""), \
        f"fd {fd} is not a pidfd of the child: {infos[fd] if fd < len(infos) else None}"
