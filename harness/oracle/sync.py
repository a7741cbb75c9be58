"""Build the model of a chain from what the agent reports: the chain reply, a `pids` step with pid
namespace inodes, and `ns_last_pid` read at every level (the cursor is ns_last_pid + 1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..programs import read_file_step
from .model import ChainState, build_chain_state

NS_LAST_PID = "/proc/sys/kernel/ns_last_pid"


def sync_steps(depth: int) -> list[dict[str, Any]]:
    """Steps whose results `observe` reads: every task with its pid namespace, then each level's cursor."""
    return [{"op": "pids", "ns": True}] + [read_file_step(NS_LAST_PID, at=k) for k in range(depth + 1)]


@dataclass(frozen=True)
class Observation:
    """What one run of `sync_steps` saw: the model state, and each level's pid namespace inode."""

    state: ChainState
    ns: tuple[int, ...]
    tasks: tuple[tuple[int, ...], ...]  # NSpid of every task in the chain's own namespaces (levels >= 1)


def level_namespaces(workers: list[list[int]], nspids: list[list[int]], inodes: list[int]) -> tuple[int, ...]:
    """Pid namespace inode of level 0 (tasks with a one-entry NSpid) and of each worker's level."""
    by_vector = {tuple(v): ino for v, ino in zip(nspids, inodes, strict=True)}
    root = next(ino for v, ino in zip(nspids, inodes, strict=True) if len(v) == 1)
    return (root, *(by_vector[tuple(w)] for w in workers))


def observe(base: ChainState, workers: list[list[int]], results: list[dict[str, Any]]) -> Observation:
    """The state `sync_steps` results describe, on top of `base` (levels, owners, creds, pid_max).

    Level 0 is shared by every chain: all tasks count there. Level k >= 1 counts the tasks whose pid
    namespace is the chain's level k or deeper (other chains have their own namespaces at that depth).
    """
    pids_result, cursor_results = results[0], results[1:]
    nspids, inodes = pids_result["nspids"], pids_result["ns"]
    ns = level_namespaces(workers, nspids, inodes)
    depth_of = {ino: k for k, ino in enumerate(ns) if k > 0}
    state = base.copy()
    for level in state.levels:
        level.used = set()
    mine = []
    for vector, ino in zip(nspids, inodes, strict=True):
        state.levels[0].used.add(vector[0])
        k = depth_of.get(ino)
        if k is None:
            continue
        mine.append(tuple(vector))
        for j in range(1, k + 1):
            state.levels[j].used.add(vector[j])
    for level, res in zip(state.levels, cursor_results, strict=True):
        level.cursor = int(res["data"]) + 1
    return Observation(state, ns, tuple(sorted(mine)))


def chain_base(spec: dict, reply_chain: dict[str, Any], root_level: int, shared: set[int]) -> ChainState:
    """The static part of the model from a program reply's `chain` (pid_maxes; owners and creds from spec)."""
    return build_chain_state(spec, list(reply_chain["pid_maxes"]), root_level, shared)
