#!/usr/bin/env bash
# Burst benchmark (issue 3): PRODUCERS concurrent shell loops each submit PER
# messages with `sendmail -t -i` (what PHP's mail() runs), through
#   1. scriptmail's sendmail (release build) with `scriptmail relayd` running, and
#   2. Postfix's own /usr/sbin/sendmail -t -i, a private Postfix instance with
#      relayhost = that run's smtp-sink,
# each relaying to its own real Postfix smtp-sink on 127.0.0.1. Prints, per system,
# accepted/s (submissions finished) and delivered/s (last message at the sink),
# both counted from the first submission, and the scriptmail/Postfix ratios.
#
# Usage: bench/burst.sh [PRODUCERS=4] [PER=250]      (as root; Debian's postfix installed)
# Nothing is asserted: these are measurements for the issue's notes.
set -euo pipefail

P=${1:-4}
N=${2:-250}
TOTAL=$((P * N))
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release

[ "$(id -u)" -eq 0 ] || { echo "burst.sh: run as root (Postfix needs it)" >&2; exit 1; }
for f in /usr/sbin/smtp-sink /usr/sbin/postfix /usr/sbin/sendmail; do
    [ -x "$f" ] || { echo "burst.sh: $f missing (apt-get install postfix)" >&2; exit 1; }
done

echo "building release binaries..." >&2
cargo build --release --locked --workspace --manifest-path "$ROOT/Cargo.toml" --bins -q

W=$(mktemp -d /tmp/burst.XXXXXX)
chmod 755 "$W"
PIDS=()
PF=$W/postfix
cleanup() {
    if [ -f "$PF/etc/main.cf" ]; then
        postfix -c "$PF/etc" stop >/dev/null 2>&1 || true
    fi
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$W"
}
trap cleanup EXIT

now() { date +%s.%N; }
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# A real smtp-sink on 127.0.0.1:PORT dumping each message into DIR (a dump
# file is created at MAIL and written at the final dot: count non-empty ones).
start_sink() { # DIR PORT
    mkdir -p "$1"
    /usr/sbin/smtp-sink -u root -d "$1/m." -m 256 "127.0.0.1:$2" 256 \
        </dev/null >/dev/null 2>"$1.stderr" &
    PIDS+=($!)
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "smtp-sink on $2 did not start" >&2
    exit 1
}
delivered() { find "$1" -name 'm.*' -size +0 | wc -l; }
last_write() { find "$1" -name 'm.*' -size +0 -printf '%T@\n' | sort -n | tail -1; }

MSG=$W/msg
printf 'To: burst@example.org\nSubject: burst\n\nA contact form message.\n' >"$MSG"

# run NAME SINKDIR COMMAND...: PRODUCERS loops of PER submissions; prints figures.
run() {
    local name=$1 sink=$2
    shift 2
    local before t0 t1 tl fails
    before=$(delivered "$sink")
    : >"$W/$name.fail"
    t0=$(now)
    for ((p = 0; p < P; p++)); do
        (
            for ((i = 0; i < N; i++)); do
                "$@" <"$MSG" || echo "$p-$i" >>"$W/$name.fail"
            done
        ) &
    done
    wait_producers
    t1=$(now)
    local deadline=$((SECONDS + 300))
    while [ "$(delivered "$sink")" -lt $((before + TOTAL)) ]; do
        if [ $SECONDS -gt $deadline ]; then
            echo "$name: only $(($(delivered "$sink") - before)) of $TOTAL delivered after 300 s" >&2
            break
        fi
        sleep 0.02
    done
    tl=$(last_write "$sink")
    fails=$(wc -l <"$W/$name.fail")
    python3 - "$name" "$t0" "$t1" "$tl" "$TOTAL" "$fails" <<'EOF'
import sys
name, t0, t1, tl, total, fails = sys.argv[1], *map(float, sys.argv[2:5]), int(sys.argv[5]), int(sys.argv[6])
acc, dl = t1 - t0, tl - t0
print(f"{name:10s} accepted {total} in {acc:6.2f} s = {total/acc:7.1f}/s   "
      f"delivered in {dl:6.2f} s = {total/dl:7.1f}/s   failed submissions: {fails}")
EOF
    echo "$name $t0 $t1 $tl" >>"$W/figures"
}
wait_producers() {
    # Wait for the producer subshells only (not the sinks, relayd or Postfix).
    local j
    for j in $(jobs -p); do
        case " ${PIDS[*]} " in *" $j "*) ;; *) wait "$j" || true ;; esac
    done
}

