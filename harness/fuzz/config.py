"""Options of `harness fuzz`, checked up front so a bad value is one line (exit 2), not a pytest traceback."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from ..paths import REPO_ROOT, cache_dir

# The stateful and property tests worth repeating; a file that does not exist (yet) is left out.
DEFAULT_TESTS = (
    "suite/semantics/test_state_machine.py",
    "suite/semantics/test_oracle_agreement.py",
    "suite/races/test_vectors.py",
    "suite/races/test_race_state_machine.py",
)
_UNITS = {"s": 1, "m": 60, "h": 3600}
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?[smh])+|\d+(?:\.\d+)?")


@dataclass(frozen=True)
class FuzzConfig:
    """Everything one `fuzz` invocation needs to start its pytest runs."""

    duration: float
    jobs: int
    db: str  # a directory or a redis:// URL, handed to the workers through the environment
    tests: tuple[str, ...]
    results: Path
    kernel_argv: tuple[str, ...]  # how pytest gets the kernel (--kernel IMAGE, --patch ..., --stock ...)
    examples: int = 20  # per test run (a stateful test runs a tenth, at least 2)
    race_rounds: int = 200
    slice_s: float = 15.0  # about this long per test run, equal time per test function (0: fixed examples)
    shrink: bool = False
    pytest_args: tuple[str, ...] = field(default=())


def parse_duration(text: str) -> float:
    """'90s', '2m', '1h', '1h30m' or plain seconds -> seconds; anything else is a UsageError."""
    value = text.strip().lower()
    if not _DURATION.fullmatch(value):
        raise UsageError(f"bad --duration '{text}': use a number with s, m or h (e.g. 90s, 2m, 1h)")
    if value[-1].isdigit():
        seconds = float(value)
    else:
        seconds = sum(float(n) * _UNITS[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([smh])", value))
    if seconds <= 0:
        raise UsageError(f"bad --duration '{text}': must be more than 0")
    return seconds


def resolve_db(spec: str | None) -> str:
    """The shared example database: the fuzz profile's cache directory by default, a directory, or a
    redis:// URL (needs the optional `redis` package; checked here so workers do not fail one by one)."""
    if not spec:
        spec = str(cache_dir() / "hypothesis" / "fuzz")
    from ..hypothesis_profiles import REDIS_SCHEMES, example_database
    if spec.startswith(REDIS_SCHEMES):
        example_database(spec)  # EnvError when the redis package is missing; connects only when used
        return spec
    if "://" in spec:
        raise UsageError(f"bad --db '{spec}': a directory or redis://HOST:PORT/N")
    path = Path(spec).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise UsageError(f"bad --db '{spec}': not a directory")
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def select_tests(given: list[str]) -> tuple[str, ...]:
    """--tests as given (each must exist), else the default selection's existing files."""
    if not given:
        return tuple(t for t in DEFAULT_TESTS if (REPO_ROOT / t).is_file())
    for test in given:
        if not (REPO_ROOT / test.split("::")[0]).exists():
            raise UsageError(f"no such test path: {test}")
    return tuple(given)


def positive(value: int | None, option: str) -> int | None:
    if value is not None and value < 1:
        raise UsageError(f"{option} must be at least 1")
    return value


def add_parser(sub: argparse._SubParsersAction, add_kernel_choice: Callable[[argparse.ArgumentParser], None]) -> None:
    """The `fuzz` subcommand (cli.py calls this with its kernel-choice helper)."""
    fuzz = sub.add_parser(
        "fuzz", help="run the hypothesis fuzz profile of the state machines on N VMs until a deadline",
        description="Repeat the stateful and property tests with the hypothesis 'fuzz' profile on N VMs in "
                    "parallel (pytest-xdist, one VM per worker) until the deadline or Ctrl-C, sharing one example "
                    "database; print a live line, then the distinct failures with their reproducers, and write "
                    "fuzz.json. Exit 1 when something failed, 0 otherwise, 2 on usage or environment errors.")
    add_kernel_choice(fuzz)
    fuzz.add_argument("--duration", default="10m", metavar="D", help="how long: 90s, 2m, 1h (default 10m)")
    fuzz.add_argument("-j", "--jobs", dest="fuzz_jobs", type=int, default=1, metavar="N",
                      help="VMs (xdist workers) in parallel (default 1)")
    fuzz.add_argument("--db", default=None, metavar="PATH|redis://HOST:PORT/N",
                      help="shared example database (default: the fuzz profile's cache directory)")
    fuzz.add_argument("--results", type=Path, metavar="DIR", help="results dir (default results/fuzz-<timestamp>)")
    fuzz.add_argument("--tests", nargs="+", default=[], metavar="SELECTION",
                      help="test paths or node ids (default: the semantic and race state machines, the oracle "
                           "agreement property, suite/races/test_vectors.py)")
    fuzz.add_argument("--examples", type=int, default=20, metavar="N",
                      help="examples of a test's first run (default 20; stateful: N/10); later runs fit --slice")
    fuzz.add_argument("--slice", type=float, default=15.0, metavar="S",
                      help="seconds per test run; every test function gets about equal time and its profiles "
                           "take turns, a dear one runs less often (default 15; 0: --examples every run)")
    fuzz.add_argument("--race-rounds", type=int, default=200, metavar="N", help="rounds per race test run")
    fuzz.add_argument("--shrink", action="store_true",
                      help="let hypothesis shrink failures (a stateful example can take minutes to shrink)")
    fuzz.add_argument("pytest_args", nargs=argparse.REMAINDER, help="after --: passed to pytest")
