"""The pytest side of `harness fuzz`, loaded with `-p harness.fuzz.plugin` (PYTEST_DONT_REWRITE).

- Repetition: with --fuzz-rounds R every test gets a `_fuzz_round` parameter (as pytest-repeat does) and
  the items are ordered round by round, so xdist's load scheduling gives each worker a mix of tests, not
  one test's R rounds. Hypothesis keys its database by node id for parametrised tests: the round is
  taken out of that key, so every round replays and grows one corpus per test.
- Time shares (with --fuzz-slice S; the workers see each other's records): examples per test run and
  turns so that every test function gets about the same VM time and its profiles take turns (share.py);
  a test sitting a round out is skipped with the reason.
- Counting (in each worker): programs sent to the target, and examples (a program run under a new
  hypothesis build context starts an example); written to --fuzz-live DIR/<worker>.json about once a
  second, where the fuzz command reads them for its live line.
- Failures (in each worker, where the exception is at hand): titled by failures.py and attached to the
  report's user_properties, which xdist sends to the controller.
- Events (in the controller): one JSON line per test report to --fuzz-events FILE, as reports arrive,
  so a run stopped at the deadline has already told the fuzz command everything it found.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness import report_sections

from .failures import base_nodeid, failure_titles, reproducer
from .report import write_json
from .share import SHARE_SKIP, Share

if TYPE_CHECKING:
    from harness.targets.base import Target

ROUND = "_fuzz_round"
_MESSAGE_CHARS = 4000


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("eclone-fuzz", "harness fuzz (normally set by python -m harness fuzz)")
    group.addoption("--fuzz-rounds", type=int, default=0, metavar="R", help="run every selected test R times")
    group.addoption("--fuzz-events", type=Path, default=None, metavar="FILE", help="append test reports here")
    group.addoption("--fuzz-live", type=Path, default=None, metavar="DIR", help="per-worker counters here")
    group.addoption("--fuzz-slice", type=float, default=0.0, metavar="S",
                    help="about S seconds per test run, equal time per test function (0: fixed examples)")


@pytest.fixture
def _fuzz_round(request: pytest.FixtureRequest) -> int:
    return request.param


@pytest.hookimpl(trylast=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    rounds = metafunc.config.getoption("--fuzz-rounds")
    if rounds > 0:
        metafunc.fixturenames.append(ROUND)
        metafunc.parametrize(ROUND, range(rounds), indirect=True, ids=[f"fuzz{i}" for i in range(rounds)])


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Round-major order (a stable sort: the same on every worker, as xdist requires)."""
    def round_of(item: pytest.Item) -> int:
        callspec = getattr(item, "callspec", None)
        return callspec.params.get(ROUND, 0) if callspec is not None else 0
    items.sort(key=round_of)


class Counter:
    """Programs and examples this process ran, flushed to a small JSON file for the fuzz command."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.programs = 0
        self.examples = 0
        self._context: Any = None
        self._flushed = 0.0

    def program(self) -> None:
        self.programs += 1
        context = _build_context()
        if context is not None and context is not self._context:
            self._context = context  # held, so a new context can never reuse its identity
            self.examples += 1
        if time.monotonic() - self._flushed >= 1.0:
            self.flush()

    def flush(self) -> None:
        self._flushed = time.monotonic()
        if self.path is not None:
            write_json(self.path, {"programs": self.programs, "examples": self.examples, "t": time.time()})


def _build_context() -> Any:
    """The hypothesis example being run, if any (one build context per example)."""
    from hypothesis.control import current_build_context
    from hypothesis.errors import InvalidArgument
    try:
        return current_build_context()
    except InvalidArgument:
        return None


_COUNTER_KEY = pytest.StashKey[Counter]()


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def pytest_configure(config: pytest.Config) -> None:
    live = config.getoption("--fuzz-live")
    config.stash[_COUNTER_KEY] = Counter(live / f"{_worker()}.json" if live else None)
    slice_s = config.getoption("--fuzz-slice")
    if slice_s > 0:
        from harness.hypothesis_profiles import fuzz_examples
        config.pluginmanager.register(TimeShares(Share(slice_s, fuzz_examples() or 20), live), "eclone-fuzz-shares")
    events = config.getoption("--fuzz-events")
    if events is not None and not hasattr(config, "workerinput"):  # workers' reports reach the controller
        config.pluginmanager.register(EventWriter(events), "eclone-fuzz-events")


def _count_programs(target: Target, counter: Counter) -> None:
    """Wrap the session target's run() once (an instance attribute shadows the method)."""
    if target is None or getattr(target, "_fuzz_counted", False):
        return
    run = target.run

    def counted(*args: Any, **kwargs: Any) -> Any:
        try:
            return run(*args, **kwargs)
        finally:
            counter.program()

    target.run = counted
    target._fuzz_counted = True


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    """After hypothesis's wrapper gave a parametrised test its node-id database key: drop the round."""
    inner = getattr(getattr(getattr(item, "obj", None), "hypothesis", None), "inner_test", None)
    if inner is not None and getattr(inner, "_hypothesis_internal_add_digest", None) is not None:
        inner._hypothesis_internal_add_digest = base_nodeid(item.nodeid).encode()
    funcargs = getattr(item, "funcargs", {})
    _count_programs(funcargs.get("target"), item.config.stash[_COUNTER_KEY])


