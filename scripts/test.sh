#!/usr/bin/env bash
# The test command: brings up the services the tests talk to (installing them where missing),
# then runs the format check, clippy, and every test. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

ensure_postgres() {
    if ! command -v pg_ctlcluster >/dev/null 2>&1; then
        log "installing PostgreSQL"
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql >/dev/null
        local ver
        ver=$(ls /etc/postgresql | sort -V | tail -n 1)
        # Tests connect over TCP as `postgres` without a password, as on the dev machines.
        as_root sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' \
            "/etc/postgresql/$ver/main/pg_hba.conf"
    fi
    if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
        log "starting PostgreSQL"
        as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start
    fi
    for _ in $(seq 1 60); do
        pg_isready -h 127.0.0.1 -p 5432 -q && break
        sleep 0.5
    done
    psql -h 127.0.0.1 -U postgres -d postgres -qtAc 'SELECT 1' >/dev/null \
        || { echo "PostgreSQL at 127.0.0.1:5432 does not accept the postgres user" >&2; exit 1; }
    # Many tests run at once, each with its own pools (several nodes, the sandbox ledger): the
    # default 100 connections is too few.
    if [ "$(psql -h 127.0.0.1 -U postgres -d postgres -qtAc 'SHOW max_connections')" -lt 300 ]; then
        log "raising PostgreSQL max_connections to 300"
        psql -h 127.0.0.1 -U postgres -d postgres -qc 'ALTER SYSTEM SET max_connections = 300'
        as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main restart
        for _ in $(seq 1 60); do
            pg_isready -h 127.0.0.1 -p 5432 -q && break
            sleep 0.5
        done
    fi
}

# --- scaled on-sale services (issue 9): Redis (hold gate) and NATS JetStream (commit queue) ---
redis_answers() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
nats_answers() {
    # The server greets every connection with an INFO line; JetStream must be on.
    timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/4222 && head -n 1 <&3' 2>/dev/null \
        | grep -q '"jetstream":true'
}

ensure_redis() {
    if ! command -v redis-server >/dev/null 2>&1; then
        log "installing Redis"
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq redis-server >/dev/null
    fi
    if ! redis_answers; then
        log "starting Redis"
        redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
    fi
    for _ in $(seq 1 40); do
        redis_answers && return 0
        sleep 0.25
    done
    echo "Redis at 127.0.0.1:6379 does not answer" >&2
    exit 1
}

ensure_nats() {
    if [ ! -x /usr/sbin/nats-server ]; then
        log "installing NATS"
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq nats-server >/dev/null
    fi
    if ! nats_answers; then
        log "starting NATS with JetStream"
        as_root mkdir -p /var/lib/nats-server
        as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
            -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server
    fi
    for _ in $(seq 1 40); do
        nats_answers && return 0
        sleep 0.25
    done
    echo "NATS with JetStream at 127.0.0.1:4222 does not answer" >&2
    exit 1
}
# --- end scaled on-sale services ---

# pgbouncer: the store's conformance suite runs a second time through a private pgbouncer in
# transaction pooling mode (crates/store-postgres/tests/conformance_pooled.rs starts it).
ensure_pgbouncer() {
    if ! command -v pgbouncer >/dev/null 2>&1 && ! [ -x /usr/sbin/pgbouncer ]; then
        log "installing pgbouncer"
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq pgbouncer >/dev/null
    fi
}

ensure_postgres
ensure_redis
ensure_nats
ensure_pgbouncer

log "cargo fmt --check"
cargo fmt --all -- --check

log "the domain crate does no IO"
if cargo tree -p boxoffice-domain -e normal --prefix none | grep -E '^(tokio|tokio-postgres|rusqlite|axum|reqwest|hyper) ' ; then
    echo "boxoffice-domain must not depend on IO crates" >&2
    exit 1
fi

log "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

log "tests"
if cargo nextest --version >/dev/null 2>&1; then
    # nextest fails when no tests run.
    cargo nextest run --workspace --no-fail-fast --no-tests=fail
    cargo test --workspace --doc
else
    out=$(mktemp)
    cargo test --workspace --no-fail-fast 2>&1 | tee "$out"
    passed=$(grep -Eo '[0-9]+ passed' "$out" | awk '{s += $1} END {print s + 0}')
    if [ "$passed" -eq 0 ]; then
        echo "no tests ran" >&2
        exit 1
    fi
