"""pyproject.toml: the wheel's layout is the one harness/paths.py looks for, and the console script exists.

Building a real wheel needs the build backend from PyPI, so it is checked by hand (README); here the
installed layout is rebuilt from pyproject.toml's own file map and the tool is run from it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from harness.paths import REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def _name(requirement: str) -> str:
    return requirement.split("==")[0].split(">=")[0].split("<")[0].split("[")[0].strip().lower()


def test_console_script_is_the_cli() -> None:
    assert PYPROJECT["project"]["scripts"] == {"eclone-suite": "harness.cli:main"}


def test_dependencies_cover_the_pinned_lock() -> None:
    pinned = {_name(line) for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    project = PYPROJECT["project"]
    declared = {_name(r) for r in project["dependencies"]} | {
        _name(r) for extra in project["optional-dependencies"].values() for r in extra}
    assert pinned <= declared


def _installed_copy(site: Path) -> None:
    """What `pip install .` lays out: the wheel's packages plus its force-include map."""
    wheel = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in wheel["packages"]:
        shutil.copytree(REPO_ROOT / package, site / package, ignore=ignore)
    for src, dest in wheel["force-include"].items():
        if (REPO_ROOT / src).is_dir():
            shutil.copytree(REPO_ROOT / src, site / dest, ignore=ignore)
        else:
            shutil.copy(REPO_ROOT / src, site / dest)


def test_an_installed_copy_finds_its_files_and_runs(tmp_path: Path) -> None:
    site, work = tmp_path / "site", tmp_path / "work"
    work.mkdir()
    _installed_copy(site)
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    probe = ("import json, harness.paths as p, harness.kconfig as k, harness.mutants as m; "
             "print(json.dumps([str(p.REPO_ROOT), p.INSTALLED, str(p.results_root()), k.available_fragments(), "
             "len(m.discover()), (p.AGENT_DIR / 'PROGRAMS.md').is_file()]))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=work, env=env, capture_output=True, text=True,
                         timeout=60, check=True)
    root, installed, results, fragments, mutants, programs = json.loads(out.stdout)
    assert (root, installed, results) == (str(site / "harness" / "_tree"), True, str(work / "results"))
    assert "base" in fragments and mutants > 0 and programs
    for args in (["--help"], ["run", "--help"]):
        proc = subprocess.run([sys.executable, "-m", "harness", *args], cwd=work, env=env, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr


def test_a_checkout_is_its_own_root() -> None:
    import harness.paths as paths
    assert not paths.INSTALLED
    assert paths.results_root() == REPO_ROOT / "results"
