"""Child pytest runs in their own session: Ctrl-C on the terminal does not hit them half-way, and
they are stopped as one process group (pytest and its xdist workers; QEMU dies with its parent)."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

# (signal, seconds to wait for the group leader after it)
TERM_THEN_KILL = ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0))


def kill_group(proc: subprocess.Popen, steps: tuple[tuple[int, float], ...] = TERM_THEN_KILL) -> None:
    """Send each signal to proc's process group until its leader exits."""
    for sig, wait in steps:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of the group, from /proc: kill(-pgid, 0) also counts unreaped zombies."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited while we looked
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(stat.parent.name))
    return members


def group_alive(pgid: int) -> bool:
    """Is any process of the group left (e.g. an xdist worker whose controller already exited)?"""
    return bool(group_members(pgid))
