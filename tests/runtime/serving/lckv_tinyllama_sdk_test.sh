#!/usr/bin/env bash
# A TinyLlama-shaped LCKV checkpoint (22 layers, hidden 2048, 32 heads, 4 KV heads, MLP 5632,
# 32000-token vocabulary, random BF16 weights; layers 1-20 read layer 20's K/V, LCKV's w=2 string)
# with a 32000-piece SentencePiece BPE tokenizer.model (byte fallback, trained here with Debian's
# spm_train on Python's standard library sources) and TinyLlama-Chat's chat template serves chat
# through the official `openai` Python SDK under `mpirun -np 4 strata serve --tp 2 --pp 2`. The
# SDK's greedy answer must equal a single-rank `strata generate` of the same prompt ids.
# Usage: lckv_tinyllama_sdk_test.sh STRATA_BIN VENV_PYTHON
set -uo pipefail
strata=$1
python=$2
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; [ -f "$work/log" ] && tail -30 "$work/log"; echo "0 passed, 1 failed"; exit 1; }
"$python" -c "import openai" || fail "$python cannot import openai (scripts/python_env.sh installs it)"

mkdir -p "$work/tok"
find /usr/lib/python3*/ -maxdepth 1 -name '*.py' | sort | xargs cat 2>/dev/null | head -c 3000000 >"$work/corpus.txt"
spm_train --input="$work/corpus.txt" --model_prefix="$work/tok/tokenizer" --vocab_size=32000 --model_type=bpe \
  --byte_fallback=true --character_coverage=1.0 --max_sentence_length=8192 --num_threads=2 --minloglevel=2 \
  >"$work/spm.log" 2>&1 || { tail -5 "$work/spm.log"; fail "spm_train"; }
python3 - "$work/tok/tokenizer_config.json" <<'PY'
import json, sys
template = ("{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n"
            "{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
            "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n"
            "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}")
json.dump({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": True,
           "add_eos_token": False, "chat_template": template}, open(sys.argv[1], "w"))
PY
layer_types="0_$(printf '20_%.0s' $(seq 1 20))21"
"$strata" make-model "$work/model" --family llama --layers 22 --hidden 2048 --heads 32 --kv-heads 4 \
  --intermediate 5632 --vocab 32000 --max-position 2048 --layer-types "$layer_types" --dtype bfloat16 \
  --tokenizer "$work/tok" --seed 22 >/dev/null || fail "make-model"

port=$(( 16000 + $$ % 2000 ))
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 \
  mpirun -np 4 "$strata" serve --model "$work/model" --tp 2 --pp 2 --threads 1 --port "$port" \
  --max-seqs 4 >"$work/log" 2>&1 &
server=$!
ready=0
for _ in $(seq 1 600); do
  curl -sf "localhost:$port/health/ready" >/dev/null && { ready=1; break; }
  kill -0 "$server" 2>/dev/null || break
  sleep 0.5
done
[ "$ready" = 1 ] || fail "the server did not become ready"
"$python" "$here/lckv_tinyllama_sdk_test.py" "http://127.0.0.1:$port" "$work/answer.json" || fail "SDK chat"
prompt_ids=$(python3 -c 'import json, sys; print(",".join(map(str, json.load(open(sys.argv[1]))["prompt"])))' \
  "$work/answer.json") || fail "no prompt ids"
kill "$server"; wait "$server" 2>/dev/null; server=""
"$strata" generate --model "$work/model" --prompt-ids "$prompt_ids" --max-tokens 4 --json --threads 2 \
  >"$work/alone.json" 2>"$work/alone.log" || { cat "$work/alone.log"; fail "single-rank generate"; }
python3 - "$work/answer.json" "$work/alone.json" <<'PY' || fail "the served answer differs from one rank's"
import json, sys
served, alone = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
print("prompt", len(served["prompt"]), "tokens; served", served["ids"], "alone", alone["tokens"])
assert served["ids"] == alone["tokens"]
PY
echo "1 passed, 0 failed"
