"""Predictions the oracle made for calls whose outcome disagreed with them, while the current test runs: the
expectation of its C reproducer when the test's assertion is not a plain `==` (the state machines). No imports,
so the oracle can note a prediction without depending on the reproducer code."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NOTED: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (the step's result, the expectation: errno, nspid?)


def note(result: dict[str, Any], errno: int, nspid: tuple[int | None, ...] | None) -> None:
    """The oracle expected `errno` (and, if every level is known, that NSpid) where the kernel gave `result`."""
    expect: dict[str, Any] = {"errno": errno}
    if errno == 0 and nspid and all(p is not None for p in nspid):
        expect["nspid"] = list(nspid)
    NOTED.append((result, expect))


def clear() -> None:
    NOTED.clear()
