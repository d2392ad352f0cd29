#!/usr/bin/env bash
# Storefront benchmark: time to first render of a 50,000-seat stadium's event page and the
# seat map's interaction latency, in Debian's Chromium driven by playwright-core, measured by
# the browser's Performance API (paint timing, user timing marks, Event Timing).
#
# Usage: bench/storefront.sh            (release build; PROFILE=debug to use the debug binary)
# Knobs: RUNS=7 PROFILE=release|debug
# Needs: /usr/bin/chromium (apt-get install chromium) and Node.js with npm.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-release}
if [ "$PROFILE" = release ]; then
    cargo build --release -q -p boxoffice
else
    cargo build -q -p boxoffice
fi
export BOXOFFICE_BIN="$PWD/target/$PROFILE/boxoffice"
[ -x /usr/bin/chromium ] || { echo "needs Debian's chromium: apt-get install -y chromium" >&2; exit 1; }
[ -d web-tests/node_modules/playwright-core ] || npm ci --prefix web-tests --no-audit --no-fund
echo "profile: $PROFILE; $(/usr/bin/chromium --version 2>/dev/null)"
node web-tests/bench/storefront.js
