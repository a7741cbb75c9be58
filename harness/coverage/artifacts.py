"""What a coverage image left beside it in the cache: notes files, sources, where it was built."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..paths import PATCHES_DIR
from .build import PROFILED


@dataclass(frozen=True)
class Artifacts:
    image_dir: Path
    objtree: str  # the O= dir the kernel was built in: its gcov tree in debugfs is named after it
    src_root: str  # the work tree the compiler saw (gcov reports source paths under it)
    patches: tuple[Path, ...]
    sources: tuple[str, ...] = PROFILED

    def gcno(self, source: str) -> Path:
        return self.image_dir / "build" / Path(source).with_suffix(".gcno")

    def source(self, source: str) -> Path:
        """The source as compiled (a copy: the shared work tree may since carry another patch set)."""
        return self.image_dir / "src" / source

    @property
    def src_dir(self) -> Path:
        return self.image_dir / "src"


def _this_checkouts(patch: Path) -> Path:
    """The patch as this checkout has it. The cache is shared by checkouts and keyed by the patches'
    content, so the image may have been built from another clone, since deleted; the same series here has
    the same file under the same name."""
    if patch.is_file():
        return patch
    same_name = sorted(PATCHES_DIR.rglob(patch.name))
    return same_name[0] if len(same_name) == 1 else patch


def load_artifacts(image: Path) -> Artifacts:
    """The artifacts of a cached coverage image; a bare bzImage has none, so it cannot be reported on."""
    request = image.parent / "request.json"
    meta = json.loads(request.read_text()) if request.is_file() else {}
    if "build" not in meta:
        raise ConfigError(f"{image} is not a coverage image of the cache (no .gcno files beside it): "
                          "run --coverage without --kernel to build one")
    patches = tuple(_this_checkouts(Path(p)) for p in meta.get("patches", []))
    art = Artifacts(image.parent, meta["build"], meta["src"], patches)
    missing = [str(p) for s in art.sources for p in (art.gcno(s), art.source(s)) if not p.is_file()]
    if missing:
        raise ConfigError(f"coverage image {image.parent} lacks {', '.join(missing)}")
    return art
