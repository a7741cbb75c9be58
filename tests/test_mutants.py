"""`harness mutants`: patch headers, junit reading, verdicts, table/JSON, CLI errors; one real mutant end to end."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness import mutants as mut
from harness.errors import ConfigError, UsageError
from harness.kernel_build import _patched_files
from harness.mutant_report import (
    BOOT_FAILED,
    BUILD_FAILED,
    ERROR,
    KILLED,
    SURVIVED,
    TIMEOUT,
    DetectorResult,
    MutantResult,
    RunOutcome,
    exit_code,
    judge,
    nodeid_of,
    parse_junit,
    render_table,
    to_json,
)
from harness.paths import MUTANTS_DIR, REPO_ROOT

REQUIRED = [
    "eclone-nr-pids-signed", "eclone-depth-off-by-one", "eclone-reversed-order", "eclone-leak-partial",
    "eclone-check-then-alloc", "eclone-busy-takes-next", "eclone-busy-wrong-errno", "eclone-reserved1-ignored",
    "eclone-high-flags-ignored", "eclone-args-size-larger", "eclone-no-cap-check", "eclone-cap-after-values",
    "eclone-reserved-pids-rule-dropped", "eclone-pid-max-inclusive", "eclone-stack-size-ignored",
    "eclone-zero-not-auto", "clone3-first-pid-not-1", "clone3-leak-partial", "clone3-no-cap-check",
    "clone3-tail-not-checked", "clone3-set-tid-max-off-by-one", "clone3-exit-signal-high-bits",
]

PATCH_HEAD = """From: x <x@example.org>
Subject: [MUTANT] something

Bug-class: {cls}
Breaks: NOTES.md step 7.

text
---
 kernel/pid.c | 2 +-
diff --git a/kernel/pid.c b/kernel/pid.c
--- a/kernel/pid.c
+++ b/kernel/pid.c
@@ -1 +1 @@
-Bug-class: not a header
+x
"""


def harness(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=timeout)


# --- the mutants themselves

def test_every_required_mutant_exists_with_a_bug_class_and_the_rule_it_breaks():
    found = {m.name: m for m in mut.discover()}
    assert set(REQUIRED) <= set(found), sorted(set(REQUIRED) - set(found))
    for m in found.values():
        assert m.bug_class, m.name
        assert "NOTES.md" in m.breaks, f"{m.name}: the Breaks: line names no NOTES.md rule"


def test_mutants_only_touch_the_clone_and_pid_paths():
    """The eclone UAPI header too: a layout bug lives there (the kernel follows it by field name); and the
    mainline write-then-create files (ns_last_pid, the SysV next_id sysctls) and the reference kernel's next_id file
    (and the execve path its pending ids must survive)."""
    allowed = {"kernel/fork.c", "kernel/pid.c", "include/uapi/linux/eclone.h",
               "include/uapi/linux/clone2.h", "kernel/pid_namespace.c",
               "ipc/util.c", "ipc/ipc_sysctl.c", "kernel/next_id.c", "fs/proc/base.c", "fs/exec.c"}
    for path in sorted(MUTANTS_DIR.glob("*.patch")):
        assert set(_patched_files(path)) <= allowed, path.name


def test_the_readme_lists_every_mutant():
    readme = (MUTANTS_DIR / "README.md").read_text()
    for m in mut.discover():
        assert f"`{m.name}`" in readme, m.name


# --- header parsing and selection

def test_header_fields_are_read_from_the_description_only(tmp_path: Path):
    patch = tmp_path / "demo-bug.patch"
    patch.write_text(PATCH_HEAD.format(cls="wrong errno"))
    m = mut.parse_mutant(patch)
    assert (m.name, m.bug_class, m.breaks) == ("demo-bug", "wrong errno", "NOTES.md step 7.")


def test_patch_without_bug_class_is_a_config_error(tmp_path: Path):
    patch = tmp_path / "nameless.patch"
    patch.write_text(PATCH_HEAD.replace("Bug-class: {cls}\n", ""))
    with pytest.raises(ConfigError, match="no 'Bug-class:' line"):
        mut.parse_mutant(patch)


def test_select_keeps_the_given_order_and_rejects_unknown_names(tmp_path: Path):
    mutants = [mut.Mutant(name=n, path=tmp_path / f"{n}.patch", bug_class="c") for n in ("a", "b", "c")]
    assert [m.name for m in mut.select(mutants, ["c", "a.patch", "c"])] == ["c", "a"]
    assert mut.select(mutants, []) == mutants
    with pytest.raises(UsageError, match="unknown mutant 'zz'"):
        mut.select(mutants, ["zz"])


# --- junit and verdicts

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="5">
<testcase classname="suite.semantics.test_pid_ranges" name="test_ok[eclone]" time="0.1"/>
<testcase classname="suite.semantics.test_pid_ranges" name="test_busy[eclone]" time="0.1">
  <failure message="assert 17 == 16">...</failure></testcase>
<testcase classname="suite.semantics.test_pid_ranges" name="test_teardown[clone3]" time="0.1">
  <error message="error at teardown">...</error></testcase>
<testcase classname="suite.semantics.test_pid_ranges" name="test_skip[clone3]" time="0.0">
  <skipped message="no"/></testcase>
<testcase classname="suite.abi.test_x.TestLayout" name="test_size" time="0.1"><failure message="x"/></testcase>
</testsuite></testsuites>
"""


