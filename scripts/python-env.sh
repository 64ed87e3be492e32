#!/usr/bin/env bash
# Creates (idempotently) the repo's .venv and installs into it tests/python/requirements.txt
# (the real-client tests) and examples/python-exclusion/requirements.txt (componentize-py, which
# the plugin tests use to build Python components). The install is skipped while
# .venv/.requirements.stamp matches the requirements files and the venv's Python version.
# Needs only python3 (3.11); PYTHON=... picks another interpreter.
# Usage: bash scripts/python-env.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
reqs=("$root/tests/python/requirements.txt" "$root/examples/python-exclusion/requirements.txt")
stamp="$venv/.requirements.stamp"
python="${PYTHON:-python3}"

make_venv() {
    rm -rf "$venv"
    if ! "$python" -m venv "$venv"; then
        # Debian/Ubuntu ship venv's ensurepip separately.
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "python-env: python3 -m venv failed; installing python3-venv" >&2
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
            rm -rf "$venv"
            "$python" -m venv "$venv"
        else
            echo "python-env: '$python -m venv' failed (on Debian: apt-get install python3-venv)" >&2
            exit 1
        fi
    fi
}

# A venv missing its python or its pip (e.g. an interrupted creation) is made anew.
if ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    make_venv
fi

want="$(cat "${reqs[@]}" | sha256sum | cut -d' ' -f1) $("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])')"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi

args=()
for req in "${reqs[@]}"; do args+=(-r "$req"); done
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "${args[@]}"
echo "$want" > "$stamp"
echo "python-env: installed $(cat "${reqs[@]}" | grep -c '==') pinned packages into $venv"
