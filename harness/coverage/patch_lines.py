"""Which lines of the post-series files a patch series adds (unified diff hunks, composed patch by patch)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclass
class Hunk:
    old_start: int
    old_len: int
    new_start: int
    new_len: int
    moved: dict[int, int] = field(default_factory=dict)  # old line -> new line (context)
    added: dict[int, str] = field(default_factory=dict)  # new line -> text

    def first_old(self) -> int:
        """First old line the hunk covers; a pure insertion (old_len 0) goes after old_start."""
        return self.old_start if self.old_len else self.old_start + 1


def _file_name(line: str) -> str | None:
    path = line[4:].split("\t")[0].strip()
    return None if path == "/dev/null" else path.split("/", 1)[1] if "/" in path else path


def _read_hunk(header: re.Match[str], lines: list[str], i: int) -> tuple[Hunk, int]:
    """The hunk whose header matched at lines[i - 1]; body lines counted, so a trailing `-- ` is safe."""
    old, new = int(header.group(1)), int(header.group(3))
    hunk = Hunk(old, int(header.group(2) or 1), new, int(header.group(4) or 1))
    left_old, left_new = hunk.old_len, hunk.new_len
    while (left_old > 0 or left_new > 0) and i < len(lines):
        line = lines[i]
        i += 1
        tag, text = line[:1], line[1:]
        if tag == "\\":  # "\ No newline at end of file"
            continue
        if tag in (" ", ""):
            hunk.moved[old] = new
            old, new, left_old, left_new = old + 1, new + 1, left_old - 1, left_new - 1
        elif tag == "-":
            old, left_old = old + 1, left_old - 1
        elif tag == "+":
            hunk.added[new] = text
            new, left_new = new + 1, left_new - 1
        else:
            raise ValueError(f"malformed hunk line {i}: {line!r}")
    return hunk, i


def parse_patch(text: str) -> dict[str, list[Hunk]]:
    """File (path without a/ b/) -> its hunks, in order."""
    files: dict[str, list[Hunk]] = {}
    lines = text.splitlines()
    current: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if line.startswith("+++ "):
            current = _file_name(line)
            if current is not None:
                files.setdefault(current, [])
        elif (m := _HUNK.match(line)) and current is not None:
            hunk, i = _read_hunk(m, lines, i)
            files[current].append(hunk)
    return files


def map_line(line: int, hunks: list[Hunk]) -> int | None:
    """Where an old line ends up after the hunks (None: the patch deleted it)."""
    delta = 0
    for hunk in hunks:
        if line < hunk.first_old():
            break
        if line < hunk.first_old() + hunk.old_len:
            return hunk.moved.get(line)
        delta += hunk.new_len - hunk.old_len
    return line + delta


@dataclass(frozen=True)
class AddedLine:
    text: str
    patch: str  # the patch (file stem) that added it


def added_lines(patches: list[tuple[str, str]]) -> dict[str, dict[int, AddedLine]]:
    """File -> {line number in the file after the whole series: AddedLine} for every line the series adds.

    `patches` are (name, diff text) in series order. A later patch moves or deletes lines an earlier one
    added; lines it only carries as context stay added (by the earlier patch).
    """
    result: dict[str, dict[int, AddedLine]] = {}
    for patch, text in patches:
        for name, hunks in parse_patch(text).items():
            after: dict[int, AddedLine] = {}
            for line, added in result.get(name, {}).items():
                moved = map_line(line, hunks)
                if moved is not None:
                    after[moved] = added
            for hunk in hunks:
                after.update({n: AddedLine(t, patch) for n, t in hunk.added.items()})
            result[name] = dict(sorted(after.items()))
    return result


def series_added_lines(paths: list[Path]) -> dict[str, dict[int, AddedLine]]:
    return added_lines([(p.stem, p.read_text(errors="replace")) for p in sorted(paths)])


def mismatches(added: dict[int, AddedLine], source: list[str]) -> list[int]:
    """Added lines whose text is not at that line of the post-series source (patch applied with an offset)."""
    return [n for n, a in added.items() if n > len(source) or source[n - 1] != a.text]


def realigned(added: dict[int, AddedLine], source: list[str], reach: int = 3000) -> dict[int, AddedLine]:
    """The added lines where they really are in the post-series source.

    The hunks' line numbers are those of the tree the series was made on; on another point release of the
    same kernel (Debian's linux-source moves with every security update) `patch` applies them with an
    offset. Each run of consecutive added lines is looked for at its number, then at the nearest offset
    (up to `reach` lines) where every line of the run matches; a run found nowhere is left out."""
    out: dict[int, AddedLine] = {}
    numbers = sorted(added)
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    last_offset = 0
    for run in runs:
        for offset in _offsets(last_offset, reach):
            if all(0 < n + offset <= len(source) and source[n + offset - 1] == added[n].text for n in run):
                out.update({n + offset: added[n] for n in run})
                last_offset = offset
                break
    return out


def _offsets(start: int, reach: int) -> list[int]:
    """start, then start +- 1, +- 2, ... (the previous run's offset first: hunks of a file move together)."""
    return [start, *(start + sign * d for d in range(1, reach + 1) for sign in (1, -1)), 0]
