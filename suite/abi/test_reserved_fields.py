"""Reserved contents must be zero. eclone: reserved0 (44..47) and reserved1 (48..55), nonzero -> EINVAL;
clone2: reserved1 (28..31) and reserved2 (32..39), nonzero -> EINVAL.
clone3 has no reserved field; its equivalent is the tail past the 88 bytes it knows: nonzero -> E2BIG.
A rejected call creates nothing: no child, and no pid allocated (the level's ns_last_pid stays put)."""

from __future__ import annotations

import errno

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from harness.profiles import Profile
from harness.profiles.base import ARGS_ADDR

from .helpers import cheap, deviations, run_checked, sweep

# profile: (offset of the reserved bytes, how many, struct size passed, errno when any is nonzero)
RESERVED = {"eclone": (44, 12, 56, errno.EINVAL), "clone2": (28, 12, 40, errno.EINVAL),
            "clone3": (88, 40, 128, errno.E2BIG)}  # clone_with_pids has no struct


@pytest.mark.profiles("eclone")
def test_every_bit_and_every_byte_of_reserved0_and_reserved1_alone_is_einval(target, profile: Profile):
    base = cheap(profile, at=1)
    steps = [sweep(base, {"word_at": ARGS_ADDR + 44, "size": 4}, [1 << k for k in range(32)]),
             sweep(base, {"word_at": ARGS_ADDR + 48, "size": 8}, [1 << k for k in range(64)]),
             sweep(base, {"write_at": "ff"}, range(ARGS_ADDR + 44, ARGS_ADDR + 56))]
    results, ev, _ = run_checked(target, steps)
    for what, step, res in zip(("reserved0 bit", "reserved1 bit", "byte"), steps, results, strict=True):
        values = step.get("values") or range(*step["range"])
        report = deviations(values, res["results"], lambda v: errno.EINVAL, fmt=hex)
        assert not report, f"{what}: {report}"
    ev.assert_nothing_created()


# function-scoped fixtures (target, profile) do not change between examples
_settings = settings(suppress_health_check=[*settings.default.suppress_health_check,
                                            HealthCheck.function_scoped_fixture])


@pytest.mark.profiles(*RESERVED)
@_settings
@given(nonzero=st.dictionaries(st.integers(0, 39), st.integers(1, 255), max_size=3))
@example(nonzero={})
@example(nonzero={0: 1})
def test_any_nonzero_reserved_content_is_rejected_and_all_zero_is_accepted(target, profile: Profile,
                                                                           nonzero: dict[int, int]):
    """Sparse contents (a few nonzero bytes at random positions; positions wrap to the profile's length),
    shrinking towards all zero."""
    offset, length, size, rejected_errno = RESERVED[profile.name]
    reserved = bytearray(length)
    for pos, value in nonzero.items():
        reserved[pos % length] = value
    step = cheap(profile, size=size, at=1)
    step["write"].append([ARGS_ADDR + offset, reserved.hex()])
    (res,), ev, _ = run_checked(target, [step])
    if any(reserved):
        assert (res["ret"], res["errno"]) == (-1, rejected_errno), f"reserved {reserved.hex()}: {res}"
        ev.assert_nothing_created()
    else:
        assert (res["errno"], res["child_exit"]) == (0, 0), res
        ev.assert_nothing_created(allowed_pids=1)
