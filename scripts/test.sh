#!/usr/bin/env bash
# The project's whole test suite, from a fresh clone: installs what it needs (scripts/env.sh),
# lints the default build, builds the tests once and runs them on both CPU backends:
#   1. clippy -D warnings on the default build (pure-Rust flex backend only, what `cargo build`
#      gives);
#   2. one test build, with libtorch compiled in (flex is in every build) and rustc's warnings
#      denied (RUSTFLAGS), which lints the few lines that only the tch build compiles. Clippy on
#      the tch build would re-check every dependency (~11 minutes on a CI machine) for those
#      lines: run `cargo clippy --workspace --all-targets --features tch` when changing them;
#   3. every test on flex, except the three test galaxies' accuracy (tests/galaxies.rs);
#   4. on libtorch (CPU): every test that touches the backend (cnf, upsample), including the
#      test galaxies' accuracy but not the sample's two slow accuracy tests in tests/flow.rs,
#      which ran on flex. Each slow end-to-end accuracy test thus runs once, on one backend;
#      cnf/tests/backends.rs (on the flex pass; it uses both) shows in seconds that both
#      backends train the same flow alike.
#      CUDA tests run when a GPU is present.
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

FEATURES="upsample/tch,cnf/tch"
# The slow end-to-end accuracy tests (names as given to --skip: a substring of each test's name).
SAMPLE_ACCURACY=(flow_catalogue_matches_the_analytic_system
                 accelerations_from_whole_galaxy_flows_match_the_analytic_system)
GALAXY_ACCURACY=quick_flows_keep_

echo "=== clippy: the default build (flex only) ==="
cargo clippy --workspace --all-targets -- -D warnings
stamp "clippy clean"

echo "=== one test build (libtorch compiled in, warnings denied) ==="
export RUSTFLAGS="${RUSTFLAGS:-} -D warnings"
cargo test --workspace --features "$FEATURES" --no-run
stamp "tests built"

echo "=== every test on flex (the test galaxies' accuracy runs on libtorch below) ==="
CNF_TEST_DEVICE=flex cargo test --workspace --features "$FEATURES" -- --skip "$GALAXY_ACCURACY"
stamp "tests on flex done"

echo "=== the tests that touch the backend, on libtorch (CPU) ==="
skips=()
for t in "${SAMPLE_ACCURACY[@]}"; do skips+=(--skip "$t"); done
CNF_TEST_DEVICE=libtorch cargo test --workspace --features "$FEATURES" --lib --bins \
    --test fit --test flow_math --test parallel --test trace --test weighted_likelihood \
    --test accel_cli --test e2e --test figures --test flow --test galaxies \
    --test survey -- "${skips[@]}"
stamp "tests on libtorch done"

echo "=== CUDA (runs when a GPU is visible, else prints why it is skipped) ==="
cargo test --workspace --features "$FEATURES" --test flow_math cuda_when_present -- --nocapture 2>&1 | { grep -E "SKIPPED|test result|cuda" || true; }
stamp "all done"
