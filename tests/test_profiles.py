"""Profile detection: what a probe's results say about a kernel we have never seen.

Other kernels put other things at eclone's number (cachestat from 6.5), or another eclone ABI
(the 48-byte struct of the final Linux-CR series); each must give its own precise skip reason.
"""

from __future__ import annotations

import errno
from typing import Any

import pytest

from harness.profiles import Clone3Profile, EcloneProfile

CHILD = {"ret": 1234, "errno": 0, "child": {"nspid": [1234]}}


def refused(number: int) -> dict[str, Any]:
    return {"ret": -1, "errno": number}


@pytest.mark.parametrize(("plain", "short", "linux_cr", "expected"), [
    (CHILD, refused(errno.EINVAL), refused(errno.EINVAL), None),
    (*[refused(errno.ENOSYS)] * 3, "eclone: ENOSYS on this kernel (syscall 451)"),
    (*[refused(errno.EBADF)] * 3, "is not eclone on this kernel (a plain call gave EBADF"),
    (refused(errno.EINVAL), refused(errno.EINVAL), CHILD, "takes a 48-byte struct (the final Linux-CR eclone"),
    (CHILD, CHILD, CHILD, "accepted args_size 55: not eclone"),
], ids=["seeds-eclone", "no-syscall", "cachestat", "linux-cr-48-bytes", "size-unchecked"])
def test_the_eclone_probe_names_what_it_found(plain: dict, short: dict, linux_cr: dict, expected: str | None):
    reason = EcloneProfile().supported([plain, short, linux_cr])
    if expected is None:
        assert reason is None
    else:
        assert reason is not None and expected in reason


def test_the_eclone_probe_sends_the_three_sizes_it_judges():
    sizes = [step["regs"][2] for step in EcloneProfile().probe_steps()]
    assert sizes == [56, 55, 48]


@pytest.mark.parametrize(("result", "expected"), [
    (CHILD, None),
    (refused(errno.ENOSYS), "clone3: ENOSYS on this kernel (syscall 435)"),
    (refused(errno.EPERM), "a plain clone3 call failed"),
])
def test_the_clone3_probe_needs_a_child_from_a_plain_call(result: dict, expected: str | None):
    reason = Clone3Profile().supported([result])
    if expected is None:
        assert reason is None
    else:
        assert reason is not None and expected in reason


@pytest.mark.parametrize("name", ["eclone", "clone_with_pids", "clone2", "clone3"])
def test_i386_step_moves_the_struct_and_its_pointers_below_4_gib(name: str):
    from harness.profiles import SpawnRequest, make_profile
    from harness.programs import ARENA, ARENA32, ARENA32_SIZE
    profile = make_profile(name)
    step = profile.spawn_step(SpawnRequest(at=1, pids=(500, 600), flags=1 << 32))
    low = profile.i386_step(step)
    assert (low["abi"], low["nr"]) == ("i386", profile.nr_i386) and "abi" not in step
    assert [off for off, _ in low["write"]] == [a - ARENA + ARENA32 for a, _ in step["write"]]
    assert [data for _, data in low["write"]][1:] == [data for _, data in step["write"]][1:]
    for i, (before, after) in enumerate(zip(step["regs"], low["regs"], strict=True)):
        moved = ARENA <= before < ARENA + ARENA32_SIZE and i in profile.pointer_regs
        assert after == (before - ARENA + ARENA32 if moved else before), (i, hex(before), hex(after))
    addrs = [int.from_bytes(bytes.fromhex(d)[o:o + 8], "little") for _, d in low["write"][:1]
             for n, o, w in profile.fields if w == 8 and n in profile.pointer_fields]
    assert all(a == 0 or ARENA32 <= a < ARENA32 + ARENA32_SIZE for a in addrs), [hex(a) for a in addrs]
