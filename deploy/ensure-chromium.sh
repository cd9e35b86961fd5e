#!/usr/bin/env bash
# Make sure Debian's Chromium is at /usr/bin/chromium for the browser test (Playwright drives
# it through executable_path; it never downloads a browser of its own).
set -euo pipefail

CHROMIUM=${LOTSE_CHROMIUM:-/usr/bin/chromium}
if [[ -x "$CHROMIUM" ]]; then
  echo "chromium: $CHROMIUM"
  exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [[ $(id -u) -eq 0 ]]; then
  echo "chromium: not installed; installing Debian's chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  echo "chromium: $("$CHROMIUM" --version 2>/dev/null || echo installed)"
else
  echo "chromium: not installed. Install it (Debian/Ubuntu: sudo apt-get install chromium)," >&2
  echo "  or set LOTSE_CHROMIUM to a Chromium binary, then retry." >&2
  exit 1
fi
