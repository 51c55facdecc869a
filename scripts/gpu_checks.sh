#!/usr/bin/env bash
# Everything issue 5 checks on a machine with a GPU, after scripts/build.sh: the gpu-labelled
# tests, compute-sanitizer on the kernel tests, and decode throughput of Pythia-160M-shaped MHA
# and MLKV-2 models at batch 1 and 64 on one GPU. Results go to $1 (default build/gpu-checks).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/gpu-checks}
mkdir -p "$out"
strata=build/launcher/strata
nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true

# STRATA_REQUIRE_GPU=1: on this machine a GPU test that skips is a failure.
(cd build && STRATA_REQUIRE_GPU=1 ctest -L gpu --output-on-failure) 2>&1 | tee "$out/ctest-gpu.txt"

sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
if [ -x "$sanitizer" ]; then
  for tool in memcheck racecheck; do
    "$sanitizer" --tool "$tool" --error-exitcode 1 build/tests/cuda_kernels_test \
      --gtest_filter='CudaKernels.*:CudaAttention.PrefillChunksAfterACachedPrefix:CudaAttention.MaskedDiagonalWindowsRingsAndRawKeys' \
      2>&1 | tail -20 | tee "$out/sanitizer-$tool.txt"
  done
else
  echo "compute-sanitizer not found" | tee "$out/sanitizer-missing.txt"
fi

common=(--layers 12 --hidden 768 --heads 12 --intermediate 3072 --vocab 50304 --max-position 2048
        --dtype bfloat16 --seed 1 --family gpt_neox)
models=$(mktemp -d)
"$strata" make-model "$models/mha" "${common[@]}"
"$strata" make-model "$models/mlkv2" "${common[@]}" --kv-layers 2 --kv-heads 1
for model in mha mlkv2; do
  for batch in 1 64; do
    "$strata" bench offline --device cuda --model "$models/$model" --batch "$batch" --prompt-len 128 \
      --output-len 128 --json > "$out/bench-$model-b$batch.json"
    echo "$model batch $batch: $(grep -o '"decode_tokens_per_s":[^,]*' "$out/bench-$model-b$batch.json")"
  done
done | tee "$out/decode.txt"
rm -rf "$models"
