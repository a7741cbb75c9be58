"""Reproducers: JSON recordings that replay, and C programs that rebuild the same namespaces and calls."""

from __future__ import annotations

import errno
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.paths import MUTANTS_DIR, REPO_ROOT
from harness.profiles import SpawnRequest, make_profile
from harness.programs import (
    chain,
    install_and_exec_steps,
    occupy_step,
    program,
    race_step,
    read_file_step,
    release_step,
    syscall_step,
    write_file_step,
)
from harness.race_invariant import round_problems
from harness.repro.c_reproducer import render_c
from harness.repro.record import Recording, compare, expectations, load, save, signature

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc")
WARNINGS = ["-Wall", "-Wextra", "-Werror", "-Wno-missing-field-initializers"]
CLONE_VM, CLONE_NEWPID, SYS_CLONE = 0x100, 0x20000000, 56
NS_LAST_PID = "/proc/sys/kernel/ns_last_pid"


def busy_then_free(profile_name: str, outer: int = 3000, inner: int = 77) -> dict:
    """Occupy `outer`, ask for it (busy), free it, ask again (must succeed with exactly those pids)."""
    prof = make_profile(profile_name)
    return program([occupy_step(outer, name="h"), prof.spawn_step(SpawnRequest(at=1, pids=(outer, inner))),
                    release_step("h"), prof.spawn_step(SpawnRequest(at=1, pids=(outer, inner)))], chain(1))


def test_only_pids_the_vector_asked_for_enter_the_signature():
    step = make_profile("clone3").spawn_step(SpawnRequest(pids=(4000, 5)))
    asked = {"errno": 0, "child": {"nspid": [4000, 5]}}
    picked = {"errno": 0, "child": {"nspid": [4000, 812]}}
    assert signature(step, asked) == {"errno": 0, "child": True, "nspid": [4000, 5]}
    assert signature(step, picked) == {"errno": 0, "child": True}


def test_a_recording_survives_a_round_trip_and_other_files_are_refused(tmp_path: Path):
    rec = Recording(test="suite/x.py::test_y[clone3]", kernel="6.1", target="qemu")
    rec.add({"steps": []}, {"steps": []})
    path = save(rec, tmp_path)
    assert load(path).to_json() == rec.to_json()
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(UsageError, match="not a reproducer"):
        load(tmp_path / "bad.json")


def test_compare_flags_a_step_whose_errno_changed():
    prog = busy_then_free("eclone")
    ok = {"errno": 0, "child": {"nspid": [3000, 77]}}
    recorded = {"steps": [{"ok": True}, {"errno": 17, "child": None}, {"ok": True}, ok]}
    now = {"steps": [{"ok": True}, {"errno": 16, "child": None}, {"ok": True}, ok]}
    rec = Recording(runs=[{"program": prog, "result": recorded}])
    assert [d.step for d in compare(rec, [now]) if not d.same] == [1]


def contested(profile_name: str, pids: tuple[int, ...], at: int = 1, child: str = "park", **fields) -> dict:
    """A racer asking for `pids` at level `at`. A child that runs no code (park, exit) shares its memory
    (the cheapest clone); one that reports (report, hold) needs a copy of it."""
    flags = CLONE_VM if child in ("park", "exit") else 0
    step = make_profile(profile_name).spawn_step(SpawnRequest(at=at, pids=pids, flags=flags, child=child))
    return {**step, **fields}


