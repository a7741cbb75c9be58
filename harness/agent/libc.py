"""ctypes wrappers for the few libc calls the stdlib lacks; every call reports errno, never raises blindly."""

from __future__ import annotations

import ctypes
import os

from .lean_fork import before_python_fork

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long

MASK64 = (1 << 64) - 1

SYS_CLONE = 56
SYS_CAPSET = 126
SYS_REBOOT = 169
SYS_FINIT_MODULE = 313

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
SIGCHLD = 17
WALL = 0x40000000

MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8

PR_SET_PDEATHSIG = 1
RB_AUTOBOOT = 0x01234567
RB_POWER_OFF = 0x4321FEDC


def _signed(value: int) -> int:
    """Registers are unsigned 64-bit in programs; ctypes c_long wants the signed view."""
    value &= MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


def syscall(nr: int, *args: int) -> tuple[int, int]:
    """Raw syscall(2): returns (ret, errno); errno is 0 unless ret == -1."""
    regs = [ctypes.c_long(_signed(a)) for a in (list(args) + [0] * 6)[:6]]
    ctypes.set_errno(0)
    ret = _syscall(ctypes.c_long(nr), *regs)
    return ret, (ctypes.get_errno() if ret == -1 else 0)


def check(ret: int, err: int, what: str) -> int:
    """Turn a failed (ret, errno) pair into OSError, for infrastructure calls only."""
    if ret == -1:
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def unshare(flags: int) -> None:
    """unshare(2) for the host sandbox."""
    if _libc.unshare(ctypes.c_int(flags)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare: {os.strerror(err)}")


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> int:
    """mount(2); returns 0 or the errno (callers decide whether that is fatal)."""
    enc = lambda s: s.encode() if s is not None else None  # noqa: E731
    ret = _libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data))
    return ctypes.get_errno() if ret != 0 else 0


def prctl(option: int, arg: int) -> None:
    """prctl(2) with one argument (PR_SET_PDEATHSIG)."""
    _libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0),
                ctypes.c_ulong(0))


def reboot(cmd: int) -> int:
    """reboot(2): only returns on failure (errno)."""
    ret, err = syscall(SYS_REBOOT, 0xFEE1DEAD, 672274793, cmd, 0)
    return err if ret == -1 else 0


def finit_module(fd: int, params: str) -> int:
    """finit_module(2): 0 or the errno (EEXIST: already loaded)."""
    buf = ctypes.create_string_buffer(params.encode())
    return syscall(SYS_FINIT_MODULE, fd, ctypes.addressof(buf), 0)[1]


def capset(caps: list[int]) -> None:
    """Keep exactly `caps` in the effective, permitted and inheritable sets of this process."""
    mask = 0
    for cap in caps:
        mask |= 1 << cap
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, pid 0 = self
    lo, hi = mask & 0xFFFFFFFF, mask >> 32
    data = (ctypes.c_uint32 * 6)(lo, lo, lo, hi, hi, hi)
    check(*syscall(SYS_CAPSET, ctypes.addressof(header), ctypes.addressof(data)), "capset")


def raw_fork(flags: int) -> int:
    """clone(flags, 0, 0, 0, 0) without CLONE_VM: fork-like, returns 0 in the child (which runs Python, so
    the interpreter's memory must not be MADV_DONTFORK: os.fork's atfork hook does not run for it)."""
    before_python_fork()
    return check(*syscall(SYS_CLONE, flags, 0, 0, 0, 0), "clone")
