#!/usr/bin/env bash
# HTTP caching through HAProxy (issue 12): what HAProxy's own cache adds in front of one node.
#
# One release node on the embedded store (fresh data dir, `boxoffice seed --events $EVENTS
# --seed 1`, as bench/search.sh) and one HAProxy (Debian's package) with two frontends to that
# node: `plain` (no cache) and `cached` (a `cache` section, `http-request cache-use` /
# `http-response cache-store`, `process-vary on`, max-age 5 s as the node's event and search
# answers; every answer through it is tagged `X-Cache-Status: HIT|MISS` from `res.cache_hit`).
# Each route is then driven closed loop, direct to the node, through `plain`, through `cached`:
#
#   /healthz       the baseline of the same run (the HTTP stack's ceiling; never cached)
#   event detail   GET /v1/events/{id}, Zipf (s = 1) over $IDS event ids          (wrk + Lua)
#   seat maps      GET /v1/events/{id}/seats of $SEAT_EVENTS events, uniform        (wrk + Lua)
#   search         the search mix of bench/search.sh (crates/loadgen/src/search.rs)  (boxoffice-load)
#
# wrk drives the single-URL-per-request routes (the load driver has no event-detail or seat-map
# scenario); boxoffice-load drives the search mix. Each tool gets its own /healthz baseline
# direct to the node, and each row's ratio is to the baseline of the tool that drove it. Cache
# hits and the requests that reached the node come from HAProxy's stats (CSV) for each cell.
# Before the load, curl checks that an `If-None-Match` revalidation through the cache gets 304,
# and that requests carrying `Authorization` are neither served from nor stored in the cache.
# Prints markdown.
#
# Usage: bench/http-cache.sh            (builds release binaries first)
# Knobs: DURATION=10s WARMUP=3s CONNECTIONS=64 WRK_THREADS=1 EVENTS=100000 IDS=5000
#        SEAT_EVENTS=8 CACHE_MB=256
# Needs: haproxy and wrk (installed with apt-get when missing, as scripts/cluster.sh does),
#        curl, awk. Only 127.0.0.1 is ever contacted.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
CONNECTIONS=${CONNECTIONS:-64}
WRK_THREADS=${WRK_THREADS:-1}
EVENTS=${EVENTS:-100000}
IDS=${IDS:-5000}
SEAT_EVENTS=${SEAT_EVENTS:-8}
CACHE_MB=${CACHE_MB:-256}
SECRET=bench-secret-bench-secret

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
command -v haproxy >/dev/null || missing+=(haproxy)
command -v wrk >/dev/null || missing+=(wrk)
command -v curl >/dev/null || missing+=(curl)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing ${missing[*]}" >&2
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cargo build --release -q -p boxoffice -p boxoffice-loadgen
BIN=$PWD/target/release/boxoffice
LOAD=$PWD/target/release/boxoffice-load

work=$(mktemp -d)
cleanup() {
    # Every process started here is a job of this shell (HAProxy runs in the foreground, -db).
    # shellcheck disable=SC2046
    kill $(jobs -p) 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

commas() { local n=$1 out=""; while [ "${#n}" -gt 3 ]; do out=",${n: -3}$out"; n=${n:0:${#n}-3}; done; echo "$n$out"; }

# Sets $1 to a port nothing listens on (and not handed out before in this run).
used_ports=" "
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 30000))
        case $used_ports in *" $p "*) continue ;; esac
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            used_ports+="$p "
            printf -v "$1" '%s' "$p"
            return
        fi
    done
}

