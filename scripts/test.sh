#!/usr/bin/env bash
# The project's whole test suite, from a fresh clone: installs what it needs (scripts/env.sh),
# then tests the two builds users make:
#   1. the default build (pure-Rust flex backend only, what `cargo build` gives): clippy, then
#      every test on flex;
#   2. the build with the libtorch backend compiled in (`--features tch`): clippy, then every
#      test on libtorch (CPU); CUDA tests run when a GPU is present.
# Without a GPU it installs the CPU half of libtorch only (`env.sh --tch-cpu`, ~1.7 GB instead of
# ~6.7 GB with CUDA: a CI machine ran out of disk on the full wheel).
# Also checks formatting. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
stamp() { echo "[test.sh] $(( $(date +%s) - t0 ))s: $*"; }

# shellcheck source=env.sh
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    source scripts/env.sh --tch
else
    source scripts/env.sh --tch-cpu
fi
df -h . | tail -1
stamp "environment ready"

cargo fmt --all -- --check
stamp "fmt clean"

echo "=== default build (flex only) ==="
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --no-run
stamp "default build: clippy clean, built"
CNF_TEST_DEVICE=flex cargo test --workspace
stamp "default build: tests on flex done"

echo "=== build with libtorch (tch) ==="
FEATURES="upsample/tch,cnf/tch"
cargo clippy --workspace --all-targets --features "$FEATURES" -- -D warnings
cargo test --workspace --features "$FEATURES" --no-run
stamp "tch build: clippy clean, built"
CNF_TEST_DEVICE=libtorch cargo test --workspace --features "$FEATURES"
stamp "tch build: tests on libtorch done"

echo "=== CUDA (runs when a GPU is visible, else prints why it is skipped) ==="
cargo test --workspace --features "$FEATURES" --test flow_math cuda_when_present -- --nocapture 2>&1 | { grep -E "SKIPPED|test result|cuda" || true; }
stamp "all done"