def test_junit_failures_and_errors_become_pytest_node_ids(tmp_path: Path):
    root = tmp_path / "repo"
    (root / "suite" / "semantics").mkdir(parents=True)
    (root / "suite" / "semantics" / "test_pid_ranges.py").write_text("")
    (root / "suite" / "abi").mkdir()
    (root / "suite" / "abi" / "test_x.py").write_text("")
    junit = tmp_path / "junit.xml"
    junit.write_text(JUNIT)
    total, failed = parse_junit(junit, root)
    assert total == 5
    assert failed == ["suite/semantics/test_pid_ranges.py::test_busy[eclone]",
                      "suite/semantics/test_pid_ranges.py::test_teardown[clone3]",
                      "suite/abi/test_x.py::TestLayout::test_size"]


def test_node_id_falls_back_to_the_classname_when_no_module_matches(tmp_path: Path):
    assert nodeid_of("pkg.mod", "test_a", tmp_path) == "pkg.mod::test_a"


def test_a_test_failing_on_the_baseline_does_not_kill():
    outcome = RunOutcome("completed", failed=["t::flaky", "t::busy"], tests=10, seconds=3.0)
    result = judge(outcome, {"t::flaky"})
    assert (result.verdict, result.killed_by, result.failed_on_baseline_too) == (KILLED, ["t::busy"], ["t::flaky"])
    assert judge(RunOutcome("completed", failed=["t::flaky"]), {"t::flaky"}).verdict == SURVIVED
    assert judge(RunOutcome("completed", failed=[]), set()).verdict == SURVIVED


@pytest.mark.parametrize("status", [BUILD_FAILED, BOOT_FAILED, TIMEOUT, ERROR])
def test_a_run_that_did_not_complete_is_never_a_kill(status: str):
    result = judge(RunOutcome(status, detail="why"), set())
    assert (result.verdict, result.detail) == (status, "why")


def _result(name: str, **detectors: DetectorResult) -> MutantResult:
    return MutantResult(name=name, bug_class="off-by-one", breaks="NOTES.md 5", patch=f"{name}.patch",
                        build_seconds=12.0, detectors=dict(detectors))


def test_the_verdict_is_the_suites_and_the_selftests_are_a_peer_column():
    both = _result("m", suite=DetectorResult(SURVIVED), selftests=DetectorResult(KILLED, killed_by=["clone3_set_tid"]))
    assert both.verdict == SURVIVED
    assert _result("n", suite=DetectorResult(KILLED, killed_by=["t"]), selftests=DetectorResult(SURVIVED)).verdict \
        == KILLED


def test_peer_summary_names_what_only_the_suite_kills_and_what_it_misses():
    from harness.mutant_peers import peer_summary
    killed, survived = DetectorResult(KILLED, killed_by=["t"]), DetectorResult(SURVIVED)
    lines = peer_summary([_result("both", suite=killed, selftests=killed),
                          _result("suite-only", suite=killed, selftests=survived),
                          _result("selftests-only", suite=survived, selftests=killed)])
    assert lines[0] == "selftests kill 2 of 3 mutants: both, selftests-only"
    assert "the selftests kill 1 the suite misses: selftests-only" in lines[1]
    assert lines[2] == "only the suite kills 1: suite-only"
    assert "it kills every mutant the selftests kill" in peer_summary([_result("a", suite=killed,
                                                                              selftests=survived)])[1]
    assert peer_summary([_result("no-peers", suite=killed)]) == []


