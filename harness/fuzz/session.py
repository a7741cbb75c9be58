"""Fuzz runs: pytest with xdist (one VM per worker) in its own process group, watched until the deadline.

A run repeats every selected test (plugin.py's rounds); when it ends before the deadline another one
starts. At the deadline or on Ctrl-C the run's group gets SIGINT (pytest and xdist shut their workers
down, each worker closes its VM), then SIGTERM, then SIGKILL; QEMU also dies with its parent. Reports
arrive as event lines while the run goes on, so stopping it loses only the tests in flight.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..hypothesis_profiles import FUZZ_DB_ENV, FUZZ_EXAMPLES_ENV, FUZZ_SHRINK_ENV
from ..paths import REPO_ROOT
from ..procgroup import group_alive, kill_group
from ..progress import Progress
from .config import FuzzConfig
from .failures import Deduper

STOP_STEPS = ((signal.SIGINT, 30.0), (signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0))
LEFTOVER_WAIT = 10.0  # for workers still exiting after pytest itself did
MIN_RUN_SECONDS = 20.0  # no new run with less left: starting workers and VMs takes ~10 s of it
SECONDS_PER_ROUND = 20.0  # rounds a run asks for: more than it can do by the deadline (extra ones are free)


def rounds_for(remaining: float) -> int:
    return max(2, min(500, math.ceil(remaining / SECONDS_PER_ROUND)))


def pytest_argv(cfg: FuzzConfig, run_dir: Path, rounds: int) -> list[str]:
    """One run: the selection repeated `rounds` times on cfg.jobs workers, reports streamed to events.jsonl."""
    return [sys.executable, "-m", "pytest", *cfg.tests, "-c", str(REPO_ROOT / "pytest.ini"),
            "--rootdir", str(REPO_ROOT), "--target", "qemu", *cfg.kernel_argv, "--results", str(run_dir),
            "-n", str(cfg.jobs), "--maxschedchunk", "1", "-p", "harness.fuzz.plugin", "--fuzz-rounds", str(rounds),
            "--fuzz-events", str(cfg.results / "events.jsonl"), "--fuzz-live", str(run_dir / "live"),
            "--hypothesis-profile", "fuzz", "--race-rounds", str(cfg.race_rounds), "--fuzz-slice", str(cfg.slice_s),
            "-p", "no:cacheprovider", "-q", *cfg.pytest_args]


def pytest_env(cfg: FuzzConfig) -> dict[str, str]:
    """Workers inherit it: the shared database, examples per test run, shrinking or not."""
    return {**os.environ, "ECLONE_SUITE_HYPOTHESIS": "fuzz", FUZZ_DB_ENV: cfg.db,
            FUZZ_EXAMPLES_ENV: str(cfg.examples), FUZZ_SHRINK_ENV: "1" if cfg.shrink else "0",
            "PYTHONUNBUFFERED": "1"}


@dataclass
class Watch:
    """What the runs reported so far: failures (deduplicated), outcomes, and the workers' counters."""

    results: Path
    dedupe: Deduper
    outcomes: dict[str, int] = field(default_factory=dict)
    cutoff: float | None = None  # reports after a stop signal are interrupted tests, not findings
    _offset: int = 0

    def poll(self) -> None:
        path = self.results / "events.jsonl"
        if not path.is_file():
            return
        with open(path) as fh:
            fh.seek(self._offset)
            chunk = fh.read()
        complete = chunk[:chunk.rfind("\n") + 1]
        self._offset += len(complete.encode())
        for line in complete.splitlines():
            event = json.loads(line)
            if self.cutoff is not None and event["t"] >= self.cutoff:
                continue
            key = f"{event['when']}-{event['outcome']}" if event["when"] != "call" else event["outcome"]
            self.outcomes[key] = self.outcomes.get(key, 0) + 1
            if event["outcome"] == "failed":
                self.dedupe.add(event)

    def counters(self) -> tuple[int, int]:
        """(examples, programs) over every run's workers."""
        examples = programs = 0
        for path in self.results.glob("run-*/live/*.json"):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # being replaced right now: counted on the next poll
            examples += data["examples"]
            programs += data["programs"]
        return examples, programs

    def tests_run(self) -> int:
        return sum(n for k, n in self.outcomes.items() if k in ("passed", "failed"))

    def line(self, elapsed: float, left: float) -> str:
        examples, programs = self.counters()
        rate = max(elapsed, 1.0)
        crashes = sum(f.count for f in self.dedupe.failures.values() if f.kind == "crash")
        return (f"{examples} examples ({examples / rate:.1f}/s), {programs} programs ({programs / rate:.0f}/s), "
                f"{len(self.dedupe.failures)} distinct failures, {crashes} crashes, {left:.0f}s left")


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        return subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    """SIGINT (a clean pytest/xdist shutdown), SIGTERM, SIGKILL; then nothing of the group may be left."""
    try:
        kill_group(proc, STOP_STEPS)
    except KeyboardInterrupt:  # a second Ctrl-C: no more waiting
        kill_group(proc, ((signal.SIGKILL, 10.0),))
        raise
    deadline = time.monotonic() + LEFTOVER_WAIT
    while group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if group_alive(proc.pid):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 5
        while group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)


