//! Queue protection: a tenant cannot read the queue, run the admin commands, or damage
//! the queue with hostile limits and closed descriptors.

use super::*;

/// Perl probe: the errno of opening each path for reading (0 if it opened).
const OPEN_PROBE: &str = r#"
for my $p (@ARGV) {
    my $e = 0;
    if (-d $p) { opendir(my $d, $p) or $e = $! + 0 } else { open(my $f, '<', $p) or $e = $! + 0 }
    print "$p=$e\n";
}
"#;

/// The queue is the service user's alone: a tenant cannot open the database (or anything
/// else in the queue directory), and `mailq` shows a tenant its own mail only.
#[test]
fn tenant_cannot_read_the_queue() {
    if !crate::as_root(NEEDS) {
        return;
    }
    let inst = Install::new(closed_port());
    let (a, b, svc) = (inst.a().clone(), inst.b().clone(), inst.svc().clone());
    assert_exit(
        &inst.submit_as(&a, &["-t", "-i"], &message("read-a")),
        0,
        "a",
    );
    assert_exit(
        &inst.submit_as(&b, &["-t", "-i"], &message("read-b")),
        0,
        "b",
    );
    inst.settle();

    let dir = fs::metadata(&inst.queue).expect("queue dir");
    assert_eq!((dir.uid(), dir.mode() & 0o777), (svc.uid, 0o700));
    let db = fs::metadata(inst.queue.join("queue.db")).expect("queue.db");
    assert_eq!((db.uid(), db.mode() & 0o077), (svc.uid, 0));

    let paths: Vec<PathBuf> = [
        "queue.db",
        "queue.db-wal",
        "queue.db-shm",
        "relayd.sock",
        "maildrop",
        "slots",
    ]
    .iter()
    .map(|n| inst.queue.join(n))
    .chain([inst.queue.clone()])
    .collect();
    // Control: root (the probe itself works) opens the database.
    let root = run_timed(
        Command::new(PERL)
            .args(["-e", OPEN_PROBE])
            .arg(inst.queue.join("queue.db")),
        None,
        WAIT,
    );
    assert!(text(&root.stdout).ends_with("queue.db=0\n"), "{root:?}");
    let out = run_timed(
        inst.as_user(&b, PERL).args(["-e", OPEN_PROBE]).args(&paths),
        None,
        WAIT,
    );
    let report = text(&out.stdout);
    for p in &paths {
        assert!(
            report.contains(&format!("{}={}\n", p.display(), libc::EACCES)),
            "{} must be EACCES for a tenant: {report}",
            p.display()
        );
    }
    // SQLite itself, as the tenant, cannot open it either.
    let out = run_timed(
        inst.as_user(&b, "sqlite3")
            .arg(inst.queue.join("queue.db"))
            .arg("SELECT count(*) FROM messages"),
        None,
        WAIT,
    );
    assert!(!out.status.success(), "sqlite3 as a tenant: {out:?}");

    // `mailq` (argv[0], through a symlink in the tenant's directory) and `-bp`: own mail only.
    let (qa, qb) = (inst.qid("read-a"), inst.qid("read-b"));
    let link = inst.home(&b).join("mailq");
    symlink(&inst.sendmail, &link).expect("mailq link");
    for out in [
        run_timed(&mut inst.as_user(&b, &link), None, WAIT),
        run_timed(inst.as_user(&b, &inst.sendmail).arg("-bp"), None, WAIT),
    ] {
        assert_exit(&out, 0, "mailq");
        let listing = text(&out.stdout);
        assert!(listing.contains(&qb), "own mail listed: {listing}");
        assert!(
            !listing.contains(&qa),
            "another account's mail listed: {listing}"
        );
    }
}

