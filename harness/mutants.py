"""`python -m harness mutants`: how many plausible kernel bugs does the suite catch?

Each qemu/mutants/*.patch is one small bug on top of the reference eclone series. For each one we
build the kernel incrementally (only the changed files recompile), run the suite on it in a pytest
subprocess, and call it killed when a test fails that passes on the reference kernel (the
baseline, run first with the same selection). Verdicts and the table live in mutant_report.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from . import mutant_memory as memory
from .errors import BootError, BuildError, ConfigError, UsageError
from .mutant_peers import judge_selftests, peer_summary, prepare
from .mutant_report import (
    BOOT_FAILED,
    BUILD_FAILED,
    ERROR,
    KILLED,
    TIMEOUT,
    DetectorResult,
    MutantResult,
    RunOutcome,
    exit_code,
    judge,
    parse_junit,
    render_table,
    to_json,
    totals,
    write_json,
)
from .paths import MUTANTS_DIR, REPO_ROOT, cache_dir, results_root
from .peers import PeerResult
from .procgroup import kill_group as _kill_group  # pytest and its QEMU live in their own session
from .progress import Progress, note

Peers = tuple[dict[str, Path], list[PeerResult]] | None  # selftest binaries and their reference results
_FIELDS = {"Bug-class": "bug_class", "Breaks": "breaks", "Killer": "killer"}


@dataclass(frozen=True)
class Mutant:
    """One patch of qemu/mutants/ and what its header says about it."""

    name: str
    path: Path
    bug_class: str
    breaks: str = ""
    killer: str = ""


def parse_mutant(path: Path) -> Mutant:
    """Read the `Bug-class:` (required), `Breaks:` and `Killer:` lines of the patch description."""
    values: dict[str, str] = {}
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith(("diff --git", "--- ", "Index: ")) or line == "---":
            break
        key, sep, value = line.partition(":")
        if sep and key in _FIELDS and _FIELDS[key] not in values:
            values[_FIELDS[key]] = value.strip()
    if not values.get("bug_class"):
        raise ConfigError(f"{path}: no 'Bug-class:' line in the patch description")
    return Mutant(name=path.name.removesuffix(".patch"), path=path, **values)


def discover(directory: Path = MUTANTS_DIR) -> list[Mutant]:
    return [parse_mutant(p) for p in sorted(directory.glob("*.patch"))]


def select(mutants: list[Mutant], only: list[str]) -> list[Mutant]:
    """The mutants --only names (all when none); an unknown name is a usage error."""
    if not only:
        return mutants
    by_name = {m.name: m for m in mutants}
    for name in only:
        if name.removesuffix(".patch") not in by_name:
            raise UsageError(f"unknown mutant '{name}' (see python -m harness mutants --list)")
    wanted = dict.fromkeys(n.removesuffix(".patch") for n in only)
    return [by_name[n] for n in wanted]


@dataclass(frozen=True)
class RunConfig:
    """How every suite run of one `mutants` invocation is made."""

    suite: tuple[str, ...]
    pytest_args: tuple[str, ...]
    results: Path
    timeout: float
    live_progress: bool = True
    quick: bool = False  # stop a mutant's run at its first kill
    peers: bool = True  # also run the kernel's clone3 selftests on every kernel (the "selftests" column)


_CHILDREN: set[subprocess.Popen[str]] = set()
_CHILDREN_LOCK = threading.Lock()
_BUILD_LOCK = threading.Lock()
_MEMORY_LOCK = threading.Lock()
_STOP = threading.Event()  # set on Ctrl-C: no new build or run starts
_PERCENT = re.compile(r"\[\s*(\d+)%\]")
_EXIT_LINE = re.compile(r"Exit: (error: .*?)(?: !+)?$")


def pytest_argv(cfg: RunConfig, out: Path, patch: Path | None) -> list[str]:
    """The suite on the reference kernel (+ `patch`), reports into `out`."""
    argv = [sys.executable, "-m", "pytest", *cfg.suite, "-c", str(REPO_ROOT / "pytest.ini"),
            "--rootdir", str(REPO_ROOT), "--target", "qemu", "--results", str(out),
            "--junitxml", str(out / "junit.xml"), "-p", "no:cacheprovider", "-q"]
    if patch is not None:
        argv += ["--patch", str(patch.resolve())]
    return argv + list(cfg.pytest_args)


def terminate_children() -> None:
    with _CHILDREN_LOCK:
        children = list(_CHILDREN)
    for proc in children:
        _kill_group(proc)


def _percent(log: Path) -> str:
    try:
        with open(log, "rb") as fh:
            fh.seek(max(0, log.stat().st_size - 4096))
            found = _PERCENT.findall(fh.read().decode(errors="replace"))
    except OSError:
        return "starting"
    return f"{found[-1]}%" if found else "starting"


def _wait(proc: subprocess.Popen[str], log: Path, cfg: RunConfig, title: str) -> bool:
    """Wait for pytest with a progress line; False when it ran past cfg.timeout (then it is killed)."""
    progress = Progress(title) if cfg.live_progress else None
    deadline = time.monotonic() + cfg.timeout
    while True:
        try:
            proc.wait(timeout=2)
            break
        except subprocess.TimeoutExpired:
            if time.monotonic() > deadline:
                _kill_group(proc)
                return False
            if progress is not None:
                progress.update(_percent(log))
    if progress is not None:
        progress.done(f"pytest exit {proc.returncode}")
    return True


def _tail(text: str, lines: int = 8) -> str:
    return " | ".join(ln.strip() for ln in text.strip().splitlines()[-lines:] if ln.strip())


def run_suite(label: str, patch: Path | None, cfg: RunConfig, extra: tuple[str, ...] = ()) -> RunOutcome:
    """One pytest run in its own session; the verdict comes from its junit file and exit status."""
    out = cfg.results / label
    out.mkdir(parents=True, exist_ok=True)
    junit, log = out / "junit.xml", out / "pytest.log"
    junit.unlink(missing_ok=True)
    started = time.monotonic()
    if _STOP.is_set():
        return RunOutcome(ERROR, detail="interrupted")
    with open(log, "w") as fh:
        proc = subprocess.Popen([*pytest_argv(cfg, out, patch), *extra], cwd=REPO_ROOT, stdout=fh,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                                start_new_session=True)
        with _CHILDREN_LOCK:
            _CHILDREN.add(proc)
        try:
            finished = _wait(proc, log, cfg, f"{label}: suite")
        finally:
            with _CHILDREN_LOCK:
                _CHILDREN.discard(proc)
    seconds = time.monotonic() - started
    text = log.read_text(errors="replace")
    if not finished:
        return RunOutcome(TIMEOUT, seconds=seconds, detail=f"suite run exceeded {cfg.timeout:.0f}s (log: {log})")
    if proc.returncode == 2:
        exits = [m.group(1) for ln in text.splitlines() if (m := _EXIT_LINE.search(ln.strip()))]
        if exits:
            return RunOutcome(BOOT_FAILED, seconds=seconds, detail=exits[-1])
    if proc.returncode not in (0, 1) or not junit.is_file():
        return RunOutcome(ERROR, seconds=seconds, detail=f"pytest exit {proc.returncode}: {_tail(text, 3)}")
    tests, failed = parse_junit(junit, REPO_ROOT)
    return RunOutcome("completed", failed=failed, tests=tests, seconds=seconds)


def build_mutant(mutant: Mutant) -> tuple[float, str, Path | None]:
    """Build reference + mutant (serialised); returns (seconds, "" or why the build failed, image)."""
    from .kernel_build import build_kernel, reference_request
    with _BUILD_LOCK:
        started = time.monotonic()
        if _STOP.is_set():
            return 0.0, "interrupted", None
        try:
            image = build_kernel(reference_request(extra_patches=(mutant.path,)))
        except BuildError as err:
            return time.monotonic() - started, compiler_tail(str(err)), None
    return time.monotonic() - started, "", image


def compiler_tail(message: str, lines: int = 6) -> str:
    """The last error/warning lines of the build log a BuildError names, else the message itself."""
    match = re.search(r"\((/[^()]*build\.log)\)", message)
    if match and Path(match.group(1)).is_file():
        log = Path(match.group(1)).read_text(errors="replace").splitlines()
        picked = [ln.strip() for ln in log if "error" in ln.lower() or "warning:" in ln][-lines:]
        return " | ".join(picked or [ln.strip() for ln in log[-lines:]])
    return message


def _code_hash(cfg: RunConfig, image: Path) -> str:
    """Everything a baseline result depends on: the image, the selection, and the code that tests it."""
    h = hashlib.sha256()
    h.update(str(image.resolve()).encode())
    h.update(json.dumps([cfg.suite, cfg.pytest_args]).encode())
    for base in ("suite", "harness", "pytest.ini", "conftest.py"):
        root = REPO_ROOT / base
        for path in sorted([root] if root.is_file() else root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(REPO_ROOT)).encode())
                h.update(path.read_bytes())
    return h.hexdigest()[:16]


def baseline_outcome(cfg: RunConfig, fresh: bool) -> tuple[RunOutcome, bool]:
    """The reference kernel's run, reused when one exists for exactly this code and selection.

    Returns (outcome, cached). Failing baseline tests are cached too (they are reported every time,
    and the exit status stays 1); --fresh-baseline reruns, e.g. after a flaky failure.
    """
    from .kernel_build import build_kernel, reference_request
    image = build_kernel(reference_request())
    cache = cache_dir() / "mutants" / f"baseline-{_code_hash(cfg, image)}.json"
    if cache.is_file() and not fresh:
        note(f"baseline: reusing the reference run of this code in {cache}")
        return RunOutcome(**json.loads(cache.read_text())), True
    outcome = run_suite("reference", None, cfg)
    if outcome.status == "completed":
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(asdict(outcome)))
    return outcome, False


def _judge_one(mutant: Mutant, cfg: RunConfig, baseline_failed: set[str], peers: Peers) -> MutantResult:
    result = MutantResult(name=mutant.name, bug_class=mutant.bug_class, breaks=mutant.breaks,
                          patch=str(mutant.path.relative_to(REPO_ROOT)) if mutant.path.is_relative_to(REPO_ROOT)
                          else str(mutant.path))
    result.build_seconds, why, image = build_mutant(mutant)
    if why:
        result.detectors["suite"] = DetectorResult(verdict=BUILD_FAILED, detail=why)
    else:
        result.detectors["suite"] = _judge_suite(mutant, cfg, baseline_failed)
        with _MEMORY_LOCK:
            memory.remember(mutant.name, result.detectors["suite"].killed_by)
        if peers is not None and image is not None and not _STOP.is_set():
            result.detectors["selftests"] = judge_selftests(image, *peers, cfg.results / mutant.name)
    det = result.detectors["suite"]
    count = f" by {len(det.killed_by)} tests" if det.killed_by else ""
    if "selftests" in result.detectors:
        count += f"; selftests: {result.detectors['selftests'].verdict}"
    note(f"mutant {mutant.name}: {result.verdict}{count} (build {result.build_seconds:.0f}s, run {det.seconds:.0f}s)")
    return result


def _judge_suite(mutant: Mutant, cfg: RunConfig, baseline_failed: set[str]) -> DetectorResult:
    """The suite's verdict on a built mutant. --quick: the tests that killed it last time run alone first
    (seconds, no whole-suite collection); if they no longer kill it, the whole suite runs with them first
    and stops at its first kill (with B tests failing on the reference, B + 1 failures include a kill)."""
    if not cfg.quick:
        return judge(run_suite(mutant.name, mutant.path, cfg), baseline_failed)
    known = [t for t in memory.load().get(mutant.name, []) if selected(t, cfg.suite) and t not in baseline_failed]
    spent = 0.0
    if known:
        first = judge(run_suite(mutant.name, mutant.path, replace(cfg, suite=tuple(known[:memory.FIRST]))),
                      baseline_failed)
        if first.verdict == KILLED:
            return first
        spent = first.seconds
    extra = ("--maxfail", str(len(baseline_failed) + 1), *memory.first_args(known))
    verdict = judge(run_suite(mutant.name, mutant.path, cfg, extra), baseline_failed)
    verdict.seconds += spent
    return verdict


def selected(nodeid: str, suite: tuple[str, ...]) -> bool:
    """Is this test inside the run's selection (paths, directories or node ids)?"""
    path = nodeid.split("::", 1)[0]
    return any(nodeid == s or nodeid.startswith((f"{s}::", f"{s}[")) or path == s.rstrip("/")
               or path.startswith(s.rstrip("/") + "/") for s in suite)


