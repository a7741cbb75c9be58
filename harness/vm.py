"""One QEMU process: start it, capture its console, talk to the agent, and always kill it.

The VM layer knows nothing about tests (syzkaller's vm/): it boots a kernel with an initramfs,
streams the console to `console.log` and through the crash scanner, and hands out the agent
channel (ttyS1 in the guest, a unix socket here). Every live VM is in a registry that is
closed at interpreter exit, so no QEMU outlives the harness.
"""

from __future__ import annotations

import atexit
import json
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.crash_scan import Crash, CrashScanner
from harness.errors import BootCrash, BootError, QemuStartError
from harness.qemu_config import QemuConfig, qemu_argv, require_binary

_LIVE: weakref.WeakSet[Vm] = weakref.WeakSet()
DEFAULT_CONFIG = QemuConfig()


def json_object(line: str | None) -> dict[str, Any] | None:
    """The JSON object a channel line holds, or None (boot noise, a partial line, a non-object)."""
    if not line or not line.lstrip().startswith("{"):
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


class Channel:
    """Newline-framed bytes over the agent socket (the protocol layer may use the fd directly)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = b""

    def fileno(self) -> int:
        return self.sock.fileno()

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_line(self, line: str) -> None:
        self.write(line.encode() + b"\n")

    def read(self, timeout: float) -> bytes | None:
        """For a byte-stream reader (harness.protocol) taking over after recv_line(): bytes already
        buffered first, then whatever arrives within `timeout`; None = nothing yet, b"" = QEMU is gone."""
        if self._buf:
            data, self._buf = self._buf, b""
            return data
        if not select.select([self.sock], [], [], max(0.0, timeout))[0]:
            return None
        return self.sock.recv(65536)

    def has_line(self) -> bool:
        """A whole line is already buffered (a read brought several): recv_line returns it at once."""
        return b"\n" in self._buf

    def recv_line(self, timeout: float) -> str | None:
        """The next line without its newline, or None at the deadline; EOFError when QEMU is gone."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                return None
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("agent channel closed")
            self._buf += data
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode("utf-8", "replace").rstrip("\r")


