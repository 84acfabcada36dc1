#!/usr/bin/env bash
# bench/run.sh — the benchmark of issues 8 and 13, in one command.
#
# Measures, in the same run on the same machine, scriptmail's `sendmail -t -i`
# against the floor (bench/floor.c: read stdin, write a new file, fsync file
# and directory), Postfix's `/usr/sbin/sendmail -t -i`, msmtp, and DragonFly
# dma and nullmailer run from their unpacked Debian packages, all relaying to
# Postfix's smtp-sink on loopback, and prints a table with ratios and the
# issue-13 targets. Needs root (it starts Postfix with a temporary main.cf and
# writes dma's and nullmailer's system paths; everything is restored at exit).
#
# Knobs (environment): RUNS (single invocations per system, default 200),
# ROUNDS (the runs are interleaved across systems in this many rounds, 4),
# PHP_RUNS (100), LAT_RUNS (50), PRODUCERS (4), PER_PRODUCER (250),
# FSYNC_PER_PRODUCER (the strace'd burst, default PER_PRODUCER), CP_ACCOUNTS
# (10000), CP_MESSAGES (1000000), CP_HELD (100000), SKIP_CP=1 (skip the
# control plane), SKIP_PEERS=1 (no dma, no nullmailer), SKIP_FALLBACK=1 (no
# fallback row), PEER_USER (who runs dma and nullmailer, default nobody),
# PEER_DEBS (a directory holding dma_*.deb and nullmailer_*.deb, instead of
# apt-get download), NO_INSTALL=1, NO_BUILD=1 (use the binaries in
# $CARGO_TARGET_DIR/release as they are), KEEP=1 (keep the work dir).
#
# `bench/run.sh profile` sets up the same way, then profiles one scriptmail
# invocation instead (strace, perf stat, callgrind, massif, smaps).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
NAME=bench
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

RUNS=${RUNS:-200}
ROUNDS=${ROUNDS:-4}
PHP_RUNS=${PHP_RUNS:-100}
LAT_RUNS=${LAT_RUNS:-50}
PRODUCERS=${PRODUCERS:-4}
PER_PRODUCER=${PER_PRODUCER:-250}
FSYNC_PER_PRODUCER=${FSYNC_PER_PRODUCER:-$PER_PRODUCER}
CP_ACCOUNTS=${CP_ACCOUNTS:-10000}
CP_MESSAGES=${CP_MESSAGES:-1000000}
CP_HELD=${CP_HELD:-100000}
PEER_USER=${PEER_USER:-nobody}
BURST_TOTAL=$((PRODUCERS * PER_PRODUCER))
FSYNC_TOTAL=$((PRODUCERS * FSYNC_PER_PRODUCER))
[ "${1:-}" = profile ] && SKIP_PEERS=1
PEERS=$([ -z "${SKIP_PEERS:-}" ] && echo yes || echo no)

export DEBIAN_FRONTEND=noninteractive

[ "$(id -u)" -eq 0 ] || die "run as root: it starts Postfix and smtp-sink"

# ---------------------------------------------------------------- packages
# postfix: /usr/sbin/sendmail and smtp-sink; php-cli: mail(); strace: the
# fsync count; gcc: floor and driver; time: /usr/bin/time for peak RSS;
# msmtp: a relay-only peer (the msmtp package, not msmtp-mta, so it takes
# nothing over). dma and nullmailer are MTAs that conflict with Postfix's
# mail-transport-agent: they are not installed but unpacked (below).
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
    cargo build --release --locked --workspace --bins -q
fi
[ -x "$BIN/sendmail" ] && [ -x "$BIN/scriptmail" ] || die "no release binaries in $BIN"

