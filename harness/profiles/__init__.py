"""ABI profiles: one per call under test; semantic tests are written once against `Profile`.

The registry below is the one place that knows the profiles: a new one is a module plus a line here
(and its spec table in the suite, `suite/spec.py`).
"""

from __future__ import annotations

from collections.abc import Callable

from .base import Anchor, Profile, SpawnRequest
from .clone2 import Clone2Profile
from .clone3 import Clone3Profile
from .clone_with_pids import CloneWithPidsProfile
from .eclone import EcloneProfile

PROFILES: dict[str, Callable[[int | None], Profile]] = {
    "eclone": lambda nr: EcloneProfile(nr=nr) if nr is not None else EcloneProfile(),
    "clone_with_pids": lambda nr: CloneWithPidsProfile(),
    "clone2": lambda nr: Clone2Profile(),
    "clone3": lambda nr: Clone3Profile(),
}
ALL_PROFILES = tuple(PROFILES)


def make_profile(name: str, eclone_nr: int | None = None) -> Profile:
    """A profile by name; `eclone_nr` moves eclone to another syscall number. Unknown names fail loudly."""
    try:
        factory = PROFILES[name]
    except KeyError:
        from ..errors import UsageError
        raise UsageError(f"unknown profile {name!r}; known: {', '.join(ALL_PROFILES)}, auto") from None
    return factory(eclone_nr)


__all__ = ["ALL_PROFILES", "PROFILES", "Anchor", "Clone2Profile", "Clone3Profile", "CloneWithPidsProfile",
           "EcloneProfile", "Profile", "SpawnRequest", "make_profile"]
