"""ABI profiles: one per call under test; semantic tests are written once against `Profile`.

The registries below are the one place that knows the profiles: a new one is a module plus a line here
(and its spec table in the suite, `suite/spec.py`). `PROFILES` are calls that take a pid vector (`Profile`,
the `profile` fixture); `ID_PROFILES` are files written before a plain creation (`IdProfile`, `ids.py`, the
`id_profile` fixture).
"""

from __future__ import annotations

from collections.abc import Callable

from .base import Anchor, Profile, SpawnRequest
from .clone2 import Clone2Profile
from .clone3 import Clone3Profile
from .clone_with_pids import CloneWithPidsProfile
from .eclone import EcloneProfile
from .ids import IdProfile, IpcNextIdProfile, NextIdIpcProfile, NextIdProfile, NsLastPidProfile

PROFILES: dict[str, Callable[[int | None], Profile]] = {
    "eclone": lambda nr: EcloneProfile(nr=nr) if nr is not None else EcloneProfile(),
    "clone_with_pids": lambda nr: CloneWithPidsProfile(),
    "clone2": lambda nr: Clone2Profile(),
    "clone3": lambda nr: Clone3Profile(),
}
ID_PROFILES: dict[str, Callable[[], IdProfile]] = {
    "ns_last_pid": NsLastPidProfile,
    "next_id": NextIdProfile,
    **{f"next_id_{k}": (lambda k=k: NextIdIpcProfile(k)) for k in ("msg", "sem", "shm")},
    "msg_next_id": lambda: IpcNextIdProfile("msg"),
    "sem_next_id": lambda: IpcNextIdProfile("sem"),
    "shm_next_id": lambda: IpcNextIdProfile("shm"),
}
SPAWN_PROFILES = tuple(PROFILES)
ALL_PROFILES = SPAWN_PROFILES + tuple(ID_PROFILES)


def make_profile(name: str, eclone_nr: int | None = None) -> Profile | IdProfile:
    """A profile by name; `eclone_nr` moves eclone to another syscall number. Unknown names fail loudly."""
    if name in ID_PROFILES:
        return ID_PROFILES[name]()
    try:
        factory = PROFILES[name]
    except KeyError:
        from ..errors import UsageError
        raise UsageError(f"unknown profile {name!r}; known: {', '.join(ALL_PROFILES)}, auto") from None
    return factory(eclone_nr)


__all__ = ["ALL_PROFILES", "ID_PROFILES", "PROFILES", "SPAWN_PROFILES", "Anchor", "Clone2Profile", "Clone3Profile",
           "CloneWithPidsProfile", "EcloneProfile", "IdProfile", "Profile", "SpawnRequest", "make_profile"]
