#!/usr/bin/env bash
# Installs Strata's Debian 12 build and test dependencies; does nothing when all are present.
# Run as root (or with sudo available). The CUDA toolkit, cuBLAS and NCCL are not Debian
# packages: the build uses them from /usr/local/cuda when present and skips the CUDA targets
# otherwise.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git procps
  libabsl-dev libgtest-dev libgmock-dev
  libopenmpi-dev openmpi-bin
  prometheus-cpp-dev nlohmann-json3-dev libcpp-httplib-dev libevent-dev libspdlog-dev libsentencepiece-dev sentencepiece
  libopenblas-dev libdnnl-dev libpcre2-dev libutf8proc-dev
  curl prometheus shellcheck python3-venv python3-jinja2 python3-numpy python3-sentencepiece
  bible-kjv  # a public-domain text (the King James Version) for the perplexity comparison
  clang libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# kubectl is no Debian 12 package of a usable age (bookworm's kubernetes-client 1.20 bundles a
# kustomize too old for deploy/k8s); Deploy.KubernetesAndDocker needs one with kustomize v5.
command -v kubectl >/dev/null ||
  echo "install_deps: kubectl with kustomize v5 (the Kubernetes apt repository's) is needed by the deploy test" >&2
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install_deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install_deps: installing ${missing[*]}"
sudo_cmd=""
[ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
$sudo_cmd apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
