#!/usr/bin/env bash
# Installs etcd (Debian's etcd-server package) for the compare suite's etcd baseline.
# Idempotent: exits 0 at once when an etcd binary is already on PATH. Exits non-zero when it
# cannot install (no root, no apt, no mirror), and the suite then skips etcd with a note.
set -euo pipefail

if command -v etcd >/dev/null 2>&1; then
  echo "etcd already installed: $(command -v etcd)"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "cannot install etcd: apt-get not found (install etcd 3.4+ by hand and put it on PATH)" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "cannot install etcd: apt-get needs root (run: sudo apt-get install -y etcd-server)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Only refresh the package lists when the candidate is unknown: an update costs tens of seconds.
# apt waits for dpkg's lock (DPkg::Lock::Timeout) but not for the package lists' lock, which a
# concurrent `apt-get update` (a jepsen-lite run installing faketime) holds: try again for 5 minutes.
if ! apt-cache policy etcd-server 2>/dev/null | grep -q 'Candidate: [0-9]'; then
  for attempt in $(seq 1 60); do
    if output=$(apt-get update -qq -o DPkg::Lock::Timeout=300 2>&1); then break; fi
    case "$output" in
      *lock*) sleep 5 ;;
      *) echo "$output" >&2; break ;;
    esac
  done
fi
# policy-rc.d 101 keeps the package's service from being started: the bench runs its own members.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod +x "$policy"
  created_policy=1
fi
status=0
apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends etcd-server >/dev/null || status=$?
if [ "$created_policy" -eq 1 ]; then rm -f "$policy"; fi
if [ "$status" -ne 0 ] || ! command -v etcd >/dev/null 2>&1; then
  echo "cannot install etcd: apt-get install etcd-server failed (status $status)" >&2
  exit 1
fi
echo "installed etcd: $(command -v etcd) ($(etcd --version 2>/dev/null | head -1))"
