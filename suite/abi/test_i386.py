"""The same struct through the i386 table gives the same result (seed 003 and NOTES.md: every struct of the family
is identical on i386 and x86_64; the reference wires eclone 451, clone_with_pids 452 and clone2 453 in both
tables, and has CONFIG_IA32_EMULATION). Each test makes one call through `syscall` and the same call through
`int 0x80` (`"abi": "i386"`, Profile.i386_step: the struct bytes and every pointer moved below 4 GiB, where
i386 registers and clone2's u32 fields reach) in one program, and asserts both results against the spec
table: errno, pids, stored tids. A kernel without IA32 emulation skips with the reason."""

from __future__ import annotations

import errno
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pytest

from harness.pidspace import pick_free
from harness.profiles import Profile, SpawnRequest
from harness.profiles.base import ARGS_ADDR
from harness.programs import ARENA32, chain, occupy_step, program

from ..spec import WITH_SIZE_ARGUMENT, profiles_where, spec_of
from .helpers import CHEAP, CLONE_PARENT_SETTID, spawn, too_many

if TYPE_CHECKING:
    from harness.targets.base import Target

SPEC = chain(1)
LOW_UNMAPPED = 0x10  # below mmap_min_addr: unreadable for both ABIs
TID_WORD = ARENA32 + 0x1800  # a tid address both ABIs can carry (clone2's tid fields are 32-bit)
VECTOR_IN_A_REGISTER = profiles_where(lambda s: s.pids_reg is not None)
WITH_RESERVED_FIELDS = profiles_where(lambda s: bool(s.reserved))
HIGH_FLAGS_REJECTED = profiles_where(lambda s: s.high_flags == "einval")


def both_abis(target: Target, profile: Profile, step: dict, setup: Sequence[dict] = ()) -> tuple[dict, dict]:
    """The step through syscall, then through int 0x80, in one program at level 1 (after `setup`)."""
    if profile.nr_i386 is None:
        pytest.skip(f"{profile.name} is not wired in the i386 table")
    res = target.run(program([*setup, step, profile.i386_step(step)], SPEC))["steps"]
    x86_64, i386 = res[len(setup):]
    if i386.get("ia32") is False:
        pytest.skip("this kernel has no IA32 emulation (int 0x80 raised SIGSEGV): CONFIG_IA32_EMULATION")
    return x86_64, i386


def assert_both(results: tuple[dict, dict], want: int) -> None:
    for abi, res in zip(("x86_64", "i386"), results, strict=True):
        assert res["errno"] == want, f"{abi}: {res}"
        assert (res["ret"] > 0) == (want == 0), f"{abi}: {res}"


def test_i386_plain_call_creates_a_child(target, profile: Profile):
    results = both_abis(target, profile, spawn(profile, SpawnRequest(at=1)))
    assert_both(results, 0)
    assert [len(r["child"]["nspid"]) for r in results] == [2, 2]


def test_i386_chosen_pids_are_the_childs_pids(target, profile: Profile):
    pids = pick_free(target, [0, 1], SPEC)
    results = both_abis(target, profile, spawn(profile, SpawnRequest(at=1, pids=tuple(pids))))
    assert_both(results, 0)
    assert [r["child"]["nspid"] for r in results] == [pids, pids]


def test_i386_busy_pid_gives_the_profiles_errno(target, profile: Profile):
    pids = pick_free(target, [0, 1], SPEC)
    results = both_abis(target, profile, spawn(profile, SpawnRequest(at=1, pids=tuple(pids), child="exit")),
                        setup=[occupy_step(pids[1], at=1)])
    assert_both(results, spec_of(profile.name).busy_errno)


@pytest.mark.parametrize("count", ["2^31", "level + 2"])
def test_i386_count_too_large_is_einval(target, profile: Profile, count: str):
    if count == "2^31":
        extra = {spec_of(profile.name).fields["count"]: 0x80000000}
        req = SpawnRequest(at=1, pids=(0, 0), child="exit", extra=extra)
    else:
        req = SpawnRequest(at=1, pids=tuple(range(5001, 5001 + too_many(target, 1))), child="exit")
    assert_both(both_abis(target, profile, spawn(profile, req)), errno.EINVAL)


def test_i386_parent_tid_is_stored_at_the_same_address(target, profile: Profile):
    field = spec_of(profile.name).fields["parent_tid"]
    pids = pick_free(target, [0, 1], SPEC)
    step = spawn(profile, SpawnRequest(at=1, pids=tuple(pids), flags=CHEAP | CLONE_PARENT_SETTID, child="exit",
                                       extra={field: TID_WORD}))
    step["read"] = [[TID_WORD, 4]]
    results = both_abis(target, profile, step)
    assert_both(results, 0)
    for res in results:
        assert res["read"] == [res["ret"].to_bytes(4, "little").hex()], res


@pytest.mark.profiles(*VECTOR_IN_A_REGISTER)
def test_i386_unreadable_vector_is_efault(target, profile: Profile):
    step = spawn(profile, SpawnRequest(at=1, pids=(0, 0), child="exit"))
    step["regs"][spec_of(profile.name).pids_reg] = LOW_UNMAPPED
    assert_both(both_abis(target, profile, step), errno.EFAULT)


@pytest.mark.profiles(*WITH_RESERVED_FIELDS)
def test_i386_nonzero_reserved_byte_is_einval(target, profile: Profile):
    step = spawn(profile, SpawnRequest(at=1, child="exit"))
    off, length = spec_of(profile.name).reserved[-1]
    step["write"].append([ARGS_ADDR + off + length - 1, "01"])
    assert_both(both_abis(target, profile, step), errno.EINVAL)


@pytest.mark.profiles(*WITH_SIZE_ARGUMENT)
def test_i386_struct_size_one_short_is_einval(target, profile: Profile):
    size = spec_of(profile.name).default_size
    short = 63 if size > 64 else size - 1  # clone3: one below VER0 (64)
    assert_both(both_abis(target, profile, spawn(profile, SpawnRequest(at=1, child="exit"), size=short)),
                errno.EINVAL)


@pytest.mark.profiles(*HIGH_FLAGS_REJECTED)
def test_i386_high_flag_bit_in_the_struct_is_einval(target, profile: Profile):
    step = spawn(profile, SpawnRequest(at=1, flags=CHEAP | 1 << 40, child="exit"))
    assert_both(both_abis(target, profile, step), errno.EINVAL)
