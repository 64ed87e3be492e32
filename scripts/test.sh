#!/usr/bin/env bash
# The whole test suite: Rust unit and end-to-end tests, then the real-Microsoft-client tests in
# Python against the simulator. README.md names this script; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --locked --bins

# The Python tools come first: the plugin tests build Python components with componentize-py
# (the example exclusion plugin and `plugin new --lang python` projects).
bash scripts/python-env.sh
export M365SYNC_COMPONENTIZE_PY="$PWD/.venv/bin/componentize-py"
M365SYNC_PY_PLUGIN="$(bash scripts/build-python-plugin.sh)"
export M365SYNC_PY_PLUGIN
# The JavaScript tools (npm ci of examples/js-exclusion's lockfile) and the JS example component;
# the scaffold test builds `plugin new --lang js` projects with the same node_modules.
M365SYNC_JS_PLUGIN="$(bash scripts/build-js-plugin.sh)"
export M365SYNC_JS_PLUGIN
export M365SYNC_JS_NODE_MODULES="$PWD/examples/js-exclusion/node_modules"

cargo test --locked --workspace -- --test-threads 2

if [ -f tests/python/requirements.txt ]; then
  M365SYNC_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/m365sync" .venv/bin/python -m pytest tests/python -q -p no:cacheprovider
fi
