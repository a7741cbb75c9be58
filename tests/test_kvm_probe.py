"""The KVM probe: the firmware works (checked under TCG), the override, the caching."""

import shutil

import pytest

from harness import kvm_probe

needs_qemu = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="QEMU not installed")


def test_firmware_reset_vector_writes_exit_code():
    image = kvm_probe.firmware()
    assert len(image) == 0x10000 and image[0xFFF0:0xFFF5] == b"\xb0\x31\xe6\xf4\xf4"


@needs_qemu
def test_probe_firmware_exits_qemu_under_tcg():
    assert kvm_probe.probe("tcg")


@pytest.mark.parametrize("value,expected", [("tcg", False), ("kvm", True)])
def test_environment_overrides_the_probe(monkeypatch, value, expected):
    kvm_probe.kvm_usable.cache_clear()
    monkeypatch.setenv("ECLONE_SUITE_ACCEL", value)
    try:
        assert kvm_probe.kvm_usable() is expected
    finally:
        kvm_probe.kvm_usable.cache_clear()