def run_all(mutants: list[Mutant], cfg: RunConfig, jobs: int, fresh_baseline: bool) -> int:
    started = time.time()
    out_json = cfg.results / "mutants.json"
    baseline, cached = baseline_outcome(cfg, fresh_baseline)
    if baseline.status != "completed":
        raise BootError(f"reference kernel: {baseline.status}: {baseline.detail}")
    if baseline.failed:
        note(f"baseline: {len(baseline.failed)} tests fail on the reference kernel; they do not count as kills")
    peers = _prepare_peers(cfg)
    base = {**asdict(baseline), "cached": cached}
    meta = {"started": started, "suite": list(cfg.suite), "pytest_args": list(cfg.pytest_args), "jobs": jobs,
            "quick": cfg.quick, "selftests_baseline": [asdict(r) for r in peers[1]] if peers else None}
    results: list[MutantResult] = []
    lock = threading.Lock()

    def one(mutant: Mutant) -> MutantResult:
        result = _judge_one(mutant, cfg, set(baseline.failed), peers)
        with lock:  # partial results survive an interrupted nightly run
            results.append(result)
            write_json(out_json, to_json(_ordered(results, mutants), base, meta))
        return result

    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        list(pool.map(one, mutants))
    except BaseException:
        _STOP.set()
        terminate_children()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    ordered = _ordered(results, mutants)
    wall = time.time() - started
    write_json(out_json, to_json(ordered, base, {**meta, "finished": time.time(), "wall_seconds": wall}))
    for line in render_table(ordered):
        print(line)
    for line in peer_summary(ordered):
        print(line)
    counts = totals(ordered)
    summary = ", ".join(f"{counts[k]} {k}" for k in counts if k != "mutants" and counts[k])
    print(f"\n{counts['mutants']} mutants: {summary}; reference kernel: "
          f"{'passes' if not baseline.failed else f'{len(baseline.failed)} failing tests'}"
          f" ({baseline.tests} tests{', cached' if cached else ''}); wall time {wall:.0f}s"
          f"{'; --quick: each run stopped at its first kill' if cfg.quick else ''}")
    print(f"results: {out_json}")
    return exit_code(ordered, baseline.failed)


