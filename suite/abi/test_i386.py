"""The same struct through the i386 table gives the same result (seed 003 and NOTES.md: every struct of the family
is identical on i386 and x86_64; the reference wires eclone 451, clone_with_pids 452 and clone2 453 in both
tables, and has CONFIG_IA32_EMULATION). Each case makes one call through `syscall` and the same call through
`int 0x80` (`"abi": "i386"`: the struct bytes and every pointer moved below 4 GiB, where i386 registers and
clone2's u32 fields reach), and asserts both results against the spec: errno, pids, stored tids.
A kernel without IA32 emulation skips with the reason."""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

import pytest

from harness.pidspace import pick_free
from harness.profiles import Profile, SpawnRequest
from harness.profiles.base import ARGS_ADDR
from harness.programs import ARENA32, chain, occupy_step, program

from ..spec import InterfaceSpec, spec_of
from .helpers import CHEAP, CLONE_PARENT_SETTID, spawn, too_many

SPEC = chain(1)
LOW_UNMAPPED = 0x10  # below mmap_min_addr: unreadable for both ABIs
TID_WORD = ARENA32 + 0x1800  # a tid address both ABIs can carry (clone2's tid fields are 32-bit)


def _case_plain(profile: Profile, target: Any, pids: list[int]) -> tuple[dict, int]:
    return spawn(profile, SpawnRequest(at=1)), 0


def _case_chosen(profile: Profile, target: Any, pids: list[int]) -> tuple[dict, int]:
    return spawn(profile, SpawnRequest(at=1, pids=tuple(pids))), 0


def _case_count_2_to_the_31(profile: Profile, target: Any, pids: list[int]) -> tuple[dict, int]:
    count = spec_of(profile.name).fields["count"]
    return spawn(profile, SpawnRequest(at=1, pids=(0, 0), child="exit", extra={count: 0x80000000})), errno.EINVAL


def _case_too_many(profile: Profile, target: Any, pids: list[int]) -> tuple[dict, int]:
    many = tuple(range(5001, 5001 + too_many(target, 1)))
    return spawn(profile, SpawnRequest(at=1, pids=many, child="exit")), errno.EINVAL


def _case_tid_stored(profile: Profile, target: Any, pids: list[int]) -> tuple[dict, int]:
    field = spec_of(profile.name).fields["parent_tid"]
    step = spawn(profile, SpawnRequest(at=1, pids=tuple(pids), flags=CHEAP | CLONE_PARENT_SETTID, child="exit",
                                       extra={field: TID_WORD}))
    step["read"] = [[TID_WORD, 4]]
    return step, 0


CASES: dict[str, Callable[[Profile, Any, list[int]], tuple[dict, int]]] = {
    "plain call": _case_plain,
    "chosen pids": _case_chosen,
    "count 2^31": _case_count_2_to_the_31,
    "count above level + 1": _case_too_many,
    "parent tid stored": _case_tid_stored,
}


def _only(pred: Callable[[InterfaceSpec], bool], why: str) -> Callable[[Profile], None]:
    def check(profile: Profile) -> None:
        if not pred(spec_of(profile.name)):
            pytest.skip(f"{profile.name}: {why}")
    return check


def _case_unreadable_vector(profile: Profile, target: Any, pids: list[int]) -> tuple[dict, int]:
    _only(lambda s: s.pids_reg is not None, "its vector pointer is a struct field")(profile)
    step = spawn(profile, SpawnRequest(at=1, pids=tuple(pids), child="exit"))
    step["regs"][spec_of(profile.name).pids_reg] = LOW_UNMAPPED
    return step, errno.EFAULT


def _case_reserved(profile: Profile, target: Any, pids: list[int]) -> tuple[dict, int]:
    _only(lambda s: bool(s.reserved), "no reserved field")(profile)
    step = spawn(profile, SpawnRequest(at=1, child="exit"))
    off, length = spec_of(profile.name).reserved[-1]
    step["write"].append([ARGS_ADDR + off + length - 1, "01"])
    return step, errno.EINVAL


def _case_size_minus_one(profile: Profile, target: Any, pids: list[int]) -> tuple[dict, int]:
    _only(lambda s: s.size_reg is not None, "no size argument")(profile)
    size = spec_of(profile.name).default_size
    small = 63 if size > 64 else size - 1  # clone3: below VER0 (64)
    return spawn(profile, SpawnRequest(at=1, child="exit"), size=small), errno.EINVAL


def _case_high_flag(profile: Profile, target: Any, pids: list[int]) -> tuple[dict, int]:
    _only(lambda s: s.high_flags == "einval", "flags above bit 31 are not rejected (or not a struct field)")(profile)
    return spawn(profile, SpawnRequest(at=1, flags=CHEAP | 1 << 40, child="exit")), errno.EINVAL


CASES.update({"unreadable vector": _case_unreadable_vector, "nonzero reserved byte": _case_reserved,
              "struct size too small": _case_size_minus_one, "high flag bit": _case_high_flag})


def _outcome(res: dict) -> tuple[Any, ...]:
    child = res.get("child") or {}
    return res["errno"], res["ret"] > 0, child.get("nspid")


@pytest.mark.parametrize("case", list(CASES))
def test_i386_call_gives_the_x86_64_result(target, profile: Profile, case: str):
    if profile.nr_i386 is None:
        pytest.skip(f"{profile.name} is not wired in the i386 table")
    pids = pick_free(target, [0, 1], SPEC)
    step, want = CASES[case](profile, target, pids)
    x86_64, i386 = target.run(program([step, profile.i386_step(step)], SPEC))["steps"]
    if i386.get("ia32") is False:
        pytest.skip("this kernel has no IA32 emulation (int 0x80 raised SIGSEGV): CONFIG_IA32_EMULATION")
    for abi, res in (("x86_64", x86_64), ("i386", i386)):
        assert res["errno"] == want, f"{abi}: {res}"
        if want == 0:
            assert res["ret"] > 0, f"{abi}: {res}"
        if case == "chosen pids":
            assert res["child"]["nspid"] == pids, f"{abi}: {res}"
        if case == "parent tid stored":
            assert res["read"] == [res["ret"].to_bytes(4, "little").hex()], f"{abi}: {res}"
    assert _outcome(x86_64)[:2] == _outcome(i386)[:2]


def test_i386_busy_pid_gives_the_x86_64_errno(target, profile: Profile):
    if profile.nr_i386 is None:
        pytest.skip(f"{profile.name} is not wired in the i386 table")
    pids = pick_free(target, [0, 1], SPEC)
    step = spawn(profile, SpawnRequest(at=1, pids=tuple(pids), child="exit"))
    hold = occupy_step(pids[1], at=1)
    held, x86_64, i386 = target.run(program([hold, step, profile.i386_step(step)], SPEC))["steps"]
    if i386.get("ia32") is False:
        pytest.skip("this kernel has no IA32 emulation (int 0x80 raised SIGSEGV): CONFIG_IA32_EMULATION")
    assert held["ok"], held
    want = spec_of(profile.name).busy_errno
    assert (x86_64["errno"], i386["errno"]) == (want, want), (x86_64, i386)
