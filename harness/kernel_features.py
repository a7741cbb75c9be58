"""Does the kernel under test have what the suite needs? Read from the agent's `features` report."""

from __future__ import annotations

from typing import Any

from .errors import ConfigError

# feature key -> (CONFIG_ option, how the agent saw it missing, what the suite needs it for)
REQUIRED = (
    ("pid_ns", "CONFIG_PID_NS", "unshare(CLONE_NEWPID) fails", "pid namespaces"),
    ("user_ns", "CONFIG_USER_NS", "no /proc/self/ns/user", "user namespaces"),
    ("proc_sysctl", "CONFIG_PROC_SYSCTL", "no /proc/sys/kernel/pid_max", "/proc/sys/kernel"),
)
# not fatal: only the tests that move a level's allocation cursor (`occupy`) need it
OPTIONAL = {
    "ns_last_pid": ("CONFIG_CHECKPOINT_RESTORE", "no /proc/sys/kernel/ns_last_pid"),
}


def check_features(info: dict[str, Any]) -> None:
    """ConfigError (one line naming every missing CONFIG_ option) unless the required features are there.

    `info` is the agent's ready info; an agent that reports no `features` is not judged.
    """
    feats = info.get("features")
    if not isinstance(feats, dict):
        return
    missing = [(opt, why, need) for key, opt, why, need in REQUIRED if not feats.get(key, False)]
    if not missing:
        return
    lacks = ", ".join(f"{opt} ({why})" for opt, why, _ in missing)
    needs = " and ".join(need for _, _, need in missing)
    raise ConfigError(f"kernel lacks {lacks}: the suite needs {needs}")


def missing_optional(info: dict[str, Any], key: str) -> str | None:
    """A skip reason when the optional feature `key` is known to be missing, else None."""
    feats = info.get("features")
    if not isinstance(feats, dict) or feats.get(key, True):
        return None
    opt, why = OPTIONAL[key]
    return f"kernel lacks {opt} ({why})"
