#!/usr/bin/env bash
# bench/cluster.sh — cluster mode's figures (docs/cluster.md; issue 14), in
# one command, as root, from the repository root.
#
# Starts a throwaway PostgreSQL 15 (as nobody, fsync off, in /var/tmp), a
# Postfix smtp-sink, and three scriptmail nodes on this machine (three
# configurations, queues and relayd processes, sync_interval 1s), then
# measures:
#   - block propagation to the three nodes: ROUNDS block/unblock pairs
#     through `mailq-ctl`; for each change, the time from its transaction
#     in the store to each node's acknowledgement (the node applied it to
#     its SQLite copy): p50/p99 per node and for the last of the three;
#   - counter lag: LAG_RUNS submissions on one node, at random points of
#     the sync cycle; the time from `sendmail`'s exit 0 until the cluster's
#     counters in the store show the message;
#   - relayd's idle CPU with the sync on: utime+stime from /proc/PID/stat of
#     each relayd over IDLE_SECS seconds, nothing submitted;
#   - the panel-scale read against the store: the hidden `mailq-ctl cluster
#     populate` builds CP_ACCOUNTS accounts with CP_MESSAGES messages of
#     history over three nodes, then `mailq-ctl --json status ACCOUNT` and
#     `mailq-ctl --json status` (every account) READS times each.
#
# Knobs (environment): ROUNDS (100), LAG_RUNS (50), IDLE_SECS (60),
# CP_ACCOUNTS (10000), CP_MESSAGES (1000000), READS (20), NO_BUILD=1,
# KEEP=1 (keep the work dir). Prints a markdown table on stdout.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

ROUNDS=${ROUNDS:-100}
LAG_RUNS=${LAG_RUNS:-50}
IDLE_SECS=${IDLE_SECS:-60}
CP_ACCOUNTS=${CP_ACCOUNTS:-10000}
CP_MESSAGES=${CP_MESSAGES:-1000000}
READS=${READS:-20}
PGBIN=/usr/lib/postgresql/15/bin

say() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'bench: %s\n' "$*" >&2
    exit 1
}

[ "$(id -u)" -eq 0 ] || die "run as root: PostgreSQL runs as nobody, relayd as the queue owner"
[ -x "$PGBIN/initdb" ] || die "postgresql-15 is not installed (apt-get install postgresql-15)"
command -v smtp-sink >/dev/null || die "smtp-sink is not installed (apt-get install postfix)"

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release
if [ -z "${NO_BUILD:-}" ]; then
    say "cargo build --release"
    cargo build --release --locked --bins -q
fi
[ -x "$BIN/sendmail" ] && [ -x "$BIN/scriptmail" ] || die "no release binaries in $BIN"