class Vm:
    """A QEMU VM; use as a context manager or call close()."""

    def __init__(self, kernel: Path, initrd: Path, config: QemuConfig = DEFAULT_CONFIG,
                 restore: tuple[Path, dict[str, Any]] | None = None) -> None:
        self.kernel, self.initrd, self.config = Path(kernel), Path(initrd), config
        self.restore = restore  # (saved state, its metadata): start from it instead of booting
        self.dir = Path(tempfile.mkdtemp(prefix="eclone-vm-"))
        self.console_path = self.dir / "console.log"
        self.scanner = CrashScanner()
        self.proc: subprocess.Popen[bytes] | None = None
        self.channel: Channel | None = None
        self.ready_event: dict[str, Any] | None = None
        self.started_at = 0.0
        self._lock = threading.Lock()
        self._console: list[str] = []
        self._reader: threading.Thread | None = None
        self._listeners: list[socket.socket] = []
        self.channels: list[Channel] = []

    def start(self) -> None:
        """Launch QEMU and accept its connection on the channel socket."""
        require_binary(self.config.binary)
        for path in (self.kernel, self.initrd):
            if not path.is_file():
                raise BootError(f"no such file: {path}")
        self._listeners = [self._listen(self.dir / "agent.sock")]
        if self.config.virtio_channel:
            self._listeners.append(self._listen(self.dir / "agent-virtio.sock"))
        argv = qemu_argv(self.config, self.kernel, self.initrd, self.dir / "agent.sock",
                         self.dir / "agent-virtio.sock" if self.config.virtio_channel else None,
                         qmp_socket=self.qmp_socket, incoming=self.restore[0] if self.restore else None)
        (self.dir / "qemu.argv").write_text(json.dumps(argv))
        _LIVE.add(self)
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=open(self.dir / "qemu.err", "wb"), cwd=self.dir,
                                     start_new_session=True, preexec_fn=_die_with_parent)
        self._reader = threading.Thread(target=self._read_console, daemon=True, name="vm-console")
        self._reader.start()
        self.channels = [Channel(self._accept(listener)) for listener in self._listeners]
        self.channel = self.channels[0]  # ttyS1 until the agent says ready on another one

    @property
    def qmp_socket(self) -> Path:
        return self.dir / "qmp.sock"

    def wait_restored(self, timeout: float) -> dict[str, Any]:
        """A restored VM's agent is already serving on the channel it chose at boot: once the state is
        loaded and running, ask it for its info (request id 0: the protocol's own ids start at 1).
        BootError when it does not answer."""
        from .vm_snapshot import Qmp
        assert self.restore is not None and self.channels
        index = int(self.restore[1].get("channel", 0))
        if not 0 <= index < len(self.channels):
            raise BootError("saved VM state names a channel this VM does not have")
        self.channel = self.channels[index]
        deadline = time.monotonic() + timeout
        try:  # not before: the 8250 loses a byte sent while the state loads (harness/vm_snapshot.py)
            qmp = Qmp(self.qmp_socket, timeout, gone=self.exited)
            try:
                qmp.wait_running(max(deadline - time.monotonic(), 0.0))
            finally:
                qmp.close()
        except (BootError, OSError, ValueError) as exc:
            raise BootError(f"restored VM did not start running ({exc}): {self.qemu_error()}") from None
        try:
            self.channel.send_line(json.dumps({"id": 0, "op": "info"}))
        except OSError:
            raise BootError(f"QEMU refused the saved VM state: {self.qemu_error()}") from None
        while time.monotonic() < deadline:
            if self.exited():
                raise BootError(f"QEMU exited ({self.returncode}) restoring a saved VM: {self.qemu_error()}")
            try:
                line = self.channel.recv_line(min(0.2, max(deadline - time.monotonic(), 0)))
            except (EOFError, OSError):  # QEMU refused the state and exited
                raise BootError(f"agent channel closed restoring a saved VM: {self.qemu_error()}") from None
            reply = json_object(line)
            if reply is not None and reply.get("id") == 0 and reply.get("ok"):
                self.ready_event = {"event": "ready", "info": reply.get("result") or {}}
                return self.ready_event
        raise BootError(f"restored VM did not answer within {timeout:g} s")

    @staticmethod
    def _listen(path: Path) -> socket.socket:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(path))
        listener.listen(1)
        return listener

    def _accept(self, listener: socket.socket) -> socket.socket:
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if select.select([listener], [], [], 0.1)[0]:
                conn, _ = listener.accept()
                return conn
            if self.exited():
                break
        self.close()
        raise QemuStartError(f"QEMU did not start: {self.qemu_error() or 'no connection on the agent socket'}")

    def _read_console(self) -> None:
        """Stream QEMU's stdout (the guest console) to console.log and the crash scanner."""
        assert self.proc is not None and self.proc.stdout is not None
        with open(self.console_path, "wb") as log:
            while True:
                data = self.proc.stdout.read1(65536)
                if not data:
                    break
                log.write(data)
                log.flush()
                text = data.decode("utf-8", "replace")
                with self._lock:
                    self._console.append(text)
                    self.scanner.feed(text)
        with self._lock:
            self.scanner.close()

    def channel_fd(self) -> int:
        """The agent socket's fd, for harness.protocol (call after wait_ready/boot: the Channel's
        own buffer is then empty as long as the agent sends nothing unasked after ready)."""
        assert self.channel is not None, "Vm not started"
        return self.channel.fileno()

    def channel_write(self, data: bytes) -> None:
        assert self.channel is not None, "Vm not started"
        self.channel.write(data)

    def console_text(self) -> str:
        with self._lock:
            return "".join(self._console)

    def last_console_line(self) -> str:
        lines = [line.strip() for line in self.console_text().splitlines() if line.strip()]
        return lines[-1] if lines else "(no console output)"

    def crash(self) -> Crash | None:
        with self._lock:
            return self.scanner.crash

    def qemu_error(self) -> str:
        try:
            lines = (self.dir / "qemu.err").read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1] if lines else ""

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def wait_ready(self, timeout: float) -> dict[str, Any]:
        """Read lines of every agent channel until the ready event (the channel it came on is the
        agent's from then on); BootError on crash, exit or deadline."""
        assert self.channels
        deadline = time.monotonic() + timeout
        open_channels = list(self.channels)
        while time.monotonic() < deadline:
            crash = self.crash()
            if crash:
                raise BootCrash(f"kernel crashed during boot: {crash.title}")
            buffered = [chan for chan in open_channels if chan.has_line()]  # select cannot see these
            ready = buffered or select.select(open_channels, [], [], min(0.2, max(deadline - time.monotonic(), 0)))[0]
            for chan in ready:
                event = self._ready_line(chan, open_channels)
                if event is not None:
                    self.channel = chan
                    self.ready_event = event
                    return event
            if not open_channels:
                time.sleep(0.1)
            if self.exited() and self._reader is not None:
                self._reader.join(1.0)
                if not self.crash():
                    raise BootError(f"QEMU exited ({self.returncode}) before the agent was ready; "
                                    f"last console line: {self.last_console_line()}")
        raise BootError(f"kernel did not reach the agent within {timeout:g} s; "
                        f"last console line: {self.last_console_line()}")

    @staticmethod
    def _ready_line(chan: Channel, open_channels: list[Channel]) -> dict[str, Any] | None:
        """The ready event if the next line on `chan` is one (a closed channel leaves the list)."""
        try:
            line = chan.recv_line(0.05)
        except EOFError:
            open_channels.remove(chan)
            return None
        event = json_object(line)
        return event if event is not None and event.get("event") == "ready" else None

    def close(self) -> None:
        """Kill QEMU (SIGTERM, then SIGKILL), reap it, remove the temp dir. Idempotent."""
        _LIVE.discard(self)
        for chan in self.channels:
            chan.sock.close()
        for listener in self._listeners:
            listener.close()
        if self.proc is not None and self.proc.poll() is None:
            _kill(self.proc)
        if self.proc is not None and self.proc.stdout is not None:
            if self._reader is not None:
                self._reader.join(2.0)
            self.proc.stdout.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Vm:
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _die_with_parent() -> None:
    """In the QEMU child before exec: SIGKILL it when the harness dies, even by SIGKILL."""
    import ctypes
    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
        try:
            proc.send_signal(sig)
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            break
    proc.poll()


