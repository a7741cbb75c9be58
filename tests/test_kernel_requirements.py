"""A kernel the suite cannot use is refused with one line that names the missing CONFIG_ option."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.kernel_build import build_kernel, reference_request
from harness.paths import REPO_ROOT

from .test_cli import assert_one_line_error, harness


@pytest.fixture(scope="session")
def kernel_without_pid_ns() -> Path:
    fragment = REPO_ROOT / "tests" / "data" / "kconfig" / "no-pid-ns.config"
    return build_kernel(reference_request(fragments=(str(fragment),)))


def test_kernel_without_pid_namespaces_is_refused_naming_config_pid_ns(kernel_without_pid_ns, tmp_path) -> None:
    proc = harness("run", "--kernel", str(kernel_without_pid_ns), "--profile", "clone3",
                   "--results", str(tmp_path / "r"))
    assert_one_line_error(proc, "CONFIG_PID_NS")
