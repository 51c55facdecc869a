#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (clang, ASan + UBSan) and runs each for SECONDS
# (default 60) from a copy of its committed seed corpus. A crash stops the run with the input
# saved in build-fuzz/crashes/; it becomes a unit test once fixed. Usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
build="build-fuzz"
cmake -S tests/fuzz -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C "$build" >/dev/null
mkdir -p "$build/crashes"
for target in openai_request chat_template tokenizer safetensors grammar gguf; do
  work="$build/corpus/$target"
  rm -rf "$work" && mkdir -p "$work" && cp tests/fuzz/corpus/"$target"/* "$work"/
  echo "fuzz_$target: ${seconds}s"
  "$build/fuzz_$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$build/crashes/$target-" "$work" 2>"$build/$target.log" ||
    { tail -40 "$build/$target.log"; echo "fuzz_$target FAILED: the input is in $build/crashes/"; exit 1; }
  grep -E "^stat::number_of_executed_units|^stat::new_units_added" "$build/$target.log" | tr '\n' ' '
  echo
done
echo "fuzz: every target ran ${seconds}s without a finding"
