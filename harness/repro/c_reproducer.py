"""Turn a program (and what a correct kernel does with it) into a standalone C reproducer.

The C file needs nothing beyond libc (`gcc -static`), so a kernel developer can run it on the machine
where the bug shows, without Python, QEMU or this harness. It rebuilds the same namespace chain,
runs the same steps and prints, per step, what happened and what was expected; exit 1 = reproduced.
A race step is judged per round against what no interleaving may show (harness/race_invariant.py); `./repro N`
runs it for N rounds.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..race_invariant import full_vector, group_key

RUNTIME = Path(__file__).with_name("runtime.c")
RACE_RUNTIME = Path(__file__).with_name("runtime_race.c")
OPS = {"syscall": "OP_SYSCALL", "occupy": "OP_OCCUPY", "release": "OP_RELEASE", "read_file": "OP_READ_FILE",
       "write_file": "OP_WRITE_FILE", "pids": "OP_NOP", "exec": "OP_EXEC", "race": "OP_RACE", "exit": "OP_EXIT",
       "unshare": "OP_UNSHARE", "setns": "OP_SETNS"}
CHILD_MODES = {"report": "CHILD_REPORT", "hold": "CHILD_HOLD", "exit": "CHILD_EXIT", "park": "CHILD_PARK"}
RACER_OPS = ("syscall", "release", "write_file", "read_file", "exit")
PREPARE_OPS = ("syscall", "occupy", "write_file", "read_file", "release")
MAX_PREP, MAX_ERRNOS, MAX_NSPID = 8, 16, 40
DEFAULT_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


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


def _c_ints(values: Sequence[int]) -> str:
    return "{" + ", ".join(str(int(v)) for v in values) + "}" if values else "{0}"


def _c_strings(items: Sequence[str]) -> str:
    return "(const char *const[]){" + ", ".join([*(_c_string(i) for i in items), "0"]) + "}"


def _mems(pairs: Sequence[tuple[int, bytes | int]]) -> str:
    items = []
    for addr, payload in pairs:
        if isinstance(payload, bytes):
            items.append(f"{{{addr:#x}UL, {len(payload)}, {_c_bytes(payload)}}}")
        else:
            items.append(f"{{{addr:#x}UL, {payload}, 0}}")
    return "(const struct mem[]){" + ", ".join(items) + "}" if items else "0"


def _exec_fields(step: dict[str, Any]) -> list[str]:
    argv = [str(a) for a in step.get("argv") or []]
    if not argv:
        raise UsageError("an exec step needs a non-empty argv")
    env = [f"{k}={v}" for k, v in (step.get("env") or {}).items()] or [DEFAULT_ENV]
    timeout = max(1, round(float(step.get("timeout", 10))))
    return [f".argv = {_c_strings(argv)}", f".envp = {_c_strings(env)}", f".timeout = {timeout}"]


def _label(step: dict[str, Any]) -> str:
    op = step["op"]
    if op == "syscall":
        return f"syscall nr {step['nr']}" + (f", child {step['child']}" if step.get("clone") else "")
    if op == "exec":
        return "exec " + " ".join(str(a) for a in step.get("argv") or [])
    return op


def _step(step: dict[str, Any], race: int = -1) -> str:
    op = step["op"]
    if op not in OPS:
        raise UsageError(f"a C reproducer cannot express a {op!r} step yet: replay the JSON reproducer instead")
    if op == "syscall" and step.get("clone") and step.get("child", "report") not in CHILD_MODES:
        raise UsageError(f"a C reproducer cannot express child mode {step.get('child')!r}: replay the JSON instead")
    writes = [(int(a), bytes.fromhex(h)) for a, h in step.get("write", [])]
    reads = [(int(a), int(n)) for a, n in step.get("read", [])]
    data = step.get("data", "").encode() if "hex" not in step else bytes.fromhex(step["hex"])
    regs = ", ".join(f"{int(r) % (1 << 64):#x}UL" for r in (list(step.get("regs", [])) + [0] * 6)[:6])
    fields = [f".op = {OPS[op]}", f".at = {int(step.get('at', 0))}", f".label = {_c_string(_label(step))}",
              f".nr = {int(step.get('nr', 0))}", f".regs = {{{regs}}}", f".nwrites = {len(writes)}",
              f".writes = {_mems(writes)}", f".nreads = {len(reads)}", f".reads = {_mems(reads)}",
              f".clone = {int(bool(step.get('clone')))}",
              f".clone_mode = {CHILD_MODES.get(step.get('child', 'report'), 'CHILD_REPORT')}",
              f".name = {_c_string(step.get('as', step.get('name', step.get('pidns_of'))))}",
              f".pid = {int(step.get('pid', 0))}",
              f".path = {_c_string(step.get('path'))}", f".data = {_c_string(data)}",
              f".data_len = {len(data)}", f".mode = {int(step.get('mode', 0))}", f".race = {race}"]
    if op == "exec":
        fields += _exec_fields(step)
    return "\t{" + ", ".join(fields) + "},"


class _Tables:
    """The C tables: steps[] holds the program's steps, then the steps nested in its races."""

    def __init__(self, steps: Sequence[dict[str, Any]]) -> None:
        self.top = len(steps)
        self.nested: list[str] = []
        self.races: list[str] = []
        self.racers: list[str] = []

    def add(self, step: dict[str, Any]) -> int:
        if step.get("op") == "race":
            raise UsageError("a race step cannot hold another race")
        self.nested.append(_step(step))
        return self.top + len(self.nested) - 1

    def race(self, step: dict[str, Any], expected: dict[str, Any] | None) -> int:
        """Tables for one race step; returns its index in races[]."""
        racers = step.get("racers") or []
        if not racers:
            raise UsageError("a race needs racers")
        setup = [self.add(s) for s in step.get("setup", [])]
        check = [self.add(s) for s in step.get("check", [])]
        first = len(self.racers)
        groups: dict[str, int] = {}
        for local, racer in enumerate(racers):
            self.racers.append(self._racer(racer, len(self.races), local, groups))
        errnos = list((expected or {}).get("errnos", []))[:MAX_ERRNOS]
        self.races.append(f"\t{{.rounds = {max(1, int(step.get('rounds', 1)))}, .first_racer = {first}, "
                          f".nracers = {len(racers)}, .first_setup = {setup[0] if setup else 0}, "
                          f".nsetup = {len(setup)}, .first_check = {check[0] if check else 0}, "
                          f".ncheck = {len(check)}, .checked = {int(expected is not None)}, "
                          f".nerrnos = {len(errnos)}, .errnos = {_c_ints(errnos)}}},")
        return len(self.races) - 1

    def _racer(self, racer: dict[str, Any], race: int, local: int, groups: dict[str, int]) -> str:
        if racer.get("op") not in RACER_OPS:
            raise UsageError(f"a {racer.get('op')!r} step cannot race (racers: {', '.join(RACER_OPS)})")
        prepare = racer.get("prepare") or []
        if len(prepare) > MAX_PREP or any(p.get("op") not in PREPARE_OPS for p in prepare):
            raise UsageError(f"a racer's prepare steps: at most {MAX_PREP}, of {', '.join(PREPARE_OPS)}")
        first_prep = [self.add({**p, "at": racer.get("at", 0)}) for p in prepare]
        index = self.add(racer)
        key = group_key(racer)
        group = -1 if key is None else groups.setdefault(key, len(groups))
        want = full_vector(racer)[:MAX_NSPID]
        return (f"\t{{.step = {index}, .race = {race}, .local = {local}, .cpu = {int(racer.get('cpu', -1))}, "
                f".first_prep = {first_prep[0] if first_prep else 0}, .nprep = {len(prepare)}, "
                f".group = {group}, .nwant = {len(want)}, .want = {_c_ints(want)}, "
                f".pidns_of = {_c_string(racer.get('pidns_of'))}}},")

    def render(self, rows: list[str], chain: dict[str, Any], expects: list[str]) -> list[str]:
        out = [f"#define DEPTH {len(chain.get('levels', []))}", f"#define NSTEPS {self.top}",
               f"#define NALL {self.top + len(self.nested)}"]
        if self.races:
            out += [f"#define NRACES {len(self.races)}", f"#define NRACERS {len(self.racers)}"]
        out += ["static const struct level levels[DEPTH + 1] = {", _levels(chain), "};",
                "static const struct step steps[NALL] = {", *rows, *self.nested, "};",
                "static const struct expect expected[NSTEPS] = {", *expects, "};"]
        if self.races:
            out += ["static const struct race races[NRACES] = {", *self.races, "};",
                    "static const struct racer racers[NRACERS] = {", *self.racers, "};"]
        return out


def _expect(expected: dict[str, Any] | None) -> str:
    if expected is None or "errno" not in expected:
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


def render_c(program: dict[str, Any], expected: Sequence[dict[str, Any] | None], title: str = "") -> str:
    """C source for `program`: `expected[i]` is {errno, nspid?} for a syscall step i, a race's
    race_expectation() for a race step, None = only print it (the C program finds children's depth itself)."""
    steps = program.get("steps", [])
    if len(expected) != len(steps):
        raise UsageError(f"{len(expected)} expectations for {len(steps)} steps")
    chain = program.get("chain") or {"levels": []}
    tables = _Tables(steps)
    rows = [_step(s, tables.race(s, e)) if s.get("op") == "race" else _step(s)
            for s, e in zip(steps, expected, strict=True)]
    source = "\n".join(tables.render(rows, chain, [_expect(e) for e in expected]))
    header = f"/* Reproducer generated by the eclone/clone3 suite{': ' + title if title else ''}. */\n"
    race = RACE_RUNTIME.read_text() if tables.races else ""
    return header + RUNTIME.read_text().replace("/* @TABLES@ */", source).replace("/* @RACE@ */", race)
