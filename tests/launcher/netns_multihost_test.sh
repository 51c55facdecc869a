#!/usr/bin/env bash
# Two "hosts" without a cluster: network namespaces joined by a veth pair (10.77.0.1 and
# 10.77.0.2), each rank in its own namespace, mpirun over TCP with a hostfile of IP addresses
# (Open MPI reaches the second namespace through an rsh agent that runs `ip netns exec` instead
# of ssh). Checks: pp 2 and tp 2 across the hosts print the single-rank tokens (logprobs within
# 1e-4), and killing the rank on the second host mid-run ends the job non-zero, without a hang.
# Needs root (CAP_NET_ADMIN); exits 77 (ctest: skipped) where namespaces cannot be made.
# Usage: netns_multihost_test.sh STRATA_BIN MPIEXEC
set -euo pipefail
strata=${1:?usage: netns_multihost_test.sh STRATA_BIN MPIEXEC}
mpiexec=${2:?usage: netns_multihost_test.sh STRATA_BIN MPIEXEC}
tag=$$
ns_a=strata-a-$tag
ns_b=strata-b-$tag
work=$(mktemp -d)
cleanup() {
  ip netns pids "$ns_b" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  ip netns del "$ns_a" 2>/dev/null || true
  ip netns del "$ns_b" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
if ! ip netns add "$ns_a" 2>"$work/err"; then
  echo "SKIP: cannot create network namespaces here: $(cat "$work/err")"
  exit 77
fi
ip netns add "$ns_b"
ip link add "va$tag" type veth peer name "vb$tag"
ip link set "va$tag" netns "$ns_a"
ip link set "vb$tag" netns "$ns_b"
ip -n "$ns_a" addr add 10.77.0.1/24 dev "va$tag"
ip -n "$ns_b" addr add 10.77.0.2/24 dev "vb$tag"
for ns in "$ns_a" "$ns_b"; do
  ip -n "$ns" link set lo up
done
ip -n "$ns_a" link set "va$tag" up
ip -n "$ns_b" link set "vb$tag" up

cat > "$work/agent.sh" <<AGENT
#!/bin/sh
# Open MPI rsh agent: the "host" is a namespace's address; run the command inside it.
host=\$1
shift
case "\$host" in
  10.77.0.1) ns=$ns_a ;;
  10.77.0.2) ns=$ns_b ;;
  *) echo "netns agent: unknown host \$host" >&2; exit 1 ;;
esac
exec ip netns exec "\$ns" sh -c "\$*"
AGENT
chmod +x "$work/agent.sh"
printf '10.77.0.1 slots=1\n10.77.0.2 slots=1\n' > "$work/hostfile"

mpirun_two_hosts() {
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ip netns exec "$ns_a" \
    timeout 120 "$mpiexec" -np 2 --hostfile "$work/hostfile" --mca plm_rsh_agent "$work/agent.sh" \
    --mca oob_tcp_if_include 10.77.0.0/24 --mca btl_tcp_if_include 10.77.0.0/24 --mca btl tcp,self "$@"
}

"$strata" make-model "$work/model" --family gpt_neox --layers 4 --hidden 64 --heads 4 --kv-layers 2 \
  --kv-heads 2 --vocab 300 --max-position 32768 --seed 3 > /dev/null
args=(generate --model "$work/model" --prompt-ids '5,17,3,250,9;11;7,3,9,2,200,1,1' --max-tokens 6
      --ignore-eos --json --threads 1 --kv-dtype float32)
"$strata" "${args[@]}" > "$work/single.json"
for layout in "--pp 2" "--tp 2"; do
  # shellcheck disable=SC2086  # the layout is two words
  mpirun_two_hosts "$strata" "${args[@]}" $layout > "$work/two.json"
  python3 - "$work/single.json" "$work/two.json" "$layout" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert len(a) == len(b) == 3, (a, b)
for x, y in zip(a, b):
    assert x["tokens"] == y["tokens"], (sys.argv[3], x, y)
    assert all(abs(p - q) <= 1e-4 for p, q in zip(x["logprobs"], y["logprobs"])), (sys.argv[3], x, y)
print(f"{sys.argv[3]} across two network namespaces: same tokens as one rank")
PY
done

# Kill the rank on the second host in the middle of a long run: the job must end, non-zero.
mpirun_two_hosts "$strata" generate --model "$work/model" --prompt-ids 1,2,3 --max-tokens 30000 --kv-memory 67108864 \
  --ignore-eos --threads 1 --pp 2 > "$work/killed.out" 2>&1 &
job=$!
for _ in $(seq 100); do
  pid=""
  for p in $(ip netns pids "$ns_b"); do
    if [ "$(cat "/proc/$p/comm" 2>/dev/null || true)" = strata ]; then pid=$p; fi
  done
  [ -n "$pid" ] && break
  sleep 0.2
done
[ -n "$pid" ] || { echo "the rank on the second host never started" >&2; cat "$work/killed.out" >&2; exit 1; }
sleep 1
kill -9 "$pid"
set +e
wait "$job"
code=$?
set -e
if [ "$code" -eq 0 ] || [ "$code" -eq 124 ]; then
  echo "killing the second host's rank: job exit $code (0 = not noticed, 124 = hang)" >&2
  cat "$work/killed.out" >&2
  exit 1
fi
echo "killing the second host's rank ended the job with exit $code"