WORK=$(mktemp -d /var/tmp/scriptmail-cluster-bench.XXXXXX)
chmod 755 "$WORK"
PIDS=()
PGDATA=$WORK/pg/data
cleanup() {
    set +e
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    [ -d "$PGDATA" ] && runuser -u nobody -- "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate -w stop >/dev/null 2>&1
    if [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; else echo "work dir kept: $WORK" >&2; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_ns() { date +%s%N; }

# ---------------------------------------------------------------- PostgreSQL
PGPORT=$(free_port)
mkdir -p "$WORK/pg"
chown nobody:nogroup "$WORK/pg"
chmod 700 "$WORK/pg"
say "PostgreSQL 15 on 127.0.0.1:$PGPORT"
runuser -u nobody -- "$PGBIN/initdb" -D "$PGDATA" -U postgres -A trust -E UTF8 \
    --locale=C.UTF-8 --no-sync >"$WORK/initdb.log" 2>&1 || die "initdb failed: $(tail -5 "$WORK/initdb.log")"
runuser -u nobody -- "$PGBIN/pg_ctl" -D "$PGDATA" -l "$WORK/pg/server.log" -w -o \
    "-c listen_addresses=127.0.0.1 -p $PGPORT -c unix_socket_directories=$WORK/pg -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null || die "pg_ctl start failed: $(tail -5 "$WORK/pg/server.log")"
psql() { "$PGBIN/psql" -X -q -At -h 127.0.0.1 -p "$PGPORT" -U postgres "$@"; }
psql -d postgres -c "CREATE DATABASE bench"
URL="postgresql://postgres@127.0.0.1:$PGPORT/bench"

# ---------------------------------------------------------------- smtp-sink
SINKPORT=$(free_port)
smtp-sink -u root "127.0.0.1:$SINKPORT" 256 2>"$WORK/smtp-sink.err" &
PIDS+=($!)

# ---------------------------------------------------------------- three nodes
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
while True:
    s.recv(65536)
' "$WORK/log.sock" &
PIDS+=($!)
declare -A RELAYD
for n in a b c; do
    mkdir -p "$WORK/$n/queue"
    cat >"$WORK/$n/scriptmail.toml" <<EOF
node.domain = "bench.example.net"
queue.dir = "$WORK/$n/queue"
relay.host = "127.0.0.1"
relay.port = $SINKPORT
relay.program = "$BIN/scriptmail"
log.socket = "$WORK/log.sock"
[cluster]
url = "$URL"
node = "$n"
tls = "none"
sync_interval = "1s"
EOF
    SCRIPTMAIL_CONFIG=$WORK/$n/scriptmail.toml "$BIN/scriptmail" relayd 2>"$WORK/$n/relayd.err" &
    RELAYD[$n]=$!
    PIDS+=($!)
done
ctl() {
    local n=$1
    shift
    SCRIPTMAIL_CONFIG=$WORK/$n/scriptmail.toml "$BIN/scriptmail" mailq-ctl "$@"
}
submit() {
    printf 'To: a@example.com\r\nSubject: bench\r\n\r\nhello\r\n' |
        SCRIPTMAIL_CONFIG=$WORK/$1/scriptmail.toml "$BIN/sendmail" -t -i
}
for _ in $(seq 200); do
    [ "$(psql -d bench -c "SELECT count(*) FROM nodes WHERE last_sync IS NOT NULL" 2>/dev/null || echo 0)" = 3 ] && break
    sleep 0.1
done
[ "$(psql -d bench -c "SELECT count(*) FROM nodes WHERE last_sync IS NOT NULL")" = 3 ] ||
    die "the nodes did not sync: $(cat "$WORK"/*/relayd.err)"
submit a
say "three nodes synced; account root known"

# ---------------------------------------------------------------- propagation
say "block propagation: $ROUNDS block/unblock rounds"
for _ in $(seq "$ROUNDS"); do
    ctl a block root >/dev/null
    ctl b unblock root >/dev/null
done
PROP=$(psql -d bench -F ' ' -c "
    WITH d AS (
        SELECT c.revision, a.node,
               extract(epoch FROM a.done_at - c.issued) * 1000 AS ms
        FROM changes c JOIN acks a USING (revision) WHERE c.kind = 'state'),
    last AS (SELECT revision, max(ms) AS ms FROM d GROUP BY revision HAVING count(*) = 3)
    SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1),
           round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1),
           (SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1) FROM last),
           (SELECT round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1) FROM last),
           (SELECT count(*) FROM last)
    FROM d")
read -r P50 P99 L50 L99 NCHANGES <<<"$PROP"

# ---------------------------------------------------------------- counter lag
say "counter lag: $LAG_RUNS submissions on node b"
coproc PSQL { "$PGBIN/psql" -X -q -At -h 127.0.0.1 -p "$PGPORT" -U postgres -d bench 2>&1; }
query() {
    printf '%s\n' "$1" >&"${PSQL[1]}"
    local line
    read -r line <&"${PSQL[0]}"
    printf '%s' "$line"
}
COUNT_SQL="SELECT coalesce(sum(submitted), 0) FROM counters WHERE account = 'root' AND day = floor(extract(epoch FROM now()) / 86400)::bigint;"
LAGS=()
for _ in $(seq "$LAG_RUNS"); do
    before=$(query "$COUNT_SQL")
    sleep "0.$((RANDOM % 1000))"
    submit b
    t0=$(now_ns)
    while [ "$(query "$COUNT_SQL")" -le "$before" ]; do :; done
    t1=$(now_ns)
    LAGS+=($(((t1 - t0) / 1000000)))