@atexit.register
def close_all() -> None:
    """Kill every VM still alive (interpreter exit, or a test runner's teardown)."""
    for vm in list(_LIVE):
        vm.close()


RESTORE_TIMEOUT = 5.0  # a restored agent answers in milliseconds


def restore(kernel: Path, initrd: Path, config: QemuConfig) -> Vm | None:
    """A VM restored from its saved state with the agent up, or None (no state, or it failed: dropped)."""
    from . import vm_snapshot
    saved = vm_snapshot.lookup(kernel, initrd, config)
    if saved is None:
        return None
    vm = Vm(kernel, initrd, config, restore=saved)
    try:
        vm.start()
        vm.wait_restored(RESTORE_TIMEOUT)
        return vm
    except BootError:
        vm.close()
        vm_snapshot.discard(saved[0])
        return None
    except BaseException:
        vm.close()
        raise


def save_state(vm: Vm) -> None:
    """Save a freshly booted VM for the next boots (best effort: a failure only costs them the time)."""
    from . import vm_snapshot
    info = (vm.ready_event or {}).get("info") or {}
    if not vm.config.snapshots or vm.restore is not None or "features" not in info:
        return  # only our agent's VMs (tests boot trivial inits that say ready too)
    meta = {"channel": vm.channels.index(vm.channel)}
    try:
        vm_snapshot.save(vm.qmp_socket, vm.kernel, vm.initrd, vm.config, meta)
    except (BootError, OSError, ValueError):
        pass


def boot(kernel: Path, initrd: Path, config: QemuConfig = DEFAULT_CONFIG,
         ready_timeout: float = 60.0, retries: int = 1) -> Vm:
    """Start a VM and wait for the agent's ready line; retry (on q35 if microvm hung)."""
    restored = restore(kernel, initrd, config)
    if restored is not None:
        return restored
    error: BootError | None = None
    for _attempt in range(retries + 1):
        vm = Vm(kernel, initrd, config)
        try:
            vm.start()
            vm.wait_ready(ready_timeout)
            save_state(vm)
            return vm
        except BootError as exc:
            vm.close()
            error = exc
            if isinstance(exc, BootCrash | QemuStartError):
                break
            if config.accel == "kvm":
                config = replace(config, accel="tcg")  # KVM that passed the probe but cannot boot Linux
            elif config.machine == "microvm":
                config = replace(config, machine="q35")
        except BaseException:
            vm.close()
            raise
    assert error is not None
    raise error
