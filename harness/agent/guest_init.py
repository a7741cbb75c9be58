"""Duties of pid 1 in the guest: early mounts, the serial device node, power-off."""

from __future__ import annotations

import os
import stat

from . import libc

TTYS1 = "/dev/ttyS1"
TTYS1_DEV = (4, 65)


def setup() -> None:
    """Mount /proc, /sys and /dev; create /dev/ttyS1 if devtmpfs is missing; load packed modules."""
    for src, target, fstype in (("proc", "/proc", "proc"), ("sysfs", "/sys", "sysfs"),
                                ("devtmpfs", "/dev", "devtmpfs")):
        os.makedirs(target, exist_ok=True)
        if not os.path.ismount(target):
            libc.mount(src, target, fstype, 0)
    for path, major, minor in ((TTYS1, *TTYS1_DEV), ("/dev/null", 1, 3), ("/dev/console", 5, 1)):
        if not os.path.exists(path):
            try:
                os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(major, minor))
            except OSError:
                pass
    from . import modules
    modules.load_all()


def power_off() -> None:
    """Sync and reboot: QEMU runs with -no-reboot, so a reboot ends it at once."""
    os.sync()
    err = libc.reboot(libc.RB_AUTOBOOT)
    raise OSError(err, f"reboot failed: {os.strerror(err)}")
