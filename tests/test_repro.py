"""Reproducers: JSON recordings that replay, and C programs that rebuild the same namespaces and calls."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.profiles import SpawnRequest, make_profile
from harness.programs import (
    chain,
    install_and_exec_steps,
    occupy_step,
    program,
    read_file_step,
    release_step,
    write_file_step,
)
from harness.repro.c_reproducer import render_c
from harness.repro.record import Recording, compare, expectations, load, save, signature

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc")


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


def test_steps_a_c_program_cannot_express_are_refused():
    prog = program([{"op": "race", "racers": []}])
    with pytest.raises(UsageError, match="race"):
        render_c(prog, [None])


@needs_gcc
def test_the_c_reproducer_compiles_cleanly_with_every_supported_step(tmp_path: Path):
    prog = busy_then_free("clone3")
    prog["steps"] += [write_file_step("/proc/sys/kernel/ns_last_pid", "500"),
                      read_file_step("/proc/sys/kernel/ns_last_pid", at=1),
                      {"op": "write_file", "path": "/tmp/x", "hex": "00ff22", "mode": 0o600}]
    source = tmp_path / "repro.c"
    source.write_text(render_c(prog, [None] * len(prog["steps"])))
    built = subprocess.run(["gcc", "-Wall", "-Wextra", "-Werror", "-Wno-missing-field-initializers",
                            "-o", str(tmp_path / "repro"), str(source)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-3000:]


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
        source.write_text(render_c(prog, expectations(prog, result), result["steps"]))
        binary = tmp_path / "repro"
        subprocess.run(["gcc", "-O1", "-o", str(binary), str(source)], check=True)
        ran = target.run(program(install_and_exec_steps(binary.read_bytes(), "/tmp/repro", timeout=20)))
    out = ran["steps"][1]
    assert out["status"] == 0, out["stdout"] + out["stderr"]
    assert "child NSpid [3000, 77]" in out["stdout"] and "as expected" in out["stdout"]
