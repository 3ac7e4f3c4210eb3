#!/usr/bin/env bash
# Fast developer loop: lint, types, and the tests that need no model. CI runs the full suite (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m ruff check edgekit tests tools
python -m ruff format --check edgekit tests
python -m mypy edgekit
python -m pytest -q -m "not model" "$@"
