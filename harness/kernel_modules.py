"""The virtio modules of a distro kernel, packed beside the agent so that it gets the fast channel.

Distro kernels (Debian's generic, cloud and rt) build virtio, virtio-mmio and the virtio console as
modules, so their agent stayed on the 8250 (ttyS1, ~40 KB/s under TCG: a spawn program ran at 0.13 of
the C loop against 0.32 on virtio). Where the kernel's modules are at hand (an extracted
`linux-image-*.deb` beside the vmlinuz, or the host's own /lib/modules for its release), the ones the
virtio-serial port needs, with the modules they depend on (their .modinfo), go into a second cpio archive that
is appended to the initramfs (the kernel unpacks concatenated archives); the agent loads them at start
(harness/agent/modules.py). Without them nothing changes: the agent stays on ttyS1.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
from pathlib import Path
from typing import NamedTuple

from .kernel_image import inspect_bzimage
from .paths import cache_dir
from .progress import note

# what a virtio-serial port needs on microvm (mmio) and on q35 (pci); what they depend on is added
WANTED = ("virtio_mmio", "virtio_pci", "virtio_console")
GUEST_DIR = "modules"  # /modules/NN-name.ko in the guest, loaded in name order
_DECOMPRESS = {".ko": lambda data: data, ".xz": lzma.decompress, ".gz": gzip.decompress}


def module_dirs(kernel: Path, release: str) -> list[Path]:
    """Where a kernel's modules may be: an extracted package (boot/vmlinuz-R beside lib/modules/R), the host's."""
    return [kernel.resolve().parent.parent / "lib" / "modules" / release, Path("/lib/modules") / release]


def _name(file: str) -> str:
    """A module file's name as the kernel knows it: virtio-mmio.ko.xz -> virtio_mmio."""
    return Path(file).name.split(".ko")[0].replace("-", "_")


def _suffix(path: Path) -> str:
    return ".ko" if path.name.endswith(".ko") else path.suffix


def module_data(path: Path) -> bytes:
    """The module as the kernel loads it (decompressed: the kernel may lack module decompression)."""
    return _DECOMPRESS[_suffix(path)](path.read_bytes())


def depends(elf: bytes) -> list[str]:
    """The `depends=` list of a module's .modinfo section (what modules.dep is made from; an extracted
    package has no modules.dep, depmod makes it at install)."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        return []
    shoff = int.from_bytes(elf[0x28:0x30], "little")
    shentsize, shnum, shstrndx = (int.from_bytes(elf[o:o + 2], "little") for o in (0x3A, 0x3C, 0x3E))

    def section(i: int) -> tuple[int, int, int]:
        head = elf[shoff + i * shentsize:shoff + (i + 1) * shentsize]
        return (int.from_bytes(head[0:4], "little"), int.from_bytes(head[0x18:0x20], "little"),
                int.from_bytes(head[0x20:0x28], "little"))

    _, str_off, _ = section(shstrndx)
    for i in range(shnum):
        name_off, off, size = section(i)
        name = elf[str_off + name_off:elf.index(b"\0", str_off + name_off)]
        if name == b".modinfo":
            for entry in elf[off:off + size].split(b"\0"):
                if entry.startswith(b"depends="):
                    return [d for d in entry[len(b"depends="):].decode().split(",") if d]
    return []


class Module(NamedTuple):
    path: Path
    data: bytes  # decompressed, as the kernel loads it


def load_order(index: dict[str, Path], wanted: tuple[str, ...] = WANTED) -> list[Module]:
    """The wanted modules present and every module they depend on, each after its dependencies (each read
    and decompressed once: its .modinfo says what it needs, its bytes go into the archive)."""
    order: list[Module] = []

    def visit(name: str) -> None:
        path = index.get(name)
        if path is None or any(m.path == path for m in order):
            return  # built in, or already placed
        data = module_data(path)
        for needed in depends(data):
            visit(needed.replace("-", "_"))
        order.append(Module(path, data))

    for name in wanted:
        visit(name)
    return order


def virtio_modules(kernel: Path) -> list[Module]:
    """The modules to load, in order; [] when the kernel has virtio console built in or none are found."""
    try:
        release = inspect_bzimage(kernel).version
    except Exception:
        return []
    for root in module_dirs(kernel, release):
        if not (root / "kernel").is_dir():
            continue
        index = {_name(p.name): p for p in (root / "kernel").rglob("*.ko*") if _suffix(p) in _DECOMPRESS}
        builtin = root / "modules.builtin"
        built_in = {_name(line) for line in builtin.read_text().split()} if builtin.is_file() else set()
        if "virtio_console" not in index.keys() | built_in or not any(name in index for name in WANTED):
            return []  # no virtio console at all, or everything built in: nothing to load
        return load_order(index)  # e.g. Debian 6.12: console and PCI built in, virtio_mmio a module
    return []


def modules_cpio(modules: list[Module]) -> bytes:
    """A newc archive with /modules/NN-name.ko (decompressed: the kernel may not decompress modules)."""
    from .initramfs import CpioWriter
    cpio = CpioWriter()
    cpio.mkdir(f"/{GUEST_DIR}")
    for i, module in enumerate(modules):
        cpio.add_bytes(f"/{GUEST_DIR}/{i:02d}-{_name(module.path.name)}.ko", module.data)
    return cpio.finish()


def initrd_for(kernel: Path, base: Path) -> Path:
    """`base`, or a cached copy of it with the kernel's virtio modules appended (unreadable ones: `base`)."""
    try:
        modules = virtio_modules(kernel)
    except (OSError, ValueError, EOFError, lzma.LZMAError) as exc:
        note(f"not packing {kernel.name}'s virtio modules ({exc}): the agent stays on ttyS1")
        return base
    if not modules:
        return base
    h = hashlib.sha256(str(base.resolve()).encode() + str(base.stat().st_mtime_ns).encode())
    for m in modules:
        st = m.path.stat()
        h.update(f"{m.path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    out = cache_dir() / "initramfs" / f"with-modules-{h.hexdigest()[:16]}.cpio"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
        tmp.write_bytes(base.read_bytes() + modules_cpio(modules))
        os.replace(tmp, out)
    return out