def test_table_has_a_row_per_mutant_and_a_column_per_detector():
    killed = _result("a-killed", suite=DetectorResult(KILLED, killed_by=["suite/x.py::test_one", "suite/x.py::t2",
                                                                          "suite/x.py::t3"], seconds=40))
    survived = _result("b-survived", suite=DetectorResult(SURVIVED, seconds=41))
    broken = _result("c-broken", suite=DetectorResult(BUILD_FAILED, detail="pid.c:12: error: expected ';'"))
    lines = render_table([killed, survived, broken])
    assert lines[0].split()[:4] == ["mutant", "bug", "class", "verdict"] and "suite" in lines[0]
    assert "selftests" not in lines[0]
    assert "killed" in lines[1] and "test_one, t2, +1" in lines[1]
    assert "survived" in lines[2]
    assert "build-failed" in lines[3] and "expected ';'" in lines[3]
    with_selftests = render_table([_result("d", suite=DetectorResult(SURVIVED), selftests=DetectorResult(KILLED))])
    assert "selftests" in with_selftests[0] and with_selftests[0].index("suite") < with_selftests[0].index("selftests")


def test_exit_status_is_zero_only_when_all_are_killed_and_the_reference_passes():
    killed = _result("a", suite=DetectorResult(KILLED, killed_by=["t"]))
    assert exit_code([killed], []) == 0
    assert exit_code([killed], ["t::fails_on_reference"]) == 1
    assert exit_code([killed, _result("b", suite=DetectorResult(SURVIVED))], []) == 1
    assert exit_code([killed, _result("c", suite=DetectorResult(BOOT_FAILED))], []) == 1


def test_json_has_totals_verdicts_and_per_detector_results():
    data = to_json([_result("a", suite=DetectorResult(KILLED, killed_by=["t"])),
                    _result("b", suite=DetectorResult(BUILD_FAILED, detail="x"))],
                   {"status": "completed", "failed": []}, {"wall_seconds": 3})
    data = json.loads(json.dumps(data))
    assert data["totals"] == {"mutants": 2, "killed": 1, "survived": 0, "build-failed": 1, "boot-failed": 0,
                              "timeout": 0, "error": 0}
    assert [m["verdict"] for m in data["mutants"]] == [KILLED, BUILD_FAILED]
    assert data["mutants"][0]["detectors"]["suite"]["killed_by"] == ["t"]


def test_build_failure_detail_is_the_compiler_lines(tmp_path: Path):
    log = tmp_path / "build.log"
    log.write_text("  CC kernel/fork.o\nkernel/pid.c:240:3: error: 'x' undeclared\nmake: *** [all] Error 2\n")
    tail = mut.compiler_tail(f"kernel build failed ({log}): kernel/pid.c:240:3: error: 'x' undeclared")
    assert "kernel/pid.c:240:3: error: 'x' undeclared" in tail and "Error 2" in tail
    assert mut.compiler_tail("patch x.patch does not apply: [...]") == "patch x.patch does not apply: [...]"


# --- the runner, with a stand-in for pytest

def _cfg(tmp_path: Path, timeout: float = 60) -> mut.RunConfig:
    return mut.RunConfig(suite=("suite",), pytest_args=("--race-rounds", "3"), results=tmp_path, timeout=timeout,
                         live_progress=False)


def test_pytest_command_line_boots_the_mutant_and_writes_junit(tmp_path: Path):
    argv = mut.pytest_argv(_cfg(tmp_path), tmp_path / "m", Path("qemu/mutants/x.patch"))
    assert argv[argv.index("--patch") + 1] == str((Path("qemu/mutants/x.patch")).resolve())
    assert argv[argv.index("--junitxml") + 1] == str(tmp_path / "m" / "junit.xml")
    assert "no:cacheprovider" in argv and argv[-2:] == ["--race-rounds", "3"]
    assert "--patch" not in mut.pytest_argv(_cfg(tmp_path), tmp_path / "ref", None)


