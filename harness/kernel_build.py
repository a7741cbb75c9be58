"""Build an x86_64 bzImage: Debian's linux-source-6.1 (+ patches) or a user's tree, cached by content.

Layout under the cache dir:
  src/linux-source-6.1/        pristine tree, unpacked once from the Debian tarball
  work/<source>/src/           hard-linked copy of it with the current patch set applied
  work/<source>/build-<cfg>/   O= build dir per config, kept for incremental rebuilds (mutants)
  images/<key>/bzImage         finished images keyed by source + patches + fragments + compiler
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import kconfig
from .errors import BuildError, EnvError, UsageError
from .paths import DEBIAN_SOURCE_TARBALL, PATCHES_DIR, cache_dir
from .progress import Progress, note

REFERENCE_SERIES = PATCHES_DIR / "eclone"
APPLIED_STAMP = ".eclone-suite-applied.json"
CONFIGURED = ".eclone-suite-configured"


@dataclass(frozen=True)
class BuildRequest:
    """What to build; `tree=None` means Debian's linux-source-6.1 from the cache."""

    tree: Path | None = None
    fragments: tuple[str, ...] = ()
    patches: tuple[Path, ...] = ()
    jobs: int = field(default_factory=lambda: os.cpu_count() or 2)
    # make command-line variables ("GCOV_PROFILE_pid.o=y"): they change the objects, so they are part of the
    # cache key and get their own build dir (sub-makes see them through MAKEFLAGS)
    make_vars: tuple[str, ...] = ()
    # files the run needs after the shared build dir and work tree moved on (another patch set): "build/<rel>"
    # and "src/<rel>" are copied to images/<key>/build/<rel> and images/<key>/src/<rel> (coverage: .gcno, sources)
    keep: tuple[str, ...] = ()


def reference_patches() -> tuple[Path, ...]:
    """The eclone series that turns stock 6.1 into the reference kernel (lexical order)."""
    return tuple(sorted(REFERENCE_SERIES.glob("*.patch")))


def _sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


def _tool_check() -> None:
    for tool in ("make", "gcc", "bison", "flex", "bc", "patch"):
        if shutil.which(tool) is None:
            raise EnvError(f"{tool} not found: run ./setup.sh (it installs the kernel build tools)")


def _source_stamp() -> str:
    if not DEBIAN_SOURCE_TARBALL.is_file():
        raise EnvError(f"linux-source-6.1 is not installed ({DEBIAN_SOURCE_TARBALL} missing): run ./setup.sh")
    st = DEBIAN_SOURCE_TARBALL.stat()
    return _sha(str(DEBIAN_SOURCE_TARBALL).encode(), str(st.st_size).encode(), str(int(st.st_mtime)).encode())[:12]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise builds that share a tree (pytest-xdist workers, two shells)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            note(f"waiting for another build that holds {path}")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def pristine_tree() -> Path:
    """Unpack the Debian tarball once; later calls return the same tree."""
    stamp = _source_stamp()
    root = cache_dir() / "src"
    tree = root / "linux-source-6.1"
    marker = root / f".unpacked-{stamp}"
    if marker.exists() and tree.is_dir():
        return tree
    with _locked(root / ".lock"):
        if marker.exists() and tree.is_dir():
            return tree
        progress = Progress("unpacking linux-source-6.1")
        progress.update(str(DEBIAN_SOURCE_TARBALL))
        shutil.rmtree(tree, ignore_errors=True)
        _run(["tar", "-xf", str(DEBIAN_SOURCE_TARBALL), "-C", str(root)], "unpacking the kernel source")
        if not tree.is_dir():
            raise BuildError(f"{DEBIAN_SOURCE_TARBALL} did not unpack to {tree}")
        marker.write_text(stamp)
        progress.done()
    return tree


