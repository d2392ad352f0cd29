#!/usr/bin/env bash
# Distinct-search benchmark (issue 10): a search mix the answer cache cannot flatter. The load
# driver builds a pool of distinct searches from the real data in ../shared/data at run time
# (artist, tour, venue and city names of world tours, a third with a typo; US ZIP codes and
# their coordinates; category, price, date and availability filters; every sort) and sends
# each search once: every run takes its own slice of the pool, so no answer is ever served
# from the cache.
#
# One node with EVENTS seeded events (`boxoffice seed`, as bench/search.sh seeds), its index
# built from empty; then closed loop at USERS connections and open loop at RATES searches/s,
# each right after /healthz at the same load (the same run's ceiling of the HTTP stack), with
# the node's resident memory and its per-phase search timings (/metrics). Then the same on
# PostgreSQL while BUYERS buyers book on the same node (bench/booking.sh's flow): at
# BUYER_RATE bookings/s in all (open loop; a booking is two writes, a hold and a commit, so the
# default of 250/s is one write for every ten searches at 5,000/s: the read-heavy mix the issue
# names), or as fast as they can (BUYER_RATE=0, closed loop: the node's write ceiling, which
# leaves searches only what the booking path does not take).
#
# Usage: bench/search-distinct.sh            (builds release binaries first)
# Knobs: EVENTS=100000 USERS=4,16,64 RATES="2000 5000" DURATION=10s WARMUP=3s
#        BACKENDS="sqlite postgres+writes" BUYERS=64 BUYER_RATE=250 DATA=../shared/data
#        QUERIES=1200000 PSP=fakepsp (the buyers' payment provider: `fakepsp`, the Stripe-compatible
#        fake as its own process, as a production provider is; `sandbox`, the node's own, whose
#        payments share the booking database)
# Needs: the shared data; for postgres+writes PostgreSQL at 127.0.0.1:5432, psql.
set -euo pipefail
cd "$(dirname "$0")/.."
export BOXOFFICE_TICKET_KEY_FILE=${BOXOFFICE_TICKET_KEY_FILE:-$PWD/crates/boxoffice/tests/fixtures/ticket-key.pem}
EVENTS=${EVENTS:-100000}
USERS=${USERS:-4,16,64}
RATES=${RATES:-2000 5000}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
BACKENDS=${BACKENDS:-sqlite postgres+writes}
BUYERS=${BUYERS:-64}
BUYER_RATE=${BUYER_RATE:-250}
QUERIES=${QUERIES:-1200000}
export BOXOFFICE_SHARED_DATA=$(cd "${DATA:-../shared/data}" && pwd)
PG=${BOXOFFICE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}
SECRET=bench-secret-bench-secret
PGBENCH_CLIENTS=16

cargo build --release -q -p boxoffice -p boxoffice-loadgen -p boxoffice-fakepsp
TARGET=${CARGO_TARGET_DIR:-target}
BIN=$TARGET/release/boxoffice
LOAD=$TARGET/release/boxoffice-load
# shellcheck source=bench/lib.sh
source bench/lib.sh
PSP=${PSP:-fakepsp}

offset=0
# Runs the distinct mix from the current offset; moves the offset past what it took.
distinct() { # args: load options (--users/--rate ...)
    local err="$work/load.err"
    "$LOAD" --url "$BASE" --duration "$DURATION" --warmup "$WARMUP" "$@" \
        distinct --queries "$QUERIES" --offset "$offset" --baseline 2>"$err"
    local taken
    taken=$(sed -n 's/^searches started: up to #\([0-9]*\).*/\1/p' "$err" | tail -n 1)
    grep -q 'the pool wrapped' "$err" && echo "(warning: the pool wrapped; raise QUERIES)"
    offset=${taken:-$offset}
}

rss_mb() { # resident and peak resident memory of PID, MB
    awk '/^VmRSS/ {r = $2} /^VmHWM/ {h = $2} END {printf "%.0f MB resident (peak %.0f MB)", r / 1024, h / 1024}' "/proc/$PID/status"
}

# Per-phase means between two scrapes of /metrics: the search pool's own account.
scrape() { curl -s "$BASE/metrics" | grep '^search_phase_seconds_\(sum\|count\)' || true; }
phases() { # $1 before, $2 after
    echo
    echo "Per search phase (means over this load, from the node's search_phase_seconds):"
    echo
    echo "| phase | searches timed | mean ms |"
    echo "|---|---:|---:|"
    awk '
        FNR == NR { before[$1] = $2; next }
        { after[$1] = $2 }
        END {
            n = split("queue parse text filter sort render total", order, " ")
            for (i = 1; i <= n; i++) {
                p = order[i]
                c = "search_phase_seconds_count{phase=\"" p "\"}"
                s = "search_phase_seconds_sum{phase=\"" p "\"}"
                dc = after[c] - before[c]; ds = after[s] - before[s]
                if (dc > 0) printf "| %s | %d | %.3f |\n", p, dc, 1000 * ds / dc
            }
        }' "$1" "$2"
}

