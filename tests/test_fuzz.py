"""`harness fuzz`: durations, options, failure titles and dedupe, the report, the pytest plugin on a toy
suite (rounds, database key, counters, events), stopping a process group, and one short run on a VM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import report_sections
from harness.errors import EnvError, GuestCrash, UsageError
from harness.fuzz import session
from harness.fuzz.config import parse_duration, resolve_db, select_tests
from harness.fuzz.failures import CRASH, ERROR, WRONG, Deduper, base_nodeid, failure_titles, normalise, reproducer
from harness.fuzz.report import render, to_json
from harness.fuzz.share import Share
from harness.paths import REPO_ROOT
from harness.procgroup import group_alive
from tests.test_cli import assert_one_line_error, harness

CRASH_LOGS = Path(__file__).parent / "data" / "crash"


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("2m", 120), ("1h", 3600), ("1h30m", 5400), ("45", 45),
                                           ("1.5m", 90), (" 2M ", 120)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "2x", "0s", "-1m", "m", "1m2", "two minutes"])
def test_bad_durations_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="bad --duration"):
        parse_duration(text)


@pytest.mark.parametrize("args, needle", [
    (["--duration", "2x"], "bad --duration '2x'"),
    (["--jobs", "0"], "--jobs must be at least 1"),
    (["--tests", "suite/no_such_test.py"], "no such test path"),
    (["--db", "http://example.org/db"], "bad --db"),
])
def test_bad_fuzz_options_are_one_line_errors(args: list[str], needle: str) -> None:
    assert_one_line_error(harness("fuzz", *args), needle)


def test_redis_database_without_the_redis_package_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # import redis -> ImportError
    with pytest.raises(EnvError, match="needs the 'redis' package"):
        resolve_db("redis://localhost:6379/0")


def test_directory_database_is_created_and_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_db("corpus") == str(tmp_path / "corpus")
    assert (tmp_path / "corpus").is_dir()


def test_default_selection_is_the_existing_state_machines_and_properties() -> None:
    tests = select_tests([])
    assert "suite/semantics/test_state_machine.py" in tests
    assert "suite/semantics/test_oracle_agreement.py" in tests
    assert all((REPO_ROOT / t).is_file() for t in tests)


@pytest.mark.parametrize("nodeid, base", [
    ("suite/a.py::test_x[eclone-fuzz12]", "suite/a.py::test_x[eclone]"),
    ("suite/a.py::test_x[fuzz0]", "suite/a.py::test_x"),
    ("suite/a.py::test_x[eclone]", "suite/a.py::test_x[eclone]"),
    ("suite/a.py::test_fuzz3", "suite/a.py::test_fuzz3"),
])
def test_the_round_is_not_part_of_a_test_name(nodeid: str, base: str) -> None:
    assert base_nodeid(nodeid) == base


def test_pids_levels_and_vectors_do_not_split_a_failure() -> None:
    one = normalise("eclone at level 1 with pids [300]: model says success, NSpid [? 300]; kernel: EBUSY (ret -16)")
    two = normalise("eclone at level 2 with pids [7, 41]: model says success, NSpid [? 12 41]; kernel: EBUSY (ret -16)")
    assert one == two == "eclone at level N with pids [...]: model says success, NSpid [...]; kernel: EBUSY (ret -N)"
    assert normalise("Racer(at=2, pids=(3, 0, 5)): refused") == "Racer(at=N, pids=(...)): refused"


def test_a_crash_is_titled_by_the_console_whatever_the_test() -> None:
    console = (CRASH_LOGS / "warning_alloc_pid.log").read_text()
    sections = [(report_sections.CONSOLE, console)]  # the name the suite's plugin gives it
    assert failure_titles("suite/a.py::t[eclone]", sections, None) == [("WARNING in alloc_pid", CRASH)]
    assert failure_titles("suite/b.py::u[clone3]", sections, AssertionError("x")) == [("WARNING in alloc_pid", CRASH)]


def test_a_guest_crash_without_a_recognised_report_keeps_its_own_title() -> None:
    exc = GuestCrash("kernel panic: something new", "no report lines here")
    assert failure_titles("t", [], exc) == [("kernel panic: something new", CRASH)]


def test_wrong_results_are_titled_by_test_and_first_line() -> None:
    test = "suite/semantics/test_state_machine.py::test_chains[eclone]"
    a = failure_titles(test, [], AssertionError("eclone at level 1 with pids [300]: EBUSY\nreplay: {...}"))
    b = failure_titles(test, [], AssertionError("eclone at level 1 with pids [12]: EBUSY\nreplay: {other}"))
    assert a == b == [(f"{test}: AssertionError: eclone at level N with pids [...]: EBUSY", WRONG)]
    assert failure_titles("other::t", [], AssertionError("eclone at level 1 with pids [12]: EBUSY")) != a


def test_a_quiet_console_section_does_not_make_a_wrong_result_a_crash() -> None:
    """Every failed test's report has the console section, mostly '(nothing)': only a crash in it counts."""
    sections = [(report_sections.CONSOLE, "--- kernel console during the test ---\n(nothing)\n")]
    test = "suite/a.py::t[eclone]"
    assert failure_titles(test, sections, AssertionError("leaked pid 4")) == [
        (f"{test}: AssertionError: leaked pid N", WRONG)]
    assert failure_titles(test, sections, None, "kernel crash during test: BUG in foo\n...") == [("BUG in foo", CRASH)]


