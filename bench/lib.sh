# Shared plumbing of the write benchmarks (booking.sh, onsale.sh), sourced after they set PG,
# SECRET, BIN and PGBENCH_CLIENTS: a work dir cleaned up on exit, fresh PostgreSQL databases,
# a node on a free port, and the same run's pgbench baseline.

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
    local name="bench_$RANDOM$RANDOM"
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

pgbench_baseline() { # $1 seconds. Sets tps and prints it: the database's ceiling for the
    # simplest write (a single-row UPDATE by primary key), in the same run.
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
    tps=$(pgbench -n -M prepared -c "$PGBENCH_CLIENTS" -j 2 -T "$1" -f "$work/update.sql" "$URL" 2>/dev/null \
        | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -n 1)
    printf 'pgbench, %s clients, single-row UPDATE by primary key (prepared): **%.0f transactions/s**.\n\n' "$PGBENCH_CLIENTS" "$tps"
}
