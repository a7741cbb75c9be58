"""Hypothesis settings profiles for the suite: `ci` (default), `dev` and `fuzz`.

`ci` is bounded and derandomised so a normal run is reproducible and fits its time budget;
`dev` explores more with a local example database; `fuzz` runs long and keeps its corpus
(issue 8's `harness fuzz` points it at a shared database). Choose with
`--hypothesis-profile NAME` (hypothesis's own pytest option) or ECLONE_SUITE_HYPOTHESIS.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings
from hypothesis.database import DirectoryBasedExampleDatabase

from .paths import cache_dir

# Programs run in a VM: a single example can take tens of ms, so per-example deadlines are off.
_SLOW_OK = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]

PROFILES = {
    "ci": {"max_examples": 25, "derandomize": True, "database": None, "deadline": None,
           "suppress_health_check": _SLOW_OK, "stateful_step_count": 50, "print_blob": False,
           "phases": [Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink]},
    "dev": {"max_examples": 200, "deadline": None, "suppress_health_check": _SLOW_OK,
            "stateful_step_count": 100, "print_blob": True},
    "fuzz": {"max_examples": 1_000_000, "deadline": None, "suppress_health_check": _SLOW_OK,
             "stateful_step_count": 200, "print_blob": True},
}


def race_rounds_default(profile_name: str) -> int:
    """How many rounds a race test runs when --race-rounds is not given."""
    return {"ci": 30, "dev": 200, "fuzz": 2000}.get(profile_name, 30)


def register() -> None:
    """Register the three profiles and load the default one (hypothesis's plugin may load another later)."""
    for name, values in PROFILES.items():
        if name != "ci" and "database" not in values:
            values = {**values, "database": DirectoryBasedExampleDatabase(str(cache_dir() / "hypothesis" / name))}
        settings.register_profile(name, **values)
    settings.load_profile(os.environ.get("ECLONE_SUITE_HYPOTHESIS", "ci"))