# How busy the machine is without us: CPU busy % over one second, and other compilers running.
cpu_busy() {
    local a b
    a=$(head -n 1 /proc/stat); sleep 1; b=$(head -n 1 /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN {
        n = split(a, x, " "); split(b, y, " ")
        for (i = 2; i <= n; i++) { t += y[i] - x[i]; if (i == 5 || i == 6) idle += y[i] - x[i] }
        printf "%.0f", (t > 0 ? 100 * (t - idle) / t : 0) }'
}
machine_load() {
    printf 'load average %s, CPU %s %% busy, %s rustc and %s cc1 processes of others running' \
        "$(cut -d' ' -f1-3 /proc/loadavg)" "$(cpu_busy)" \
        "$(pgrep -c -x rustc || true)" "$(pgrep -c -x cc1 || true)"
}
load_before=$(machine_load)

# --- the node -------------------------------------------------------------------------------
env_args=(BOXOFFICE_DATA_DIR="$work/data" BOXOFFICE_LOG=warn BOXOFFICE_JWT_SECRET="$SECRET")
env "${env_args[@]}" "$BIN" seed --events "$EVENTS" --seed 1 >/dev/null
env "${env_args[@]}" BOXOFFICE_LISTEN=127.0.0.1:0 "$BIN" serve >"$work/node.out" 2>"$work/node.err" &
NODE_PID=$!
for _ in $(seq 1 600); do grep -q '^listening on' "$work/node.out" 2>/dev/null && break; sleep 0.1; done
NODE=$(sed -n 's/^listening on //p' "$work/node.out")
[ -n "$NODE" ] || { cat "$work/node.err" >&2; exit 1; }
NODE_PORT=${NODE##*:}
# The node builds its search index from empty: wait until every event is searchable.
for _ in $(seq 1 1200); do
    total=$(curl -s "$NODE/v1/events?limit=1&startsAfter=2000-01-01T00:00:00Z" | sed -n 's/.*"total":\([0-9]*\).*/\1/p')
    [ "${total:-0}" -ge "$EVENTS" ] && break
    sleep 0.05
done
[ "${total:-0}" -ge "$EVENTS" ] || { echo "the node never indexed $EVENTS events" >&2; exit 1; }

# Event ids, by paging a browse of the whole catalog (soonest first).
: >"$work/ids"
url="$NODE/v1/events?limit=100&sort=date&startsAfter=2000-01-01T00:00:00Z"
page=$url
while [ "$(wc -l <"$work/ids")" -lt "$IDS" ]; do
    body=$(curl -sf "$page")
    { grep -o '"eventId":"[0-9a-f-]\{36\}"' <<<"$body" || true; } | cut -d'"' -f4 >>"$work/ids"
    cursor=$(sed -n 's/.*"nextCursor":"\([^"]*\)".*/\1/p' <<<"$body")
    [ -n "$cursor" ] || break
    page="$url&cursor=$cursor"
done
awk '!seen[$0]++' "$work/ids" | head -n "$IDS" >"$work/ids.u" && mv "$work/ids.u" "$work/ids"
[ "$(wc -l <"$work/ids")" -ge 2 ] || { echo "no event ids from the search API" >&2; exit 1; }
# Seat maps: every (IDS / SEAT_EVENTS)-th event of the list, so venues of several sizes.
awk -v n="$SEAT_EVENTS" -v total="$(wc -l <"$work/ids")" \
    'BEGIN { step = int(total / n); if (step < 1) step = 1 } (NR - 1) % step == 0 && c < n { print; c++ }' \
    "$work/ids" >"$work/seat-ids"

# --- HAProxy ----------------------------------------------------------------------------------
free_port PLAIN_PORT; free_port CACHED_PORT; free_port NOVARY_PORT; free_port STATS_PORT; free_port CLI_PORT
PLAIN=http://127.0.0.1:$PLAIN_PORT
CACHED=http://127.0.0.1:$CACHED_PORT
NOVARY=http://127.0.0.1:$NOVARY_PORT
cat >"$work/haproxy.cfg" <<EOF
# bench/http-cache.sh
global
    maxconn 4000
    stats socket ipv4@127.0.0.1:$CLI_PORT level admin

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 10s
    option forwardfor

# Shared memory for cached answers. max-age is the node's for event detail and search (seat
# maps say 1 s, and the lower of the two wins); process-vary lets HAProxy store answers that
# carry Vary (the node's say Vary: Accept-Encoding, which HAProxy 2.6 can key on).
cache api
    total-max-size $CACHE_MB
    max-object-size $((CACHE_MB * 1024 * 1024 / 4))
    max-age 5
    process-vary on

# For one check only: the same cache with HAProxy's default, process-vary off.
cache api_novary
    total-max-size 16
    max-age 5

frontend plain
    bind 127.0.0.1:$PLAIN_PORT
    default_backend node_plain

frontend cached
    bind 127.0.0.1:$CACHED_PORT
    default_backend node_cached

frontend novary
    bind 127.0.0.1:$NOVARY_PORT
    default_backend node_novary

frontend stats
    bind 127.0.0.1:$STATS_PORT
    stats enable
    stats uri /stats

backend node_plain
    server node1 127.0.0.1:$NODE_PORT

backend node_cached
    http-request cache-use api
    http-response cache-store api
    http-response set-header X-Cache-Status HIT if { res.cache_hit }
    http-response set-header X-Cache-Status MISS if !{ res.cache_hit }
    server node1 127.0.0.1:$NODE_PORT

backend node_novary
    http-request cache-use api_novary
    http-response cache-store api_novary
    http-response set-header X-Cache-Status HIT if { res.cache_hit }
    http-response set-header X-Cache-Status MISS if !{ res.cache_hit }
    server node1 127.0.0.1:$NODE_PORT
EOF
haproxy -c -q -f "$work/haproxy.cfg"
haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
HAPROXY_PID=$!
for _ in $(seq 1 100); do curl -sf -o /dev/null "$CACHED/healthz" && break; sleep 0.1; done
curl -sf -o /dev/null "$PLAIN/healthz" || { cat "$work/haproxy.log" >&2; exit 1; }

# HAProxy's counters for one backend, by CSV column name: "cache_lookups cache_hits served",
# served being the responses the node gave (its server row's hrsp_* summed).
stats() {
    curl -s "http://127.0.0.1:$STATS_PORT/stats;csv" | awk -F, -v be="$1" '
        NR == 1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) col[$i] = i; next }
        $1 == be && $2 == "BACKEND" { look = $col["cache_lookups"] + 0; hits = $col["cache_hits"] + 0 }
        $1 == be && $2 == "node1" {
            served = $col["hrsp_1xx"] + $col["hrsp_2xx"] + $col["hrsp_3xx"] + $col["hrsp_4xx"] + $col["hrsp_5xx"] + $col["hrsp_other"] }
        END { print look + 0, hits + 0, served + 0 }'
}

