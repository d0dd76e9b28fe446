#!/usr/bin/env bash
# Installs the real peers the tests run against, from Debian: sipp (package
# sip-tester), kamailio with its TLS module and baresip (a headless SIP phone)
# for test/sip*/, chromium for the demo pages in test/demos/ (driven by
# playwright-core; never `npx playwright install`), ffmpeg as the RTP source of
# the Streaming tests (test/streaming/), mosquitto for the MQTT event handler in
# test/events/ (each test starts its own), redis-server for the cluster directory
# in test/cluster/ (each test starts its own on 127.0.0.1), janus-tools
# (janus-pp-rec) to convert the .mjr recordings in test/recording/.
# Idempotent: does nothing when all of them are already there. Runs `apt-get update` only when the
# package lists have never been fetched or the first install attempt fails.
set -euo pipefail

have_kamailio_tls() { ls /usr/lib/*/kamailio/modules/tls.so >/dev/null 2>&1; }
have_all() { command -v sipp >/dev/null 2>&1 && command -v kamailio >/dev/null 2>&1 && have_kamailio_tls && command -v baresip >/dev/null 2>&1 && [ -x /usr/bin/chromium ] && command -v ffmpeg >/dev/null 2>&1 && [ -x /usr/sbin/mosquitto ] && [ -x /usr/bin/redis-server ] && command -v janus-pp-rec >/dev/null 2>&1; }
report() {
  echo "test peers: $({ sipp -v 2>&1 || true; } | grep -m1 -o 'SIPp v[0-9.]*' || echo sipp), $(kamailio -v 2>&1 | head -1), $({ baresip -h 2>&1 || true; } | grep -m1 -o 'baresip v[0-9.]*' || echo baresip), $(/usr/bin/chromium --version 2>/dev/null || echo chromium), $(ffmpeg -version 2>/dev/null | head -1 | cut -d' ' -f1-3), $({ /usr/sbin/mosquitto -h 2>&1 || true; } | grep -m1 -o 'mosquitto version [0-9.]*' || echo mosquitto), $(/usr/bin/redis-server --version 2>/dev/null | cut -d' ' -f1-3 || echo redis-server), janus-pp-rec $(dpkg-query -W -f='${Version}' janus-tools 2>/dev/null || echo '?')"
}

if have_all; then
  report
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-test-peers: need root (or sudo) to apt-get install sip-tester kamailio kamailio-tls-modules baresip chromium ffmpeg mosquitto redis-server janus-tools" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
install() { $SUDO apt-get install -y --no-install-recommends sip-tester kamailio kamailio-tls-modules baresip chromium ffmpeg mosquitto redis-server janus-tools; }

if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e '^lock$' -e '^partial$' || true)" ]; then
  $SUDO apt-get update
  install
elif ! install; then
  # Stale lists (packages moved on the mirror): refresh once and retry.
  $SUDO apt-get update
  install
fi

have_all || { echo "install-test-peers: sipp, kamailio (with tls.so), baresip, /usr/bin/chromium or ffmpeg, mosquitto, redis-server or janus-pp-rec missing after install" >&2; exit 1; }
report
