"""Where the agent's processes run: all on one CPU, except racers, which spread over every CPU.

The agent and its workers pass each request down a pipe and wait for the reply. On different vCPUs every
hand-over wakes a halted vCPU with an IPI, which under TCG cost ~3.5 ms per worker round trip; on one
vCPU it is a plain context switch. Racers must really run at once, so they take their CPU from the set
the agent started with (the host target may have been given fewer CPUs than the machine has).
"""

from __future__ import annotations

import os

_start_cpus: list[int] = []


def pin_home() -> None:
    """Remember the CPUs this process may use, then keep it (and all it forks) on the first one."""
    global _start_cpus
    _start_cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {_start_cpus[0]})


def race_cpus() -> list[int]:
    """The CPUs racers spread over: those the agent started with (all allowed ones if never pinned)."""
    return list(_start_cpus) or sorted(os.sched_getaffinity(0))
