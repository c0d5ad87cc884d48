#!/usr/bin/env bash
# Install everything into a fresh virtual environment and run the test suite.
#   bash scripts/test.sh            -> the default suite
#   bash scripts/test.sh --phoenix  -> also install Arize Phoenix and run its round-trip tier
# Extra arguments after the options are passed to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${DATA_BRIDGE_VENV:-.venv}"
PHOENIX=0
if [[ "${1:-}" == "--phoenix" ]]; then PHOENIX=1; shift; fi

scripts/ensure-postgres.sh

if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
extras="test"
if [[ "$PHOENIX" == 1 ]]; then extras="test,phoenix"; fi
"$VENV/bin/python" -m pip install --quiet -e . -e "./packaging/instrumentation[$extras]"

"$VENV/bin/ruff" check .
"$VENV/bin/mypy"
if [[ "$PHOENIX" == 1 ]]; then
    exec "$VENV/bin/pytest" -m phoenix "$@"
fi
exec "$VENV/bin/pytest" -m "not phoenix" "$@"
