#!/usr/bin/env bash
# Every shell script of the repository passes shellcheck (scripts, tests, deploy).
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files 2>/dev/null '*.sh' '*.slurm' .ci/run || find scripts tests deploy -name '*.sh' -o -name '*.slurm')
shellcheck "${files[@]}"
echo "shellcheck: ${#files[@]} scripts clean"