def every_kind_of_race(profile_name: str, outer: int) -> dict:
    """Races using every racer op, child mode, prepare, setup/check, pidns_of and a level holder's release,
    then an exec step: what a recorded suite program can hold. `outer` and the 10 pids above it must be
    free at level 0."""
    prof = make_profile(profile_name)
    one_winner = race_step([contested(profile_name, (outer, 700))] * 3, rounds=20, check=[{"op": "pids", "ns": True}])
    victim = {"op": "release", "at": 1, "name": "v",
              "prepare": [write_file_step(NS_LAST_PID, "899"),
                          syscall_step(SYS_CLONE, [CLONE_VM | 17, 0, 0, 0, 0], clone=True, child="park", name="v")]}
    mixed = race_step([contested(profile_name, (outer + 1, 701), child="exit")] * 2 +
                      [contested(profile_name, (outer + 2, 702), child="hold", **{"as": "h"}),
                       contested(profile_name, (outer + 3, 703), child="report"), victim,
                       {"op": "exit", "at": 1}, read_file_step(NS_LAST_PID, at=1)],
                      rounds=10, setup=[write_file_step(NS_LAST_PID, "100", at=1)])
    init = prof.spawn_step(SpawnRequest(at=1, child="hold", flags=CLONE_NEWPID, name="init"))
    inside = {"eclone": lambda i: (outer + 4 + i, 800 + i), "clone3": lambda i: (outer + 4 + i, 800 + i, 2 + i)}
    askers = [contested(profile_name, inside[profile_name](i), child="exit", pidns_of="init") for i in range(2)]
    teardown = race_step([{"op": "release", "at": 1, "name": "init"}, *askers], rounds=10, setup=[init])
    return program([one_winner, mixed, release_step("h", at=1), teardown,
                    {"op": "exec", "at": 1, "argv": ["sh", "-c", "echo exec ran; exit 3"], "timeout": 5}], chain(1))


def test_a_race_winner_with_pids_it_did_not_ask_for_breaks_the_invariant():
    racers = [contested("eclone", (3000, 77))] * 2
    busy = {"ret": -1, "errno": errno.EBUSY}
    assert round_problems(racers, [{"ret": 77, "errno": 0}, busy]) == []
    assert round_problems(racers, [{"ret": 78, "errno": 0}, busy]) == ["racer 0 asked for [3000, 77] and got pid 78"]
    inner_only = {"ret": 77, "errno": 0, "child": {"nspid": [3001, 77]}}
    assert round_problems([{**racers[0], "child": "hold"}], [inner_only]) == \
        ["racer 0 asked for [3000, 77] and its child has [3001, 77]"]


def test_two_racers_keeping_children_for_the_same_pids_break_the_invariant_unless_the_children_exit():
    ok = {"ret": 77, "errno": 0}
    assert round_problems([contested("clone3", (3000, 77))] * 2, [ok, ok]) == \
        ["racers [0, 1] each got a child for the same pids"]
    assert round_problems([contested("clone3", (3000, 77), child="exit")] * 2, [ok, ok]) == []


def test_replaying_a_race_compares_the_invariant_not_the_interleaving():
    racers = [contested("eclone", (3000, 77))] * 2
    prog = program([race_step(racers, rounds=2)], chain(1))
    won, lost = {"ret": 77, "errno": 0}, {"ret": -1, "errno": errno.EBUSY}
    recorded = {"steps": [{"racers": [won, lost], "rounds": [[won, lost], [won, {"ret": 78, "errno": 0}]]}]}
    rec = Recording(runs=[{"program": prog, "result": recorded}])
    other_winners = {"steps": [{"racers": [lost, won], "rounds": [[lost, won], [lost, won]]}]}
    [diff] = compare(rec, [other_winners])
    assert (diff.recorded, diff.now) == ({"ok": False}, {"ok": True})
    clean = Recording(runs=[{"program": prog, "result": other_winners}])
    again = {"steps": [{"racers": [won, lost], "rounds": [[won, lost]] * 2}]}
    assert [d.same for d in compare(clean, [again])] == [True]
    assert expectations(prog, other_winners) == [{"ok": True, "errnos": [errno.EBUSY]}]


@pytest.mark.parametrize(("steps", "match"), [
    ([{"op": "sweep", "step": {}, "vary": {"reg": 0}, "values": [1]}], "sweep"),
    ([race_step([occupy_step(500, at=1)])], "cannot race"),
    ([race_step([read_file_step(NS_LAST_PID)], setup=[race_step([read_file_step(NS_LAST_PID)])])], "another race"),
    ([race_step([{**read_file_step(NS_LAST_PID), "prepare": [{"op": "pids"}]}])], "prepare"),
    ([{"op": "exec", "argv": []}], "argv"),
])
def test_steps_a_c_program_cannot_express_are_refused(steps: list, match: str):
    with pytest.raises(UsageError, match=match):
        render_c(program(steps), [None] * len(steps))


