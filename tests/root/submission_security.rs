//! Submission through relayd with real Unix users (issue 13; SECURITY.md, "What a
//! caller can do to relayd"): the installed set-uid `sendmail` and PHP-FPM pools of two
//! tenants hand their mail to a relayd running as the service user; tenants talking to
//! the socket by hand cannot name another account or forge its trace; and one tenant's
//! stalled connections do not slow another's submissions. Uses the installation of
//! `security/` (and its lock on /etc/scriptmail).

use std::fs;
use std::process::Stdio;
use std::time::{Duration, Instant};

use scriptmail::handoff::frame::{self, Verb};
use scriptmail::os::{self, User};

use crate::security::{
    Fpm, Guard, Install, MAIL_PHP, PERL, TENANT_A, WAIT, assert_exit, message, poll, run_timed,
    text,
};
use crate::sink::Sink;

/// What these tests need root for (`crate::as_root`).
const NEEDS: &str =
    "real Unix users and their PHP-FPM pools submitting to relayd through the set-uid sendmail";

/// Perl client run as a tenant: connect to the socket ARGV[0], write stdin to it, close
/// the writing side and print every line relayd sends until it closes.
const RAW_CLIENT: &str = r#"
use strict;
use Socket;
my ($path) = @ARGV;
socket(my $s, PF_UNIX, SOCK_STREAM, 0) or die "socket: $!";
connect($s, pack_sockaddr_un($path)) or die "connect: $!";
binmode STDIN;
my $frames = do { local $/; <STDIN> };
defined(syswrite($s, $frames)) or die "write: $!";
shutdown($s, 1);
while (my $l = <$s>) { print $l }
"#;

/// Perl client run as a tenant that stops in the middle of a frame and waits.
const STALLED_CLIENT: &str = r#"
use strict;
use Socket;
socket(my $s, PF_UNIX, SOCK_STREAM, 0) or die "socket: $!";
connect($s, pack_sockaddr_un($ARGV[0])) or die "connect: $!";
syswrite($s, "MSG 1\nqid 0000") or die "write: $!";
sleep 3600;
"#;

/// A message frame claiming to come from `claimed`, with a `Received:` trace forged in
/// its name, then a LIST frame.
fn forged_frames(qid: &str, tag: &str, claimed: &User) -> Vec<u8> {
    let data = format!(
        "Received: by node1.example.net (scriptmail, from userid {} account {})\r\n\tid {qid}; now\r\nSubject: {tag}\r\n\r\nforged\r\n",
        claimed.uid, claimed.name
    );
    let uid = claimed.uid.to_string();
    let mut out = frame::encode_head(
        Verb::Msg,
        &[
            ("uid", &uid),
            ("account", &claimed.name),
            ("qid", qid),
            ("from", &format!("{}@node1.example.net", claimed.name)),
            ("rcpt", "rcpt@example.com"),
            ("subject", tag),
        ],
        data.len() as u64,
    );
    out.extend_from_slice(data.as_bytes());
    out.extend_from_slice(&frame::encode_head(Verb::List, &[("uid", &uid)], 0));
    out
}

