"""Real boots under TCG (short: the machine is shared with kernel builds).

Boots the reference kernel, or $ECLONE_SUITE_TEST_KERNEL (e.g. Debian's cloud kernel), with a trivial /init that
writes the agent's ready line on ttyS1, echoes lines, and panics or powers off on request.
"""

import os
import subprocess
import time
from pathlib import Path

import pytest

from harness.errors import BootError, EnvError
from harness.initramfs import build_initramfs
from harness.qemu_config import QemuConfig
from harness.vm import Vm, boot


@pytest.fixture(scope="module")
def test_kernel(request: pytest.FixtureRequest) -> Path:
    """$ECLONE_SUITE_TEST_KERNEL when set (a foreign kernel), else the reference kernel."""
    given = os.environ.get("ECLONE_SUITE_TEST_KERNEL")
    return Path(given) if given else request.getfixturevalue("reference_kernel")

TRIVIAL_INIT = r'''#!/usr/bin/python3.11 -S
import ctypes, os, termios
libc = ctypes.CDLL(None, use_errno=True)
libc.mount(b"proc", b"/proc", b"proc", 0, None)
fd = os.open("/dev/ttyS1", os.O_RDWR | os.O_NOCTTY)
attrs = termios.tcgetattr(fd)
attrs[0] = attrs[1] = attrs[3] = 0
termios.tcsetattr(fd, termios.TCSANOW, attrs)
os.write(fd, b'noise before ready\n{"event": "ready", "info": {"trivial": true}}\n')
buf = b""
while True:
    buf += os.read(fd, 4096)
    while b"\n" in buf:
        line, buf = buf.split(b"\n", 1)
        if line == b"crash":
            with open("/proc/sysrq-trigger", "w") as f:
                f.write("c")
        elif line == b"hang":
            while True:
                pass
        elif line == b"off":
            libc.reboot(0x4321FEDC)
        os.write(fd, b"echo " + line + b"\n")
'''

HANG_INIT = "#!/usr/bin/python3.11 -S\nimport time\nwhile True:\n    time.sleep(1)\n"


@pytest.fixture(scope="module")
def initrd():
    return build_initramfs(init=TRIVIAL_INIT)


def wait_exit(vm: Vm, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not vm.exited() and time.monotonic() < deadline:
        time.sleep(0.1)


def qemu_running(path: Path) -> bool:
    return subprocess.run(["pgrep", "-f", str(path)], capture_output=True).returncode == 0


def test_boot_reaches_ready_and_echoes_over_the_channel(initrd, test_kernel):
    with boot(test_kernel, initrd, QemuConfig(), ready_timeout=60) as vm:
        assert vm.ready_event == {"event": "ready", "info": {"trivial": True}}
        vm.channel.send_line("hello")
        assert vm.channel.recv_line(10) == "echo hello"
        assert vm.crash() is None
        assert "Run /init" in vm.console_text()
        vm_dir = vm.dir
        assert (vm_dir / "console.log").exists()
    assert not vm_dir.exists() and not qemu_running(vm_dir)


def test_sysrq_crash_is_detected_and_qemu_exits(initrd, test_kernel):
    with boot(test_kernel, initrd, QemuConfig(), ready_timeout=60) as vm:
        vm.channel.send_line("crash")
        wait_exit(vm, 20)
        assert vm.returncode == 0  # panic=-1 reboot=t -no-reboot
        vm._reader.join(2)
        assert vm.crash().title == "kernel panic: sysrq triggered crash"


def test_guest_that_never_gets_ready_times_out_and_is_killed(test_kernel):
    initrd = build_initramfs(init=HANG_INIT)
    vm = Vm(test_kernel, initrd, QemuConfig())
    vm.start()
    try:
        with pytest.raises(BootError, match=r"did not reach the agent within 3 s; last console line: "):
            vm.wait_ready(3)
    finally:
        vm.close()
    assert vm.exited() and not qemu_running(vm.dir)


def test_missing_qemu_is_an_env_error(initrd, test_kernel):
    vm = Vm(test_kernel, initrd, QemuConfig(binary="qemu-system-nonexistent"))
    with pytest.raises(EnvError, match="qemu-system-nonexistent not found: run ./setup.sh"):
        vm.start()
    vm.close()


def test_ready_after_noise_in_the_same_read_is_seen(tmp_path):
    """Noise and the ready line arriving in one read: the ready line waits in the channel's buffer, where
    select() cannot see it (a guest that printed a line before ready hung the wait until its deadline)."""
    import socket

    from harness.vm import Channel
    a, b = socket.socketpair()
    vm = Vm(Path("k"), Path("i"), QemuConfig())
    try:
        vm.channels = [Channel(a)]
        vm.proc = None
        b.sendall(b'noise before ready\n{"event": "ready", "info": {"x": 1}}\n')
        assert vm.wait_ready(2)["info"] == {"x": 1}
    finally:
        a.close()
        b.close()
        vm.close()
