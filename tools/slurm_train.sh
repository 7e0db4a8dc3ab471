#!/usr/bin/env bash
# Training on a Slurm cluster (MMDetection's tools/slurm_train.sh convention):
#   [GPUS=16 GPUS_PER_NODE=8 CPUS_PER_TASK=5 SRUN_ARGS=...] tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py options...]
# srun starts one task per GPU; MMEngine reads the rank, world size and master address from Slurm's
# environment (--launcher slurm, NCCL), so this needs GPUs.
set -euo pipefail
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
shift 4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-}
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
# shellcheck disable=SC2086  # SRUN_ARGS holds several options
exec srun -p "$PARTITION" --job-name="$JOB_NAME" --gres=gpu:"$GPUS_PER_NODE" --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" --cpus-per-task="$CPUS_PER_TASK" --kill-on-bad-exit=1 $SRUN_ARGS \
    "$PY" -u tools/train.py "$CONFIG" --work-dir="$WORK_DIR" --launcher slurm "$@"
