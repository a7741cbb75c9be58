"""`python -m harness trace`: docs/TRACEABILITY.md from the rule table (harness/rules.py), the suite's tests
(their `profiles` markers) and the mutants (qemu/mutants/*.patch, with the kills measured by `harness mutants`
runs recorded in qemu/mutants/kills.json; with `--mutants-json`, only that run's kills by a test of the rule
count). Every test and mutant the table names must exist; a rule with no test or no mutant for a profile is
listed as a gap."""

from __future__ import annotations

import importlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import paths
from .errors import ConfigError
from .rules import ALL, ID_ALL, RULES, Rule

# which profiles a mutant's bug reaches, by its name (the rest touch code every profile shares)
MUTANT_SCOPE = (("eclone-", ("eclone",)), ("clone3-", ("clone3",)), ("clone2-", ("clone2",)),
                ("clone-with-pids-", ("clone_with_pids",)), ("root-anchored-", ("clone_with_pids", "clone2")),
                ("ns-last-pid-", ("ns_last_pid",)), ("ipc-next-id-", ("msg_next_id", "sem_next_id", "shm_next_id")),
                ("next-id-", ("next_id", "next_id_msg", "next_id_sem", "next_id_shm")))  # one file, four profiles
KILLS_FILE = Path("qemu") / "mutants" / "kills.json"  # measured kills, merged from `harness mutants` runs


def mutant_scope(name: str) -> tuple[str, ...]:
    for prefix, profiles in MUTANT_SCOPE:
        if name.startswith(prefix):
            return profiles
    return ALL


def suite_tests(suite_dir: Path) -> dict[str, tuple[str, ...]]:
    """`area/test_file::test_function` -> the profiles it runs for (its `profiles` marker, else all)."""
    out: dict[str, tuple[str, ...]] = {}
    if str(suite_dir.parent) not in sys.path:
        sys.path.insert(0, str(suite_dir.parent))
    for path in sorted(suite_dir.glob("*/test_*.py")):
        module = importlib.import_module(f"suite.{path.parent.name}.{path.stem}")
        default = _profiles_mark(getattr(module, "pytestmark", []))
        for name, obj in vars(module).items():
            if name.startswith("test_") and callable(obj):
                marked = _profiles_mark(getattr(obj, "pytestmark", []))
                ids = "id_profile" in getattr(getattr(obj, "__code__", None), "co_varnames", ())
                out[f"{path.parent.name}/{path.stem}::{name}"] = marked or default or (ID_ALL if ids else ALL)
    return out


def _profiles_mark(marks: Any) -> tuple[str, ...] | None:
    for mark in marks if isinstance(marks, list) else [marks]:
        if getattr(mark, "name", None) == "profiles":
            return tuple(mark.args)
    return None


def run_kills(mutants_json: Path) -> dict[str, list[str]]:
    """mutant -> node ids of the tests that killed it in a `harness mutants` run."""
    data = json.loads(mutants_json.read_text())
    out: dict[str, list[str]] = {}
    for m in data.get("mutants", []):
        if m.get("verdict") != "killed":
            continue
        out[m["name"]] = sorted({node for det in (m.get("detectors") or {}).values() if isinstance(det, dict)
                                 for node in det.get("killed_by", [])})
    return out


def measured_kills(mutants_json: Path) -> dict[str, set[tuple[str, str]]]:
    """mutant -> (test `area/test_file::test_function`, profile) pairs that killed it in a `harness mutants`
    run (the profile is the first part of the test's parameter id; "" when it has none)."""
    return kill_pairs(run_kills(mutants_json))


def kill_pairs(kills: dict[str, list[str]]) -> dict[str, set[tuple[str, str]]]:
    return {name: {_short(node) for node in nodes} for name, nodes in kills.items()}


def recorded_kills(root: Path) -> dict[str, list[str]]:
    """The kills committed in qemu/mutants/kills.json ({} when there is none)."""
    path = root / KILLS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def record_kills(root: Path, mutants_json: Path) -> dict[str, list[str]]:
    """Merge a run's kills into qemu/mutants/kills.json (a kill once measured stays: the mutants do not
    change without their name changing)."""
    merged = recorded_kills(root)
    for name, nodes in run_kills(mutants_json).items():
        merged[name] = sorted(set(merged.get(name, [])) | set(nodes))
    (root / KILLS_FILE).write_text(json.dumps(dict(sorted(merged.items())), indent=1) + "\n")
    return merged


def _short(node: str) -> tuple[str, str]:
    path, _, func = node.partition("::")
    path = path.removeprefix("suite/").removesuffix(".py")
    name, _, param = func.partition("[")
    return f"{path}::{name}", param.rstrip("]").split("-")[0]


@dataclass
class Cell:
    rule: Rule
    profile: str
    tests: list[str]
    mutants: list[str]

    @property
    def gap(self) -> str:
        """What the cell lacks; a V-* place (how the suite copes with correct kernels that differ) needs tests only."""
        wanted = [("no test", self.tests)]
        if not self.rule.id.startswith("V-"):
            wanted.append(("no killed mutant", self.mutants))
        missing = [w for w, have in wanted if not have]
        return " and ".join(missing)


