#!/usr/bin/env bash
# Creates (idempotently) the repo's .venv and installs tests/python/requirements.txt into it.
# The install is skipped while .venv/.requirements.stamp matches the requirements file and the
# venv's Python version. Needs only python3 (3.11); PYTHON=... picks another interpreter.
# Usage: bash scripts/python-env.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
req="$root/tests/python/requirements.txt"
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

want="$(sha256sum "$req" | cut -d' ' -f1) $("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])')"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi

"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$req"
echo "$want" > "$stamp"
echo "python-env: installed $(grep -c '==' "$req") pinned packages into $venv"
