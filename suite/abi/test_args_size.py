"""args_size: every size from 0 to PAGE_SIZE + 16 (and some far beyond), each in one program per profile.

eclone takes exactly 56 (an `int`: negative values are errors too); clone3 takes 64 up to a page when the
bytes past the 88 it knows are zero, says EINVAL below 64 and E2BIG above a page (NOTES.md).
"""

from __future__ import annotations

import errno

import pytest

from harness.profiles import Profile
from harness.profiles.base import ARGS_ADDR
from harness.programs import program

from ..spec import WITH_SIZE_ARGUMENT, spec_of
from .helpers import PAGE_SIZE, cheap, deviations, run1, run_checked, sweep, thread

SIZES = range(0, PAGE_SIZE + 17)
FAR_SIZES = {  # register values beyond the exhaustive range
    "eclone": [1 << 31, (1 << 32) - 56, -1, -56, -(1 << 31)],  # negative as an int
    "clone3": [1 << 31, 1 << 32, (1 << 32) | 64, 1 << 63, (1 << 64) - 1],  # size_t: 2^32 + 64 is not 64
}


def eclone_size_errno(size: int) -> int:
    return 0 if size == 56 else errno.EINVAL


def clone3_size_errno(size: int) -> int:
    size %= 1 << 64
    if size < 64:
        return errno.EINVAL
    return 0 if size <= PAGE_SIZE else errno.E2BIG


EXPECT = {"eclone": eclone_size_errno, "clone3": clone3_size_errno}
# size passed, and up to which offset a nonzero byte past the known struct is still read (errno then)
PAST_SIZE = {"eclone": (56, 56, 0), "clone3": (96, 96, errno.E2BIG)}

pytestmark = pytest.mark.profiles(*WITH_SIZE_ARGUMENT)  # clone_with_pids and clone2 take no size


def test_every_args_size_from_0_to_a_page_and_beyond(target, profile: Profile):
    """One round trip: each size once; an accepted size creates a thread that exits at once."""
    base = thread(profile)
    vary = {"reg": spec_of(profile.name).size_reg}
    steps = [sweep(base, vary, SIZES), sweep(base, vary, FAR_SIZES[profile.name])]
    near, far = (s["results"] for s in target.run(program(steps), timeout=120)["steps"])
    report = deviations(SIZES, near, EXPECT[profile.name])
    report_far = deviations(FAR_SIZES[profile.name], far, EXPECT[profile.name], fmt=hex)
    assert not report and not report_far, f"args_size deviations: {report} {report_far}"


def test_bytes_past_args_size_are_never_read(target, profile: Profile):
    """A nonzero byte just past the size given is ignored (clone3: size 96, so 88..95 are still its tail)."""
    size, read_up_to, tail_errno = PAST_SIZE[profile.name]
    addrs = range(ARGS_ADDR + spec_of(profile.name).default_size, ARGS_ADDR + 160)
    res = run1(target, sweep(thread(profile, size=size), {"write_at": "ff"}, addrs))

    def want(addr: int) -> int:
        return tail_errno if addr - ARGS_ADDR < read_up_to else 0
    report = deviations(addrs, res["results"], want, fmt=lambda a: f"byte {a - ARGS_ADDR}")
    assert not report, report


@pytest.mark.profiles("clone3")
def test_a_nonzero_byte_anywhere_in_a_page_sized_tail_is_e2big(target, profile: Profile):
    """size = PAGE_SIZE, one byte past VER2 (88) set, at each position 88..4095 in turn; nothing created."""
    addrs = range(ARGS_ADDR + 88, ARGS_ADDR + PAGE_SIZE)
    base = cheap(profile, size=PAGE_SIZE, at=1)
    steps = [sweep(base, {"write_at": byte}, addrs) for byte in ("01", "80")]
    results, ev, _ = run_checked(target, steps)
    for byte, res in zip(("01", "80"), results, strict=True):
        report = deviations(addrs, res["results"], lambda a: errno.E2BIG, fmt=lambda a: f"byte {a - ARGS_ADDR}")
        assert not report, f"0x{byte}: {report}"
    ev.assert_nothing_created()