@needs_gcc
def test_the_c_reproducer_compiles_cleanly_with_every_supported_step(tmp_path: Path):
    prog = busy_then_free("clone3")
    prog["steps"] += [write_file_step("/proc/sys/kernel/ns_last_pid", "500"),
                      read_file_step("/proc/sys/kernel/ns_last_pid", at=1),
                      {"op": "write_file", "path": "/tmp/x", "hex": "00ff22", "mode": 0o600}]
    source = tmp_path / "repro.c"
    source.write_text(render_c(prog, [None] * len(prog["steps"])))
    built = subprocess.run(["gcc", *WARNINGS, "-o", str(tmp_path / "repro"), str(source)], capture_output=True,
                           text=True)
    assert built.returncode == 0, built.stderr[-3000:]


@needs_gcc
@pytest.mark.parametrize("profile_name", ["clone3", "eclone"])
def test_a_race_reproducer_builds_statically_without_a_warning(tmp_path: Path, profile_name: str):
    prog = every_kind_of_race(profile_name, 300000)
    source = tmp_path / "repro.c"
    source.write_text(render_c(prog, [{"ok": True, "errnos": [errno.EBUSY]}, None, None, None, None]))
    built = subprocess.run(["gcc", "-static", *WARNINGS, "-o", str(tmp_path / "repro"), str(source)],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-3000:]


def run_on_host(host_target, tmp_path: Path, source: str, *args: str) -> dict:
    """Build `source` and run it in the host target's sandbox (the same exec step a guest gets)."""
    binary = tmp_path / "repro"
    (tmp_path / "repro.c").write_text(source)
    subprocess.run(["gcc", "-O1", "-o", str(binary), str(tmp_path / "repro.c")], check=True)
    guest_path = f"/tmp/eclone-suite-repro-{uuid.uuid4().hex}"
    try:
        reply = host_target.run(program(install_and_exec_steps(binary.read_bytes(), guest_path, args, timeout=20)))
    finally:
        Path(guest_path).unlink(missing_ok=True)
    return reply["steps"][1]


@needs_gcc
def test_a_c_race_reproducer_holds_on_a_correct_kernel_for_the_rounds_asked(host_target, tmp_path: Path):
    """clone3 on the running kernel: every round as expected, each race run for the rounds given."""
    prog = every_kind_of_race("clone3", 400000 + uuid.uuid4().int % 100000)
    expected = [{"ok": True, "errnos": [errno.EEXIST]}, None, None, {"ok": True, "errnos": [errno.ENOMEM]}, None]
    out = run_on_host(host_target, tmp_path, render_c(prog, expected), "7")
    assert out["status"] == 0, out["stdout"][-3000:] + out["stderr"]
    assert out["stdout"].count("every one of 7 rounds as expected") == 3, out["stdout"][-3000:]
    assert "round 6: racer 0" in out["stdout"] and "round 7:" not in out["stdout"]
    assert "step 4 (exec sh -c echo exec ran; exit 3 at level 1): ret 3" in out["stdout"]
    assert "exec ran" in out["stdout"]


@needs_gcc
def test_a_c_race_reproducer_reports_a_refusal_with_another_errno(host_target, tmp_path: Path):
    """Told that a correct kernel refuses losers with EBUSY, a clone3 race (EEXIST) reproduces at once."""
    outer = 400000 + uuid.uuid4().int % 100000
    prog = program([race_step([contested("clone3", (outer, 700))] * 3, rounds=50)], chain(1))
    out = run_on_host(host_target, tmp_path, render_c(prog, [{"ok": True, "errnos": [errno.EBUSY]}]))
    assert out["status"] == 1, out["stdout"][-3000:] + out["stderr"]
    assert "refused with EEXIST: expected EBUSY" in out["stdout"]
    assert "the race broke the expectation in round 0 of 50" in out["stdout"]


