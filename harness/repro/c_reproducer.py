"""Turn a program (and what a correct kernel does with it) into a standalone C reproducer.

The C file needs nothing beyond libc (`gcc -static`), so a kernel developer can run it on the machine
where the bug shows, without Python, QEMU or this harness. It rebuilds the same namespace chain,
runs the same steps and prints, per step, what happened and what was expected; exit 1 = reproduced.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import UsageError

RUNTIME = Path(__file__).with_name("runtime.c")
OPS = {"syscall": "OP_SYSCALL", "occupy": "OP_OCCUPY", "release": "OP_RELEASE", "read_file": "OP_READ_FILE",
       "write_file": "OP_WRITE_FILE", "pids": "OP_NOP"}
CHILD_MODES = {"report": "CHILD_REPORT", "hold": "CHILD_HOLD", "exit": "CHILD_EXIT"}


def _c_string(text: str | bytes | None) -> str:
    """A C string literal; bytes outside printable ASCII as octal escapes (exact for binary data)."""
    if text is None:
        return "0"
    data = text.encode() if isinstance(text, str) else text
    out = []
    for byte in data:
        char = chr(byte)
        out.append("\\" + char if char in '"\\?' else char if 32 <= byte < 127 else f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def _c_bytes(data: bytes) -> str:
    return "(const unsigned char[]){" + ", ".join(str(b) for b in data) + "}" if data else "0"


def _mems(pairs: Sequence[tuple[int, bytes | int]]) -> str:
    items = []
    for addr, payload in pairs:
        if isinstance(payload, bytes):
            items.append(f"{{{addr:#x}UL, {len(payload)}, {_c_bytes(payload)}}}")
        else:
            items.append(f"{{{addr:#x}UL, {payload}, 0}}")
    return "(const struct mem[]){" + ", ".join(items) + "}" if items else "0"


def _step(step: dict[str, Any], recorded: dict[str, Any] | None) -> str:
    op = step["op"]
    if op not in OPS:
        raise UsageError(f"a C reproducer cannot express a {op!r} step yet: replay the JSON reproducer instead")
    at = int(step.get("at", 0))
    writes = [(int(a), bytes.fromhex(h)) for a, h in step.get("write", [])]
    reads = [(int(a), int(n)) for a, n in step.get("read", [])]
    child = (recorded or {}).get("child") or {}
    deeper = max(0, len(child.get("nspid") or []) - (at + 1))
    data = step.get("data", "").encode() if "hex" not in step else bytes.fromhex(step["hex"])
    regs = ", ".join(f"{int(r) % (1 << 64):#x}UL" for r in (list(step.get("regs", [])) + [0] * 6)[:6])
    label = f"{op} nr {step['nr']}" if op == "syscall" else op
    fields = [f".op = {OPS[op]}", f".at = {at}", f".label = {_c_string(label)}", f".nr = {int(step.get('nr', 0))}",
              f".regs = {{{regs}}}", f".nwrites = {len(writes)}", f".writes = {_mems(writes)}",
              f".nreads = {len(reads)}", f".reads = {_mems(reads)}", f".clone = {int(bool(step.get('clone')))}",
              f".clone_mode = {CHILD_MODES[step.get('child', 'report')]}", f".deeper = {deeper}",
              f".name = {_c_string(step.get('as', step.get('name')))}", f".pid = {int(step.get('pid', 0))}",
              f".path = {_c_string(step.get('path'))}", f".data = {_c_string(data)}",
              f".data_len = {len(data)}", f".mode = {int(step.get('mode', 0))}"]
    return "\t{" + ", ".join(fields) + "},"


def _expect(expected: dict[str, Any] | None) -> str:
    if expected is None:
        return "\t{0},"
    nspid = list(expected.get("nspid") or [])
    values = "{" + ", ".join(str(p) for p in nspid) + "}" if nspid else "{0}"
    return f"\t{{1, {int(expected.get('errno', 0))}, {len(nspid)}, {values}}},"


def _levels(chain: dict[str, Any]) -> str:
    rows = ["\t{0, 0, 0, {0}},"]
    for level in chain.get("levels", []):
        caps = level.get("caps")
        listed = "{" + ", ".join(str(c) for c in caps) + "}" if caps else "{0}"
        rows.append(f"\t{{{int(bool(level.get('userns')))}, {int(caps is not None)}, {len(caps or [])}, {listed}}},")
    return "\n".join(rows)


def render_c(program: dict[str, Any], expected: Sequence[dict[str, Any] | None],
             recorded: Sequence[dict[str, Any]] = (), title: str = "") -> str:
    """C source for `program`: `expected[i]` is {errno, nspid?} for step i (None = only print it),
    `recorded[i]` the result seen when the program failed (used to know how deep each child is)."""
    steps = program.get("steps", [])
    if len(expected) != len(steps):
        raise UsageError(f"{len(expected)} expectations for {len(steps)} steps")
    chain = program.get("chain") or {"levels": []}
    recorded = list(recorded) + [None] * (len(steps) - len(recorded))  # type: ignore[list-item]
    tables = [
        f"#define DEPTH {len(chain.get('levels', []))}",
        f"#define NSTEPS {len(steps)}",
        "static const struct level levels[DEPTH + 1] = {", _levels(chain), "};",
        "static const struct step steps[NSTEPS] = {",
        *(_step(s, r) for s, r in zip(steps, recorded, strict=True)), "};",
        "static const struct expect expected[NSTEPS] = {", *(_expect(e) for e in expected), "};",
    ]
    header = f"/* Reproducer generated by the eclone/clone3 suite{': ' + title if title else ''}. */\n"
    runtime = RUNTIME.read_text()
    return header + runtime.replace("/* @TABLES@ */", "\n".join(tables))