# HAProxy's CLI over TCP (no socat needed).
haproxy_cli() {
    exec 5<>"/dev/tcp/127.0.0.1/$CLI_PORT"
    printf '%s\n' "$1" >&5
    cat <&5
    exec 5>&-
}

# --- checks through the cache, before any load (an empty cache) ----------------------------------
hdr() { tr -d '\r' | awk -v h="$1" 'tolower($0) ~ "^" tolower(h) ":" { sub(/^[^:]*: */, ""); print; exit }'; }
status_of() { tr -d '\r' | awk 'NR == 1 { print $2; exit }'; }
get() { curl -s -D - -o /dev/null "$@"; } # headers only
checks=()
cache_after=()
check() { # $1 0 when the check passed, $2 what was seen
    if [ "$1" = 0 ]; then checks+=("- ✅ $2"); else checks+=("- ❌ $2"); fi
}
served_by_node() { stats node_cached | cut -d' ' -f3; }

probe=$(sed -n '2p' "$work/ids")
h1=$(get "$CACHED/v1/events/$probe")
h2=$(get "$CACHED/v1/events/$probe")
etag=$(hdr etag <<<"$h1")
cc=$(hdr cache-control <<<"$h1")
vary=$(hdr vary <<<"$h1")
headers_seen="\`Cache-Control: $cc\`, \`ETag: $etag\`, \`Vary: $vary\`"
{ [ "$(hdr x-cache-status <<<"$h1")" = MISS ] && [ "$(hdr x-cache-status <<<"$h2")" = HIT ]; } && r=0 || r=1
check "$r" "event detail through the cache: first MISS, second HIT (age $(hdr age <<<"$h2") s); the node sent $headers_seen"

n0=$(served_by_node)
h3=$(get -H "If-None-Match: $etag" "$CACHED/v1/events/$probe")
n1=$(served_by_node)
{ [ "$(status_of <<<"$h3")" = 304 ] && [ "$n1" = "$n0" ]; } && r=0 || r=1
check "$r" "\`If-None-Match: $etag\` through the cache: $(status_of <<<"$h3") ($(hdr x-cache-status <<<"$h3")), $((n1 - n0)) requests reached the node (the cache answered the revalidation itself)"
h4=$(get -H "If-None-Match: $etag" "$NODE/v1/events/$probe")
{ [ "$(status_of <<<"$h4")" = 304 ]; } && r=0 || r=1
check "$r" "the same revalidation direct to the node: $(status_of <<<"$h4")"
h5=$(get -H "If-None-Match: \"0000\"" "$CACHED/v1/events/$probe")
{ [ "$(status_of <<<"$h5")" = 200 ]; } && r=0 || r=1
check "$r" "a non-matching \`If-None-Match\` through the cache: $(status_of <<<"$h5") ($(hdr x-cache-status <<<"$h5"))"

