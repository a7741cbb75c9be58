"""A target started before pytest, handed to the plugin of the same process.

`harness run` boots the kernel before pytest starts, so a kernel that cannot serve gives its one error
line and exit 2 instead of a pytest session header, an Exit banner and empty reports; the plugin then
uses that VM instead of booting a second one. (No hypothesis or pytest imports here: run.py imports this
before pytest.main, and importing hypothesis first would defeat pytest's assertion rewriting.)
"""

from __future__ import annotations

from .base import Target

_started: list[Target] = []


def hand_over(target: Target) -> None:
    """Give a started target to the next pytest session in this process."""
    _started[:] = [target]


def take() -> Target | None:
    """The handed-over target, once (None when there is none)."""
    return _started.pop() if _started else None
