"""The kernel a command runs on, from its options: --kernel IMAGE, --tree DIR, --fragment, --patch, --stock.

One place for what those options mean, shared by run, fuzz, repro, peers, bench and kernel build: the
argparse options, the build request, the image (checked or built), and the pytest options that choose the
same kernel in a child pytest run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .errors import UsageError
from .kernel_build import BuildRequest, build_kernel, reference_request


def add_kernel_choice(p: argparse.ArgumentParser) -> None:
    """The options every kernel-using command takes."""
    p.add_argument("--kernel", type=Path, metavar="IMAGE", help="boot this bzImage instead of building one")
    p.add_argument("--tree", type=Path, metavar="DIR", help="build this Linux source tree (out of tree, O=)")
    p.add_argument("--fragment", action="append", default=[], metavar="NAME",
                   help="extra kconfig fragment from qemu/kconfig/ (e.g. debug, kcsan); repeatable")
    p.add_argument("--patch", action="append", default=[], type=Path, metavar="FILE",
                   help="extra patch on top of the reference series (default source only); repeatable")
    p.add_argument("--stock", action="store_true", help="build Debian's 6.1 without the eclone series")


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


def pytest_kernel_argv(args: argparse.Namespace, image: Path) -> list[str]:
    """The pytest options for the same kernel: --kernel IMAGE when one was given, otherwise how it was
    built (the plugin finds the cached image, and tests that read its source tree, UAPI headers, find it)."""
    if args.kernel is not None:
        return ["--kernel", str(image)]
    argv = ["--tree", str(args.tree)] if args.tree else ["--stock"] if args.stock else []
    for fragment in args.fragment:
        argv += ["--fragment", fragment]
    for patch in args.patch:
        argv += ["--patch", str(Path(patch).resolve())]
    return argv
