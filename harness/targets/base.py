"""The one interface tests see, whatever runs the programs."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..crash_scan import Crash


@dataclass
class TargetInfo:
    """What a target tells about itself once its agent is ready."""

    name: str  # "qemu" or "host"
    kernel: str  # uname -r of the kernel under test
    pid_max: int
    root_level: int  # nesting level of the agent's root pid namespace (0 in a guest)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def max_depth(self) -> int:
        """How many pid namespaces may be nested below the agent's root (MAX_PID_NS_LEVEL is 32)."""
        return 32 - self.root_level


class Target(abc.ABC):
    """Runs programs (see harness/agent/PROGRAMS.md) and reports their results."""

    info: TargetInfo
    boots: int = 0  # how many times the kernel under test was (re)started (a VM after a crash); 0 for the host

    @abc.abstractmethod
    def start(self) -> None:
        """Bring the agent up (boot a VM, spawn a sandbox); sets self.info."""

    @abc.abstractmethod
    def run(self, program: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        """Run one program and return the agent's result.

        Raises ProgramError when the agent could not carry it out, GuestCrash when the kernel
        crashed meanwhile (the target is then restarted before the next run), AgentError on timeout.
        """

    @abc.abstractmethod
    def ping(self, timeout: float = 5.0) -> None:
        """One no-op round trip (benchmarks, liveness)."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Drop every cached namespace chain and held process in the agent."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop the agent and free everything (idempotent, safe in finally blocks)."""

    def require_features(self, agent_info: dict[str, Any]) -> None:
        """Refuse a kernel that lacks what the suite needs (ConfigError naming the CONFIG_), closing first."""
        from ..errors import ConfigError
        from ..kernel_features import check_features
        try:
            check_features(agent_info)
        except ConfigError:
            self.close()
            raise

    def take_crash(self) -> Crash | None:
        """A kernel crash seen after the last reply (between tests); the target restarts itself. None: none,
        or a target without a console (the host)."""
        return None

    def console_excerpt(self) -> str:
        """Recent kernel console output, for failure reports (empty where there is no console)."""
        return ""

    def console_mark(self) -> Any:
        """An opaque position in the console, taken when a test starts (None: no console)."""
        return None

    def console_since(self, mark: Any, lines: int = 60) -> str | None:
        """The last `lines` console lines written after `mark` (None: this target has no console)."""
        return None

    def __enter__(self) -> Target:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
