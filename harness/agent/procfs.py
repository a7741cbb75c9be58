"""Reading pid vectors and files through the root /proc (the agent's mount namespace)."""

from __future__ import annotations

import binascii
import os


def nspid(pid: int | str = "self") -> list[int]:
    """The NSpid vector of a task, outermost level first (as seen by the root /proc mount)."""
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"NSpid:"):
                return [int(x) for x in line.split()[1:]]
    raise OSError("no NSpid line (kernel without CONFIG_PID_NS?)")


def all_nspids() -> list[list[int]]:
    """The NSpid of every task visible in /proc, sorted; tasks that vanish meanwhile are skipped."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                out.append(nspid(name))
            except OSError:
                continue
    return sorted(out)


def pid_ns_inode(pid: int | str = "self") -> int:
    """The inode of a task's pid namespace (`/proc/<pid>/ns/pid` -> "pid:[N]"); 0 when unreadable."""
    try:
        link = os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return 0
    return int(link[link.index("[") + 1:-1])


def all_tasks() -> list[tuple[list[int], int]]:
    """(NSpid, pid namespace inode) of every task visible in /proc, sorted; vanished tasks are skipped.

    A task in the namespace of this /proc mount (that of its pid 1) has the one-entry NSpid [pid]: one
    readlink says so, without opening its status (a guest has dozens of kernel threads there, and every
    syscall costs under TCG). Only tasks of deeper namespaces (and zombies, whose link is gone) are read.
    """
    out = []
    root = pid_ns_inode("1")
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        ino = pid_ns_inode(name)
        if ino and ino == root:
            out.append(([int(name)], root))
            continue
        try:
            vector = nspid(name)
        except OSError:
            continue
        if len(vector) == 1:
            root = root or ino or pid_ns_inode(name)
            out.append((vector, root))
        else:
            out.append((vector, ino))
    return sorted(out)


def read_text(path: str, encoding: str = "text") -> dict[str, object]:
    """{"data": str} or {"errno": n}; with encoding "base64" the bytes survive (gcov counters, binaries)."""
    if encoding not in ("text", "base64"):
        raise ValueError(f"unknown read_file encoding {encoding!r} (text, base64)")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        return {"errno": e.errno or 0}
    if encoding == "base64":
        return {"data": binascii.b2a_base64(raw, newline=False).decode(), "encoding": "base64", "size": len(raw)}
    return {"data": raw.decode(errors="replace")}


def write_text(path: str, data: str) -> dict[str, int]:
    """{"errno": 0} or the errno of open/write."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError as e:
        return {"errno": e.errno or 0}
    try:
        os.write(fd, data.encode())
        return {"errno": 0}
    except OSError as e:
        return {"errno": e.errno or 0}
    finally:
        os.close(fd)


def pid_max() -> int:
    """The global pid_max (read from the target, never assumed)."""
    with open("/proc/sys/kernel/pid_max") as f:
        return int(f.read())
