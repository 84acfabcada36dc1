# bench/lib.sh — helpers shared by bench/run.sh and bench/soak.sh (sourced).
# Callers set NAME (the prefix of error messages) before sourcing.

say() { printf '==> %s\n' "$*" >&2; }
die() {
    printf '%s: %s\n' "${NAME:-bench}" "$*" >&2
    exit 1
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_port PORT: until something accepts on 127.0.0.1:PORT (5 s at most).
wait_port() {
    local _
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    return 1
}

# submit_key_supported SENDMAIL DIR: does this build know `submit.socket`
# (submission through relayd's socket, issue 13)? Today's config loader
# rejects unknown keys (exit 78, "unknown field `submit`"), so the probe is
# `sendmail -bv root` (reads no stdin, opens no queue) with a config that
# sets only that key: exit 0 = known, 78 naming `submit` = unknown. Anything
# else is a broken build and stops the run.
submit_key_supported() {
    local bin=$1 dir=$2 rc=0
    printf 'submit.socket = "%s/probe.sock"\n' "$dir" >"$dir/probe.toml"
    SCRIPTMAIL_CONFIG=$dir/probe.toml "$bin" -bv root </dev/null >/dev/null 2>"$dir/probe.err" || rc=$?
    if [ "$rc" = 0 ]; then
        echo yes
    elif [ "$rc" = 78 ] && grep -q 'submit' "$dir/probe.err"; then
        echo no
    else
        die "probing submit.socket: $bin -bv exited $rc: $(cat "$dir/probe.err")"
    fi
}

# System paths a run writes (/etc/dma, /var/spool/dma, /etc/scriptmail, ...):
# `stash PATH` moves whatever is there aside to PATH.scriptmail-bench-saved
# (same directory, so a rename) and `unstash_all` (from the EXIT trap) removes
# what the run put at PATH and moves the original back. A run killed with
# SIGKILL leaves the .scriptmail-bench-saved copy; the next run refuses to
# start until it is moved back by hand.
STASHED=()
stash() {
    local p=$1 saved="$1.scriptmail-bench-saved"
    if [ -e "$saved" ] || [ -L "$saved" ]; then
        die "$saved exists: an earlier run was killed; put it back first: rm -rf $p && mv $saved $p"
    fi
    if [ -e "$p" ] || [ -L "$p" ]; then mv "$p" "$saved"; fi
    STASHED+=("$p")
}
unstash_all() {
    local i p saved
    for ((i = ${#STASHED[@]} - 1; i >= 0; i--)); do
        p=${STASHED[$i]}
        saved="$p.scriptmail-bench-saved"
        rm -rf "$p"
        if [ -e "$saved" ] || [ -L "$saved" ]; then mv "$saved" "$p"; fi
    done
    STASHED=()
}

# kill_exe PATH: SIGKILL every process running the program file PATH (a
# private copy this run unpacked, so only processes the run started match).
kill_exe() {
    local d
    for d in /proc/[0-9]*; do
        if [ "$(readlink "$d/exe" 2>/dev/null)" = "$1" ]; then kill -9 "${d#/proc/}" 2>/dev/null; fi
    done
    return 0
}

# sync_calls FILE [T0 T1]: flush calls (fsync, fdatasync, sync_file_range,
# sync, syncfs) in an `strace -f -ttt` log, optionally only those that
# started between epoch times T0 and T1. A call interrupted by a switch to
# another process is logged twice ("fsync(3 <unfinished ...>", then
# "<... fsync resumed>"): only the first line counts.
sync_calls() {
    awk -v t0="${2:-0}" -v t1="${3:-9e18}" '
        { ts = $1; call = $2 }
        $1 ~ /^[0-9]+$/ && $2 ~ /^[0-9]+\.[0-9]+$/ { ts = $2; call = $3 }
        call ~ /^(fsync|fdatasync|sync_file_range|sync|syncfs)\(/ && ts + 0 >= t0 + 0 && ts + 0 <= t1 + 0 { n++ }
        END { print n + 0 }' "$1"
}
