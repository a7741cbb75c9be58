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


UapiStruct = tuple[Path, Any]  # (include dir, harness.uapi_probe.StructLocation)


def _named(config: pytest.Config, profile: str) -> Any:
    """--uapi-struct PROFILE=HEADER:STRUCT for this profile, as a StructLocation, or None."""
    from harness.uapi_probe import StructLocation

    for value in config.getoption("--uapi-struct") or []:
        name, _, where = value.partition("=")
        header, _, struct = where.partition(":")
        if not (name and header and struct):
            raise pytest.UsageError(f"--uapi-struct {value!r}: want PROFILE=HEADER:STRUCT")
        if name == profile:
            return StructLocation(header, struct)
    return None


@pytest.fixture
def uapi_struct(profile: Any, layout: Layout, uapi_include: Path, request: pytest.FixtureRequest) -> UapiStruct:
    """Where the tree's exported UAPI defines `layout`'s struct: found by the spec's member names (any header, any
    tag) or named by --uapi-struct; skips with the reason when the tree defines none."""
    from harness.uapi_probe import StructNotFound, locate_struct

    try:
        return uapi_include, locate_struct(uapi_include, layout.names, _named(request.config, profile.name))
    except StructNotFound as err:
        pytest.skip(f"{profile.name} {layout.version}: {err}")
