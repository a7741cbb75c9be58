#!/usr/bin/env bash
# Install what the suite needs on Debian 12 (system packages + .venv), then stay quiet.
# Idempotent: packages are installed only when missing, pip runs only when requirements.txt or pyproject.toml change.
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(
  qemu-system-x86          # the VM
  linux-source-6.1         # the reference kernel's source
  gcc make libc6-dev bison flex libelf-dev libssl-dev bc xz-utils patch cpio  # kernel build
  python3 python3-venv     # the venv, and the guest agent's interpreter (/usr/bin/python3.11)
  libcap-dev               # the kernel's clone3 selftests (peers)
  util-linux procps        # unshare/pgrep used by checks
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 2; }
    SUDO="sudo"
  fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  /usr/bin/python3 -m venv .venv
fi
# requirements.txt is the pinned lock; pyproject.toml then adds this checkout itself (editable, no
# dependency resolution) so .venv/bin/eclone-suite exists beside `python -m harness`.
stamp=.venv/.requirements.sha256
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python packages into .venv" >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
  echo "$want" > "$stamp"
fi
