#!/usr/bin/env bash
# Label mpi: kill -9 a worker rank of `strata serve` (tp 1 x pp 2) while a streaming request is in
# flight; mpirun must end the whole job with a message and a non-zero exit within seconds, and
# the client must see its connection end instead of hanging. Usage: kill_rank_serve_test.sh
# STRATA_BIN MPIEXEC
set -uo pipefail
strata=$1
mpiexec=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
port=$(( 26000 + $$ % 6000 ))  # below the ephemeral range (32768-), apart from serve_test's

"$strata" make-model "$work/m" --family gpt_neox --layers 4 --hidden 64 --heads 4 --kv-layers 2 --vocab 512 \
  --seed 3 >/dev/null || exit 1
timeout 120 "$mpiexec" -np 2 "$strata" serve --model "$work/m" --pp 2 --threads 1 --port "$port" >"$work/out" 2>&1 &
job=$!
for _ in $(seq 1 120); do
  curl -sf "localhost:$port/health/ready" >/dev/null && break
  sleep 0.25
done
# A request that would stream for a long time.
timeout 60 curl -sN "localhost:$port/v1/completions" -d '{"model": "m", "prompt": [1, 2, 3], "max_tokens": 3000,
  "ignore_eos": true, "stream": true}' >"$work/stream" 2>&1 &
client=$!
victim=""
for pid in $(pgrep -f "serve --model $work/m"); do
  if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1'; then victim=$pid; fi
done
if [ -z "$victim" ]; then
  echo "rank 1 not found"; cat "$work/out"; kill "$job"; exit 1
fi
for _ in $(seq 1 100); do  # wait until tokens flow
  [ "$(grep -c '"text"' "$work/stream")" -gt 3 ] && break
  sleep 0.05
done
start=$(date +%s%N)
kill -9 "$victim"
wait "$job"
code=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
wait "$client"
client_code=$?
echo "mpirun exit code $code after ${ms} ms; client exit code $client_code"
tail -4 "$work/out"
if [ "$code" -eq 0 ] || [ "$code" -eq 124 ]; then echo "FAIL: the job did not end with an error"; exit 1; fi
if [ "$ms" -gt 20000 ]; then echo "FAIL: took ${ms} ms"; exit 1; fi
if [ "$client_code" -eq 124 ]; then echo "FAIL: the client hung"; exit 1; fi
if ! grep -q "exited on signal 9\|killed" "$work/out"; then echo "FAIL: no message names the dead rank"; exit 1; fi
echo "1 passed, 0 failed"