def trace(tests: dict[str, tuple[str, ...]], mutants: set[str], kills: dict[str, set[tuple[str, str]]] | None = None,
          rules: tuple[Rule, ...] = RULES, recorded: dict[str, set[tuple[str, str]]] | None = None) -> list[Cell]:
    """One cell per rule and profile; ConfigError naming any test or mutant the table has wrong.

    `kills` (a run's): only measured kills count. Otherwise a mutant counts where its name reaches the
    profile or where `recorded` (qemu/mutants/kills.json) has a test of the rule killing it for the profile."""
    unknown = sorted({t for r in rules for t in r.tests if t not in tests} |
                     {m for r in rules for m in r.mutants if m not in mutants})
    if unknown:
        raise ConfigError(f"harness/rules.py names tests or mutants that do not exist: {', '.join(unknown)}")
    cells = []
    for rule in rules:
        for profile in rule.profiles:
            ts = [t for t in rule.tests if profile in tests[t]]
            if kills is None:
                ms = [m for m in rule.mutants if profile in mutant_scope(m)
                      or any((t, profile) in (recorded or {}).get(m, set()) for t in ts)]
            else:  # measured: a test of the rule killed it for this profile
                ms = [m for m in rule.mutants if any((t, profile) in kills.get(m, set()) for t in ts)]
            cells.append(Cell(rule, profile, ts, ms))
    return cells


def render(cells: list[Cell], mutants: set[str], rules: tuple[Rule, ...] = RULES) -> str:
    lines = ["# Traceability: NOTES.md rules -> tests -> mutants", "",
             "Generated by `python -m harness trace` from `harness/rules.py` (rule ids), the tests' `profiles` "
             "markers and `qemu/mutants/`; do not edit by hand. A mutant counts for a profile when its bug reaches "
             "that profile by its name (`eclone-*` only eclone, `root-anchored-*` clone_with_pids and clone2, "
             "`pid-*`/`fork-*` every profile: conservative, as eclone's alloc_pid path is shared by the seeds' "
             "calls; `next-id-*` the four next_id profiles) or when a test of the rule killed it for that profile in a "
             "measured run (`qemu/mutants/kills.json`, merged by `harness trace --record-kills mutants.json`; with "
             "`--mutants-json FILE` only that run's kills count). `V-*` are the places where "
             "correct kernels differ (NOTES.md \"Newer kernels\"): each is probed or tolerated, never assumed; "
             "they need tests, not mutants.", "",
             "| rule | NOTES.md | rule | profile | tests | mutants |", "|---|---|---|---|---|---|"]
    for c in cells:
        tests = "<br>".join(f"`{t}`" for t in c.tests) or "**none**"
        muts = ", ".join(f"`{m}`" for m in c.mutants) or "**none**"
        lines.append(f"| {c.rule.id} | {c.rule.where} | {c.rule.text} | {c.profile} | {tests} | {muts} |")
    gaps = [c for c in cells if c.gap]
    lines += ["", f"## Gaps ({len(gaps)})", ""]
    lines += [f"- {c.rule.id} / {c.profile}: {c.gap}" + (f" ({c.rule.note})" if c.rule.note else "") for c in gaps]
    out_of_scope = [r for r in rules if not r.profiles]
    if out_of_scope:
        lines += ["", "## Not in the reference", ""] + [f"- {r.id}: {r.text} ({r.note})" for r in out_of_scope]
    traced = {m for r in rules for m in r.mutants}
    lines += ["", "## Mutants no rule names", ""]
    lines += [f"- `{m}`" for m in sorted(mutants - traced)] or ["(none)"]
    versions = [r for r in rules if r.id.startswith("V-")]
    lines += ["", "## Version-dependent places (probed or tolerant, never assumed)", ""]
    lines += [f"- {r.id}: {r.text}; {r.note}" for r in versions]
    return "\n".join(lines) + "\n"


def mutant_names(root: Path) -> set[str]:
    return {p.stem for p in (root / "qemu" / "mutants").glob("*.patch")}


def trace_command(args: Any) -> int:
    if args.record_kills:
        merged = record_kills(paths.REPO_ROOT, args.record_kills)
        print(f"trace: {len(merged)} mutants with measured kills in {KILLS_FILE}")
    return main(args.out, args.mutants_json)


def main(out: Path | None = None, mutants_json: Path | None = None) -> int:
    root = paths.REPO_ROOT
    tests = suite_tests(root / "suite")
    mutants = mutant_names(root)
    cells = trace(tests, mutants, measured_kills(mutants_json) if mutants_json else None,
                  recorded=kill_pairs(recorded_kills(root)))
    out = out or root / "docs" / "TRACEABILITY.md"
    out.write_text(render(cells, mutants))
    gaps = sum(1 for c in cells if c.gap)
    print(f"trace: {len(RULES)} rules, {len(cells)} rule x profile cells, {gaps} gaps -> {out}")
    return 0
