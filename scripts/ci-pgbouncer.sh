#!/usr/bin/env bash
# CI tier "PgBouncer": a real PgBouncer (Debian's package, installed when missing)
# in transaction mode on a free local port in front of the test server; the core's
# session, transaction, streaming and relationship tests run through it with
# prepare_threshold=None, plus the concurrent prepared-statement workload of
# tests/core/test_pgbouncer.py, and the migrations (runner, autogenerate, tracing: the
# advisory lock is transaction-level, docs/migrations.md). Uses the virtual environment of
# scripts/test.sh.
# Extra arguments are passed to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${DATA_BRIDGE_VENV:-.venv}"
if [[ ! -x "$VENV/bin/pytest" ]]; then
    echo "no test environment in $VENV: run scripts/test.sh first" >&2
    exit 1
fi

pgbouncer_bin="$(command -v pgbouncer || true)"
[[ -z "$pgbouncer_bin" && -x /usr/sbin/pgbouncer ]] && pgbouncer_bin=/usr/sbin/pgbouncer
if [[ -z "$pgbouncer_bin" ]]; then
    echo "installing Debian's pgbouncer" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null
    pgbouncer_bin=/usr/sbin/pgbouncer
fi

scripts/ensure-postgres.sh
upstream="${DATA_BRIDGE_TEST_DSN:-postgresql://postgres@127.0.0.1:5432/test}"
# host, port, database and user of the server behind PgBouncer
read -r host port dbname user < <("$VENV/bin/python" - "$upstream" <<'PY'
import sys
from psycopg.conninfo import conninfo_to_dict
params = conninfo_to_dict(sys.argv[1])
print(params.get("host") or "127.0.0.1", params.get("port") or 5432,
      params.get("dbname") or "test", params.get("user") or "postgres")
PY
)
listen_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

dir="$(mktemp -d /tmp/data-bridge-pgbouncer-XXXXXX)"
stop() {
    if [[ -s "$dir/pgbouncer.pid" ]]; then
        kill "$(cat "$dir/pgbouncer.pid")" 2>/dev/null || true
        for _ in $(seq 1 20); do [[ -e "$dir/pgbouncer.pid" ]] || break; sleep 0.25; done
    fi
    rm -rf "$dir"
}
trap stop EXIT
# auth_user lets the per-test roles of the fixtures log in without a userlist entry.
cat >"$dir/pgbouncer.ini" <<INI
[databases]
* = host=$host port=$port
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $listen_port
unix_socket_dir =
pool_mode = transaction
; Each test connects as a role of its own, so PgBouncer keeps a pool per test: cap the
; server connections to the database (idle ones of other pools are closed to make room),
; or the run fills the server's max_connections with idle pools.
max_db_connections = 30
auth_type = trust
auth_file = $dir/userlist.txt
auth_user = $user
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
printf '"%s" ""\n' "$user" >"$dir/userlist.txt"
if [[ "$(id -u)" == 0 ]]; then
    chown -R postgres "$dir"
    runuser -u postgres -- "$pgbouncer_bin" -d "$dir/pgbouncer.ini"
else
    "$pgbouncer_bin" -d "$dir/pgbouncer.ini"
fi
for _ in $(seq 1 40); do
    pg_isready -q -h 127.0.0.1 -p "$listen_port" -d "$dbname" -U "$user" && break
    sleep 0.25
done
echo "PgBouncer $("$pgbouncer_bin" --version | head -n 1 | cut -d' ' -f2) (pid $(cat "$dir/pgbouncer.pid")) on 127.0.0.1:$listen_port, transaction mode, in front of $host:$port"

status=0
DATA_BRIDGE_TEST_PGBOUNCER_DSN="postgresql://$user@127.0.0.1:$listen_port/$dbname" \
    "$VENV/bin/pytest" -p no:cacheprovider -rs \
    tests/core/test_session.py tests/core/test_savepoints.py tests/core/test_failed_flush.py \
    tests/core/test_rollback_state.py tests/core/test_queries.py tests/core/test_relationships.py \
    tests/core/test_pgbouncer.py tests/migrations/test_migrations_apply.py \
    tests/migrations/test_migrations_autogenerate.py tests/migrations/test_migrations_tracing.py \
    "$@" || status=$?
exit "$status"
