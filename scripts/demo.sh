#!/usr/bin/env bash
# Install the ORM, the instrumentation and the demo's needs into a fresh
# virtual environment, then run the demo (arguments are passed to it, e.g.
# --dsn postgresql://user@host/db; without one it starts an embedded PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${DATA_BRIDGE_VENV:-.venv}"
if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e . -e "./packaging/instrumentation[demo]"
exec "$VENV/bin/python" -m demo "$@"
