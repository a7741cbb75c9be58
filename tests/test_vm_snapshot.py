"""Saved VM states: keyed by everything a restore must share, restored with the agent up, dropped when broken."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from harness import vm_snapshot
from harness.errors import BootError
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


def test_an_agent_on_ttys1_is_saved_and_restored_too(snapshots: Path, reference_kernel: Path) -> None:
    """Without the virtio port the agent stays on ttyS1, as on distro kernels; the restored 8250 must get the
    first request whole (QEMU 7.2 dropped its first byte when the host wrote while the state was loading)."""
    initrd = build_initramfs()
    config = QemuConfig(cpus=2, memory_mib=512, virtio_channel=False)
    first = boot(reference_kernel, initrd, config)
    try:
        assert first.restore is None and first.channels == [first.channel]  # ttyS1 is the only channel
    finally:
        first.close()
    assert len(list(snapshots.glob("*.vmstate"))) == 1
    for _ in range(2):
        again = boot(reference_kernel, initrd, config)
        try:
            assert again.restore is not None and again.restore[1] == {"channel": 0}
            from harness.protocol import AgentConnection
            conn = AgentConnection(again.channel.read, again.channel.write)
            for _ in range(3):
                reply = conn.request("run", 30, program=program([read_file_step("/proc/sys/kernel/pid_max")]))
                assert int(reply["steps"][0]["data"]) > 0
        finally:
            again.close()


class FakeQmp:
    """A QMP server on a unix socket that answers query-status from a script of states."""

    def __init__(self, path: Path, states: list[str], events: dict[str, str]) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(1)
        self.states, self.events = list(states), events
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        try:
            self._answer(conn)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client hung up mid-reply, as a Qmp that gives up does

    def _answer(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rwb", buffering=0) as f:
            f.write(b'{"QMP": {"version": {}, "capabilities": []}}\n')
            for line in f:
                name = json.loads(line)["execute"]
                if name != "query-status":
                    f.write(b'{"return": {}}\n')
                    continue
                status = self.states.pop(0) if len(self.states) > 1 else self.states[0]
                f.write(json.dumps({"return": {"status": status, "running": status == "running"}}).encode() + b"\n")
                if status in self.events:
                    f.write(json.dumps({"event": self.events[status]}).encode() + b"\n")

    def close(self) -> None:
        self.listener.close()


@pytest.mark.parametrize(("states", "running"), [
    (["inmigrate", "inmigrate", "running"], True),  # still loading: ask again after RESUME or 50 ms
    (["running"], True),
    (["inmigrate", "shutdown"], False),  # the state did not load
    (["inmigrate"], False),  # never runs: the deadline
])
def test_wait_running_waits_for_the_loaded_state(tmp_path: Path, states: list[str], running: bool) -> None:
    server = FakeQmp(tmp_path / "qmp.sock", states, {"inmigrate": "MIGRATION"})
    qmp = vm_snapshot.Qmp(tmp_path / "qmp.sock", timeout=2.0)
    try:
        if running:
            qmp.wait_running(2.0)
        else:
            with pytest.raises(BootError):
                qmp.wait_running(0.3)
    finally:
        qmp.close()
        server.close()


def test_qmp_gives_up_at_once_when_qemu_is_gone(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(BootError):
        vm_snapshot.Qmp(tmp_path / "no.sock", timeout=10.0, gone=lambda: True)
    assert time.monotonic() - started < 1.0
