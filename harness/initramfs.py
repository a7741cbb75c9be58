"""Build the guest initramfs: python3.11, the stdlib it needs, the agent, and /init.

The archive is a gzip'ed newc cpio written here (no external `cpio`), cached under
`cache_dir()/initramfs/<sha256 of inputs>.cpio` so a test session builds it once. It is not
compressed: under TCG the kernel took ~0.5 s to gunzip 5 MB at every boot, far more than QEMU takes to
load the larger file.
Stdlib modules ship as sourceless .pyc compiled by the guest's own interpreter, so the
guest never compiles at start (under TCG that is most of CPython's start-up time).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import BuildError
from harness.paths import AGENT_DIR, cache_dir

FORMAT_VERSION = "2"  # bump when the layout below changes, to invalidate cached images
AGENT_ROOT = "/opt/agent"
AGENT_MODULES = "os,sys,json,ctypes,struct,mmap,select,signal,stat,termios,errno,time,traceback"

INIT_SCRIPT = """#!{python} -S
import sys
sys.path.insert(0, "{agent_root}")
from agent.__main__ import main
sys.exit(main(["--init", "--channel", "auto:/dev/ttyS1"]))
"""

# (path, major, minor): for kernels without devtmpfs.
DEVICE_NODES = [("/dev/console", 5, 1), ("/dev/ttyS0", 4, 64), ("/dev/ttyS1", 4, 65), ("/dev/null", 1, 3)]
DIRS = ["/proc", "/sys", "/dev", "/tmp", "/run"]

# The stand-in for `agent --list-deps` until the agent has it: import what the agent will
# import and list the files behind the loaded modules plus the mapped shared objects.
_DEPS_PROBE = f"""
import sys, json
import {AGENT_MODULES}
files = {{getattr(m, '__file__', None) for m in list(sys.modules.values())}}
files |= {{l.split()[-1] for l in open('/proc/self/maps') if '.so' in l and '/' in l}}
print(json.dumps(sorted(f for f in files if f and f.startswith('/'))))
"""

# Runs inside the guest's interpreter: compile sources to pyc with its own magic number.
_COMPILE_SCRIPT = """
import json, py_compile, sys
for src, dst, dfile in json.load(sys.stdin):
    mode = py_compile.PycInvalidationMode.UNCHECKED_HASH
    py_compile.compile(src, cfile=dst, dfile=dfile, doraise=True, invalidation_mode=mode)
