"""A distro kernel's virtio modules: found beside its image, ordered by their .modinfo, packed after the
initramfs, and loaded by the agent with the command line's parameters."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from harness.agent.modules import params_for
from harness.initramfs import read_cpio
from harness.kernel_image import inspect_bzimage
from harness.kernel_modules import depends, initrd_for, virtio_modules

DEPENDS = {"virtio_ring": "", "virtio": "virtio_ring", "virtio_mmio": "virtio,virtio_ring",
           "virtio_console": "virtio,virtio_ring", "virtio_balloon": "virtio"}


def _module(path: Path, deps: str) -> None:
    """An ELF object with a .modinfo section, as a module has."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed (./setup.sh installs it)")
    info = f'license=GPL\\0depends={deps}\\0name={path.name.split(".")[0]}'
    source = f'const char modinfo[] __attribute__((section(".modinfo"), used)) = "{info}";\n'
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["gcc", "-c", "-x", "c", "-", "-o", str(path)], input=source, text=True, check=True)


@pytest.fixture
def extracted_package(tmp_path: Path, any_bzimage: Path) -> Path:
    """boot/vmlinuz-R and lib/modules/R/kernel/..., as `dpkg -x linux-image-R.deb` leaves them (no modules.dep)."""
    release = inspect_bzimage(any_bzimage).version
    image = tmp_path / "boot" / f"vmlinuz-{release}"
    image.parent.mkdir()
    shutil.copyfile(any_bzimage, image)
    root = tmp_path / "lib" / "modules" / release / "kernel"
    for name, deps in DEPENDS.items():
        sub = "char" if name == "virtio_console" else "virtio"
        _module(root / "drivers" / sub / f"{name.replace('_mmio', '-mmio')}.ko", deps)
    return image


def test_depends_reads_the_modinfo_section(tmp_path: Path) -> None:
    _module(tmp_path / "m.ko", "virtio,virtio_ring")
    assert depends((tmp_path / "m.ko").read_bytes()) == ["virtio", "virtio_ring"]
    _module(tmp_path / "n.ko", "")
    assert depends((tmp_path / "n.ko").read_bytes()) == []
    assert depends(b"not an elf file at all") == []


def test_the_virtio_modules_of_an_extracted_package_come_after_what_they_depend_on(extracted_package: Path) -> None:
    names = [m.path.name for m in virtio_modules(extracted_package)]
    assert names == ["virtio_ring.ko", "virtio.ko", "virtio-mmio.ko", "virtio_console.ko"]  # no balloon, no pci


def test_they_are_appended_to_the_initramfs_and_a_kernel_without_them_keeps_it(
        extracted_package: Path, any_bzimage: Path, tmp_path: Path) -> None:
    base = tmp_path / "base.cpio"
    base.write_bytes(b"070701" + b"0" * 104 + b"TRAILER!!!\0" + b"\0")  # stands for the agent's archive
    packed = initrd_for(extracted_package, base)
    assert packed != base and packed.read_bytes().startswith(base.read_bytes())
    files = read_cpio(packed.read_bytes()[len(base.read_bytes()):])
    modules = sorted(n for n in files if n.endswith(".ko"))
    assert modules == ["modules/00-virtio_ring.ko", "modules/01-virtio.ko", "modules/02-virtio_mmio.ko",
                       "modules/03-virtio_console.ko"]
    assert initrd_for(extracted_package, base) == packed, "cached"
    assert initrd_for(any_bzimage, base) == base, "the reference has virtio built in and no modules dir"


def test_module_parameters_come_from_the_command_line_as_modprobe_takes_them() -> None:
    cmdline = "console=ttyS0 virtio_mmio.device=512@0xfeb00e00:12 virtio-mmio.device=512@0xfeb00c00:11 x.y=1\n"
    assert params_for("virtio_mmio", cmdline) == "device=512@0xfeb00e00:12 device=512@0xfeb00c00:11"
    assert params_for("virtio_console", cmdline) == ""


def test_microvm_offers_its_acpi_tables_only_when_asked() -> None:
    """Debian's virtio_mmio has no command-line devices: it finds microvm's through ACPI (off otherwise)."""
    from harness.qemu_config import QemuConfig, machine_arg
    assert "acpi=off" in machine_arg(QemuConfig())
    assert "acpi=on" in machine_arg(QemuConfig(acpi=True))
