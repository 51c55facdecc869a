#!/usr/bin/env bash
# The first command of a fresh machine: install what is missing, build, and run the embedded
# default job (write a small MLKV model and generate from it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh
build/launcher/strata demo
