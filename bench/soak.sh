#!/usr/bin/env bash
# bench/soak.sh — the soak of issue 11, in one command (as root).
#
# Installs the release build as a package would (a set-uid `sendmail` owned
# by the service user `scriptmail`, the config in
# /etc/scriptmail/scriptmail.toml), creates SOAK_ACCOUNTS real Unix users
# (sm-soak-1, sm-soak-2, ...) and lets each submit through real PHP mail()
# for SOAK_MINUTES, while bench/soak.py relays to a scripted smarthost that
# answers 4xx to ~10 % and 5xx to ~2 % of transactions, blocks, unblocks and
# purges accounts, sweeps, and restarts relayd with SIGTERM or kill -9 at
# random intervals. At the end every accepted message must be accounted for
# exactly once (bench/soak.py, `check`); the summary is printed on stdout
# and kept in the state directory. Exit status: 0 ok, 1 a message lost or
# duplicated outside the kill -9 window, 2 the run failed.
#
# Knobs (environment): SOAK_MINUTES (30), SOAK_ACCOUNTS (4), SOAK_RATE
# (mail() calls per second per account, 2.5), SOAK_SEED (random), SAMPLE_SECS
# (10), SWEEP_SECS (30), RESTART_MIN/RESTART_MAX (seconds between relayd
# restarts, 30/120), CALM_MINUTES (no restarts in the last CALM_MINUTES, so
# one relayd lives long enough for an RSS trend; default a third of the run),
# CYCLE_MIN/CYCLE_MAX (seconds between block/unblock/purge
# steps, 10/30), HOLD_MAX_AGE (queue.hold_max_age, 90s: blocked mail expires
# during the run), TEMPFAIL (0.10), PERMFAIL (0.02), DATA_DELAY (the
# smarthost's 250 comes 0..DATA_DELAY s after it took a message, 0.1: kills
# then hit messages on the wire), DRAIN_SECS (300),
# LOCK_WAIT (seconds to wait for /tmp/scriptmail-it-etc.lock, 1800),
# NO_INSTALL=1, NO_BUILD=1, KEEP=1 (keep the state dir; it is kept anyway
# when the soak fails).
#
# System paths it writes, restored at exit (also on failure): the file
# /etc/scriptmail/scriptmail.toml (the set-uid sendmail reads only that
# path), a program directory /usr/local/lib/scriptmail-soak.* (removed); it
# holds /tmp/scriptmail-it-etc.lock meanwhile, the lock tests/root/security/mod.rs
# takes for /etc/scriptmail. The users it creates stay (as the tests' do).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
NAME=soak
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

SOAK_MINUTES=${SOAK_MINUTES:-30}
SOAK_ACCOUNTS=${SOAK_ACCOUNTS:-4}
SOAK_RATE=${SOAK_RATE:-2.5}
SAMPLE_SECS=${SAMPLE_SECS:-10}
SWEEP_SECS=${SWEEP_SECS:-30}
RESTART_MIN=${RESTART_MIN:-30}
RESTART_MAX=${RESTART_MAX:-120}
CALM_MINUTES=${CALM_MINUTES:-}
CYCLE_MIN=${CYCLE_MIN:-10}
CYCLE_MAX=${CYCLE_MAX:-30}
HOLD_MAX_AGE=${HOLD_MAX_AGE:-90s}
TEMPFAIL=${TEMPFAIL:-0.10}
DATA_DELAY=${DATA_DELAY:-0.1}
PERMFAIL=${PERMFAIL:-0.02}
DRAIN_SECS=${DRAIN_SECS:-300}
LOCK_WAIT=${LOCK_WAIT:-1800}
SVC=scriptmail
CONF=/etc/scriptmail/scriptmail.toml
PY=/usr/bin/python3
export DEBIAN_FRONTEND=noninteractive

[ "$(id -u)" -eq 0 ] || die "run as root: it installs a set-uid sendmail and creates users"

if [ -z "${NO_INSTALL:-}" ]; then
    missing=()
    for p in php-cli python3 util-linux; do
        [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)" = installed ] || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        say "installing ${missing[*]}"
        apt-get -q update >/dev/null && apt-get -q -y --no-install-recommends install "${missing[@]}" >/dev/null ||
            die "installing ${missing[*]} failed"
    fi
fi
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release
if [ -z "${NO_BUILD:-}" ]; then
    say "cargo build --release"
    cargo build --release --locked --workspace --bins -q
fi
[ -x "$BIN/sendmail" ] && [ -x "$BIN/scriptmail" ] || die "no release binaries in $BIN"

# /etc/scriptmail and the service user are shared with tests/root/security/
# (and other soak or package runs): take the lock those tests take.
say "waiting for /tmp/scriptmail-it-etc.lock (at most ${LOCK_WAIT}s)"
exec 9>>/tmp/scriptmail-it-etc.lock
flock -w "$LOCK_WAIT" 9 || die "/tmp/scriptmail-it-etc.lock is still held after ${LOCK_WAIT}s"

# ---------------------------------------------------------------- users
ensure_user() { # NAME system|tenant
    id "$1" >/dev/null 2>&1 && return 0
    local grp=(--user-group)
    getent group "$1" >/dev/null && grp=(--gid "$1")
    if [ "$2" = system ]; then
        useradd "${grp[@]}" --system --no-create-home --home-dir /var/lib/scriptmail --shell /usr/sbin/nologin "$1"
    else
        useradd "${grp[@]}" --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$1"
    fi
}
ensure_user "$SVC" system
ACCOUNTS=()
for i in $(seq "$SOAK_ACCOUNTS"); do
    ensure_user "sm-soak-$i" tenant
    ACCOUNTS+=("sm-soak-$i")
