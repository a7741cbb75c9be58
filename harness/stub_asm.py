"""Assemble harness/agent/child_stub.S into the bytes harness/agent/child_stub.py carries.

The agent is stdlib-only and never assembles anything: the bytes are generated here, on the host, and
committed; tests/test_child_stub.py checks that they still match the source.
Run `python -m harness.stub_asm` after editing the .S file: it rewrites the CODE literal in place.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .errors import EnvError

AGENT_DIR = Path(__file__).resolve().parent / "agent"
SOURCE = AGENT_DIR / "child_stub.S"
MODULE = AGENT_DIR / "child_stub.py"
_LITERAL = re.compile(r'CODE = bytes\.fromhex\(\n(?:    "[0-9a-f]*"\n)+\)')


def assemble(source: Path = SOURCE) -> bytes:
    """The .text of the assembled source (GNU as + objcopy from binutils)."""
    if shutil.which("as") is None or shutil.which("objcopy") is None:
        raise EnvError("assembling the child stub needs binutils (as, objcopy)")
    with tempfile.TemporaryDirectory(prefix="eclone-stub-") as tmp:
        obj, raw = Path(tmp) / "stub.o", Path(tmp) / "stub.bin"
        subprocess.run(["as", "--64", "-o", str(obj), str(source)], check=True, capture_output=True)
        subprocess.run(["objcopy", "-O", "binary", "-j", ".text", str(obj), str(raw)], check=True,
                       capture_output=True)
        return raw.read_bytes()


def literal(code: bytes, width: int = 64) -> str:
    """The CODE assignment as it appears in child_stub.py."""
    hexed = code.hex()
    lines = "".join(f'    "{hexed[i:i + width]}"\n' for i in range(0, len(hexed), width))
    return f"CODE = bytes.fromhex(\n{lines})"


def main() -> int:
    text = MODULE.read_text()
    new, count = _LITERAL.subn(literal(assemble()), text)
    if count != 1:
        print(f"stub_asm: no CODE literal found in {MODULE}", file=sys.stderr)
        return 2
    MODULE.write_text(new)
    print(f"stub_asm: {MODULE.name} updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
