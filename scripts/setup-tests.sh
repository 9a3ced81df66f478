#!/usr/bin/env bash
# Set up everything the test suite needs, on a fresh machine or an already prepared one.
#
#   bash scripts/setup-tests.sh && python3 -m pytest      # the README's second command
#
# 1. the package, editable, with every extra and the test tools:
#    python3 -m pip install -e ".[all,test]"  (the python3 first on PATH: activate a venv first
#    if your system Python is "externally managed")
# 2. a Chromium for the real-browser test (tests/notebook/test_browser.py):
#    - /usr/bin/chromium exists: nothing to do (idempotent: a second run installs nothing);
#    - else, on Debian/Ubuntu with apt-get as root (or with password-less sudo):
#      apt-get update && apt-get install chromium;
#    - else Playwright's own Chromium build (python3 -m playwright install chromium), which the
#      browser test uses when /usr/bin/chromium is missing.
#    STREAMNB_CHROMIUM=/path/to/chromium names a browser you installed yourself (skips step 2;
#    the browser test then drives that one).
# Every step says what it does; a step that cannot be done stops the script with the reason,
# so "python3 -m pytest" never starts half set up.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '== setup-tests: %s\n' "$*"; }
fail() { printf 'setup-tests: %s\n' "$*" >&2; exit 1; }

say "python3 -m pip install -e \".[all,test]\" ($(python3 --version 2>&1), $(command -v python3))"
python3 -m pip install -e ".[all,test]" || fail "pip could not install .[all,test] (see above)"

if [ -n "${STREAMNB_CHROMIUM:-}" ]; then
  [ -x "$STREAMNB_CHROMIUM" ] || fail "STREAMNB_CHROMIUM=$STREAMNB_CHROMIUM is not an executable"
  say "Chromium: $STREAMNB_CHROMIUM (from STREAMNB_CHROMIUM)"
elif [ -x /usr/bin/chromium ]; then
  say "Chromium: /usr/bin/chromium is installed, nothing to do"
elif command -v apt-get >/dev/null 2>&1 \
    && { [ "$(id -u)" = "0" ] || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; }; }; then
  SUDO=""
  [ "$(id -u)" = "0" ] || SUDO="sudo -n"
  say "Chromium: apt-get install chromium${SUDO:+ (with sudo)}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q || fail "apt-get update failed (see above)"
  $SUDO apt-get install -y -q --no-install-recommends chromium \
    || fail "apt-get install chromium failed (see above)"
  [ -x /usr/bin/chromium ] || fail "apt-get installed chromium but /usr/bin/chromium is missing"
else
  say "Chromium: no /usr/bin/chromium and no apt-get as root/sudo; installing Playwright's own"
  python3 -m playwright install chromium \
    || fail "could not install a Chromium: install one (Debian: sudo apt-get install chromium)
or run 'python3 -m playwright install --with-deps chromium', then run this script again"
fi
say "done: run python3 -m pytest"
