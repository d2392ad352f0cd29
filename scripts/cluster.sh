#!/usr/bin/env bash
# A local scaled-out deployment, on proven engines from Debian's packages:
#
#   HAProxy (health check GET /readyz) ─▶ three `boxoffice serve` nodes
#        nodes ─▶ pgbouncer (transaction pooling) ─▶ PostgreSQL primary ─▶ streaming replica
#        nodes ─▶ Redis (hold gate), NATS JetStream (commit queue)
#
#   scripts/cluster.sh up      start everything; the last line printed is the load balancer URL
#   scripts/cluster.sh down    stop exactly what `up` started (by the PID files it wrote)
#   scripts/cluster.sh status  what is running
#   scripts/cluster.sh replica stop|start
#                              stop or restart the streaming replica (nodes skip it meanwhile)
#
# Everything lives under CLUSTER_DIR (default target/cluster): data directories, PID files,
# logs, configuration, the generated ticket key and `env` (the URLs, for tests and tools).
# Nothing else on the machine is touched: PostgreSQL, Redis and NATS are our own processes on
# our own ports (CLUSTER_PORT_BASE, default 17400), never the shared servers.
#
# Environment: BOXOFFICE_JWT_SECRET (used when set, else generated into the state dir),
# BOXOFFICE_BIN (default: build and use the debug binary), CLUSTER_DIR, CLUSTER_PORT_BASE,
# CLUSTER_POOL_MODE (pgbouncer pool mode: `transaction`, the default, or `session`).
#
# Transaction pooling: the nodes run with BOXOFFICE_DATABASE_POOLER=transaction — statements
# unnamed and typed (no prepared statement outlives a transaction, so any pgbouncer works,
# Debian 12's 1.18 included), nothing kept in the session; they LISTEN for change
# notifications on a direct connection to the primary (BOXOFFICE_DATABASE_LISTEN_URL), and the
# schema is migrated once, directly on the primary, before they start.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

STATE=${CLUSTER_DIR:-target/cluster}
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)
BASE=${CLUSTER_PORT_BASE:-17400}
LB_PORT=$BASE
STATS_PORT=$((BASE + 9))
NODE_PORTS=($((BASE + 1)) $((BASE + 2)) $((BASE + 3)))
PG_PORT=$((BASE + 32))
REPLICA_PORT=$((BASE + 33))
BOUNCER_PORT=$((BASE + 64))
REDIS_PORT=$((BASE + 79))
NATS_PORT=$((BASE + 22))
POOL_MODE=${CLUSTER_POOL_MODE:-transaction}

# Messages go to fd 3 (stderr), which stays visible inside conditions whose output is hidden.
exec 3>&2
log() { printf '==> %s\n' "$*" >&3; }
die() { printf 'cluster: %s\n' "$*" >&3; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
# PostgreSQL and pgbouncer refuse to run as root: as root, they run as `postgres`.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# Waits until "$@" succeeds, at most $1 seconds (polling a condition, no fixed sleeps).
wait_for() {
    local within=$1 what=$2
    shift 2
    local deadline=$((SECONDS + within))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || die "timed out after ${within}s waiting for $what"
        sleep 0.2
    done
}

pg_bin() {
    local v
    v=$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1)
    [ -n "$v" ] && [ -x "/usr/lib/postgresql/$v/bin/pg_ctl" ] || return 1
    echo "/usr/lib/postgresql/$v/bin"
}

