"""Guest side of coverage: debugfs mounted, counters reset before the suite, .gcda files read after it."""

from __future__ import annotations

import base64
import errno
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, EnvError

if TYPE_CHECKING:
    from harness.targets.base import Target

DEBUGFS = "/sys/kernel/debug"
GCOV_DIR = f"{DEBUGFS}/gcov"


def guest_gcda_path(objtree: str, source: str) -> str:
    """kernel/gcov/fs.c mirrors the object tree (the absolute O= dir) under debugfs: gcov/<objtree>/<obj>.gcda."""
    return f"{GCOV_DIR}/{objtree.strip('/')}/{Path(source).with_suffix('.gcda')}"


def _one(target: Target, step: dict[str, Any]) -> dict[str, Any]:
    return target.run({"steps": [step]})["steps"][0]


def start(target: Target) -> None:
    """Mount debugfs and zero every counter, so the report counts what the suite ran, not the boot.

    A kernel without gcov (a user's --kernel image) fails here, before the suite runs, with one line."""
    mount = _one(target, {"op": "mount", "source": "debugfs", "target": DEBUGFS, "fstype": "debugfs"})
    if mount["errno"]:
        option = "CONFIG_DEBUG_FS" if mount["errno"] in (errno.ENODEV, errno.ENOENT) else "debugfs"
        raise ConfigError(f"cannot mount debugfs at {DEBUGFS} ({os.strerror(mount['errno'])}): the kernel needs "
                          f"{option} and CONFIG_GCOV_KERNEL for --coverage")
    reset = _one(target, {"op": "write_file", "path": f"{GCOV_DIR}/reset", "data": "1"})
    if reset["errno"]:
        raise ConfigError(f"no {GCOV_DIR}/reset ({os.strerror(reset['errno'])}): the kernel was built without "
                          "CONFIG_GCOV_KERNEL, which --coverage needs")


def read_gcda(target: Target, objtree: str, sources: tuple[str, ...]) -> dict[str, bytes]:
    """Source -> its counters as the kernel serialises them (gcda format), through the agent in base64."""
    out: dict[str, bytes] = {}
    for source in sources:
        path = guest_gcda_path(objtree, source)
        res = _one(target, {"op": "read_file", "path": path, "encoding": "base64"})
        if "errno" in res:
            raise EnvError(f"cannot read {path} ({os.strerror(res['errno'])}): was {source} built with "
                           f"GCOV_PROFILE and is this the kernel built in {objtree}?")
        data = base64.b64decode(res["data"])
        if len(data) != res.get("size", len(data)):
            raise EnvError(f"{path}: got {len(data)} bytes, the agent read {res['size']}")
        out[source] = data
    return out


def save_gcda(gcda: dict[str, bytes], where: Path) -> None:
    """Raw counters under <coverage>/gcda/<run>/ (per xdist worker), for the report and for lcov/gcovr users."""
    for source, data in gcda.items():
        path = where / Path(source).with_suffix(".gcda")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
