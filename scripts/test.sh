#!/usr/bin/env bash
# The whole test suite: Rust unit and end-to-end tests, then the real-Microsoft-client tests in
# Python against the simulator. README.md names this script; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --locked --bins
cargo test --locked --workspace -- --test-threads 2

if [ -f tests/python/requirements.txt ]; then
  bash scripts/python-env.sh
  M365SYNC_BIN="$PWD/target/debug/m365sync" .venv/bin/python -m pytest tests/python -q -p no:cacheprovider
fi