# Authorization: an event nobody asked for yet. Asked with a token first (must not be stored),
# then without (a MISS that stores it), without again (HIT), with a token again (must not be
# delivered from the cache).
tok=$(BOXOFFICE_JWT_SECRET=$SECRET "$BIN" token --sub bench-alice --role customer)
tok2=$(BOXOFFICE_JWT_SECRET=$SECRET "$BIN" token --sub bench-bob --role customer)
fresh=$(tail -n 1 "$work/ids")
n0=$(served_by_node)
a1=$(get -H "Authorization: Bearer $tok" "$CACHED/v1/events/$fresh")
a2=$(get "$CACHED/v1/events/$fresh")
a3=$(get "$CACHED/v1/events/$fresh")
a4=$(get -H "Authorization: Bearer $tok" "$CACHED/v1/events/$fresh")
n1=$(served_by_node)
seq_seen="$(hdr x-cache-status <<<"$a1"), $(hdr x-cache-status <<<"$a2"), $(hdr x-cache-status <<<"$a3"), $(hdr x-cache-status <<<"$a4")"
{ [ "$seq_seen" = "MISS, MISS, HIT, MISS" ] && [ $((n1 - n0)) = 3 ]; } && r=0 || r=1
check "$r" "public event detail with and without \`Authorization\` (with, without, without, with): $seq_seen; $((n1 - n0)) of 4 reached the node — a request with \`Authorization\` is neither stored nor answered from the cache"
n0=$(served_by_node)
p1=$(get -H "Authorization: Bearer $tok" "$CACHED/v1/tickets")
p2=$(get -H "Authorization: Bearer $tok" "$CACHED/v1/tickets")
p3=$(get -H "Authorization: Bearer $tok2" "$CACHED/v1/tickets")
p4=$(get "$CACHED/v1/tickets")
n1=$(served_by_node)
pcc=$(hdr cache-control <<<"$p1"); petag=$(hdr etag <<<"$p1")
{ [ "$(hdr x-cache-status <<<"$p2")" = MISS ] && [ "$(hdr x-cache-status <<<"$p3")" = MISS ] && [ "$(status_of <<<"$p4")" = 401 ] && [ $((n1 - n0)) = 4 ]; } && r=0 || r=1
check "$r" "private \`GET /v1/tickets\` (alice, alice, bob, no token): $(status_of <<<"$p1") $(hdr x-cache-status <<<"$p1"), $(status_of <<<"$p2") $(hdr x-cache-status <<<"$p2"), $(status_of <<<"$p3") $(hdr x-cache-status <<<"$p3"), $(status_of <<<"$p4") $(hdr x-cache-status <<<"$p4"); all 4 reached the node (its answer has Cache-Control \`${pcc:-none}\`, ETag \`${petag:-none}\`)"

sfirst=$(head -n 1 "$work/seat-ids")
s1=$(get "$CACHED/v1/events/$sfirst/seats"); s2=$(get "$CACHED/v1/events/$sfirst/seats")
{ [ "$(hdr x-cache-status <<<"$s2")" = HIT ]; } && r=0 || r=1
check "$r" "seat map through the cache: $(hdr x-cache-status <<<"$s1") then $(hdr x-cache-status <<<"$s2") (\`Cache-Control: $(hdr cache-control <<<"$s1")\`)"
q="/v1/events?q=jazz&sort=date"
q1=$(get "$CACHED$q"); q2=$(get "$CACHED$q")
{ [ "$(hdr x-cache-status <<<"$q2")" = HIT ]; } && r=0 || r=1
check "$r" "search \`$q\` through the cache: $(hdr x-cache-status <<<"$q1") then $(hdr x-cache-status <<<"$q2")"
g1=$(get -H 'Accept-Encoding: gzip' "$CACHED$q")
checks+=("- (seen) the same search with \`Accept-Encoding: gzip\`: $(hdr x-cache-status <<<"$g1"), Content-Encoding \`$(hdr content-encoding <<<"$g1" | grep . || echo none)\` (the node does not compress API answers; HAProxy serves the identity copy to a client that accepts gzip)")

v1=$(get "$NOVARY/v1/events/$probe"); v2=$(get "$NOVARY/v1/events/$probe")
checks+=("- (seen) the same event detail through a cache with HAProxy's default \`process-vary off\`: $(hdr x-cache-status <<<"$v1") then $(hdr x-cache-status <<<"$v2") — with \`Vary: $vary\` on the answer, HAProxy caches it only with \`process-vary on\`")

