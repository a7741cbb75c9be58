"""`python -m harness bench`: boot time, agent round trip, and the agent's spawn rate next to a C loop.

The C loop (harness/bench_c/spawn.c) makes the same clone3 spawn as the agent's simplest program (one
child, `report` mode: it reads /proc/self/status and writes to a pipe, the parent reaps it), so the ratio
python/C says how much of a program's cost is the agent's rather than the kernel's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from .errors import HarnessError, UsageError
from .progress import note
from .static_c import build_static
from .targets.base import Target

C_SOURCE = Path(__file__).resolve().parent / "bench_c" / "spawn.c"
C_FLAGS = ["-O2", "-static", "-nostdlib", "-fno-stack-protector", "-fno-pie", "-no-pie", "-s"]
PINGS = 200
SPAWN_SECONDS = 3.0
EXEC_MAX_TIMEOUT = 25.0
HOST = "host"  # TargetInfo.name of the host target  # the agent's limit for one exec step


def build_c_spawn(source: Path = C_SOURCE) -> Path:
    """Compile the C spawn loop into the cache (keyed by source and flags); returns the binary."""
    return build_static(source, C_FLAGS, why="bench's C spawn loop")


def ping_median_ms(target: Target, count: int = PINGS) -> float:
    """Median of `count` no-op round trips, in ms."""
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        target.ping()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def spawn_program() -> dict[str, Any]:
    """The simplest clone3 spawn: one child at level 0, report mode, no set_tid."""
    from .profiles import Clone3Profile
    from .profiles.base import SpawnRequest
    from .programs import program
    return program([Clone3Profile().spawn_step(SpawnRequest())])


def python_spawn_rate(target: Target, seconds: float = SPAWN_SECONDS) -> dict[str, Any]:
    """Run the spawn program back to back for about `seconds`; programs per second, and the median
    program's wall time, agent time (the guest's clock) and host-side encoding time, in ms."""
    prog = spawn_program()
    first = target.run(prog)["steps"][0]  # warm-up, and a check that spawning works at all
    if first["ret"] <= 0 or first["child_exit"] != 0:
        raise HarnessError(f"bench: the clone3 spawn program failed (errno {first['errno']})")
    walls, agents, hosts = [], [], []
    count, t0 = 0, time.perf_counter()
    while True:
        t1 = time.perf_counter()
        reply = target.run(prog)
        walls.append(time.perf_counter() - t1)
        agents.append(float(reply.get("elapsed_ms", 0.0)) / 1000)
        count += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            break
    reply_text = json.dumps(reply)
    for _ in range(20):  # the host's share: encoding the request, decoding the reply
        t1 = time.perf_counter()
        json.dumps({"id": 1, "op": "run", "program": prog})
        json.loads(reply_text)
        hosts.append(time.perf_counter() - t1)
    ms = {k: round(statistics.median(v) * 1000, 3) for k, v in (("wall", walls), ("agent", agents), ("host", hosts))}
    return {"spawns": count, "seconds": round(elapsed, 3), "per_s": round(count / elapsed, 1), "ms": ms}


def time_split(py: dict[str, Any], c: dict[str, Any]) -> dict[str, float]:
    """Where one spawn program's wall time goes, in ms: the kernel (what the C loop takes per spawn), the
    agent (its elapsed time in the guest minus the kernel's share), the transport (the rest, minus the
    host's encoding), the host."""
    kernel = 1000 / max(c["per_s"], 1e-9)
    ms = py["ms"]
    agent = max(ms["agent"] - kernel, 0.0)
    transport = max(ms["wall"] - ms["agent"] - ms["host"], 0.0)
    return {"kernel": round(kernel, 3), "agent": round(agent, 3), "transport": round(transport, 3),
            "host": ms["host"]}


def typical_program(target: Target) -> dict[str, Any]:
    """What the state machines send: a spawn at level 2 of a chain followed by a sync of every level."""
    from .oracle.sync import sync_steps
    from .profiles import Clone3Profile
    from .profiles.base import SpawnRequest
    from .programs import chain, program
    return program([Clone3Profile().spawn_step(SpawnRequest(at=2)), *sync_steps(2)], chain(2))


def programs_rate(target: Target, seconds: float = SPAWN_SECONDS) -> float:
    """Typical programs per second (typical_program back to back)."""
    prog = typical_program(target)
    target.run(prog)
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        target.run(prog)
        count += 1
    return round(count / (time.perf_counter() - t0), 1)


def c_spawn_rate(target: Target, binary: Path, seconds: float = SPAWN_SECONDS) -> dict[str, Any]:
    """Copy the C loop into the target's /tmp (write_file hex + mode), exec it for about `seconds`."""
    path = f"/tmp/eclone-bench-spawn-{uuid.uuid4().hex[:12]}"
    timeout = min(EXEC_MAX_TIMEOUT, seconds + 10.0)
    from .programs import install_and_exec_steps, program
    steps = install_and_exec_steps(binary.read_bytes(), path, [str(10**9), str(int(seconds * 1000)), "-u"], timeout)
    try:
        wrote, ran = target.run(program(steps), timeout=timeout + 60.0)["steps"]
    finally:
        if on_host(target):  # the sandbox shares the host's /tmp; -u normally removed it
            Path(path).unlink(missing_ok=True)
    if wrote["errno"]:
        raise HarnessError(f"bench: cannot write {path} in the target (errno {wrote['errno']})")
    fields = ran["stdout"].split()
    if ran["status"] != 0 or fields[:1] != ["spawns"]:
        detail = (ran["stdout"] + ran["stderr"]).strip().replace("\n", " ")[:200]
        raise HarnessError(f"bench: the C spawn loop failed (status {ran['status']}): {detail}")
    spawns, ns = int(fields[1]), int(fields[3])
    return {"spawns": spawns, "seconds": round(ns / 1e9, 3), "per_s": round(spawns * 1e9 / max(ns, 1), 1)}


def on_host(target: Target) -> bool:
    """The host target runs on this machine's kernel: no guest, and the same /tmp."""
    return target.info.name == HOST


def guest_uptime(target: Target) -> float | None:
    """The guest's /proc/uptime right after ready (None on the host target: that is the host's)."""
    if on_host(target):
        return None
    from .programs import program, read_file_step
    res = target.run(program([read_file_step("/proc/uptime")]))["steps"][0]
    return float(res["data"].split()[0]) if "data" in res else None


def run_bench(target: Target, pings: int = PINGS, spawn_seconds: float = SPAWN_SECONDS,
              c_seconds: float = SPAWN_SECONDS) -> dict[str, Any]:
    """Every measurement on a started target (boot time is the caller's)."""
    binary = build_c_spawn()
    out: dict[str, Any] = {"target": target.info.name, "kernel": target.info.kernel}
    out["guest_uptime_at_ready_s"] = guest_uptime(target)
    out["ping_median_ms"] = round(ping_median_ms(target, pings), 3)
    out["python_spawn"] = python_spawn_rate(target, spawn_seconds)
    out["c_spawn"] = c_spawn_rate(target, binary, c_seconds)
    out["ratio_python_over_c"] = round(out["python_spawn"]["per_s"] / max(out["c_spawn"]["per_s"], 1e-9), 4)
    out["spawn_ms"] = time_split(out["python_spawn"], out["c_spawn"])
    out["programs_per_s"] = programs_rate(target, spawn_seconds)
    return out


def start_target(args: argparse.Namespace) -> tuple[Target, float]:
    """The target the options name, started; with its boot-to-ready wall time in seconds."""
    if args.target == "host":
        if args.kernel or args.tree or args.patch or args.fragment or args.stock:
            raise UsageError("--target host runs the running kernel: drop --kernel/--tree/--patch/--fragment/--stock")
        from .targets.host import HostTarget
        target: Target = HostTarget()
        t0 = time.perf_counter()
        target.start()
        return target, time.perf_counter() - t0
    from .commands import resolve_kernel
    from .targets.qemu import QemuTarget
    qemu = QemuTarget(resolve_kernel(args))
    try:
        qemu.start()
    except BaseException:
        qemu.close()
        raise
    return qemu, qemu.last_boot_seconds  # QEMU start to agent ready: no initramfs build, no KVM probe


def format_table(res: dict[str, Any]) -> str:
    """A small human-readable table."""
    up = res.get("guest_uptime_at_ready_s")
    py, c = res["python_spawn"], res["c_spawn"]
    extra = f" ({res['machine']}, {res['accel']}, agent on {res.get('channel', '?')})" if res.get("machine") else ""
    rows = [
        ("target", f"{res['target']}{extra}, kernel {res['kernel']}"),
        ("boot to agent ready", f"{res['boot_s']:.2f} s" + (f" (guest uptime {up:.2f} s)" if up is not None else "")),
        ("no-op round trip", f"{res['ping_median_ms']:.3f} ms (median)"),
        ("clone3 spawn, agent", f"{py['per_s']:.1f} programs/s ({py['spawns']} in {py['seconds']:.1f} s)"),
        ("clone3 spawn, C loop", f"{c['per_s']:.1f} spawns/s ({c['spawns']} in {c['seconds']:.1f} s)"),
        ("ratio agent/C", f"{res['ratio_python_over_c']:.4f} (C is {1 / max(res['ratio_python_over_c'], 1e-9):.0f}x)"),
        ("one spawn program", ", ".join(f"{k} {v:.2f} ms" for k, v in res["spawn_ms"].items())),
        ("typical programs", f"{res['programs_per_s']:.1f}/s (a spawn at level 2 + a sync of 3 levels)"),
    ]
    if res.get("suite_s") is not None:
        rows.append(("suite (pytest time)", f"{res['suite_s']:.1f} s ({res['suite']['tests']} tests, "
                                            f"{res['suite']['failures'] + res['suite']['errors']} failed)"))
    if res.get("fuzz_examples_per_s") is not None:
        rows.append(("fuzz", f"{res['fuzz_examples_per_s']} examples/s on {res['fuzz_jobs']} VMs"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def bench_command(args: argparse.Namespace) -> int:
    note(f"bench: starting the {args.target} target")
    target, boot_s = start_target(args)
    try:
        note(f"bench: agent ready after {boot_s:.2f} s; measuring")
        res = run_bench(target)
        res["boot_s"] = round(boot_s, 3)
        for key in ("machine", "accel", "channel"):
            if key in target.info.extra:
                res[key] = target.info.extra[key]
        image = getattr(target, "kernel", None)
    finally:
        target.close()
    res.update(suite_s=None, fuzz_examples_per_s=None)
    want_suite, want_fuzz = getattr(args, "suite", False), getattr(args, "fuzz", 0.0)
    if (want_suite or want_fuzz) and image is None:
        raise UsageError("bench --suite/--fuzz need the qemu target")
    if want_suite:
        from .bench_runs import suite_seconds
        note("bench: running the default suite once (harness run)")
        res["suite"] = suite_seconds(image)
        res["suite_s"] = res["suite"]["suite_s"]
    if want_fuzz:
        from .bench_runs import fuzz_rate
        note(f"bench: fuzzing for {want_fuzz:g} s on 2 VMs")
        res.update(fuzz_rate(image, want_fuzz))
    print(json.dumps(res, indent=1) if args.json else format_table(res))
    return 0
