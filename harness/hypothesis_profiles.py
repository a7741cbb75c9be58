"""Hypothesis settings profiles for the suite: `ci` (default), `dev` and `fuzz`.

`ci` is bounded and derandomised so a normal run is reproducible and fits its time budget;
`dev` explores more with a local example database; `fuzz` runs long and keeps its corpus
(issue 8's `harness fuzz` points it at a shared database). Choose with
`--hypothesis-profile NAME` (hypothesis's own pytest option) or ECLONE_SUITE_HYPOTHESIS.

`harness fuzz` passes its choices to every xdist worker through the environment: FUZZ_DB_ENV (a
directory or a redis:// URL shared by all workers), FUZZ_EXAMPLES_ENV (examples per test run, so a run
ends and the next test gets its turn; the session repeats runs until its deadline) and FUZZ_SHRINK_ENV.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings
from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase

from .errors import EnvError
from .paths import cache_dir

FUZZ = "fuzz"  # the profile `harness fuzz` runs under
FUZZ_DB_ENV = "ECLONE_SUITE_HYPOTHESIS_DB"
FUZZ_EXAMPLES_ENV = "ECLONE_SUITE_FUZZ_EXAMPLES"
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
FUZZ_SHRINK_ENV = "ECLONE_SUITE_FUZZ_SHRINK"  # "0": no shrink phase (a stateful example shrinks for minutes)

# Programs run in a VM: a single example can take tens of ms, so per-example deadlines are off.
# The suite's fixtures (target, profile) are the same for every example of a test, so hypothesis's
# warning about function-scoped fixtures does not apply.
_SLOW_OK = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture]

PROFILES = {
    "ci": {"max_examples": 25, "derandomize": True, "database": None, "deadline": None,
           "suppress_health_check": _SLOW_OK, "stateful_step_count": 50, "print_blob": False,
           "phases": [Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink]},
    "dev": {"max_examples": 200, "deadline": None, "suppress_health_check": _SLOW_OK,
            "stateful_step_count": 100, "print_blob": True},
    "fuzz": {"max_examples": 1_000_000, "deadline": None, "suppress_health_check": _SLOW_OK,
             "stateful_step_count": 200, "print_blob": True},
}


# A stateful example is long (every step is a program in a VM): fewer examples than the profile's
# max_examples. ci: 10 examples x 45 steps, about 280 programs (some rules are no-ops in a given state),
# and no shrinking: replaying 45 steps per attempt under TCG, hypothesis gives up after 5 minutes with
# little progress; the failing steps and the replay JSON are printed anyway (dev and fuzz shrink).
STATEFUL = {"ci": {"max_examples": 10, "stateful_step_count": 45,
                   "phases": [Phase.explicit, Phase.reuse, Phase.generate]},
            "dev": {"max_examples": 50}, "fuzz": {}}


_fuzz_examples: int | None = None  # this test run's examples, set by the fuzz plugin's time share


def fuzz_examples() -> int | None:
    """Examples per test run under `harness fuzz`: the time share's count for this run, else the option's."""
    if _fuzz_examples is not None:
        return _fuzz_examples
    return int(os.environ[FUZZ_EXAMPLES_ENV]) if os.environ.get(FUZZ_EXAMPLES_ENV) else None


def use_fuzz_examples(count: int | None) -> None:
    """From now on (None: back to the option's count) the fuzz profile runs `count` examples per test run;
    a test whose settings were fixed when it was decorated is the fuzz plugin's to adjust."""
    global _fuzz_examples
    _fuzz_examples = count
    if getattr(settings, "_current_profile", None) != FUZZ:
        return  # not a run under the suite's fuzz profile: nothing else to adjust
    settings.register_profile(FUZZ, settings.get_profile(FUZZ),
                              max_examples=fuzz_examples() or PROFILES[FUZZ]["max_examples"])
    settings.load_profile(FUZZ)


def stateful_settings(profile_name: str) -> settings:
    """The loaded profile's settings, with the stateful test's example count for `profile_name`."""
    overrides = STATEFUL.get(profile_name, {})
    count = fuzz_examples() if profile_name == FUZZ else None
    if count:
        # each ~50x as long; at least 2, as hypothesis makes the first example the simplest (a no-op)
        overrides = {"max_examples": max(2, count // 10)}
    return settings(settings.default, **overrides)


def race_rounds_default(profile_name: str) -> int:
    """How many rounds a race test runs when --race-rounds is not given."""
    return {"ci": 30, "dev": 200, "fuzz": 2000}.get(profile_name, 30)


def example_database(spec: str) -> ExampleDatabase:
    """A directory, or hypothesis's Redis database for redis://HOST:PORT/N (several machines, one corpus)."""
    if not spec.startswith(REDIS_SCHEMES):
        return DirectoryBasedExampleDatabase(spec)
    try:
        import redis
        from hypothesis.extra.redis import RedisExampleDatabase
    except ImportError as err:
        raise EnvError(f"--db {spec} needs the 'redis' package (pip install redis)") from err
    return RedisExampleDatabase(redis.Redis.from_url(spec))


def _fuzz_overrides() -> dict:
    """The fuzz profile's database and examples per run when `harness fuzz` set them."""
    values: dict = {}
    if os.environ.get(FUZZ_DB_ENV):
        values["database"] = example_database(os.environ[FUZZ_DB_ENV])
    if os.environ.get(FUZZ_EXAMPLES_ENV):
        values["max_examples"] = int(os.environ[FUZZ_EXAMPLES_ENV])
    if os.environ.get(FUZZ_SHRINK_ENV) == "0":
        values["phases"] = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target]
    return values


def register() -> None:
    """Register the three profiles and load the default one (hypothesis's plugin may load another later)."""
    for name, values in PROFILES.items():
        if name != "ci" and "database" not in values:
            values = {**values, "database": DirectoryBasedExampleDatabase(str(cache_dir() / "hypothesis" / name))}
        if name == FUZZ:
            values = {**values, **_fuzz_overrides()}
        settings.register_profile(name, **values)
    settings.load_profile(os.environ.get("ECLONE_SUITE_HYPOTHESIS", "ci"))
