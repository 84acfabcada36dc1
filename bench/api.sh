#!/usr/bin/env bash
# bench/api.sh — the panel API under load (issue 15): GET
# /hosting/web/{account}/email (the control panel's account object) p50/p99 and
# requests/s against the control-plane data set of bench/run.sh, built with
# the hidden `mailq-ctl populate` (default 10,000 accounts, 1,000,000
# messages of history, 100,000 held by the first account). Each request
# asks for a random account, with an admin token, on kept-alive
# connections; the load generator is wrk (Debian's; installed when missing
# and run as root).
#
# Knobs (environment): ACCOUNTS (10000), MESSAGES (1000000), HELD (100000),
# DURATION (seconds per run, 10), CONNECTIONS (16), THREADS (2), WORKERS
# (the API's api.workers, 4), NO_BUILD=1 (use $CARGO_TARGET_DIR/release as
# it is), KEEP=1 (keep the work dir). A separate script from bench/run.sh,
# which measures submission.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ACCOUNTS=${ACCOUNTS:-10000}
MESSAGES=${MESSAGES:-1000000}
HELD=${HELD:-100000}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-2}
WORKERS=${WORKERS:-4}
TARGET=${CARGO_TARGET_DIR:-target}

say() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'bench/api: %s\n' "$*" >&2
    exit 1
}

if ! command -v wrk >/dev/null; then
    [ "$(id -u)" -eq 0 ] || die "wrk is missing: apt-get install wrk (as root)"
    say "installing wrk"
    DEBIAN_FRONTEND=noninteractive apt-get -q -y --no-install-recommends install wrk >/dev/null ||
        { apt-get -q update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get -q -y --no-install-recommends install wrk >/dev/null; } ||
        die "cannot install wrk"
fi
if [ -z "${NO_BUILD:-}" ]; then
    say "cargo build --release"
    cargo build --release --locked --bin scriptmail >&2
fi
BIN=$TARGET/release/scriptmail
[ -x "$BIN" ] || die "$BIN missing"

work=$(mktemp -d /tmp/scriptmail-bench-api.XXXXXX)
api_pid=
cleanup() {
    [ -n "$api_pid" ] && kill "$api_pid" 2>/dev/null && wait "$api_pid" 2>/dev/null
    [ -z "${KEEP:-}" ] && rm -rf "$work"
    return 0
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
    echo $((20000 + RANDOM % 40000)))
mkdir -p "$work/queue"
cat >"$work/scriptmail.toml" <<EOF
node.domain = "bench.example.net"
queue.dir = "$work/queue"
relay.port = 9
log.socket = "$work/no-syslog"
api.listen = "127.0.0.1:$port"
api.tokens_file = "$work/api-tokens"
api.workers = $WORKERS
EOF
sm() { "$BIN" --config "$work/scriptmail.toml" "$@"; }

say "populate: $ACCOUNTS accounts, $MESSAGES messages, $HELD held"
t=$(date +%s.%N)
sm mailq-ctl populate --accounts "$ACCOUNTS" --messages "$MESSAGES" --held "$HELD" >/dev/null
pop=$(echo "$(date +%s.%N) - $t" | bc)
dbsize=$(($(stat -c %s "$work/queue/queue.db") / 1048576))
token=$(sm mailq-ctl api-token add bench --scope admin | tail -n1)

# Not through sm(): $! must be the daemon itself (its pid for /proc and kill).
"$BIN" --config "$work/scriptmail.toml" api 2>"$work/api.log" &
api_pid=$!
for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    kill -0 "$api_pid" 2>/dev/null || die "scriptmail api exited: $(cat "$work/api.log")"
    sleep 0.1
done

cat >"$work/random-account.lua" <<'EOF'
-- Each request: the account object of a random account.
local n = tonumber(os.getenv("ACCOUNTS"))
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
math.randomseed(42)
request = function()
    return wrk.format("GET", string.format("/hosting/web/acct%05d/email", math.random(0, n - 1)))
end
EOF

# A check before the load: one answer, and it is the account object.
one=$(ACCOUNTS=1 TOKEN=$token wrk -t1 -c1 -d1s -s "$work/random-account.lua" "http://127.0.0.1:$port" 2>&1) ||
    die "wrk failed: $one"
answer=$(exec 3<>"/dev/tcp/127.0.0.1/$port"
    printf 'GET /hosting/web/acct00042/email HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n' "$token" >&3
    cat <&3)
printf '%s' "$answer" | grep -q '"sentToday"' || die "not the account object: $answer"

say "wrk: ${DURATION}s, $CONNECTIONS connections, $THREADS threads, random accounts"
out=$(ACCOUNTS=$ACCOUNTS TOKEN=$token wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency \
    -s "$work/random-account.lua" "http://127.0.0.1:$port")
printf '%s\n' "$out" >&2
grep -q 'Non-2xx' <<<"$out" && die "some answers were not 200"
p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
rss=$(awk '/^VmHWM/ {print $2}' "/proc/$api_pid/status")

echo
echo "### Panel API — $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "- machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load before the run $(cut -d' ' -f1-3 /proc/loadavg); shared with other work, so figures are indicative"
echo "- scriptmail $(git rev-parse --short HEAD 2>/dev/null || echo '?'), release build; wrk $(wrk --version 2>&1 | head -n1 | awk '{print $2}')"
echo "- data: $ACCOUNTS accounts, $MESSAGES messages of history, $HELD held (populate ${pop%.*} s, queue.db $dbsize MiB)"
echo "- load: ${DURATION} s, $CONNECTIONS kept-alive connections, $THREADS wrk threads, api.workers = $WORKERS, a random account per request"
echo
echo "| request | p50 | p99 | requests/s | API peak RSS |"
echo "|---|---|---|---|---|"
echo "| GET /hosting/web/{account}/email | $p50 | $p99 | $rps | $((rss / 1024)) MiB |"