"""

CPIO_TRAILER = "TRAILER!!!"  # the last entry of a newc archive


@dataclass
class CpioWriter:
    """A newc cpio archive in memory; directories and symlinks are added on demand."""

    entries: list[bytes] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    ino: int = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        name = name.lstrip("/")
        if name in self.seen:
            return
        self.seen.add(name)
        self.ino += 1
        raw = name.encode() + b"\0"
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(raw), 0]
        head = b"070701" + b"".join(b"%08X" % f for f in fields) + raw
        head += b"\0" * (-len(head) % 4)
        self.entries.append(head + data + b"\0" * (-len(data) % 4))

    def mkdir(self, path: str) -> None:
        """Add a directory and its parents."""
        parts = path.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            if parts[0]:
                self._entry("/".join(parts[:i]), stat.S_IFDIR | 0o755)

    def _parent(self, path: str) -> None:
        parent = os.path.dirname(path.rstrip("/"))
        if parent not in ("", "/"):
            self.mkdir(parent)

    def add_bytes(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Add a regular file with the given contents."""
        self._parent(path)
        self._entry(path, stat.S_IFREG | mode, data)

    def add_symlink(self, path: str, target: str) -> None:
        self._parent(path)
        self._entry(path, stat.S_IFLNK | 0o777, target.encode())

    def add_device(self, path: str, major: int, minor: int) -> None:
        self._parent(path)
        self._entry(path, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def add_host_path(self, path: str, arcname: str | None = None) -> None:
        """Copy a host file, recreating every symlink met on the way (/lib64 -> usr/lib64 ...)."""
        if arcname is not None:
            st = os.stat(path)
            self.add_bytes(arcname, Path(path).read_bytes(), stat.S_IMODE(st.st_mode))
            return
        parts = Path(path).parts[1:]
        current = "/"
        for i, part in enumerate(parts):
            current = os.path.join(current, part)
            if os.path.islink(current):
                target = os.readlink(current)
                self.add_symlink(current, target)
                rest = os.path.join(os.path.dirname(current), target, *parts[i + 1:])
                self.add_host_path(os.path.normpath(rest))
                return
        st = os.stat(current)
        self.add_bytes(current, Path(current).read_bytes(), stat.S_IMODE(st.st_mode))

    def finish(self) -> bytes:
        self._entry(CPIO_TRAILER, 0)
        return b"".join(self.entries)


def _run(argv: list[str], what: str, stdin: str | None = None, cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, cwd=cwd, timeout=120,
                              env={"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0"})
    except OSError as exc:
        raise BuildError(f"initramfs: cannot run {argv[0]}: {exc.strerror}") from exc
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise BuildError(f"initramfs: {what} failed: {last}")
    return proc.stdout


def list_deps(python: str) -> list[str]:
    """Absolute paths of the stdlib files and shared objects the agent loads.

    Asks the agent (`-m agent --list-deps`) when it supports that, else uses a stand-in probe.
    """
    agent_main = AGENT_DIR / "__main__.py"
    if agent_main.exists() and "--list-deps" in agent_main.read_text(errors="replace"):
        out = _run([python, "-S", "-m", "agent", "--list-deps"], "agent --list-deps", cwd=AGENT_DIR.parent)
    else:
        out = _run([python, "-S", "-c", _DEPS_PROBE], "dependency probe")
    deps = [p for p in json.loads(out) if not p.startswith(str(AGENT_DIR))]
    return sorted(set(deps) | {os.path.realpath(python)})


def _lib_aliases(path: str) -> list[str]:
    """Symlinks next to a shared object that point at it (the sonames ld.so looks for)."""
    directory = os.path.dirname(path)
    real = os.path.realpath(path)
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return [os.path.join(directory, n) for n in names
            if n.startswith(os.path.basename(path).split(".so")[0] + ".so")
            and os.path.islink(os.path.join(directory, n))
            and os.path.realpath(os.path.join(directory, n)) == real]


def _agent_files() -> list[Path]:
    return sorted(p for p in AGENT_DIR.rglob("*.py") if "__pycache__" not in p.parts)


def _input_key(python: str, deps: list[str], agent: list[Path], init: str) -> str:
    """sha256 over every file that goes into the archive (paths and contents) and the layout."""
    digest = hashlib.sha256(FORMAT_VERSION.encode() + python.encode() + init.encode())
    for path in [*deps, *map(str, agent)]:
        digest.update(path.encode() + b"\0")
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def _compile(python: str, jobs: list[tuple[str, str, str]], tmp: Path) -> list[bytes]:
    """Compile (source, archive path) pairs with the guest interpreter; return the pyc bytes."""
    spec = [(src, str(tmp / f"{i}.pyc"), dfile) for i, (src, _, dfile) in enumerate(jobs)]
    _run([python, "-S", "-c", _COMPILE_SCRIPT], "byte-compiling", stdin=json.dumps(spec))
    return [Path(dst).read_bytes() for _, dst, _ in spec]


def _add_python(cpio: CpioWriter, python: str, deps: list[str], tmp: Path) -> None:
    """The interpreter, shared objects (with soname links), stdlib as sourceless pyc."""
    cpio.add_host_path("/lib64/ld-linux-x86-64.so.2")
    cpio.add_host_path(python)
    sources = [d for d in deps if d.endswith(".py")]
    for dep in deps:
        if ".so" in os.path.basename(dep):
            cpio.add_host_path(dep)
            for alias in _lib_aliases(dep):
                cpio.add_host_path(alias)
        elif not dep.endswith(".py"):
            cpio.add_host_path(dep)
    jobs = [(src, src[:-3] + ".pyc", src) for src in sources]
    for (_, arcname, _), pyc in zip(jobs, _compile(python, jobs, tmp), strict=False):
        cpio.add_bytes(arcname, pyc)
    for src in sources:  # the dynload dir is a landmark python looks for at start
        if os.path.basename(src) == "os.py":
            cpio.mkdir(os.path.join(os.path.dirname(src), "lib-dynload"))


def _add_agent(cpio: CpioWriter, python: str, agent: list[Path], tmp: Path) -> None:
    """The agent as source plus unchecked-hash pyc (fast start, real tracebacks)."""
    jobs = []
    for src in agent:
        rel = src.relative_to(AGENT_DIR.parent)
        arc = f"{AGENT_ROOT}/{rel}"
        cpio.add_bytes(arc, src.read_bytes())
        cache = f"{AGENT_ROOT}/{rel.parent}/__pycache__/{src.stem}.cpython-311.pyc"
        jobs.append((str(src), cache, arc))
    for (_, arcname, _), pyc in zip(jobs, _compile(python, jobs, tmp), strict=False):
        cpio.add_bytes(arcname, pyc)


def _build(python: str, deps: list[str], agent: list[Path], init: str) -> bytes:
    cpio = CpioWriter()
    for directory in DIRS:
        cpio.mkdir(directory)
    for path, major, minor in DEVICE_NODES:
        cpio.add_device(path, major, minor)
    with tempfile.TemporaryDirectory(prefix="initramfs-") as tmp:
        _add_python(cpio, python, deps, Path(tmp))
        if agent:
            _add_agent(cpio, python, agent, Path(tmp))
    cpio.add_bytes("/init", init.encode(), 0o755)
    return cpio.finish()


def build_initramfs(python: str = "/usr/bin/python3.11", init: str | None = None) -> Path:
    """Return the cached initramfs for this interpreter and agent, building it if inputs changed.

    `init` replaces the /init script (tests boot a trivial one); it is part of the cache key.
    """
    if not os.access(python, os.X_OK):
        raise BuildError(f"initramfs: interpreter not found: {python}")
    deps = list_deps(python)
    agent = _agent_files()
    out_dir = cache_dir() / "initramfs"
    init = init if init is not None else INIT_SCRIPT.format(python=python, agent_root=AGENT_ROOT)
    out = out_dir / f"{_input_key(python, deps, agent, init)}.cpio"
    if out.exists():
        return out
    out_dir.mkdir(parents=True, exist_ok=True)
    data = _build(python, deps, agent, init)
    tmp = out.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    return out


def read_cpio(data: bytes) -> dict[str, tuple[int, bytes]]:
    """Parse a newc archive into {name: (mode, data)}; for tests and debugging."""
    out: dict[str, tuple[int, bytes]] = {}
    pos = 0
    while pos < len(data):
        head = data[pos:pos + 110]
        if head[:6] != b"070701":
            raise BuildError(f"initramfs: bad cpio header at offset {pos}")
        fields = [int(head[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name = data[pos + 110:pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        if name == CPIO_TRAILER:
            break
        out[name] = (mode, data[pos:pos + size])
        pos += size + (-size % 4)
    return out
