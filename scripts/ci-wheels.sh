#!/usr/bin/env bash
# CI tier "built wheels": build both sdists and wheels, check their metadata
# (twine check --strict), build a wheel again from each sdist outside the
# repository, install those wheels (not editable) into a fresh virtual
# environment and run the smoke test against the test database.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
work="$(mktemp -d /tmp/data-bridge-wheels-XXXXXX)"
trap 'rm -rf "$work"' EXIT
pip_quiet=(--quiet --disable-pip-version-check)
# Build output only when a build fails.
quietly() { "$@" >"$work/step.log" 2>&1 || { cat "$work/step.log" >&2; return 1; }; }

python3 -m venv "$work/tools"
"$work/tools/bin/python" -m pip install "${pip_quiet[@]}" build twine

quietly "$work/tools/bin/python" -m build --outdir "$work/dist" "$repo"
quietly "$work/tools/bin/python" -m build --outdir "$work/dist" "$repo/packaging/instrumentation"
NO_COLOR=1 "$work/tools/bin/twine" check --strict "$work"/dist/*

# From each sdist alone, unpacked where no repository file can be reached.
mkdir -p "$work/outside" "$work/from-sdist"
for sdist in "$work"/dist/*.tar.gz; do
    tar -xzf "$sdist" -C "$work/outside"
    unpacked="$work/outside/$(basename "$sdist" .tar.gz)"
    quietly "$work/tools/bin/python" -m build --wheel --outdir "$work/from-sdist" "$unpacked"
done
for wheel in "$work"/dist/*.whl; do
    again="$work/from-sdist/$(basename "$wheel")"
    if ! diff <(unzip -Z1 "$wheel" | sort) <(unzip -Z1 "$again" | sort); then
        echo "the wheel built from the sdist differs from $(basename "$wheel")" >&2
        exit 1
    fi
done

python3 -m venv "$work/smoke"
core="$(ls "$work"/from-sdist/data_bridge_core-*.whl)"
instrumentation="$(ls "$work"/from-sdist/opentelemetry_instrumentation_data_bridge-*.whl)"
"$work/smoke/bin/python" -m pip install "${pip_quiet[@]}" "$core" "$instrumentation[sdk]" "pytest>=8.2"
cp packaging/smoke/test_installed_wheels.py "$work/"
cd "$work"  # nothing of the repository on sys.path
"$work/smoke/bin/python" -m pytest -p no:cacheprovider --rootdir "$work" test_installed_wheels.py
