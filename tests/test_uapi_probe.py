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
