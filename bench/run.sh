#!/usr/bin/env bash
# bench/run.sh — the benchmark of SPEC §10 / issue 8, in one command.
#
# Measures, in the same run on the same machine, scriptmail's `sendmail -t -i`
# against the floor (bench/floor.c: read stdin, write a new file, fsync file
# and directory), Postfix's `/usr/sbin/sendmail -t -i` and msmtp, all relaying
# to Postfix's smtp-sink on loopback, and prints a table with ratios. Needs
# root (it starts Postfix with a temporary main.cf, restored at the end).
#
# Knobs (environment): RUNS (single invocations per system, default 200),
# ROUNDS (the runs are interleaved across systems in this many rounds, 4),
# PHP_RUNS (100), LAT_RUNS (50), PRODUCERS (4), PER_PRODUCER (250),
# CP_ACCOUNTS (10000), CP_MESSAGES (1000000), CP_HELD (100000), SKIP_CP=1
# (skip the control plane), NO_INSTALL=1, NO_BUILD=1 (use the binaries in
# $CARGO_TARGET_DIR/release as they are), KEEP=1 (keep the work dir).
#
# `bench/run.sh profile` sets up the same way, then profiles one scriptmail
# invocation instead (strace, perf stat, callgrind, massif, smaps).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

RUNS=${RUNS:-200}
ROUNDS=${ROUNDS:-4}
PHP_RUNS=${PHP_RUNS:-100}
LAT_RUNS=${LAT_RUNS:-50}
PRODUCERS=${PRODUCERS:-4}
PER_PRODUCER=${PER_PRODUCER:-250}
CP_ACCOUNTS=${CP_ACCOUNTS:-10000}
CP_MESSAGES=${CP_MESSAGES:-1000000}
CP_HELD=${CP_HELD:-100000}
BURST_TOTAL=$((PRODUCERS * PER_PRODUCER))

export DEBIAN_FRONTEND=noninteractive
say() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'bench: %s\n' "$*" >&2
    exit 1
}

[ "$(id -u)" -eq 0 ] || die "run as root: it starts Postfix and smtp-sink"

# ---------------------------------------------------------------- packages
# postfix: /usr/sbin/sendmail and smtp-sink; php-cli: mail(); strace: the
# fsync count; gcc: floor and driver; time: /usr/bin/time for peak RSS;
# msmtp: a relay-only peer (the msmtp package, not msmtp-mta, so it takes
# nothing over). nullmailer and dma (SPEC §10) are MTAs that conflict with
# Postfix's mail-transport-agent and cannot be installed beside it.
PKGS=(postfix php-cli strace gcc libc6-dev time msmtp)
[ "${1:-}" = profile ] && PKGS+=(valgrind linux-perf procps)
if [ -z "${NO_INSTALL:-}" ]; then
    missing=()
    for p in "${PKGS[@]}"; do
        if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)" != installed ]; then
            missing+=("$p")
        fi
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        say "installing ${missing[*]}"
        echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
        policy_created=0
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
            chmod 755 /usr/sbin/policy-rc.d
            policy_created=1
        fi
        apt_log=$(mktemp)
        if ! { apt-get -q update && apt-get -q -y --no-install-recommends \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            install "${missing[@]}"; } >"$apt_log" 2>&1 </dev/null; then
            tail -n 50 "$apt_log" >&2
            [ "$policy_created" = 1 ] && rm -f /usr/sbin/policy-rc.d
            die "installing ${missing[*]} failed"
        fi
        [ "$policy_created" = 1 ] && rm -f /usr/sbin/policy-rc.d
        rm -f "$apt_log"
    fi
fi

# ---------------------------------------------------------------- build
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release
if [ -z "${NO_BUILD:-}" ]; then
    say "cargo build --release"
    cargo build --release --locked --bins -q
fi
[ -x "$BIN/sendmail" ] && [ -x "$BIN/scriptmail" ] || die "no release binaries in $BIN"