def test_each_distinct_failure_of_an_exception_group_gets_a_title() -> None:
    group = ExceptionGroup("Hypothesis found 2 distinct failures.",
                           [AssertionError("leaked pid 4"), ValueError("bad reply"), AssertionError("leaked pid 9")])
    assert failure_titles("t", [], group) == [("t: AssertionError: leaked pid N", WRONG),
                                              ("t: ValueError: bad reply", ERROR)]


def test_reproducer_path_is_read_from_the_report_section() -> None:
    sections = [("Captured stdout call", "x"), ("reproducer", "python -m harness repro /r/repro/t_eclone_.json")]
    assert reproducer(sections) == "/r/repro/t_eclone_.json"
    assert reproducer([]) is None


def _event(t: float, test: str, title: str, kind: str = WRONG, repro: str | None = None) -> dict:
    return {"t": t, "test": test, "outcome": "failed", "failures": [[title, kind]], "reproducer": repro,
            "message": f"{title} (message)"}


def test_dedupe_counts_each_failure_once_from_its_first_sighting() -> None:
    dedupe = Deduper(started=1000.0)
    dedupe.add(_event(1030.0, "a[eclone]", "a[eclone]: AssertionError: leak", repro="/r/a0.json"))
    dedupe.add(_event(1012.0 + 60, "a[eclone]", "a[eclone]: AssertionError: leak", repro="/r/a1.json"))
    dedupe.add(_event(1040.0, "b[clone3]", "WARNING in alloc_pid", CRASH, repro=None))
    dedupe.add(_event(1050.0, "c[eclone]", "WARNING in alloc_pid", CRASH, repro="/r/c.json"))
    failures = dedupe.distinct()
    assert [(f.title, f.count, f.first_seen, f.reproducer) for f in failures] == [
        ("a[eclone]: AssertionError: leak", 2, 30.0, "/r/a0.json"),
        ("WARNING in alloc_pid", 2, 40.0, "/r/c.json")]
    assert failures[1].tests == ["b[clone3]", "c[eclone]"]


def test_report_lists_failures_with_count_first_sighting_and_reproducer() -> None:
    dedupe = Deduper(started=0.0)
    dedupe.add(_event(75.0, "a[eclone]", "a[eclone]: AssertionError: leak", repro="/r/a.json"))
    dedupe.add(_event(80.0, "a[eclone]", "a[eclone]: AssertionError: leak"))
    counts = {"seconds": 120.0, "examples": 240, "examples_per_second": 2.0, "programs": 1200,
              "programs_per_second": 10.0, "test_runs": 9}
    text = "\n".join(render(dedupe.distinct(), counts, 2, "deadline"))
    assert "240 examples (2.0/s)" in text and "on 2 VMs" in text
    assert "1 distinct failure:" in text
    assert "[wrong result] a[eclone]: AssertionError: leak" in text
    assert "seen 2 times, first after 1m15s" in text
    assert "python -m harness repro /r/a.json" in text
    data = to_json(dedupe.distinct(), counts, {"jobs": 2})
    assert data["distinct_failures"] == 1 and data["failures"][0]["count"] == 2
    assert render([], counts, 1, "deadline")[-1] == "no failures"


