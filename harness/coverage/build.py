"""The coverage kernel: gcov on, only the files the eclone series changes profiled."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

from ..errors import ConfigError, UsageError
from ..kconfig import parse_config
from ..kernel_build import BuildRequest

FRAGMENT = "coverage"
# kernel/pid.c and kernel/fork.c hold all of the series' code (the rest is headers and syscall tables).
# Makefile.lib compiles an object with CFLAGS_GCOV when GCOV_PROFILE_<basename>.o is y; a command-line
# variable reaches every sub-make, and no other object of the kernel is called pid.o or fork.o.
PROFILED = ("kernel/pid.c", "kernel/fork.c")


def make_vars(sources: tuple[str, ...] = PROFILED) -> tuple[str, ...]:
    return tuple(f"GCOV_PROFILE_{Path(s).stem}.o=y" for s in sources)


def kept_files(sources: tuple[str, ...] = PROFILED) -> tuple[str, ...]:
    """What gcov and the report need after the shared build dir moved on: notes files and sources."""
    return tuple(f"build/{Path(s).with_suffix('.gcno')}" for s in sources) + tuple(f"src/{s}" for s in sources)


def coverage_request(req: BuildRequest) -> BuildRequest:
    """`req` with the coverage fragment and the profiling make variables (idempotent)."""
    if req.tree is not None:
        raise UsageError("--coverage builds the default source (reference, --stock, --patch), not --tree")
    fragments = req.fragments if FRAGMENT in req.fragments else (*req.fragments, FRAGMENT)
    return dataclasses.replace(req, fragments=fragments, make_vars=make_vars(), keep=kept_files())


def image_config(image: Path, tree: Path | None = None) -> dict[str, str] | None:
    """The kernel config of an image: the cache's `config` beside it, else IKCONFIG; None if unknown."""
    beside = image.parent / "config"
    if beside.is_file():
        return parse_config(beside.read_text(errors="replace"))
    script = tree / "scripts" / "extract-ikconfig" if tree is not None else None
    if script is None or not script.is_file():
        return None
    proc = subprocess.run(["sh", str(script), str(image)], capture_output=True, text=True)
    return parse_config(proc.stdout) if proc.returncode == 0 else None


def require_gcov(image: Path, tree: Path | None = None) -> None:
    """A user's image without gcov gives one line naming the option (known configs only)."""
    config = image_config(image, tree)
    if config is not None and config.get("CONFIG_GCOV_KERNEL") != "y":
        raise ConfigError(f"{image} was built without CONFIG_GCOV_KERNEL=y: --coverage needs a gcov kernel "
                          "(leave out --kernel to build one with qemu/kconfig/coverage.config)")
