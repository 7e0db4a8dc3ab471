#!/usr/bin/env bash
# Distributed training: tools/dist_train.sh CONFIG NPROC_PER_NODE [train.py options...]
# Several machines (MMDetection's convention): run it once per machine with the same PORT and
#   NNODES=M NODE_RANK=0..M-1 MASTER_ADDR=<address of node 0> tools/dist_train.sh CONFIG NPROC_PER_NODE
# GPUs: NCCL. CPU-only machines: gloo, initialised by fgclip2_det/apis/launch.py (MMEngine's own init needs CUDA).
set -euo pipefail
CONFIG=$1
NPROC=$2
shift 2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
PORT=${PORT:-29500}
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
exec "$PY" -m torch.distributed.run --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --master_port="$PORT" --nproc_per_node="$NPROC" tools/train.py "$CONFIG" --launcher pytorch "$@"
