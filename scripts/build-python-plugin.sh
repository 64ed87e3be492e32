#!/usr/bin/env bash
# Builds the Python exclusion example (examples/python-exclusion) into
# <target>/python-plugins/python_exclusion.wasm with the venv's componentize-py (make it with
# scripts/python-env.sh) and prints the component's path. The build is skipped while the
# sources, the contract and componentize-py's version are those of the last build.
# scripts/test.sh exports the path as M365SYNC_PY_PLUGIN for the plugin tests.
# Usage: bash scripts/build-python-plugin.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$root/examples/python-exclusion"
out_dir="${CARGO_TARGET_DIR:-$root/target}/python-plugins"
out="$out_dir/python_exclusion.wasm"
tool="${M365SYNC_COMPONENTIZE_PY:-$root/.venv/bin/componentize-py}"

if ! [ -x "$tool" ]; then
    echo "build-python-plugin: $tool is missing; run scripts/python-env.sh first" >&2
    exit 1
fi
mkdir -p "$out_dir"
want="$(cat "$src"/*.py "$root"/wit/0.1/*.wit | sha256sum | cut -d' ' -f1) $("$tool" --version)"
if [ -f "$out" ] && [ -f "$out.stamp" ] && [ "$(cat "$out.stamp")" = "$want" ]; then
    echo "$out"
    exit 0
fi
# --stub-wasi: the component imports no WASI at all (without it, CPython's libc imports files
# and sockets, which the plugin sandbox refuses).
(cd "$src" && "$tool" --quiet -d "$root/wit/0.1" -w exclusion componentize --stub-wasi app -o "$out.tmp")
mv "$out.tmp" "$out"
echo "$want" > "$out.stamp"
echo "$out"
