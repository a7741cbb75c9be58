"""What the CLI's subcommands do (kept apart from argument parsing)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .errors import UsageError
from .kernel_build import BuildRequest, build_kernel, reference_request


def kernel_request(args: argparse.Namespace) -> BuildRequest:
    """Map --tree/--fragment/--patch/--stock to a build request (reference kernel by default)."""
    fragments = tuple(args.fragment)
    patches = tuple(Path(p) for p in args.patch)
    jobs = getattr(args, "jobs", None)
    if args.tree is not None:
        req = BuildRequest(tree=args.tree, fragments=fragments, patches=patches)
    elif args.stock:
        req = BuildRequest(fragments=fragments, patches=patches)
    else:
        req = reference_request(fragments, patches)
    if jobs is not None:
        if jobs < 1:
            raise UsageError("--jobs must be at least 1")
        req = BuildRequest(tree=req.tree, fragments=req.fragments, patches=req.patches, jobs=jobs)
    return req


def resolve_kernel(args: argparse.Namespace) -> Path:
    """--kernel IMAGE as given (checked), otherwise build or reuse one."""
    if args.kernel is not None:
        if args.tree is not None or args.patch or args.fragment or args.stock:
            raise UsageError("--kernel takes a finished image: drop --tree/--patch/--fragment/--stock")
        from .kernel_image import inspect_bzimage
        return inspect_bzimage(args.kernel).path
    return build_kernel(kernel_request(args))


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