class TimeShares:
    """With --fuzz-slice (registered in each worker): turns and examples per run from share.py, this
    worker's records shared with the others through DIR/<worker>.share beside the live counters."""

    def __init__(self, share: Share, live: Path | None) -> None:
        self.share = share
        self.path = live / f"{_worker()}.share" if live else None

    def _others(self) -> None:
        if self.path is None:
            return
        others = []
        for path in self.path.parent.glob("*.share"):
            if path != self.path:
                try:
                    others.append(json.loads(path.read_text()))
                except (OSError, ValueError):
                    continue  # being replaced: the next decision reads it
        self.share.others = others

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        self.share.collected = {base_nodeid(item.nodeid) for item in items}

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        """A test a slice ahead of the least served one sits this round out."""
        self._others()
        if why := self.share.waits(base_nodeid(item.nodeid)):
            pytest.skip(why)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """A test that skips itself (its profile, too few CPUs) or cannot be set up takes no turns."""
        ours = report.skipped and SHARE_SKIP in str(report.longrepr)
        if (report.skipped and not ours) or (report.when == "setup" and report.failed):
            self.share.skips.add(base_nodeid(report.nodeid))
            self._publish()

    def _publish(self) -> None:
        if self.path is not None:
            write_json(self.path, self.share.mine())

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Any:
        """The run's examples, and what the run cost (a run that skipped costs nothing)."""
        test = base_nodeid(item.nodeid)
        count = self.share.examples_for(test)
        started = time.monotonic()
        with _examples(item, count):
            outcome = yield
        if outcome.excinfo is None or not isinstance(outcome.excinfo[1], pytest.skip.Exception):
            self.share.record(test, time.monotonic() - started, count)
            self._publish()


class _examples:  # used like a function: `with _examples(item, n):`
    """The fuzz profile's examples for one test run: the loaded profile (tests that read it when they run)
    and the settings a @given test took from it when it was decorated; both put back after."""

    def __init__(self, item: pytest.Item, count: int) -> None:
        self.obj, self.count = getattr(item, "obj", None), count
        self.saved: Any = None

    def __enter__(self) -> None:
        from hypothesis import settings

        from harness.hypothesis_profiles import use_fuzz_examples
        before = settings.default.max_examples
        use_fuzz_examples(self.count)
        self.saved = getattr(self.obj, "_hypothesis_internal_use_settings", None)
        if self.saved is not None and self.saved.max_examples == before:  # taken from the profile
            self.obj._hypothesis_internal_use_settings = settings(self.saved, max_examples=self.count)

    def __exit__(self, *exc: object) -> None:
        from harness.hypothesis_profiles import use_fuzz_examples
        use_fuzz_examples(None)
        if self.saved is not None:
            self.obj._hypothesis_internal_use_settings = self.saved


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Outermost wrapper: the suite's plugin has already turned a console crash into a failure."""
    outcome = yield
    report = outcome.get_result()
    counter = item.config.stash[_COUNTER_KEY]
    if report.failed:
        exc = call.excinfo.value if call.excinfo is not None else None
        titles = failure_titles(base_nodeid(item.nodeid), report.sections, exc, report.longreprtext)
        report.user_properties.append(("fuzz_failures", titles))
    if call.when == "teardown":
        counter.flush()
    report.user_properties.append(("fuzz_worker", _worker()))


class EventWriter:
    """In the controller (or a run without xdist): one event line per report that matters."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call" and not report.failed:
            return
        props = dict(report.user_properties)
        event = {"t": time.time(), "test": base_nodeid(report.nodeid), "nodeid": report.nodeid,
                 "when": report.when, "outcome": report.outcome, "worker": props.get("fuzz_worker"),
                 "duration": report.duration}
        if report.failed:
            event["failures"] = props.get("fuzz_failures") or failure_titles(
                event["test"], report.sections, None, report.longreprtext)
            event["message"] = _message(report)[:_MESSAGE_CHARS]
            event["reproducer"] = reproducer(report.sections)
        with open(self.path, "a") as fh:
            fh.write(json.dumps(event) + "\n")


def _message(report: pytest.TestReport) -> str:
    """The crash excerpt for a crash, else the exception's message (no traceback), else the whole text."""
    console = next((text for name, text in report.sections if name == report_sections.CONSOLE), None)
    crash = getattr(report.longrepr, "reprcrash", None)
    return console or (crash.message if crash is not None else report.longreprtext)
