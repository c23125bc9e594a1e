#!/usr/bin/env bash
# Installs the Debian tools that the sandbox and browser tests use, when they are missing.
# Safe to run repeatedly; does nothing where everything is present or apt is unavailable.
set -euo pipefail
need=()
command -v node >/dev/null || need+=(nodejs)
command -v chromium >/dev/null || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "system-deps: missing ${need[*]} and no apt-get; the tests that need them will skip" >&2
  exit 0
fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