# The work dir is on disk (/var/tmp), like a real queue: fsync must cost
# what it costs. Only smtp-sink's dump goes to tmpfs, to keep the sink cheap.
WORK=$(mktemp -d /var/tmp/scriptmail-bench.XXXXXX)
SINKDIR=$(mktemp -d /dev/shm/scriptmail-bench-sink.XXXXXX)
PIDS=()
MAINCF_SAVED=""
POSTFIX_STARTED=0
cleanup() {
    set +e
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    if [ "$POSTFIX_STARTED" = 1 ]; then postfix stop >/dev/null 2>&1; fi
    if [ "$MAINCF_SAVED" = absent ]; then
        rm -f /etc/postfix/main.cf
    elif [ -n "$MAINCF_SAVED" ]; then
        cp -p "$MAINCF_SAVED" /etc/postfix/main.cf
    fi
    # Postfix's queue may still hold bench mail if a step failed.
    if [ "$POSTFIX_STARTED" = 1 ]; then postsuper -d ALL >/dev/null 2>&1; fi
    rm -rf "$SINKDIR"
    if [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; else echo "work dir kept: $WORK" >&2; fi
}
trap cleanup EXIT

gcc -O2 -Wall -o "$WORK/floor" bench/floor.c
gcc -O2 -Wall -o "$WORK/drive" bench/drive.c
DRIVE=$WORK/drive
MSG=$ROOT/bench/message.eml
mkdir -p "$WORK/floor.d" "$WORK/php.floor.d"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---------------------------------------------------------------- smtp-sink
SINKPORT=$(free_port)
# -u root: smtp-sink refuses root without it; the dump dir is ours.
smtp-sink -u root -d "$SINKDIR/m." "127.0.0.1:$SINKPORT" 256 2>"$WORK/smtp-sink.err" &
PIDS+=($!)
for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$SINKPORT") 2>/dev/null; then break; fi
    sleep 0.05
done
# Every message delivered to the sink so far; wait_sink N waits for N dumps.
DELIVERED=0
sink_count() { find "$SINKDIR" -maxdepth 1 -name 'm.*' -type f | wc -l; }
wait_sink() {
    local want=$1 t=0
    while [ "$(sink_count)" -lt "$want" ]; do
        sleep 0.1
        t=$((t + 1))
        [ "$t" -lt 1200 ] || die "sink has $(sink_count) of $want messages after 120 s"
    done
}

# ---------------------------------------------------------------- Postfix
say "Postfix relaying to smtp-sink on 127.0.0.1:$SINKPORT"
if [ -e /etc/postfix/main.cf ]; then
    cp -p /etc/postfix/main.cf "$WORK/main.cf.orig"
    MAINCF_SAVED=$WORK/main.cf.orig
else
    MAINCF_SAVED=absent
fi
postfix stop >/dev/null 2>&1 || true
cat >/etc/postfix/main.cf <<EOF
# Written by scriptmail's bench/run.sh for the length of a benchmark run.
compatibility_level = 3.6
myhostname = bench.example.net
mydomain = example.net
myorigin = \$myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
relayhost = [127.0.0.1]:$SINKPORT
inet_interfaces = loopback-only
inet_protocols = ipv4
smtp_dns_support_level = disabled
smtp_tls_security_level = none
biff = no
maillog_file = $WORK/postfix.log
EOF
postfix check >/dev/null 2>&1 || true
postfix start >/dev/null 2>&1 || die "postfix start failed (see $WORK/postfix.log)"
POSTFIX_STARTED=1

# ---------------------------------------------------------------- scriptmail
say "scriptmail relayd relaying to the same sink"
mkdir -p "$WORK/sm/queue"
# A syslog stand-in that reads and drops what scriptmail logs, so the cost
# of logging (a datagram per message) is in the figures as on a real node.
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
while True:
    s.recv(65536)
' "$WORK/sm/log.sock" &
PIDS+=($!)
cat >"$WORK/sm/scriptmail.toml" <<EOF
node.domain = "bench.example.net"
queue.dir = "$WORK/sm/queue"
relay.host = "127.0.0.1"
relay.port = $SINKPORT
relay.program = "$BIN/scriptmail"
log.socket = "$WORK/sm/log.sock"
submit.socket = "$WORK/sm/submit.sock"
EOF
export SCRIPTMAIL_CONFIG=$WORK/sm/scriptmail.toml
"$BIN/scriptmail" relayd 2>"$WORK/relayd.err" &
PIDS+=($!)
for _ in $(seq 100); do
    [ -S "$WORK/sm/queue/relayd.sock" ] && [ -S "$WORK/sm/submit.sock" ] && break
    sleep 0.05
done
[ -S "$WORK/sm/queue/relayd.sock" ] || die "relayd did not start: $(cat "$WORK/relayd.err")"

# ---------------------------------------------------------------- msmtp
cat >"$WORK/msmtprc" <<EOF
defaults
auth off
tls off
syslog off
account default
host 127.0.0.1
port $SINKPORT
from msmtp@bench.example.net
EOF
chmod 600 "$WORK/msmtprc"

# The systems: name, whether it delivers to the sink, and the command.
SYSTEMS=(floor postfix msmtp scriptmail)
cmd_of() {
    case $1 in
    floor) echo "$WORK/floor $WORK/floor.d -t -i" ;;
    postfix) echo "/usr/sbin/sendmail -t -i" ;;
    msmtp) echo "/usr/bin/msmtp -C $WORK/msmtprc -t -i" ;;
    scriptmail) echo "$BIN/sendmail -t -i" ;;
    esac
}
delivers() { [ "$1" != floor ]; }

