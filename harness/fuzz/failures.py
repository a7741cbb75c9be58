"""Failure titles and dedupe: the same bug found by many examples, workers and runs is one failure.

A kernel crash is titled by crash_scan (syzkaller-style: no addresses, pids or timestamps), whatever test
hit it. A wrong result is titled by the test (without its fuzz round) and the first line of the
assertion, with numbers replaced by N: different examples of one bug name different pids and levels.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from harness import report_sections

from ..crash_scan import scan
from ..errors import GuestCrash

CRASH, WRONG, ERROR = "crash", "wrong result", "error"
_ROUND = re.compile(r"\[fuzz\d+\]$|-fuzz\d+(?=\]$)")
_NUMBER = re.compile(r"\b0x[0-9a-fA-F]+\b|\d+")
_NUMBER_LIST = re.compile(r"\[[N?,\s]*\]|\((?:N|\?)(?:[,\s]+(?:N|\?))*,?\)")  # vectors: their length varies too
_REPRO = re.compile(r"repro\s+(\S+\.json)")
MAX_LINE = 200


def base_nodeid(nodeid: str) -> str:
    """The node id without the round parameter the fuzz plugin adds (test[eclone-fuzz3] -> test[eclone])."""
    return _ROUND.sub("", nodeid)


def normalise(line: str) -> str:
    """Numbers (pids, levels, addresses) and pid vectors vary between examples of one bug: they do not name it."""
    return _NUMBER_LIST.sub(lambda m: m.group(0)[0] + "..." + m.group(0)[-1], _NUMBER.sub("N", line.strip()))[:MAX_LINE]


def first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")


def leaf_exceptions(exc: BaseException) -> list[BaseException]:
    """Hypothesis reports several distinct failures (or a flaky one) as an exception group: its leaves."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in leaf_exceptions(sub)]
    return [exc]


def _kind(exc: BaseException) -> str:
    # pytest.fail() raises Failed, an outcome rather than an AssertionError: it states a wrong result too
    return WRONG if isinstance(exc, AssertionError) or type(exc).__name__ == "Failed" else ERROR


def failure_titles(test: str, sections: list[tuple[str, str]], exc: BaseException | None,
                   longrepr: str = "") -> list[tuple[str, str]]:
    """(title, kind) for each failure a test report holds: one crash, or one per distinct exception.

    Every failed test's report has a console section (what the kernel printed meanwhile, often nothing):
    it makes the failure a crash only when it holds a crash report, or when the test failed on the guest
    crash itself."""
    console = next((text for name, text in sections if name == report_sections.CONSOLE), None)
    crash = scan(console) if console else None
    if crash is not None:
        return [(crash.title, CRASH)]
    if isinstance(exc, GuestCrash) or first_line(longrepr).startswith(report_sections.CRASH_PREFIX):
        title = exc.title if isinstance(exc, GuestCrash) else first_line(longrepr).removeprefix(
            report_sections.CRASH_PREFIX)
        return [(title or "kernel crash (no title)", CRASH)]
    if exc is None:
        return [(f"{test}: {normalise(first_line(longrepr))}", ERROR)]
    titles = []
    for leaf in leaf_exceptions(exc):
        line = f"{type(leaf).__name__}: {first_line(str(leaf))}".rstrip(": ")
        titles.append((f"{test}: {normalise(line)}", _kind(leaf)))
    return list(dict.fromkeys(titles))


def reproducer(sections: list[tuple[str, str]]) -> str | None:
    """The JSON reproducer the suite's plugin saved for the failed test, from its report section."""
    for name, text in sections:
        if name == report_sections.REPRODUCER and (match := _REPRO.search(text)):
            return match.group(1)
    return None


@dataclass
class Failure:
    """One distinct failure of the session and how often it was seen."""

    title: str
    kind: str
    test: str
    count: int
    first_seen: float  # seconds since the session started
    first_seen_at: str  # local time, for people comparing with the console log
    reproducer: str | None
    message: str  # the first report's text (truncated), the crash excerpt for a crash
    tests: list[str] = field(default_factory=list)  # every test that hit it (crashes can come from many)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Deduper:
    """Collects failure events (see plugin.py) into distinct failures, in the order they were first seen."""

    def __init__(self, started: float) -> None:
        self.started = started  # wall clock (time.time()) when the fuzz session began
        self.failures: dict[str, Failure] = {}

    def add(self, event: dict[str, Any]) -> None:
        for title, kind in event.get("failures", []):
            seen = self.failures.get(title)
            if seen is None:
                self.failures[title] = Failure(
                    title=title, kind=kind, test=event["test"], count=1,
                    first_seen=max(0.0, event["t"] - self.started),
                    first_seen_at=time.strftime("%H:%M:%S", time.localtime(event["t"])),
                    reproducer=event.get("reproducer"), message=event.get("message", ""), tests=[event["test"]])
                continue
            seen.count += 1
            if event["test"] not in seen.tests:
                seen.tests.append(event["test"])
            if seen.reproducer is None:
                seen.reproducer = event.get("reproducer")

    def distinct(self) -> list[Failure]:
        return sorted(self.failures.values(), key=lambda f: f.first_seen)

    def crashes(self) -> int:
        return sum(f.kind == CRASH for f in self.failures.values())
