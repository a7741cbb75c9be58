"""QemuTarget: a kernel under QEMU with the agent as init; restarted after any crash or hang."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

from ..crash_scan import Crash
from ..errors import AgentError, AgentLost, GuestCrash
from ..protocol import AgentConnection
from ..qemu_config import QemuConfig
from ..vm import Vm, boot
from .base import Target, TargetInfo

READY_TIMEOUT = float(os.environ.get("ECLONE_SUITE_READY_TIMEOUT", "90"))
CRASH_GRACE = 3.0  # seconds to let the console finish a report after the agent went quiet


def default_config() -> QemuConfig:
    """Two vCPUs (races need real concurrency), TCG unless KVM proves it runs guests."""
    from ..kvm_probe import default_accel
    return QemuConfig(accel=default_accel(), cpus=2, memory_mib=512)


class QemuTarget(Target):
    """Programs run by the agent inside a VM; a crash fails the program in flight, then we reboot."""

    def __init__(self, kernel: Path, console_log: Path | None = None, config: QemuConfig | None = None) -> None:
        self.kernel = Path(kernel)
        self.console_log = console_log
        self.config = config
        self.initrd: Path | None = None
        self.vm: Vm | None = None
        self.conn: AgentConnection | None = None
        self.boots = 0
        self.last_boot_seconds = 0.0  # QEMU start to agent ready, for `harness bench`

    def start(self) -> None:
        from ..initramfs import build_initramfs
        from ..kernel_modules import initrd_for
        base = build_initramfs()
        self.initrd = initrd_for(self.kernel, base)
        if self.config is None:
            self.config = default_config()
        if self.initrd != base:  # the kernel's virtio modules are packed: let virtio_mmio find its devices
            self.config = dataclasses.replace(self.config, acpi=True)
        self._boot()

    def _boot(self) -> None:
        assert self.initrd is not None and self.config is not None
        started = time.perf_counter()
        self.vm = boot(self.kernel, self.initrd, self.config, ready_timeout=READY_TIMEOUT)
        self.last_boot_seconds = time.perf_counter() - started
        self.config = self.vm.config  # boot() may have moved to q35
        self.boots += 1
        channel = self.vm.channel
        assert channel is not None
        self.conn = AgentConnection(channel.read, channel.write)
        info = (self.vm.ready_event or {}).get("info", {})
        self.info = TargetInfo(name="qemu", kernel=str(info.get("kernel", "?")), pid_max=int(info.get("pid_max", 0)),
                               root_level=0, extra={"agent": info, "machine": self.config.machine,
                                                    "accel": self.config.accel,
                                                    "channel": "ttyS1" if channel is self.vm.channels[0] else "virtio"})
        self.require_features(info)

    def _save_console(self) -> None:
        if self.vm is not None and self.console_log is not None:
            self.console_log.parent.mkdir(parents=True, exist_ok=True)
            with open(self.console_log, "a") as fh:
                how = " restored from a saved state" if self.vm.restore is not None else ""
                fh.write(f"===== boot {self.boots}: {self.kernel} ({self.config}){how} =====\n")
                fh.write(self.vm.console_text())

    def _shutdown_vm(self) -> None:
        if self.vm is not None:
            self._save_console()
            self.vm.close()
        self.vm = None
        self.conn = None

    def _ensure_running(self) -> AgentConnection:
        if self.vm is None or self.conn is None or self.vm.exited():
            self._shutdown_vm()
            self._boot()
        assert self.conn is not None
        return self.conn

    def _new_crash(self, wait: float = 0.0) -> Crash | None:
        """A crash of the running VM (waiting up to `wait` s for the console to show one).

        Callers drop the VM as soon as one is found, so each crash is reported once."""
        if self.vm is None:
            return None
        deadline = time.monotonic() + wait
        while True:
            crash = self.vm.crash()
            if crash is not None or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        return crash

    def _request(self, op: str, timeout: float, **fields: Any) -> Any:
        conn = self._ensure_running()
        try:
            result = conn.request(op, timeout, **fields)
        except AgentLost as err:  # (a ProgramError means the agent is fine, the program was not)
            crash = self._new_crash(wait=CRASH_GRACE)
            tail = self.console_excerpt()
            self._shutdown_vm()
            if crash is not None:
                raise GuestCrash(crash.title, crash.excerpt) from None
            raise AgentLost(f"{err}; VM restarted; last console lines:\n{tail}") from None
        crash = self._new_crash()
        if crash is not None:
            self._shutdown_vm()
            raise GuestCrash(crash.title, crash.excerpt)
        return result

    def run(self, program: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
        return self._request("run", timeout, program=program)

    def ping(self, timeout: float = 5.0) -> None:
        self._request("ping", timeout)

    def reset(self) -> None:
        self._request("reset", 60.0)

    def take_crash(self) -> Crash | None:
        """A crash that showed up after the last reply (between tests); the VM is then restarted."""
        crash = self._new_crash()
        if crash is not None:
            self._shutdown_vm()
        return crash

    def console_excerpt(self, lines: int = 40) -> str:
        if self.vm is None:
            return ""
        return "\n".join(self.vm.console_text().splitlines()[-lines:])

    def console_mark(self) -> tuple[int, int]:
        """(boot number, characters so far): a reboot in between means the whole new console counts."""
        return (self.boots, len(self.vm.console_text()) if self.vm is not None else 0)

    def console_since(self, mark: Any, lines: int = 60) -> str | None:
        if self.vm is None:
            return ""
        text = self.vm.console_text()
        boots, offset = mark if mark is not None else (-1, 0)
        new = text[offset:] if boots == self.boots else text
        return "\n".join(new.splitlines()[-lines:])

    def close(self) -> None:
        if self.conn is not None and self.vm is not None and not self.vm.exited():
            try:
                self.conn.request("shutdown", 5.0)
            except AgentError:
                pass
        self._shutdown_vm()
