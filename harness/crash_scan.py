"""Kernel console text -> Crash(title, excerpt, kind): the only place crash patterns live.

Titles follow syzkaller's pkg/report ("KASAN: slab-out-of-bounds Read in alloc_pid",
"WARNING in alloc_pid") so that the same bug gets the same title across runs: timestamps,
addresses and pids never reach a title. The scanner is line based and incremental, because
the VM feeds it console chunks as they arrive and wants to know about a crash at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_EXCERPT_LINES = 60

_PREFIX = re.compile(r"^(?:\[\s*\d+\.\d+\]\s?)?(?:\[\s*[TC]\d+\]\s?)?")
_FRAME = re.compile(r"^\s*(?:\[<[0-9a-f]+>\]\s*)?([A-Za-z0-9_.$]+)\+0x[0-9a-f]+/0x[0-9a-f]+")
_RIP = re.compile(r"RIP: [0-9a-f]{4}:(?:\[<[0-9a-f]+>\]\s*)?([A-Za-z0-9_.$]+)\+0x")
_LOCK_AT = re.compile(r", at: (?:\[<[0-9a-f]+>\]\s*)?([A-Za-z0-9_.$]+)\+0x")
# Frames that belong to the reporting machinery, not to the code at fault.
_SKIP_FRAME = re.compile(
    r"^(dump_stack\w*|show_stack|__dump_stack|panic|__warn|warn_\w+|report_bug|handle_bug|"
    r"exc_\w+|asm_\w+|print_\w+|kasan_\w+|__kasan_\w+|__asan_\w+|kcsan_\w+|__tsan_\w+|"
    r"ubsan_\w+|__ubsan_\w+|check_\w+|validate_chain|__lock_acquire|lock_acquire|lock_release|"
    r"__might_\w+|might_\w+|debug_\w+|schedule\w*|__schedule|io_schedule\w*|context_switch|"
    r"__switch_to\w*|do_raw_\w+|_raw_\w+|mutex_lock\w*|__mutex_lock\w*|rwsem_\w+|down_\w+|"
    r"wait_for_\w+|__wait_for_\w+|rcu_\w+|sysvec_\w+|__sysvec_\w+|irq_exit\w*|__irq_exit\w*|"
    r"native_\w+|kmem_cache_\w+|__kmalloc\w*|kmalloc\w*|mark_lock\w*|entry_SYSCALL\w*|do_syscall_64|x64_sys_call|ret_from_fork\w*|kthread)$"
)
_END_MARKERS = ("---[ end trace", "---[ end Kernel panic", "=" * 20)
_CONSEQUENCES = re.compile(
    r"Fatal exception|panic_on_warn set|softlockup: hung tasks|hung_task: blocked tasks|"
    r"Attempted to kill the idle task|Fatal machine check|Oops - BUG"
)
_CUT_HERE = "------------[ cut here ]------------"


@dataclass(frozen=True)
class Crash:
    """One kernel report: a stable title, the report's lines, and a coarse kind."""

    title: str
    excerpt: str
    kind: str  # oops, bug, kasan, kcsan, ubsan, warning, lockdep, panic, hang, lockup, stall


def strip_prefix(line: str) -> str:
    """Drop the printk timestamp and caller id, which must never reach a title."""
    return _PREFIX.sub("", line.rstrip("\r\n"), count=1)


def _first_frame(lines: list[str]) -> str | None:
    """The first reliable stack frame after a call trace header that is not reporting code."""
    in_trace = False
    for line in lines:
        if "Call Trace:" in line or line.strip() == "<TASK>":
            in_trace = True
            continue
        match = _FRAME.match(line)
        if in_trace and match and not line.lstrip().startswith("?"):
            if not _SKIP_FRAME.match(match.group(1).split(".")[0]):
                return match.group(1)
    return None


def _rip(lines: list[str]) -> str | None:
    for line in lines:
        match = _RIP.search(line)
        if match:
            return match.group(1)
    return None


def _where(lines: list[str], *finders: Callable[[list[str]], str | None]) -> str:
    for find in finders:
        func = find(lines)
        if func:
            return f" in {func}"
    return ""


def _lock_site(lines: list[str]) -> str | None:
    for line in lines:
        match = _LOCK_AT.search(line)
        if match:
            return match.group(1)
    return None


def _kasan(m: re.Match, lines: list[str]) -> str:
    access = next((w for line in lines[1:6] for w in ("Read", "Write") if line.startswith(w)), "")
    return f"KASAN: {m.group(1)} {access} in {m.group(2)}".replace("  ", " ")


