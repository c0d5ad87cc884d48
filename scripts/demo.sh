#!/usr/bin/env bash
# Install the ORM, the instrumentation and the demo's needs into a virtual
# environment (skipped when it is up to date: scripts/venv.sh), then run the
# demo (arguments are passed to it, e.g. --dsn postgresql://user@host/db;
# without one it starts an embedded PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
VENV="${DATA_BRIDGE_VENV:-.venv}"
ensure_venv "$VENV" demo test "test,phoenix"
echo "demo: running" >&2
exec "$VENV/bin/python" -m demo "$@"