/// Two PHP-FPM pools, each its own user, send through relayd's socket: each message is
/// committed by relayd under the pool's account (via the socket, not the maildrop), and
/// its trace at the smarthost names that account.
#[test]
fn fpm_pools_submit_through_the_socket() {
    if !crate::as_root(NEEDS) {
        return;
    }
    let sink = Sink::start();
    let inst = Install::new(sink.port());
    let (a, b) = (inst.a().clone(), inst.b().clone());
    let _relayd = inst.relayd();
    let www = inst.state.path().join("www");
    fs::create_dir(&www).expect("www");
    let script = www.join("mail.php");
    fs::write(&script, MAIL_PHP).expect("mail.php");
    let fpm = Fpm::start(&inst, &[&a, &b]);
    inst.log_lines();
    // Read as they come: the syslog socket queues only a few datagrams.
    let mut lines = Vec::new();
    for (user, tag) in [(&a, "sock-a1"), (&b, "sock-b1"), (&a, "sock-a2")] {
        let page = fpm.request(user, &script, &format!("tag={tag}"));
        lines.extend(inst.log_lines());
        assert!(page.contains("mail-ok"), "{tag}: PHP mail() failed: {page}");
        // Committed by relayd before mail() returned: no maildrop file, the row is there.
        assert!(inst.maildrop().is_empty(), "{tag} went to the maildrop");
        let rows = inst.messages(tag);
        assert_eq!(rows.len(), 1, "{tag}: {rows:?}");
        assert_eq!(
            rows[0].0, user.name,
            "{tag} attributed to the wrong account"
        );
    }
    let got = sink.wait_for(3, WAIT);
    lines.extend(inst.log_lines());
    for (user, tag) in [(&a, "sock-a1"), (&b, "sock-b1")] {
        let m = got
            .iter()
            .find(|m| m.header("Subject").as_deref() == Some(&format!("fpm {tag}")))
            .unwrap_or_else(|| panic!("{tag} not at the smarthost"));
        let received = m.header("Received").expect("Received header");
        assert!(
            received.contains(&format!("from userid {} account {}", user.uid, user.name)),
            "{tag}: Received: {received}"
        );
    }
    for user in [&a, &b] {
        let n = lines
            .iter()
            .filter(|l| {
                l.contains(&format!("account={} uid={} ", user.name, user.uid))
                    && l.contains("status=queued via=socket")
            })
            .count();
        let want = if user.uid == a.uid { 2 } else { 1 };
        assert_eq!(n, want, "{}: {lines:#?}", user.name);
    }
    assert!(
        !lines.iter().any(|l| l.contains("via=maildrop")),
        "{lines:#?}"
    );
}

/// Two tenants write frames by hand, each claiming to be the other (a `uid` and an
/// `account` field, a forged `Received:` naming the other, the other's address as
/// sender): relayd names each by its kernel uid — in the queue, in the trace on top of
/// the message, in what LIST shows.
#[test]
fn no_peer_can_name_another_account() {
    if !crate::as_root(NEEDS) {
        return;
    }
    let sink = Sink::start();
    let inst = Install::new(sink.port());
    let (a, b) = (inst.a().clone(), inst.b().clone());
    let _relayd = inst.relayd();
    let socket = inst.submit_socket();
    // Nothing is delivered (so nothing leaves the listing) until the checks
    // of what LIST shows are done.
    let paused = sink.pause();
    let cases = [
        (&a, &b, "6A00000000000000000A", "raw-from-a"),
        (&b, &a, "6B00000000000000000B", "raw-from-b"),
    ];
    for (me, other, qid, tag) in cases {
        let out = run_timed(
            inst.as_user(me, PERL).args(["-e", RAW_CLIENT]).arg(&socket),
            Some(&forged_frames(qid, tag, other)),
            WAIT,
        );
        assert!(out.status.success(), "{tag}: {}", text(&out.stderr));
        let answers = text(&out.stdout);
        let lines: Vec<&str> = answers.lines().collect();
        assert_eq!(lines.first(), Some(&"220 scriptmail 1"), "{answers}");
        assert_eq!(
            lines.get(1),
            Some(&format!("250 {qid} queued").as_str()),
            "{answers}"
        );
        // The listing is the connecting tenant's own: its message, not the other's.
        assert!(answers.contains(&format!("row {qid} ")), "{answers}");
        let other_qid = if me.uid == a.uid {
            cases[1].2
        } else {
            cases[0].2
        };
        assert!(!answers.contains(&format!("row {other_qid} ")), "{answers}");
        let rows = inst.messages(tag);
        assert_eq!(rows.len(), 1, "{tag}: {rows:?}");
        assert_eq!(rows[0].0, me.name, "{tag}: attributed to {rows:?}");
    }
    drop(paused);
    let got = sink.wait_for(2, WAIT);
    for (me, _, qid, tag) in cases {
        let m = got
            .iter()
            .find(|m| m.header("Subject").as_deref() == Some(tag))
            .unwrap_or_else(|| panic!("{tag} not at the smarthost"));
        // The first trace field is relayd's, naming the real sender; the forged one
        // is only the message's own text, below it.
        let received = m.header("Received").expect("Received");
        assert!(
            received.contains(&format!("from userid {} account {}", me.uid, me.name))
                && received.contains(&format!("id {qid};")),
            "{tag}: {received}"
        );
    }
    let db = inst.db();
    let accounts: i64 = db
        .query_row("SELECT count(*) FROM accounts", [], |r| r.get(0))
        .expect("accounts");
    assert_eq!(accounts, 2, "only the two real tenants");
}

