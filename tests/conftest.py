"""Fixtures for the harness's own tests: kernels to boot, built or reused once per session."""


from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def reference_kernel() -> Path:
    """The default kernel (built on first use, then cached)."""
    from harness.kernel_build import build_kernel, reference_request
    return build_kernel(reference_request())


@pytest.fixture(scope="session")
def any_bzimage(reference_kernel: Path) -> Path:
    """Some valid bzImage, for checks that fail before anything boots."""
    return reference_kernel
