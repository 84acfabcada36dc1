#!/usr/bin/env bash
# Install test of the Debian package, the way an admin uses it (issue 7).
# Run as root on a Debian 12 machine that has Postfix, PHP CLI, lintian and sqlite3
# (.ci/run installs them), with no scriptmail package installed (one left over from
# an earlier run is purged first). It:
#   builds the .deb (installing cargo-deb if missing) and fails on any lintian error;
#   installs it next to Postfix and checks owners, modes, the set-uid/set-gid bits,
#   the symlink, the conffile, the user, the units (systemd-analyze verify), the
#   submission socket unit and /run/scriptmail;
#   relays a PHP mail() sent by an unprivileged user through a hand-started relayd
#   (handed over on relayd's submission socket) to smtp-sink; runs the panel API by
#   hand (its unit is installed, not enabled): /healthz answers, a token made by
#   mailq-ctl api-token reads the account; holds a mail for a blocked account and
#   reinstalls the package over itself (the held mail and the admin's config
#   survive; a mail sent while relayd is stopped goes through the maildrop); then
#   dpkg -r (data and config kept, programs gone) and dpkg --purge (user, data and
#   config gone).
# Everything it starts (smtp-sink, relayd, the test user) is cleaned up on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C

CARGO_DEB_VERSION=3.8.0
TEST_USER=smpkgtest
SENDMAIL=/usr/lib/scriptmail/sendmail
CONF=/etc/scriptmail/scriptmail.toml
QUEUE=/var/lib/scriptmail

t0=$SECONDS
step() { printf '\n==> [%3ds] %s\n' "$((SECONDS - t0))" "$*"; }
ok() { printf '    ok: %s\n' "$*"; }
fail() {
    printf 'test-package: FAIL: %s\n' "$*" >&2
    exit 1
}
# expect DESCRIPTION ACTUAL WANTED
expect() {
    if [ "$2" != "$3" ]; then
        fail "$1: got '$2', want '$3'"
    fi
    ok "$1: $3"
}
stat_of() { stat -c '%U:%G %a' "$1"; }
# installed | config-files | ... ; empty once dpkg has forgotten the package.
pkg_state() { dpkg-query -W -f='${db:Status-Status}' scriptmail 2>/dev/null || true; }

if [ "$(id -u)" -ne 0 ]; then
    echo "test-package.sh: run as root (it installs the package and creates users)" >&2
    exit 1
fi

work=$(mktemp -d /tmp/scriptmail-pkgtest.XXXXXX)
chmod 0755 "$work"
sink_pid=
relayd_pid=
api_pid=
policy_created=0

cleanup() {
    local status=$?
    set +e
    if [ "$status" -ne 0 ]; then
        echo "---- relayd output" >&2
        cat "$work/relayd.log" 2>/dev/null >&2
        echo "---- api output" >&2
        cat "$work/api.log" 2>/dev/null >&2
        echo "---- smtp-sink output" >&2
        cat "$work/sink.log" 2>/dev/null >&2
    fi
    [ -n "$relayd_pid" ] && kill "$relayd_pid" 2>/dev/null && wait "$relayd_pid" 2>/dev/null
    [ -n "$api_pid" ] && kill "$api_pid" 2>/dev/null && wait "$api_pid" 2>/dev/null
    [ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null && wait "$sink_pid" 2>/dev/null
    if getent passwd "$TEST_USER" >/dev/null; then
        userdel -r "$TEST_USER" >/dev/null 2>&1
    fi
    # Leave the machine as we found it: no scriptmail package, user or data.
    case "$(pkg_state)" in
    "" | not-installed) ;;
    *) dpkg --purge scriptmail >/dev/null 2>&1 ;;
    esac
    [ "$policy_created" -eq 1 ] && rm -f /usr/sbin/policy-rc.d
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT

# ---------------------------------------------------------------- preconditions
step "preconditions"
for tool in lintian php smtp-sink sqlite3 runuser; do
    command -v "$tool" >/dev/null || fail "$tool missing (.ci/run installs it)"