TOY = '''
import os
import pytest
from hypothesis import Phase, given, settings, strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase


class Fake:
    def run(self, program):
        return {}


@pytest.fixture(scope="session")
def target():
    return Fake()


@pytest.mark.parametrize("p", ["a", "b"])
# no shrink phase: the shrinker may save other failures under secondary keys, a run at a time, so which keys a
# database holds would depend on the luck of each run, not only on how the plugin keys the rounds
@settings(database=DirectoryBasedExampleDatabase(os.environ["TOY_DB"]), max_examples=30, deadline=None,
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(x=st.integers(0, 1000))
def test_prop(p, x, target):
    target.run({"x": x})
    assert p == "a" or x < 500, f"x {x} is too big for {p}"


def test_plain():
    pass
'''


def _toy_run(tmp_path: Path, name: str, rounds: int) -> tuple[list[dict], Path, Path]:
    work = tmp_path / name
    work.mkdir()
    (work / "test_toy.py").write_text(TOY)
    (work / "pytest.ini").write_text("[pytest]\n")
    env = {**os.environ, "TOY_DB": str(work / "db"), "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "test_toy.py", "-c", "pytest.ini", "-n", "1",
                           "-p", "harness.fuzz.plugin", "--fuzz-rounds", str(rounds), "--fuzz-events", "events.jsonl",
                           "--fuzz-live", "live", "-p", "no:cacheprovider", "-q"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    events = [json.loads(line) for line in (work / "events.jsonl").read_text().splitlines()]
    return events, work / "db", work / "live"


def test_plugin_repeats_round_by_round_and_streams_titled_reports(tmp_path: Path) -> None:
    events, _, live = _toy_run(tmp_path, "three", 3)
    calls = [e for e in events if e["when"] == "call"]
    assert [e["nodeid"].split("::")[1] for e in calls] == [
        f"{t}[{p}fuzz{r}]" for r in range(3) for t, p in (("test_prop", "a-"), ("test_prop", "b-"), ("test_plain", ""))]
    failed = [e for e in calls if e["outcome"] == "failed"]
    assert len(failed) == 3 and {e["test"] for e in failed} == {"test_toy.py::test_prop[b]"}
    assert {tuple(f) for e in failed for f in e["failures"]} == {
        ("test_toy.py::test_prop[b]: AssertionError: x N is too big for b", WRONG)}
    assert all(e["worker"] == "gw0" for e in calls)
    counters = json.loads((live / "gw0.json").read_text())
    assert 0 < counters["examples"] <= counters["programs"]


def test_every_round_shares_one_database_key_per_test(tmp_path: Path) -> None:
    _, db_one, _ = _toy_run(tmp_path, "one", 1)
    _, db_three, _ = _toy_run(tmp_path, "three", 3)
    keys_one = sorted(p.name for p in db_one.iterdir())
    assert keys_one and sorted(p.name for p in db_three.iterdir()) == keys_one


def test_stop_ends_the_whole_group_even_when_signals_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session, "STOP_STEPS", ((signal.SIGINT, 0.5), (signal.SIGTERM, 0.5), (signal.SIGKILL, 5.0)))
    monkeypatch.setattr(session, "LEFTOVER_WAIT", 0.5)
    stubborn = "import signal, time; [signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)]; " \
               "time.sleep(60)"
    leader = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {stubborn!r}]); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", leader], start_new_session=True)
    time.sleep(1.0)
    assert group_alive(proc.pid)
    session.stop(proc)  # the leader dies of SIGINT, its child needs the final SIGKILL
    assert not group_alive(proc.pid)


def _descendants(root: int) -> dict[int, str]:
    """pid -> command name of every process below `root`."""
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        pid, rest = int(text.split(" ", 1)[0]), text.rsplit(")", 1)[1].split()
        names[pid] = text[text.index("(") + 1:text.rindex(")")]
        children.setdefault(int(rest[1]), []).append(pid)
    found, todo = {}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found[child] = names[child]
            todo.append(child)
    return found


