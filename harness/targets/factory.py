"""Build the target a pytest session asked for (--target, --kernel/--tree/--stock, --results)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ..errors import UsageError
from .base import Target

if TYPE_CHECKING:
    from ..kernel_build import BuildRequest


def build_request(config: pytest.Config) -> BuildRequest:
    """The kernel --tree/--stock/--fragment/--patch describe (ignores --kernel)."""
    from ..kernel_build import BuildRequest, reference_request

    tree = config.getoption("--tree")
    fragments = tuple(config.getoption("--fragment"))
    patches = tuple(config.getoption("--patch"))
    if tree is not None:
        req = BuildRequest(tree=tree, fragments=fragments)
    elif config.getoption("--stock"):
        req = BuildRequest(fragments=fragments, patches=patches)
    else:
        req = reference_request(fragments, patches)
    if config.getoption("--coverage-out", None) is not None:  # the same gcov build `run --coverage` made
        from ..coverage.build import coverage_request
        req = coverage_request(req)
    return req


def kernel_source(config: pytest.Config) -> BuildRequest | None:
    """The source the kernel under test is built from; None when only a binary is known (--kernel, host)."""
    if config.getoption("--target") == "host" or config.getoption("--kernel") is not None:
        return None
    return build_request(config)


def kernel_for(config: pytest.Config) -> Path:
    """--kernel as given, else build (or reuse) the kernel --tree/--stock/--fragment/--patch describe."""
    from ..kernel_build import build_kernel
    from ..kernel_image import inspect_bzimage

    image = config.getoption("--kernel")
    if image is not None:
        if (config.getoption("--tree") is not None or config.getoption("--fragment") or config.getoption("--patch")
                or config.getoption("--stock")):
            raise UsageError("--kernel takes a finished image: drop --tree/--patch/--fragment/--stock")
        return inspect_bzimage(image).path
    return build_kernel(build_request(config))


def make_target(config: pytest.Config) -> Target:
    results = config.getoption("--results")
    if config.getoption("--target") == "host":
        from .host import HostTarget
        return HostTarget()
    from .qemu import QemuTarget
    worker = getattr(config, "workerinput", {}).get("workerid", "")
    console = None
    if results is not None:
        console = Path(results) / (f"console-{worker}.log" if worker else "console.log")
    return QemuTarget(kernel_for(config), console_log=console)
