#!/usr/bin/env bash
# Installs the real SIP peers the SIP tests run against (test/sip/*):
# sipp (Debian package sip-tester) and kamailio. Idempotent: does nothing when
# both binaries are already on PATH. Runs `apt-get update` only when the
# package lists have never been fetched or the first install attempt fails.
set -euo pipefail

if command -v sipp >/dev/null 2>&1 && command -v kamailio >/dev/null 2>&1; then
  echo "sip peers: sipp and kamailio already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-sip-peers: need root (or sudo) to apt-get install sip-tester kamailio" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
install() { $SUDO apt-get install -y --no-install-recommends sip-tester kamailio; }

if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e '^lock$' -e '^partial$' || true)" ]; then
  $SUDO apt-get update
  install
elif ! install; then
  # Stale lists (packages moved on the mirror): refresh once and retry.
  $SUDO apt-get update
  install
fi

command -v sipp >/dev/null 2>&1 || { echo "install-sip-peers: sipp missing after install" >&2; exit 1; }
command -v kamailio >/dev/null 2>&1 || { echo "install-sip-peers: kamailio missing after install" >&2; exit 1; }
echo "sip peers: $(sipp -v 2>&1 | grep -m1 -o 'SIPp v[0-9.]*' || echo sipp), $(kamailio -v 2>&1 | head -1)"
