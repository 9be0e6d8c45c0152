#!/bin/sh
# Install what the web display's browser test (tests/integration/test_web_display.c
# driving tests/e2e/display.mjs) needs: Debian's chromium and node. The driver
# speaks the DevTools protocol over a pipe itself, so there is nothing to fetch
# from npm and no browser download. Idempotent; run as root (CI does).
set -eu

need=""
[ -x /usr/bin/chromium ] || need="$need chromium"
command -v node >/dev/null 2>&1 || command -v nodejs >/dev/null 2>&1 || need="$need nodejs"

if [ -n "$need" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-browser-deps: need root to install:$need" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086 # word splitting of the package list is intended
  apt-get install -y -qq $need
fi

/usr/bin/chromium --version
node --version 2>/dev/null || nodejs --version
