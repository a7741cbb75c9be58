"""pytest side of `--coverage-out DIR`: reset the counters before the first test, read them after the last one
(in the same VM), then gcov, the report and the HTML. Registered by harness/pytest_plugin.py."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..errors import HarnessError
from . import collect
from .artifacts import Artifacts, load_artifacts
from .gcov import FileCoverage, run_gcov
from .patch_lines import realigned, series_added_lines
from .report import build_report, cobertura_xml, terminal_lines, write_html

if TYPE_CHECKING:
    from harness.targets.base import Target

PLUGIN_NAME = "eclone-suite-coverage"


class CoveragePlugin:
    """One per pytest process; with xdist each worker saves its counters and the controller reports."""

    def __init__(self, config: pytest.Config, get_target: Callable[[], Any], fatal: list[str]) -> None:
        if config.getoption("--target") != "qemu":
            raise pytest.UsageError("--coverage-out needs the qemu target (gcov counters of the guest kernel)")
        self.config = config
        self.out = Path(config.getoption("--coverage-out"))
        self.get_target = get_target
        self.fatal = fatal
        self.worker = getattr(config, "workerinput", {}).get("workerid", "")
        self.artifacts: Artifacts | None = None
        self.boots = 0
        self.lines: list[str] = []
        if not self.worker:
            shutil.rmtree(self.out / "gcda", ignore_errors=True)  # counters of an earlier run in the same dir

    def _artifacts(self) -> Artifacts:
        if self.artifacts is None:
            from ..targets.factory import kernel_for
            self.artifacts = load_artifacts(kernel_for(self.config))
        return self.artifacts

    def start(self, target: Target) -> None:
        """Before the first test (autouse fixture): a kernel without gcov stops the run here."""
        if self.boots:
            return
        self._artifacts()
        collect.start(target)
        self.boots = target.boots

    def collect(self) -> None:
        target = self.get_target()
        if target is None or not self.boots:
            return
        if target.boots != self.boots:
            self.lines.append(f"warning: the VM rebooted {target.boots - self.boots} time(s) during the run; "
                              "counters of the earlier boots are lost")
        art = self._artifacts()
        gcda = collect.read_gcda(target, art.objtree, art.sources)
        collect.save_gcda(gcda, self.out / "gcda" / (self.worker or "main"))

    def report(self) -> dict[str, Any] | None:
        """Every run's counters under gcda/ summed, gcov'ed against the image's notes files, and reported."""
        art = self._artifacts()
        runs = sorted(p for p in (self.out / "gcda").glob("*") if p.is_dir())
        if not runs:
            return None
        files: dict[str, FileCoverage] = {}
        for run in runs:
            for source in art.sources:
                counters = (run / source).with_suffix(".gcda").read_bytes()
                per_file = run_gcov(counters, art.gcno(source), Path(art.src_root))
                if source not in per_file:
                    raise ValueError(f"gcov found no counters of {source} in its .gcda (sources: {sorted(per_file)})")
                # headers' inline functions show up in every object, each with its own inlined copy: left out
                files.setdefault(source, FileCoverage()).merge(per_file[source])
        from ..kernel_build import reference_patches
        series = {p.stem for p in reference_patches()}
        texts = {s: art.source(s).read_text(errors="replace").splitlines() for s in art.sources}
        added = {name: realigned(lines, texts[name]) if name in texts else lines
                 for name, lines in series_added_lines(list(art.patches)).items()}
        result = build_report(files, art.sources, added, series, texts)
        result["runs"] = len(runs)
        cobertura = self.out / "cobertura.xml"
        cobertura.write_text(cobertura_xml(files, art.sources, art.src_dir))
        problem = write_html(cobertura, art.src_dir, self.out)
        result["html"] = str(self.out / "index.html") if problem is None else None
        if problem:
            self.lines.append(f"warning: no HTML report: {problem}")
        (self.out / "coverage.json").write_text(json.dumps(result, indent=1))
        return result

    @pytest.hookimpl(trylast=True)  # after the summary collector wrote summary.json, before the target closes
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        try:
            self.collect()
            if self.worker:
                return
            result = self.report()
        except (HarnessError, ValueError, OSError) as err:
            self.fatal.append(f"coverage: {err}")
            self.lines.append(f"error: {err}")
            return
        if result is None:
            return
        self.lines = terminal_lines(result) + self.lines
        results = self.config.getoption("--results", None)
        summary = Path(results) / "summary.json" if results is not None else None
        if summary is not None and summary.is_file():
            data = json.loads(summary.read_text())
            data["coverage"] = result
            summary.write_text(json.dumps(data, indent=1))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.lines and not self.worker:
            terminalreporter.section("kernel coverage")
            for line in self.lines:
                terminalreporter.write_line(line)