def _run(argv: list[str], what: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise BuildError(f"{what} failed: {' | '.join(tail)}")
    return proc.stdout


def _patched_files(patch: Path) -> list[str]:
    """Paths a -p1 patch touches (new files included)."""
    names = []
    for line in patch.read_text(errors="replace").splitlines():
        if line.startswith("+++ ") or line.startswith("--- "):
            name = line[4:].split("\t")[0].strip()
            if name != "/dev/null" and "/" in name:
                names.append(name.split("/", 1)[1])
    return sorted(set(names))


def _restore_from_pristine(work: Path, pristine: Path, rel: str) -> None:
    """Put back a file a previous patch set changed, as a fresh inode with a new mtime (so make rebuilds)."""
    target = work / rel
    source = pristine / rel
    if target.exists() or target.is_symlink():
        target.unlink()
    if source.exists():
        shutil.copyfile(source, target)
        shutil.copymode(source, target)


def _break_link(path: Path) -> None:
    """Give a hard-linked file its own inode before it is patched: the pristine tree stays pristine."""
    if path.is_file() and path.stat().st_nlink > 1:
        tmp = path.with_name(path.name + ".eclone-suite-tmp")
        shutil.copyfile(path, tmp)
        shutil.copymode(path, tmp)
        os.replace(tmp, path)


def _snapshot(work: Path, rels: list[str]) -> dict[str, tuple[bytes, int]]:
    """Content and mtime of the files the current patch set touched, before switching to another set."""
    snap = {}
    for rel in rels:
        path = work / rel
        if path.is_file():
            snap[rel] = (path.read_bytes(), path.stat().st_mtime_ns)
    return snap


def _keep_unchanged_mtimes(work: Path, before: dict[str, tuple[bytes, int]]) -> None:
    """A file that ends up with the content it had before the switch gets its old mtime back.

    Switching from the reference series to reference + one mutant reverts and re-applies every file
    the series touches; without this, make would rebuild everything that includes
    include/linux/sched/task.h or syscalls.h (minutes) instead of the one file the mutant changes.
    """
    for rel, (data, mtime_ns) in before.items():
        path = work / rel
        if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
            os.utime(path, ns=(mtime_ns, mtime_ns))


def prepare_work_tree(patches: tuple[Path, ...]) -> Path:
    """A hard-linked copy of the pristine tree with exactly `patches` applied (others reverted)."""
    pristine = pristine_tree()
    work = cache_dir() / "work" / f"linux-6.1-{_source_stamp()}" / "src"
    if not work.is_dir():
        work.parent.mkdir(parents=True, exist_ok=True)
        tmp = work.with_name("src.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        _run(["cp", "-al", str(pristine), str(tmp)], "copying the kernel tree")
        os.replace(tmp, work)
    stamp_path = work / APPLIED_STAMP
    applied = json.loads(stamp_path.read_text()) if stamp_path.exists() else {"patches": [], "files": []}
    wanted = [_sha(p.read_bytes()) for p in patches]
    if applied["patches"] == wanted:
        return work
    before = _snapshot(work, applied["files"])
    for rel in applied["files"]:
        _restore_from_pristine(work, pristine, rel)
    stamp_path.write_text(json.dumps({"patches": [], "files": []}))
    touched: list[str] = []
    for patch in patches:
        files = _patched_files(patch)
        for rel in files:
            _break_link(work / rel)
        touched.extend(files)
        stamp_path.write_text(json.dumps({"patches": [], "files": sorted(set(touched))}))
        proc = subprocess.run(["patch", "-p1", "--forward", "--batch", "-i", str(patch.resolve())],
                              cwd=work, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildError(f"patch {patch.name} does not apply: {proc.stdout.strip().splitlines()[-1:]}")
    _keep_unchanged_mtimes(work, before)
    stamp_path.write_text(json.dumps({"patches": wanted, "files": sorted(set(touched))}))
    return work


def _config_hash(fragments: list[kconfig.Fragment]) -> str:
    return _sha(*(f.path.read_bytes() for f in fragments))[:12]


def _compiler_id() -> bytes:
    return subprocess.run(["gcc", "--version"], capture_output=True).stdout.split(b"\n")[0]


def configure(src: Path, build: Path, fragments: list[kconfig.Fragment]) -> None:
    """tinyconfig + fragments merged the kernel's way, then verified."""
    build.mkdir(parents=True, exist_ok=True)
    make = ["make", "-C", str(src), f"O={build}", "ARCH=x86_64"]
    _run([*make, "tinyconfig"], "make tinyconfig")
    merge = src / "scripts" / "kconfig" / "merge_config.sh"
    _run(["sh", str(merge), "-m", "-O", str(build), str(build / ".config"), *(str(f.path) for f in fragments)],
         "merging kconfig fragments", cwd=src)
    _run([*make, "olddefconfig"], "make olddefconfig")
    kconfig.check_kept(fragments, build / ".config")
    (build / CONFIGURED).write_text("ok")


_MAKE_STEP = re.compile(r"^\s+(CC|LD|AR|AS|HOSTCC|GEN|OBJCOPY|BUILD)\s+(\S+)")


def make_bzimage(src: Path, build: Path, jobs: int, title: str, make_vars: tuple[str, ...] = ()) -> Path:
    """Run make with a progress line; the full log goes to build/build.log."""
    log_path = build / "build.log"
    progress = Progress(title)
    argv = ["make", "-C", str(src), f"O={build}", "ARCH=x86_64", f"-j{jobs}", *make_vars, "bzImage"]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                log.write(line)
                if m := _MAKE_STEP.match(line):
                    progress.update(f"{m.group(1)} {m.group(2)}")
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        proc.wait()
    if proc.returncode != 0:
        errors = [ln.strip() for ln in log_path.read_text(errors="replace").splitlines() if "error" in ln.lower()]
        raise BuildError(f"kernel build failed ({log_path}): {(errors or ['see log'])[0]}")
    progress.done()
    return build / "arch" / "x86" / "boot" / "bzImage"


def _extra_key(req: BuildRequest) -> tuple[bytes, ...]:
    """Make variables and kept files join the cache key only when present (older keys stay valid)."""
    if not req.make_vars and not req.keep:
        return ()
    return (json.dumps({"make_vars": list(req.make_vars), "keep": list(req.keep)}).encode(),)


def _vars_suffix(req: BuildRequest) -> str:
    return f"-{_sha(*(v.encode() for v in req.make_vars))[:8]}" if req.make_vars else ""


def _keep_files(keep: tuple[str, ...], src: Path, build: Path, dest: Path) -> None:
    """Copy "build/<rel>" and "src/<rel>" files next to the image (missing ones are a build error)."""
    roots = {"build": build, "src": src}
    for item in keep:
        where, _, rel = item.partition("/")
        if where not in roots or not rel:
            raise UsageError(f"keep entry {item!r} must start with build/ or src/")
        source = roots[where] / rel
        if not source.is_file():
            raise BuildError(f"the build did not produce {source} (asked to keep {item})")
        (dest / where / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest / where / rel)


def _seed_from_reference(build: Path, base: Path) -> None:
    """Start a variant's new build dir (mutant config, coverage, no PID_NS) as a copy of the reference's.

    make then recompiles only what the config difference reaches (kbuild tracks dependencies per CONFIG_
    option), and every object's command line is compared, so make variables (GCOV_PROFILE_pid.o=y) and the
    work tree's current patch set are honoured as in any incremental build. A cold machine builds the
    reference first anyway; without a finished reference build this does nothing.
    """
    seed = base / f"build-{_config_hash(kconfig.fragments_for([]))}"
    if seed == build or not (seed / CONFIGURED).exists() or not (seed / "vmlinux").is_file():
        return
    note(f"seeding {build.name} from the reference build ({seed.name})")
    tmp = build.with_name(build.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    _run(["cp", "-a", "--reflink=auto", str(seed), str(tmp)], "copying the reference build dir")
    (tmp / CONFIGURED).unlink()
    _repoint_tools(tmp / "tools", str(seed), str(build))
    shutil.rmtree(build, ignore_errors=True)
    os.replace(tmp, build)


def _repoint_tools(tools: Path, old: str, new: str) -> None:
    """objtool's own build records its objects by absolute path; left pointing at the seed, make rebuilds
    objtool, and every kernel object depends on the objtool binary, so everything would recompile."""
    for path in tools.rglob(".*"):
        if path.is_file() and path.suffix in (".cmd", ".d"):
            text = path.read_text(errors="surrogateescape")
            if old in text:
                path.write_text(text.replace(old, new), errors="surrogateescape")


def build_kernel(req: BuildRequest) -> Path:
    """Build (or reuse) the kernel `req` describes and return the bzImage path."""
    _tool_check()
    fragments = kconfig.fragments_for(list(req.fragments))
    for patch in req.patches:
        if not patch.is_file():
            raise UsageError(f"patch not found: {patch}")
    if req.tree is not None:
        return _build_user_tree(req, fragments)
    key = _sha(_source_stamp().encode(), _config_hash(fragments).encode(), _compiler_id(),
               *(p.read_bytes() for p in req.patches), *_extra_key(req))[:16]
    image_dir = cache_dir() / "images" / key
    image = image_dir / "bzImage"
    if image.is_file():
        return image
    base = cache_dir() / "work" / f"linux-6.1-{_source_stamp()}"
    with _locked(base.parent / f"{base.name}.lock"):
        if image.is_file():
            return image
        src = prepare_work_tree(req.patches)
        build = base / f"build-{_config_hash(fragments)}{_vars_suffix(req)}"
        if not (build / CONFIGURED).exists():
            _seed_from_reference(build, base)
            configure(src, build, fragments)
        built = make_bzimage(src, build, req.jobs, f"building kernel {key[:8]}", req.make_vars)
        tmp = image_dir.with_name(key + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        shutil.copyfile(built, tmp / "bzImage")
        shutil.copyfile(build / ".config", tmp / "config")
        _keep_files(req.keep, src, build, tmp)
        (tmp / "request.json").write_text(json.dumps({
            "fragments": [f.name for f in fragments], "patches": [str(p) for p in req.patches],
            **({"make_vars": list(req.make_vars), "build": str(build), "src": str(src)} if req.make_vars else {})},
            indent=1))
        shutil.rmtree(image_dir, ignore_errors=True)
        os.replace(tmp, image_dir)
    return image


def _build_user_tree(req: BuildRequest, fragments: list[kconfig.Fragment]) -> Path:
    """A developer's tree: built out of tree (O=) so their own .config is never touched; make is the cache."""
    tree = req.tree.resolve() if req.tree else Path()
    if not (tree / "Makefile").is_file() or not (tree / "kernel" / "fork.c").is_file():
        raise UsageError(f"not a Linux source tree: {tree}")
    if req.patches:
        raise UsageError("--patch applies to the default source only; apply patches to your own tree yourself")
    if (tree / ".config").exists():
        raise UsageError(f"{tree} has an in-tree build (.config); run 'make mrproper' there so O= builds work")
    build = (cache_dir() / "work" / f"tree-{_sha(str(tree).encode())[:12]}"
             / f"build-{_config_hash(fragments)}{_vars_suffix(req)}")
    with _locked(build.parent / ".lock"):
        if not (build / CONFIGURED).exists():
            configure(tree, build, fragments)
        return make_bzimage(tree, build, req.jobs, f"building {tree.name}", req.make_vars)


def reference_request(fragments: tuple[str, ...] = (), extra_patches: tuple[Path, ...] = ()) -> BuildRequest:
    """The default kernel: linux-source-6.1 + our eclone series (+ e.g. a mutant)."""
    series = reference_patches()
    if not series:
        note("warning: qemu/patches/eclone/ is empty: building a stock 6.1 kernel")
    return BuildRequest(fragments=fragments, patches=series + extra_patches)
