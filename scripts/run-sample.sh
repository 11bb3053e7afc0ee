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
say() { echo "[run-sample] $*" >&2; }
say "building the upsample binary (release${features[*]:+, ${features[*]}}): the first build compiles"
say "about 300 crates and HDF5 from source, about 12 minutes on 2 cores (cargo shows its progress);"
say "later builds take seconds"
cargo build --release -p upsample "${features[@]}"
say "running: upsample --snapshot data/snap_099.hdf5 --config pipelines/quick.toml --out out/sample $*"
say "(the flow method on 4 cells: about 5 minutes on 2 cores; --method kernel: seconds)"
# cargo run (not target/release/...) so that a CARGO_TARGET_DIR set by the user is honoured.
exec cargo run --release -q -p upsample "${features[@]}" -- \
    --snapshot data/snap_099.hdf5 --config pipelines/quick.toml --out out/sample "$@"