done
expect "postfix installed" "$(dpkg-query -W -f='${db:Status-Status}' postfix)" installed
sendmail_owner_before=$(dpkg -S /usr/sbin/sendmail)
sendmail_sum_before=$(sha256sum /usr/sbin/sendmail)
case "$(pkg_state)" in
"" | not-installed) ;;
*)
    echo "    purging a scriptmail package left from an earlier run"
    dpkg --purge scriptmail >/dev/null
    ;;
esac
getent passwd "$TEST_USER" >/dev/null && userdel -r "$TEST_USER" >/dev/null 2>&1
# The integration tests (tests/root/security/) also use /etc/scriptmail and the
# scriptmail user; they hold this lock while they do, so wait for them.
exec 9>/tmp/scriptmail-it-etc.lock
flock -w 600 9 || fail "timed out waiting for /tmp/scriptmail-it-etc.lock"
# Those tests create the scriptmail user as the package would and leave it. Remove
# it, so this test sees the package's postinst create it.
if getent passwd scriptmail >/dev/null; then
    echo "    removing the scriptmail user left by the integration tests"
    userdel scriptmail
fi
if getent group scriptmail >/dev/null; then
    groupdel scriptmail
fi
[ -e /etc/scriptmail ] && fail "/etc/scriptmail exists without the package: move it away first"
[ -e "$QUEUE" ] && fail "$QUEUE exists without the package: move it away first"
# Keep maintainer scripts from starting the units on a machine that runs systemd:
# this test starts relayd by hand (CI has no systemd), as the only relayer.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    policy_created=1
fi
if ! command -v systemd-analyze >/dev/null; then
    echo "    installing systemd for systemd-analyze (not started)"
    apt-get -q update >/dev/null
    apt-get -q -y --no-install-recommends -o Dpkg::Use-Pty=0 install systemd </dev/null >/dev/null
fi

# ---------------------------------------------------------------------- build
step "cargo-deb"
if ! command -v cargo-deb >/dev/null; then
    cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION"
fi
cargo deb --version

step "build the .deb (release build, generated man pages and completions)"
deb=$(packaging/build-deb.sh | tail -n1)
[ -f "$deb" ] || fail "build-deb.sh did not name a .deb (got '$deb')"
ok "$deb ($(du -h "$deb" | cut -f1))"

step "lintian"
# --fail-on error: any E: tag fails; warnings and info are printed for the log.
lintian --fail-on error --display-info "$deb" | tee "$work/lintian.txt" ||
    fail "lintian reported errors"
if grep -q '^E:' "$work/lintian.txt"; then
    fail "lintian reported errors"
fi
ok "no lintian errors"

step "package metadata: no MTA takeover"
fields=$(dpkg-deb -f "$deb" Provides Conflicts Replaces)
case "$fields" in
*mail-transport-agent* | *postfix*) fail "package declares $fields" ;;
esac
dpkg-deb -c "$deb" | grep -q ' \./usr/sbin/sendmail$' && fail "package ships /usr/sbin/sendmail"
ok "no Provides/Conflicts/Replaces on the MTA, no /usr/sbin/sendmail"

# -------------------------------------------------------------------- install
step "dpkg -i next to Postfix"
dpkg -i "$deb" </dev/null
expect "package state" "$(pkg_state)" installed
expect "/usr/sbin/sendmail still Postfix's" "$(dpkg -S /usr/sbin/sendmail)" "$sendmail_owner_before"
expect "/usr/sbin/sendmail unchanged" "$(sha256sum /usr/sbin/sendmail)" "$sendmail_sum_before"