# The work dir is on disk (/var/tmp), like a real queue: fsync must cost
# what it costs. Only smtp-sink's dump goes to tmpfs, to keep the sink cheap.
# Both are world-traversable: dma and nullmailer run as PEER_USER, and the
# driver (then also PEER_USER) reads the message and watches the sink.
WORK=$(mktemp -d /var/tmp/scriptmail-bench.XXXXXX)
SINKDIR=$(mktemp -d /dev/shm/scriptmail-bench-sink.XXXXXX)
chmod 755 "$WORK" "$SINKDIR"
PIDS=()
MAINCF_SAVED=""
POSTFIX_STARTED=0
declare -A DPID DBG # per daemon: the process to signal; the job to wait for (it, or its strace)
cleanup() {
    set +e
    for d in "${!DPID[@]}"; do kill "${DPID[$d]}" 2>/dev/null; done
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    if [ "$POSTFIX_STARTED" = 1 ]; then postfix stop >/dev/null 2>&1; fi
    if [ "$MAINCF_SAVED" = absent ]; then
        rm -f /etc/postfix/main.cf
    elif [ -n "$MAINCF_SAVED" ]; then
        cp -p "$MAINCF_SAVED" /etc/postfix/main.cf
    fi
    # Postfix's queue may still hold bench mail if a step failed.
    if [ "$POSTFIX_STARTED" = 1 ]; then postsuper -d ALL >/dev/null 2>&1; fi
    # dma delivers from a background process per message that retries for
    # days if the sink is gone: stop any left (our private copy only).
    [ -n "${DMA_BIN:-}" ] && kill_exe "$DMA_BIN"
    [ -n "${NM_ROOT:-}" ] && kill_exe "$NM_ROOT/usr/lib/nullmailer/smtp"
    unstash_all # /etc/dma, /var/spool/dma, /var/spool/nullmailer as they were
    rm -rf "$SINKDIR"
    if [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; else echo "work dir kept: $WORK" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

gcc -O2 -Wall -o "$WORK/floor" bench/floor.c
gcc -O2 -Wall -o "$WORK/drive" bench/drive.c
DRIVE=$WORK/drive
cp bench/message.eml "$WORK/message.eml"
chmod 644 "$WORK/message.eml"
MSG=$WORK/message.eml
mkdir -p "$WORK/floor.d" "$WORK/php.floor.d"
SYNCS=fsync,fdatasync,sync_file_range,sync,syncfs

# ---------------------------------------------------------------- smtp-sink
SINKPORT=$(free_port)
# -u root: smtp-sink refuses root without it; the dump dir is ours.
smtp-sink -u root -d "$SINKDIR/m." "127.0.0.1:$SINKPORT" 256 2>"$WORK/smtp-sink.err" &
PIDS+=($!)
wait_port "$SINKPORT" || die "smtp-sink did not start"
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

# ---------------------------------------------------------------- daemons
# start_daemon NAME [TRACE] / stop_daemon NAME for the systems that have one
# (postfix, scriptmail = relayd, nullmailer = nullmailer-send). With TRACE,
# the daemon runs under `strace -f -ttt --seccomp-bpf -e trace=SYNCS -o
# TRACE` (only the flush calls stop the tracee, so it runs nearly at full
# speed) for the flush-call figures; the timed figures run without strace.
traced() { # TRACE COMMAND...: COMMAND, under strace if TRACE is not empty
    local t=$1
    shift
    if [ -n "$t" ]; then
        exec strace -f -qq -ttt --seccomp-bpf -e trace="$SYNCS" -o "$t" "$@"
    else
        exec "$@"
    fi
}
child_of() { # PID: its first child (the tracee, when PID is strace)
    local c _
    for _ in $(seq 100); do
        c=$(pgrep -P "$1" | head -1) && [ -n "$c" ] && {
            echo "$c"
            return
        }
        sleep 0.05
    done
    die "no child of $1"
}
start_daemon() {
    local d=$1 t=${2:-} _
    case $d in
    scriptmail)
        # Ready once relayd has bound its own sockets: a new inode (a one-shot
        # delivery that sendmail started meanwhile binds the wake socket too,
        # and relayd waits for it to hand over).
        local wake=$WORK/sm/queue/relayd.sock sub=$WORK/sm/submit.sock w0 s0
        w0=$(stat -c "%i %.9Z" "$wake" 2>/dev/null || echo none)
        s0=$(stat -c "%i %.9Z" "$sub" 2>/dev/null || echo none)
        (traced "$t" "$BIN/scriptmail" relayd) 2>>"$WORK/relayd.err" &
        DBG[$d]=$!
        DPID[$d]=$([ -n "$t" ] && child_of "$!" || echo "$!")
        for _ in $(seq 400); do
            if [ -S "$wake" ] && [ "$(stat -c "%i %.9Z" "$wake")" != "$w0" ] &&
                { [ "$SUBMIT" = no ] || { [ -S "$sub" ] && [ "$(stat -c "%i %.9Z" "$sub")" != "$s0" ]; }; }; then
                return 0
            fi
            kill -0 "${DBG[$d]}" 2>/dev/null || break
            sleep 0.05
        done
        die "relayd did not start: $(tail -3 "$WORK/relayd.err")"
        ;;
    postfix)
        (traced "$t" postfix start) >/dev/null 2>&1 &
        DBG[$d]=$!
        if [ -z "$t" ]; then wait "${DBG[$d]}" || die "postfix start failed (see $WORK/postfix.log)"; fi
        for _ in $(seq 200); do
            postfix status >/dev/null 2>&1 && break
            sleep 0.05
        done
        postfix status >/dev/null 2>&1 || die "postfix did not start (see $WORK/postfix.log)"
        POSTFIX_STARTED=1
        ;;
    nullmailer)
        # As its systemd unit runs it: user mail, in the spool directory.
        (cd /var/spool/nullmailer &&
            traced "$t" setpriv --reuid=mail --regid=mail --clear-groups "$NM_ROOT/usr/sbin/nullmailer-send") \
            >>"$WORK/nullmailer-send.log" 2>&1 &
        DBG[$d]=$!
        DPID[$d]=$([ -n "$t" ] && child_of "$!" || echo "$!")
        ;;
    esac
}
stop_daemon() {
    local d=$1 _
    case $d in
    postfix)
        postfix stop >/dev/null 2>&1 || true
        for _ in $(seq 200); do
            postfix status >/dev/null 2>&1 || break
            sleep 0.05
        done
        ;;
    *)
        [ -n "${DPID[$d]:-}" ] && kill "${DPID[$d]}" 2>/dev/null
        ;;
    esac
    # The daemon (or its strace) is gone within 20 s, or is killed.
    if [ -n "${DBG[$d]:-}" ]; then
        for _ in $(seq 400); do
            kill -0 "${DBG[$d]}" 2>/dev/null || break
            sleep 0.05
        done
        if kill -0 "${DBG[$d]}" 2>/dev/null; then
            [ -n "${DPID[$d]:-}" ] && kill -9 "${DPID[$d]}" 2>/dev/null
        fi
        wait "${DBG[$d]}" 2>/dev/null || true
    fi
    unset "DPID[$d]" "DBG[$d]"
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
start_daemon postfix

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
# Submission through relayd's socket (issue 13): the key goes into the
# config only when this build knows it (lib.sh, submit_key_supported).
SUBMIT=$(submit_key_supported "$BIN/sendmail" "$WORK")
cat >"$WORK/sm/scriptmail.toml" <<EOF
node.domain = "bench.example.net"
queue.dir = "$WORK/sm/queue"
relay.host = "127.0.0.1"
relay.port = $SINKPORT
relay.program = "$BIN/scriptmail"
log.socket = "$WORK/sm/log.sock"
EOF
[ "$SUBMIT" = yes ] && echo "submit.socket = \"$WORK/sm/submit.sock\"" >>"$WORK/sm/scriptmail.toml"
export SCRIPTMAIL_CONFIG=$WORK/sm/scriptmail.toml
start_daemon scriptmail
# What `sendmail` does when relayd is not there (the fallback row).
if [ "$SUBMIT" = yes ]; then FALLBACK="maildrop"; else FALLBACK="direct SQLite commit"; fi

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

