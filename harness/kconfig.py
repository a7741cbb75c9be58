"""Kconfig fragments as data: which options we ask for, and whether the kernel kept them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, UsageError
from .paths import KCONFIG_DIR

_SET = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")


@dataclass(frozen=True)
class Fragment:
    """One `qemu/kconfig/NAME.config` file."""

    name: str
    path: Path
    options: dict[str, str]  # CONFIG_X -> "y" | "n" | "m" | literal value


def parse_config(text: str) -> dict[str, str]:
    """Options of a .config or fragment; "# CONFIG_X is not set" and "CONFIG_X=n" both read as "n"."""
    options: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if m := _SET.match(line):
            options[m.group(1)] = m.group(2)
        elif m := _UNSET.match(line):
            options[m.group(1)] = "n"
    return options


def available_fragments() -> list[str]:
    return sorted(p.stem for p in KCONFIG_DIR.glob("*.config"))


def load_fragment(name: str) -> Fragment:
    """A fragment by name (`debug`) or path; unknown names list what exists."""
    path = Path(name).resolve() if name.endswith(".config") and Path(name).exists() else KCONFIG_DIR / f"{name}.config"
    if not path.is_file():
        raise UsageError(f"unknown kconfig fragment {name!r}; available: {', '.join(available_fragments())}")
    return Fragment(name=path.stem, path=path, options=parse_config(path.read_text()))


def fragments_for(names: list[str]) -> list[Fragment]:
    """base.config always comes first; the named ones follow in the order given."""
    ordered = ["base"] + [n for n in names if n != "base"]
    return [load_fragment(n) for n in ordered]


def dropped_options(fragments: list[Fragment], final: dict[str, str]) -> list[str]:
    """Options a fragment asked for that `olddefconfig` did not keep (unmet dependencies, typos)."""
    wanted: dict[str, tuple[str, str]] = {}
    for frag in fragments:
        for key, value in frag.options.items():
            wanted[key] = (value, frag.name)  # a later fragment overrides an earlier one
    problems = []
    for key, (value, origin) in sorted(wanted.items()):
        got = final.get(key, "n")
        if got != value:
            problems.append(f"{key}={value} (from {origin}.config, got {got if key in final else 'unset'})")
    return problems


def check_kept(fragments: list[Fragment], config_path: Path) -> None:
    """Raise ConfigError naming every option that did not survive olddefconfig."""
    problems = dropped_options(fragments, parse_config(config_path.read_text()))
    if problems:
        raise ConfigError("kernel config lost requested options: " + "; ".join(problems))
