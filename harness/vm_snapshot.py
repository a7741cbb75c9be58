"""Saved VM states: a guest whose agent is already up, restored instead of booted.

Under TCG a cold boot spends ~1 s in the kernel and ~0.5-1.5 s starting CPython (the first run of its
code is translated by TCG). A VM restored from a migration stream of the same kernel, initramfs, QEMU
and settings has its agent waiting for requests at once. The first cold boot of a combination saves it
(QMP `migrate` to a file while the agent idles, then `cont`); later boots restore it with `-incoming`,
and fall back to a cold boot (dropping the file) if the restore fails in any way.

The host writes nothing to a restored VM before QMP says it runs: QEMU connects the channel sockets at
start and reads them while the stream still loads (`inmigrate`). The 8250 (ttyS1, where distro kernels
without virtio built in keep the agent) takes one byte then, into the receive register of its reset state,
and loading its saved state overwrites it: the first request arrived without its `{` and the agent dropped it
(QEMU 7.2; a one-byte prefix got the request through, two bytes did not). The virtio port takes nothing
before its saved queues are loaded.
A snapshot is keyed by the kernel and initramfs files (path, size, mtime), every QemuConfig field and
QEMU's version; the newest KEEP are kept (mutant runs would otherwise leave one per kernel).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import select
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import BootError
from .paths import cache_dir
from .qemu_config import QemuConfig

FORMAT = "1"
KEEP = 6
SAVE_TIMEOUT = 60.0
MAX_BANDWIDTH = 8 << 30  # bytes/s: QEMU's default limit would make a save take seconds


@functools.lru_cache(maxsize=4)
def qemu_version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else "?"


def _file_id(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def snapshot_key(kernel: Path, initrd: Path, config: QemuConfig) -> str:
    """What a restored VM must share with the one that was saved."""
    parts = [FORMAT, _file_id(kernel), _file_id(initrd), qemu_version(config.binary),
             json.dumps(dataclasses.asdict(config), sort_keys=True, default=str)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


def snapshot_dir() -> Path:
    path = cache_dir() / "snapshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def lookup(kernel: Path, initrd: Path, config: QemuConfig) -> tuple[Path, dict[str, Any]] | None:
    """(state file, metadata) of a saved VM for this combination, if there is one."""
    if not config.snapshots:
        return None
    key = snapshot_key(kernel, initrd, config)
    state, meta = snapshot_dir() / f"{key}.vmstate", snapshot_dir() / f"{key}.json"
    try:
        data = json.loads(meta.read_text())
    except (OSError, ValueError):
        return None
    if not state.is_file():
        return None
    os.utime(state)  # recently used: kept by prune()
    return state, data


def discard(state: Path) -> None:
    """Drop a snapshot that did not restore (QEMU changed, file damaged)."""
    for path in (state, state.with_suffix(".json")):
        path.unlink(missing_ok=True)


def prune(keep: int = KEEP) -> None:
    states = sorted(snapshot_dir().glob("*.vmstate"), key=lambda p: p.stat().st_mtime, reverse=True)
    for state in states[keep:]:
        discard(state)


class Qmp:
    """The few QMP commands a save needs, over the VM's QMP unix socket."""

    def __init__(self, path: Path, timeout: float = 10.0, gone: Callable[[], bool] | None = None) -> None:
        """`gone` says the QEMU process has exited: no use waiting for its socket."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(str(path))
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline or (gone is not None and gone()):
                    raise BootError(f"no QMP socket at {path}") from None
                time.sleep(0.01)
        self._buf = b""
        self._line(timeout)  # the greeting
        self.command("qmp_capabilities")

    def _line(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                raise BootError("QMP did not answer")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise BootError("QMP closed")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def command(self, name: str, timeout: float = 10.0, **arguments: Any) -> Any:
        msg = {"execute": name, **({"arguments": arguments} if arguments else {})}
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self._line(timeout)
            if "event" in reply:
                continue
            if "error" in reply:
                raise BootError(f"QMP {name}: {reply['error'].get('desc', reply['error'])}")
            return reply.get("return")

    def wait_running(self, timeout: float) -> None:
        """Return once the VM runs (a restored one: its state fully loaded); BootError if it will not."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.command("query-status", timeout) or {}
            if status.get("running"):
                return
            if status.get("status") not in ("inmigrate", "prelaunch"):
                raise BootError(f"VM {status.get('status', '?')} instead of running")
            left = deadline - time.monotonic()
            if left <= 0:
                raise BootError("VM not running yet")
            self._wait_event("RESUME", min(left, 0.05))

    def _wait_event(self, name: str, timeout: float) -> None:
        """Read replies until the event `name` or the timeout (the caller asks again either way)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                if self._line(left).get("event") == name:
                    return
            except BootError:
                return  # nothing within the timeout; QMP closing shows in the next command

    def close(self) -> None:
        self.sock.close()


def save(qmp_socket: Path, kernel: Path, initrd: Path, config: QemuConfig, meta: dict[str, Any]) -> Path:
    """Migrate the running VM into the cache, let it run on; returns the state file."""
    key = snapshot_key(kernel, initrd, config)
    state = snapshot_dir() / f"{key}.vmstate"
    tmp = state.with_name(f"{key}.tmp{os.getpid()}")
    qmp = Qmp(qmp_socket)
    try:
        qmp.command("migrate-set-parameters", **{"max-bandwidth": MAX_BANDWIDTH})
        qmp.command("migrate", uri=f"exec:cat > '{tmp}'")
        deadline = time.monotonic() + SAVE_TIMEOUT
        while True:
            status = (qmp.command("query-migrate") or {}).get("status")
            if status == "completed":
                break
            if status in ("failed", "cancelled") or time.monotonic() > deadline:
                raise BootError(f"saving the VM state: migration {status}")
            time.sleep(0.02)
        qmp.command("cont")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        qmp.close()
    os.replace(tmp, state)
    state.with_suffix(".json").write_text(json.dumps(meta))
    prune()
    return state
