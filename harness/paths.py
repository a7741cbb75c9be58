"""Where things live: the repository, the user's cache, results."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
AGENT_DIR = REPO_ROOT / "harness" / "agent"
KCONFIG_DIR = REPO_ROOT / "qemu" / "kconfig"
PATCHES_DIR = REPO_ROOT / "qemu" / "patches"
MUTANTS_DIR = REPO_ROOT / "qemu" / "mutants"
DEBIAN_SOURCE_TARBALL = Path("/usr/src/linux-source-6.1.tar.xz")


def cache_dir() -> Path:
    """The user cache dir for kernels, trees and initramfs images (created on demand)."""
    base = os.environ.get("ECLONE_SUITE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "eclone-suite"
    )
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path
