"""CLONE_SETTLS: where a call has a tls argument the child's fs base is that value; eclone and clone2 have none,
so CLONE_SETTLS gives the child fs base 0 (NOTES.md, eclone's and clone2's settled details). The child (stub
mode "fs") stores its fs base where the CLONE_VM|CLONE_VFORK caller reads it."""

from __future__ import annotations

import pytest

from harness.pidspace import pick_free
from harness.profiles import Profile, SpawnRequest
from harness.programs import ARENA, SP_SLOT

from ..spec import spec_of
from .helpers import CHEAP, run1, spawn

CLONE_SETTLS = 0x00080000

# The argument CLONE_SETTLS takes the fs base from (None: the call has no tls, NOTES.md: "sets tls 0").
TLS_ARGUMENT = {"eclone": None, "clone2": None, "clone_with_pids": "tls", "clone3": "tls"}
TLS = ARENA + 0x7000
# every other address-like field nonzero and distinct, so a call that takes its tls from one of them shows it
# (below 4 GiB: clone2's tid fields are u32; neither is used without a SETTID flag)
PARENT_TID, CHILD_TID, STACK_TOP = 0x4000_1000, 0x4000_2000, ARENA + 0x9000


def fs_base_of_child(target, profile: Profile, flags: int, tls: int | None) -> int:
    spec = spec_of(profile.name)
    extra = {spec.fields["parent_tid"]: PARENT_TID, spec.fields["child_tid"]: CHILD_TID, **spec.stack(STACK_TOP)}
    if tls is not None:
        extra[TLS_ARGUMENT[profile.name]] = tls
    step = spawn(profile, SpawnRequest(flags=CHEAP | flags, child="fs", extra=extra))
    step["read"] = [[SP_SLOT, 8]]
    res = run1(target, step)
    assert (res["errno"], res["child_exit"]) == (0, 0), res
    return int.from_bytes(bytes.fromhex(res["read"][0]), "little")


def test_clone_settls_gives_the_tls_argument_or_0_where_the_call_has_none(target, profile: Profile):
    argument = TLS_ARGUMENT[profile.name]
    got = fs_base_of_child(target, profile, CLONE_SETTLS, None if argument is None else TLS)
    want = 0 if argument is None else TLS
    assert got == want, f"fs base {got:#x}, want {want:#x} (tls argument: {argument})"


def test_without_clone_settls_the_child_keeps_the_callers_fs_base(target, profile: Profile):
    """The caller (a CPython process) has glibc's TLS: a nonzero fs base the child inherits."""
    got = fs_base_of_child(target, profile, 0, None)
    assert got not in (0, TLS, PARENT_TID, CHILD_TID, STACK_TOP), hex(got)


@pytest.mark.profiles(*(name for name, arg in TLS_ARGUMENT.items() if arg is None))
def test_clone_settls_with_pids_still_gives_fs_base_0(target, profile: Profile):
    (pid,) = pick_free(target, [0])
    spec = spec_of(profile.name)
    extra = {spec.fields["child_tid"]: CHILD_TID, **spec.stack(STACK_TOP)}
    step = spawn(profile, SpawnRequest(pids=(pid,), flags=CHEAP | CLONE_SETTLS, child="fs", extra=extra))
    step["read"] = [[SP_SLOT, 8]]
    res = run1(target, step)
    assert (res["errno"], res["ret"]) == (0, pid), res
    assert res["read"][0] == "00" * 8