fi
# ---- storefront browser tests (issue 11) ------------------------------------------------------
# Playwright (npm playwright-core, never its own browser download) drives Debian's Chromium
# against real `boxoffice serve` processes (debug binary, fresh embedded store each). Installs
# chromium with apt-get and the node modules with `npm ci` when missing. A failure, or no test
# run at all, fails the script.
run_browser_tests() {
    log "storefront browser tests"
    if ! [ -x /usr/bin/chromium ]; then
        log "installing Chromium"
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >/dev/null
    fi
    if ! command -v node >/dev/null 2>&1; then
        log "installing Node.js"
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq nodejs npm >/dev/null
    fi
    if ! [ -d web-tests/node_modules/playwright-core ] || ! [ -d web-tests/node_modules/axe-core ]; then
        npm ci --prefix web-tests --no-audit --no-fund
    fi
    cargo build -q -p boxoffice
    local out
    out=$(mktemp)
    local status=0
    (cd web-tests && BOXOFFICE_BIN="$PWD/../target/debug/boxoffice" \
        node --test --test-concurrency=1 --test-reporter=spec tests/) 2>&1 | tee "$out" || status=$?
    local passed
    passed=$(grep -E 'pass [0-9]+$' "$out" | tail -n 1 | grep -Eo '[0-9]+$' || true)
    rm -f "$out"
    if [ "$status" -ne 0 ]; then
        echo "storefront browser tests failed" >&2
        exit 1
    fi
    if [ -z "$passed" ] || [ "$passed" -eq 0 ]; then
        echo "no storefront browser test ran" >&2
        exit 1
    fi
}
run_browser_tests
# ---- end of storefront browser tests ------------------------------------------------------------

# ---- Kubernetes manifests (issue 12) -----------------------------------------------------------
# Every manifest under deploy/k8s (examples included) against the Kubernetes schemas, strictly
# (unknown fields are errors). kubernetes-validate (PyPI) carries the schemas itself, so this
# runs offline once installed; it is installed into a venv under target/ when missing.
validate_k8s_manifests() {
    log "Kubernetes manifests (kubernetes-validate)"
    local venv=target/k8s-validate-venv
    if ! [ -x "$venv/bin/kubernetes-validate" ]; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check 'kubernetes-validate>=1.31'
    fi
    local files=()
    mapfile -t files < <(find deploy/k8s -type f \( -name '*.yaml' -o -name '*.yml' \) | sort)
    if [ "${#files[@]}" -eq 0 ]; then
        echo "no Kubernetes manifest found under deploy/k8s" >&2
        exit 1
    fi
    local out status=0
    out=$("$venv/bin/kubernetes-validate" --strict "${files[@]}" 2>&1) || status=$?
    printf '%s\n' "$out"
    if [ "$status" -ne 0 ]; then
        echo "Kubernetes manifests do not validate" >&2
        exit 1
    fi
    local passed
    passed=$(grep -c ' passed for resource ' <<<"$out" || true)
    if [ "$passed" -eq 0 ]; then
        echo "no Kubernetes resource was validated" >&2
        exit 1
    fi
    echo "$passed Kubernetes resources validated"
}
validate_k8s_manifests
# ---- end of Kubernetes manifests ----------------------------------------------------------------

# ---- scaled-out cluster (issue 12) ---------------------------------------------------------------
# scripts/cluster.sh up (three nodes behind HAProxy, pgbouncer, a streaming replica, Redis, NATS,
# on ports from CLUSTER_TEST_PORT_BASE, default 17500, state under target/cluster-test), the
# booking races of crates/boxoffice/tests/cluster.rs through its load balancer, then down,
# whatever happened. A race that did not run (skipped) fails the script.
run_cluster_suite() {
    log "booking races against a scaled-out cluster (scripts/cluster.sh)"
    local dir=target/cluster-test
    local -x CLUSTER_DIR=$dir CLUSTER_PORT_BASE=${CLUSTER_TEST_PORT_BASE:-17500}
    scripts/cluster.sh down >/dev/null 2>&1 || true # leftovers of an interrupted run
    if ! scripts/cluster.sh up; then
        echo "scripts/cluster.sh up failed (logs under $dir)" >&2
        exit 1
    fi
    local out status=0
    out=$(mktemp)
    (
        set -a
        # shellcheck disable=SC1091
        . "$dir/env"
        set +a
        cargo test -q -p boxoffice --test cluster -- --nocapture --test-threads=1
    ) 2>&1 | tee "$out" || status=$?
    scripts/cluster.sh down || true
    if [ "$status" -ne 0 ]; then
        rm -f "$out"
        echo "the cluster races failed (logs under $dir)" >&2
        exit 1
    fi
    if grep -q '^skipped ' "$out" || ! grep -Eq 'test result: ok\. [1-9][0-9]* passed' "$out"; then
        rm -f "$out"
        echo "the cluster races did not run" >&2
        exit 1
    fi
    rm -f "$out"
}
run_cluster_suite
# ---- end of scaled-out cluster ------------------------------------------------------------------

log "all green"