# Check each system delivers end to end before measuring it.
for s in postfix msmtp scriptmail; do
    read -ra c <<<"$(cmd_of "$s")"
    "${c[@]}" <"$MSG" || die "$s: submission failed"
    DELIVERED=$((DELIVERED + 1))
    wait_sink "$DELIVERED"
done

# stats FILE: median and p95 of the samples in FILE (one per line).
stats() {
    sort -g "$1" | awk '{ v[NR] = $1 } END {
        n = NR; med = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
        i = int(0.95 * n + 0.999999); if (i < 1) i = 1
        printf "%.3f %.3f\n", med, v[i] }'
}
# samples FILE ARGS...: run the driver and append its samples to FILE.
samples() { DRIVE_RAW=$1 "$DRIVE" "${@:2}" >/dev/null; }

# ---------------------------------------------------------------- profile
# `bench/run.sh profile`: where one scriptmail invocation's time and memory
# go, instead of the figures. Writes everything to $WORK/profile (kept).
if [ "${1:-}" = profile ]; then
    KEEP=1
    P=$WORK/profile
    mkdir -p "$P"
    SM=("$BIN/sendmail" -t -i)
    say "profile: $P"
    # LD_PRELOAD shims, for attribution only: no fsync at all; no fsync of
    # directories (SQLite fsyncs the queue dir at the first commit of every
    # process that opens the WAL).
    printf 'int fsync(int fd){(void)fd;return 0;}\nint fdatasync(int fd){(void)fd;return 0;}\n' >"$P/nofsync.c"
    cat >"$P/nodirsync.c" <<'EOF2'
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
int fsync(int fd) { struct stat st; if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) return 0; return (int)syscall(SYS_fsync, fd); }
EOF2
    gcc -O2 -shared -fPIC -o "$P/nofsync.so" "$P/nofsync.c"
    gcc -O2 -shared -fPIC -o "$P/nodirsync.so" "$P/nodirsync.c"
    {
        echo "### sendmail binary"
        size "$BIN/sendmail" | tail -1 | awk '{ printf "text %d, data %d, bss %d bytes\n", $1, $2, $3 }'
        stat -c 'file %s bytes' "$BIN/sendmail"
        readelf -d "$BIN/sendmail" | awk '/NEEDED/ { printf "needs %s\n", $NF }'
        echo
        echo "### wall time, median (p95) ms of 200 runs each, interleaved in 4 rounds"
        for r in 1 2 3 4; do
            samples "$P/t.true" once 50 5 "$MSG" -- /bin/true
            samples "$P/t.floor" once 50 5 "$MSG" -- "$WORK/floor" "$WORK/floor.d"
            samples "$P/t.bv" once 50 5 "$MSG" -- "$BIN/sendmail" -bv root
            samples "$P/t.full" once 50 5 "$MSG" -- "${SM[@]}"
            LD_PRELOAD=$P/nodirsync.so samples "$P/t.nodirsync" once 50 5 "$MSG" -- "${SM[@]}"
            LD_PRELOAD=$P/nofsync.so samples "$P/t.nofsync" once 50 5 "$MSG" -- "${SM[@]}"
        done
        for t in true floor bv full nodirsync nofsync; do
            case $t in
            true) l="/bin/true" ;; floor) l="floor" ;; bv) l="sendmail -bv root (no queue)" ;;
            full) l="sendmail -t -i" ;; nodirsync) l="sendmail -t -i, dir fsync skipped" ;;
            nofsync) l="sendmail -t -i, no fsync at all" ;;
            esac
            read -r m p <<<"$(stats "$P/t.$t")"
            printf '%-40s %8s (%s)\n' "$l" "$m" "$p"
        done
        echo
        echo "### CPU (perf stat, per run, 100 runs)"
        for c in "/bin/true" "$WORK/floor $WORK/floor.d" "$BIN/sendmail -bv root" "${SM[*]}"; do
            read -ra cc <<<"$c"
            label=${cc[0]##*/}
            [ "${#cc[@]}" -gt 1 ] && [ "$label" = sendmail ] && label="sendmail ${cc[*]:1}"
            perf stat -x, -e task-clock,page-faults,context-switches -o "$P/perf.txt" \
                "$DRIVE" once 100 0 "$MSG" -- "${cc[@]}" >/dev/null
            awk -F, -v c="$label" '$3 == "task-clock" { t = $1 } $3 == "page-faults" { f = $1 }
                $3 == "context-switches" { s = $1 }
                END { printf "%-32s task-clock %.3f ms, page-faults %d, context-switches %.1f\n", c, t / 100, f / 100, s / 100 }' "$P/perf.txt"
        done
        echo
        echo "### syscalls of one invocation (strace -f -c)"
        strace -f -c -o "$P/strace-c.txt" "${SM[@]}" <"$MSG"
        cat "$P/strace-c.txt"
        strace -f -tt -T -o "$P/strace-T.txt" "${SM[@]}" <"$MSG"
        echo "(full trace with times: $P/strace-T.txt)"
        echo
        echo "### user-space instructions (valgrind --tool=callgrind), top inclusive"
        valgrind -q --tool=callgrind --callgrind-out-file="$P/callgrind.out" "${SM[@]}" <"$MSG"
        # awk, not head: an early close would SIGPIPE the pipeline (pipefail).
        callgrind_annotate --inclusive=yes "$P/callgrind.out" 2>/dev/null |
            awk '/^ *[0-9,]+ / && n++ < 45' 
        echo
        echo "### heap (valgrind --tool=massif)"
        valgrind -q --tool=massif --massif-out-file="$P/massif.out" "${SM[@]}" <"$MSG"
        grep -o 'mem_heap_B=[0-9]*' "$P/massif.out" | sort -t= -k2 -n | tail -1 | sed 's/mem_heap_B=/peak heap bytes: /' 
        echo
        echo "### resident memory at exit, by mapping (KiB; exit_group delayed by strace)"
        strace -qq -o /dev/null -e trace=exit_group -e inject=exit_group:delay_enter=1500000 \
            "${SM[@]}" <"$MSG" &
        spid=$!
        sleep 1
        tpid=$(pgrep -P "$spid" | head -1)
        grep -E '^(Rss|Pss|Private_Dirty|Shared_Clean|Private_Clean):' "/proc/$tpid/smaps_rollup"
        awk '/^[0-9a-f]+-[0-9a-f]+ / { n = $6; if (n == "") n = "[anon]" }
             /^Rss:/ { r[n] += $2 } END { for (k in r) if (r[k] > 0) printf "%8d %s\n", r[k], k }' \
            "/proc/$tpid/smaps" | sort -rn
        wait "$spid"
    } | tee "$P/summary.txt"
    exit 0
