"""Variant kernels (coverage, no PID_NS, other fragments) start from the reference's build dir."""

from __future__ import annotations

import os
from pathlib import Path

from harness import kconfig
from harness.kernel_build import CONFIGURED, _config_hash, _seed_from_reference


def _reference_build(base: Path) -> Path:
    seed = base / f"build-{_config_hash(kconfig.fragments_for([]))}"
    (seed / "tools" / "objtool").mkdir(parents=True)
    (seed / "init").mkdir()
    (seed / CONFIGURED).write_text("ok")
    (seed / "vmlinux").write_bytes(b"\x7fELF")
    os.utime(seed / "vmlinux", ns=(10**18, 10**18))
    (seed / "tools" / "objtool" / ".check.o.cmd").write_text(f"cmd := gcc -o {seed}/tools/objtool/check.o\n")
    (seed / "init" / ".main.o.cmd").write_text("cmd_init/main.o := gcc -o init/main.o\n")
    return seed


def test_a_new_variant_build_dir_is_the_reference_s_with_objtool_repointed(tmp_path: Path) -> None:
    seed = _reference_build(tmp_path)
    build = tmp_path / "build-variant"
    _seed_from_reference(build, tmp_path)
    assert (build / "vmlinux").stat().st_mtime_ns == 10**18, "mtimes kept: make rebuilds only what changed"
    assert not (build / CONFIGURED).exists(), "the variant's own config is still to be made"
    assert (build / "tools" / "objtool" / ".check.o.cmd").read_text() == \
        f"cmd := gcc -o {build}/tools/objtool/check.o\n"
    assert (build / "init" / ".main.o.cmd").read_text() == "cmd_init/main.o := gcc -o init/main.o\n"
    assert f"{seed}/tools" in (seed / "tools" / "objtool" / ".check.o.cmd").read_text(), "the seed is untouched"
    assert not build.with_name(build.name + ".tmp").exists()


def test_without_a_finished_reference_build_nothing_is_seeded(tmp_path: Path) -> None:
    seed = _reference_build(tmp_path)
    (seed / "vmlinux").unlink()
    _seed_from_reference(tmp_path / "build-variant", tmp_path)
    assert not (tmp_path / "build-variant").exists()
    (seed / "vmlinux").write_bytes(b"")
    _seed_from_reference(seed, tmp_path)  # the reference itself
    assert (seed / CONFIGURED).exists()
