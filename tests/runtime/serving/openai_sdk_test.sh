#!/usr/bin/env bash
# Starts `strata serve` on a small model and runs openai_sdk_test.py against it (the official
# `openai` Python SDK, in the virtual environment scripts/python_env.sh makes); the kernel's count
# of reset established connections (Tcp EstabResets, /proc/net/snmp) must not move meanwhile.
# Usage: openai_sdk_test.sh STRATA_BIN VENV_PYTHON
set -uo pipefail
strata=$1
python=$2
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
if ! "$python" -c 'import openai, jsonschema'; then
  echo "$python cannot import openai and jsonschema (scripts/python_env.sh installs them)"; exit 1
fi
port=$(( 12000 + $$ % 2000 ))
"$strata" make-model "$work/model" --layers 2 --hidden 64 --heads 4 --vocab 512 --seed 4 >/dev/null || exit 1
"$strata" serve --model "$work/model" --threads 1 --port "$port" --max-pending 4096 >"$work/log" 2>&1 &
server=$!
for _ in $(seq 1 120); do
  curl -sf "localhost:$port/health/ready" >/dev/null && break
  sleep 0.25
done
resets() { awk '/^Tcp:/ { if (!h) { for (i = 1; i <= NF; ++i) if ($i == "EstabResets") c = i; h = 1 } else print $c }' /proc/net/snmp; }
before=$(resets)
"$python" "$here/openai_sdk_test.py" "http://127.0.0.1:$port"
code=$?
after=$(resets)
echo "TCP EstabResets before $before, after $after"
if [ "$code" -ne 0 ]; then tail -20 "$work/log"; exit 1; fi
if [ "$after" -ne "$before" ]; then echo "FAIL: $((after - before)) established connections were reset"; exit 1; fi
echo "1 passed, 0 failed"
