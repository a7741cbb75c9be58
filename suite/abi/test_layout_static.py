"""Static layout of each profile's struct: the spec table (layouts.py) against the profile's encoder, the kernel
tree's own UAPI header, and the i386 / x86_64 ABIs."""

from __future__ import annotations

import ctypes

from harness.profiles import Profile, SpawnRequest
from harness.profiles import clone2 as clone2_profile
from harness.profiles import clone3 as clone3_profile
from harness.profiles import eclone as eclone_profile
from harness.profiles.base import ARGS_ADDR
from harness.uapi_probe import layout_problems

from ..spec import spec_of
from .helpers import spawn
from .layouts import Layout

PROFILE_FIELDS = {"eclone": eclone_profile.FIELDS, "clone2": clone2_profile.FIELDS, "clone3": clone3_profile.FIELDS}
PROFILE_SIZES = {"seed003": eclone_profile.ECLONE_ARGS_SIZE, "seed002": clone2_profile.CLONE_STRUCT_SIZE,
                 "VER0": clone3_profile.CLONE_ARGS_SIZE_VER0,
                 "VER1": clone3_profile.CLONE_ARGS_SIZE_VER1, "VER2": clone3_profile.CLONE_ARGS_SIZE_VER2}


def marker(size: int) -> int:
    """A value whose bytes are all distinct and nonzero (0x0807..01): a misplaced or cut field shows."""
    return int.from_bytes(bytes(range(1, size + 1)), "little")


def table(layout: Layout) -> dict[str, tuple[int, int]]:
    return {name: (off, size) for name, off, size in layout.fields}


def test_profile_field_table_matches_the_spec(profile: Profile, layout: Layout):
    known = {name: (off, size) for name, off, size in PROFILE_FIELDS[profile.name]}
    assert {name: known.get(name) for name in layout.names} == table(layout)
    assert PROFILE_SIZES[layout.version] == layout.size


def test_profile_encoder_puts_each_field_at_its_spec_offset(profile: Profile, layout: Layout):
    for name, off, size in layout.fields:
        step = spawn(profile, SpawnRequest(exit_signal=0, extra={name: marker(size)}), size=layout.size)
        addr, hexdata = step["write"][0]
        want = bytearray(layout.size)
        want[off:off + size] = marker(size).to_bytes(size, "little")
        assert (addr, bytes.fromhex(hexdata)) == (ARGS_ADDR, bytes(want)), f"field {name}"
        interface = spec_of(profile.name)
        assert step["regs"][interface.args_reg] == ARGS_ADDR
        if interface.size_reg is not None:
            assert step["regs"][interface.size_reg] == layout.size


def _ctypes_struct(layout: Layout, pack: int | None) -> type[ctypes.Structure]:
    types = {4: ctypes.c_uint32, 8: ctypes.c_uint64}
    attrs: dict = {"_fields_": [(name, types[size]) for name, _, size in layout.fields]}
    if pack is not None:
        attrs["_pack_"] = pack  # i386: a 64-bit member is only 4-byte aligned unless declared __aligned_u64
    return type(f"{layout.struct}_{pack}", (ctypes.Structure,), attrs)


def test_spec_table_is_the_same_for_i386_and_x86_64_without_padding(profile: Profile, layout: Layout):
    """Natural (x86_64) and 4-byte (i386) alignment of u64 members give the table's offsets and size: there
    is no implicit padding the two ABIs could fill differently."""
    for pack in (None, 4):
        struct = _ctypes_struct(layout, pack)
        got = {name: (getattr(struct, name).offset, getattr(struct, name).size) for name in layout.names}
        assert (got, ctypes.sizeof(struct)) == (table(layout), layout.size), f"_pack_={pack}"


def test_uapi_header_matches_the_spec_table(profile: Profile, layout: Layout, uapi_struct: tuple):
    """Found by the spec's member names in any exported header, under any tag: each field's offset and size, sizeof
    (exactly the spec's, or at least it for a struct that grows by appending), all identical for i386 and x86_64,
    and a size macro of the spec's name, if the header has one, equal to the size. Not compared: alignment (a plain
    __u64 is 4-byte aligned on i386 with the same offsets) and which header or tag the tree chose."""
    include, loc = uapi_struct
    problems = layout_problems(include, loc, layout.fields, layout.size, exact=not layout.extensible,
                               size_macro=layout.size_macro)
    assert problems == [], f"struct {loc.struct} in {loc.header}"
