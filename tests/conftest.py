"""Fixtures for the harness's own tests: kernels to boot, built or reused once per session."""


from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.errors import SandboxUnavailable
from harness.targets.host import HostTarget, check_sandbox


@pytest.fixture(scope="session")
def host_sandbox() -> None:
    """Probed once per session: tests that need the host target's user+pid namespaces skip with its own
    reason where they cannot exist (a chroot, a container's seccomp profile); the QEMU half still runs."""
    try:
        check_sandbox()
    except SandboxUnavailable as err:
        pytest.skip(str(err))


@pytest.fixture(scope="session")
def host_target(host_sandbox: None) -> Iterator[HostTarget]:
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