seat_sizes=$(while read -r id; do curl -s -o /dev/null -w '%{http_code} %{size_download}\n' "$NODE/v1/events/$id/seats"; done <"$work/seat-ids" \
    | awk '{ printf "%s%.1f KiB%s", (NR > 1 ? ", " : ""), $2 / 1024, ($1 == 200 ? "" : " (HTTP " $1 ")") }')
detail_size=$(curl -s -o /dev/null -w '%{size_download}' "$NODE/v1/events/$probe")

# --- load ---------------------------------------------------------------------------------------
cat >"$work/common.lua" <<'EOF'
-- Each thread gets its own seed; done() prints one machine-readable line.
local counter = 0
function setup(thread)
    thread:set("tid", counter)
    counter = counter + 1
end
function load_ids(file)
    local ids = {}
    for line in io.lines(file) do ids[#ids + 1] = line end
    return ids
end
function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format("RESULT %d %.6f %.3f %.3f %d\n", summary.requests,
        summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
        e.connect + e.read + e.write + e.status + e.timeout))
end
EOF
cat >"$work/healthz.lua" <<EOF
dofile("$work/common.lua")
EOF
cat >"$work/detail.lua" <<EOF
dofile("$work/common.lua")
-- Zipf (s = 1) over the ids: the first in the list is asked most.
local ids, cum
function init(args)
    math.randomseed(1 + (tid or 0))
    ids = load_ids("$work/ids")
    cum = {}
    local total = 0
    for k = 1, #ids do total = total + 1 / k; cum[k] = total end
