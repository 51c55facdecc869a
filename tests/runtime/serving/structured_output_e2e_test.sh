#!/usr/bin/env bash
# Structured outputs through `strata serve` on random-weight models with real tokenizers:
# SmolLM2's (a 49,152-token byte-level BPE, written from its GGUF by scripts/python_env.sh) on a
# Pythia-shaped (gpt_neox) model, and
# a SentencePiece BPE (byte fallback, trained here with Debian's spm_train on Python's standard
# library) on a Llama-shaped one, under `mpirun -np 4 --tp 2 --pp 2` (the masks are computed on
# rank 0, where sampling happens). structured_output_e2e_test.py sends REQUESTS requests over 20
# schemas to each and validates every output with jsonschema.
# Usage: structured_output_e2e_test.sh STRATA_BIN VENV_PYTHON SMOLLM2_TOKENIZER_DIR [REQUESTS]
set -uo pipefail
strata=$1
python=$2
smol_tokenizer=$3
requests=${4:-200}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; [ -f "$work/log" ] && tail -30 "$work/log"; echo "0 passed, 1 failed"; exit 1; }
"$python" -c "import jsonschema" || fail "$python cannot import jsonschema (scripts/python_env.sh installs it)"
[ -f "$smol_tokenizer/tokenizer.json" ] || fail "$smol_tokenizer/tokenizer.json is missing (scripts/python_env.sh writes it)"

serve_and_check() {  # NAME MODEL_DIR TP PP
  local name=$1 model=$2 tp=$3 pp=$4
  local port=$(( 18000 + ($$ + ${#name}) % 1500 ))
  if [ "$tp" = 1 ] && [ "$pp" = 1 ]; then
    "$strata" serve --model "$model" --threads 1 --port "$port" --max-seqs 8 --served-model-name model >"$work/log" 2>&1 &
  else
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 \
      mpirun -np $((tp * pp)) "$strata" serve --model "$model" --tp "$tp" --pp "$pp" --threads 1 --port "$port" \
      --max-seqs 8 --served-model-name model >"$work/log" 2>&1 &
  fi
  server=$!
  local ready=0
  for _ in $(seq 1 600); do
    curl -sf "localhost:$port/health/ready" >/dev/null && { ready=1; break; }
    kill -0 "$server" 2>/dev/null || break
    sleep 0.25
  done
  [ "$ready" = 1 ] || fail "$name: the server did not become ready"
  "$python" "$here/structured_output_e2e_test.py" "http://127.0.0.1:$port" "$requests" || fail "$name"
  echo "$name: ok"
  kill "$server"; wait "$server" 2>/dev/null; server=""
}

"$strata" make-model "$work/smol" --family gpt_neox --layers 2 --hidden 64 --heads 4 --vocab 49152 \
  --tokenizer "$smol_tokenizer" --seed 20 >/dev/null || fail "make-model (SmolLM2's vocabulary)"
serve_and_check "SmolLM2 tokenizer, gpt_neox" "$work/smol" 1 1

mkdir -p "$work/tok"
find /usr/lib/python3*/ -maxdepth 1 -name '*.py' | sort | xargs cat 2>/dev/null | head -c 1000000 >"$work/corpus.txt"
spm_train --input="$work/corpus.txt" --model_prefix="$work/tok/tokenizer" --vocab_size=4000 --model_type=bpe \
  --byte_fallback=true --character_coverage=1.0 --num_threads=2 --minloglevel=2 >"$work/spm.log" 2>&1 ||
  { tail -5 "$work/spm.log"; fail "spm_train"; }
"$strata" make-model "$work/spm" --family llama --layers 2 --hidden 64 --heads 4 --kv-heads 2 --vocab 4000 \
  --tokenizer "$work/tok" --seed 21 >/dev/null || fail "make-model (SentencePiece)"
# The checkpoint's tokenizer is the SentencePiece model itself (make-model once left its random
# model's tokenizer.json beside it, which loads first).
text="def foo(x): return {'a': [1, 2]}  # ünïcode"
ids=$("$strata" tokenize --model "$work/spm" --text "$text" --add-special-tokens=false) || fail "strata tokenize"
want=$(echo "$text" | spm_encode --model "$work/tok/tokenizer.model" --output_format=id | tr ' ' ',')
[ "$ids" = "$want" ] || fail "the checkpoint's tokenizer encodes '$text' as $ids; spm_encode: $want"
serve_and_check "SentencePiece tokenizer, llama, tp 2 x pp 2" "$work/spm" 2 2
echo "1 passed, 0 failed"
