"""harness/uapi_probe.py: the C probe measures what gcc sees for each ABI; header trees are cached by content."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness import uapi_probe
from harness.paths import DEBIAN_SOURCE_TARBALL
from harness.uapi_probe import FieldLayout, ProbeError, probe, probe_source, touches_headers

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")

HEADER = """\
struct plain { unsigned int a; unsigned long long b; };
struct aligned { unsigned int a; unsigned long long b __attribute__((aligned(8))); };
#define PLAIN_SIZE 12
"""


@pytest.fixture
def include(tmp_path: Path) -> Path:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "probe_me.h").write_text(HEADER)
    return tmp_path


def test_source_names_every_field_and_macro():
    src = probe_source("linux/x.h", {"s": ["a", "b"]}, ["M"])
    assert "#include <linux/x.h>" in src
    for key in ("s.sizeof", "s.alignof", "s.a.offset", "s.b.size", "s.b.align", '"M"'):
        assert key in src


def test_i386_and_x86_64_differ_for_a_plain_u64_after_a_u32(include: Path):
    x86_64, _ = probe(include, "t/probe_me.h", {"plain": ["a", "b"]}, abi="x86_64")
    i386, macros = probe(include, "t/probe_me.h", {"plain": ["a", "b"]}, ["PLAIN_SIZE"], abi="i386")
    assert x86_64["plain"].fields["b"] == FieldLayout(offset=8, size=8, align=8)
    assert (x86_64["plain"].size, x86_64["plain"].align) == (16, 8)
    assert i386["plain"].fields["b"] == FieldLayout(offset=4, size=8, align=4)
    assert (i386["plain"].size, i386["plain"].align) == (12, 4)
    assert macros == {"PLAIN_SIZE": 12}


def test_an_aligned_u64_is_the_same_for_both_abis(include: Path):
    layouts = [probe(include, "t/probe_me.h", {"aligned": ["a", "b"]}, abi=abi)[0] for abi in ("x86_64", "i386")]
    assert layouts[0] == layouts[1]
    assert layouts[0]["aligned"].fields["b"].offset == 8


def test_host_headers_are_not_used(include: Path):
    """-nostdinc: a header that only /usr/include has is missing, not silently taken from the host."""
    with pytest.raises(ProbeError, match="linux/sched.h"):
        probe(include, "linux/sched.h", {"clone_args": ["flags"]})


def test_a_missing_member_is_a_probe_error(include: Path):
    with pytest.raises(ProbeError, match="did not compile"):
        probe(include, "t/probe_me.h", {"plain": ["nope"]})


def test_only_patches_that_touch_headers_change_the_cache_key():
    uapi = "--- a/include/uapi/linux/eclone.h\n+++ b/include/uapi/linux/eclone.h\n@@ -1 +1 @@\n"
    new_file = "--- /dev/null\n+++ b/include/uapi/linux/eclone.h\n@@ -0,0 +1 @@\n"
    table = "--- a/arch/x86/entry/syscalls/syscall_64.tbl\n+++ b/arch/x86/entry/syscalls/syscall_64.tbl\n"
    fork = "--- a/kernel/fork.c\n+++ b/kernel/fork.c\n@@ -1 +1 @@\n"
    assert touches_headers(uapi) and touches_headers(new_file) and touches_headers(table)
    assert not touches_headers(fork)


@pytest.mark.skipif(not DEBIAN_SOURCE_TARBALL.is_file(), reason="needs linux-source-6.1 (./setup.sh)")
def test_reference_headers_define_eclone_args_and_are_cached():
    from harness.kernel_build import reference_request
    include = uapi_probe.headers_for(reference_request())
    assert (include / "linux" / "eclone.h").is_file() and (include / "asm" / "unistd_64.h").is_file()
    assert uapi_probe.headers_for(reference_request()) == include
    layouts, macros = probe(include, "linux/eclone.h", {"eclone_args": ["nr_pids"]}, ["ECLONE_ARGS_SIZE_VER0"])
    assert layouts["eclone_args"].fields["nr_pids"].offset == 40 and macros["ECLONE_ARGS_SIZE_VER0"] == 56


# --- the eclone struct found by the spec's member names (an independent implementation's header) -------------
SPEC_ECLONE = (("clone_flags_high", 0, 8), ("child_stack_base", 8, 8), ("child_stack_size", 16, 8),
               ("parent_tid_ptr", 24, 8), ("child_tid_ptr", 32, 8), ("nr_pids", 40, 4), ("reserved0", 44, 4),
               ("reserved1", 48, 8))  # seed 003 / NOTES.md, written out here independently of suite/abi/layouts.py
SPEC_NAMES = [name for name, _, _ in SPEC_ECLONE]
TYPES_H = "typedef unsigned int __u32;\ntypedef unsigned long long __u64;\n"
SCHED_H = """\
#include <linux/types.h>
struct clone_args { __u64 flags; __u64 pidfd; };  /* clone3's: not the eclone struct */
/* the seed's struct as an independent series might write it: another tag, plain __u64, no size macro */
struct eclone_clone_args {
	__u64 clone_flags_high;
	__u64 child_stack_base;
	__u64 child_stack_size;
	__u64 parent_tid_ptr;
	__u64 child_tid_ptr;
	__u32 nr_pids;
	__u32 reserved0;
	__u64 reserved1;
};
"""


def _variant(tmp_path: Path, sched_h: str) -> Path:
    (tmp_path / "linux").mkdir()
    (tmp_path / "linux" / "types.h").write_text(TYPES_H)
    (tmp_path / "linux" / "sched.h").write_text(sched_h)
    return tmp_path


def test_a_struct_under_another_tag_in_linux_sched_h_is_found_and_passes_with_plain_u64(tmp_path: Path):
    include = _variant(tmp_path, SCHED_H)
    loc = uapi_probe.locate_struct(include, SPEC_NAMES)
    assert loc == uapi_probe.StructLocation("linux/sched.h", "eclone_clone_args")
    i386, _ = probe(include, loc.header, {loc.struct: ["reserved1"]}, abi="i386")
    assert i386[loc.struct].align == 4  # plain __u64: 4-byte aligned on i386, and still the spec's layout
    assert uapi_probe.layout_problems(include, loc, SPEC_ECLONE, 56, size_macro="ECLONE_ARGS_SIZE_VER0") == []


def test_a_wrong_layout_is_reported_for_each_abi(tmp_path: Path):
    """reserved0 moved after reserved1: offsets move, and with reserved1 right after a u32 the two ABIs disagree
    (x86_64 pads to 8, i386 does not)."""
    swapped = SCHED_H.replace("__u32 reserved0;\n", "")
    swapped = swapped.replace("__u64 reserved1;", "__u64 reserved1;\n\t__u32 reserved0;")
    include = _variant(tmp_path, swapped)
    loc = uapi_probe.locate_struct(include, SPEC_NAMES)
    problems = uapi_probe.layout_problems(include, loc, SPEC_ECLONE, 56)
    assert problems == [
        "x86_64: eclone_clone_args.reserved0 at (offset, size) (56, 4), the spec says (44, 4)",
        "x86_64: sizeof(struct eclone_clone_args) = 64, the spec says 56",
        "i386: eclone_clone_args.reserved0 at (offset, size) (52, 4), the spec says (44, 4)",
        "i386: eclone_clone_args.reserved1 at (offset, size) (44, 8), the spec says (48, 8)",
        problems[-1]]
    assert problems[-1].startswith("i386 and x86_64 differ")


def test_a_wrong_size_macro_and_a_larger_struct_are_problems(tmp_path: Path):
    grown = SCHED_H.replace("__u64 reserved1;", "__u64 reserved1;\n\t__u64 extra;") + "#define ECLONE_SIZE 48\n"
    include = _variant(tmp_path, grown)
    loc = uapi_probe.locate_struct(include, SPEC_NAMES)
    problems = uapi_probe.layout_problems(include, loc, SPEC_ECLONE, 56, size_macro="ECLONE_SIZE")
    assert "x86_64: sizeof(struct eclone_clone_args) = 64, the spec says 56" in problems
    assert "i386: ECLONE_SIZE = 48, the spec's size is 56" in problems
    assert uapi_probe.layout_problems(include, loc, SPEC_ECLONE, 56, exact=False) == []  # clone3-style growth


def test_no_struct_with_the_spec_members_is_a_reasoned_not_found(tmp_path: Path):
    """The final Linux-CR struct (no reserved1) is not the seed's: the reason names the members looked for."""
    include = _variant(tmp_path, SCHED_H.replace("\t__u64 reserved1;\n", ""))
    with pytest.raises(uapi_probe.StructNotFound, match=r"no header under .* all of the spec's members .*reserved1"):
        uapi_probe.locate_struct(include, SPEC_NAMES)


