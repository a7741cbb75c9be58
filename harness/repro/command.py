"""`python -m harness repro FILE`: replay a failing test's programs on a kernel and compare.

Exit 1 when the kernel gives the recorded outcome again (the failure reproduces), 0 when it does not:
`git bisect run` reads that as bad/good. `--c OUT.c` also writes a standalone C reproducer whose
expectations are what this kernel did (the reference kernel by default, i.e. correct behaviour).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UsageError
from ..profiles.base import errno_name
from .c_reproducer import render_c
from .record import StepDiff, compare, expectations, load


def _describe(sig: dict | None) -> str:
    if sig is None:
        return "-"
    if "errno" in sig:
        text = errno_name(sig["errno"])
        return text + (f" {sig['nspid']}" if "nspid" in sig else "")
    return "ok" if sig.get("ok") else "not ok"


def print_diffs(diffs: list[StepDiff]) -> None:
    for diff in diffs:
        if diff.recorded is None and diff.now is None:
            continue
        mark = "same" if diff.same else "DIFFERS"
        print(f"run {diff.run} step {diff.step} {diff.op:8} recorded {_describe(diff.recorded):28} "
              f"now {_describe(diff.now):28} {mark}")


def repro_command(args: argparse.Namespace) -> int:
    from ..kernel_choice import resolve_kernel
    from ..targets.host import HostTarget
    from ..targets.qemu import QemuTarget
    recording = load(args.file)
    if not recording.runs:
        raise UsageError(f"{args.file}: the reproducer holds no program")
    target = HostTarget() if args.target == "host" else QemuTarget(resolve_kernel(args))
    with target:
        results = [target.run(run["program"]) for run in recording.runs]
    diffs = compare(recording, results)
    print(f"replaying {args.file} ({recording.test}) recorded on {recording.kernel or '?'}, now on "
          f"{target.info.kernel}")
    print_diffs(diffs)
    if args.c is not None:
        failing = next((d.run for d in diffs if not d.same), len(recording.runs) - 1)
        run = recording.runs[failing]
        source = render_c(run["program"], expectations(run["program"], results[failing]), title=recording.test)
        Path(args.c).write_text(source)
        print(f"C reproducer of run {failing} written to {args.c} (gcc -static -o repro {args.c} && ./repro)")
    reproduced = all(d.same for d in diffs)
    print("the recorded outcome reproduces on this kernel" if reproduced
          else "this kernel behaves differently from the recording")
    return 1 if reproduced else 0
