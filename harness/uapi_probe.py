"""Struct layouts as a kernel tree's UAPI headers define them, measured by the host's gcc for i386 and x86_64.

`headers_for(request)` runs `make headers` (headers_install without its rsync step) for the tree a
BuildRequest describes and caches the result: Debian's source + patches by the content of the patches that
can change a header, a user's tree by path (make itself keeps that one incremental). `probe()` compiles a
generated C file with `gcc -S` only, asm-offsets style, so no 32-bit libc is needed for `-m32`: every value
is a compile-time constant emitted into the assembly. `-nostdinc` keeps the host's /usr/include out, so
only the tree's own headers are measured.
"""

from __future__ import annotations

import functools
import hashlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import BuildError, EnvError, HarnessError
from .kernel_build import BuildRequest, _break_link, _locked, _patched_files, _source_stamp, pristine_tree
from .paths import cache_dir

ABIS = {"x86_64": "-m64", "i386": "-m32"}
HEADER_PATHS = ("include/uapi/", "arch/x86/include/uapi/", "arch/x86/entry/syscalls/", "scripts/", "usr/",
                "Makefile", "arch/x86/Makefile")
_PROBE_LINE = re.compile(r'"@probe (\S+) (-?\d+)')


class ProbeError(HarnessError):
    """The probe did not compile (a header or a struct member is missing); the message has gcc's first error."""


@dataclass(frozen=True)
class FieldLayout:
    offset: int
    size: int
    align: int


@dataclass(frozen=True)
class StructLayout:
    size: int
    align: int
    fields: dict[str, FieldLayout]


def probe_source(header: str, structs: Mapping[str, Sequence[str]], macros: Sequence[str] = ()) -> str:
    """C source that emits `@probe <key> <value>` lines into its assembly for each struct, field and macro."""
    lines = [f"#include <{header}>",
             '#define P(key, val) asm volatile("\\n.ascii \\"@probe " key " %c0\\\\n\\"" : : "i" ((long)(val)))',
             "void probe(void)", "{"]
    for struct, fields in structs.items():
        t = f"struct {struct}"
        lines.append(f'\tP("{struct}.sizeof", sizeof({t}));')
        lines.append(f'\tP("{struct}.alignof", __alignof__({t}));')
        for f in fields:
            lines.append(f'\tP("{struct}.{f}.offset", __builtin_offsetof({t}, {f}));')
            lines.append(f'\tP("{struct}.{f}.size", sizeof((({t} *)0)->{f}));')
            lines.append(f'\tP("{struct}.{f}.align", __alignof__((({t} *)0)->{f}));')
    lines += [f'#ifdef {m}\n\tP("{m}", {m});\n#endif' for m in macros]  # a macro the header lacks is absent
    lines.append("}")
    return "\n".join(lines) + "\n"


def _compile(source: str, include_dir: Path, abi: str) -> dict[str, int]:
    if shutil.which("gcc") is None:
        raise EnvError("gcc not found: run ./setup.sh")
    with tempfile.TemporaryDirectory(prefix="uapi-probe-") as tmp:
        src = Path(tmp) / "probe.c"
        src.write_text(source)
        proc = subprocess.run(["gcc", ABIS[abi], "-nostdinc", "-I", str(include_dir), "-S", "-o", "-", str(src)],
                              capture_output=True, text=True)
    if proc.returncode != 0:
        errors = [ln for ln in proc.stderr.splitlines() if "error" in ln] or proc.stderr.splitlines()[-1:]
        raise ProbeError(f"probe ({abi}) against {include_dir} did not compile: {errors[0] if errors else '?'}")
    return {m.group(1): int(m.group(2)) for m in _PROBE_LINE.finditer(proc.stdout)}


@functools.lru_cache(maxsize=64)
def _probe_cached(include_dir: Path, header: str, structs: tuple[tuple[str, tuple[str, ...]], ...],
                  macros: tuple[str, ...], abi: str) -> tuple[dict[str, StructLayout], dict[str, int]]:
    values = _compile(probe_source(header, dict(structs), macros), include_dir, abi)
    layouts = {}
    for struct, fields in structs:
        layouts[struct] = StructLayout(
            size=values[f"{struct}.sizeof"], align=values[f"{struct}.alignof"],
            fields={f: FieldLayout(*(values[f"{struct}.{f}.{k}"] for k in ("offset", "size", "align")))
                    for f in fields})
    return layouts, {m: values[m] for m in macros if m in values}


