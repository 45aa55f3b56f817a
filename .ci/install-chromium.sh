#!/usr/bin/env bash
# Install Debian's `chromium` for the headless-browser report test (tests/report).
# Idempotent: does nothing when chromium is already on the machine. Never fails CI: when apt is
# unavailable or the install fails it prints a warning and exits 0, and the browser test skips.
set -u

for bin in /usr/bin/chromium /usr/bin/chromium-browser; do
  if [ -x "$bin" ]; then
    echo "install-chromium: $bin already present"
    exit 0
  fi
done

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-chromium: WARNING: apt-get not found; the headless report test will be skipped" >&2
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "install-chromium: WARNING: not root and no passwordless sudo; skipping chromium" >&2
    exit 0
  fi
fi

export DEBIAN_FRONTEND=noninteractive
if $SUDO apt-get update -q && $SUDO apt-get install -y -q --no-install-recommends chromium; then
  echo "install-chromium: installed $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
else
  echo "install-chromium: WARNING: apt-get could not install chromium; the headless report test" \
       "will be skipped" >&2
fi
exit 0