@dataclass
class RunRecord:
    """One pytest run of the session, for fuzz.json."""

    index: int
    rounds: int
    seconds: float
    status: str  # finished, deadline, interrupted
    exit: int | None
    log: str


def _wait(proc: subprocess.Popen, deadline: float, watch: Watch, progress: Progress, started: float) -> str:
    while True:
        try:
            proc.wait(timeout=1.0)
            return "finished"
        except subprocess.TimeoutExpired:
            pass
        watch.poll()
        progress.update(watch.line(time.monotonic() - started, max(0.0, deadline - time.monotonic())))
        if time.monotonic() >= deadline:
            return "deadline"


def run_session(cfg: FuzzConfig, watch: Watch, progress: Progress) -> tuple[list[RunRecord], str, str | None]:
    """Runs until the deadline or Ctrl-C: (runs, why it ended, error or None)."""
    started = time.monotonic()
    deadline = started + cfg.duration
    runs: list[RunRecord] = []
    while not runs or deadline - time.monotonic() >= MIN_RUN_SECONDS:
        run_dir = cfg.results / f"run-{len(runs)}"
        rounds = rounds_for(deadline - time.monotonic())
        before = watch.tests_run()
        t0 = time.monotonic()
        proc = None
        try:
            proc = start(pytest_argv(cfg, run_dir, rounds), pytest_env(cfg), run_dir / "pytest.log")
            status = _wait(proc, deadline, watch, progress, started)
        except KeyboardInterrupt:
            status = "interrupted"
        if proc is None:
            return runs, status, None
        if status != "finished":
            watch.cutoff = time.time()
            stop(proc)
        watch.poll()
        runs.append(RunRecord(len(runs), rounds, time.monotonic() - t0, status, proc.returncode,
                              str(run_dir / "pytest.log")))
        if status != "finished":
            return runs, status, None
        if proc.returncode not in (0, 1) or watch.tests_run() == before:
            return runs, "error", _run_error(proc.returncode, run_dir / "pytest.log", watch.tests_run() == before)
    return runs, "deadline", None


def _run_error(code: int | None, log: Path, nothing_ran: bool) -> str:
    text = log.read_text(errors="replace") if log.is_file() else ""
    tail = " | ".join(ln.strip() for ln in text.strip().splitlines()[-3:] if ln.strip())
    why = "no test ran (all skipped?)" if nothing_ran and code in (0, 1, 5) else f"pytest exit {code}"
    return f"{why}: {tail} (log: {log})"


def summary_counts(watch: Watch, seconds: float) -> dict[str, Any]:
    examples, programs = watch.counters()
    return {"examples": examples, "programs": programs, "seconds": round(seconds, 1),
            "examples_per_second": round(examples / max(seconds, 1.0), 2),
            "programs_per_second": round(programs / max(seconds, 1.0), 1),
            "test_runs": watch.tests_run(), "outcomes": watch.outcomes}
