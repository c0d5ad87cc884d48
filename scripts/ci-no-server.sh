#!/usr/bin/env bash
# CI tier "no-server": the README's two commands on a machine with no PostgreSQL and no
# network. Installs are done first, with the network; then, in a new network namespace
# (only a loopback, where nothing answers at 127.0.0.1:5432) and a new mount namespace
# hiding the machine's cluster (its socket directory /var/run/postgresql and its
# configuration /etc/postgresql, so it can be neither reached nor started), the whole
# default suite runs (`scripts/test.sh`: pip skipped, the tests start an embedded
# PostgreSQL) and then the demo (`scripts/demo.sh`). Needs root (unshare).
# Extra arguments are passed to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
VENV="${DATA_BRIDGE_VENV:-.venv}"
ensure_venv "$VENV" test "test,phoenix"

if [[ "$(id -u)" != 0 ]]; then
    echo "ci-no-server: needs root for unshare -n -m" >&2
    exit 2
fi
echo "no-server: entering a network and mount namespace without the machine's PostgreSQL" >&2
export DATA_BRIDGE_VENV="$VENV"
unset DATA_BRIDGE_TEST_DSN DATA_BRIDGE_DSN
exec unshare --net --mount --propagation private bash -c '
    set -euo pipefail
    ip link set lo up
    for hidden in /var/run/postgresql /etc/postgresql; do
        if [[ -d "$hidden" ]]; then mount -t tmpfs -o mode=0755 none "$hidden"; fi
    done
    if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || pg_isready -q 2>/dev/null; then
        echo "no-server: a PostgreSQL still answers inside the namespace" >&2
        exit 2
    fi
    bash scripts/test.sh "$@"
    bash scripts/demo.sh --schema "data_bridge_demo_$$"
' no-server "$@"
