"""Kernel coverage (`run --coverage`): patch-line arithmetic, gcov parsing, reports, binary reads, and one run."""

from __future__ import annotations

import base64
import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.coverage.build import coverage_request, kept_files, make_vars, require_gcov
from harness.coverage.gcov import FileCoverage, parse_gcov_json, run_gcov
from harness.coverage.patch_lines import AddedLine, added_lines, map_line, mismatches, parse_patch, realigned
from harness.coverage.report import build_report, cobertura_xml, patch_report, terminal_lines, write_html
from harness.errors import ConfigError, UsageError
from harness.kernel_build import BuildRequest, reference_patches, reference_request
from harness.paths import DEBIAN_SOURCE_TARBALL, REPO_ROOT

FIRST = """From: someone
Subject: [PATCH 1/2] add things

--- a/f.c
+++ b/f.c
@@ -2,3 +2,5 @@
 two
+new3
+new4
 three
 four
@@ -9,0 +12,2 @@ context
+new12
+new13
--- /dev/null
+++ b/g.c
@@ -0,0 +1,2 @@
+g1
+g2
\\ No newline at end of file
@SIG@
2.39.2
""".replace("@SIG@", "-- ")  # a mail signature line

SECOND = """--- a/f.c
+++ b/f.c
@@ -1,4 +1,3 @@
 one
-two
-new3
+two-b
 new4
"""


def test_hunks_give_new_line_numbers_of_added_lines() -> None:
    files = parse_patch(FIRST)
    assert sorted(files) == ["f.c", "g.c"]
    first, second = files["f.c"]
    assert first.added == {3: "new3", 4: "new4"}
    assert second.added == {12: "new12", 13: "new13"}
    assert files["g.c"][0].added == {1: "g1", 2: "g2"}  # the mail signature after it is not part of the hunk


def test_map_line_follows_insertions_and_drops_deleted_lines() -> None:
    hunks = parse_patch(SECOND)["f.c"]
    assert map_line(1, hunks) == 1
    assert map_line(2, hunks) is None  # deleted
    assert map_line(3, hunks) is None
    assert map_line(4, hunks) == 3  # context moved up by the deletions
    assert map_line(40, hunks) == 39  # after the hunk: shifted by new_len - old_len


def test_pure_insertion_hunk_keeps_its_anchor_line() -> None:
    hunks = parse_patch("--- a/x\n+++ b/x\n@@ -10,0 +11,2 @@\n+a\n+b\n")["x"]
    assert map_line(10, hunks) == 10
    assert map_line(11, hunks) == 13


def test_a_later_patch_moves_and_deletes_lines_an_earlier_one_added() -> None:
    added = added_lines([("0001", FIRST), ("0002", SECOND)])
    f = {n: (a.text, a.patch) for n, a in added["f.c"].items()}
    # SECOND deletes FIRST's new3, moves new4 up one line and adds its own line
    assert f == {2: ("two-b", "0002"), 3: ("new4", "0001"), 11: ("new12", "0001"), 12: ("new13", "0001")}
    after = ["one", "two-b", "new4", "three", "four", "l5", "l6", "l7", "l8", "l9", "new12", "new13"]
    assert mismatches(added["f.c"], after) == []
    assert mismatches(added["f.c"], after[:4]) == [11, 12]


@pytest.mark.skipif(not DEBIAN_SOURCE_TARBALL.is_file() or shutil.which("patch") is None,
                    reason="needs linux-source-6.1 and patch (./setup.sh)")
def test_the_reference_series_added_lines_are_where_the_patched_files_have_them(tmp_path: Path) -> None:
    from harness.coverage.patch_lines import series_added_lines
    from harness.kernel_build import pristine_tree
    for rel in ("kernel/pid.c", "kernel/fork.c"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pristine_tree() / rel, tmp_path / rel)
    for patch in reference_patches():  # only the two .c files: the other files' hunks are left out
        text = "".join(block for block in _split_files(patch.read_text())
                       if any(f"+++ b/{rel}\n" in block for rel in ("kernel/pid.c", "kernel/fork.c")))
        subprocess.run(["patch", "-p1", "--batch"], input=text, text=True, cwd=tmp_path, check=True,
                       capture_output=True)
    planned = series_added_lines(list(reference_patches()))
    added = {}
    for rel in ("kernel/pid.c", "kernel/fork.c"):
        source = (tmp_path / rel).read_text().splitlines()
        added[rel] = realigned(planned[rel], source)  # this machine's linux-source-6.1 may be another point release
        assert added[rel], rel
        assert mismatches(added[rel], source) == []
        assert len(added[rel]) == len(planned[rel]), f"{rel}: every added line is found in the patched file"
    pid_c_patches = {a.patch for a in added["kernel/pid.c"].values()}
    assert "0002-pid-let-alloc_pid-allocate-eclone-pids" in pid_c_patches  # later patches may add lines too
    assert pid_c_patches <= {p.stem for p in reference_patches()}
    assert any("SYSCALL_DEFINE4(eclone" in a.text for a in added["kernel/fork.c"].values())


