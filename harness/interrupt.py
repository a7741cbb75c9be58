"""SIGTERM and SIGHUP end a run the way Ctrl-C does.

`timeout(1)`, a cancelled CI job or a closed terminal send these; by default they kill Python on the spot,
skipping every `finally`, pytest's session end and `atexit` (the VMs' temp dirs stayed behind). Turned into
KeyboardInterrupt, they take the Ctrl-C path: pytest ends the session as interrupted, targets close, child
pytest process groups are stopped, `harness.vm.close_all` runs at exit.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """KeyboardInterrupt raised for a termination signal; `signum` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


def interrupt_on_termination() -> None:
    """Install the handlers (main thread only; a signal someone already handles or ignores, e.g. SIGHUP
    under nohup, is left alone). Idempotent."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in SIGNALS:
        if signal.getsignal(sig) == signal.SIG_DFL:
            signal.signal(sig, _raise)