def _prepare_peers(cfg: RunConfig) -> Peers:
    if not cfg.peers:
        return None
    from .kernel_build import build_kernel, reference_request
    return prepare(build_kernel(reference_request()), cfg.results / "reference")


def _ordered(results: list[MutantResult], mutants: list[Mutant]) -> list[MutantResult]:
    rank = {m.name: i for i, m in enumerate(mutants)}
    return sorted(results, key=lambda r: rank[r.name])


def run_config(args: argparse.Namespace) -> RunConfig:
    """Check the options (one-line UsageError each) and turn them into a RunConfig."""
    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    if args.timeout <= 0:
        raise UsageError("--timeout must be positive")
    suite = tuple(args.suite) or ("suite",)
    for path in suite:
        if not (REPO_ROOT / path.split("::")[0]).exists():
            raise UsageError(f"no such test path: {path}")
    extra = list(args.pytest_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    if args.race_rounds is not None:
        if args.race_rounds < 1:
            raise UsageError("--race-rounds must be at least 1")
        extra += ["--race-rounds", str(args.race_rounds)]
    if args.hypothesis_profile is not None:
        from .hypothesis_profiles import PROFILES
        if args.hypothesis_profile not in PROFILES:
            raise UsageError(f"unknown hypothesis profile '{args.hypothesis_profile}' ({', '.join(PROFILES)})")
        extra += ["--hypothesis-profile", args.hypothesis_profile]
    results = (args.results or results_root() / "mutants").resolve()
    return RunConfig(suite=suite, pytest_args=tuple(extra), results=results, timeout=args.timeout,
                     live_progress=args.jobs == 1, quick=args.quick, peers=not args.no_peers)


def mutants_command(args: argparse.Namespace) -> int:
    mutants = discover()
    if not mutants:
        raise ConfigError(f"no mutants in {MUTANTS_DIR}")
    chosen = select(mutants, args.only)
    if args.list:
        width = max(len(m.name) for m in chosen)
        for m in chosen:
            print(f"{m.name.ljust(width)}  {m.bug_class}")
        return 0
    cfg = run_config(args)
    from .qemu_config import QemuConfig, require_binary
    require_binary(QemuConfig().binary)
    return run_all(chosen, cfg, args.jobs, args.fresh_baseline)