@pytest.mark.parametrize("script, status, detail", [
    ("print('!!! _pytest.outcomes.Exit: error: kernel did not boot: no agent after 90s !!!'); sys.exit(2)",
     BOOT_FAILED, "error: kernel did not boot: no agent after 90s"),
    ("print('usage: ...'); sys.exit(4)", ERROR, "pytest exit 4"),
    ("time.sleep(30)", TIMEOUT, "exceeded 1s"),
])
def test_runs_that_do_not_complete_get_their_own_status(tmp_path: Path, monkeypatch, script, status, detail):
    argv = [sys.executable, "-c", f"import sys, time; {script}"]
    monkeypatch.setattr(mut, "pytest_argv", lambda cfg, out, patch: argv)
    outcome = mut.run_suite("m", None, _cfg(tmp_path, timeout=1))
    assert outcome.status == status and detail in outcome.detail


def test_completed_run_is_read_from_its_junit(tmp_path: Path, monkeypatch):
    junit = tmp_path / "m" / "junit.xml"
    script = f"import pathlib, sys; pathlib.Path({str(junit)!r}).write_text({JUNIT!r}); sys.exit(1)"
    monkeypatch.setattr(mut, "pytest_argv", lambda cfg, out, patch: [sys.executable, "-c", script])
    outcome = mut.run_suite("m", None, _cfg(tmp_path))
    assert (outcome.status, outcome.tests, len(outcome.failed)) == ("completed", 5, 3)


# --- command line

def _args(**kw) -> argparse.Namespace:
    base = dict(jobs=1, timeout=60.0, suite=[], pytest_args=[], race_rounds=None, hypothesis_profile=None,
                results=None, quick=False, no_peers=False)
    return argparse.Namespace(**{**base, **kw})


@pytest.mark.parametrize("kw, needle", [
    (dict(jobs=0), "--jobs must be at least 1"),
    (dict(timeout=0), "--timeout must be positive"),
    (dict(suite=["suite/nope.py"]), "no such test path: suite/nope.py"),
    (dict(race_rounds=0), "--race-rounds must be at least 1"),
    (dict(hypothesis_profile="turbo"), "unknown hypothesis profile 'turbo'"),
])
def test_bad_option_values_are_usage_errors(kw, needle):
    with pytest.raises(UsageError, match=needle):
        mut.run_config(_args(**kw))


def test_pass_through_options_reach_pytest():
    cfg = mut.run_config(_args(race_rounds=5, hypothesis_profile="dev", pytest_args=["--", "-k", "busy"],
                               suite=["suite/semantics"]))
    assert cfg.suite == ("suite/semantics",)
    assert cfg.pytest_args == ("-k", "busy", "--race-rounds", "5", "--hypothesis-profile", "dev")


@pytest.mark.parametrize("args, needle", [
    (["--only", "no-such-mutant"], "unknown mutant 'no-such-mutant'"),
    (["--jobs", "0"], "--jobs must be at least 1"),
])
def test_cli_errors_are_one_line_and_exit_2(args, needle):
    proc = harness("mutants", *args)
    assert proc.returncode == 2, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], proc.stderr


def test_cli_lists_the_mutants_with_their_bug_classes():
    proc = harness("mutants", "--list")
    assert proc.returncode == 0, proc.stderr
    assert "eclone-busy-wrong-errno" in proc.stdout and "wrong errno" in proc.stdout
    assert "mutants" in harness("--help").stdout


# --- end to end: one cheap mutant, one test file (CI)

