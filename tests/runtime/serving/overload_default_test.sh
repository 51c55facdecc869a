#!/usr/bin/env bash
# `strata serve` with its default flags (--max-seqs 256, --max-pending auto) and 1,000 then 4,000
# concurrent streaming clients (`strata bench serve`): every request completes (none answered
# 503: the old default --max-pending 512 refused 488 of 1,000), and while the 4,000 wait their
# turn the queue shows in the metrics (strata_num_requests_waiting > 0, scraped during the run).
# Usage: overload_default_test.sh STRATA_BIN
set -uo pipefail
strata=$1
work=$(mktemp -d)
server=""
poller=""
trap '[ -n "$poller" ] && kill "$poller" 2>/dev/null; [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; [ -f "$work/log" ] && tail -20 "$work/log"; echo "0 passed, 1 failed"; exit 1; }
port=$(( 20000 + $$ % 2000 ))
"$strata" make-model "$work/model" --layers 2 --hidden 64 --heads 4 --vocab 512 --seed 4 >/dev/null || fail "make-model"
"$strata" serve --model "$work/model" --threads 1 --port "$port" >"$work/log" 2>&1 &
server=$!
ready=0
for _ in $(seq 1 120); do
  curl -sf "localhost:$port/health/ready" >/dev/null && { ready=1; break; }
  sleep 0.25
done
[ "$ready" = 1 ] || fail "the server did not become ready"
for clients in 1000 4000; do
  if [ "$clients" = 4000 ]; then
    (while true; do curl -s "localhost:$port/metrics" | awk '/^strata_num_requests_waiting/ {print $2}'; sleep 0.05; done \
      >"$work/waiting") &
    poller=$!
  fi
  "$strata" bench serve --url "http://127.0.0.1:$port" --concurrency "$clients" --num-prompts "$clients" \
    --prompt-len 8 --output-len 32 --json >"$work/bench.json" 2>"$work/bench.err" || fail "bench serve ($clients clients)"
  python3 - "$work/bench.json" "$clients" <<'PY' || fail "$clients clients"
import json, sys
r = json.load(open(sys.argv[1]))
n = int(sys.argv[2])
print(f"{n} concurrent streams: {r['completed']} completed, {r['errors']} errors {r['error_samples'][:3]}, "
      f"{r['duration_s']:.2f} s, ttft p99 {r['ttft_ms']['p99']:.0f} ms")
assert r["completed"] == n and r["errors"] == 0
PY
done
kill "$poller" 2>/dev/null; wait "$poller" 2>/dev/null; poller=""
most=$(sort -g "$work/waiting" | tail -1)
echo "most requests waiting in a scrape during the 4,000: ${most:-none}"
awk -v m="${most:-0}" 'BEGIN { exit !(m > 0) }' || fail "strata_num_requests_waiting never showed the queue"
echo "1 passed, 0 failed"
