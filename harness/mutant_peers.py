"""The kernel's own clone3 selftests as a second detector of `harness mutants`.

The suite claims to catch more than the selftests; the mutants run checks that on the same kernels:
the selftests run on the reference kernel once, then on each mutant, and a case that passed on the
reference and fails on the mutant is a selftest kill (harness/peers.py has the building and parsing).
"""

from __future__ import annotations

import time
from pathlib import Path

from .errors import GuestCrash, HarnessError
from .mutant_report import ERROR, KILLED, SURVIVED, DetectorResult, MutantResult
from .peers import PeerResult, build_selftests, peer_kills, run_selftests
from .progress import note


def prepare(reference_image: Path, out: Path) -> tuple[dict[str, Path], list[PeerResult]] | None:
    """Build the selftests from the pristine tree and run them on the reference kernel; None (with a
    note) when they cannot be built here, so the table simply has no selftests column."""
    from .kernel_build import pristine_tree
    from .targets.qemu import QemuTarget
    try:
        binaries = build_selftests(pristine_tree())
        with QemuTarget(reference_image, console_log=out / "selftests-console.log") as target:
            baseline = run_selftests(target, binaries)
    except HarnessError as err:
        note(f"selftests: not compared ({err})")
        return None
    passing = sum(v == "ok" for r in baseline for v in r.cases.values())
    note(f"selftests: {passing} cases pass on the reference kernel")
    return binaries, baseline


def judge_selftests(image: Path, binaries: dict[str, Path], baseline: list[PeerResult], out: Path) -> DetectorResult:
    """Run the selftests on a mutant kernel; a kernel crash they provoke counts as their kill."""
    from .targets.qemu import QemuTarget
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with QemuTarget(image, console_log=out / "selftests-console.log") as target:
            results = run_selftests(target, binaries)
    except GuestCrash as crash:
        return DetectorResult(verdict=KILLED, killed_by=[f"kernel crash: {crash.title}"],
                              seconds=time.monotonic() - started)
    except HarnessError as err:
        return DetectorResult(verdict=ERROR, detail=str(err)[:200], seconds=time.monotonic() - started)
    kills = peer_kills(baseline, results)
    return DetectorResult(verdict=KILLED if kills else SURVIVED, killed_by=kills,
                          tests=sum(len(r.cases) for r in results), seconds=time.monotonic() - started)


def peer_summary(results: list[MutantResult]) -> list[str]:
    """Acceptance of the comparison: the suite kills every mutant the selftests kill; who only the suite kills."""
    compared = [r for r in results if "selftests" in r.detectors and "suite" in r.detectors]
    if not compared:
        return []
    by_selftests = [r.name for r in compared if r.detectors["selftests"].verdict == KILLED]
    by_suite = {r.name for r in compared if r.detectors["suite"].verdict == KILLED}
    missed = [name for name in by_selftests if name not in by_suite]
    only_suite = [r.name for r in compared if r.name in by_suite and r.name not in by_selftests]
    lines = [f"selftests kill {len(by_selftests)} of {len(compared)} mutants"
             + (f": {', '.join(by_selftests)}" if by_selftests else ""),
             f"the suite kills {len(by_suite)} of {len(compared)}; "
             + ("it kills every mutant the selftests kill" if not missed
                else f"the selftests kill {len(missed)} the suite misses: {', '.join(missed)}"),
             f"only the suite kills {len(only_suite)}: {', '.join(only_suite) or '-'}"]
    return lines