step "files, owners, modes"
getent passwd scriptmail >/dev/null || fail "no scriptmail user"
getent group scriptmail >/dev/null || fail "no scriptmail group"
IFS=: read -r _ _ sm_uid sm_gid _ sm_home sm_shell < <(getent passwd scriptmail)
[ "$sm_uid" -lt 1000 ] || fail "scriptmail uid $sm_uid is not a system uid"
expect "scriptmail primary group" "$(getent group "$sm_gid" | cut -d: -f1)" scriptmail
expect "scriptmail home" "$sm_home" "$QUEUE"
expect "scriptmail shell" "$sm_shell" /usr/sbin/nologin
expect "$SENDMAIL" "$(stat_of "$SENDMAIL")" "scriptmail:scriptmail 6755"
expect "statoverride" "$(dpkg-statoverride --list "$SENDMAIL")" "scriptmail scriptmail 6755 $SENDMAIL"
expect /usr/sbin/scriptmail "$(stat_of /usr/sbin/scriptmail)" "root:root 755"
expect "/usr/sbin/mailq-ctl symlink" "$(readlink /usr/sbin/mailq-ctl)" scriptmail
expect "$QUEUE" "$(stat_of "$QUEUE")" "scriptmail:scriptmail 700"
expect /run/scriptmail "$(stat_of /run/scriptmail)" "scriptmail:scriptmail 755"
expect /usr/lib/tmpfiles.d/scriptmail.conf "$(stat_of /usr/lib/tmpfiles.d/scriptmail.conf)" "root:root 644"
expect "$CONF" "$(stat_of "$CONF")" "root:root 644"
cmp -s "$CONF" conf/scriptmail.toml || fail "$CONF differs from conf/scriptmail.toml"
dpkg-query -W -f='${Conffiles}\n' scriptmail | grep -q "^ $CONF " || fail "$CONF is not a conffile"
ok "$CONF is a conffile"
for f in /usr/share/man/man8/{scriptmail,mailq-ctl,scriptmail-sendmail}.8.gz; do
    zcat "$f" | grep -q '^\.TH ' || fail "$f is not a man page"
done
ok "man pages scriptmail.8 mailq-ctl.8 scriptmail-sendmail.8"
for f in /usr/share/bash-completion/completions/{scriptmail,mailq-ctl} \
    /usr/share/zsh/vendor-completions/{_scriptmail,_mailq-ctl} \
    /usr/share/fish/vendor_completions.d/{scriptmail,mailq-ctl}.fish \
    /usr/share/doc/scriptmail/{copyright,changelog.Debian.gz,README.md,api.md,openapi.json} \
    /usr/share/doc/scriptmail/examples/php-fpm-pool.conf; do
    [ -s "$f" ] || fail "$f missing"
done
ok "completions, docs, PHP-FPM pool example"
bash -c 'source /usr/share/bash-completion/completions/mailq-ctl && complete -p mailq-ctl' >/dev/null ||
    fail "bash completion for mailq-ctl does not load"
# The symlink dispatches on argv[0]: mailq-ctl's own options work through it.
pkg_version=$(dpkg-query -W -f='${Version}' scriptmail | cut -d- -f1)
case "$(/usr/sbin/mailq-ctl --version)" in
*"mailq-ctl $pkg_version") ok "mailq-ctl --version: $pkg_version" ;;
*) fail "mailq-ctl --version: $(/usr/sbin/mailq-ctl --version)" ;;
esac

step "systemd units"
unitdir=$(dirname "$(dpkg -L scriptmail | grep '/scriptmail-relayd\.service$')")
units=()
for u in scriptmail-relayd.service scriptmail-submit.socket scriptmail-sweep.service \
    scriptmail-sweep.timer scriptmail-report.service scriptmail-report.timer \
    scriptmail-api.service; do
    [ -f "$unitdir/$u" ] || fail "$unitdir/$u missing"
    units+=("$unitdir/$u")
done
ok "units in $unitdir"
for u in multi-user.target.wants/scriptmail-relayd.service sockets.target.wants/scriptmail-submit.socket \
    timers.target.wants/scriptmail-sweep.timer timers.target.wants/scriptmail-report.timer; do
    [ -L "/etc/systemd/system/$u" ] || fail "$u not enabled"
done
ok "relayd, its submission socket and both timers enabled"
grep -qx 'ListenStream=/run/scriptmail/submit.sock' "$unitdir/scriptmail-submit.socket" ||
    fail "scriptmail-submit.socket does not listen on the default submit.socket"
grep -qx 'Service=scriptmail-relayd.service' "$unitdir/scriptmail-submit.socket" ||
    fail "scriptmail-submit.socket is not wired to scriptmail-relayd.service"