end
function request()
    local x = math.random() * cum[#cum]
    local lo, hi = 1, #cum
    while lo < hi do
        local mid = math.floor((lo + hi) / 2)
        if cum[mid] < x then lo = mid + 1 else hi = mid end
    end
    return wrk.format(nil, "/v1/events/" .. ids[lo])
end
EOF
cat >"$work/seats.lua" <<EOF
dofile("$work/common.lua")
local ids
function init(args)
    math.randomseed(1 + (tid or 0))
    ids = load_ids("$work/seat-ids")
end
function request()
    return wrk.format(nil, "/v1/events/" .. ids[math.random(#ids)] .. "/seats")
end
EOF

rows=()
declare -A base_rps
# Waits (at most 20 s) until the node and HAProxy have been idle for half a second — under 5 %
# of a core: a cell that ended with slow answers in flight (seat maps) leaves the node busy.
cpu_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat"))); done; echo "$t"; }
settle() {
    local a b
    for _ in $(seq 1 40); do
        a=$(cpu_ticks "$NODE_PID" "$HAPROXY_PID"); sleep 0.5; b=$(cpu_ticks "$NODE_PID" "$HAPROXY_PID")
        [ $((b - a)) -le $(( $(getconf CLK_TCK) / 40 )) ] && return
    done
}
# Others' compilers running now (the machine is shared): rustc and cc1 processes.
neighbours() { echo $(( $(pgrep -c -x rustc || true) + $(pgrep -c -x cc1 || true) )); }
# $1 tool (wrk|load), $2 route label, $3 path label ("baseline": /healthz direct, only for the
# ratio of the rows after it), $4 base url, $5 backend for stats or "", $6 the wrk script or the
# load driver's scenario.
cell() {
    local tool=$1 route=$2 via=$3 url=$4 be=$5 what=$6 before after line reqs secs p50 p99 errs rps busy
    settle
    busy=$(neighbours)
    before=$( [ -n "$be" ] && stats "$be" || echo "0 0 0")
    if [ "$tool" = wrk ]; then
        # healthz.lua sends wrk's one static request: the path is the URL's.
        [ "$what" = healthz ] && url=$url/healthz
        wrk -t "$WRK_THREADS" -c "$CONNECTIONS" -d "$WARMUP" --timeout 30s -s "$work/$what.lua" "$url" >/dev/null
        line=$(wrk -t "$WRK_THREADS" -c "$CONNECTIONS" -d "$DURATION" --timeout 30s -s "$work/$what.lua" "$url" | grep '^RESULT')
        read -r _ reqs secs p50 p99 errs <<<"$line"
        rps=$(awk -v r="$reqs" -v s="$secs" 'BEGIN { printf "%.0f", r / s }')
        p50=$(printf '%.2f' "$p50"); p99=$(printf '%.2f' "$p99")
    else
        line=$("$LOAD" --url "$url" --users "$CONNECTIONS" --duration "$DURATION" --warmup "$WARMUP" --no-header "$what" \
            | grep "^| $what |")
        IFS='|' read -r _ _ _ reqs rps p50 p99 _ _ errs _ <<<"$line"
        rps=${rps// /}; p50=${p50// /}; p99=${p99// /}; errs=${errs// /}
    fi
    after=$( [ -n "$be" ] && stats "$be" || echo "0 0 0")
    busy="$busy/$(neighbours)"
    if [ "$via" = baseline ] || { [ "$route" = /healthz ] && [ "$via" = direct ]; }; then base_rps[$tool]=$rps; fi
    if [ "$via" = baseline ]; then
        printf 'baseline /healthz direct (%s): %s req/s\n' "$tool" "$rps" >&2
        return
    fi
    local ratio hit node
    ratio=$(awk -v a="$rps" -v b="${base_rps[$tool]}" 'BEGIN { printf "%.0f %%", 100 * a / b }')
    read -r l0 h0 s0 <<<"$before"; read -r l1 h1 s1 <<<"$after"
    if [ "$via" = "HAProxy + cache" ]; then
        hit=$(awk -v l=$((l1 - l0)) -v h=$((h1 - h0)) 'BEGIN { if (l > 0) printf "%.1f %% (%d of %d)", 100 * h / l, h, l; else print "– (0 lookups)" }')
    else
        hit="–"
    fi
    if [ -n "$be" ]; then node=$(commas $((s1 - s0))); else node="all"; fi
    local tname=wrk; [ "$tool" = load ] && tname=boxoffice-load
    rows+=("| $route | $via | $tname | $(commas "$rps") | $p50 | $p99 | $ratio of $(commas "${base_rps[$tool]}") | $hit | $node | ${errs:-0} | $busy |")
    printf '%s\n' "${rows[-1]}" >&2
}

# Each route's three rows come right after a /healthz run direct to the node with the same
# driver (its own direct row for /healthz): their ratio is to that, so a neighbour's build
# starting or stopping between routes does not skew it.
start_load=$(date +%s)
for spec in "wrk|/healthz|healthz" "wrk|event detail|detail" "wrk|seat maps|seats" \
            "load|/healthz|healthz" "load|search mix|search"; do
    IFS='|' read -r tool route what <<<"$spec"
    [ "$what" = healthz ] || cell "$tool" /healthz baseline "$NODE" "" healthz
    cell "$tool" "$route" direct "$NODE" "" "$what"
    cell "$tool" "$route" HAProxy "$PLAIN" node_plain "$what"
    cell "$tool" "$route" "HAProxy + cache" "$CACHED" node_cached "$what"
    if [ "$what" = detail ] || [ "$what" = search ]; then
        entries=$(haproxy_cli "show cache" | grep -c 'hash:' || true)
        cache_after+=("$route: $entries entries in the cache right after its cached run")
    fi
done
load_s=$(( $(date +%s) - start_load ))
load_after=$(machine_load)

# --- report -------------------------------------------------------------------------------------
echo "HTTP caching through HAProxy: $EVENTS events (embedded store), one node, HAProxy $(haproxy -v | awk 'NR == 1 { print $3 }'),"
echo "$CONNECTIONS connections closed loop, ${DURATION} measured after ${WARMUP} warm-up per cell, wrk $WRK_THREADS thread(s),"
echo "$(nproc) cores shared by the node, HAProxy and the load tool, $(date -u '+%Y-%m-%d %H:%M UTC')."
echo
echo "Machine before: $load_before. After ${load_s} s of load: $load_after."
echo
echo "| route | via | driver | req/s | p50 ms | p99 ms | / direct /healthz just before (same driver) | cache hits (of lookups) | answers from the node | errors | others' compilers at start/end |"
echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
echo
echo "Event detail: Zipf (s = 1) over $(wc -l <"$work/ids") event ids (answers of $detail_size bytes); seat maps: $(wc -l <"$work/seat-ids") events, uniform (answers of $seat_sizes);"
echo "search: the bench/search.sh mix (Zipf s = 1; deep pages by cursor). Hits and node answers are counted over the whole cell, warm-up included."
printf '%s.\n' "${cache_after[@]}"
echo
echo "Checks (curl, through the cached frontend unless said otherwise, on an empty cache):"
echo
printf '%s\n' "${checks[@]}"
