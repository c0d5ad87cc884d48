#!/usr/bin/env bash
# CI tier "floors": every declared minimum installed exactly (a constraints file
# made from both pyprojects' >= floors by scripts/floor_constraints.py) in a
# fresh virtual environment, then the test suite (not the Phoenix tier).
# First, the pytest plugin's tests on the oldest pytest it supports (the `pytest`
# extra's floor, with pluggy 1.0 as pytest 7.3 shipped) in a venv of their own:
# the rest of the suite needs pytest-asyncio >= 0.24, hence pytest >= 8.2.
# Extra arguments are passed to the suite's pytest.
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

PLUGIN_VENV="${VENV}-pytest"
rm -rf "$PLUGIN_VENV"
python3 -m venv "$PLUGIN_VENV"
python3 scripts/floor_constraints.py --extra pytest >"$PLUGIN_VENV/floors.txt"
echo "pluggy==1.0.0" >>"$PLUGIN_VENV/floors.txt"
# pytest-asyncio 0.21 is the last release that supports pytest 7.
"$PLUGIN_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    -c "$PLUGIN_VENV/floors.txt" pytest pluggy "pytest-asyncio==0.21.2" \
    -e . -e "./packaging/instrumentation[sdk,otlp]"
echo "pytest plugin on $("$PLUGIN_VENV/bin/pytest" --version 2>&1) with pluggy $("$PLUGIN_VENV/bin/python" -c 'import pluggy; print(pluggy.__version__)')"
# Its summary line comes before the suite's, so .ci/run still counts the suite's last line.
"$PLUGIN_VENV/bin/pytest" tests/pytest_plugin -p no:cacheprovider -q
rm -rf "$PLUGIN_VENV"

exec "$VENV/bin/pytest" -m "not phoenix" -p no:cacheprovider "$@"