apt_install() {
    log "installing $*"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

ensure_tools() {
    local missing=()
    pg_bin >/dev/null || missing+=(postgresql)
    command -v haproxy >/dev/null || missing+=(haproxy)
    command -v pgbouncer >/dev/null || missing+=(pgbouncer)
    command -v redis-server >/dev/null || missing+=(redis-server)
    [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
    command -v openssl >/dev/null || missing+=(openssl)
    command -v curl >/dev/null || missing+=(curl)
    if [ "${#missing[@]}" -gt 0 ]; then
        apt_install "${missing[@]}"
    fi
    PG_BIN=$(pg_bin) || die "no PostgreSQL server binaries under /usr/lib/postgresql"
}

# "1.18.0" → 1018000, for comparisons.

pid_alive() { [ -f "$1" ] && kill -0 "$(head -n 1 "$1")" 2>/dev/null; }

# ---------------------------------------------------------------------------------------------
start_postgres() {
    local pg=$STATE/pg
    mkdir -p "$pg/run" "$pg/logs"
    [ "$(id -u)" = 0 ] && chown -R postgres: "$pg"
    log "PostgreSQL primary on 127.0.0.1:$PG_PORT"
    as_pg "$PG_BIN/initdb" -D "$pg/primary" -U postgres -A trust --no-sync -E UTF8 >"$pg/logs/initdb.log"
    cat >>"$pg/primary/postgresql.conf" <<EOF
# scripts/cluster.sh
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$pg/run'
max_connections = 200
wal_level = replica
max_wal_senders = 5
hot_standby = on
EOF
    as_pg "$PG_BIN/pg_ctl" -D "$pg/primary" -l "$pg/logs/primary.log" -w -t 60 start >/dev/null 3>&-
    as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -qc 'CREATE DATABASE boxoffice' >/dev/null

    log "PostgreSQL streaming replica on 127.0.0.1:$REPLICA_PORT (pg_basebackup)"
    as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$PG_PORT" -U postgres -D "$pg/replica" \
        -R -X stream -c fast --no-sync
    as_pg bash -c "printf 'port = %s\n' '$REPLICA_PORT' >>'$pg/replica/postgresql.conf'"
    as_pg "$PG_BIN/pg_ctl" -D "$pg/replica" -l "$pg/logs/replica.log" -w -t 60 start >/dev/null 3>&-
    wait_for 60 "the replica to stream from the primary" replica_streaming
}

replica_streaming() {
    [ "$(psql -h 127.0.0.1 -p "$REPLICA_PORT" -U postgres -d postgres -qtAc 'SELECT pg_is_in_recovery()')" = t ] &&
        [ "$(psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -qtAc \
            "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" -ge 1 ]
}

start_pgbouncer() {
    local dir=$STATE/pg/pgbouncer version
    mkdir -p "$dir"
    version=$(pgbouncer --version | awk 'NR == 1 { print $2 }')
    case $POOL_MODE in
        transaction | session) ;;
        *) die "CLUSTER_POOL_MODE must be transaction or session, not $POOL_MODE" ;;
    esac
    log "pgbouncer $version ($POOL_MODE pooling) on 127.0.0.1:$BOUNCER_PORT"
    printf '"postgres" ""\n' >"$dir/userlist.txt"
    cat >"$dir/pgbouncer.ini" <<EOF
; scripts/cluster.sh
[databases]
boxoffice = host=127.0.0.1 port=$PG_PORT dbname=boxoffice user=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = $POOL_MODE
max_client_conn = 1000
default_pool_size = 120
reserve_pool_size = 10
server_reset_query = DISCARD ALL
pidfile = $dir/pgbouncer.pid
logfile = $dir/pgbouncer.log
admin_users = postgres
EOF
    [ "$(id -u)" = 0 ] && chown -R postgres: "$dir"
    as_pg pgbouncer -d -q "$dir/pgbouncer.ini" 3>&-
    wait_for 30 "pgbouncer" psql -h 127.0.0.1 -p "$BOUNCER_PORT" -U postgres -d boxoffice -qtAc 'SELECT 1'
}

start_redis() {
    log "Redis on 127.0.0.1:$REDIS_PORT"
    mkdir -p "$STATE/redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
        --dir "$STATE/redis" --pidfile "$STATE/redis/redis.pid" --logfile "$STATE/redis/redis.log" >/dev/null 3>&-
    wait_for 30 "Redis" bash -c "redis-cli -h 127.0.0.1 -p $REDIS_PORT ping | grep -q PONG"
}

nats_answers() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$NATS_PORT && head -n 1 <&3" 2>/dev/null |
        grep -q '"jetstream":true'
}