def _split_files(text: str) -> list[str]:
    blocks, current = [], []
    for line in text.splitlines(keepends=True):
        if line.startswith("diff --git ") and current:
            blocks.append("".join(current))
            current = []
        current.append(line)
    blocks.append("".join(current))
    return blocks


GCOV_JSON = {
    "format_version": "1", "gcc_version": "12.2.0", "current_working_directory": "/build",
    "files": [
        {"file": "/src/kernel/pid.c", "lines": [
            {"line_number": 10, "count": 3, "branches": [
                {"count": 3, "fallthrough": True, "throw": False}, {"count": 0, "fallthrough": False, "throw": False}]},
            {"line_number": 11, "count": 0, "branches": []},
            {"line_number": 12, "count": 2, "branches": [{"count": 1, "fallthrough": False, "throw": True}]},
            {"line_number": 10, "count": 1, "branches": []}]},
        {"file": "include/linux/list.h", "lines": [{"line_number": 5, "count": 7, "branches": []}]}]}


def test_gcov_json_gives_counts_per_line_and_branch() -> None:
    files = parse_gcov_json(GCOV_JSON, src_root=Path("/src"))
    assert sorted(files) == ["include/linux/list.h", "kernel/pid.c"]
    pid = files["kernel/pid.c"]
    assert pid.lines == {10: 4, 11: 0, 12: 2}  # line 10 twice (two functions): summed
    assert pid.branches == {10: [3, 0]}  # exception edges are not C branches
    assert pid.line_totals() == (2, 3)
    assert pid.branch_totals() == (1, 2)
    assert pid.line_totals({11, 12}) == (1, 2)


def test_gcov_json_of_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="format_version"):
        parse_gcov_json({**GCOV_JSON, "format_version": "9"})


def test_merged_runs_add_their_counters() -> None:
    a = FileCoverage({1: 1, 2: 0}, {1: [1, 0]})
    a.merge(FileCoverage({1: 0, 2: 5, 3: 0}, {1: [0, 2]}))
    assert a.lines == {1: 1, 2: 5, 3: 0}
    assert a.branches == {1: [1, 2]}
    with pytest.raises(ValueError):
        a.merge(FileCoverage({1: 1}, {1: [1]}))


@pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("gcov") is None, reason="needs gcc and gcov")
def test_run_gcov_reads_real_counters(tmp_path: Path) -> None:
    (tmp_path / "t.c").write_text("int f(int x)\n{\n\tif (x > 3)\n\t\treturn 1;\n\treturn 0;\n}\n"
                                  "int main(int argc, char **argv)\n{\n\treturn f(argc);\n}\n")
    subprocess.run(["gcc", "--coverage", "-O0", "-o", "t", "t.c"], cwd=tmp_path, check=True)
    subprocess.run(["./t"], cwd=tmp_path)
    gcda = next(tmp_path.glob("*.gcda"))
    files = run_gcov(gcda.read_bytes(), gcda.with_suffix(".gcno"), src_root=tmp_path)
    cov = files["t.c"]
    assert cov.lines[4] == 0 and cov.lines[5] == 1  # argc is 1: the early return never runs
    assert cov.branches[3] == [0, 1] or cov.branches[3] == [1, 0]
    assert cov.branch_totals() == (1, 2)


def _added(*lines: tuple[str, int, str, str]) -> dict[str, dict[int, AddedLine]]:
    out: dict[str, dict[int, AddedLine]] = {}
    for name, number, text, patch in lines:
        out.setdefault(name, {})[number] = AddedLine(text, patch)
    return out


