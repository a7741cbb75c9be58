"""Saved VM states: keyed by everything a restore must share, restored with the agent up, dropped when broken."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from harness import vm_snapshot
from harness.initramfs import build_initramfs
from harness.programs import program, read_file_step
from harness.qemu_config import QemuConfig
from harness.vm import boot


@pytest.fixture
def snapshots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(vm_snapshot, "snapshot_dir", lambda: tmp_path)
    return tmp_path


def test_key_changes_with_the_kernel_the_config_and_nothing_else(tmp_path: Path) -> None:
    kernel, initrd = tmp_path / "bzImage", tmp_path / "initrd"
    kernel.write_bytes(b"k")
    initrd.write_bytes(b"i")
    config = QemuConfig()
    key = vm_snapshot.snapshot_key(kernel, initrd, config)
    assert key == vm_snapshot.snapshot_key(kernel, initrd, config)
    assert key != vm_snapshot.snapshot_key(kernel, initrd, replace(config, cpus=config.cpus + 1))
    assert key != vm_snapshot.snapshot_key(kernel, initrd, replace(config, cmdline="x"))
    kernel.write_bytes(b"k2")
    assert key != vm_snapshot.snapshot_key(kernel, initrd, config)


def test_lookup_needs_state_and_metadata_and_prune_keeps_the_newest(snapshots: Path, tmp_path: Path) -> None:
    kernel, initrd = tmp_path / "bzImage", tmp_path / "initrd"
    kernel.write_bytes(b"k")
    initrd.write_bytes(b"i")
    config = QemuConfig()
    assert vm_snapshot.lookup(kernel, initrd, config) is None
    key = vm_snapshot.snapshot_key(kernel, initrd, config)
    (snapshots / f"{key}.vmstate").write_bytes(b"state")
    assert vm_snapshot.lookup(kernel, initrd, config) is None  # no metadata yet
    (snapshots / f"{key}.json").write_text('{"channel": 1}')
    assert vm_snapshot.lookup(kernel, initrd, config) == (snapshots / f"{key}.vmstate", {"channel": 1})
    assert vm_snapshot.lookup(kernel, initrd, replace(config, snapshots=False)) is None
    for i in range(vm_snapshot.KEEP + 2):
        (snapshots / f"old{i}.vmstate").write_bytes(b"s")
        os.utime(snapshots / f"old{i}.vmstate", (1000 + i, 1000 + i))
    vm_snapshot.prune()
    assert len(list(snapshots.glob("*.vmstate"))) == vm_snapshot.KEEP
    assert (snapshots / f"{key}.vmstate").exists()  # the newest


def test_second_boot_restores_a_running_agent_and_a_broken_state_falls_back(snapshots: Path,
                                                                             reference_kernel: Path) -> None:
    initrd = build_initramfs()
    config = QemuConfig(cpus=2, memory_mib=512)
    first = boot(reference_kernel, initrd, config)
    try:
        assert first.restore is None and "features" in first.ready_event["info"]
    finally:
        first.close()
    (state,) = snapshots.glob("*.vmstate")
    second = boot(reference_kernel, initrd, config)
    try:
        assert second.restore is not None and second.ready_event["info"]["kernel"]
        from harness.protocol import AgentConnection
        conn = AgentConnection(second.channel.read, second.channel.write)
        reply = conn.request("run", 30, program=program([read_file_step("/proc/sys/kernel/pid_max")]))
        assert int(reply["steps"][0]["data"]) > 0
    finally:
        second.close()
    state.write_bytes(b"not a migration stream")
    third = boot(reference_kernel, initrd, config)
    try:
        assert third.restore is None and "features" in third.ready_event["info"]  # booted cold, saved anew
    finally:
        third.close()
    assert state.stat().st_size > 1 << 20
