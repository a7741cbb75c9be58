"""Host side of the agent protocol: newline-delimited JSON, request ids, timeouts (no threads).

The transport is a readable fd (a pipe, a socket, a pty: anything select() accepts) or a callable
`read(timeout) -> bytes | None` (None = nothing yet, b"" = EOF), and a writer: a callable taking bytes,
a file object, or an fd.
"""

from __future__ import annotations

import collections
import json
import os
import select
import time
from collections.abc import Callable
from typing import Any

from harness.errors import AgentLost, ProgramError

Reader = int | Any | Callable[[float], bytes | None]
Writer = int | Any | Callable[[bytes], Any]


def _make_reader(src: Reader) -> Callable[[float], bytes | None]:
    if callable(src) and not hasattr(src, "fileno"):
        return src
    fd = src if isinstance(src, int) else src.fileno()

    def read(timeout: float) -> bytes | None:
        if not select.select([fd], [], [], max(0.0, timeout))[0]:
            return None
        return os.read(fd, 65536)

    return read


def _make_writer(dst: Writer) -> Callable[[bytes], None]:
    if isinstance(dst, int):
        def write_fd(data: bytes) -> None:
            while data:
                data = data[os.write(dst, data):]
        return write_fd
    if hasattr(dst, "write"):
        def write_file(data: bytes) -> None:
            dst.write(data)
            if hasattr(dst, "flush"):
                dst.flush()
        return write_file
    return dst


class AgentConnection:
    """One agent: wait for its ready event, then request/reply by id; noise lines are kept, not parsed."""

    def __init__(self, reader: Reader, writer: Writer, noise_lines: int = 200) -> None:
        self._read = _make_reader(reader)
        self._write = _make_writer(writer)
        self._buf = b""
        self._next_id = 1
        self.eof = False
        self.noise: collections.deque[str] = collections.deque(maxlen=noise_lines)

    def _next_object(self, deadline: float, what: str) -> dict[str, Any]:
        """The next JSON object line before the deadline; AgentError on timeout or EOF."""
        while True:
            while b"\n" in self._buf:
                line, self._buf = self._buf.split(b"\n", 1)
                obj = self._parse(line)
                if obj is not None:
                    return obj
            if self.eof:
                raise AgentLost(f"agent closed the channel while waiting for {what}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise AgentLost(f"agent timed out waiting for {what}")
            try:
                chunk = self._read(left)
            except OSError as e:
                raise AgentLost(f"agent channel broke while waiting for {what}: {e}") from None
            if chunk == b"":
                self.eof = True
            elif chunk:
                self._buf += chunk

    def _parse(self, line: bytes) -> dict[str, Any] | None:
        text = line.decode("utf-8", errors="replace").strip("\r\x00 ")
        try:
            obj = json.loads(text)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            return obj
        if text:
            self.noise.append(text)
        return None

    def wait_ready(self, timeout: float) -> dict[str, Any]:
        """Block until the agent's ready event; returns its info."""
        deadline = time.monotonic() + timeout
        while True:
            obj = self._next_object(deadline, "the ready event")
            if obj.get("event") == "ready":
                return dict(obj.get("info") or {})

    def send(self, op: str, **fields: Any) -> int:
        """Send one request without waiting; returns its id."""
        rid = self._next_id
        self._next_id += 1
        line = json.dumps({"id": rid, "op": op, **fields}, separators=(",", ":")) + "\n"
        try:
            self._write(line.encode())
        except OSError as e:
            raise AgentLost(f"cannot write to the agent: {e}") from None
        return rid

    def request(self, op: str, timeout: float, **fields: Any) -> Any:
        """Send a request and return its result; ProgramError on ok:false, AgentError on timeout/EOF."""
        rid = self.send(op, **fields)
        deadline = time.monotonic() + timeout
        while True:
            obj = self._next_object(deadline, f"the reply to {op!r}")
            if obj.get("id") != rid:
                continue  # events, or a late reply to an earlier request that timed out
            if obj.get("ok"):
                return obj.get("result")
            err = ProgramError(f"agent: {op}: {obj.get('error') or 'failed'}")
            err.trace = obj.get("trace", "")  # type: ignore[attr-defined]
            raise err
