"""The initramfs builder: archive contents and the content-hash cache."""

import os
import stat

import pytest

from harness import initramfs
from harness.initramfs import CpioWriter, build_initramfs, read_cpio

PYTHON = "/usr/bin/python3.11"
pytestmark = pytest.mark.skipif(not os.access(PYTHON, os.X_OK), reason=f"{PYTHON} not installed")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ECLONE_SUITE_CACHE", str(tmp_path))
    return tmp_path


@pytest.fixture
def archive(cache):
    return read_cpio(build_initramfs(PYTHON).read_bytes())


def test_init_is_an_executable_python_script(archive):
    mode, data = archive["init"]
    assert mode & 0o111 and data.startswith(b"#!/usr/bin/python3.11 -S\n")
    assert b'"--channel", "auto:/dev/ttyS1"' in data  # virtio-serial if the kernel has it, else ttyS1


def test_interpreter_loader_and_libc_are_present(archive):
    assert stat.S_ISREG(archive["usr/bin/python3.11"][0])
    assert stat.S_ISLNK(archive["lib64"][0])
    assert "usr/lib/x86_64-linux-gnu/libc.so.6" in archive


def test_stdlib_ships_as_sourceless_pyc(archive):
    assert "usr/lib/python3.11/os.pyc" in archive
    assert "usr/lib/python3.11/json/__init__.pyc" in archive
    assert not any(name.startswith("usr/lib/python3.11/") and name.endswith(".py") for name in archive)


def test_agent_package_is_under_opt_agent(archive):
    agent = sorted(initramfs.AGENT_DIR.glob("*.py"))
    if not agent:
        pytest.skip("harness/agent has no Python files yet")
    for src in agent:
        assert f"opt/agent/agent/{src.name}" in archive


def test_console_and_serial_device_nodes_exist(archive):
    for name in ("dev/console", "dev/ttyS0", "dev/ttyS1"):
        assert stat.S_ISCHR(archive[name][0])


def test_second_call_is_a_cache_hit(cache):
    first = build_initramfs(PYTHON)
    mtime = first.stat().st_mtime_ns
    assert build_initramfs(PYTHON) == first and first.stat().st_mtime_ns == mtime
    assert first.parent == cache / "initramfs"


def test_different_init_gives_a_different_image(cache):
    assert build_initramfs(PYTHON, init="#!/bin/sh\n") != build_initramfs(PYTHON)


def test_cpio_round_trip():
    cpio = CpioWriter()
    cpio.add_bytes("/a/b.txt", b"hello")
    cpio.add_symlink("/c", "a")
    files = read_cpio(cpio.finish())
    assert files["a/b.txt"][1] == b"hello" and files["c"][1] == b"a" and stat.S_ISDIR(files["a"][0])
