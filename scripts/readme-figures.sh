#!/usr/bin/env bash
# Regenerates the two figures the README shows, docs/figures/maps_galaxy.png and
# docs/figures/profiles_run.png, from the sample run of scripts/run-sample.sh (the flow method,
# pipelines/quick.toml, about 5 minutes on 2 cores): particles beside stars, and the radial
# profiles of the stars against the held-out particles.
# UPSAMPLE_BIN=path/to/upsample uses that binary instead of building the release one.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=env.sh
source scripts/env.sh
bin=${UPSAMPLE_BIN:-}
if [ -z "$bin" ]; then
    cargo build --release -p upsample
    bin=target/release/upsample
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$bin" --snapshot data/snap_099.hdf5 --config pipelines/quick.toml --out "$out/run"
mkdir -p docs/figures
for f in maps_galaxy.png profiles_run.png; do
    if [ ! -f "$out/run/figures/$f" ]; then
        echo "readme-figures: $f was not drawn (see $out/run/report.html notes)" >&2
        exit 1
    fi
    cp "$out/run/figures/$f" docs/figures/
    size=$(stat -c %s "docs/figures/$f")
    echo "docs/figures/$f: $size bytes"
    if [ "$size" -ge 300000 ]; then
        echo "readme-figures: $f is over 300 KB" >&2
        exit 1
    fi
done