def probe(include_dir: Path, header: str, structs: Mapping[str, Sequence[str]], macros: Sequence[str] = (),
          abi: str = "x86_64") -> tuple[dict[str, StructLayout], dict[str, int]]:
    """Layouts of `structs` (name -> field names) and values of those `macros` that `header` defines, for `abi`."""
    return _probe_cached(Path(include_dir), header, tuple((s, tuple(f)) for s, f in structs.items()),
                         tuple(macros), abi)


def _sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "little") + part)
    return h.hexdigest()[:16]


def touches_headers(patch_text: str) -> bool:
    """Whether a -p1 patch changes a file that `make headers` reads."""
    for line in patch_text.splitlines():
        if line.startswith(("+++ ", "--- ")):
            name = line[4:].split("\t")[0].strip()
            rel = name.split("/", 1)[1] if "/" in name else name
            if name != "/dev/null" and (rel.startswith(HEADER_PATHS) or "/uapi/" in rel):
                return True
    return False


def _make_headers(src: Path, build: Path) -> Path:
    build.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["make", "-C", str(src), f"O={build}", "ARCH=x86_64", "-s", "headers"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise BuildError(f"make headers in {src} failed: {' | '.join(tail)}")
    return build / "usr" / "include"


def _debian_headers(patches: Sequence[Path]) -> Path:
    """Headers of Debian's source with the header-relevant `patches`, built in a private hard-linked tree."""
    relevant = [p for p in patches if touches_headers(p.read_text(errors="replace"))]
    key = _sha(_source_stamp().encode(), *(p.read_bytes() for p in relevant))
    root = cache_dir() / "uapi" / key
    include = root / "include"
    if include.is_dir():
        return include
    with _locked(cache_dir() / "uapi" / ".lock"):
        if include.is_dir():
            return include
        shutil.rmtree(root, ignore_errors=True)
        work = root / "work"
        work.mkdir(parents=True)
        tree = work / "src"
        subprocess.run(["cp", "-al", str(pristine_tree()), str(tree)], check=True, capture_output=True)
        for patch in relevant:
            for rel in _patched_files(patch):
                _break_link(tree / rel)  # the pristine tree stays pristine
            proc = subprocess.run(["patch", "-p1", "--forward", "--batch", "-s", "-i", str(patch.resolve())],
                                  cwd=tree, capture_output=True, text=True)
            if proc.returncode != 0:
                raise BuildError(f"patch {patch.name} does not apply: {proc.stdout.strip().splitlines()[-1:]}")
        built = _make_headers(tree, work / "build")
        shutil.copytree(built, root / "include.tmp")
        (root / "include.tmp").rename(include)
        shutil.rmtree(work)
    return include


@functools.lru_cache(maxsize=8)
def _tree_headers(tree: Path) -> Path:
    build = cache_dir() / "uapi" / f"tree-{_sha(str(tree).encode())}"
    with _locked(build / ".lock"):
        return _make_headers(tree, build / "build")


def headers_for(req: BuildRequest) -> Path:
    """The installed UAPI include dir (holding linux/, asm/) of the tree `req` builds; cached."""
    if req.tree is not None:
        return _tree_headers(req.tree.resolve())
    return _debian_headers(req.patches)


# --- finding a struct by its members, whatever its name and header -------------------------------------------
_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
_STRUCT_OPEN = re.compile(r"\bstruct\s+(\w+)\s*\{")
_WORD = re.compile(r"\b[A-Za-z_]\w*\b")


class StructNotFound(ProbeError):
    """No exported UAPI header defines a struct with every member the spec names (the message says what was seen)."""


@dataclass(frozen=True)
class StructLocation:
    header: str  # as an #include would name it, e.g. "linux/sched.h"
    struct: str  # the C tag, e.g. "eclone_args"


def _struct_bodies(text: str) -> list[tuple[str, str]]:
    """(tag, body) of every `struct tag { ... }` definition in C text (comments removed, braces matched)."""
    text = _COMMENT.sub(" ", text)
    found = []
    for m in _STRUCT_OPEN.finditer(text):
        depth, i = 1, m.end()
        while depth and i < len(text):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        found.append((m.group(1), text[m.end():i - 1]))
    return found


def struct_candidates(include_dir: Path, fields: Sequence[str]) -> list[tuple[StructLocation, int]]:
    """Every struct defined in a header under `include_dir` whose body names all of `fields`, with the number of
    other identifiers in its body (fewer = closer to exactly the spec's members); sorted closest first."""
    include_dir = Path(include_dir)
    want = set(fields)
    hits = []
    for path in sorted(include_dir.rglob("*.h")):
        text = path.read_text(errors="replace")
        if not all(f in text for f in want):
            continue
        for tag, body in _struct_bodies(text):
            words = set(_WORD.findall(body))
            if want <= words:
                hits.append((StructLocation(path.relative_to(include_dir).as_posix(), tag), len(words - want)))
    return sorted(hits, key=lambda hit: (hit[1], hit[0].header, hit[0].struct))


def locate_struct(include_dir: Path, fields: Sequence[str], named: StructLocation | None = None) -> StructLocation:
    """The struct the kernel's UAPI headers define with the spec's member names: `named` if given (it must compile
    with those members), else the closest candidate that compiles; StructNotFound with the reason otherwise."""
    candidates = [named] if named is not None else [loc for loc, _ in struct_candidates(include_dir, fields)]
    errors = []
    for loc in candidates:
        try:
            probe(include_dir, loc.header, {loc.struct: fields})
        except ProbeError as err:
            errors.append(f"struct {loc.struct} in {loc.header}: {err}")
            continue
        return loc
    members = ", ".join(fields)
    if named is not None:
        raise StructNotFound(f"{errors[0]} (named by option; the spec's members: {members})")
    seen = f"; candidates that did not compile: {' | '.join(errors)}" if errors else ""
    raise StructNotFound(f"no header under {include_dir} defines a struct with all of the spec's members "
                         f"({members}){seen}")


def layout_problems(include_dir: Path, loc: StructLocation, fields: Sequence[tuple[str, int, int]], size: int,
                    exact: bool = True, size_macro: str | None = None) -> list[str]:
    """What differs between struct `loc` as gcc lays it out for i386 and x86_64 and the spec's table: each field's
    (offset, size), sizeof (`exact`: equal to `size`, else at least `size`: a struct that grows by appending),
    the two ABIs' (offset, size) and sizeof, and `size_macro`'s value if the header defines it. Alignment is
    not compared: a plain __u64 has 4-byte alignment on i386 and the same offsets when nothing pads."""
    names = [name for name, _, _ in fields]
    spec = {name: (off, sz) for name, off, sz in fields}
    problems, seen = [], {}
    for abi in ABIS:
        structs, macros = probe(include_dir, loc.header, {loc.struct: names}, [size_macro] if size_macro else [], abi)
        got = structs[loc.struct]
        seen[abi] = ({n: (f.offset, f.size) for n, f in got.fields.items()}, got.size)
        for name in names:
            if seen[abi][0][name] != spec[name]:
                problems.append(f"{abi}: {loc.struct}.{name} at (offset, size) {seen[abi][0][name]}, "
                                f"the spec says {spec[name]}")
        if (got.size != size) if exact else (got.size < size):
            problems.append(f"{abi}: sizeof(struct {loc.struct}) = {got.size}, the spec says "
                            f"{'' if exact else 'at least '}{size}")
        if size_macro in macros and macros[size_macro] != size:
            problems.append(f"{abi}: {size_macro} = {macros[size_macro]}, the spec's size is {size}")
    if seen["i386"] != seen["x86_64"]:
        problems.append(f"i386 and x86_64 differ: {seen['i386']} vs {seen['x86_64']}")
    return problems
