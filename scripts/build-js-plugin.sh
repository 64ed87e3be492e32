#!/usr/bin/env bash
# Builds the JavaScript exclusion example (examples/js-exclusion) into
# <target>/js-plugins/js_exclusion.wasm with componentize-js, installed by `npm ci` from the
# example's package-lock.json into examples/js-exclusion/node_modules, and prints the
# component's path. `npm ci` is skipped while node_modules matches the lockfile, and the build
# while the sources, the contract and the lockfile are those of the last build.
# scripts/test.sh exports the path as M365SYNC_JS_PLUGIN for the plugin tests, and
# M365SYNC_JS_NODE_MODULES (the installed tools) for the test that builds a JS scaffold.
# Needs node and npm (tested with Node.js 20). Usage: bash scripts/build-js-plugin.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$root/examples/js-exclusion"
out_dir="${CARGO_TARGET_DIR:-$root/target}/js-plugins"
out="$out_dir/js_exclusion.wasm"

for tool in node npm; do
    if ! command -v "$tool" >/dev/null; then
        echo "build-js-plugin: $tool is missing; install Node.js (tested with 20) with npm" >&2
        exit 1
    fi
done

lock_sum="$(sha256sum "$src/package-lock.json" | cut -d' ' -f1)"
if ! [ -f "$src/node_modules/.lock.stamp" ] || [ "$(cat "$src/node_modules/.lock.stamp")" != "$lock_sum" ]; then
    # Output to stderr: stdout is the component's path only.
    (cd "$src" && npm ci --no-audit --no-fund --loglevel=error >&2)
    echo "$lock_sum" > "$src/node_modules/.lock.stamp"
fi

mkdir -p "$out_dir"
want="$(cat "$src"/*.js "$src/package.json" "$root"/wit/0.1/*.wit | sha256sum | cut -d' ' -f1) $lock_sum"
if [ -f "$out" ] && [ -f "$out.stamp" ] && [ "$(cat "$out.stamp")" = "$want" ]; then
    echo "$out"
    exit 0
fi
# The build command is package.json's `build` script (the one a scaffolded project has too):
# `-d stdio http fetch-event` leaves out StarlingMonkey's console, fetch and file descriptors, so
# the component imports no wasi:filesystem, wasi:http or terminal; the host refuses those.
(cd "$src" && npm run --silent build -- -o "$out.tmp" >&2)
mv "$out.tmp" "$out"
echo "$want" > "$out.stamp"
echo "$out"
