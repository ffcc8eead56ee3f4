#!/usr/bin/env bash
# Make sure headless Chromium is there for the browser tests, installing Debian's package when we may.
set -uo pipefail
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "Chromium is missing: installing Debian's chromium for the browser tests (apt-get)…"
    if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; then
        exit 0
    fi
    echo "apt-get could not install chromium."
fi
echo "Chromium is not installed and cannot be installed here: the browser tests will be skipped" \
     "(install it with 'apt-get install chromium' to run them)."
if [ "${CI:-}" = "true" ]; then
    echo "CI=true: a missing browser is a failure." >&2
    exit 1
fi
exit 0
