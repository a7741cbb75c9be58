"""Check that a file is an x86 bzImage and read its version string, before QEMU is asked to boot it.

The x86 boot protocol header (Documentation/arch/x86/boot.rst): magic "HdrS" at 0x202, protocol
version at 0x206, and at 0x20e the offset (minus 0x200) of a NUL-terminated version string.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from harness.errors import BootError, UsageError

HEADER_END = 0x210


@dataclass(frozen=True)
class KernelImage:
    """A bzImage on disk and what its header says."""

    path: Path
    version: str  # the uname -r part, e.g. "6.1.0-56-cloud-amd64"
    banner: str = ""  # the whole string: version, builder, build date


def inspect_bzimage(path: str | Path) -> KernelImage:
    """Read the boot header; UsageError for a missing file, BootError for anything not a bzImage."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"no such kernel image: {path}")
    if not path.is_file():
        raise UsageError(f"kernel image is not a file: {path}")
    with open(path, "rb") as f:
        head = f.read(0x8000)
        if len(head) < HEADER_END or head[0x202:0x206] != b"HdrS" or head[0x1FE:0x200] != b"\x55\xaa":
            raise BootError(f"not an x86 bzImage: {path}")
        (offset,) = struct.unpack_from("<H", head, 0x20E)
        f.seek(offset + 0x200)
        raw = f.read(512).split(b"\0", 1)[0]
    banner = raw.decode("ascii", "replace").strip()
    if not banner:
        raise BootError(f"x86 bzImage without a version string: {path}")
    return KernelImage(path, banner.split()[0], banner)
