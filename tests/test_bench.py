"""`python -m harness bench` on the host target, with short durations."""

from __future__ import annotations

import argparse
import glob
import json
import shutil

import pytest

from harness import bench
from harness.errors import UsageError

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="bench builds its C loop with gcc")


@pytest.fixture(scope="module")
def target(host_target):
    """These tests run on the host target, whatever --target says."""
    return host_target


def host_args(**changes) -> argparse.Namespace:
    base = dict(target="host", kernel=None, tree=None, patch=[], fragment=[], stock=False, json=False)
    return argparse.Namespace(**{**base, **changes})


def test_the_c_spawn_loop_is_built_once_into_the_cache():
    first = bench.build_c_spawn()
    assert first == bench.build_c_spawn()
    assert first.stat().st_size < 64 * 1024  # freestanding: it must cross a serial line quickly
    assert first.read_bytes()[:4] == b"\x7fELF"


def test_c_spawn_rate_runs_the_loop_in_the_target_and_leaves_no_file(target):
    before = set(glob.glob("/tmp/eclone-bench-spawn-*"))
    res = bench.c_spawn_rate(target, bench.build_c_spawn(), seconds=0.2)
    assert set(glob.glob("/tmp/eclone-bench-spawn-*")) == before
    assert res["spawns"] > 0 and res["per_s"] > 0
    assert 0.15 < res["seconds"] < 2.0


def test_python_spawn_rate_counts_programs(target):
    res = bench.python_spawn_rate(target, seconds=0.2)
    assert res["spawns"] >= 1 and res["per_s"] > 0 and res["seconds"] >= 0.2


def test_ping_median_is_positive_and_small(target):
    assert 0 < bench.ping_median_ms(target, 20) < 50


def test_run_bench_reports_every_number_and_the_ratio(target):
    res = bench.run_bench(target, pings=10, spawn_seconds=0.2, c_seconds=0.2)
    assert res["target"] == "host" and res["guest_uptime_at_ready_s"] is None
    assert res["ratio_python_over_c"] == pytest.approx(res["python_spawn"]["per_s"] / res["c_spawn"]["per_s"],
                                                       rel=1e-3)
    assert res["ratio_python_over_c"] > 0


def test_bench_command_prints_json(host_sandbox, monkeypatch, capsys):
    real = bench.run_bench
    monkeypatch.setattr(bench, "run_bench", lambda t: real(t, pings=10, spawn_seconds=0.1, c_seconds=0.1))
    assert bench.bench_command(host_args(json=True)) == 0
    res = json.loads(capsys.readouterr().out)
    assert {"boot_s", "ping_median_ms", "python_spawn", "c_spawn", "ratio_python_over_c", "programs_per_s",
            "suite_s", "fuzz_examples_per_s", "spawn_ms"} <= set(res)
    assert res["boot_s"] > 0 and res["programs_per_s"] > 0
    assert res["suite_s"] is None and res["fuzz_examples_per_s"] is None  # only with --suite / --fuzz


def test_bench_command_prints_a_table(host_sandbox, monkeypatch, capsys):
    real = bench.run_bench
    monkeypatch.setattr(bench, "run_bench", lambda t: real(t, pings=10, spawn_seconds=0.1, c_seconds=0.1))
    assert bench.bench_command(host_args()) == 0
    out = capsys.readouterr().out
    for label in ("boot to agent ready", "no-op round trip", "clone3 spawn, agent", "clone3 spawn, C loop",
                  "ratio agent/C"):
        assert label in out


def test_host_bench_refuses_kernel_options(tmp_path):
    with pytest.raises(UsageError):
        bench.start_target(host_args(kernel=tmp_path / "bzImage"))


def test_time_split_gives_the_kernel_the_c_loops_time_and_the_rest_to_agent_and_transport():
    py = {"ms": {"wall": 10.0, "agent": 6.0, "host": 0.5}}
    split = bench.time_split(py, {"per_s": 500.0})
    assert split == {"kernel": 2.0, "agent": 4.0, "transport": 3.5, "host": 0.5}