# --- scriptmail ----------------------------------------------------------
SM=$W/scriptmail
SM_PORT=$(free_port)
start_sink "$W/sink-scriptmail" "$SM_PORT"
mkdir -p "$SM/queue"
cat >"$SM/scriptmail.toml" <<EOF
node.domain = "bench.example"
queue.dir = "$SM/queue"
relay.host = "127.0.0.1"
relay.port = $SM_PORT
relay.program = "$BIN/scriptmail"
log.socket = "$SM/no-syslog"
submit.socket = "$SM/submit.sock"
EOF
export SCRIPTMAIL_CONFIG=$SM/scriptmail.toml
"$BIN/scriptmail" relayd </dev/null >/dev/null 2>"$SM/relayd.log" &
PIDS+=($!)
for _ in $(seq 100); do [ -S "$SM/queue/relayd.sock" ] && [ -S "$SM/submit.sock" ] && break; sleep 0.05; done
[ -S "$SM/queue/relayd.sock" ] || { echo "relayd did not start: $(cat "$SM/relayd.log")" >&2; exit 1; }

# --- Postfix -------------------------------------------------------------
PF_PORT=$(free_port)
start_sink "$W/sink-postfix" "$PF_PORT"
mkdir -p "$PF/etc" "$PF/queue" "$PF/data"
chown postfix "$PF/data"
# The stock master.cf without the port-25 listener, and nothing chrooted
# (the private queue lives outside /var/spool/postfix).
awk '/^smtp[ \t]+inet/ { next }
     /^[a-z]/ && NF >= 8 && $5 ~ /^[yn-]$/ { $5 = "n" }
     { print }' /etc/postfix/master.cf >"$PF/etc/master.cf"
cat >"$PF/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $PF/queue
data_directory = $PF/data
myhostname = bench.example
mydomain = bench.example
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
relayhost = [127.0.0.1]:$PF_PORT
smtp_dns_support_level = disabled
alias_maps =
alias_database =
biff = no
EOF
postfix -c "$PF/etc" start >/dev/null 2>"$PF/start.log" || {
    echo "postfix start failed: $(cat "$PF/start.log")" >&2
    exit 1
}
sleep 1

# Warm-up (not counted): page cache, first connections.
for _ in 1 2 3; do "$BIN/sendmail" -t -i <"$MSG"; MAIL_CONFIG=$PF/etc /usr/sbin/sendmail -t -i <"$MSG"; done
for s in scriptmail postfix; do
    for _ in $(seq 200); do [ "$(delivered "$W/sink-$s")" -ge 3 ] && break; sleep 0.05; done
done

echo "burst: $P producers x $N messages, $(nproc) CPUs, $(uname -r)"
run scriptmail "$W/sink-scriptmail" "$BIN/sendmail" -t -i
run postfix "$W/sink-postfix" env MAIL_CONFIG="$PF/etc" /usr/sbin/sendmail -t -i

python3 - "$W/figures" "$TOTAL" <<'EOF'
import sys
rows = {}
for line in open(sys.argv[1]):
    name, t0, t1, tl = line.split()
    rows[name] = (float(t1) - float(t0), float(tl) - float(t0))
total = int(sys.argv[2])
if "scriptmail" in rows and "postfix" in rows:
    s, p = rows["scriptmail"], rows["postfix"]
    print(f"ratio scriptmail/postfix: accepted/s x{p[0]/s[0]:.2f}, delivered/s x{p[1]/s[1]:.2f}")
EOF