fi

# ---------------------------------------------------------------- figures
declare -A R # R[figure.system] = value


say "one invocation, 2 KB message ($RUNS runs each, interleaved in $ROUNDS rounds)"
per_round=$((RUNS / ROUNDS))
for r in $(seq "$ROUNDS"); do
    for s in "${SYSTEMS[@]}"; do
        read -ra c <<<"$(cmd_of "$s")"
        samples "$WORK/once.$s" once "$per_round" 5 "$MSG" -- "${c[@]}"
        if delivers "$s"; then
            DELIVERED=$((DELIVERED + per_round + 5))
            wait_sink "$DELIVERED" # the next system runs on a quiet machine
        fi
    done
done
for s in "${SYSTEMS[@]}"; do
    read -r R[once.$s] R[once95.$s] <<<"$(stats "$WORK/once.$s")"
done

say "PHP mail() ($PHP_RUNS runs each, minus php -r '1;')"
PHPCODE='exit(mail("customer@example.com", "Your order #100234", str_repeat("Thank you for your order; here is its summary line.\n", 38), "From: Example Shop <shop@example.org>\r\nX-Mailer: bench") ? 0 : 1);'
per_round=$((PHP_RUNS / ROUNDS))
for r in $(seq "$ROUNDS"); do
    samples "$WORK/php.base" once "$per_round" 3 /dev/null -- /usr/bin/php -r '1;'
    for s in "${SYSTEMS[@]}"; do
        path=$(cmd_of "$s")
        [ "$s" = floor ] && path="$WORK/floor $WORK/php.floor.d -t -i"
        samples "$WORK/php.$s" once "$per_round" 3 /dev/null -- \
            /usr/bin/php -d "sendmail_path=$path" -r "$PHPCODE"
        if delivers "$s"; then
            DELIVERED=$((DELIVERED + per_round + 3))
            wait_sink "$DELIVERED"
        fi
    done
