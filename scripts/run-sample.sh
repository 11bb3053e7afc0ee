#!/usr/bin/env bash
# The main job on the shipped sample, from a fresh clone: installs what the build needs
# (scripts/env.sh), builds the `upsample` binary in release mode and runs
#   upsample --snapshot data/snap_099.hdf5 --config pipelines/quick.toml --out out/sample
# Extra arguments are passed on (e.g. --device libtorch after building with UPSAMPLE_TCH=1).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${UPSAMPLE_TCH:-0}" = 1 ]; then
    # shellcheck source=env.sh
    source scripts/env.sh --tch
    features=(--features tch)
else
    # shellcheck source=env.sh
    source scripts/env.sh
    features=()
fi
# cargo run (not target/release/...) so that a CARGO_TARGET_DIR set by the user is honoured.
exec cargo run --release -q -p upsample "${features[@]}" -- \
    --snapshot data/snap_099.hdf5 --config pipelines/quick.toml --out out/sample "$@"