/// Middle of a sorted list.
fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Tenant b holds 20 connections to relayd and stops them: ten of its own `sendmail`
/// processes waiting for their input (connected to relayd already) and ten hand-written
/// clients stopped in the middle of a frame, all SIGSTOPped. Tenant a's submissions
/// meanwhile take about as long as without them: their median stays within 3× the
/// median of unloaded runs measured in the same test, before and after.
#[test]
fn stalled_connections_of_another_uid_do_not_slow_an_account() {
    if !crate::as_root(NEEDS) {
        return;
    }
    let sink = Sink::start();
    let inst = Install::new(sink.port());
    let (a, b) = (inst.a().clone(), inst.b().clone());
    let relayd = inst.relayd();
    let time_one = |tag: &str| -> Duration {
        let start = Instant::now();
        let out = inst.submit_as(&a, &["-t", "-i"], &message(tag));
        let took = start.elapsed();
        assert_exit(&out, 0, tag);
        took
    };
    let mut unloaded: Vec<Duration> = (0..50).map(|i| time_one(&format!("calm-{i}"))).collect();

    let mut stalled: Vec<Guard> = Vec::new();
    for _ in 0..10 {
        stalled.push(Guard(Some(
            inst.as_user(&b, &inst.sendmail)
                .args(["-t", "-i"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("b's sendmail"),
        )));
        stalled.push(Guard(Some(
            inst.as_user(&b, PERL)
                .args(["-e", STALLED_CLIENT])
                .arg(inst.submit_socket())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("b's stalled client"),
        )));
    }
    // relayd serves all 20: one thread each.
    let threads = |pid: u32| -> usize {
        fs::read_dir(format!("/proc/{pid}/task"))
            .map(|d| {
                d.flatten()
                    .filter(|t| {
                        fs::read_to_string(t.path().join("comm"))
                            .is_ok_and(|c| c.trim() == "submit")
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    poll("relayd to serve b's 20 connections", || {
        (threads(relayd.pid()) >= 20).then_some(())
    });
    for g in &stalled {
        os::kill(g.pid() as i32, libc::SIGSTOP).expect("SIGSTOP");
    }

    let loaded: Vec<Duration> = (0..100).map(|i| time_one(&format!("loaded-{i}"))).collect();
    assert_eq!(
        threads(relayd.pid()),
        20,
        "b's connections were held all along"
    );
    drop(stalled);
    unloaded.extend((0..50).map(|i| time_one(&format!("calm-after-{i}"))));

    let (calm, busy) = (median(unloaded), median(loaded));
    let ratio = busy.as_secs_f64() / calm.as_secs_f64();
    eprintln!(
        "median submission of a: {calm:?} unloaded, {busy:?} with b's 20 stalled connections ({ratio:.2}x)"
    );
    assert!(
        ratio <= 3.0,
        "a's median went from {calm:?} to {busy:?} ({ratio:.2}x)"
    );
    let rows = inst.messages("loaded-");
    assert_eq!(rows.len(), 100);
    assert!(rows.iter().all(|r| r.0 == TENANT_A));
    assert!(inst.messages("calm-").iter().all(|r| r.0 == TENANT_A));
}