def _warning(m: re.Match, lines: list[str]) -> str:
    func = m.group(1) or _rip(lines) or _first_frame(lines)
    return f"WARNING in {func}" if func else "WARNING"


def _panic(m: re.Match, lines: list[str]) -> str:
    msg = re.sub(r"\s*exitcode=0x[0-9a-f]+", "", m.group(1)).strip()
    return f"kernel panic: {msg}"


def _generic_bug(m: re.Match, lines: list[str]) -> str:
    text = re.sub(r"\b(0x)?[0-9a-f]{6,}\b|\s*\[.*\]$|\d+", "", m.group(1)).rstrip(" :,-!")
    return f"BUG: {text}{_where(lines, _rip, _first_frame)}"


_Titler = Callable[[re.Match, list[str]], str]
# (pattern searched in the stripped header line, kind, title builder); the first match wins.
PATTERNS: list[tuple[re.Pattern, str, _Titler]] = [
    (re.compile(r"BUG: KASAN: ([\w-]+) in ([\w.$]+)"), "kasan", _kasan),
    (re.compile(r"BUG: KFENCE: ([\w-]+ [\w-]+) in ([\w.$]+)"), "kasan",
     lambda m, lines: f"KFENCE: {m.group(1)} in {m.group(2)}"),
    # KCSAN's other bug type (ASSERT_EXCLUSIVE_*), and a race at unknown origin (one %pS frame, offset cut)
    (re.compile(r"BUG: KCSAN: (assert: race|[\w-]+) in ([\w.$]+)(?:\+0x[0-9a-f]+/0x[0-9a-f]+)?(?: / ([\w.$]+))?$"),
     "kcsan", lambda m, lines: f"KCSAN: {m.group(1)} in {m.group(2)}" + (f" / {m.group(3)}" if m.group(3) else "")),
    (re.compile(r"BUG: KCSAN: ([\w-]+) in (\S+)(?: / (\S+))?"), "kcsan",
     lambda m, lines: f"KCSAN: {m.group(1)} in {m.group(2)}" + (f" / {m.group(3)}" if m.group(3) else "")),
    (re.compile(r"UBSAN: ([\w-]+) in (\S+?)(?::\d+)*$"), "ubsan",
     lambda m, lines: f"UBSAN: {m.group(1)} in {m.group(2)}"),
    (re.compile(r"WARNING: possible circular locking dependency detected"), "lockdep",
     lambda m, lines: f"possible deadlock{_where(lines, _lock_site, _first_frame)}"),
    (re.compile(r"WARNING: possible recursive locking detected"), "lockdep",
     lambda m, lines: f"possible deadlock{_where(lines, _lock_site, _first_frame)}"),
    (re.compile(r"WARNING: inconsistent lock state"), "lockdep",
     lambda m, lines: f"inconsistent lock state{_where(lines, _lock_site, _first_frame)}"),
    # lockdep's irq-safety reports are deadlocks too (titles as syzkaller's)
    (re.compile(r"WARNING: possible irq lock inversion dependency detected|"
                r"WARNING: \w+-safe -> \w+-unsafe lock order detected"), "lockdep",
     lambda m, lines: f"possible deadlock{_where(lines, _lock_site, _first_frame)}"),
    (re.compile(r"\[ BUG: Invalid wait context \]"), "lockdep",
     lambda m, lines: f"BUG: Invalid wait context{_where(lines, _lock_site, _first_frame)}"),
    (re.compile(r"WARNING: (chain_key collision|Nested lock was not taken|bad contention detected!|"
                r"\S+ still has locks held!)"), "lockdep",
     lambda m, lines: f"{re.sub(r'^.* still', 'still', m.group(1)).rstrip('!')}{_where(lines, _first_frame)}"),
    (re.compile(r"WARNING: (suspicious RCU usage|bad unlock balance detected!|held lock freed!|"
                r"lock held when returning to user space!)"), "lockdep",
     lambda m, lines: f"{m.group(1).rstrip('!')}{_where(lines, _first_frame)}"),
    (re.compile(r"WARNING: CPU: \d+ PID: \d+ at \S+ (?:([\w.$]+)\+0x)?"), "warning", _warning),
    (re.compile(r"WARNING: at \S+ (?:([\w.$]+)\+0x)?"), "warning", _warning),
    (re.compile(r"BUG: soft lockup"), "lockup",
     lambda m, lines: f"BUG: soft lockup{_where(lines, _rip, _first_frame)}"),
    (re.compile(r"BUG: workqueue lockup"), "lockup", lambda m, lines: "BUG: workqueue lockup"),
    (re.compile(r"BUG: sleeping function called from invalid context"), "bug",
     lambda m, lines: f"BUG: sleeping function called from invalid context{_where(lines, _first_frame)}"),
    (re.compile(r"BUG: (?:unable to handle )?kernel NULL pointer dereference"), "oops",
     lambda m, lines: f"BUG: kernel NULL pointer dereference{_where(lines, _rip, _first_frame)}"),
    (re.compile(r"BUG: unable to handle (?:page fault|kernel paging request)"), "oops",
     lambda m, lines: f"BUG: unable to handle kernel paging request{_where(lines, _rip, _first_frame)}"),
    (re.compile(r"general protection fault"), "oops",
     lambda m, lines: f"general protection fault{_where(lines, _rip, _first_frame)}"),
    (re.compile(r"kernel BUG at \S+"), "bug", lambda m, lines: f"kernel BUG{_where(lines, _rip, _first_frame)}"),
    (re.compile(r"BUG: (.+)"), "bug", _generic_bug),
    (re.compile(r"^Oops: "), "oops", lambda m, lines: f"Oops{_where(lines, _rip, _first_frame)}"),
    (re.compile(r"INFO: task \S+ blocked for more than \d+ seconds"), "hang",
     lambda m, lines: f"INFO: task hung{_where(lines, _first_frame)}"),
    (re.compile(r"INFO: rcu_\w+ (?:self-)?detected stall"), "stall",
     lambda m, lines: f"INFO: rcu detected stall{_where(lines, _rip, _first_frame)}"),
    (re.compile(r"Kernel panic - not syncing: (.*)"), "panic", _panic),
]


