"""Does KVM really run a guest here? /dev/kvm existing is not enough (on some hosts guests hang).

The probe boots a 64 KiB firmware whose reset vector writes 0x31 to an isa-debug-exit port;
QEMU then exits with status (0x31 << 1) | 1 = 99 at once. A hang, an error or any other status
means "use TCG". `ECLONE_SUITE_ACCEL=tcg|kvm` overrides the probe.

The firmware alone is not enough: on the hosts this suite runs on, /dev/kvm runs the real-mode
probe (and SeaBIOS) but a Linux guest hangs before its first console line. There KVM also lacks
baseline CPUID features of QEMU's default CPU model (SSE3, which every x86-64 host KVM offers), and
QEMU says so on stderr ("host doesn't support requested feature"): the probe treats that as broken.
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from pathlib import Path

from harness.errors import UsageError

EXIT_VALUE = 0x31
EXPECTED_STATUS = (EXIT_VALUE << 1) | 1
PROBE_TIMEOUT = 3.0
BROKEN_CPUID = b"doesn't support requested feature"


def firmware() -> bytes:
    """64 KiB BIOS image: hlt everywhere, and at the reset vector (0xFFFF0) mov al,0x31; out 0xf4,al; hlt."""
    image = bytearray(b"\xf4" * 0x10000)
    image[0xFFF0:0xFFF5] = bytes([0xB0, EXIT_VALUE, 0xE6, 0xF4, 0xF4])
    return bytes(image)


def probe(accel: str = "kvm", binary: str = "qemu-system-x86_64", timeout: float = PROBE_TIMEOUT) -> bool:
    """Run the firmware under `accel`; True when QEMU exits with the expected status in time."""
    with tempfile.TemporaryDirectory(prefix="eclone-kvm-probe-") as tmp:
        bios = Path(tmp) / "probe.bin"
        bios.write_bytes(firmware())
        argv = [binary, "-M", "pc", "-accel", accel, "-bios", str(bios), "-m", "16",
                "-nodefaults", "-no-user-config", "-display", "none", "-nic", "none",
                "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired):
            return False
        if proc.returncode != EXPECTED_STATUS:
            return False
        return accel != "kvm" or BROKEN_CPUID not in proc.stderr


@functools.lru_cache(maxsize=1)
def kvm_usable() -> bool:
    """True when guests run under KVM here; cached for the process."""
    forced = os.environ.get("ECLONE_SUITE_ACCEL", "").strip().lower()
    if forced:
        if forced not in ("tcg", "kvm"):
            raise UsageError(f"ECLONE_SUITE_ACCEL must be tcg or kvm, not {forced!r}")
        return forced == "kvm"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    return probe("kvm")


def default_accel() -> str:
    """"kvm" or "tcg", for QemuConfig.accel."""
    return "kvm" if kvm_usable() else "tcg"
