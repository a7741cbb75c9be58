"""The command line: kernel builds, suite runs, mutants, benchmarks. Errors become one line and exit 2."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import HarnessError, UsageError
from .interrupt import Terminated, interrupt_on_termination
from .kernel_choice import add_kernel_choice


def _prog() -> str:
    """`eclone-suite` when run as the installed console script, `python -m harness` otherwise."""
    name = Path(sys.argv[0]).name
    return name if name and name != "__main__.py" else "python -m harness"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_prog(),
        description="Conformance and fuzz suite for eclone() and clone3() set_tid, run in QEMU or on the host.")
    sub = parser.add_subparsers(dest="command", required=True)

    kernel = sub.add_parser("kernel", help="kernel images")
    ksub = kernel.add_subparsers(dest="kernel_command", required=True)
    kbuild = ksub.add_parser("build", help="build (or reuse) a bzImage; prints its path last")
    add_kernel_choice(kbuild)
    kbuild.add_argument("-j", "--jobs", type=int, default=None, help="make -j (default: all cores)")

    run = sub.add_parser("run", help="build/reuse a kernel, boot it, run the suite, print a summary")
    add_kernel_choice(run)
    run.add_argument("--target", choices=["qemu", "host"], default="qemu")
    run.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                     help="run the suite on N VMs at once (pytest-xdist, one VM per worker; default 1)")
    run.add_argument("--profile", action="append", default=[], metavar="NAME",
                     help="ABI profile to run (eclone, clone3, auto); repeatable; default auto")
    run.add_argument("--results", type=Path, metavar="DIR", help="results dir (default results/<timestamp>)")
    run.add_argument("--eclone-nr", type=int, default=None, metavar="N", help="eclone syscall number (default 451)")
    run.add_argument("--coverage", action="store_true",
                     help="gcov kernel (kernel/pid.c, kernel/fork.c profiled): line/branch coverage of those files "
                          "and of the eclone series' lines, HTML in <results>/coverage/")
    run.add_argument("pytest_args", nargs=argparse.REMAINDER, help="after --: passed to pytest")

    bench = sub.add_parser("bench", help="boot time, round trip, spawn rate vs a C loop")
    add_kernel_choice(bench)
    bench.add_argument("--target", choices=["qemu", "host"], default="qemu")
    bench.add_argument("--json", action="store_true", help="print JSON instead of a table")
    bench.add_argument("--suite", action="store_true",
                       help="also run the default suite once on the same kernel (suite_s: pytest's time)")
    bench.add_argument("--fuzz", type=float, default=0.0, metavar="SECONDS",
                       help="also fuzz for SECONDS on 2 VMs (fuzz_examples_per_s)")
    _add_mutants(sub)
    _add_repro_and_peers(sub)
    from .fuzz.config import add_parser as add_fuzz
    add_fuzz(sub, add_kernel_choice)
    return parser


def _add_repro_and_peers(sub: argparse._SubParsersAction) -> None:
    repro = sub.add_parser(
        "repro", help="replay a failed test's programs (results/.../repro/*.json) on a kernel",
        description="Replay the programs a failed test ran and compare the outcomes with the recorded ones. "
                    "Exit 1 when the recorded outcome reproduces, 0 when this kernel behaves differently "
                    "(git bisect run reads that as bad/good), 2 on usage errors.")
    repro.add_argument("file", type=Path, metavar="FILE", help="a reproducer JSON written by a failed test")
    add_kernel_choice(repro)
    repro.add_argument("--target", choices=["qemu", "host"], default="qemu")
    repro.add_argument("--c", type=Path, default=None, metavar="OUT.c",
                       help="also write a standalone C reproducer; its expectations are this kernel's outcomes")
    peers = sub.add_parser("peers", help="run the kernel's own clone3 selftests on a kernel (the mutation peers)")
    add_kernel_choice(peers)
    trace = sub.add_parser("trace", help="write docs/TRACEABILITY.md: NOTES.md rules -> tests -> mutants, and the gaps")
    trace.add_argument("--out", type=Path, default=None, metavar="FILE", help="instead of docs/TRACEABILITY.md")
    trace.add_argument("--mutants-json", type=Path, default=None, metavar="FILE",
                       help="a `harness mutants` mutants.json: count a mutant only where a test of the rule killed it")
    trace.add_argument("--record-kills", type=Path, default=None, metavar="FILE",
                       help="first merge the kills of this `harness mutants` mutants.json into qemu/mutants/kills.json")


def _add_mutants(sub: argparse._SubParsersAction) -> None:
    mut = sub.add_parser(
        "mutants", help="run the suite on each kernel mutant (qemu/mutants/*.patch): killed or SURVIVED",
        description="Build each mutant of qemu/mutants/ on top of the reference series (incrementally), boot it, "
                    "run the suite, and print which tests kill it. The reference kernel runs first as the "
                    "baseline: a test that fails there does not count as a kill. Writes mutants.json; exit 0 "
                    "when every mutant is killed and the reference passes, 1 otherwise, 2 on usage errors.")
    mut.add_argument("--only", action="append", default=[], metavar="NAME",
                     help="this mutant only (file name without .patch); repeatable")
    mut.add_argument("--list", action="store_true", help="list the mutants and their bug classes, run nothing")
    mut.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                     help="suite runs (VMs) in parallel (default 1); kernel builds are serialised anyway")
    mut.add_argument("--suite", action="append", default=[], metavar="PATH",
                     help="test path (or node id) to run instead of the whole suite/; repeatable")
    mut.add_argument("--results", type=Path, metavar="DIR",
                     help="mutants.json and one log dir per run (default results/mutants)")
    mut.add_argument("--timeout", type=float, default=1800.0, metavar="SECONDS",
                     help="limit for one suite run (default 1800); past it the run counts as a timeout")
    mut.add_argument("--race-rounds", type=int, default=None, metavar="N", help="passed to pytest")
    mut.add_argument("--hypothesis-profile", default=None, metavar="NAME",
                     help="passed to pytest (ci, dev, fuzz; default ci)")
    mut.add_argument("--quick", action="store_true",
                     help="stop each mutant's run at its first kill (verdicts stay exact, killer lists are cut)")
    mut.add_argument("--no-peers", action="store_true",
                     help="skip the kernel's clone3 selftests (run on every kernel by default: the selftests column)")
    mut.add_argument("--fresh-baseline", action="store_true",
                     help="rerun the reference kernel even when a clean run of the same code is cached")
    mut.add_argument("pytest_args", nargs=argparse.REMAINDER, help="after --: passed to pytest")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    interrupt_on_termination()
    try:
        if args.command == "kernel":
            from .commands import kernel_build_command
            return kernel_build_command(args)
        if args.command == "run":
            from .commands import run_command
            return run_command(args)
        if args.command == "repro":
            from .repro.command import repro_command
            return repro_command(args)
        if args.command == "peers":
            from .commands import peers_command
            return peers_command(args)
        if args.command == "mutants":
            from .commands import mutants_command
            return mutants_command(args)
        if args.command == "fuzz":
            from .commands import fuzz_command
            return fuzz_command(args)
        if args.command == "trace":
            from .trace import trace_command
            return trace_command(args)
        if args.command == "bench":
            from .bench import bench_command
            return bench_command(args)
        raise UsageError(f"unknown command {args.command}")
    except HarnessError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Terminated as sig:
        print(f"interrupted: {sig}", file=sys.stderr)
        return 128 + sig.signum
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