start_nats() {
    log "NATS with JetStream on 127.0.0.1:$NATS_PORT"
    mkdir -p "$STATE/nats/store"
    nohup /usr/sbin/nats-server -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$STATE/nats/store" \
        -P "$STATE/nats/nats.pid" -l "$STATE/nats/nats.log" >/dev/null 2>&1 3>&- &
    wait_for 30 "NATS" nats_answers
}

boxoffice_bin() {
    if [ -n "${BOXOFFICE_BIN:-}" ]; then
        echo "$BOXOFFICE_BIN"
        return
    fi
    log "building boxoffice (debug)"
    cargo build -q -p boxoffice >&2
    echo "${CARGO_TARGET_DIR:-$ROOT/target}/debug/boxoffice"
}

node_env() {
    # Run in a subshell per node: exports stay there.
    export BOXOFFICE_DATABASE_URL="postgres://postgres@127.0.0.1:$BOUNCER_PORT/boxoffice"
    if [ "$POOL_MODE" = transaction ]; then
        export BOXOFFICE_DATABASE_POOLER=transaction
    else
        export BOXOFFICE_DATABASE_POOLER=none
    fi
    export BOXOFFICE_DATABASE_LISTEN_URL="postgres://postgres@127.0.0.1:$PG_PORT/boxoffice"
    export BOXOFFICE_DATABASE_REPLICA_URL="postgres://postgres@127.0.0.1:$REPLICA_PORT/boxoffice"
    export BOXOFFICE_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
    export BOXOFFICE_NATS_URL="nats://127.0.0.1:$NATS_PORT"
    export BOXOFFICE_JWT_SECRET
    BOXOFFICE_JWT_SECRET=$(cat "$STATE/jwt-secret")
    export BOXOFFICE_TICKET_KEY_FILE="$STATE/ticket-key.pem"
    export BOXOFFICE_LOG=${BOXOFFICE_LOG:-info}
}

