"""bzImage header checks: one clear line for files that are not kernels."""

import os
import struct
from pathlib import Path

import pytest

from harness.errors import BootError, UsageError
from harness.kernel_image import inspect_bzimage


def fake_bzimage(path: Path, banner: bytes) -> Path:
    image = bytearray(0x1000)
    image[0x1FE:0x200] = b"\x55\xaa"
    image[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", image, 0x20E, 0x600 - 0x200)
    image[0x600:0x600 + len(banner) + 1] = banner + b"\0"
    path.write_bytes(bytes(image))
    return path


def test_version_is_read_from_the_header(tmp_path):
    image = inspect_bzimage(fake_bzimage(tmp_path / "bz", b"6.1.0-eclone (me@host) #1 SMP"))
    assert image.version == "6.1.0-eclone"
    assert image.banner.startswith("6.1.0-eclone (me@host)")


def test_missing_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no such kernel image"):
        inspect_bzimage(tmp_path / "nope")


def test_text_file_is_not_a_bzimage():
    with pytest.raises(BootError, match="^not an x86 bzImage: /etc/passwd$"):
        inspect_bzimage("/etc/passwd")


def test_header_without_version_string_is_rejected(tmp_path):
    with pytest.raises(BootError, match="without a version string"):
        inspect_bzimage(fake_bzimage(tmp_path / "bz", b""))


def test_real_kernel_has_a_version(reference_kernel):
    image = inspect_bzimage(os.environ.get("ECLONE_SUITE_TEST_KERNEL") or reference_kernel)
    assert image.version.startswith(("5.", "6."))
