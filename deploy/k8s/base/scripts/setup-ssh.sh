#!/usr/bin/env bash
# Installs the group's SSH key pair (Secret strata-ssh, mounted at /etc/strata/ssh) for root, with
# the permissions sshd's StrictModes demands (Secret mounts are read-only symlinks).
set -euo pipefail
install -d -m 700 /root/.ssh
install -m 600 /etc/strata/ssh/id_ed25519 /root/.ssh/id_ed25519
install -m 600 /etc/strata/ssh/authorized_keys /root/.ssh/authorized_keys
printf 'Host *\n  Port 2222\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n' > /root/.ssh/config
chmod 600 /root/.ssh/config
