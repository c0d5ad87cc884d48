# Sourced by the scripts that run in .venv: ensure_venv VENV EXTRAS [SUPERSET ...]
# Creates VENV and installs both distributions editable with the instrumentation's EXTRAS,
# unless VENV was already installed for these very pyproject files and this Python (a stamp
# per extras set: a hash of both pyproject.toml files and the Python version). A stamp for a
# SUPERSET of EXTRAS (e.g. "test" for the demo's "demo") counts too. Offline, a complete
# .venv is then used as it is instead of pip retrying the index for minutes.
# One line per phase on stderr, so a long step says what it is doing.

venv_key() {
    local python="$1"
    {
        cat pyproject.toml packaging/instrumentation/pyproject.toml
        "$python" -c 'import sys; print(sys.version)'
    } | sha256sum | cut -d ' ' -f 1
}

ensure_venv() {
    local venv="$1" extras="$2"
    shift 2
    local started=$SECONDS
    if [[ ! -x "$venv/bin/python" ]]; then
        echo "venv: creating $venv" >&2
        python3 -m venv "$venv"
    fi
    local key stamps="$venv/.data-bridge-installed" candidate
    key="$(venv_key "$venv/bin/python")"
    for candidate in "$extras" "$@"; do
        if [[ "$(cat "$stamps/$candidate" 2>/dev/null)" == "$key" ]]; then
            echo "install: $venv is up to date for these pyproject files ([$candidate]): pip skipped" >&2
            return 0
        fi
    done
    echo "install: upgrading pip in $venv" >&2
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    echo "install: both distributions with [$extras] (about a minute the first time)" >&2
    "$venv/bin/python" -m pip install --quiet -e . -e "./packaging/instrumentation[$extras]"
    mkdir -p "$stamps"
    echo "$key" >"$stamps/$extras"
    echo "install: done in $((SECONDS - started))s" >&2
}
