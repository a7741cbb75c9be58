"""Load the virtio modules the host packed into /modules (harness/kernel_modules.py), before the channel
is chosen: a distro kernel then gets the virtio-serial port instead of the 8250."""

from __future__ import annotations

import errno
import os
import sys

from . import libc

MODULES_DIR = "/modules"


def params_for(module: str, cmdline: str) -> str:
    """What modprobe would pass: the command line's `module.param=value` words, without the prefix
    (microvm announces its virtio-mmio devices as virtio_mmio.device=...)."""
    prefix = module.replace("-", "_") + "."
    return " ".join(word[len(prefix):] for word in cmdline.split() if word.replace("-", "_").startswith(prefix))


def load_all(directory: str = MODULES_DIR) -> list[str]:
    """Load every NN-name.ko in name order; returns what failed (name: error), also said on the console."""
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".ko"))
    except OSError:
        return []
    try:
        with open("/proc/cmdline") as f:
            cmdline = f.read()
    except OSError:
        cmdline = ""
    failed = []
    for name in names:
        module = name.split("-", 1)[-1][:-len(".ko")]
        fd = os.open(f"{directory}/{name}", os.O_RDONLY)
        try:
            err = libc.finit_module(fd, params_for(module, cmdline))
        finally:
            os.close(fd)
        if err and err != errno.EEXIST:  # built in or loaded already
            failed.append(f"{module}: {os.strerror(err)}")
    if failed:
        sys.stderr.write(f"agent: modules not loaded: {'; '.join(failed)}\n")
    return failed
