#!/usr/bin/env bash
# The project's whole test suite, from a fresh clone: installs what it needs (scripts/env.sh),
# builds the workspace once with the libtorch backend compiled in, then runs every test twice:
# on the pure-Rust flex backend and on libtorch (CPU). CUDA tests run when a GPU is present.
# Also checks formatting and clippy. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
stamp() { echo "[test.sh] $(( $(date +%s) - t0 ))s: $*"; }

# shellcheck source=env.sh
source scripts/env.sh --tch
stamp "environment ready"

cargo fmt --all -- --check
FEATURES="upsample/tch,cnf/tch"
cargo clippy --workspace --all-targets --features "$FEATURES" -- -D warnings
stamp "fmt and clippy clean"

cargo test --workspace --features "$FEATURES" --no-run
stamp "built"

echo "=== tests on the flex backend ==="
CNF_TEST_DEVICE=flex cargo test --workspace --features "$FEATURES"
stamp "flex tests done"

echo "=== tests on the libtorch (CPU) backend ==="
CNF_TEST_DEVICE=libtorch cargo test --workspace --features "$FEATURES"
stamp "libtorch tests done"

echo "=== CUDA (runs when a GPU is visible, else prints why it is skipped) ==="
cargo test --workspace --features "$FEATURES" --test flow_math cuda_when_present -- --nocapture 2>&1 | { grep -E "SKIPPED|test result|cuda" || true; }
stamp "all done"
