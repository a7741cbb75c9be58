"""--list-deps: every file the agent needs at run time, for the initramfs builder."""

from __future__ import annotations

import json
import os
import struct
import sys


def _exercise() -> None:
    """Import everything the agent uses and trigger lazily imported modules (tracebacks, json, termios)."""
    import traceback

    from . import (  # noqa: F401
        affinity,
        arena,
        chains,
        channel,
        child_stub,
        deps,
        executor,
        guest_init,
        lean_fork,
        libc,
        procfs,
        program,
        race,
        reaper,
        sandbox,
        server,
        steps,
        wire,
    )

    try:
        raise ValueError("x")
    except ValueError:
        traceback.format_exc()
    json.loads(json.dumps({"a": [1, "é"]}))
    server.info()
    child_stub.syscall(39, [], "exit")


def _interpreter(path: str) -> str | None:
    """PT_INTERP of an ELF file (the dynamic loader path the kernel opens, often a symlink)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:
                return None
            phoff, = struct.unpack_from("<Q", head, 32)
            phentsize, phnum = struct.unpack_from("<HH", head, 54)
            for i in range(phnum):
                f.seek(phoff + i * phentsize)
                ptype, _, offset, _, _, filesz = struct.unpack("<IIQQQQ", f.read(40))
                if ptype == 3:
                    f.seek(offset)
                    return f.read(filesz).rstrip(b"\0").decode()
    except OSError:
        return None
    return None


def list_deps() -> list[str]:
    """Module files of sys.modules plus every file mapped into this process, sorted, absolute."""
    _exercise()
    paths = {os.path.abspath(m.__file__) for m in list(sys.modules.values())
             if isinstance(getattr(m, "__file__", None), str)}
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].startswith("/"):
                paths.add(parts[5].strip())
    interp = _interpreter(sys.executable)
    if interp:
        paths.add(interp)
    paths.add(os.path.realpath(sys.executable))
    return sorted(p for p in paths if os.path.isfile(p))


def main() -> int:
    print(json.dumps(list_deps(), indent=1))
    return 0
