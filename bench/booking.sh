#!/usr/bin/env bash
# Booking benchmark: confirmed bookings per second (best-available hold of two seats, then a
# commit paid with the sandbox's pm_card_visa: tickets issued, payment captured) on one node,
# against PostgreSQL and against the embedded store, next to the same run's pgbench figure for
# single-row UPDATEs of a seat-like table (the database's ceiling for the simplest write on this
# machine). Prints one markdown report.
#
# Usage: bench/booking.sh                    (builds release binaries first)
# Knobs: USERS=16,64 DURATION=10s WARMUP=3s EVENTS=20 ROWS=100 SEATS_PER_ROW=100
#        KIND=seated|ga BACKENDS="postgres sqlite" PGBENCH_CLIENTS=16
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

cargo build --release -q -p boxoffice -p boxoffice-loadgen
BIN=target/release/boxoffice
LOAD=target/release/boxoffice-load
work=$(mktemp -d)
dbs=()
cleanup() {
    kill $(jobs -p) 2>/dev/null || true
    wait 2>/dev/null || true
    for db in "${dbs[@]}"; do
        psql "$PG" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

fresh_db() { # sets URL
    local name="bench_booking_$RANDOM$RANDOM"
    psql "$PG" -qc "CREATE DATABASE $name" >/dev/null
    dbs+=("$name")
    URL="${PG%/*}/$name"
}

serve() { # $1 data dir, rest: env. Sets BASE and PID.
    local dir=$1; shift
    mkdir -p "$dir"
    env "$@" BOXOFFICE_DATA_DIR="$dir" BOXOFFICE_LISTEN=127.0.0.1:0 BOXOFFICE_LOG=warn \
        BOXOFFICE_JWT_SECRET="$SECRET" "$BIN" serve >"$dir.out" 2>"$dir.err" &
    PID=$!
    for _ in $(seq 1 600); do grep -q '^listening on' "$dir.out" 2>/dev/null && break; sleep 0.1; done
    BASE=$(sed -n 's/^listening on //p' "$dir.out")
    [ -n "$BASE" ] || { cat "$dir.err" >&2; exit 1; }
}

echo "Booking benchmark: $KIND best-available holds of 2 seats then commit (sandbox pm_card_visa), $EVENTS events on sale, users $USERS, ${DURATION} measured after ${WARMUP} warm-up, $(nproc) cores, $(date -u +%Y-%m-%d)."
echo

# The database's ceiling for the simplest write, in the same run.
fresh_db
psql "$URL" -q <<'SQL'
CREATE TABLE bench_seats (id int PRIMARY KEY, state text NOT NULL, version bigint NOT NULL);
INSERT INTO bench_seats SELECT i, 'OPEN', 0 FROM generate_series(1, 100000) i;
VACUUM ANALYZE bench_seats;
SQL
cat >"$work/update.sql" <<'SQL'
\set id random(1, 100000)
UPDATE bench_seats SET state = 'SOLD', version = version + 1 WHERE id = :id;
SQL
tps=$(pgbench -n -M prepared -c "$PGBENCH_CLIENTS" -j 2 -T "${DURATION%s}" -f "$work/update.sql" "$URL" 2>/dev/null \
    | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -n 1)
printf 'pgbench, %s clients, single-row UPDATE by primary key (prepared): **%.0f transactions/s**.\n\n' "$PGBENCH_CLIENTS" "$tps"

for backend in $BACKENDS; do
    dir="$work/$backend"
    if [ "$backend" = postgres ]; then
        fresh_db
        serve "$dir" BOXOFFICE_DATABASE_URL="$URL"
    else
        serve "$dir"
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
    if env "${verify_env[@]}" BOXOFFICE_DATA_DIR="$dir" BOXOFFICE_LOG=warn "$BIN" verify >/dev/null; then
        echo "boxoffice verify after the run: clean."
    else
        echo "boxoffice verify after the run: FINDINGS (see: boxoffice verify)."
    fi
    echo
done
