#!/usr/bin/env bash
# The second command of a fresh machine: install what is missing, build, run every test.
# GPU-labelled tests skip with a message where no CUDA device answers.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh
cd "${STRATA_BUILD_DIR:-build}"
ctest --output-on-failure -j "${STRATA_JOBS:-$(nproc)}" --timeout 600
