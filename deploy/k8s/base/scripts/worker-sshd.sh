#!/usr/bin/env bash
# An LWS worker hosts the ranks the leader's mpirun starts on it over SSH (port 2222).
set -euo pipefail
bash /etc/strata/scripts/setup-ssh.sh
mkdir -p /run/sshd
exec /usr/sbin/sshd -D -e -p 2222