def _default_sigint() -> None:
    """A suite started as a background job (nohup, `cmd &` in a script) ignores SIGINT, and so would the
    command under test: give it Ctrl-C's default, as a terminal's foreground job has."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_a_session_with_its_report_and_no_qemu_left(tmp_path: Path, reference_kernel: Path) -> None:
    """One short session on the reference kernel: SIGINT once examples ran; the report comes, QEMU goes."""
    results = tmp_path / "fuzz"
    proc = subprocess.Popen([sys.executable, "-m", "harness", "fuzz", "--duration", "5m", "--jobs", "1",
                             "--kernel", str(reference_kernel), "--tests", "suite/semantics/test_oracle_agreement.py",
                             "--db", str(tmp_path / "db"), "--results", str(results)],
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)
    qemus: set[int] = set()
    deadline = time.monotonic() + 75
    while time.monotonic() < deadline and proc.poll() is None:
        qemus |= {pid for pid, name in _descendants(proc.pid).items() if name.startswith("qemu")}
        live = [json.loads(p.read_text() or "{}") for p in results.glob("run-*/live/*.json")]
        if qemus and sum(c.get("examples", 0) for c in live) >= 5:
            break
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=90)
    assert qemus, f"no QEMU seen under the fuzz command: {err}"
    assert proc.returncode == 0, out + err
    report = json.loads((results / "fuzz.json").read_text())
    assert report["ended"] == "interrupted" and report["examples"] >= 5 and report["distinct_failures"] == 0
    assert "no failures" in out
    left = subprocess.run(["pgrep", "-f", "qemu-system"], capture_output=True, text=True).stdout.split()
    assert not qemus & {int(pid) for pid in left}, "QEMU of the session left behind"


def test_a_test_gets_a_slice_of_examples_at_its_measured_cost() -> None:
    share = Share(slice_s=10.0, default_examples=20)
    assert share.examples_for("f.py::t[a]") == 20  # nothing measured yet
    share.record("f.py::t[a]", 40.0, 20)  # 2 s per nominal example
    assert share.examples_for("f.py::t[a]") == 5
    assert share.examples_for("f.py::t[b]") == 5  # not run yet: its function's other profile's cost
    share.record("f.py::cheap[a]", 0.5, 20)
    assert share.examples_for("f.py::cheap[a]") == 400
    share.record("f.py::free[a]", 0.0, 20)  # a run too short to measure keeps the default
    assert share.examples_for("f.py::free[a]") == 20


def test_a_function_a_slice_ahead_of_the_least_served_waits_its_turn() -> None:
    share = Share(slice_s=10.0, default_examples=20, collected={"f.py::dear[a]", "f.py::dear[b]", "f.py::cheap[a]"})
    assert share.waits("f.py::dear[a]") is None
    share.record("f.py::dear[a]", 45.0, 20)
    for waiting in ("f.py::dear[a]", "f.py::dear[b]"):  # the other profile too: its function is ahead
        why = share.waits(waiting)
        assert why is not None and "function has had 45 s" in why and "least served 0 s" in why
    assert share.waits("f.py::cheap[a]") is None
    share.record("f.py::cheap[a]", 36.0, 20)
    assert share.waits("f.py::dear[b]") is None  # 45 - 36 is within a slice; b has not had a turn
    why = share.waits("f.py::dear[a]")
    assert why is not None and "profile has had 45 s, the least served of its function 0 s" in why
    share.skips.add("f.py::dear[b]")  # e.g. the kernel lacks that profile: it takes no turns
    assert share.waits("f.py::dear[a]") is None


def test_what_another_worker_ran_counts_for_turns_and_examples() -> None:
    one = Share(slice_s=10.0, default_examples=20)
    one.record("f.py::dear[a]", 45.0, 20)
    one.record("f.py::cheap[a]", 2.0, 20)
    one.skips.add("f.py::dear[b]")
    other = Share(slice_s=10.0, default_examples=20, others=[one.mine()],
                  collected={"f.py::dear[a]", "f.py::dear[b]", "f.py::cheap[a]"})
    why = other.waits("f.py::dear[a]")
    assert why is not None and "45 s of the run's workers" in why  # new on this worker, not a new test
    assert other.examples_for("f.py::cheap[a]") == 100
    other.record("f.py::cheap[a]", 40.0, 100)
    assert other.waits("f.py::dear[a]") is None  # cheap has had 42 s in all, dear[b] skips itself


SHARES_TOY = '''
import time
import pytest


@pytest.fixture(scope="session")
def target():
    return None


def test_dear(target):
    time.sleep(0.6)


def test_cheap(target):
    time.sleep(0.05)
'''


def test_with_time_shares_a_dear_test_runs_less_often_and_says_why(tmp_path: Path) -> None:
    (tmp_path / "test_toy.py").write_text(SHARES_TOY)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "test_toy.py", "-c", "pytest.ini",
                           "-p", "harness.fuzz.plugin", "--fuzz-rounds", "8", "--fuzz-events", "events.jsonl",
                           "--fuzz-slice", "0.3", "-p", "no:cacheprovider", "-q", "-rs"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    ran = {name: sum(e["test"].endswith(name) for e in calls) for name in ("test_dear", "test_cheap")}
    assert ran["test_cheap"] == 8 and 1 <= ran["test_dear"] < 4, ran
    assert "fuzz share: this test function has had" in proc.stdout
