#!/usr/bin/env bash
# tests/run.sh — run the test suite on a fresh machine: sets up .venv with the runtime and test
# requirements (once), then runs pytest. Extra arguments go to pytest (e.g. -k features, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
export DMHA_EXTRA_REQS="$PWD/requirements-test.txt"
. ./path.sh
exec python -m pytest "$@"
