"""ABI profiles: one per call under test; semantic tests are written once against `Profile`."""

from __future__ import annotations

from .base import Profile, SpawnRequest
from .clone3 import Clone3Profile
from .eclone import EcloneProfile

ALL_PROFILES = ("eclone", "clone3")


def make_profile(name: str, eclone_nr: int | None = None) -> Profile:
    """A profile by name; `eclone_nr` moves eclone to another syscall number."""
    if name == "clone3":
        return Clone3Profile()
    if name == "eclone":
        return EcloneProfile(nr=eclone_nr) if eclone_nr is not None else EcloneProfile()
    from ..errors import UsageError
    raise UsageError(f"unknown profile {name!r}; known: {', '.join(ALL_PROFILES)}, auto")


__all__ = ["ALL_PROFILES", "Clone3Profile", "EcloneProfile", "Profile", "SpawnRequest", "make_profile"]
