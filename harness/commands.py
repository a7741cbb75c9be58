"""What the CLI's subcommands do (kept apart from argument parsing)."""

from __future__ import annotations

import argparse

from .errors import UsageError
from .kernel_build import build_kernel
from .kernel_choice import kernel_request, resolve_kernel

__all__ = ["kernel_request", "resolve_kernel"]  # also used from here by bench.py


def kernel_build_command(args: argparse.Namespace) -> int:
    if args.kernel is not None:
        raise UsageError("kernel build makes an image: --kernel does not apply")
    print(build_kernel(kernel_request(args)))
    return 0


def run_command(args: argparse.Namespace) -> int:
    from .run import run_suite
    return run_suite(args)


def mutants_command(args: argparse.Namespace) -> int:
    from .mutants import mutants_command as run_mutants
    return run_mutants(args)


def fuzz_command(args: argparse.Namespace) -> int:
    from .fuzz.command import fuzz_command as run_fuzz
    return run_fuzz(args)


def peers_command(args: argparse.Namespace) -> int:
    """Build the tree's clone3 selftests, run them on the chosen kernel, print each case's verdict."""
    from .kernel_build import pristine_tree
    from .peers import build_selftests, run_selftests
    from .targets.qemu import QemuTarget
    binaries = build_selftests(args.tree or pristine_tree())
    with QemuTarget(resolve_kernel(args)) as target:
        results = run_selftests(target, binaries)
    for result in results:
        passed = sum(v == "ok" for v in result.cases.values())
        print(f"{result.binary:32} exit {result.status:3}  {passed}/{len(result.cases)} ok"
              + (f"  failed: {', '.join(result.failed)}" if result.failed else ""))
    return 1 if any(r.failed for r in results) else 0
