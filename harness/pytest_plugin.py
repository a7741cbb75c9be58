"""pytest wiring: choose a target and profiles, hand crashes to the test in flight, summarise (PYTEST_DONT_REWRITE).

Options: --target {qemu,host}, --kernel IMAGE | --tree DIR | --stock, --fragment NAME, --profile NAME
(repeatable, `auto` = every profile the kernel supports), --eclone-nr N, --results DIR, --race-rounds N.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import report_sections as sections
from .errors import GuestCrash, HarnessError
from .hypothesis_profiles import race_rounds_default, register
from .interrupt import interrupt_on_termination
from .profiles import ALL_PROFILES, ID_PROFILES, IdProfile, Profile, make_profile
from .repro import predicted
from .repro.asserted import write_c
from .repro.record import Recording, save
from .summary import CRASH_PROPERTY, SummaryCollector
from .targets.base import Target, TargetInfo

if TYPE_CHECKING:
    from .crash_scan import Crash

register()  # before hypothesis's own plugin reads --hypothesis-profile

FATAL_ERRORS: list[str] = []  # why the target could not start, for the CLI (pytest captures fd 2)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("eclone-suite", "eclone/clone3 conformance suite")
    group.addoption("--target", choices=["qemu", "host"], default=os.environ.get("ECLONE_SUITE_TARGET", "qemu"),
                    help="where programs run: a QEMU guest (default) or the running kernel in a sandbox")
    group.addoption("--kernel", type=Path, default=None, metavar="IMAGE", help="bzImage to boot (qemu target)")
    group.addoption("--tree", type=Path, default=None, metavar="DIR", help="Linux tree to build and boot")
    group.addoption("--stock", action="store_true", help="boot Debian's 6.1 without the eclone series")
    group.addoption("--fragment", action="append", default=[], metavar="NAME", help="extra kconfig fragment")
    group.addoption("--patch", action="append", default=[], type=Path, metavar="FILE",
                    help="extra kernel patch on top of the reference series (e.g. a mutant)")
    group.addoption("--profile", action="append", default=[], metavar="NAME",
                    help=f"ABI profile ({', '.join(ALL_PROFILES)}, auto); repeatable; default auto")
    group.addoption("--eclone-nr", type=int, default=None, metavar="N", help="eclone syscall number (default 451)")
    group.addoption("--uapi-struct", action="append", default=[], metavar="PROFILE=HEADER:STRUCT",
                    help="where the tree's UAPI defines a profile's struct (default: found by the spec's member names)")
    group.addoption("--results", type=Path, default=None, metavar="DIR",
                    help="write summary.json and console.log here")
    group.addoption("--ktap", type=Path, default=None, metavar="FILE", help="also write the results as KTAP")
    group.addoption("--race-rounds", type=int, default=None, metavar="N",
                    help="rounds per race test (default: by hypothesis profile, ci=30, dev=200, fuzz=2000)")
    group.addoption("--run-first", action="append", default=[], metavar="NODEID",
                    help="run this test before the others (repeatable; `harness mutants` puts a mutant's known "
                         "killers first, so a --quick run stops within seconds)")
    group.addoption("--coverage-out", type=Path, default=None, metavar="DIR",
                    help="kernel coverage: reset the gcov counters before the suite, read them after it, "
                         "report into DIR (needs a kernel built for it: python -m harness run --coverage)")


@pytest.hookimpl(trylast=True)  # after the areas' own deselection
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """--run-first: those tests first, in the order given; the rest keep theirs."""
    first = config.getoption("--run-first")
    if first:
        rank = {nodeid: i for i, nodeid in enumerate(first)}
        items.sort(key=lambda item: rank.get(item.nodeid, len(rank)))


def selected_profiles(config: pytest.Config) -> list[str]:
    names = config.getoption("--profile") or ["auto"]
    if "auto" in names:
        return list(ALL_PROFILES)
    for name in names:
        make_profile(name)  # unknown names fail early with the list of known ones
    return list(dict.fromkeys(names))


def pytest_configure(config: pytest.Config) -> None:
    interrupt_on_termination()  # SIGTERM/SIGHUP end the session as Ctrl-C does: targets closed, no VM dir left
    config.addinivalue_line("markers", "profiles(*names): profiles a test applies to (default: all)")
    config.addinivalue_line("markers", "needs_crash(): provokes a kernel crash on purpose (qemu only)")
    rounds = config.getoption("--race-rounds")
    if rounds is not None and rounds < 1:
        raise pytest.UsageError(f"--race-rounds must be >= 1, got {rounds}")
    try:
        selected_profiles(config)
    except HarnessError as err:
        raise pytest.UsageError(str(err)) from err
    config.pluginmanager.register(SummaryCollector(config), "eclone-suite-summary")
    _register_coverage(config)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`profile` runs over the calls with a pid vector, `id_profile` over the write-then-create files."""
    for fixture, kind in (("profile", False), ("id_profile", True)):
        if fixture not in metafunc.fixturenames:
            continue
        names = [n for n in selected_profiles(metafunc.config) if (n in ID_PROFILES) is kind]
        marker = metafunc.definition.get_closest_marker("profiles")
        if marker is not None:
            names = [n for n in names if n in marker.args]
        metafunc.parametrize(fixture, names, indirect=True, ids=names)