done
read -r base base95 <<<"$(stats "$WORK/php.base")"
R[php.base]=$base
for s in "${SYSTEMS[@]}"; do
    read -r m p <<<"$(stats "$WORK/php.$s")"
    R[php.$s]=$(awk -v a="$m" -v b="$base" 'BEGIN { printf "%.3f", a - b }')
    R[php95.$s]=$(awk -v a="$p" -v b="$base" 'BEGIN { printf "%.3f", a - b }')
done

say "burst: $PRODUCERS producers x $PER_PRODUCER messages"
for s in "${SYSTEMS[@]}"; do
    read -ra c <<<"$(cmd_of "$s")"
    if delivers "$s"; then
        out=$("$DRIVE" burst "$PRODUCERS" "$PER_PRODUCER" "$MSG" "$SINKDIR" "$BURST_TOTAL" 600 -- "${c[@]}") ||
            die "$s: burst failed: $out"
        DELIVERED=$((DELIVERED + BURST_TOTAL))
        wait_sink "$DELIVERED"
    else
        out=$("$DRIVE" burst "$PRODUCERS" "$PER_PRODUCER" "$MSG" - 0 600 -- "${c[@]}") ||
            die "$s: burst failed: $out"
    fi
    R[acc.$s]=$(sed -n 's/.*accepted_per_s=\([0-9.]*\).*/\1/p' <<<"$out")
    R[del.$s]=$(sed -n 's/.*delivered_per_s=\([0-9.]*\).*/\1/p' <<<"$out")
done

say "submission -> sink latency ($LAT_RUNS runs each)"
for s in postfix msmtp scriptmail; do
    read -ra c <<<"$(cmd_of "$s")"
    samples "$WORK/lat.$s" latency "$LAT_RUNS" "$MSG" "$SINKDIR" -- "${c[@]}"
    DELIVERED=$((DELIVERED + LAT_RUNS))
    wait_sink "$DELIVERED"
    read -r R[lat.$s] R[lat95.$s] <<<"$(stats "$WORK/lat.$s")"
done

say "peak RSS of one invocation (median of 11)"
for s in "${SYSTEMS[@]}"; do
    read -ra c <<<"$(cmd_of "$s")"
    : >"$WORK/rss.$s"
    for _ in $(seq 11); do
        /usr/bin/time -f %M -a -o "$WORK/rss.$s" "${c[@]}" <"$MSG"
    done
    delivers "$s" && DELIVERED=$((DELIVERED + 11))
    read -r R[rss.$s] _ <<<"$(stats "$WORK/rss.$s")"
done
wait_sink "$DELIVERED"

say "fsync count of one invocation (strace -f -c)"
for s in "${SYSTEMS[@]}"; do
    read -ra c <<<"$(cmd_of "$s")"
    strace -f -c -e trace=fsync,fdatasync,sync_file_range,sync,syncfs -o "$WORK/strace.$s" \
        "${c[@]}" <"$MSG"
    delivers "$s" && DELIVERED=$((DELIVERED + 1))
    R[fsync.$s]=$(awk '$NF == "total" { print $(NF-1) }' "$WORK/strace.$s")
    R[fsync.$s]=${R[fsync.$s]:-0}
