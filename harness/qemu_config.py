"""QEMU settings as one frozen dataclass (after KUnit's QemuArchParams) and the argv built from it.

Serial layout, the same on microvm and q35 (measured with QEMU 7.2): ttyS0 (0x3f8, irq 4) is the
console, a pipe to the host; ttyS1 (0x2f8, irq 3) is the agent channel, an explicit
`-device isa-serial,index=1` on a unix socket. A second `-serial` would not do: microvm only wires
up the first one.
Beside it, a virtio-serial port named `eclone.agent` on a second socket: the agent uses it when the
kernel has virtio console and virtio-mmio (or PCI on q35) built in, as the reference kernel does. Under
TCG the emulated 8250 moves about 40 KB/s and every byte of a program and its reply costs ~25 us
there; virtio moves a reply in one interrupt. Distro kernels build virtio as modules: where their modules are at
hand, harness/kernel_modules.py packs them for the agent to load (and turns on microvm's ACPI, where Debian's
virtio_mmio finds its devices); otherwise the agent finds no port and stays on ttyS1. Both are always wired
and the host takes the one "ready" came on.

Kernel command line choices:
- `panic=-1 reboot=t` + `-no-reboot`: a panic makes QEMU exit at once (status 0).
- no `oops=panic`, no `panic_on_warn`: an oops kills the task and a WARNING only prints, the
  guest stays up so the scanner can read the full report and the host decides what to do.
- `PYTHONHASHSEED=0`: passed to /init as environment; CPython cannot get entropy at early boot.
- `lpj=`: the second vCPU's delay-loop calibration failed under TCG after ~0.2 s of trying; the value
  (the TSC's cycles per jiffy at HZ=250) only scales udelay(). `tsc=reliable`: the kernel otherwise
  marks the TCG TSC unstable ("TSCs unsynchronized") and falls back to refined-jiffies, a 4 ms clock
  for every timeout and timestamp in the guest.
- microvm has no HPET or ACPI PM timer; under TCG the kernel then often fails to calibrate the
  TSC and hangs (Debian's cloud kernel). `tsc_early_khz=<host TSC>` skips that calibration: under
  TCG the guest TSC ticks at the host's rate.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from harness.errors import EnvError

ASSUMED_HZ = 250  # for lpj=: Debian's and our kernels' CONFIG_HZ; elsewhere only udelay() is off
BASE_CMDLINE = "console=ttyS0 reboot=t panic=-1 PYTHONHASHSEED=0 quiet loglevel=4"


def require_binary(binary: str) -> None:
    """EnvError with the fix when the QEMU binary is not installed."""
    if shutil.which(binary) is None:
        raise EnvError(f"{binary} not found: run ./setup.sh")


@dataclass(frozen=True)
class QemuConfig:
    """Everything that decides how one VM is started, apart from the files it boots."""

    binary: str = "qemu-system-x86_64"
    machine: str = "microvm"  # "microvm" or "q35"
    accel: str = "tcg"  # "tcg" or "kvm"
    memory_mib: int = 256
    cpus: int = 1
    cmdline: str = ""  # appended to BASE_CMDLINE
    extra_args: tuple[str, ...] = ()
    verbose_console: bool = True  # drop "quiet": crash reports need no loglevel, boot logs help
    virtio_channel: bool = True  # also offer the agent a virtio-serial port (used when the kernel has it)
    snapshots: bool = True  # restore a saved VM with the agent up instead of booting (harness/vm_snapshot.py)
    # microvm's ACPI tables: how a virtio_mmio module finds its devices when it was built without
    # CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES (Debian's); off otherwise (nothing to find, less to boot)
    acpi: bool = False

    def kernel_cmdline(self) -> str:
        """The full kernel command line."""
        base = BASE_CMDLINE.replace(" quiet loglevel=4", "") if self.verbose_console else BASE_CMDLINE
        parts = [base]
        if self.machine == "microvm":
            parts.append(f"tsc_early_khz={host_tsc_khz()}")
        parts.append(f"lpj={host_tsc_khz() * 1000 // ASSUMED_HZ} tsc=reliable")
        if self.cmdline:
            parts.append(self.cmdline)
        return " ".join(parts)


def host_tsc_khz() -> int:
    """The host's TSC rate in kHz, from /proc/cpuinfo (2 GHz when unknown: only timing skews)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    return int(float(line.split(":")[1]) * 1000)
    except (OSError, ValueError):
        pass
    return 2_000_000


def machine_arg(config: QemuConfig) -> str:
    if config.machine == "microvm":
        # isa-serial needs the ISA bus; rtc gives the guest a wall clock; no PCI.
        return f"microvm,isa-serial=on,rtc=on,pit=on,pic=on,acpi={'on' if config.acpi else 'off'}"
    return config.machine


VIRTIO_PORT_NAME = "eclone.agent"  # the agent looks for this name in /sys/class/virtio-ports


def virtio_serial_device(config: QemuConfig) -> str:
    """The virtio-serial bus: virtio-mmio on microvm (QEMU adds the devices to the kernel command line)."""
    return "virtio-serial-device" if config.machine == "microvm" else "virtio-serial-pci"


def qemu_argv(config: QemuConfig, kernel: Path, initrd: Path, channel_socket: Path,
              virtio_socket: Path | None = None, qmp_socket: Path | None = None,
              incoming: Path | None = None) -> list[str]:
    """argv for one VM: console on QEMU's stdout, agent channel as a client of `channel_socket`
    (ttyS1) and, when given, of `virtio_socket` (the virtio-serial port).

    The host listens on the sockets before QEMU starts, so no byte the guest sends is lost.
    """
    virtio = [] if virtio_socket is None else [
        "-chardev", f"socket,id=agentv,path={virtio_socket},server=off",
        "-device", virtio_serial_device(config),
        "-device", f"virtserialport,chardev=agentv,name={VIRTIO_PORT_NAME}",
    ]
    return [
        config.binary,
        "-M", machine_arg(config),
        "-accel", config.accel,
        "-m", str(config.memory_mib),
        "-smp", str(config.cpus),
        "-nodefaults", "-no-user-config",
        "-display", "none",
        "-no-reboot",
        "-nic", "none",
        "-kernel", str(kernel),
        "-initrd", str(initrd),
        "-append", config.kernel_cmdline(),
        "-chardev", "stdio,id=console,signal=off",
        "-serial", "chardev:console",
        "-chardev", f"socket,id=agent,path={channel_socket},server=off",
        "-device", "isa-serial,chardev=agent,index=1",
        *virtio,
        *([] if qmp_socket is None else ["-qmp", f"unix:{qmp_socket},server=on,wait=off"]),
        *([] if incoming is None else ["-incoming", f"exec:cat '{incoming}'"]),
        *config.extra_args,
    ]
