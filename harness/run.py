"""`python -m harness run`: get a kernel, run suite/ under pytest, leave results behind."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pytest

from .errors import EnvError, UsageError
from .paths import REPO_ROOT, results_root
from .profiles import make_profile
from .progress import note
from .targets.base import Target

# pytest exit codes -> ours: 0 all selected passed, 1 a test failed, 2 usage or environment error
_EXIT = {pytest.ExitCode.OK: 0, pytest.ExitCode.TESTS_FAILED: 1}


def results_dir(given: Path | None) -> Path:
    return given or results_root() / time.strftime("%Y%m%d-%H%M%S")


def coverage_kernel(args: argparse.Namespace) -> Path:
    """--coverage: the gcov build of the chosen source, or a --kernel image checked for CONFIG_GCOV_KERNEL."""
    from .coverage.build import coverage_request, require_gcov
    from .kernel_choice import kernel_request, resolve_kernel
    if args.kernel is not None:
        image = resolve_kernel(args)
        from .kernel_build import pristine_tree
        require_gcov(image, pristine_tree())
        from .coverage.artifacts import load_artifacts
        load_artifacts(image)  # the .gcno files gcov needs must be beside it
        return image
    from .kernel_build import build_kernel
    return build_kernel(coverage_request(kernel_request(args)))


def pytest_argv(args: argparse.Namespace, results: Path) -> tuple[list[str], Path | None]:
    """The pytest command line equivalent to these CLI options, and the kernel image it boots (qemu)."""
    for name in args.profile:
        if name != "auto":
            make_profile(name)  # a usage error before any kernel build or sandbox
    jobs = getattr(args, "jobs", 1)
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {jobs}")
    image = None
    argv = [str(REPO_ROOT / "suite"), "-c", str(REPO_ROOT / "pytest.ini"), "--rootdir", str(REPO_ROOT),
            "--target", args.target, "--results", str(results), "--junitxml", str(results / "junit.xml"),
            "--ktap", str(results / "results.ktap")]
    if args.target == "qemu":
        from .kernel_choice import pytest_kernel_argv, resolve_kernel
        from .qemu_config import QemuConfig, require_binary
        require_binary(QemuConfig().binary)  # before a kernel build that would be wasted
        image = coverage_kernel(args) if getattr(args, "coverage", False) else resolve_kernel(args)
        argv += pytest_kernel_argv(args, image)
        if getattr(args, "coverage", False):
            argv += ["--coverage-out", str(results / "coverage")]
    elif args.kernel or args.tree or args.patch or args.fragment or args.stock or getattr(args, "coverage", False):
        raise UsageError("--target host tests the running kernel: drop --kernel/--tree/--patch/--fragment/--stock"
                         "/--coverage")
    else:
        from .targets.host import check_sandbox
        check_sandbox()  # where no sandbox can exist (chroot, container): its one line, before pytest's header
    for name in args.profile:
        argv += ["--profile", name]
    if args.eclone_nr is not None:
        argv += ["--eclone-nr", str(args.eclone_nr)]
    if jobs > 1:
        argv += ["-n", str(jobs)]
    extra = list(args.pytest_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    return argv + extra, image


def start_first(args: argparse.Namespace, image: Path | None, results: Path) -> Target | None:
    """Boot the kernel pytest will use, before pytest: a kernel that cannot serve (does not boot, lacks
    an option) is then one error line and exit 2. The VM is handed to the plugin, not booted twice; with
    several jobs each xdist worker boots its own, so nothing is started here."""
    if image is None or getattr(args, "jobs", 1) > 1 or getattr(args, "coverage", False):
        return None
    from .targets.qemu import QemuTarget
    target = QemuTarget(image, console_log=results / "console.log")
    note(f"booting {image}")
    try:
        target.start()
    except BaseException:
        target.close()
        raise
    return target


def run_suite(args: argparse.Namespace) -> int:
    results = results_dir(args.results)
    argv, image = pytest_argv(args, results)  # may refuse in one line: then nothing is written
    target = start_first(args, image, results)
    results.mkdir(parents=True, exist_ok=True)
    note(f"results: {results}")
    if target is not None:
        from .targets.handover import hand_over
        hand_over(target)
    try:
        code = pytest.main(argv)
    finally:
        from .targets.handover import take
        leftover = take()  # pytest never asked for it (nothing selected): ours to close
        if leftover is not None:
            leftover.close()
    from .pytest_plugin import FATAL_ERRORS  # after main: importing hypothesis first defeats assert rewriting
    if FATAL_ERRORS:
        raise EnvError(FATAL_ERRORS[-1])
    note(f"results: {results} (junit.xml, results.ktap, summary.json, console.log, repro/ for failures"
         + (", coverage/)" if getattr(args, "coverage", False) else ")"))
    return _EXIT.get(code, 2)
