#!/usr/bin/env bash
# The LWS leader: builds the mpirun hostfile from the LeaderWorkerSet environment, waits until
# every worker's sshd answers (gang start), checks that the model fits, then runs `strata serve`
# on all ranks. Rank 0 (on this pod) serves HTTP on port 8000. Any failure exits non-zero, and
# restartPolicy RecreateGroupOnPodRestart restarts the whole group.
set -euo pipefail
: "${LWS_LEADER_ADDRESS:?set by LeaderWorkerSet}" "${LWS_GROUP_SIZE:?set by LeaderWorkerSet}"
: "${STRATA_MODEL:?model directory}" "${STRATA_TP:?}" "${STRATA_PP:?}"
gpus=${STRATA_GPUS_PER_NODE:-8}
wait_s=${STRATA_WORKER_WAIT_SECONDS:-600}
bash /etc/strata/scripts/setup-ssh.sh

# Leader: <lws>-<group>.<lws>.<namespace>; worker i: <lws>-<group>-<i>.<lws>.<namespace>.
leader_pod=${LWS_LEADER_ADDRESS%%.*}
domain=${LWS_LEADER_ADDRESS#*.}
hostfile=/tmp/strata-hostfile
echo "$LWS_LEADER_ADDRESS slots=$gpus" > "$hostfile"
for ((i = 1; i < LWS_GROUP_SIZE; i++)); do
  worker="$leader_pod-$i.$domain"
  echo "$worker slots=$gpus" >> "$hostfile"
  deadline=$((SECONDS + wait_s))
  until timeout 2 bash -c "exec 3<>/dev/tcp/$worker/2222" 2>/dev/null; do
    if ((SECONDS > deadline)); then
      echo "strata leader: worker $worker did not answer on port 2222 within ${wait_s}s" >&2
      exit 1
    fi
    sleep 5
  done
done

ranks=$((LWS_GROUP_SIZE * gpus))
if ((ranks != STRATA_TP * STRATA_PP)); then
  echo "strata leader: $LWS_GROUP_SIZE pods x $gpus GPUs = $ranks ranks, but tp $STRATA_TP x pp $STRATA_PP" >&2
  exit 1
fi
strata plan --model "$STRATA_MODEL" --tp "$STRATA_TP" --pp "$STRATA_PP" \
  --kv-memory "${STRATA_KV_MEMORY:-20000000000}" --memory-per-rank "${STRATA_MEMORY_PER_RANK:-80000000000}"
# shellcheck disable=SC2086  # STRATA_EXTRA_ARGS is a list of flags
exec mpirun --allow-run-as-root -np "$ranks" --hostfile "$hostfile" --map-by slot --bind-to none \
  -x PATH -x LD_LIBRARY_PATH -x NCCL_DEBUG -x NCCL_SOCKET_IFNAME \
  strata serve --model "$STRATA_MODEL" --device cuda --tp "$STRATA_TP" --pp "$STRATA_PP" \
  --kv-memory "${STRATA_KV_MEMORY:-20000000000}" --host 0.0.0.0 --port 8000 ${STRATA_EXTRA_ARGS:-}
