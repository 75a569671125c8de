#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine: apt tools, then the package
# with its test extra. Idempotent; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
APT_PKGS=(rclone nginx-light chromium)
missing=()
for p in "${APT_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
python3 -m pip install -q -e '.[test]'