# ---------------------------------------------------------------- dma, nullmailer
# Both conflict with Postfix as installed packages, so they run
# from their unpacked .debs (`dpkg-deb -x` as root keeps the owners and the
# set-id bits), as PEER_USER, the way PHP's mail() runs them. Their compiled-in
# system paths are written for the run and restored at exit (lib.sh, stash).
if [ "$PEERS" = yes ]; then
    say "dma and nullmailer from their unpacked packages, as $PEER_USER"
    PEER_UID=$(id -u "$PEER_USER") && PEER_GID=$(id -g "$PEER_USER") || die "no user $PEER_USER"
    [ "$PEER_UID" != 0 ] || die "PEER_USER must not be root: dma drops root to its mail user"
    getent group mail >/dev/null && id mail >/dev/null 2>&1 || die "no user/group mail (dma and nullmailer need them)"
    if findmnt -no OPTIONS -T "$WORK" | tr , '\n' | grep -qx nosuid; then
        die "$WORK is on a nosuid file system: dma's set-gid and nullmailer-queue's set-uid would not work"
    fi
    mkdir -p "$WORK/peers/debs"
    if [ -n "${PEER_DEBS:-}" ]; then
        cp "$PEER_DEBS"/dma_*.deb "$PEER_DEBS"/nullmailer_*.deb "$WORK/peers/debs/"
    else
        (cd "$WORK/peers/debs" && apt-get download dma nullmailer) >"$WORK/peers/download.log" 2>&1 ||
            die "apt-get download dma nullmailer failed: $(tail -3 "$WORK/peers/download.log")"
    fi
    DMA_DEB=$(ls "$WORK"/peers/debs/dma_*.deb | head -1)
    NM_DEB=$(ls "$WORK"/peers/debs/nullmailer_*.deb | head -1)
    DMA_ROOT=$WORK/peers/dma
    NM_ROOT=$WORK/peers/nullmailer
    dpkg-deb -x "$DMA_DEB" "$DMA_ROOT"
    dpkg-deb -x "$NM_DEB" "$NM_ROOT"
    DMA_VERSION=$(dpkg-deb -f "$DMA_DEB" Version)
    NM_VERSION=$(dpkg-deb -f "$NM_DEB" Version)
    DMA_BIN=$DMA_ROOT/usr/sbin/dma
    chmod 755 "$WORK/peers" "$DMA_ROOT" "$NM_ROOT"
    [ -g "$DMA_BIN" ] && [ "$(stat -c %G "$DMA_BIN")" = mail ] || die "$DMA_BIN lost its set-gid mail"
    [ -u "$NM_ROOT/usr/sbin/nullmailer-queue" ] && [ "$(stat -c %U "$NM_ROOT/usr/sbin/nullmailer-queue")" = mail ] ||
        die "nullmailer-queue lost its set-uid mail"

    # dma: the config path is compiled in (/etc/dma/dma.conf; dma has no
    # option to name another) and so is the spool (/var/spool/dma, group mail,
    # mode 2775: dma runs set-gid mail to write it). NULLCLIENT sends
    # everything to the SMARTHOST, so the local-delivery helper
    # /usr/lib/dma/dma-mbox-create is never run; MAILNAME is a name, not the
    # default /etc/mailname, which stays untouched; an empty private aliases
    # file instead of /etc/aliases (read at every invocation).
    stash /etc/dma
    stash /var/spool/dma
    install -d -o root -g root -m 755 /etc/dma
    : >"$WORK/peers/dma-aliases"
    chmod 644 "$WORK/peers/dma-aliases"
    cat >/etc/dma/dma.conf <<EOF