grep -qx 'Requires=scriptmail-submit.socket' "$unitdir/scriptmail-relayd.service" ||
    fail "scriptmail-relayd.service does not require its socket"
ok "scriptmail-submit.socket wired to scriptmail-relayd.service"
# The panel API opens a listener: the admin enables it (docs/api.md).
[ -e /etc/systemd/system/multi-user.target.wants/scriptmail-api.service ] &&
    fail "scriptmail-api.service is enabled by the package"
ok "scriptmail-api.service installed, not enabled"
# verify: syntax, unknown keys, and that every ExecStart program exists. It runs
# without a running systemd; any message at all counts as a failure.
if verify_out=$(SYSTEMD_LOG_COLOR=0 systemd-analyze verify "${units[@]}" 2>&1) && [ -z "$verify_out" ]; then
    ok "systemd-analyze verify: clean"
elif printf '%s' "$verify_out" | grep -qiE 'not been booted with systemd|Failed to (initialize|setup) manager|System has not been booted'; then
    echo "    NOTE: systemd-analyze verify cannot run in this container, skipped: $verify_out"
else
    printf '%s\n' "$verify_out" >&2
    fail "systemd-analyze verify reported problems"
fi
# The sandboxes of the long-running daemons, scored offline (systemd-analyze security).
for d in relayd api; do
    if sec_out=$(systemd-analyze security --offline=true --no-pager "$unitdir/scriptmail-$d.service" 2>&1); then
        score=$(printf '%s\n' "$sec_out" | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) \(.*\)$/\1 \2/p')
        ok "$d exposure level: ${score:-?}"
        case "$score" in
        *OK* | *LOW*) ;;
        *) fail "$d sandbox is weak: $score" ;;
        esac
    else
        echo "    NOTE: systemd-analyze security --offline unavailable: $(printf '%s' "$sec_out" | tail -n1)"
    fi
done

# ------------------------------------------------------------ mail end to end
step "smtp-sink, config, relayd"
free_port() {
    local p
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}
port=$(free_port) || fail "no free port"
api_port=$(free_port) || fail "no free port"
mkdir -p "$work/sink"
chown postfix "$work/sink"
smtp-sink -u postfix -d "$work/sink/%H%M%S." "127.0.0.1:$port" 64 >"$work/sink.log" 2>&1 &
sink_pid=$!
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    kill -0 "$sink_pid" 2>/dev/null || fail "smtp-sink did not start"
    sleep 0.1
done
ok "smtp-sink on 127.0.0.1:$port"

# An admin's edit of the conffile: relay to the sink. No syslog socket: relayd
# logs to its stderr (relayd.log), where the test reads how mail reached it.
cat >"$CONF" <<EOF
# Edited by test-package.sh: relay to smtp-sink.
[node]
domain = "node.test"
[relay]
host = "127.0.0.1"
port = $port
[log]
socket = "$work/no-syslog"
[api]
listen = "127.0.0.1:$api_port"
EOF
relayd_start() {
    runuser -u scriptmail -- /usr/sbin/scriptmail relayd >>"$work/relayd.log" 2>&1 &
    relayd_pid=$!
    # Up when its wake-up and submission sockets exist (it binds them after
    # opening the queue). A socket left by an earlier relayd is replaced.
    rm -f /run/scriptmail/submit.sock
    for _ in $(seq 50); do
        [ -S "$QUEUE/relayd.sock" ] && [ -S /run/scriptmail/submit.sock ] && break
        kill -0 "$relayd_pid" 2>/dev/null || fail "relayd exited at once"
        sleep 0.1
    done
    kill -0 "$relayd_pid" 2>/dev/null || fail "relayd exited at once"
    expect "submission socket" "$(stat_of /run/scriptmail/submit.sock)" "scriptmail:scriptmail 666"
    ok "relayd running as scriptmail (pid $relayd_pid)"
}
relayd_stop() {
    kill -0 "$relayd_pid" 2>/dev/null || fail "relayd (pid $relayd_pid) died on its own"
    kill "$relayd_pid"
    wait "$relayd_pid" || true
    relayd_pid=
}
relayd_start