def test_busy_wrong_errno_mutant_is_reported_killed(tmp_path: Path, reference_kernel: Path):
    """Reference run + incremental build + suite run; the mutant changes the busy errno of the EBUSY family (eclone
    and, through the same alloc_pid() path, clone_with_pids and clone2), never clone3's."""
    proc = harness("mutants", "--only", "eclone-busy-wrong-errno", "--suite", "suite/semantics/test_pid_ranges.py",
                   "--results", str(tmp_path), "--fresh-baseline", timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((tmp_path / "mutants.json").read_text())
    assert data["baseline"]["failed"] == [] and data["baseline"]["tests"] > 0
    (result,) = data["mutants"]
    assert result["verdict"] == KILLED
    killers = result["detectors"]["suite"]["killed_by"]
    assert killers and any(k.endswith("[eclone]") for k in killers), killers
    assert all(k.endswith(("[eclone]", "[clone_with_pids]", "[clone2]")) for k in killers), killers
    assert "eclone-busy-wrong-errno" in proc.stdout and "killed" in proc.stdout
    assert (tmp_path / "eclone-busy-wrong-errno" / "junit.xml").is_file()
    # the peer column: the clone3 selftests ran on the same mutant and, knowing nothing of eclone, missed it
    selftests = result["detectors"]["selftests"]
    assert selftests["verdict"] == "survived" and selftests["tests"] > 40, selftests
    assert "only the suite kills 1: eclone-busy-wrong-errno" in proc.stdout



# --- --quick: the killers of the last run first

def test_killer_memory_keeps_the_last_killers_and_ignores_runs_without_any(tmp_path: Path):
    from harness import mutant_memory as memory
    path = tmp_path / "killers.json"
    memory.remember("m1", ["suite/a.py::t1", "suite/b.py::t2"], path)
    memory.remember("m1", [], path)  # a build failure or a survivor says nothing about who kills it
    memory.remember("m2", ["suite/c.py::t3"], path)
    assert memory.load(path) == {"m1": ["suite/a.py::t1", "suite/b.py::t2"], "m2": ["suite/c.py::t3"]}
    assert memory.load(tmp_path / "missing.json") == {}
    assert memory.first_args(["a", "b", "c", "d"]) == ("--run-first", "a", "--run-first", "b", "--run-first", "c")


@pytest.mark.parametrize("nodeid, suite, inside", [
    ("suite/abi/test_x.py::test_y[clone3]", ("suite",), True),
    ("suite/abi/test_x.py::test_y[clone3]", ("suite/abi/",), True),
    ("suite/abi/test_x.py::test_y[clone3]", ("suite/abi/test_x.py",), True),
    ("suite/abi/test_x.py::test_y[clone3]", ("suite/abi/test_x.py::test_y",), True),
    ("suite/abi/test_x.py::test_y[clone3]", ("suite/semantics",), False),
    ("suite/abi/test_xy.py::test_y[clone3]", ("suite/abi/test_x",), False),
])
def test_known_killers_outside_the_runs_selection_are_not_run(nodeid: str, suite: tuple[str, ...], inside: bool):
    assert mut.selected(nodeid, suite) is inside


def _quick_runs(tmp_path: Path, monkeypatch, known: list[str], outcomes: list[RunOutcome]) -> list[tuple[str, ...]]:
    """Judge one mutant with --quick, the killer memory saying `known`; the suite selections run, in order."""
    from harness import mutant_memory as memory
    monkeypatch.setattr(memory, "memory_file", lambda: tmp_path / "killers.json")
    memory.remember("m", known)
    runs: list[tuple[str, ...]] = []

    def fake_run(label, patch, cfg, extra=()):
        runs.append((*cfg.suite, *extra))
        return outcomes[len(runs) - 1]
    monkeypatch.setattr(mut, "run_suite", fake_run)
    cfg = mut.RunConfig(suite=("suite",), pytest_args=(), results=tmp_path, timeout=60, quick=True)
    mutant = mut.Mutant(name="m", path=tmp_path / "m.patch", bug_class="x", breaks="y")
    verdict = mut._judge_suite(mutant, cfg, baseline_failed=set())
    runs.append((verdict.verdict, *verdict.killed_by))
    return runs


def test_quick_runs_the_known_killers_alone_and_stops_when_they_kill(tmp_path: Path, monkeypatch):
    t1 = "suite/abi/test_x.py::test_y[eclone]"
    runs = _quick_runs(tmp_path, monkeypatch, [t1], [RunOutcome("completed", failed=[t1], tests=1)])
    assert runs == [(t1,), (KILLED, t1)]


def test_quick_falls_back_to_the_whole_suite_with_the_old_killers_first(tmp_path: Path, monkeypatch):
    t1, t2 = "suite/abi/test_x.py::test_y[eclone]", "suite/semantics/test_z.py::test_w[eclone]"
    runs = _quick_runs(tmp_path, monkeypatch, [t1], [RunOutcome("completed", failed=[], tests=1),
                                                     RunOutcome("completed", failed=[t2], tests=300)])
    assert runs == [(t1,), ("suite", "--maxfail", "1", "--run-first", t1), (KILLED, t2)]


def test_quick_without_known_killers_runs_the_whole_suite_once(tmp_path: Path, monkeypatch):
    runs = _quick_runs(tmp_path, monkeypatch, [], [RunOutcome("completed", failed=[], tests=300)])
    assert runs == [("suite", "--maxfail", "1"), (SURVIVED,)]
