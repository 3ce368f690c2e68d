#!/usr/bin/env bash
# Makes sure Debian's Chromium (which runs headless) is at /usr/bin/chromium: the HTML report test drives it.
# Idempotent: exits 0 at once when it is already installed. Installing needs root and apt access (CI has both).
# Quiet on success: apt/debconf chatter is kept in a temporary log that is printed only if the install fails.
set -euo pipefail
CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "ensure_chromium: $CHROMIUM is missing and installing it needs root" >&2
  exit 1
fi
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq chromium; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "ensure_chromium: could not install chromium with apt-get" >&2
  exit 1
fi
if [ ! -x "$CHROMIUM" ]; then
  cat "$log" >&2
  echo "ensure_chromium: apt-get installed chromium but $CHROMIUM is still missing" >&2
  exit 1
fi
