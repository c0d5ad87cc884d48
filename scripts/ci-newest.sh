#!/usr/bin/env bash
# CI tier "newest": the newest OpenTelemetry releases (api, sdk, instrumentation,
# semantic conventions, distro, exporters and the contrib instrumentations the
# tests use), upgraded past anything else the install chose, in a fresh virtual
# environment; then the test suite (not the Phoenix tier). A release that breaks
# the instrumentation shows up here, not in a user's service.
# Extra arguments are passed to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${DATA_BRIDGE_NEWEST_VENV:-.venv-newest}"
rm -rf "$VENV"
python3 -m venv "$VENV"
pip_install() { "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@"; }
pip_install --upgrade pip
pip_install -e . -e "./packaging/instrumentation[test,otlp]"
pip_install --upgrade --upgrade-strategy eager \
    opentelemetry-api opentelemetry-sdk opentelemetry-instrumentation \
    opentelemetry-semantic-conventions opentelemetry-distro \
    opentelemetry-exporter-otlp-proto-grpc opentelemetry-exporter-otlp-proto-http \
    opentelemetry-instrumentation-fastapi opentelemetry-instrumentation-logging \
    opentelemetry-instrumentation-sqlalchemy
"$VENV/bin/python" -m pip list --disable-pip-version-check 2>/dev/null | grep -i '^opentelemetry' || true
"$VENV/bin/python" -m pip check
scripts/ensure-postgres.sh
exec "$VENV/bin/pytest" -m "not phoenix" -p no:cacheprovider "$@"
