#!/usr/bin/env bash
# Catalog measurements: creating a 50,000-seat stadium event through the API, and seeding a
# 100,000-event demo catalog, on the embedded store and on PostgreSQL. Each figure is the
# median of several runs; the same run also times a bare INSERT of 50,000 seat-sized rows in
# the same PostgreSQL (the database's own floor for that much data) for the ratio.
#
# Usage: bench/catalog.sh            (builds the release binary first)
# Needs: PostgreSQL at 127.0.0.1:5432 (the test service), curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
# PostgreSQL nodes refuse to start without a shared ticket-signing key; benches use the tests' one.
export BOXOFFICE_TICKET_KEY_FILE=${BOXOFFICE_TICKET_KEY_FILE:-$PWD/crates/boxoffice/tests/fixtures/ticket-key.pem}
cargo build --release -q -p boxoffice
BIN=target/release/boxoffice
RUNS=${RUNS:-5}
PG=${BOXOFFICE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}
work=$(mktemp -d)
dbs=()
cleanup() {
    kill $(jobs -p) 2>/dev/null || true
    for db in "${dbs[@]}"; do psql "$PG" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; done
    rm -rf "$work"
}
trap cleanup EXIT

stadium='{"name":"Stadium","category":"sports","startsAt":"2099-06-01T19:30:00Z","currency":"USD",
 "venue":{"name":"Lumen Field","address":"800 Occidental Ave S","city":"Seattle","zipCode":"98134",
          "country":"US","lat":47.5952,"lon":-122.3316},
 "sections":[{"name":"Lower","rows":50,"seatsPerRow":400,"priceCents":15000},
             {"name":"Upper","rows":50,"seatsPerRow":400,"priceCents":9000},
             {"name":"Field","capacity":10000,"priceCents":20000}]}'

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

serve() { # $1 data dir, rest: env assignments. Sets BASE and PID.
    local dir=$1; shift
    env "$@" BOXOFFICE_DATA_DIR="$dir" BOXOFFICE_LISTEN=127.0.0.1:0 BOXOFFICE_LOG=warn \
        "$BIN" serve > "$dir.out" 2>/dev/null &
    PID=$!
    for _ in $(seq 1 100); do
        grep -q '^listening on' "$dir.out" 2>/dev/null && break
        sleep 0.1
    done
    BASE=$(sed -n 's/^listening on //p' "$dir.out")
}

create_times() { # $1 base url, $2 token
    for _ in $(seq 1 "$RUNS"); do
        curl -s -o /dev/null -w '%{time_total}\n' -X POST "$1/v1/events" \
            -H "authorization: Bearer $2" -H 'content-type: application/json' -d "$stadium"
    done | median
}

fresh_pg() { # sets URL
    local name="bench_catalog_$RANDOM$RANDOM"
    psql "$PG" -qc "CREATE DATABASE $name" >/dev/null
    dbs+=("$name")
    URL="${PG%/*}/$name"
}

echo "| store | 50,000-seat event via POST /v1/events (median of $RUNS) | seed 100,000 events |"
echo "|---|---|---|"

dir="$work/sqlite"; mkdir -p "$dir"
serve "$dir" BOXOFFICE_JWT_SECRET=bench-secret-bench-secret
tok=$(BOXOFFICE_JWT_SECRET=bench-secret-bench-secret "$BIN" token --sub org --role organizer)
sq_create=$(create_times "$BASE" "$tok")
kill "$PID"; wait "$PID" 2>/dev/null || true
start=$(date +%s.%N)
"$BIN" --data-dir "$work/sqlite-seed" seed --events 100000 --seed 1 >/dev/null 2>&1
sq_seed=$(echo "$(date +%s.%N) - $start" | bc)
printf '| SQLite (embedded) | %.3f s | %.1f s |\n' "$sq_create" "$sq_seed"

fresh_pg; url=$URL
serve "$work/pg" BOXOFFICE_JWT_SECRET=bench-secret-bench-secret BOXOFFICE_DATABASE_URL="$url"
pg_create=$(create_times "$BASE" "$tok")
kill "$PID"; wait "$PID" 2>/dev/null || true
fresh_pg; url2=$URL
start=$(date +%s.%N)
"$BIN" --database-url "$url2" seed --events 100000 --seed 1 >/dev/null 2>&1
pg_seed=$(echo "$(date +%s.%N) - $start" | bc)
printf '| PostgreSQL | %.3f s | %.1f s |\n' "$pg_create" "$pg_seed"

# The database's floor: 50,000 rows of the same shape inserted in one statement.
floor=$(for _ in $(seq 1 "$RUNS"); do
    psql "$url" -qAt <<'SQL' | tail -n 1
CREATE TEMP TABLE t (e uuid, s text, sec int2, ri int4, rl text, n int4, p int8, st text DEFAULT 'OPEN', PRIMARY KEY (e, s));
\timing on
INSERT INTO t (e, s, sec, ri, rl, n, p) SELECT '00000000-0000-0000-0000-000000000001', 's' || i, 1, i / 400, 'A', i % 400, 100 FROM generate_series(1, 50000) i;
SQL
done | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | median)
echo
printf 'PostgreSQL floor (bare INSERT … SELECT of 50,000 rows with a primary key): %.3f s; ' "$(echo "$floor / 1000" | bc -l)"
printf 'API event creation / floor = %.1fx\n' "$(echo "$pg_create / ($floor / 1000)" | bc -l)"
