"""Fixtures for the harness's own tests: kernels to boot, built or reused once per session."""


from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.targets.host import HostTarget


@pytest.fixture(scope="session")
def host_target() -> Iterator[HostTarget]:
    """The agent in a sandbox on the running kernel, shared by the agent's own tests."""
    target = HostTarget()
    target.start()
    yield target
    target.close()


@pytest.fixture(scope="session")
def reference_kernel() -> Path:
    """The default kernel (built on first use, then cached)."""
    from harness.kernel_build import build_kernel, reference_request
    return build_kernel(reference_request())


@pytest.fixture(scope="session")
def any_bzimage(reference_kernel: Path) -> Path:
    """Some valid bzImage, for checks that fail before anything boots."""
    return reference_kernel