# Written by scriptmail's bench/run.sh for the length of a benchmark run.
SMARTHOST 127.0.0.1
PORT $SINKPORT
NULLCLIENT
MAILNAME bench.example.net
SPOOLDIR /var/spool/dma
ALIASES $WORK/peers/dma-aliases
EOF
    chown root:mail /etc/dma/dma.conf
    chmod 640 /etc/dma/dma.conf
    install -d -o root -g mail -m 2775 /var/spool/dma

    # nullmailer: every program but the set-uid nullmailer-queue honours
    # NULLMAILER_TEST_PREFIX (its test suite's knob: PREFIX/{conf,queue,bin,
    # sbin,protocols} replace /etc/nullmailer, /var/spool/nullmailer,
    # /usr/bin, /usr/sbin, /usr/lib/nullmailer); nullmailer-queue ignores it
    # when set-uid, so the spool is the compiled-in /var/spool/nullmailer
    # (written as the package lays it out, and restored), and PREFIX/queue
    # points there. nullmailer-queue reads only adminaddr and allmailfrom
    # from /etc/nullmailer, both optional: that directory is left alone.
    NM_PREFIX=$WORK/peers/nm-prefix
    mkdir -p "$NM_PREFIX/conf"
    ln -s "$NM_ROOT/usr/bin" "$NM_PREFIX/bin"
    ln -s "$NM_ROOT/usr/sbin" "$NM_PREFIX/sbin"
    ln -s "$NM_ROOT/usr/lib/nullmailer" "$NM_PREFIX/protocols"
    ln -s /var/spool/nullmailer "$NM_PREFIX/queue"
    for f in defaultdomain defaulthost idhost; do echo bench.example.net >"$NM_PREFIX/conf/$f"; done
    echo "127.0.0.1 smtp --port=$SINKPORT" >"$NM_PREFIX/conf/remotes"
    chmod 755 "$NM_PREFIX" "$NM_PREFIX/conf"
    chmod 644 "$NM_PREFIX"/conf/*
    chown mail:mail "$NM_PREFIX/conf/remotes"
    chmod 600 "$NM_PREFIX/conf/remotes"
    export NULLMAILER_TEST_PREFIX=$NM_PREFIX
    stash /var/spool/nullmailer
    install -d -o mail -g root -m 755 /var/spool/nullmailer /var/spool/nullmailer/failed
    install -d -o mail -g root -m 750 /var/spool/nullmailer/queue /var/spool/nullmailer/tmp
    mkfifo -m 622 /var/spool/nullmailer/trigger
    chown mail:root /var/spool/nullmailer/trigger
    start_daemon nullmailer
fi

# The systems: name, whether it delivers to the sink, and the command.
SYSTEMS=(floor postfix msmtp)
[ "$PEERS" = yes ] && SYSTEMS+=(dma nullmailer)
SYSTEMS+=(scriptmail)
DELIVERING=()
for s in "${SYSTEMS[@]}"; do [ "$s" != floor ] && DELIVERING+=("$s"); done
cmd_of() {
    case $1 in
    floor) echo "$WORK/floor $WORK/floor.d -t -i" ;;
    postfix) echo "/usr/sbin/sendmail -t -i" ;;
    msmtp) echo "/usr/bin/msmtp -C $WORK/msmtprc -t -i" ;;
    dma) echo "$DMA_BIN -t -i" ;;
    nullmailer) echo "$NM_ROOT/usr/sbin/sendmail -t -i" ;;
    scriptmail | fallback) echo "$BIN/sendmail -t -i" ;;
    esac
}
delivers() { [ "$1" != floor ]; }
# Who runs it: DRIVE_AS for bench/drive.c ("" = root, as the bench always
# ran the others; scriptmail's unprivileged binary needs no set-id).
as_of() {
    case $1 in
    dma | nullmailer) echo "$PEER_UID:$PEER_GID" ;;
    *) echo "" ;;
    esac
}
# The daemon behind a system, if any (dma forks its delivery from the client).
daemon_of() {
    case $1 in
    postfix | scriptmail | nullmailer) echo "$1" ;;
    *) echo "" ;;
    esac
}

# stats FILE: median and p95 of the samples in FILE (one per line).
stats() {
    sort -g "$1" | awk '{ v[NR] = $1 } END {
        n = NR; med = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
        i = int(0.95 * n + 0.999999); if (i < 1) i = 1
        printf "%.3f %.3f\n", med, v[i] }'
}
# samples FILE ARGS...: run the driver and append its samples to FILE.
samples() { DRIVE_RAW=$1 "$DRIVE" "${@:2}" >/dev/null; }

# Check each system delivers end to end before measuring it.
for s in "${DELIVERING[@]}"; do
    read -ra c <<<"$(cmd_of "$s")"
    DRIVE_AS=$(as_of "$s") "$DRIVE" once 1 0 "$MSG" -- "${c[@]}" >/dev/null || die "$s: submission failed"
    DELIVERED=$((DELIVERED + 1))
    wait_sink "$DELIVERED"
done

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

# `fallback` is scriptmail's sendmail with relayd stopped: what a caller gets
# while relayd is down (a direct SQLite commit and a one-shot delivery
# today; the maildrop once submission goes through relayd, issue 13).
ONCE=("${SYSTEMS[@]}")
[ -z "${SKIP_FALLBACK:-}" ] && ONCE+=(fallback)
say "one invocation, 2 KB message ($RUNS runs each, interleaved in $ROUNDS rounds)"
per_round=$((RUNS / ROUNDS))
for r in $(seq "$ROUNDS"); do
    for s in "${ONCE[@]}"; do
        read -ra c <<<"$(cmd_of "$s")"
        [ "$s" = fallback ] && stop_daemon scriptmail
        DRIVE_AS=$(as_of "$s") samples "$WORK/once.$s" once "$per_round" 5 "$MSG" -- "${c[@]}"
        [ "$s" = fallback ] && start_daemon scriptmail
        if delivers "$s"; then
            DELIVERED=$((DELIVERED + per_round + 5))
            wait_sink "$DELIVERED" # the next system runs on a quiet machine
        fi
    done
done
for s in "${ONCE[@]}"; do
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
        DRIVE_AS=$(as_of "$s") samples "$WORK/php.$s" once "$per_round" 3 /dev/null -- \
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
        out=$(DRIVE_AS=$(as_of "$s") "$DRIVE" burst "$PRODUCERS" "$PER_PRODUCER" "$MSG" "$SINKDIR" "$BURST_TOTAL" 600 -- "${c[@]}") ||
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
for s in "${DELIVERING[@]}"; do
    read -ra c <<<"$(cmd_of "$s")"
    DRIVE_AS=$(as_of "$s") samples "$WORK/lat.$s" latency "$LAT_RUNS" "$MSG" "$SINKDIR" -- "${c[@]}"
    DELIVERED=$((DELIVERED + LAT_RUNS))
    wait_sink "$DELIVERED"
    read -r R[lat.$s] R[lat95.$s] <<<"$(stats "$WORK/lat.$s")"
done

say "peak RSS of one invocation (median of 11)"
for s in "${SYSTEMS[@]}"; do
    read -ra c <<<"$(cmd_of "$s")"
    : >"$WORK/rss.$s"
    as=$(as_of "$s")
    pre=()
    if [ -n "$as" ]; then
        # /usr/bin/time itself runs as the caller (a setpriv in between
        # would count its own pages as the child's peak).
        chown "${as%:*}" "$WORK/rss.$s"
        pre=(setpriv --reuid="${as%:*}" --regid="${as#*:}" --clear-groups)
    fi
    for _ in $(seq 11); do
        "${pre[@]}" /usr/bin/time -f %M -a -o "$WORK/rss.$s" "${c[@]}" <"$MSG"
    done
    delivers "$s" && DELIVERED=$((DELIVERED + 11))
    read -r R[rss.$s] _ <<<"$(stats "$WORK/rss.$s")"
done
wait_sink "$DELIVERED"

# Flush calls (fsync, fdatasync, sync_file_range, sync, syncfs) per message,
# counted with strace in the clients AND in the daemons that make the
# message durable or deliver it: clients under `strace -f` (every process a
# submission starts, dma's background delivery included),
# each daemon restarted under the same strace for this part only, its calls
# counted between the first spawn and one second after the last arrival at
# the sink. First one message end to end, then a burst (FSYNC_PER_PRODUCER
# per producer): group commit shows there as fewer than one per message.
say "flush calls per message (strace): one message, then a burst of $FSYNC_TOTAL"
flush_run() { # SYSTEM KIND PRODUCERS PER [DAEMON_TRACE]
    local s=$1 kind=$2 p=$3 n=$4 dt=${5:-} total=$(($3 * $4)) t0 t1 cl d=0 c
    read -ra c <<<"$(cmd_of "$s")"
    # --seccomp-bpf (only the traced calls stop the tracee) sets no_new_privs,
    # which turns set-id execs into plain ones: only for clients run as root.
    local fast=(--seccomp-bpf)
    [ -n "$(as_of "$s")" ] && fast=()
    t0=$(date +%s.%N)
    # The fallback's delivery is waited for by its caller (relayd may be
    # what delivers it, once restarted).
    if delivers "$s" && [ "$s" != fallback ]; then
        DRIVE_AS=$(as_of "$s") strace -f -qq -ttt "${fast[@]}" -e trace="$SYNCS" -o "$WORK/sync.$s.$kind" \
            "$DRIVE" burst "$p" "$n" "$MSG" "$SINKDIR" "$total" 600 -- "${c[@]}" >/dev/null ||
            die "$s: traced $kind failed"
        DELIVERED=$((DELIVERED + total))
        wait_sink "$DELIVERED"
    else
        strace -f -qq -ttt "${fast[@]}" -e trace="$SYNCS" -o "$WORK/sync.$s.$kind" \
            "$DRIVE" burst "$p" "$n" "$MSG" - 0 600 -- "${c[@]}" >/dev/null || die "$s: traced $kind failed"
    fi
    sleep 1 # the daemon records the delivery after the sink's 250
    t1=$(date +%s.%N)
    cl=$(sync_calls "$WORK/sync.$s.$kind")
    # Daemon logs are counted once the daemons are stopped (below).
    FLUSH_PENDING+=("$s|$kind|$total|$cl|$dt|$t0|$t1")
}
FLUSH_PENDING=()
if [ -z "${SKIP_FALLBACK:-}" ]; then
    stop_daemon scriptmail
    flush_run fallback one 1 1
    start_daemon scriptmail
    DELIVERED=$((DELIVERED + 1))
    wait_sink "$DELIVERED"
fi
for s in "${SYSTEMS[@]}"; do
    d=$(daemon_of "$s")
    dt=""
    if [ -n "$d" ]; then
        dt=$WORK/sync.$s.daemon
        stop_daemon "$d"
        start_daemon "$d" "$dt"
    fi
    flush_run "$s" one 1 1 "$dt"
    flush_run "$s" burst "$PRODUCERS" "$FSYNC_PER_PRODUCER" "$dt"
    [ -n "$d" ] && stop_daemon "$d" # its strace log is complete once it exits
done
for row in "${FLUSH_PENDING[@]}"; do
    IFS='|' read -r s kind total cl dt t0 t1 <<<"$row"
    d=0
    [ -n "$dt" ] && d=$(sync_calls "$dt" "$t0" "$t1")
    R[sync.$kind.$s]=$(awk -v c="$cl" -v d="$d" -v n="$total" 'BEGIN { printf "%.2f", (c + d) / n }')
    R[syncd.$kind.$s]="$cl+$d"
done

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
EOF
    [ "$SUBMIT" = yes ] && echo "submit.socket = \"$WORK/cp/submit.sock\"" >>"$WORK/cp/scriptmail.toml"
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
    # populate names its held messages H<unix second><index>: a second
    # populate within the same second as the first would reuse those queue
    # ids (UNIQUE constraint failed, exit 74), which small CP_* knobs hit.
    sleep 1.1
    "${CTL[@]}" populate --accounts "$CP_ACCOUNTS" --messages 0 --held "$CP_HELD" >/dev/null
    one_shot "mailq-ctl purge -y acct00000 ($CP_HELD held)" "${CTL[@]}" purge -y acct00000
fi

# ---------------------------------------------------------------- table
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }
check() { # value, op, limit
    awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
        if (v == "" || v == "-") { print "?"; exit }
        if (op == "<=") ok = v + 0 <= l + 0; else if (op == "<") ok = v + 0 < l + 0; else ok = v + 0 >= l + 0
        print ok ? "met" : "MISSED" }'
}
g() { echo "${R[$1]:-}"; }
# cells KEY [KEY95]: the six system columns (floor Postfix msmtp dma
# nullmailer scriptmail), "median (p95)" when KEY95 is given, "-" if not measured.
cells() {
    local s v out=""
    for s in floor postfix msmtp dma nullmailer scriptmail; do
        v=$(g "$1.$s")
        if [ -z "$v" ]; then
            v="-"
        elif [ -n "${2:-}" ]; then
            v="$v ($(g "$2.$s"))"
        fi
        out+=" $v |"
    done
    printf '%s' "$out"
}
# ratios KEY: scriptmail ÷ floor, Postfix, dma, nullmailer.
ratios() {
    local s out=""
    for s in floor postfix dma nullmailer; do out+=" $(ratio "$(g "$1.scriptmail")" "$(g "$1.$s")") |"; done
    printf '%s' "$out"
}

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
[ -n "$cpu" ] || cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
dirty=$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo '+dirty' || true)
peers_v=""
[ "$PEERS" = yes ] && peers_v="; dma $DMA_VERSION; nullmailer $NM_VERSION (unpacked, run as $PEER_USER)"
{
    echo "## scriptmail benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- machine: $cpu, $(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 }') GiB, kernel $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "- scriptmail $rev$dirty (submission: $([ "$SUBMIT" = yes ] && echo "relayd's socket, fallback: maildrop" || echo "direct SQLite commit")); $(/usr/sbin/postconf -h mail_version 2>/dev/null | sed 's/^/Postfix /'); $(msmtp --version | head -1)$peers_v; $(php -r 'echo "PHP ", PHP_VERSION;'); $(uname -m)"
    echo "- queues and floor on $(df --output=fstype "$WORK" | tail -1) ($(df --output=source "$WORK" | tail -1)); times in ms, medians (p95); each system measured with the same driver (bench/drive.c), runs interleaved; load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "| figure | floor | Postfix | msmtp | dma | nullmailer | scriptmail | ÷ floor | ÷ Postfix | ÷ dma | ÷ nullmailer | target (issue 13) | |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    r_once=$(ratio "$(g once.scriptmail)" "$(g once.floor)")
    echo "| one invocation, 2 KB, exec'd directly |$(cells once once95)$(ratios once) ≤ 1.0× floor | $(check "$r_once" '<=' 1.0) |"
    if [ -n "$(g once.fallback)" ]; then
        r_fb=$(ratio "$(g once.fallback)" "$(g once.floor)")
        echo "| one invocation, fallback: no relayd ($FALLBACK) | | | | | | $(g once.fallback) ($(g once95.fallback)) | $r_fb | $(ratio "$(g once.fallback)" "$(g once.postfix)") | $(ratio "$(g once.fallback)" "$(g once.dma)") | $(ratio "$(g once.fallback)" "$(g once.nullmailer)") | ≤ 1.3× floor | $(check "$r_fb" '<=' 1.3) |"
    fi
    echo "| PHP mail() minus php -r '1;' ($(g php.base) ms) |$(cells php php95)$(ratios php) | |"
    r_acc=$(ratio "$(g acc.scriptmail)" "$(g acc.floor)")
    r_accp=$(ratio "$(g acc.scriptmail)" "$(g acc.postfix)")
    r_accd=$(ratio "$(g acc.scriptmail)" "$(g acc.dma)")
    echo "| burst $PRODUCERS×$PER_PRODUCER: accepted/s |$(cells acc)$(ratios acc) ≥ 1.5× floor, ≥ 5× Postfix, ≥ 3× dma | $(check "$r_acc" '>=' 1.5) / $(check "$r_accp" '>=' 5) / $(check "$r_accd" '>=' 3) |"
    r_del=$(ratio "$(g del.scriptmail)" "$(g acc.scriptmail)")
    echo "| burst: delivered/s at the sink |$(cells del)$(ratios del) ≥ 0.9× own accepted/s ($r_del) | $(check "$r_del" '>=' 0.9) |"
    echo "| submission → at the sink |$(cells lat lat95)$(ratios lat) ≤ 2 ms | $(check "$(g lat.scriptmail)" '<=' 2) |"
    rss_mib=$(awk -v k="$(g rss.scriptmail)" 'BEGIN { printf "%.2f", k / 1024 }')
    echo "| peak RSS of one invocation (KiB) |$(cells rss)$(ratios rss) ≤ 1.5 MiB ($rss_mib MiB) | $(check "$rss_mib" '<=' 1.5) |"
    echo "| flush calls per message, one message end to end (client + daemon) |$(cells sync.one)$(ratios sync.one) ≥ 1: durable before exit 0 | $(check "$(g sync.one.scriptmail)" '>=' 1) |"
    echo "| flush calls per accepted message, burst $PRODUCERS×$FSYNC_PER_PRODUCER (clients + daemon) |$(cells sync.burst)$(ratios sync.burst) reported; expect well under 1 | $(check "$(g sync.burst.scriptmail)" '<' 1) |"
    if [ -n "$(g sync.one.fallback)" ]; then
        echo "| flush calls, one message through the fallback (client + one-shot) | | | | | | $(g sync.one.fallback) | | | | | reported | |"
    fi
    echo
    echo "Flush calls are fsync, fdatasync, sync_file_range, sync and syncfs, counted with"
    sums=""
    for s in "${SYSTEMS[@]}"; do sums+="${sums:+; }$s $(g "syncd.one.$s") and $(g "syncd.burst.$s")"; done
    echo "strace; client + daemon calls, one message and burst: $sums."
    echo "Postfix's times are its \`sendmail\` alone (postdrop): its pickup, cleanup and qmgr"
    echo "daemons do the rest after exit. msmtp relays synchronously and keeps no queue."
    if [ "$PEERS" = yes ]; then
        echo "dma spools (two fsyncs) and exits; a background process per message delivers."
        echo "nullmailer's sendmail runs nullmailer-inject, which pipes the message to the"
        echo "set-uid nullmailer-queue; nullmailer-send delivers. Both run as $PEER_USER with"
        echo "their packages' set-id bits; everything else as root."
    fi
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
