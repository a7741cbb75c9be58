"""ABI area fixtures: struct versions per profile, and the UAPI headers of the kernel under test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .layouts import LAYOUTS, Layout


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`layout`: every struct version; pairs whose profile differs are deselected below."""
    if "layout" in metafunc.fixturenames:
        metafunc.parametrize("layout", LAYOUTS, ids=[lay.version for lay in LAYOUTS])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep (profile, layout) pairs of one profile only: clone3 has VER0..VER2, eclone the seed's struct."""
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        layout = params.get("layout")
        if isinstance(layout, Layout) and "profile" in params and params["profile"] != layout.profile:
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def uapi_include(kernel_source: Any, request: pytest.FixtureRequest) -> Path:
    """The kernel-under-test's installed UAPI headers (make headers in its own tree, cached)."""
    from harness.uapi_probe import headers_for

    if kernel_source is None:
        if request.config.getoption("--target") == "host":
            pytest.skip("host target: the running kernel's source tree is unknown, so its UAPI headers are too")
        pytest.skip("--kernel IMAGE: the image's source tree is unknown, so its UAPI headers are too")
    return headers_for(kernel_source)
