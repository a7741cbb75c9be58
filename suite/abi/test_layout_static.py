"""Static layout of each profile's struct: the spec table (layouts.py) against the profile's encoder, the kernel
tree's own UAPI header, and the i386 / x86_64 ABIs."""

from __future__ import annotations

import ctypes
from pathlib import Path

import pytest

from harness.profiles import Profile, SpawnRequest
from harness.profiles import clone2 as clone2_profile
from harness.profiles import clone3 as clone3_profile
from harness.profiles import eclone as eclone_profile
from harness.profiles.base import ARGS_ADDR
from harness.uapi_probe import ProbeError, StructLayout, probe

from ..spec import WITH_STRUCT, spec_of
from .helpers import spawn
from .layouts import NEWEST, Layout

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


def _header_layout(include: Path, layout: Layout, abi: str) -> tuple[StructLayout, dict[str, int]]:
    try:
        structs, macros = probe(include, layout.header, {layout.struct: layout.names}, [layout.size_macro], abi)
    except ProbeError as err:
        raise AssertionError(f"the kernel tree does not define {layout.struct} as the spec names it: {err}") from None
    return structs[layout.struct], macros


def test_uapi_header_matches_the_spec_table(profile: Profile, layout: Layout, uapi_include: Path):
    struct, macros = _header_layout(uapi_include, layout, "x86_64")
    assert {name: (f.offset, f.size) for name, f in struct.fields.items()} == table(layout)
    assert macros[layout.size_macro] == layout.size
    assert struct.size >= layout.size


@pytest.mark.profiles(*WITH_STRUCT)
def test_uapi_struct_is_identical_for_i386_and_x86_64(profile: Profile, uapi_include: Path):
    layout = NEWEST[profile.name]
    x86_64, _ = _header_layout(uapi_include, layout, "x86_64")
    i386, _ = _header_layout(uapi_include, layout, "i386")
    assert i386 == x86_64
    assert x86_64.align == 8


@pytest.mark.profiles(*WITH_STRUCT)
def test_uapi_struct_has_no_implicit_padding(profile: Profile, uapi_include: Path):
    """Members back to back from offset 0, each naturally aligned, the last one ending at sizeof, under both ABIs."""
    layout = NEWEST[profile.name]
    for abi in ("x86_64", "i386"):
        struct, _ = _header_layout(uapi_include, layout, abi)
        end = 0
        for name, f in sorted(struct.fields.items(), key=lambda item: item[1].offset):
            assert (f.offset, f.align) == (end, f.size), f"{abi}: {name} at {f.offset} (align {f.align}), want {end}"
            end += f.size
        assert struct.size == end, f"{abi}: sizeof {struct.size}, members end at {end}"
