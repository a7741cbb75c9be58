"""Length-prefixed JSON messages between the agent and its workers (pipes, one message at a time)."""

from __future__ import annotations

import json
import os
import select
import struct
import time

TYPE_CHECKING = False  # typing and collections.abc cost ~80 ms of a cold start under TCG: annotations only
if TYPE_CHECKING:
    from typing import Any


class WireError(Exception):
    """The peer closed its end or did not answer in time."""


class WireTimeout(WireError):
    """The peer is alive (or silent) but did not answer in time."""


def send(fd: int, obj: Any) -> None:
    """Write one message (pipes up to PIPE_BUF are atomic; larger ones loop)."""
    data = json.dumps(obj, separators=(",", ":")).encode()
    buf = struct.pack("<I", len(data)) + data
    while buf:
        buf = buf[os.write(fd, buf):]


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise WireTimeout("timeout")
        chunk = os.read(fd, n - got)
        if not chunk:
            raise WireError("peer closed the pipe")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv(fd: int, timeout: float | None = None) -> Any:
    """Read one message; raises WireError on EOF or timeout (None = wait forever)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    (length,) = struct.unpack("<I", _read_exact(fd, 4, deadline))
    return json.loads(_read_exact(fd, length, deadline))


def is_dead(fd: int) -> bool:
    """An idle reply pipe that is readable means its writer is gone (EOF) or out of sync: either way, dead."""
    return bool(select.select([fd], [], [], 0)[0])
