"""Progress for long steps: one live line on a terminal, plain lines in CI logs."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Reports what a long step is doing without flooding a CI log.

    On a tty the line is rewritten in place; elsewhere a line is printed at most every
    `interval` seconds, so a 10-minute kernel build leaves ~40 lines, not 40000.
    """

    def __init__(self, title: str, stream: TextIO | None = None, interval: float = 15.0) -> None:
        self.title = title
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.interval = interval
        self.start = time.monotonic()
        self._last_print = 0.0
        self._shown = False

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def update(self, detail: str) -> None:
        """Show `detail` (e.g. the file being compiled) if it is time to."""
        now = time.monotonic()
        line = f"{self.title}: {detail} [{self.elapsed():.0f}s]"
        if self.live:
            width = 100
            self.stream.write("\r" + line[:width].ljust(width))
            self.stream.flush()
            self._shown = True
        elif now - self._last_print >= self.interval:
            self.stream.write(line + "\n")
            self.stream.flush()
            self._last_print = now

    def done(self, detail: str = "done") -> None:
        if self.live and self._shown:
            self.stream.write("\r" + " " * 100 + "\r")
        self.stream.write(f"{self.title}: {detail} ({self.elapsed():.1f}s)\n")
        self.stream.flush()


def note(message: str) -> None:
    """A one-off status line on stderr (stdout stays for results)."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
