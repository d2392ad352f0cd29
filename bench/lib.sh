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

start_psp() { # $1 the fake provider's binary. Sets psp_env, the node's settings for $PSP:
    # `sandbox` (the node's own sandbox, whose payments live in the booking database) or
    # `fakepsp` (the Stripe-compatible fake as its own process: the Stripe adapter for real,
    # and a provider that does not share the booking database, as in production).
    psp_env=()
    [ "$PSP" = fakepsp ] || return 0
    "$1" >"$work/fakepsp.out" 2>"$work/fakepsp.err" &
    for _ in $(seq 1 100); do grep -q '^listening on' "$work/fakepsp.out" 2>/dev/null && break; sleep 0.1; done
    psp_env=(BOXOFFICE_PAYMENTS=stripe BOXOFFICE_STRIPE_SECRET_KEY=sk_test_bench
        BOXOFFICE_STRIPE_API_BASE="$(sed -n 's/^listening on //p' "$work/fakepsp.out")")
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

profile_reset() { # $1 database URL: zero the counters write_profile reads (needs superuser).
    psql "$1" -qc "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null 2>&1 || true
    psql "$1" -qAt -c "SELECT pg_stat_reset()" -c "SELECT pg_stat_statements_reset()" >/dev/null 2>&1 || true
}

write_profile() { # $1 database URL, after the node stopped (its backends have flushed their
    # statistics). What each confirmed booking cost the database, counted rather than timed, so
    # it does not depend on the machine or its load: transactions, statements, and row versions
    # written per table (seats laid out on first sale are not counted: that is per event).
    local url=$1
    psql "$url" -qAt -F' ' <<'SQL' 2>/dev/null || echo "(no write profile: the statistics views are not readable)"
SELECT pg_sleep(0.6) \g /dev/null
WITH n AS (SELECT greatest(count(*), 1)::numeric AS c FROM bookings WHERE status = 'CONFIRMED'),
     x AS (SELECT xact_commit + xact_rollback AS t FROM pg_stat_database WHERE datname = current_database()),
     s AS (SELECT coalesce(sum(calls), 0) AS c FROM pg_stat_statements
           WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
             AND query !~* '^\s*(BEGIN|COMMIT|ROLLBACK)'),
     w AS (SELECT relname, n_tup_ins - CASE WHEN relname = 'seats' THEN n_tup_ins ELSE 0 END AS ins,
                  n_tup_upd AS upd, n_tup_del AS del
           FROM pg_stat_user_tables)
SELECT format('Per confirmed booking (%s bookings): %s transactions, %s statements (BEGIN/COMMIT not counted), %s row versions written: %s.',
              (SELECT c FROM n),
              round((SELECT t FROM x) / (SELECT c FROM n), 1),
              round((SELECT c FROM s) / (SELECT c FROM n), 1),
              round((SELECT sum(ins + upd + del) FROM w) / (SELECT c FROM n), 1),
              (SELECT string_agg(format('%s %s', relname, round((ins + upd + del) / (SELECT c FROM n), 2)), ', '
                                 ORDER BY ins + upd + del DESC)
               FROM w WHERE ins + upd + del > 0));
SELECT '' \g /dev/null
\pset format unaligned
\pset tuples_only on
SELECT E'\n| statement (first words) | calls per booking | mean µs | share of statement time |\n|---|---:|---:|---:|';
WITH n AS (SELECT greatest(count(*), 1)::numeric AS c FROM bookings WHERE status = 'CONFIRMED'),
     s AS (SELECT query, calls, total_exec_time FROM pg_stat_statements
           WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())),
     t AS (SELECT sum(total_exec_time) AS t FROM s)
SELECT format('| `%s` | %s | %s | %s %% |',
              left(regexp_replace(query, '\s+', ' ', 'g'), 70),
              round(calls / (SELECT c FROM n), 2),
              round((total_exec_time * 1000 / greatest(calls, 1))::numeric, 0),
              round((100 * total_exec_time / (SELECT t FROM t))::numeric, 1))
FROM s ORDER BY total_exec_time DESC LIMIT 15;
SQL
}
