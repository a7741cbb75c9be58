"""Build the target a pytest session asked for (--target, --kernel/--tree/--stock, --results)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..errors import UsageError
from .base import Target


def kernel_for(config: pytest.Config) -> Path:
    """--kernel as given, else build (or reuse) the kernel --tree/--stock/--fragment/--patch describe."""
    from ..kernel_build import BuildRequest, build_kernel, reference_request
    from ..kernel_image import inspect_bzimage

    image = config.getoption("--kernel")
    tree = config.getoption("--tree")
    fragments = tuple(config.getoption("--fragment"))
    patches = tuple(config.getoption("--patch"))
    if image is not None:
        if tree is not None or fragments or patches or config.getoption("--stock"):
            raise UsageError("--kernel takes a finished image: drop --tree/--patch/--fragment/--stock")
        return inspect_bzimage(image).path
    if tree is not None:
        return build_kernel(BuildRequest(tree=tree, fragments=fragments))
    if config.getoption("--stock"):
        return build_kernel(BuildRequest(fragments=fragments, patches=patches))
    return build_kernel(reference_request(fragments, patches))


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
