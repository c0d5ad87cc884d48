#!/usr/bin/env bash
# CI tier "floors": every declared minimum installed exactly (a constraints file
# made from both pyprojects' >= floors by scripts/floor_constraints.py) in a
# fresh virtual environment, then the test suite (not the Phoenix tier).
# Extra arguments are passed to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${DATA_BRIDGE_FLOORS_VENV:-.venv-floors}"
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
python3 scripts/floor_constraints.py >"$VENV/floors.txt"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    -c "$VENV/floors.txt" -e . -e "./packaging/instrumentation[test,otlp]"
"$VENV/bin/python" scripts/floor_constraints.py --verify
scripts/ensure-postgres.sh
exec "$VENV/bin/pytest" -m "not phoenix" -p no:cacheprovider "$@"
