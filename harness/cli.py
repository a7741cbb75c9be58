"""The command line: kernel builds, suite runs, benchmarks. Errors become one line and exit 2."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import HarnessError, UsageError


def _add_kernel_choice(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kernel", type=Path, metavar="IMAGE", help="boot this bzImage instead of building one")
    p.add_argument("--tree", type=Path, metavar="DIR", help="build this Linux source tree (out of tree, O=)")
    p.add_argument("--fragment", action="append", default=[], metavar="NAME",
                   help="extra kconfig fragment from qemu/kconfig/ (e.g. debug, kcsan); repeatable")
    p.add_argument("--patch", action="append", default=[], type=Path, metavar="FILE",
                   help="extra patch on top of the reference series (default source only); repeatable")
    p.add_argument("--stock", action="store_true", help="build Debian's 6.1 without the eclone series")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness",
        description="Conformance and fuzz suite for eclone() and clone3() set_tid, run in QEMU or on the host.")
    sub = parser.add_subparsers(dest="command", required=True)

    kernel = sub.add_parser("kernel", help="kernel images")
    ksub = kernel.add_subparsers(dest="kernel_command", required=True)
    kbuild = ksub.add_parser("build", help="build (or reuse) a bzImage; prints its path last")
    _add_kernel_choice(kbuild)
    kbuild.add_argument("-j", "--jobs", type=int, default=None, help="make -j (default: all cores)")

    run = sub.add_parser("run", help="build/reuse a kernel, boot it, run the suite, print a summary")
    _add_kernel_choice(run)
    run.add_argument("--target", choices=["qemu", "host"], default="qemu")
    run.add_argument("--profile", action="append", default=[], metavar="NAME",
                     help="ABI profile to run (eclone, clone3, auto); repeatable; default auto")
    run.add_argument("--results", type=Path, metavar="DIR", help="results dir (default results/<timestamp>)")
    run.add_argument("--eclone-nr", type=int, default=None, metavar="N", help="eclone syscall number (default 451)")
    run.add_argument("pytest_args", nargs=argparse.REMAINDER, help="after --: passed to pytest")

    bench = sub.add_parser("bench", help="boot time, round trip, spawn rate vs a C loop")
    _add_kernel_choice(bench)
    bench.add_argument("--target", choices=["qemu", "host"], default="qemu")
    bench.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "kernel":
            from .commands import kernel_build_command
            return kernel_build_command(args)
        if args.command == "run":
            from .commands import run_command
            return run_command(args)
        if args.command == "bench":
            from .bench import bench_command
            return bench_command(args)
        raise UsageError(f"unknown command {args.command}")
    except HarnessError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