class RecordingTarget(Target):
    """The session's target, remembering each test's programs and results for its reproducer; everything
    else is the inner target's."""

    def __init__(self, inner: Target) -> None:
        self.inner = inner
        self.recording = Recording()

    @property
    def info(self) -> TargetInfo:  # type: ignore[override]
        return self.inner.info

    @property
    def boots(self) -> int:  # type: ignore[override]
        return self.inner.boots

    def run(self, program: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        result = self.inner.run(program, timeout)
        self.recording.add(program, result)
        return result

    def start(self) -> None:
        self.inner.start()

    def ping(self, timeout: float = 5.0) -> None:
        self.inner.ping(timeout)

    def reset(self) -> None:
        self.inner.reset()

    def close(self) -> None:
        self.inner.close()

    def take_crash(self) -> Crash | None:
        return self.inner.take_crash()

    def console_excerpt(self) -> str:
        return self.inner.console_excerpt()

    def console_mark(self) -> Any:
        return self.inner.console_mark()

    def console_since(self, mark: Any, lines: int = 60) -> str | None:
        return self.inner.console_since(mark, lines)


class _Session:
    """The one target of this pytest process (one per xdist worker), created on first use."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.target: Target = None
        self.failure: str | None = None
        self.support: dict[str, str | None] = {}

    def get_target(self) -> Any:
        if self.failure:
            pytest.skip(f"target unavailable: {self.failure}")
        if self.target is None:
            from .targets.factory import make_target
            from .targets.handover import take
            try:
                inner = None if getattr(self.config, "workerinput", None) else take()
                if inner is None:
                    inner = make_target(self.config)
                    inner.start()
                self.target = RecordingTarget(inner)
            except HarnessError as err:
                self.failure = str(err)
                FATAL_ERRORS.append(str(err))  # `harness run` prints it as its one error line
                pytest.exit(f"error: {err}", returncode=2)
        return self.target

    def support_reason(self, profile: Profile | IdProfile) -> str | None:
        """Probe each profile once per target (None = supported)."""
        if profile.name not in self.support:
            target = self.get_target()
            result = target.run({"steps": profile.probe_steps()})
            self.support[profile.name] = profile.supported(result["steps"])
        return self.support[profile.name]

    def close(self) -> None:
        if self.target is not None:
            self.target.close()
            self.target = None


_SESSION_KEY = pytest.StashKey[_Session]()
_CONSOLE_MARK = pytest.StashKey[Any]()
_COMPARED: list[tuple[Any, Any]] = []  # failed `==` comparisons of the test in flight: its C reproducer


def pytest_assertrepr_compare(config: pytest.Config, op: str, left: Any, right: Any) -> None:
    """Remember what a failing assert compared (pytest's own explanation is kept)."""
    if op == "==":
        _COMPARED.append((left, right))


def _session(config: pytest.Config) -> _Session:
    if _SESSION_KEY not in config.stash:
        config.stash[_SESSION_KEY] = _Session(config)
    return config.stash[_SESSION_KEY]


def pytest_unconfigure(config: pytest.Config) -> None:
    if _SESSION_KEY in config.stash:
        config.stash[_SESSION_KEY].close()


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Any:
    """The target every suite test runs programs on (see harness/targets/base.py)."""
    return _session(request.config).get_target()


@pytest.fixture(scope="session")
def kernel_source(request: pytest.FixtureRequest) -> Any:
    """The BuildRequest (tree, patches) the kernel under test was built from, or None when only a binary
    is known (--kernel IMAGE, --target=host): tests that read the tree's headers skip then."""
    from .targets.factory import kernel_source as source_of
    return source_of(request.config)


@pytest.fixture(scope="session")
def race_rounds(request: pytest.FixtureRequest) -> int:
    """Rounds each race test runs: --race-rounds, else the hypothesis profile's default."""
    rounds = request.config.getoption("--race-rounds")
    if rounds is not None:
        return rounds
    return race_rounds_default(request.config.getoption("--hypothesis-profile", None) or
                               os.environ.get("ECLONE_SUITE_HYPOTHESIS", "ci"))


@pytest.fixture
def profile(request: pytest.FixtureRequest, target: Target) -> Profile:
    """The ABI profile under test; skipped with the probe's reason when the kernel lacks it."""
    prof = make_profile(request.param, request.config.getoption("--eclone-nr"))
    reason = _session(request.config).support_reason(prof)
    if reason:
        pytest.skip(reason)
    return prof


@pytest.fixture
def id_profile(request: pytest.FixtureRequest, target: Target) -> IdProfile:
    """The write-then-create interface under test (harness/profiles/ids.py); skipped with the probe's reason."""
    prof = make_profile(request.param)
    reason = _session(request.config).support_reason(prof)
    if reason:
        pytest.skip(reason)
    return prof


@pytest.fixture(autouse=True)
def _fresh_recording(request: pytest.FixtureRequest) -> None:
    """Each test's reproducer holds only its own programs."""
    session = request.config.stash.get(_SESSION_KEY, None)
    _COMPARED.clear()
    predicted.clear()
    if session is not None and session.target is not None:
        info = session.target.info
        session.target.recording = Recording(test=request.node.nodeid, kernel=info.kernel, target=info.name)
        request.node.stash[_CONSOLE_MARK] = session.target.console_mark()


def _console_section(item: pytest.Item, target: Target, report: pytest.TestReport) -> None:
    """What the kernel printed while a failed test ran; named "Captured stdout ..." so junit.xml's
    system-out carries it (junit_logging = system-out) next to the failure."""
    if _CONSOLE_MARK not in item.stash:
        return
    text = target.console_since(item.stash[_CONSOLE_MARK])
    if text is not None:
        _add_console(item, report, f"--- kernel console during the test ---\n{text or '(nothing)'}\n")


def _mark_crash(item: pytest.Item, report: pytest.TestReport, title: str) -> None:
    """The summary's crashes column and summary.json's crash list read this property (junit shows it too)."""
    report.user_properties.append((CRASH_PROPERTY, title))
    item.user_properties.append((CRASH_PROPERTY, title))


def _add_console(item: pytest.Item, report: pytest.TestReport, text: str) -> None:
    """On the failed report (terminal) and on the item, whose teardown report junitxml writes as system-out."""
    report.sections.append((sections.CONSOLE, text))
    item.add_report_section("call", "stdout", text)


def _save_reproducer(item: pytest.Item, target: Target, report: pytest.TestReport) -> None:
    """A failed test's programs go to <results>/repro/ (replay: python -m harness repro FILE)."""
    results = item.config.getoption("--results", None)
    recording = getattr(target, "recording", None)
    if results is None or recording is None or not recording.runs or recording.test != item.nodeid:
        return
    path = save(recording, Path(results) / "repro")
    _, c_line = write_c(recording, path, list(_COMPARED))
    report.sections.append((sections.REPRODUCER, f"python -m harness repro {path}\n{c_line}"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A crash reported on the console while a test ran fails that test, with the excerpt."""
    outcome = yield
    report = outcome.get_result()
    if call.when != "call":
        return
    session = item.config.stash.get(_SESSION_KEY, None)
    target = session.target if session else None
    if report.failed and target is not None:
        _save_reproducer(item, target, report)
    if call.excinfo is not None and call.excinfo.errisinstance(GuestCrash):
        _add_console(item, report, call.excinfo.value.excerpt)
        _mark_crash(item, report, call.excinfo.value.title)
        return
    crash = target.take_crash() if target is not None else None
    if crash is not None:
        report.outcome = "failed"
        report.longrepr = f"{sections.CRASH_PREFIX}{crash.title}\n{crash.excerpt}"
        _add_console(item, report, crash.excerpt)
        _mark_crash(item, report, crash.title)
    elif report.failed and target is not None:
        _console_section(item, target, report)


# --- kernel coverage (--coverage-out; harness/coverage/): kept apart from the rest of the plugin ---

def _register_coverage(config: pytest.Config) -> None:
    if config.getoption("--coverage-out", None) is None:
        return
    from .coverage.plugin import PLUGIN_NAME, CoveragePlugin
    plugin = CoveragePlugin(config, lambda: config.stash[_SESSION_KEY].target if _SESSION_KEY in config.stash
                            else None, FATAL_ERRORS)
    config.pluginmanager.register(plugin, PLUGIN_NAME)


@pytest.fixture(scope="session", autouse=True)
def _coverage_counters(request: pytest.FixtureRequest) -> None:
    """With --coverage-out: debugfs mounted and the counters zeroed before the first test (same VM as the suite)."""
    from .coverage.plugin import PLUGIN_NAME
    plugin = request.config.pluginmanager.get_plugin(PLUGIN_NAME)
    if plugin is None:
        return
    try:
        plugin.start(request.getfixturevalue("target"))
    except HarnessError as err:
        FATAL_ERRORS.append(str(err))
        pytest.exit(f"error: {err}", returncode=2)
