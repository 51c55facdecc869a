#!/usr/bin/env bash
# SmolLM2-135M-Instruct's GGUF (a real trained model) under real mpirun: tp 3, pp 2 and tp 3 x pp 2
# give the single rank's greedy tokens for a prompt, and the single rank continues
# "The capital of France is" with " Paris" (its tokens as `strata tokenize` spells them).
# Usage: gguf_layouts_test.sh STRATA_BIN MPIEXEC SMOLLM2_GGUF
set -uo pipefail
strata=$1
mpiexec=$2
gguf=$3
fail() { echo "FAIL: $*"; echo "0 passed, 1 failed"; exit 1; }
[ -f "$gguf" ] || fail "$gguf is missing (scripts/python_env.sh fetches it)"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
prompt=$("$strata" tokenize --model "$gguf" --text "The capital of France is") || fail "tokenize"
alone=$("$strata" generate --model "$gguf" --prompt-ids "$prompt" --max-tokens 12 --json --threads 2 2>/dev/null) ||
  fail "single-rank generate"
tokens() { python3 -c 'import json, sys; print(json.loads(sys.stdin.read())["tokens"])'; }
want=$(echo "$alone" | tokens)
paris=$("$strata" tokenize --model "$gguf" --text " Paris")
first=$(echo "$alone" | python3 -c 'import json, sys; print(json.loads(sys.stdin.read())["tokens"][0])')
[ "$first" = "$paris" ] || fail "the model continues with token $first, not ' Paris' ($paris): $alone"
echo "one rank: $want"
for layout in "3 --tp 3" "2 --pp 2" "6 --tp 3 --pp 2"; do
  read -r np args <<<"$layout"
  # shellcheck disable=SC2086
  got=$(timeout 600 "$mpiexec" -np "$np" "$strata" generate --model "$gguf" $args --prompt-ids "$prompt" \
        --max-tokens 12 --json --threads 1 2>/dev/null | tokens) || fail "mpirun -np $np $args"
  echo "np $np $args: $got"
  [ "$got" = "$want" ] || fail "np $np $args gives $got, one rank $want"
done
echo "1 passed, 0 failed"