done
wait_sink "$DELIVERED"

# ---------------------------------------------------------------- control plane
CP_ROWS=()
if [ -z "${SKIP_CP:-}" ]; then
    say "control plane: $CP_ACCOUNTS accounts, $CP_MESSAGES messages, $CP_HELD held"
    mkdir -p "$WORK/cp/queue"
    # No relay behind this queue: released mail stays queued.
    cat >"$WORK/cp/scriptmail.toml" <<EOF
node.domain = "bench.example.net"
queue.dir = "$WORK/cp/queue"
relay.host = "127.0.0.1"
relay.port = 9
relay.program = "/bin/true"
log.socket = "$WORK/sm/log.sock"
submit.socket = "$WORK/cp/submit.sock"
EOF
    CTL=("$BIN/scriptmail" --config "$WORK/cp/scriptmail.toml" mailq-ctl)
    t0=$(date +%s.%N)
    "${CTL[@]}" populate --accounts "$CP_ACCOUNTS" --messages "$CP_MESSAGES" --held "$CP_HELD" >/dev/null
    t1=$(date +%s.%N)
    pop=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    dbsize=$(du -m "$WORK/cp/queue/queue.db" | cut -f1)
    cp_time() { # label, runs, command...
        local label=$1 n=$2
        shift 2
        "$DRIVE" once "$n" 1 /dev/null -- "$@" >"$WORK/cp.out" || die "$label failed"
        read -r m p <<<"$(sed -n 's/.*median=\([0-9.]*\) p95=\([0-9.]*\).*/\1 \2/p' "$WORK/cp.out")"
        CP_ROWS+=("$label|$m|$p|$n")
    }
    cp_time "mailq-ctl status acct00042" 21 "${CTL[@]}" status acct00042
    cp_time "mailq-ctl --json status acct00042" 21 "${CTL[@]}" --json status acct00042
    cp_time "mailq-ctl stats acct00042 (30 days)" 21 "${CTL[@]}" stats acct00042
    cp_time "mailq-ctl stats acct00042 --days 400" 21 "${CTL[@]}" stats acct00042 --days 400
    cp_time "mailq-ctl errors acct00042" 21 "${CTL[@]}" errors acct00042
    cp_time "mailq-ctl status (all $CP_ACCOUNTS accounts)" 5 "${CTL[@]}" status
    # One-shot verbs: each needs a fresh held set. The driver's warm-up run
    # is the real run, so time them here instead.
    one_shot() { # label, command...
        local label=$1 s e
        shift
        s=$(date +%s%N)
        "$@" >/dev/null || die "$label failed"
        e=$(date +%s%N)
        CP_ROWS+=("$label|$(awk -v a="$s" -v b="$e" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')|-|1")
    }
    one_shot "mailq-ctl unblock acct00000 ($CP_HELD held)" "${CTL[@]}" unblock acct00000
    "${CTL[@]}" populate --accounts "$CP_ACCOUNTS" --messages 0 --held "$CP_HELD" >/dev/null
    one_shot "mailq-ctl purge -y acct00000 ($CP_HELD held)" "${CTL[@]}" purge -y acct00000
fi

