#!/bin/bash
# Slurm job-array template for the flow method: each array task trains and samples its share of
# the clusters (--shard I/N) into one shared run folder; a dependent job merges them into
# catalog.hdf5 and report.json, identical to a single-process run with the same seed.
#
# Submit (N shards; edit the paths and resources below first):
#   N=16
#   jid=$(sbatch --parsable --array=0-$((N-1)) pipelines/slurm-array.sh)
#   sbatch --dependency=afterok:$jid --wrap "upsample merge $RUN_DIR"
#
# A task that dies (time limit, node failure) can simply be resubmitted with the same array
# index: finished clusters are kept, interrupted ones restart, and the result does not change.
#
#SBATCH --job-name=upsample
#SBATCH --cpus-per-task=16
#SBATCH --mem=32G
#SBATCH --time=12:00:00
#SBATCH --output=upsample-%A_%a.log
##SBATCH --gres=gpu:1            # with a `tch` build and DEVICE=cuda:0

set -euo pipefail
SNAPSHOT=${SNAPSHOT:-/path/to/snapdir_099/}
RUN_DIR=${RUN_DIR:-/scratch/$USER/upsample/run_099}
CONFIG=${CONFIG:-pipelines/default.toml}
DEVICE=${DEVICE:-flex}             # flex | libtorch | cuda:0
SEED=${SEED:-1}
N=${SLURM_ARRAY_TASK_COUNT:?submit as an array: sbatch --array=0-15 ...}
I=${SLURM_ARRAY_TASK_ID:?submit as an array}

# Clusters of a task run in parallel on its cores (rayon); libtorch's threads are shared out.
export RAYON_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}

upsample --snapshot "$SNAPSHOT" --config "$CONFIG" --out "$RUN_DIR" \
    --device "$DEVICE" --seed "$SEED" --method flow --shard "$I/$N"
