#!/usr/bin/env bash
# Configures and builds Strata into ./build (Release). Extra arguments go to cmake, e.g.
# -DSTRATA_WITH_CUDA=OFF or -DCMAKE_CUDA_ARCHITECTURES="90". STRATA_BUILD_TARGETS (space-separated)
# builds only those targets.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${STRATA_BUILD_DIR:-build}
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release "$@"
elif [ "$#" -gt 0 ]; then
  cmake -S . -B "$build_dir" "$@"
fi
targets=()
[ -n "${STRATA_BUILD_TARGETS:-}" ] && read -ra targets <<<"--target $STRATA_BUILD_TARGETS"
cmake --build "$build_dir" -j "${STRATA_JOBS:-$(nproc)}" "${targets[@]}"