wait_indexed() { # every seeded event searchable
    local total
    for _ in $(seq 1 2400); do
        total=$(curl -s "$BASE/v1/events?limit=1&startsAfter=2000-01-01T00:00:00Z" | sed -n 's/.*"total":\([0-9]*\).*/\1/p')
        [ "${total:-0}" -ge "$EVENTS" ] && return 0
        sleep 0.05
    done
    echo "the index never held all $EVENTS events" >&2
    exit 1
}

measure() { # the closed and open loop levels, with phases and memory
    local before="$work/m0" after="$work/m1"
    echo "Load average before: $(cut -d' ' -f1-3 /proc/loadavg). Node: $(rss_mb) with the index built."
    echo
    echo "Closed loop (each connection sends its next search when answered), each level right after /healthz at the same level:"
    echo
    scrape >"$before"
    distinct --users "$USERS"
    scrape >"$after"
    phases "$before" "$after"
    echo
    echo "Open loop (searches started at a fixed rate over 64 connections, each timed from when it was due), each rate right after /healthz at the same rate:"
    echo
    scrape >"$before"
    for rate in $RATES; do
        distinct --users 64 --rate "$rate"
        echo
    done
    scrape >"$after"
    phases "$before" "$after"
    echo
    echo "Node after the runs: $(rss_mb); load average $(cut -d' ' -f1-3 /proc/loadavg)."
}

echo "Distinct-search benchmark: $EVENTS events, every search distinct (pool of $QUERIES from $BOXOFFICE_SHARED_DATA), users $USERS, rates $RATES, ${DURATION} measured after ${WARMUP} warm-up, $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M') UTC."
echo

for backend in $BACKENDS; do
    dir="$work/$backend"
    mkdir -p "$dir"
    env_args=()
    if [ "$backend" != sqlite ]; then
        fresh_db
        env_args=(BOXOFFICE_DATABASE_URL="$URL")
    fi
    if [ "$backend" = "postgres+writes" ]; then
        start_psp "$TARGET/release/boxoffice-fakepsp"
        env_args+=("${psp_env[@]}")
    fi
    start=$(date +%s.%N)
    env "${env_args[@]}" BOXOFFICE_DATA_DIR="$dir" BOXOFFICE_LOG=warn "$BIN" seed --events "$EVENTS" --seed 1 >/dev/null
    seeded=$(echo "$(date +%s.%N) - $start" | bc)
    start=$(date +%s.%N)
    serve "$dir" "${env_args[@]}"
    wait_indexed
    built=$(echo "$(date +%s.%N) - $start" | bc)
    echo "### $backend"
    echo
    printf 'Seeded in %.1f s; all %s events searchable %.1f s after the node started.\n\n' "$seeded" "$EVENTS" "$built"
    if [ "$backend" = "postgres+writes" ]; then
        # Buyers for the whole measurement: closed loop levels, open loop rates, warm-ups.
        levels=$(($(echo "$USERS" | tr ',' '\n' | wc -l) + $(echo "$RATES" | wc -w)))
        secs=$(((${DURATION%s} + ${WARMUP%s}) * 2 * levels + 30))
        pace=()
        [ "$BUYER_RATE" != 0 ] && pace=(--rate "$BUYER_RATE")
        "$LOAD" --url "$BASE" --users "$BUYERS" "${pace[@]}" --duration "${secs}s" --warmup 0s \
            booking --jwt-secret "$SECRET" --events 20 --rows 100 --seats-per-row 100 \
            >"$work/buyers.out" 2>"$work/buyers.err" &
        buyers=$!
        # Setting up creates the buyers' events; searches start once they buy.
        for _ in $(seq 1 600); do
            curl -s "$BASE/metrics" | grep -q '^http_requests_total{.*route="/v1/commit"' && break
            sleep 0.1
        done
        if [ "$BUYER_RATE" != 0 ]; then
            echo "While $BUYERS buyers hold and buy $BUYER_RATE times a second in all (open loop; best available, 2 seats, pm_card_visa, payment provider $PSP) on 20 events of the same node:"
        else
            echo "While $BUYERS buyers hold and buy as fast as they can (closed loop; best available, 2 seats, pm_card_visa, payment provider $PSP) on 20 events of the same node:"
        fi
        echo
    fi
    measure
    if [ "$backend" = "postgres+writes" ]; then
        wait "$buyers" || true
        echo
        echo "The buyers over the whole run:"
        echo
        cat "$work/buyers.out"
    fi
    kill "$PID"; wait "$PID" 2>/dev/null || true
    if grep -q panicked "$dir.err"; then echo "(the node's log shows a panic)"; fi
    echo
done