# ---------------------------------------------------------------- table
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }
check() { # value, op, limit
    awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
        if (v == "" || v == "-") { print "?"; exit }
        ok = (op == "<=") ? (v + 0 <= l + 0) : (v + 0 >= l + 0); print ok ? "met" : "MISSED" }'
}
g() { echo "${R[$1]:-}"; }

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
[ -n "$cpu" ] || cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
dirty=$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo '+dirty' || true)
{
    echo "## scriptmail benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- machine: $cpu, $(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 }') GiB, kernel $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "- scriptmail $rev$dirty; $(/usr/sbin/postconf -h mail_version 2>/dev/null | sed 's/^/Postfix /'); $(msmtp --version | head -1); $(php -r 'echo "PHP ", PHP_VERSION;'); $(uname -m)"
    echo "- queue and floor on $(df --output=fstype "$WORK" | tail -1) ($(df --output=source "$WORK" | tail -1)); times in ms, medians (p95); each system measured with the same driver (bench/drive.c), runs interleaved"
    echo
    echo "| figure | floor | Postfix | msmtp | scriptmail | scriptmail ÷ floor | scriptmail ÷ Postfix | target | |"
    echo "|---|---|---|---|---|---|---|---|---|"
    f2() { printf '%s (%s)' "$(g "$1")" "$(g "$2")"; }
    r_once=$(ratio "$(g once.scriptmail)" "$(g once.floor)")
    echo "| one invocation, 2 KB, exec'd directly | $(f2 once.floor once95.floor) | $(f2 once.postfix once95.postfix) | $(f2 once.msmtp once95.msmtp) | $(f2 once.scriptmail once95.scriptmail) | $r_once | $(ratio "$(g once.scriptmail)" "$(g once.postfix)") | ≤ 1.5× floor | $(check "$r_once" '<=' 1.5) |"
    echo "| PHP mail() minus php -r '1;' ($(g php.base) ms) | $(f2 php.floor php95.floor) | $(f2 php.postfix php95.postfix) | $(f2 php.msmtp php95.msmtp) | $(f2 php.scriptmail php95.scriptmail) | $(ratio "$(g php.scriptmail)" "$(g php.floor)") | $(ratio "$(g php.scriptmail)" "$(g php.postfix)") | | |"
    r_acc=$(ratio "$(g acc.scriptmail)" "$(g acc.floor)")
    r_accp=$(ratio "$(g acc.scriptmail)" "$(g acc.postfix)")
    echo "| burst $PRODUCERS×$PER_PRODUCER: accepted/s | $(g acc.floor) | $(g acc.postfix) | $(g acc.msmtp) | $(g acc.scriptmail) | $r_acc | $r_accp | ≥ 0.6× floor, ≥ 3× Postfix | $(check "$r_acc" '>=' 0.6) / $(check "$r_accp" '>=' 3) |"
    r_del=$(ratio "$(g del.scriptmail)" "$(g acc.scriptmail)")
    echo "| burst: delivered/s at the sink | - | $(g del.postfix) | $(g del.msmtp) | $(g del.scriptmail) | | $(ratio "$(g del.scriptmail)" "$(g del.postfix)") | ≥ 0.9× own accepted/s ($r_del) | $(check "$r_del" '>=' 0.9) |"
    echo "| submission → at the sink | - | $(f2 lat.postfix lat95.postfix) | $(f2 lat.msmtp lat95.msmtp) | $(f2 lat.scriptmail lat95.scriptmail) | | $(ratio "$(g lat.scriptmail)" "$(g lat.postfix)") | ≤ 5 ms | $(check "$(g lat.scriptmail)" '<=' 5) |"
    rss_mib=$(awk -v k="$(g rss.scriptmail)" 'BEGIN { printf "%.2f", k / 1024 }')
    echo "| peak RSS of one invocation (KiB) | $(g rss.floor) | $(g rss.postfix) | $(g rss.msmtp) | $(g rss.scriptmail) | $(ratio "$(g rss.scriptmail)" "$(g rss.floor)") | $(ratio "$(g rss.scriptmail)" "$(g rss.postfix)") | ≤ 3 MiB ($rss_mib MiB) | $(check "$rss_mib" '<=' 3) |"
    echo "| fsync/fdatasync calls of one invocation (strace -f -c) | $(g fsync.floor) | $(g fsync.postfix) | $(g fsync.msmtp) | $(g fsync.scriptmail) | | | ≥ 1 before exit 0 | $(check "$(g fsync.scriptmail)" '>=' 1) |"
    echo
    echo "Postfix's figures are its \`sendmail\` alone (postdrop): its pickup, cleanup and qmgr"
    echo "daemons do the rest after exit. msmtp relays synchronously and keeps no queue."
    echo "\`sendmail\` binary: $(stat -c %s "$BIN/sendmail") bytes."
    if [ "${#CP_ROWS[@]}" -gt 0 ]; then
        echo
        echo "Control plane: $CP_ACCOUNTS accounts, $CP_MESSAGES messages of history, $CP_HELD held (populate: ${pop} s, queue.db ${dbsize} MiB)"
        echo
        echo "| command | median ms | p95 ms | runs |"
        echo "|---|---|---|---|"
        for row in "${CP_ROWS[@]}"; do
            IFS='|' read -r a b c d <<<"$row"
            echo "| $a | $b | $c | $d |"
        done
    fi
}