def test_patch_coverage_counts_executable_series_lines_only() -> None:
    files = {"kernel/pid.c": FileCoverage({10: 4, 11: 0, 12: 1, 30: 0}, {10: [1, 0]})}
    added = _added(("kernel/pid.c", 9, "/* comment */", "0002-pid"),  # not executable: no gcov line
                   ("kernel/pid.c", 10, "\tif (eclone)", "0002-pid"),
                   ("kernel/pid.c", 11, "\t\treturn -EBUSY;", "0002-pid"),
                   ("kernel/pid.c", 12, "\tx = 1;", "0004-fork"),
                   ("kernel/pid.c", 30, "\tmutant();", "mutant"))  # not part of the series
    report = patch_report(files, added, {"0002-pid", "0004-fork"})
    assert report["lines"] == [2, 3] and report["line_percent"] == 66.7
    assert report["branches"] == [1, 2]
    assert report["by_patch"]["0002-pid"]["lines"] == [1, 2]
    assert report["not_reached"] == [{"file": "kernel/pid.c", "line": 11, "text": "return -EBUSY;",
                                      "patch": "0002-pid"}]
    lines = terminal_lines({"files": {"kernel/pid.c": report}, "patch": report})
    assert any(line.startswith("eclone series") and "66.7%" in line for line in lines)
    assert "  kernel/pid.c:11  return -EBUSY;" in lines


def test_report_refuses_line_numbers_that_do_not_match_the_compiled_source() -> None:
    added = _added(("kernel/pid.c", 2, "\tnew();", "0002-pid"))
    files = {"kernel/pid.c": FileCoverage({2: 1})}
    with pytest.raises(ValueError, match="not where the patches put them"):
        build_report(files, ("kernel/pid.c",), added, {"0002-pid"}, {"kernel/pid.c": ["a", "b"]})
    ok = build_report(files, ("kernel/pid.c",), added, {"0002-pid"}, {"kernel/pid.c": ["a", "\tnew();"]})
    assert ok["patch"]["line_percent"] == 100.0
    assert ok["files"]["kernel/pid.c"]["lines"] == [1, 1]


def test_cobertura_renders_to_html_with_the_sources(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "kernel").mkdir(parents=True)
    (src / "kernel" / "pid.c").write_text("a\nb\nc\n")
    files = {"kernel/pid.c": FileCoverage({1: 2, 2: 0}, {1: [1, 0]})}
    xml = tmp_path / "out" / "cobertura.xml"
    xml.parent.mkdir()
    xml.write_text(cobertura_xml(files, ("kernel/pid.c",), src))
    assert 'lines-covered="1" lines-valid="2"' in xml.read_text()
    assert '<line number="1" hits="2" branch="true" condition-coverage="50% (1/2)"/>' in xml.read_text()
    problem = write_html(xml, src, tmp_path / "out")
    assert problem is None
    assert "pid.c" in (tmp_path / "out" / "index.html").read_text()
    (page,) = (tmp_path / "out").glob("index.pid.c.*.html")  # the annotated source
    assert "50.0%" in page.read_text()


def test_coverage_request_profiles_the_eclone_files_and_changes_the_cache_key() -> None:
    from harness.kernel_build import _extra_key
    req = coverage_request(reference_request())
    assert "coverage" in req.fragments and coverage_request(req).fragments == req.fragments
    assert req.make_vars == make_vars() == ("GCOV_PROFILE_pid.o=y", "GCOV_PROFILE_fork.o=y")
    assert req.keep == kept_files() and "build/kernel/fork.gcno" in req.keep and "src/kernel/pid.c" in req.keep
    assert _extra_key(reference_request()) == ()  # every existing image keeps its key
    assert _extra_key(req) != ()
    with pytest.raises(UsageError, match="--tree"):
        coverage_request(BuildRequest(tree=Path("/somewhere")))


def test_an_image_without_gcov_is_refused_naming_the_option(tmp_path: Path) -> None:
    image = tmp_path / "bzImage"
    image.write_bytes(b"")
    (tmp_path / "config").write_text("CONFIG_DEBUG_FS=y\n# CONFIG_GCOV_KERNEL is not set\n")
    with pytest.raises(ConfigError, match="CONFIG_GCOV_KERNEL"):
        require_gcov(image)
    (tmp_path / "config").write_text("CONFIG_DEBUG_FS=y\nCONFIG_GCOV_KERNEL=y\n")
    require_gcov(image)