done
read -r LAG50 LAG99 LAGMAX <<<"$(printf '%s\n' "${LAGS[@]}" | sort -n | awk '{v[NR]=$1} END {
    p50 = v[int((NR + 1) * 0.5)]; i99 = int(NR * 0.99 + 0.999); if (i99 > NR) i99 = NR
    print p50, v[i99], v[NR] }')"

# ---------------------------------------------------------------- idle CPU
say "relayd idle CPU over ${IDLE_SECS}s"
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
declare -A T0
for n in a b c; do T0[$n]=$(ticks "${RELAYD[$n]}"); done
sleep "$IDLE_SECS"
IDLE=""
for n in a b c; do
    t=$(($(ticks "${RELAYD[$n]}") - T0[$n]))
    IDLE+="$n $(awk -v t="$t" -v hz="$HZ" -v s="$IDLE_SECS" 'BEGIN { printf "%.2f", 100 * t / hz / s }')% "
done

# ---------------------------------------------------------------- panel-scale reads
say "populate: $CP_ACCOUNTS accounts, $CP_MESSAGES messages of history"
POP=$(ctl a --json cluster populate --accounts "$CP_ACCOUNTS" --messages "$CP_MESSAGES" --nodes 3)
POP_S=$(printf '%s' "$POP" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.1f s, %d counter rows, %d errors" % (d["seconds"], d["counter_rows"], d["errors"]))')
ONE=acct-$(printf '%05d' $((CP_ACCOUNTS / 2)))
time_ms() {
    local runs=$1
    shift
    local out=()
    for _ in $(seq "$runs"); do
        local t0 t1
        t0=$(now_ns)
        "$@" >/dev/null
        t1=$(now_ns)
        out+=($(((t1 - t0) / 1000000)))
    done
    printf '%s\n' "${out[@]}" | sort -n | awk '{v[NR]=$1} END {
        i95 = int(NR * 0.95 + 0.999); if (i95 > NR) i95 = NR
        print v[int((NR + 1) / 2)], v[i95] }'
}
read -r ONE50 ONE95 <<<"$(time_ms "$READS" ctl a --json status "$ONE")"
read -r ALL50 ALL95 <<<"$(time_ms "$READS" ctl a --json status)"
NACC=$(ctl a --json status | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["accounts"]))')

# ---------------------------------------------------------------- table
cat <<EOF
## Cluster mode (bench/cluster.sh)

$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on loopback (fsync off), three nodes on this machine, sync_interval 1s.

| figure | p50 | p99 / p95 | notes |
|---|---|---|---|
| block propagation, per node | $P50 ms | $P99 ms (p99) | store transaction to the node's acknowledgement, $NCHANGES changes |
| block propagation, all three nodes | $L50 ms | $L99 ms (p99) | until the last of the three |
| counter lag | $LAG50 ms | $LAG99 ms (p99) | sendmail exit 0 to the sum in the store; max $LAGMAX ms; $LAG_RUNS runs |
| relayd idle CPU (sync on) | $IDLE | | over ${IDLE_SECS}s, /proc/PID/stat |
| \`status $ONE\` | $ONE50 ms | $ONE95 ms (p95) | mailq-ctl wall time, $READS runs |
| \`status\` (all $NACC accounts) | $ALL50 ms | $ALL95 ms (p95) | mailq-ctl wall time, $READS runs |

Data set: $CP_ACCOUNTS accounts, $CP_MESSAGES messages of history on three nodes (populate: $POP_S).
EOF
