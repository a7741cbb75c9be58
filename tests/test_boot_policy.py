"""vm.boot()'s retry policy decided by error types (no boot needed: Vm is replaced by a fake)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import vm as vm_module
from harness.errors import BootCrash, BootError, QemuStartError
from harness.qemu_config import QemuConfig


class FakeVm:
    tried: list[QemuConfig] = []
    errors: list[BootError | None] = []

    def __init__(self, kernel: Path, initrd: Path, config: QemuConfig, restore: object = None) -> None:
        self.config = config
        FakeVm.tried.append(config)

    def start(self) -> None:
        pass

    def wait_ready(self, timeout: float) -> None:
        err = FakeVm.errors.pop(0)
        if err is not None:
            raise err

    def close(self) -> None:
        pass


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> type[FakeVm]:
    monkeypatch.setattr(vm_module, "Vm", FakeVm)
    monkeypatch.setattr(vm_module, "restore", lambda *a: None)
    monkeypatch.setattr(vm_module, "save_state", lambda vm: None)
    FakeVm.tried = []
    return FakeVm


def test_a_hung_microvm_boot_is_retried_on_q35(fake: type[FakeVm]) -> None:
    fake.errors = [BootError("kernel did not reach the agent"), None]
    got = vm_module.boot(Path("k"), Path("i"), QemuConfig(machine="microvm"))
    assert [c.machine for c in fake.tried] == ["microvm", "q35"] and got.config.machine == "q35"


def test_kvm_that_cannot_boot_falls_back_to_tcg(fake: type[FakeVm]) -> None:
    fake.errors = [BootError("hung"), None]
    vm_module.boot(Path("k"), Path("i"), QemuConfig(accel="kvm"))
    assert [c.accel for c in fake.tried] == ["kvm", "tcg"]


@pytest.mark.parametrize("error", [BootCrash("kernel crashed during boot: BUG"), QemuStartError("QEMU did not start")])
def test_a_crash_or_a_qemu_that_does_not_start_is_not_retried(fake: type[FakeVm], error: BootError) -> None:
    fake.errors = [error, None]
    with pytest.raises(type(error)):
        vm_module.boot(Path("k"), Path("i"), QemuConfig())
    assert len(fake.tried) == 1