useradd -m -s /bin/sh "$TEST_USER"
php_mail() { # SUBJECT
    runuser -u "$TEST_USER" -- php -d "sendmail_path=$SENDMAIL -t -i" \
        -r 'exit(mail("rcpt@example.org", $argv[1], "Sent by test-package.sh.\n") ? 0 : 1);' "$1"
}
db_count() { # WHERE
    # As the queue owner: a -shm file created by root would lock sendmail out.
    runuser -u scriptmail -- sqlite3 "$QUEUE/queue.db" "SELECT count(*) FROM messages WHERE $1"
}

step "PHP mail() as $TEST_USER arrives at the sink"
php_mail "pkgtest one" || fail "mail() returned false"
arrived=
for _ in $(seq 100); do
    if grep -lq '^Subject: pkgtest one' "$work"/sink/* 2>/dev/null; then
        arrived=yes
        break
    fi
    sleep 0.2
done
[ -n "$arrived" ] || fail "the mail did not reach smtp-sink"
msg=$(grep -l '^Subject: pkgtest one' "$work"/sink/*)
grep -qi "^Received: .*$TEST_USER" "$msg" || fail "no Received: header naming $TEST_USER in $msg"
ok "delivered, Received: names $TEST_USER"
grep -q "account=$TEST_USER .*status=queued via=socket" "$work/relayd.log" ||
    fail "relayd did not take the mail on its submission socket"
expect "maildrop files" "$(find "$QUEUE/maildrop" -type f | wc -l)" 0
ok "handed to relayd over /run/scriptmail/submit.sock"
for _ in $(seq 50); do
    [ "$(db_count "state = 'sent'")" = 1 ] && break
    sleep 0.1
done
expect "sent messages in the queue" "$(db_count "state = 'sent'")" 1
status=$(/usr/sbin/mailq-ctl status "$TEST_USER") || fail "mailq-ctl status $TEST_USER failed"
printf '%s\n' "$status" | sed 's/^/    | /'
json=$(/usr/sbin/mailq-ctl --json status "$TEST_USER") || fail "mailq-ctl --json status $TEST_USER failed"
printf '%s' "$json" | grep -Eq '"sent_total": *1[,}]' || fail "mailq-ctl --json status does not show 1 sent: $json"
ok "mailq-ctl status $TEST_USER shows it sent"

step "the panel API, started as its unit would start it"
runuser -u scriptmail -- /usr/sbin/scriptmail api >>"$work/api.log" 2>&1 &
api_pid=$!
# GET PATH [TOKEN]: the whole answer, over bash's /dev/tcp (no curl needed).
api_get() {
    local auth=
    [ -n "${2:-}" ] && auth="Authorization: Bearer $2"$'\r\n'
    exec 3<>"/dev/tcp/127.0.0.1/$api_port" || return 1
    printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sConnection: close\r\n\r\n' "$1" "$auth" >&3
    cat <&3
    exec 3<&-
}
for _ in $(seq 50); do
    api_get /healthz 2>/dev/null | head -n1 | grep -q '^HTTP/1.1 200' && break
    kill -0 "$api_pid" 2>/dev/null || fail "scriptmail api exited at once"
    sleep 0.1
done
api_get /healthz | head -n1 | grep -q '^HTTP/1.1 200' || fail "/healthz does not answer 200"
ok "/healthz answers 200"
token=$(/usr/sbin/mailq-ctl api-token add pkgtest --scope "account:$TEST_USER" | tail -n1)
case "$token" in sm_*) ;; *) fail "api-token add printed '$token' last" ;; esac
expect "/etc/scriptmail/api-tokens" "$(stat_of /etc/scriptmail/api-tokens)" "scriptmail:scriptmail 600"
grep -q "$token" /etc/scriptmail/api-tokens && fail "the token itself is in the tokens file"
answer=$(api_get "/hosting/web/$TEST_USER/email" "$token")
printf '%s' "$answer" | head -n1 | grep -q '^HTTP/1.1 200' || fail "the control panel's API: $answer"
printf '%s' "$answer" | grep -Eq '"sent": *1[,}]' || fail "the control panel's API does not show 1 sent: $answer"
ok "GET /hosting/web/$TEST_USER/email with an account token: 1 sent"
api_get "/hosting/web/root/email" "$token" | head -n1 | grep -q '^HTTP/1.1 404' ||
    fail "an account token sees another account"
ok "another account: 404"
kill "$api_pid"
wait "$api_pid" || true
api_pid=

step "block $TEST_USER: new mail is held"
/usr/sbin/mailq-ctl block "$TEST_USER" || fail "mailq-ctl block $TEST_USER failed"
php_mail "pkgtest held" || fail "mail() returned false while blocked"
expect "held messages" "$(db_count "state = 'held'")" 1
relayd_stop
ok "relayd stopped (as systemd stops it for an upgrade)"

step "reinstall the same .deb over itself"
dpkg -i "$deb" </dev/null
expect "held messages after reinstall" "$(db_count "state = 'held'")" 1
expect "sent messages after reinstall" "$(db_count "state = 'sent'")" 1
grep -q "^port = $port\$" "$CONF" || fail "the admin's edit of $CONF was lost"
ok "the admin's $CONF kept"
expect "$SENDMAIL after reinstall" "$(stat_of "$SENDMAIL")" "scriptmail:scriptmail 6755"
expect "$QUEUE after reinstall" "$(stat_of "$QUEUE")" "scriptmail:scriptmail 700"
# relayd is not running: sendmail writes the maildrop and starts a one-shot
# delivery, which imports it.
php_mail "pkgtest held two" || fail "mail() after reinstall returned false"
for _ in $(seq 100); do
    [ "$(db_count "state = 'held'")" = 2 ] && break
    sleep 0.1
done
expect "held messages after another mail" "$(db_count "state = 'held'")" 2
expect "maildrop files after the import" "$(find "$QUEUE/maildrop" -type f | wc -l)" 0
relayd_start

step "dpkg -r: programs gone, data and config kept"
relayd_stop
dpkg -r scriptmail </dev/null
expect "package state" "$(pkg_state)" config-files
for f in /usr/sbin/scriptmail /usr/sbin/mailq-ctl "$SENDMAIL" /usr/share/man/man8/scriptmail.8.gz; do
    { [ -e "$f" ] || [ -L "$f" ]; } && fail "$f still there after dpkg -r"
done
ok "programs and man pages removed"
[ -f "$CONF" ] || fail "$CONF removed by dpkg -r"
grep -q "^port = $port\$" "$CONF" || fail "$CONF changed by dpkg -r"
expect "held messages after dpkg -r" "$(db_count "state = 'held'")" 2
getent passwd scriptmail >/dev/null || fail "user removed by dpkg -r"
ok "config, queue and user kept"
expect "/usr/sbin/sendmail still Postfix's" "$(dpkg -S /usr/sbin/sendmail)" "$sendmail_owner_before"

step "dpkg --purge: user, data and config gone"
dpkg --purge scriptmail </dev/null
case "$(pkg_state)" in
"" | not-installed) ok "package purged" ;;
*) fail "package state after purge: $(pkg_state)" ;;
esac
for p in "$QUEUE" /etc/scriptmail /run/scriptmail; do
    [ -e "$p" ] && fail "$p still there after purge"
done
getent passwd scriptmail >/dev/null && fail "user scriptmail still there after purge"
getent group scriptmail >/dev/null && fail "group scriptmail still there after purge"
dpkg-statoverride --list "$SENDMAIL" >/dev/null && fail "statoverride still registered after purge"
if ls /etc/systemd/system/*/scriptmail-* >/dev/null 2>&1; then
    fail "unit symlinks left after purge: $(ls /etc/systemd/system/*/scriptmail-*)"
fi
ok "nothing left"
expect "/usr/sbin/sendmail still Postfix's" "$(dpkg -S /usr/sbin/sendmail)" "$sendmail_owner_before"
expect "/usr/sbin/sendmail unchanged" "$(sha256sum /usr/sbin/sendmail)" "$sendmail_sum_before"

step "package test passed in $((SECONDS - t0))s"
