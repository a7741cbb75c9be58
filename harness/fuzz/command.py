"""`python -m harness fuzz`: check the options, get the kernel, run the session, report."""

from __future__ import annotations

import argparse
import sys
import time

from ..errors import UsageError
from ..paths import results_root
from ..progress import Progress, note
from .config import FuzzConfig, parse_duration, positive, resolve_db, select_tests
from .failures import Deduper
from .report import render, to_json, write_json
from .session import Watch, run_session, summary_counts


def fuzz_config(args: argparse.Namespace) -> FuzzConfig:
    """Options -> FuzzConfig (one-line UsageError each) and the kernel, built here with its own progress."""
    duration = parse_duration(args.duration)
    positive(args.fuzz_jobs, "--jobs")
    positive(args.examples, "--examples")
    positive(args.race_rounds, "--race-rounds")
    if args.slice < 0:
        raise UsageError("--slice must be 0 (off) or more")
    tests = select_tests(args.tests)
    db = resolve_db(args.db)
    from ..kernel_choice import pytest_kernel_argv, resolve_kernel
    from ..qemu_config import QemuConfig, require_binary
    require_binary(QemuConfig().binary)
    image = resolve_kernel(args)  # pytest workers then find it cached
    kernel_argv = pytest_kernel_argv(args, image)
    results = (args.results or results_root() / f"fuzz-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    if (results / "events.jsonl").exists():
        raise UsageError(f"{results} holds an earlier fuzz session: give another --results")
    results.mkdir(parents=True, exist_ok=True)
    extra = list(args.pytest_args)
    return FuzzConfig(duration=duration, jobs=args.fuzz_jobs, db=db, tests=tests, results=results,
                      kernel_argv=tuple(kernel_argv), examples=args.examples, race_rounds=args.race_rounds,
                      shrink=args.shrink, slice_s=args.slice,
                      pytest_args=tuple(extra[1:] if extra[:1] == ["--"] else extra))


def fuzz_command(args: argparse.Namespace) -> int:
    cfg = fuzz_config(args)
    note(f"fuzz: {', '.join(cfg.tests)} for {cfg.duration:.0f}s on {cfg.jobs} VMs; database {cfg.db}; "
         f"results {cfg.results}")
    started = time.time()
    watch = Watch(cfg.results, Deduper(started))
    progress = Progress("fuzz")
    runs, ended, error = run_session(cfg, watch, progress)
    seconds = time.time() - started
    progress.done(ended)
    failures = watch.dedupe.distinct()
    counts = summary_counts(watch, seconds)
    meta = {"started": started, "duration": cfg.duration, "ended": ended, "error": error, "jobs": cfg.jobs,
            "db": cfg.db, "tests": list(cfg.tests), "kernel": list(cfg.kernel_argv), "examples_per_run": cfg.examples,
            "slice_s": cfg.slice_s, "race_rounds": cfg.race_rounds, "shrink": cfg.shrink,
            "runs": [vars(r) for r in runs]}
    write_json(cfg.results / "fuzz.json", to_json(failures, counts, meta))
    for line in render(failures, counts, cfg.jobs, ended):
        print(line)
    print(f"results: {cfg.results / 'fuzz.json'}")
    sys.stdout.flush()
    if error:
        print(f"error: {error}", file=sys.stderr)
        return 2 if not failures else 1
    return 1 if failures else 0
