#!/usr/bin/env bash
# Installs the Debian 12 packages statecast builds and runs with.
#   scripts/install-deps.sh          build + run dependencies
#   scripts/install-deps.sh --test   also what the test suite needs
# Uses sudo when not root. Idempotent: skips apt when everything is present.
set -euo pipefail

pkgs=(build-essential cmake pkg-config libh2o-dev libuv1-dev libhiredis-dev libcjson-dev
      libyaml-dev libssl-dev redis-server curl)
if [[ "${1:-}" == "--test" ]]; then
  pkgs+=(libcriterion-dev redis-sentinel)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "installing: ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
