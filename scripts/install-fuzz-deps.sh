#!/usr/bin/env bash
# Installs what scripts/fuzz.sh needs on Debian 12: clang 14 and its runtime
# libraries (libclang-rt-14-dev carries libFuzzer, ASan and UBSan).
# Uses sudo when not root. Idempotent: skips apt when everything is present.
set -euo pipefail
pkgs=(clang libclang-rt-14-dev cmake pkg-config libyaml-dev libcjson-dev)
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