def test_read_file_base64_returns_the_exact_bytes(host_target, tmp_path: Path) -> None:
    blob = bytes(range(256)) * 3 + b"\xff\xfe\x00"
    path = tmp_path / "blob.bin"
    path.write_bytes(blob)
    os.chmod(tmp_path, 0o755)
    res = host_target.run({"steps": [{"op": "read_file", "path": str(path), "encoding": "base64"},
                                     {"op": "read_file", "path": str(path)},
                                     {"op": "read_file", "path": str(tmp_path / "none"), "encoding": "base64"}]})
    binary, text, missing = res["steps"]
    assert base64.b64decode(binary["data"]) == blob and binary["size"] == len(blob)
    assert text["data"] != blob.decode("latin-1")  # the text read replaces bad UTF-8: lossy
    assert missing == {"errno": errno.ENOENT}


def test_read_file_with_an_unknown_encoding_aborts_the_program(host_target) -> None:
    from harness.errors import ProgramError
    with pytest.raises(ProgramError, match="encoding"):
        host_target.run({"steps": [{"op": "read_file", "path": "/proc/self/status", "encoding": "utf-16"}]})


def test_mount_step_leaves_an_existing_mount_alone(host_target) -> None:
    res = host_target.run({"steps": [{"op": "mount", "source": "proc", "target": "/proc", "fstype": "proc"}]})
    assert res["steps"][0] == {"errno": 0, "mounted": False}


def _run_coverage_on(image: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("QEMU not installed")
    return subprocess.run([sys.executable, "-m", "harness", "run", "--coverage", "--kernel", str(image)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


def _one_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def test_run_coverage_with_a_kernel_without_gcov_is_one_line(reference_kernel: Path, tmp_path: Path) -> None:
    """A cached image's config says what it was built with (the reference itself has gcov, profiling nothing)."""
    image = tmp_path / "bzImage"
    shutil.copyfile(reference_kernel, image)
    config = (reference_kernel.parent / "config").read_text()
    assert "CONFIG_GCOV_KERNEL=y" in config
    (tmp_path / "config").write_text(config.replace("CONFIG_GCOV_KERNEL=y", "# CONFIG_GCOV_KERNEL is not set"))
    assert "CONFIG_GCOV_KERNEL" in _one_error(_run_coverage_on(image))


def test_run_coverage_with_a_gcov_kernel_that_profiled_nothing_is_one_line(reference_kernel: Path) -> None:
    assert "not a coverage image" in _one_error(_run_coverage_on(reference_kernel))


E2E_CASE = "suite/abi/test_eclone_rules.py"


@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="QEMU not installed")
def test_run_coverage_reports_the_series_lines_the_suite_reaches(tmp_path: Path) -> None:
    """Costs the coverage kernel build once (cached after), a boot, one test file and the reads."""
    results = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--coverage", "--profile", "eclone",
                           "--results", str(results), "--", E2E_CASE, "-q"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    summary = json.loads((results / "summary.json").read_text())
    cov = summary["coverage"]
    assert (results / "coverage" / "index.html").is_file()
    assert set(cov["files"]) == {"kernel/pid.c", "kernel/fork.c"}
    hit, total = cov["patch"]["lines"]
    assert total > 50 and hit > 0  # the series adds dozens of executable lines; the rules file runs some
    assert len(cov["patch"]["not_reached"]) == total - hit
    fork = cov["patch"]["by_patch"]["0004-fork-add-eclone-syscall"]
    assert fork["lines"][0] > 0  # sys_eclone ran
    assert "kernel coverage" in proc.stdout and "eclone series" in proc.stdout


def test_added_lines_are_found_where_patch_put_them_on_another_point_release() -> None:
    """The series applied with an offset (another 6.1 point release): the runs of added lines move with it."""
    added = {3: AddedLine("a();", "p1"), 4: AddedLine("b();", "p1"), 9: AddedLine("c();", "p2")}
    source = ["x"] * 5 + ["a();", "b();"] + ["y"] * 4 + ["c();"] + ["z"] * 3  # +3 and +3
    assert realigned(added, source) == {6: added[3], 7: added[4], 12: added[9]}
    found = realigned(added, ["a();", "b();", "nothing else"])
    assert found == {1: added[3], 2: added[4]}, "a run found nowhere is left out"
