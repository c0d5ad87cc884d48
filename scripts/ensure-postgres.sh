#!/usr/bin/env bash
# Start the machine's PostgreSQL cluster when it is not accepting connections.
# Tests use DATA_BRIDGE_TEST_DSN (default postgresql://postgres@127.0.0.1:5432/test).
set -euo pipefail
ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if ! command -v pg_isready >/dev/null 2>&1 || ready; then
    exit 0
fi
if [[ -d /etc/postgresql ]] && command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "PostgreSQL is down: starting it" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
    for _ in $(seq 1 30); do ready && exit 0; sleep 1; done
fi
echo "PostgreSQL at 127.0.0.1:5432 is not reachable; set DATA_BRIDGE_TEST_DSN" >&2
exit 1
