#!/usr/bin/env bash
# strata serve on 2 nodes x 8 GPUs: tp 8 inside each node, pp 2 across them. Run on node-a with
# the same model path and strata binary on both nodes (passwordless ssh between them).
# Each rank picks its GPU from its local rank and logs "strata rank R/16 host H stage S slice T
# device cuda:L" first; rank 0 (node-a) serves HTTP.
set -euo pipefail
model=${1:?usage: serve-2x8.sh MODEL_DIR}
# Before launching: does it fit in 80 GB per GPU with 20 GB of KV per rank?
strata plan --model "$model" --tp 8 --pp 2 --kv-memory 20000000000 --memory-per-rank 80000000000
exec mpirun -np 16 --hostfile "$(dirname "$0")/hostfile.example" --map-by slot \
  -x NCCL_DEBUG=WARN -x LD_LIBRARY_PATH \
  strata serve --model "$model" --device cuda --tp 8 --pp 2 --host 0.0.0.0 --port 8000
