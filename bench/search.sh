#!/usr/bin/env bash
# Search benchmark: seeds 100,000 events into a fresh embedded store, lets the node build its
# search index, then drives the search mix (typos, filters, geo, browse, deep pages; Zipf-
# shaped: popular searches repeat) at several concurrency levels, each right after /healthz at
# the same level (the HTTP stack's ceiling on this machine, measured in the same run), and
# prints one markdown table. A second pass runs with the answer cache off, so the engine's
# own cost is visible too.
#
# Usage: bench/search.sh                     (builds release binaries first)
# Knobs: EVENTS=100000 USERS=16,64,256 RATES="5000 10000" DURATION=10s WARMUP=3s CACHE_OFF=1
#        BACKEND=sqlite|postgres
# Needs: for BACKEND=postgres, PostgreSQL at 127.0.0.1:5432 (the test service) and psql.
set -euo pipefail
cd "$(dirname "$0")/.."
# PostgreSQL nodes refuse to start without a shared ticket-signing key; benches use the tests' one.
export BOXOFFICE_TICKET_KEY_FILE=${BOXOFFICE_TICKET_KEY_FILE:-$PWD/crates/boxoffice/tests/fixtures/ticket-key.pem}
EVENTS=${EVENTS:-100000}
USERS=${USERS:-16,64,256}
RATES=${RATES:-5000 10000}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
CACHE_OFF=${CACHE_OFF:-1}
BACKEND=${BACKEND:-sqlite}
PG=${BOXOFFICE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}

cargo build --release -q -p boxoffice -p boxoffice-loadgen
BIN=target/release/boxoffice
LOAD=target/release/boxoffice-load
work=$(mktemp -d)
db=""
cleanup() {
    kill $(jobs -p) 2>/dev/null || true
    wait 2>/dev/null || true
    if [ -n "$db" ]; then psql "$PG" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

env_args=(BOXOFFICE_DATA_DIR="$work/data" BOXOFFICE_LOG=warn BOXOFFICE_JWT_SECRET=bench-secret-bench-secret)
if [ "$BACKEND" = postgres ]; then
    db="bench_search_$RANDOM$RANDOM"
    psql "$PG" -qc "CREATE DATABASE $db" >/dev/null
    env_args+=(BOXOFFICE_DATABASE_URL="${PG%/*}/$db")
fi

seed_start=$(date +%s.%N)
env "${env_args[@]}" "$BIN" seed --events "$EVENTS" --seed 1 >/dev/null
seed_s=$(echo "$(date +%s.%N) - $seed_start" | bc)

serve() { # $1: answer cache entries. Sets BASE, PID and REBUILD_S.
    rm -rf "$work/data/search-index"
    local out="$work/serve.out" err="$work/serve.err" start
    start=$(date +%s.%N)
    env "${env_args[@]}" BOXOFFICE_LISTEN=127.0.0.1:0 BOXOFFICE_SEARCH_CACHE_ENTRIES="$1" \
        BOXOFFICE_LOG=warn,boxoffice_search=info "$BIN" serve >"$out" 2>"$err" &
    PID=$!
    for _ in $(seq 1 600); do grep -q '^listening on' "$out" 2>/dev/null && break; sleep 0.1; done
    BASE=$(sed -n 's/^listening on //p' "$out")
    # The index is rebuilt from empty: wait until every event is searchable.
    for _ in $(seq 1 1200); do
        total=$(curl -s "$BASE/v1/events?limit=1&startsAfter=2000-01-01T00:00:00Z" | sed -n 's/.*"total":\([0-9]*\).*/\1/p')
        [ "${total:-0}" -ge "$EVENTS" ] && break
        sleep 0.05
    done
    REBUILD_S=$(echo "$(date +%s.%N) - $start" | bc)
}

echo "Search benchmark: $EVENTS events ($BACKEND), users $USERS, ${DURATION} measured after ${WARMUP} warm-up, $(nproc) cores, $(date -u +%Y-%m-%d)."
echo
serve 20000
printf 'Seeded in %.1f s; index rebuilt from empty and all %s events searchable %.1f s after start (process start included).\n\n' "$seed_s" "$EVENTS" "$REBUILD_S"
echo "### Zipf mix (s = 1), answer cache on (the default)"
echo
echo "Closed loop (each user sends its next search when answered: the most the node serves), each level right after /healthz at the same level:"
echo
"$LOAD" --url "$BASE" --users "$USERS" --duration "$DURATION" --warmup "$WARMUP" search --baseline
echo
echo "Open loop at fixed rates (searches started per second, timed from when each was due):"
echo
header=""
for rate in $RATES; do
    "$LOAD" --url "$BASE" --users 64 --rate "$rate" --duration "$DURATION" --warmup "$WARMUP" $header search
    header=--no-header
done
kill "$PID"; wait "$PID" 2>/dev/null || true

if [ "$CACHE_OFF" = 1 ]; then
    serve 0
    echo
    echo "### Zipf mix (s = 1), answer cache off (--search-cache-entries 0): the engine's own cost"
    echo
    echo "Closed loop, 64 users, by kind of search:"
    echo
    "$LOAD" --url "$BASE" --users 64 --duration "$DURATION" --warmup "$WARMUP" --breakdown search --baseline
    echo
    echo "Open loop:"
    echo
    header=""
    for rate in 1000 2000 $RATES; do
        "$LOAD" --url "$BASE" --users 64 --rate "$rate" --duration "$DURATION" --warmup "$WARMUP" $header search
        header=--no-header
    done
    kill "$PID"; wait "$PID" 2>/dev/null || true
fi