def _match_header(line: str) -> tuple[re.Match, str, _Titler] | None:
    for pattern, kind, titler in PATTERNS:
        match = pattern.search(line)
        if match:
            return match, kind, titler
    return None


@dataclass
class _Report:
    match: re.Match
    kind: str
    titler: _Titler
    lines: list[str]

    def crash(self) -> Crash:
        return Crash(self.titler(self.match, self.lines), "\n".join(self.lines), self.kind)


@dataclass
class CrashScanner:
    """Feed console text in any chunks; `.crash` is the first report, `.crashes` all of them."""

    crashes: list[Crash] = field(default_factory=list)
    _partial: str = ""
    _prev: str = ""
    _open: _Report | None = None

    @property
    def crash(self) -> Crash | None:
        """The first crash seen so far, including a report still being printed."""
        if self.crashes:
            return self.crashes[0]
        return self._open.crash() if self._open else None

    def feed(self, chunk: str) -> None:
        """Add console text; complete lines are scanned at once, a partial line waits."""
        text = self._partial + chunk
        lines = text.split("\n")
        self._partial = lines.pop()
        for line in lines:
            self._line(strip_prefix(line))

    def close(self) -> None:
        """End of the console: scan a trailing partial line and finish an open report."""
        if self._partial:
            self._line(strip_prefix(self._partial))
            self._partial = ""
        self._finish()

    def _finish(self) -> None:
        if self._open:
            self.crashes.append(self._open.crash())
            self._open = None

    def _line(self, line: str) -> None:
        prev, self._prev = self._prev, line
        if self._open:
            if _CONSEQUENCES.search(line) or (line.startswith("Oops: ") and self._open.kind == "oops"):
                self._open.lines.append(line)
                return
            if _match_header(line) is None:
                self._open.lines.append(line)
                if line.startswith(_END_MARKERS) or len(self._open.lines) >= MAX_EXCERPT_LINES:
                    self._finish()
                return
            self._finish()
        if self.crashes and _CONSEQUENCES.search(line):
            return  # "Kernel panic - not syncing: Fatal exception" after an oops: same crash
        found = _match_header(line)
        if found:
            match, kind, titler = found
            head = [prev] if prev == _CUT_HERE or prev.startswith("=" * 20) else []
            self._open = _Report(match, kind, titler, [*head, line])


def scan(text: str) -> Crash | None:
    """The first crash in a whole console log, or None for a clean one."""
    scanner = CrashScanner()
    scanner.feed(text)
    scanner.close()
    return scanner.crash
