"""The kernel's own clone3 selftests as a peer: built from the same source tree, run in the same target.

The mutation table compares what our suite kills with what `tools/testing/selftests/clone3/` kills,
so the selftests run through the same agent (`write_file` + `exec`) on the same kernels.

Binaries link libcap statically and glibc dynamically: a fully static one is ~700 KB and the
guest's serial channel moves ~50 KB/s, while the initramfs already carries the host's glibc
(the agent's interpreter needs it), which is exactly the one these are linked against.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import BuildError, EnvError
from .paths import cache_dir
from .programs import install_and_exec_steps, program

if TYPE_CHECKING:
    from harness.targets.base import Target

SELFTESTS = ("clone3", "clone3_clear_sighand", "clone3_set_tid", "clone3_cap_checkpoint_restore")
SELFTEST_DIR = Path("tools/testing/selftests/clone3")
GUEST_DIR = "/tmp/eclone-suite-peers"
_RESULT = re.compile(r"^(ok|not ok) (\d+)\b(.*)$")
_PLAN = re.compile(r"^1\.\.(\d+)$")


@dataclass
class PeerResult:
    """One selftest binary's verdict per numbered case ("ok", "not ok", "skip", or "missing")."""

    binary: str
    status: int
    cases: dict[str, str] = field(default_factory=dict)
    output: str = ""

    @property
    def failed(self) -> list[str]:
        return [name for name, verdict in self.cases.items() if verdict in ("not ok", "missing")]


def parse_ktap(binary: str, stdout: str) -> dict[str, str]:
    """Case id (`binary/N`) -> verdict; cases the plan announces but never reports are "missing".

    Descriptions carry pids that change from run to run, so cases are named by number.
    """
    cases: dict[str, str] = {}
    planned = 0
    for line in stdout.splitlines():
        line = line.strip()
        if plan := _PLAN.match(line):
            planned = int(plan.group(1))
        elif result := _RESULT.match(line):
            verdict = result.group(1)
            if verdict == "ok" and "# SKIP" in result.group(3).upper():
                verdict = "skip"
            cases[f"{binary}/{int(result.group(2))}"] = verdict
    for number in range(1, planned + 1):
        cases.setdefault(f"{binary}/{number}", "missing")
    return cases


def _source_key(src: Path) -> str:
    digest = hashlib.sha256()
    for path in [*sorted(src.glob("*.[ch]")), src.parent / "kselftest.h"]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest.update(subprocess.run(["gcc", "--version"], capture_output=True).stdout)
    return digest.hexdigest()[:16]


def build_selftests(tree: Path) -> dict[str, Path]:
    """Compile the clone3 selftests of `tree` (cached by source and compiler); name -> binary."""
    if shutil.which("gcc") is None:
        raise EnvError("peers need gcc to build the kernel's clone3 selftests (apt-get install gcc libcap-dev)")
    src = tree / SELFTEST_DIR
    if not src.is_dir():
        raise BuildError(f"{src} does not exist: not a Linux source tree with clone3 selftests")
    out = cache_dir() / "peers" / _source_key(src)
    out.mkdir(parents=True, exist_ok=True)
    binaries = {}
    for name in SELFTESTS:
        binary = out / name
        if not binary.exists():
            tmp = binary.with_suffix(".tmp")
            argv = ["gcc", "-O2", "-std=gnu99", "-s", f"-I{src.parent}", "-o", str(tmp), str(src / f"{name}.c"),
                    "-Wl,-Bstatic", "-lcap", "-Wl,-Bdynamic"]
            built = subprocess.run(argv, capture_output=True, text=True)
            if built.returncode != 0:
                raise BuildError(f"gcc failed on {name}.c: {built.stderr.strip().splitlines()[-1:]}"
                                 " (libcap-dev installed?)")
            tmp.rename(binary)
        binaries[name] = binary
    return binaries


def run_selftests(target: Target, binaries: dict[str, Path], timeout: int = 25) -> list[PeerResult]:
    """Copy each binary into the target and run it in the agent's root namespace."""
    results = []
    for name, binary in binaries.items():
        path = f"{GUEST_DIR}-{name}"
        steps = install_and_exec_steps(binary.read_bytes(), path, timeout=timeout)
        reply = target.run(program(steps), timeout=timeout + 60)
        written, run = reply["steps"]
        if written.get("errno"):
            raise EnvError(f"could not copy {name} into the target (errno {written['errno']})")
        results.append(PeerResult(binary=name, status=run["status"], cases=parse_ktap(name, run["stdout"]),
                                  output=run["stdout"] + run["stderr"]))
    return results


def peer_kills(baseline: list[PeerResult], mutant: list[PeerResult]) -> list[str]:
    """Cases that pass on the baseline kernel and fail on the mutant: the selftests' kills."""
    passing = {case for result in baseline for case, verdict in result.cases.items() if verdict == "ok"}
    return sorted(case for result in mutant for case in result.failed if case in passing)
