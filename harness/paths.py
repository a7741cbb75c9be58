"""Where things live: the repository (or the installed copy of its files), the user's cache, results."""

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _find_root() -> Path:
    """The checkout this package sits in (also an editable install), else the copy a wheel ships.

    `pip install .` puts qemu/, suite/, pytest.ini and conftest.py under harness/_tree/ (pyproject.toml).
    """
    checkout = PACKAGE_DIR.parent
    if (checkout / "qemu").is_dir() and (checkout / "suite").is_dir():
        return checkout
    return PACKAGE_DIR / "_tree"


REPO_ROOT = _find_root()
INSTALLED = REPO_ROOT != PACKAGE_DIR.parent
AGENT_DIR = PACKAGE_DIR / "agent"
KCONFIG_DIR = REPO_ROOT / "qemu" / "kconfig"
PATCHES_DIR = REPO_ROOT / "qemu" / "patches"
MUTANTS_DIR = REPO_ROOT / "qemu" / "mutants"
DEBIAN_SOURCE_TARBALL = Path("/usr/src/linux-source-6.1.tar.xz")


def results_root() -> Path:
    """Where runs write by default: results/ in the checkout, or in the working directory for an installed tool."""
    return (Path.cwd() if INSTALLED else REPO_ROOT) / "results"


def cache_dir() -> Path:
    """The user cache dir for kernels, trees and initramfs images (created on demand)."""
    base = os.environ.get("ECLONE_SUITE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "eclone-suite"
    )
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path