start_nodes() {
    local bin=$1 i port
    if [ -n "${BOXOFFICE_JWT_SECRET:-}" ]; then
        (umask 077 && printf '%s' "$BOXOFFICE_JWT_SECRET" >"$STATE/jwt-secret")
    else
        (umask 077 && openssl rand -hex 32 | tr -d '\n' >"$STATE/jwt-secret")
    fi
    (umask 077 && openssl genpkey -algorithm ED25519 -out "$STATE/ticket-key.pem" 2>/dev/null)
    # Migrations take a session-level advisory lock, which must not go through transaction
    # pooling: apply them once, straight on the primary, before the nodes start.
    log "migrating (directly on the primary)"
    (node_env && BOXOFFICE_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/boxoffice" \
        BOXOFFICE_DATABASE_POOLER=none BOXOFFICE_DATA_DIR="$STATE/migrate" BOXOFFICE_LOG=warn "$bin" migrate >/dev/null)
    for i in 0 1 2; do
        port=${NODE_PORTS[$i]}
        log "boxoffice node $((i + 1)) on 127.0.0.1:$port"
        mkdir -p "$STATE/node-$((i + 1))"
        (
            node_env
            export BOXOFFICE_DATA_DIR="$STATE/node-$((i + 1))/data"
            export BOXOFFICE_LISTEN="127.0.0.1:$port"
            nohup "$bin" serve >"$STATE/node-$((i + 1))/node.log" 2>&1 3>&- &
            echo $! >"$STATE/node-$((i + 1))/node.pid"
        )
    done
    for i in 0 1 2; do
        wait_for 180 "node $((i + 1)) to be ready" node_ready "$((i + 1))" "${NODE_PORTS[$i]}"
    done
}

# Ready, or dead: a node that exited fails the start at once, with its last log lines.
node_ready() {
    if ! pid_alive "$STATE/node-$1/node.pid"; then
        log "node $1 exited; the end of $STATE/node-$1/node.log:"
        tail -n 5 "$STATE/node-$1/node.log" >&3
        die "node $1 did not start"
    fi
    curl -fsS "http://127.0.0.1:$2/readyz"
}

lb_backends_up() {
    [ "$(curl -fsS "http://127.0.0.1:$STATS_PORT/stats;csv" | awk -F, '$1 == "nodes" && $2 ~ /^node/ && $18 == "UP"' | wc -l)" -eq 3 ]
}

start_haproxy() {
    local dir=$STATE/haproxy i
    mkdir -p "$dir"
    log "HAProxy on 127.0.0.1:$LB_PORT (stats on 127.0.0.1:$STATS_PORT)"
    {
        cat <<EOF
# scripts/cluster.sh
global
    maxconn 4000

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    # Server-sent event streams (queue, booking, seat map) stay open: heartbeats every 15 s.
    timeout tunnel 1h
    timeout http-keep-alive 10s
    option http-server-close
    option forwardfor

frontend www
    bind 127.0.0.1:$LB_PORT
    default_backend nodes

frontend stats
    bind 127.0.0.1:$STATS_PORT
    stats enable
    stats uri /stats
    stats refresh 5s

backend nodes
    balance leastconn
    option httpchk GET /readyz
    http-check expect status 200
    # A node that stops being ready (database down, index rebuilding) is out within 2 s.
    default-server inter 1s fall 2 rise 1 check
EOF
        for i in 0 1 2; do
            printf '    server node%d 127.0.0.1:%d\n' "$((i + 1))" "${NODE_PORTS[$i]}"
        done
    } >"$dir/haproxy.cfg"
    haproxy -c -q -f "$dir/haproxy.cfg"
    haproxy -D -f "$dir/haproxy.cfg" -p "$dir/haproxy.pid" 3>&-
    wait_for 30 "HAProxy to see three ready nodes" lb_backends_up
}

write_env() {
    cat >"$STATE/env" <<EOF
# Written by scripts/cluster.sh up; source it to talk to the cluster.
export BOXOFFICE_CLUSTER_URL=http://127.0.0.1:$LB_PORT
export BOXOFFICE_CLUSTER_NODES=http://127.0.0.1:${NODE_PORTS[0]},http://127.0.0.1:${NODE_PORTS[1]},http://127.0.0.1:${NODE_PORTS[2]}
export BOXOFFICE_CLUSTER_DATABASE_URL=postgres://postgres@127.0.0.1:$BOUNCER_PORT/boxoffice
export BOXOFFICE_CLUSTER_PRIMARY_URL=postgres://postgres@127.0.0.1:$PG_PORT/boxoffice
export BOXOFFICE_CLUSTER_REPLICA_URL=postgres://postgres@127.0.0.1:$REPLICA_PORT/boxoffice
export BOXOFFICE_CLUSTER_REDIS_URL=redis://127.0.0.1:$REDIS_PORT
export BOXOFFICE_CLUSTER_NATS_URL=nats://127.0.0.1:$NATS_PORT
export BOXOFFICE_CLUSTER_JWT_SECRET_FILE=$STATE/jwt-secret
export BOXOFFICE_CLUSTER_TICKET_KEY_FILE=$STATE/ticket-key.pem
export BOXOFFICE_CLUSTER_POOL_MODE=$POOL_MODE
export BOXOFFICE_CLUSTER_DIR=$STATE
export BOXOFFICE_CLUSTER_PORT_BASE=$BASE
EOF
}

up() {
    if anything_running; then
        die "a cluster is already running under $STATE: scripts/cluster.sh down first"
    fi
    ensure_tools
    local bin
    bin=$(boxoffice_bin)
    [ -x "$bin" ] || die "no boxoffice binary at $bin"
    rm -rf "$STATE"
    mkdir -p "$STATE"
    # If anything below fails, stop what was started.
    CLUSTER_STARTED=0
    trap '[ "${CLUSTER_STARTED:-0}" = 1 ] || { log "start failed; stopping what was started (logs in $STATE)"; down >/dev/null 2>&1 || true; }' EXIT
    start_postgres
    start_pgbouncer
    start_redis
    start_nats
    start_nodes "$bin"
    start_haproxy
    write_env
    CLUSTER_STARTED=1
    log "up: logs and state in $STATE; source $STATE/env for the URLs"
    echo "http://127.0.0.1:$LB_PORT"
}

# ---------------------------------------------------------------------------------------------
# Stops the process in PID file $1 if it is still the program $2 (a recycled PID is left
# alone), with $3 (default TERM), waiting at most $4 seconds (default 60) for it to go.
stop_pid() {
    local file=$1 prog=$2 sig=${3:-TERM} within=${4:-60} pid
    [ -f "$file" ] || return 0
    pid=$(head -n 1 "$file")
    if ! kill -0 "$pid" 2>/dev/null; then
        rm -f "$file"
        return 0
    fi
    if ! grep -q "$prog" "/proc/$pid/cmdline" 2>/dev/null; then
        log "PID $pid in $file is no longer $prog; left alone"
        rm -f "$file"
        return 0
    fi
    kill "-$sig" "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + within))
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "$prog ($pid) did not stop within ${within}s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    rm -f "$file"
}

stop_pg() {
    local data=$1
    [ -f "$data/postmaster.pid" ] || return 0
    local bin
    bin=$(pg_bin) || return 0
    as_pg "$bin/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
        stop_pid "$data/postmaster.pid" postgres TERM 60
}

down() {
    log "stopping the cluster under $STATE"
    stop_pid "$STATE/haproxy/haproxy.pid" haproxy
    local i
    for i in 1 2 3; do
        stop_pid "$STATE/node-$i/node.pid" boxoffice TERM 90
    done
    stop_pid "$STATE/pg/pgbouncer/pgbouncer.pid" pgbouncer
    stop_pid "$STATE/redis/redis.pid" redis-server
    stop_pid "$STATE/nats/nats.pid" nats-server
    stop_pg "$STATE/pg/replica"
    stop_pg "$STATE/pg/primary"
    log "down (state and logs kept in $STATE)"
}

anything_running() {
    local f
    for f in "$STATE/haproxy/haproxy.pid" "$STATE"/node-*/node.pid "$STATE/pg/pgbouncer/pgbouncer.pid" \
        "$STATE/redis/redis.pid" "$STATE/nats/nats.pid" "$STATE/pg/primary/postmaster.pid" \
        "$STATE/pg/replica/postmaster.pid"; do
        pid_alive "$f" && return 0
    done
    return 1
}

status() {
    local f
    for f in "$STATE/haproxy/haproxy.pid" "$STATE"/node-*/node.pid "$STATE/pg/pgbouncer/pgbouncer.pid" \
        "$STATE/redis/redis.pid" "$STATE/nats/nats.pid" "$STATE/pg/primary/postmaster.pid" \
        "$STATE/pg/replica/postmaster.pid"; do
        [ -f "$f" ] || continue
        if pid_alive "$f"; then
            printf 'running  %-8s %s\n' "$(head -n 1 "$f")" "${f#"$STATE"/}"
        else
            printf 'stopped  %-8s %s\n' "-" "${f#"$STATE"/}"
        fi
    done
}

replica() {
    PG_BIN=$(pg_bin) || die "no PostgreSQL binaries under /usr/lib/postgresql"
    case "${1:-}" in
        stop)
            log "stopping the replica"
            stop_pg "$STATE/pg/replica"
            ;;
        start)
            log "starting the replica"
            as_pg "$PG_BIN/pg_ctl" -D "$STATE/pg/replica" -l "$STATE/pg/logs/replica.log" -w -t 60 \
                start >/dev/null 3>&-
            wait_for 60 "the replica to stream from the primary" replica_streaming
            ;;
        *) die "usage: scripts/cluster.sh replica stop|start" ;;
    esac
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    replica) replica "${2:-}" ;;
    *)
        echo "usage: scripts/cluster.sh up|down|status|replica stop|start" >&2
        exit 2
        ;;
esac
