"""Small C programs the host builds and the agent runs in the target (`install_and_exec_steps`).

Static, so they run in the guest's initramfs (no shared libraries) and in the host sandbox alike; cached
by source and flags, so a session compiles each once.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import uuid
from collections.abc import Sequence
from pathlib import Path

from .errors import BuildError, EnvError
from .paths import cache_dir

STATIC = ("-O2", "-static", "-s")


def build_static(source: Path, flags: Sequence[str] = STATIC, why: str = "this program") -> Path:
    """Compile `source` into the cache (keyed by source and flags); returns the binary."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise EnvError(f"{why} needs gcc (apt-get install gcc)")
    key = hashlib.sha256(source.read_bytes() + " ".join(flags).encode()).hexdigest()[:16]
    out = cache_dir() / "static_c" / f"{source.stem}-{key}"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".tmp{uuid.uuid4().hex[:8]}")
    built = subprocess.run([gcc, *flags, "-o", str(tmp), str(source)], capture_output=True, text=True)
    if built.returncode != 0:
        tmp.unlink(missing_ok=True)
        last = (built.stderr.strip().splitlines() or ["?"])[-1]
        raise BuildError(f"gcc failed on {source.name}: {last}")
    tmp.replace(out)
    return out
