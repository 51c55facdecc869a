#!/usr/bin/env bash
# Label mpi: kill -9 one rank of a running 2-rank job; mpirun must end the whole job with a
# non-zero exit within seconds, never hang. Usage: kill_rank_test.sh STRATA_BIN MPIEXEC
set -uo pipefail
strata=$1
mpiexec=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

"$strata" make-model "$work/m" --family llama --layers 4 --hidden 64 --heads 4 --seed 3 >/dev/null || exit 1
# A job that would run for minutes: many measured repeats.
timeout 120 "$mpiexec" -np 2 "$strata" bench offline --model "$work/m" --tp 2 --batch 2 --prompt-len 16 \
  --output-len 500 --repeat 100000 --threads 1 >"$work/out" 2>&1 &
job=$!

victim=""
for _ in $(seq 1 100); do  # find rank 1 by its environment
  for pid in $(pgrep -f "bench offline --model $work/m"); do
    if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1'; then victim=$pid; fi
  done
  [ -n "$victim" ] && break
  sleep 0.1
done
if [ -z "$victim" ]; then
  echo "rank 1 never started"; cat "$work/out"; kill "$job"; exit 1
fi
sleep 1
start=$(date +%s%N)
kill -9 "$victim"
wait "$job"
code=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "mpirun exit code $code after ${ms} ms"
tail -5 "$work/out"
if [ "$code" -eq 0 ] || [ "$code" -eq 124 ]; then echo "FAIL: the job did not end with an error"; exit 1; fi
if [ "$ms" -gt 20000 ]; then echo "FAIL: took ${ms} ms"; exit 1; fi
echo "1 passed, 0 failed"
