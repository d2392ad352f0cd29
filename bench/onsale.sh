#!/usr/bin/env bash
# On-sale benchmark (issue 9): BUYERS fans join the waiting room of one event with PLACES
# general-admission places before it opens, follow their place as server-sent events, are let
# in, hold with their admission token and pay through the commit queue (202, then the booking's
# stream until CONFIRMED), while SEARCH_RATE searches/s run against the same node. Reports
# admissions/s, confirmed bookings/s, time to sell out, commit p50/p99 from 202 to CONFIRMED,
# and the searches' p99, next to the same run's pgbench figure; then `boxoffice verify`.
#
# Usage: bench/onsale.sh                     (builds release binaries first)
# Knobs: BUYERS=10000 PLACES=1000 QUANTITY=1 ADMIT_PER_MINUTE=60000 ADMISSION_MINUTES=1 OPENS_IN=30s
#        SEARCH_RATE=5000 SEARCH_FOR=10s BACKENDS="sqlite postgres" PGBENCH_CLIENTS=16
# Needs: PostgreSQL at 127.0.0.1:5432 (the test service), psql and pgbench; for the postgres
#        backend (scaled mode) Redis at 127.0.0.1:6379 and NATS with JetStream at 127.0.0.1:4222.
set -euo pipefail
cd "$(dirname "$0")/.."
export BOXOFFICE_TICKET_KEY_FILE=${BOXOFFICE_TICKET_KEY_FILE:-$PWD/crates/boxoffice/tests/fixtures/ticket-key.pem}
BUYERS=${BUYERS:-10000}
PLACES=${PLACES:-1000}
QUANTITY=${QUANTITY:-1}
ADMIT_PER_MINUTE=${ADMIT_PER_MINUTE:-60000}
# An admitted buyer who leaves (a failed stream) keeps the last places reserved this long.
ADMISSION_MINUTES=${ADMISSION_MINUTES:-1}
OPENS_IN=${OPENS_IN:-30s}
SEARCH_RATE=${SEARCH_RATE:-5000}
SEARCH_FOR=${SEARCH_FOR:-10s}
BACKENDS=${BACKENDS:-sqlite postgres}
PGBENCH_CLIENTS=${PGBENCH_CLIENTS:-16}
PG=${BOXOFFICE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}
REDIS=${BOXOFFICE_TEST_REDIS:-redis://127.0.0.1:6379}
NATS=${BOXOFFICE_TEST_NATS:-nats://127.0.0.1:4222}
SECRET=bench-secret-bench-secret

cargo build --release -q -p boxoffice -p boxoffice-loadgen -p boxoffice-fakepsp
TARGET=${CARGO_TARGET_DIR:-target}
BIN=$TARGET/release/boxoffice
LOAD=$TARGET/release/boxoffice-load
# shellcheck source=bench/lib.sh
source bench/lib.sh
# Every buyer holds a connection open (its status stream).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

echo "On-sale benchmark: $BUYERS buyers, one event with $PLACES places ($QUANTITY per buyer), admitted at $ADMIT_PER_MINUTE/min, $SEARCH_RATE searches/s during the rush, $(nproc) cores, $(date -u +%Y-%m-%d)."
echo

pgbench_baseline 10

for backend in $BACKENDS; do
    dir="$work/$backend"
    mkdir -p "$dir"
    if [ "$backend" = postgres ]; then
        fresh_db
        verify_env=(BOXOFFICE_DATABASE_URL="$URL")
    else
        verify_env=()
    fi
    # A catalog to search while the rush is on (real tour dates), seeded before the node starts.
    env "${verify_env[@]}" BOXOFFICE_DATA_DIR="$dir" BOXOFFICE_LOG=warn "$BIN" seed --events 20000 --seed 1 >/dev/null
    if [ "$backend" = postgres ]; then
        # Scaled mode: the Redis hold gate and the JetStream commit log (a stream of this run's
        # own), as DESIGN.md runs them.
        serve "$dir" "${verify_env[@]}" BOXOFFICE_REDIS_URL="$REDIS" BOXOFFICE_NATS_URL="$NATS" \
            BOXOFFICE_NATS_STREAM="bench_onsale_$RANDOM$RANDOM"
    else
        serve "$dir"
    fi
    sleep 5 # the node indexes the catalog
    echo "### $backend"
    echo
    "$LOAD" --url "$BASE" onsale --jwt-secret "$SECRET" --buyers "$BUYERS" --places "$PLACES" \
        --quantity "$QUANTITY" --admit-per-minute "$ADMIT_PER_MINUTE" --admission-minutes "$ADMISSION_MINUTES" --opens-in "$OPENS_IN" \
        --search-rate "$SEARCH_RATE" --search-for "$SEARCH_FOR"
    echo
    fivexx=$(curl -s "$BASE/metrics" | awk '/^http_requests_total\{/ && /status="5/ {s += $NF} END {print s + 0}')
    echo "5xx answers during the run (from /metrics): $fivexx"
    kill "$PID"; wait "$PID" 2>/dev/null || true
    if env "${verify_env[@]}" BOXOFFICE_DATA_DIR="$dir" BOXOFFICE_LOG=warn "$BIN" verify >/dev/null; then
        echo "boxoffice verify after the run: clean."
    else
        echo "boxoffice verify after the run: FINDINGS (see: boxoffice verify)."
    fi
    echo
done