/// `mailq-ctl`, `relayd` and `bounce` refuse a tenant (77, one clear line), however it is
/// reached; root can use them.
#[test]
fn tenant_cannot_run_the_admin_commands() {
    if !crate::as_root(NEEDS) {
        return;
    }
    let inst = Install::new(closed_port());
    let a = inst.a().clone();
    // The account exists once it has sent; root blocks it, its next mail is held.
    assert_exit(
        &inst.submit_as(&a, &["-t", "-i"], &message("admin-a1")),
        0,
        "a",
    );
    assert_exit(&inst.ctl(&["block", TENANT_A]), 0, "root blocks a");
    assert_exit(
        &inst.submit_as(&a, &["-t", "-i"], &message("admin-a2")),
        0,
        "a",
    );

    let link = inst.bin.path().join("mailq-ctl");
    let config = config::DEFAULT_PATH;
    let attempts: Vec<(&str, Command)> = vec![
        ("mailq-ctl status", {
            let mut c = inst.as_user(&a, &link);
            c.arg("status");
            c
        }),
        ("mailq-ctl unblock (own account)", {
            let mut c = inst.as_user(&a, &link);
            c.args(["unblock", TENANT_A]);
            c
        }),
        ("scriptmail mailq-ctl block b", {
            let mut c = inst.as_user(&a, &inst.scriptmail);
            c.args(["mailq-ctl", "block", TENANT_B]);
            c
        }),
        ("--config the real file", {
            let mut c = inst.as_user(&a, &inst.scriptmail);
            c.args(["--config", config, "mailq-ctl", "purge", TENANT_A, "--yes"]);
            c
        }),
        ("SCRIPTMAIL_CONFIG the real file", {
            let mut c = inst.as_user(&a, &inst.scriptmail);
            c.env("SCRIPTMAIL_CONFIG", config).args([
                "mailq-ctl",
                "set",
                TENANT_A,
                "--max-per-day",
                "0",
            ]);
            c
        }),
        ("relayd", {
            let mut c = inst.as_user(&a, &inst.scriptmail);
            c.args(["relayd", "--once"]);
            c
        }),
        ("bounce", {
            let mut c = inst.as_user(&a, &inst.scriptmail);
            c.arg("bounce");
            c
        }),
    ];
    for (what, mut cmd) in attempts {
        let out = run_timed(&mut cmd, Some(b""), WAIT);
        assert_exit(&out, 77, what);
        let err = text(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{what}: one line: {err:?}");
        assert!(
            err.contains("permission denied") && err.contains(&format!("root and {SERVICE}")),
            "{what}: a clear message naming who may: {err:?}"
        );
    }
    assert_eq!(inst.account_state(TENANT_A).as_deref(), Some("ko"));
    assert_eq!(inst.messages("admin-a2")[0].1, "held");
    assert_eq!(inst.account_state(TENANT_B), None);
    // Root can (the refusals above are about the caller, not a broken command).
    assert_exit(&inst.ctl(&["status", TENANT_A]), 0, "root status");
}

/// A tenant's hostile limits and closed descriptors make its own submission fail cleanly
/// (a sysexits status, one line on stderr, nothing queued) or succeed; the queue stays
/// intact either way.
#[test]
fn hostile_limits_and_closed_descriptors_never_damage_the_queue() {
    if !crate::as_root(NEEDS) {
        return;
    }
    let inst = Install::new(closed_port());
    let (a, b) = (inst.a().clone(), inst.b().clone());
    assert_exit(
        &inst.submit_as(&b, &["-t", "-i"], &message("limits-base")),
        0,
        "base",
    );
    let body = |db: &rusqlite::Connection| -> Vec<u8> {
        db.query_row(
            "SELECT b.data FROM bodies b JOIN messages m ON m.id = b.message_id \
             WHERE instr(m.subject, 'limits-base') > 0",
            [],
            |r| r.get(0),
        )
        .expect("base body")
    };
    let before = body(&inst.db());
    let home = inst.home(&a);
    let sendmail = inst.sendmail.to_str().expect("utf-8").to_string();
    let err_file = home.join("stderr.log");

    // (tag, prlimit options, shell redirections)
    let cases: &[(&str, &[&str], &str)] = &[
        ("lim-fsize0", &["--fsize=0"], ""),
        ("lim-fsize1", &["--fsize=1"], ""),
        ("lim-fsize4k", &["--fsize=4096"], ""),
        // stderr to a file it cannot grow: the error line cannot be written.
        ("lim-fsize-errfile", &["--fsize=1"], "2>>stderr.log"),
        ("lim-nofile4", &["--nofile=4"], ""),
        ("lim-nofile5", &["--nofile=5"], ""),
        ("lim-nofile8", &["--nofile=8"], ""),
        ("fd-stdout-closed", &[], ">&-"),
        ("fd-stdout-stderr-closed", &[], ">&- 2>&-"),
        ("fd-stdin-closed", &[], "<&-"),
    ];
    for (tag, limits, redirect) in cases {
        let shell = format!("exec \"$0\" -t -i {redirect}");
        let mut cmd = if limits.is_empty() {
            inst.as_user(&a, "/bin/sh")
        } else {
            let mut c = inst.as_user(&a, "prlimit");
            c.args(*limits).args(["--", "/bin/sh"]);
            c
        };
        cmd.args(["-c", &shell, &sendmail]);
        let out = run_timed(&mut cmd, Some(&message(tag)), WAIT);
        let code = out.status.code().unwrap_or_else(|| {
            panic!(
                "{tag}: killed by signal {:?}; stderr: {}",
                out.status.signal(),
                text(&out.stderr)
            )
        });
        assert!(
            [0, 64, 65, 69, 70, 71, 72, 73, 74, 77, 78].contains(&code),
            "{tag}: exit {code} is not a clean sysexits status: {}",
            text(&out.stderr)
        );
        let rows = inst.messages(tag);
        let err = text(&out.stderr);
        if code == 0 {
            assert_eq!(rows.len(), 1, "{tag}: exit 0 but not queued");
            assert_eq!(rows[0].0, TENANT_A);
        } else {
            assert!(
                rows.is_empty(),
                "{tag}: failed ({code}) but queued: {rows:?}"
            );
            if !redirect.contains("2>") {
                assert!(
                    err.starts_with("sendmail: ") && err.lines().count() == 1,
                    "{tag}: one line on stderr: {err:?}"
                );
            }
        }
        assert!(
            out.stdout.is_empty(),
            "{tag}: stdout {:?}",
            text(&out.stdout)
        );
    }
    // The descriptors the caller closed were not reused for anything that matters.
    assert_eq!(inst.messages("fd-stdout-closed").len(), 1);
    assert_eq!(inst.messages("fd-stdout-stderr-closed").len(), 1);
    // The file stderr pointed at was not grown past its limit.
    assert!(fs::metadata(&err_file).map(|m| m.len()).unwrap_or(0) <= 1);

    assert_eq!(inst.integrity(), "ok");
    assert_eq!(body(&inst.db()), before, "earlier mail changed");
    // And the queue still takes mail.
    assert_exit(
        &inst.submit_as(&a, &["-t", "-i"], &message("limits-after")),
        0,
        "after",
    );
    assert_eq!(inst.messages("limits-after").len(), 1);
}