done

# ---------------------------------------------------------------- install
STATE=$(mktemp -d /var/tmp/scriptmail-soak.XXXXXX)
chmod 755 "$STATE"
mkdir -p /usr/local/lib
BINDIR=$(mktemp -d /usr/local/lib/scriptmail-soak.XXXXXX)
chmod 755 "$BINDIR"
STATUS=2
cleanup() {
    set +e
    # Every process the run started (soak.py records their pids), then any
    # left running our copies (one-shot deliveries, sendmail).
    [ -n "${DRIVER_PID:-}" ] && kill "$DRIVER_PID" 2>/dev/null
    if [ -f "$STATE/pids" ]; then
        while read -r p; do kill -9 "$p" 2>/dev/null; done <"$STATE/pids"
    fi
    [ -n "${SYSLOG_PID:-}" ] && kill "$SYSLOG_PID" 2>/dev/null
    kill_exe "$BINDIR/scriptmail"
    kill_exe "$BINDIR/sendmail"
    unstash_all # /etc/scriptmail/scriptmail.toml as it was
    rm -rf "$BINDIR"
    if [ -z "${KEEP:-}" ] && [ "$STATUS" = 0 ]; then
        rm -rf "$STATE"
    else
        echo "state dir kept: $STATE (bench/soak.py check --state $STATE)" >&2
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

if findmnt -no OPTIONS -T "$BINDIR" | tr , '\n' | grep -qx nosuid; then
    die "$BINDIR is on a nosuid file system: the set-uid sendmail would not switch"
fi
# As the package installs them: sendmail set-uid and set-gid to the service
# user (chown first: it clears set-id bits), scriptmail and the mailq-ctl link.
install -m 755 "$BIN/scriptmail" "$BINDIR/scriptmail"
install -m 755 "$BIN/sendmail" "$BINDIR/sendmail"
chown "$SVC:$SVC" "$BINDIR/sendmail"
chmod 6755 "$BINDIR/sendmail"
ln -s scriptmail "$BINDIR/mailq-ctl"

install -d -o "$SVC" -g "$SVC" -m 700 "$STATE/queue"
install -d -o "$SVC" -g "$SVC" -m 755 "$STATE/run"
cp bench/soak.php "$STATE/soak.php"
chmod 644 "$STATE/soak.php"
for a in "${ACCOUNTS[@]}"; do install -d -o "$a" -g "$(id -g "$a")" -m 755 "$STATE/prod/$a"; done
# The syslog stand-in keeps what scriptmail logs (sendmail, relayd, mailq-ctl).
$PY -c '
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o666)
with open(sys.argv[2], "ab", buffering=0) as f:
    while True:
        f.write(s.recv(65536) + b"\n")
' "$STATE/syslog.sock" "$STATE/syslog.log" &
SYSLOG_PID=$!
for _ in $(seq 100); do [ -S "$STATE/syslog.sock" ] && break; sleep 0.05; done

PORT=$(free_port)
SUBMIT=$(submit_key_supported "$BIN/sendmail" "$STATE")
if [ -d /etc/scriptmail ]; then stash "$CONF"; else stash /etc/scriptmail; fi
mkdir -p /etc/scriptmail
{
    echo "# written by scriptmail bench/soak.sh; restored when the soak ends"
    echo "node.domain = \"soak.example.net\""
    echo "queue.dir = \"$STATE/queue\""
    echo "queue.hold_max_age = \"$HOLD_MAX_AGE\""
    echo "relay.host = \"127.0.0.1\""
    echo "relay.port = $PORT"
    echo "relay.program = \"$BINDIR/scriptmail\""
    echo "relay.retry_initial = \"2s\""
    echo "relay.retry_max = \"15s\""
    echo "relay.connect_timeout = \"5s\""
    echo "relay.command_timeout = \"20s\""
    echo "log.socket = \"$STATE/syslog.sock\""
    [ "$SUBMIT" = yes ] && echo "submit.socket = \"$STATE/run/submit.sock\""
} >"$CONF.soak-tmp"
chmod 644 "$CONF.soak-tmp"
mv "$CONF.soak-tmp" "$CONF"

# The set-uid installation works before the clock starts (as root: its
# account is none of the soak's, so no purge counts this message).
printf 'To: check@soak.example.org\nSubject: install check\n\nx\n' | "$BINDIR/sendmail" -t -i ||
    die "the installed sendmail refused a message (see $STATE/syslog.log)"

say "soak: ${SOAK_MINUTES} min, ${#ACCOUNTS[@]} accounts x ${SOAK_RATE}/s, submission: $([ "$SUBMIT" = yes ] && echo "relayd's socket" || echo "direct"), state $STATE"
rc=0
$PY bench/soak.py run --state "$STATE" --bin "$BINDIR" --port "$PORT" --svc "$SVC" \
    --accounts "$(
        IFS=,
        echo "${ACCOUNTS[*]}"
    )" \
    --minutes "$SOAK_MINUTES" --rate "$SOAK_RATE" ${SOAK_SEED:+--seed "$SOAK_SEED"} \
    --sample "$SAMPLE_SECS" --sweep "$SWEEP_SECS" \
    --restart-min "$RESTART_MIN" --restart-max "$RESTART_MAX" ${CALM_MINUTES:+--calm "$CALM_MINUTES"} \
    --cycle-min "$CYCLE_MIN" --cycle-max "$CYCLE_MAX" --drain "$DRAIN_SECS" \
    --tempfail "$TEMPFAIL" --permfail "$PERMFAIL" --data-delay "$DATA_DELAY" &
DRIVER_PID=$!
wait "$DRIVER_PID" || rc=$?
DRIVER_PID=""
STATUS=$rc
exit "$rc"
