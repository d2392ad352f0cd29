#!/usr/bin/env bash
# Booking benchmark: confirmed bookings per second (best-available hold of two seats, then a
# commit paid with the sandbox's pm_card_visa: tickets issued, payment captured) on one node,
# against PostgreSQL and against the embedded store, next to the same run's pgbench figure for
# single-row UPDATEs of a seat-like table (the database's ceiling for the simplest write on this
# machine). Prints one markdown report.
#
# Usage: bench/booking.sh                    (builds release binaries first)
# Knobs: PROFILE=release|debug USERS=16,64 DURATION=10s WARMUP=3s EVENTS=20 ROWS=100 SEATS_PER_ROW=100
#        KIND=seated|ga BACKENDS="postgres sqlite" PGBENCH_CLIENTS=16
#        PSP=sandbox|fakepsp (fakepsp: the payment provider runs as its own process, the fake
#        Stripe, paid through the Stripe adapter; its books are not in the booking database)
#        (EVENTS=1 KIND=ga ROWS=400 is an on-sale rush: everyone after one event's places)
# Needs: PostgreSQL at 127.0.0.1:5432 (the test service), psql and pgbench.
set -euo pipefail
cd "$(dirname "$0")/.."
# PostgreSQL nodes refuse to start without a shared ticket-signing key; benches use the tests' one.
export BOXOFFICE_TICKET_KEY_FILE=${BOXOFFICE_TICKET_KEY_FILE:-$PWD/crates/boxoffice/tests/fixtures/ticket-key.pem}
USERS=${USERS:-16,64}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
EVENTS=${EVENTS:-20}
ROWS=${ROWS:-100}
SEATS_PER_ROW=${SEATS_PER_ROW:-100}
KIND=${KIND:-seated}
BACKENDS=${BACKENDS:-postgres sqlite}
PGBENCH_CLIENTS=${PGBENCH_CLIENTS:-16}
PG=${BOXOFFICE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}
SECRET=bench-secret-bench-secret

# PROFILE=debug runs the debug binaries: its rates mean nothing, but the write profile (what each
# booking costs the database, counted) is the same, and it needs no release build.
PROFILE=${PROFILE:-release}
TARGET=${CARGO_TARGET_DIR:-target}
if [ "$PROFILE" = release ]; then
    cargo build --release -q -p boxoffice -p boxoffice-loadgen -p boxoffice-fakepsp
else
    cargo build -q -p boxoffice -p boxoffice-loadgen -p boxoffice-fakepsp
fi
BIN=$TARGET/$PROFILE/boxoffice
LOAD=$TARGET/$PROFILE/boxoffice-load
# shellcheck source=bench/lib.sh
source bench/lib.sh

PSP=${PSP:-sandbox}
start_psp "$TARGET/$PROFILE/boxoffice-fakepsp"

echo "Booking benchmark: $KIND best-available holds of 2 seats then commit (payment provider: $PSP, pm_card_visa), $EVENTS events on sale, users $USERS, ${DURATION} measured after ${WARMUP} warm-up, $(nproc) cores, $(date -u +%Y-%m-%d)."
echo

pgbench_baseline "${DURATION%s}"

for backend in $BACKENDS; do
    dir="$work/$backend"
    if [ "$backend" = postgres ]; then
        fresh_db
        serve "$dir" BOXOFFICE_DATABASE_URL="$URL" "${psp_env[@]}"
        profile_reset "$URL"
    else
        serve "$dir" "${psp_env[@]}"
    fi
    echo "### $backend"
    echo
    out=$("$LOAD" --url "$BASE" --users "$USERS" --duration "$DURATION" --warmup "$WARMUP" --breakdown \
        booking --jwt-secret "$SECRET" --events "$EVENTS" --kind "$KIND" --rows "$ROWS" \
        --seats-per-row "$SEATS_PER_ROW")
    echo "$out"
    echo
    best=$(echo "$out" | awk -F'|' '/^\| [0-9]+ users \|/ {gsub(/ /, "", $3); if ($3 + 0 > b) b = $3 + 0} END {print b + 0}')
    printf 'Best: %.0f confirmed bookings/s = %.3f of the pgbench figure (%.1f pgbench-updates per booking).\n\n' \
        "$best" "$(echo "$best / $tps" | bc -l)" "$(echo "$tps / ($best + 0.0001)" | bc -l)"
    # Every sale must be sound: the invariant checker runs over what the benchmark sold.
    if [ "$backend" = postgres ]; then
        verify_env=(BOXOFFICE_DATABASE_URL="$URL")
    else
        verify_env=()
    fi
    kill "$PID"; wait "$PID" 2>/dev/null || true
    if [ "$backend" = postgres ]; then
        write_profile "$URL"
        echo
    fi
    if env "${verify_env[@]}" BOXOFFICE_DATA_DIR="$dir" BOXOFFICE_LOG=warn "$BIN" verify >/dev/null; then
        echo "boxoffice verify after the run: clean."
    else
        echo "boxoffice verify after the run: FINDINGS (see: boxoffice verify)."
    fi
    echo
done