@needs_gcc
@pytest.mark.parametrize("profile_name", ["clone3", "eclone"])
def test_the_c_reproducer_agrees_with_the_agent_on_the_reference_kernel(reference_kernel: Path, tmp_path: Path,
                                                                         profile_name: str):
    from harness.targets.qemu import QemuTarget
    prog = busy_then_free(profile_name)
    with QemuTarget(reference_kernel) as target:
        result = target.run(prog)
        assert result["steps"][3]["child"]["nspid"] == [3000, 77]
        source = tmp_path / "repro.c"
        source.write_text(render_c(prog, expectations(prog, result)))
        binary = tmp_path / "repro"
        subprocess.run(["gcc", "-O1", "-o", str(binary), str(source)], check=True)
        ran = target.run(program(install_and_exec_steps(binary.read_bytes(), "/tmp/repro", timeout=20)))
    out = ran["steps"][1]
    assert out["status"] == 0, out["stdout"] + out["stderr"]
    assert "child NSpid [3000, 77]" in out["stdout"] and "as expected" in out["stdout"]


RACE_MUTANT = MUTANTS_DIR / "eclone-check-then-alloc.patch"
RACE_CASE = "suite/races/test_one_winner.py::test_one_racer_gets_a_free_pid_and_the_others_are_busy"


def run_in_vm(kernel: Path, binary: Path, runs: int, *args: str) -> list[dict]:
    """Install once, run `runs` times (the serial line, not the kernel, is the slow part)."""
    from harness.targets.qemu import QemuTarget
    install, run = install_and_exec_steps(binary.read_bytes(), "/tmp/repro", args, timeout=25)
    with QemuTarget(kernel) as target:
        target.run(program([install]), timeout=120)
        return [target.run(program([run]))["steps"][0] for _ in range(runs)]


@needs_gcc
def test_a_race_reproducer_fails_on_a_check_then_allocate_kernel_and_passes_on_the_reference(
        tmp_path: Path, reference_kernel: Path):
    """The race suite fails on the mutant and leaves a JSON reproducer; replayed on the reference it differs;
    its C program (expectations from the reference) reports the race on the mutant and holds on the reference."""
    from harness.kernel_build import build_kernel, reference_request
    results = tmp_path / "run"
    run = subprocess.run([sys.executable, "-m", "pytest", RACE_CASE, "-k", "eclone and nested", "-q",
                          "-p", "no:cacheprovider", "--patch", str(RACE_MUTANT), "--race-rounds", "200",
                          "--results", str(results)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-2000:]
    (recording,) = (results / "repro").glob("*.json")
    source = tmp_path / "repro.c"
    replay = subprocess.run([sys.executable, "-m", "harness", "repro", str(recording), "--c", str(source)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert replay.returncode == 0 and "race     recorded not ok" in replay.stdout, replay.stdout + replay.stderr
    binary = tmp_path / "repro"
    subprocess.run(["gcc", "-static", "-O1", "-o", str(binary), str(source)], check=True)
    # A static glibc binary is ~700 KB: ~50 s over the serial line. The guest has the host's libc (the
    # agent's python needs it), so the VM runs a dynamically linked build of the same source.
    subprocess.run(["gcc", "-O1", "-o", str(binary), str(source)], check=True)

    on_mutant = run_in_vm(build_kernel(reference_request(extra_patches=(RACE_MUTANT,))), binary, 3, "300")
    assert {out["status"] for out in on_mutant} <= {0, 1}, [out["stdout"][-2000:] for out in on_mutant]
    reproduced = [out for out in on_mutant if out["status"] == 1]
    assert reproduced, [out["stdout"][-1000:] for out in on_mutant]
    assert "MISMATCH" in reproduced[0]["stdout"] and "REPRODUCED" in reproduced[0]["stdout"]
    assert "expected only pids it asked for" in reproduced[0]["stdout"]
    (on_reference,) = run_in_vm(reference_kernel, binary, 1, "300")
    assert on_reference["status"] == 0, on_reference["stdout"][-3000:] + on_reference["stderr"]
    assert "every one of 300 rounds as expected" in on_reference["stdout"]
