#!/usr/bin/env bash
# Install everything into a virtual environment and run the test suite.
#   bash scripts/test.sh            -> the default suite
#   bash scripts/test.sh --phoenix  -> also install Arize Phoenix and run its round-trip tier
# Extra arguments after the options are passed to pytest. The install is skipped when the
# environment is up to date for both pyproject files (scripts/venv.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh

VENV="${DATA_BRIDGE_VENV:-.venv}"
PHOENIX=0
if [[ "${1:-}" == "--phoenix" ]]; then PHOENIX=1; shift; fi

scripts/ensure-postgres.sh

if [[ "$PHOENIX" == 1 ]]; then
    ensure_venv "$VENV" "test,phoenix"
else
    ensure_venv "$VENV" test "test,phoenix"
fi

echo "check: ruff" >&2
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
echo "check: mypy" >&2
"$VENV/bin/mypy"
echo "test: pytest" >&2
if [[ "$PHOENIX" == 1 ]]; then
    exec "$VENV/bin/pytest" -m phoenix "$@"
fi
exec "$VENV/bin/pytest" -m "not phoenix" "$@"
