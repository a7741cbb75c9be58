"""The agent's line channel to the host: stdio pipes, a virtio-serial port, or a serial tty set raw."""

from __future__ import annotations

import json
import os
import select
import stat
import termios
import time

TYPE_CHECKING = False  # typing and collections.abc cost ~80 ms of a cold start under TCG: annotations only
if TYPE_CHECKING:
    from typing import Any


class Channel:
    """Newline-delimited JSON over a pair of fds; lines that are not JSON objects are dropped."""

    def __init__(self, in_fd: int, out_fd: int) -> None:
        self.in_fd = in_fd
        self.out_fd = out_fd
        self.buf = b""
        self.eof = False

    def send(self, obj: dict[str, Any]) -> None:
        data = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
        while data:
            data = data[os.write(self.out_fd, data):]

    def receive(self, timeout: float | None) -> dict[str, Any] | None:
        """The next JSON object, or None on timeout; sets self.eof when the host went away."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                obj = _parse(line)
                if obj is not None:
                    return obj
            if self.eof:
                return None
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([self.in_fd], [], [], left)[0]:
                return None
            chunk = os.read(self.in_fd, 65536)
            if not chunk:
                self.eof = True
            self.buf += chunk


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        obj = json.loads(line.strip(b"\r\x00 "))
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def open_stdio() -> Channel:
    """Move the protocol off fd 1 so that a stray print cannot corrupt it (fd 1 then goes to stderr)."""
    in_fd, out_fd = os.dup(0), os.dup(1)
    os.dup2(2, 1)
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return Channel(in_fd, out_fd)


def open_tty(path: str) -> Channel:
    """A serial line in raw mode (no echo, no line discipline, 8N1, 115200 baud)."""
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    attrs = termios.tcgetattr(fd)
    attrs[0] = 0  # iflag: no CR/NL mapping, no flow control
    attrs[1] = 0  # oflag: no post-processing (no NL -> CRNL)
    attrs[2] = termios.CS8 | termios.CREAD | termios.CLOCAL
    attrs[3] = 0  # lflag: no echo, no canonical mode, no signals
    attrs[4] = attrs[5] = termios.B115200
    attrs[6][termios.VMIN] = 1
    attrs[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, attrs)
    termios.tcflush(fd, termios.TCIFLUSH)
    return Channel(fd, fd)


VIRTIO_PORTS = "/sys/class/virtio-ports"
VIRTIO_PORT_NAME = "eclone.agent"  # harness/qemu_config.py names the port so


def virtio_port(name: str = VIRTIO_PORT_NAME) -> str | None:
    """/dev path of the virtio-serial port called `name` (its node made if devtmpfs lacks it), or None."""
    try:
        ports = os.listdir(VIRTIO_PORTS)
    except OSError:
        return None
    for port in sorted(ports):
        try:
            with open(f"{VIRTIO_PORTS}/{port}/name") as f:
                if f.read().strip() != name:
                    continue
            with open(f"{VIRTIO_PORTS}/{port}/dev") as f:
                major, minor = (int(x) for x in f.read().split(":"))
        except (OSError, ValueError):
            continue
        path = f"/dev/{port}"
        if not os.path.exists(path):
            os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(major, minor))
        return path
    return None


def open_auto(tty: str) -> Channel:
    """The virtio-serial port when the kernel has one (fast), else the serial line `tty`."""
    port = virtio_port()
    if port is None:
        return open_tty(tty)
    fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
    return Channel(fd, fd)