def test_an_option_names_the_struct_and_a_wrong_name_says_so(tmp_path: Path):
    include = _variant(tmp_path, SCHED_H)
    named = uapi_probe.StructLocation("linux/sched.h", "eclone_clone_args")
    assert uapi_probe.locate_struct(include, SPEC_NAMES, named) == named
    with pytest.raises(uapi_probe.StructNotFound, match="struct clone_args in linux/sched.h.*named by option"):
        uapi_probe.locate_struct(include, SPEC_NAMES, uapi_probe.StructLocation("linux/sched.h", "clone_args"))


def test_a_candidate_that_does_not_compile_is_named_in_the_reason(tmp_path: Path):
    include = _variant(tmp_path, SCHED_H.replace("#include <linux/types.h>", "#include <linux/missing.h>"))
    with pytest.raises(uapi_probe.StructNotFound, match="eclone_clone_args in linux/sched.h.*did not compile"):
        uapi_probe.locate_struct(include, SPEC_NAMES)


@pytest.mark.skipif(not DEBIAN_SOURCE_TARBALL.is_file(), reason="needs linux-source-6.1 (./setup.sh)")
def test_reference_headers_with_the_struct_moved_into_linux_sched_h_pass(tmp_path: Path):
    """A variant of our series' exported headers: linux/eclone.h removed, its struct appended to linux/sched.h
    under another tag with plain __u64 members. The clone3 struct beside it is not mistaken for it."""
    from harness.kernel_build import reference_request
    include = tmp_path / "include"
    shutil.copytree(uapi_probe.headers_for(reference_request()), include)
    (include / "linux" / "eclone.h").unlink()
    sched = include / "linux" / "sched.h"
    text = sched.read_text()
    end = text.rindex("#endif")
    sched.write_text(text[:end] + SCHED_H.split("*/\n", 1)[1] + text[end:])
    loc = uapi_probe.locate_struct(include, SPEC_NAMES)
    assert loc == uapi_probe.StructLocation("linux/sched.h", "eclone_clone_args")
    assert uapi_probe.layout_problems(include, loc, SPEC_ECLONE, 56) == []
    clone3 = uapi_probe.locate_struct(include, ["flags", "pidfd", "set_tid", "set_tid_size", "cgroup"])
    assert clone3 == uapi_probe.StructLocation("linux/sched.h", "clone_args")
