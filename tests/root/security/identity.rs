//! Identity: each pool's mail is its own account's, nothing a tenant controls picks the
//! account, the uid map and allow-list decide who submits, and a wrong installation
//! refuses to run.

use super::*;

/// Two pools, two users, one installed set-uid sendmail: each pool's mail belongs to its
/// own account (in the queue and in the `Received:` trace the smarthost gets), and blocking
/// one account holds that account's mail only.
#[test]
fn fpm_pools_send_as_their_own_accounts_and_a_block_holds_only_one() {
    if !crate::as_root(NEEDS) {
        return;
    }
    let sink = Sink::start();
    let inst = Install::new(sink.port());
    let (a, b) = (inst.a().clone(), inst.b().clone());
    let www = inst.state.path().join("www");
    fs::create_dir(&www).expect("www");
    let script = www.join("mail.php");
    fs::write(&script, MAIL_PHP).expect("mail.php");
    let fpm = Fpm::start(&inst, &[&a, &b]);

    for (user, tag) in [(&a, "fpm-a1"), (&b, "fpm-b1")] {
        let page = fpm.request(user, &script, &format!("tag={tag}"));
        assert!(page.contains("mail-ok"), "{tag}: PHP mail() failed: {page}");
    }
    let got = sink.wait_for(2, WAIT);
    for (user, tag) in [(&a, "fpm-a1"), (&b, "fpm-b1")] {
        let rows = inst.messages(tag);
        assert_eq!(rows.len(), 1, "{tag}: {rows:?}");
        assert_eq!(
            rows[0].0, user.name,
            "{tag} attributed to the wrong account"
        );
        assert_eq!(rows[0].2, format!("{}@node1.example.net", user.name));
        let m = got
            .iter()
            .find(|m| m.header("Subject").as_deref() == Some(&format!("fpm {tag}")))
            .unwrap_or_else(|| panic!("{tag} not at the smarthost"));
        let received = m.header("Received").expect("Received header");
        assert!(
            received.contains(&format!("from userid {} account {}", user.uid, user.name)),
            "{tag}: Received: {received}"
        );
        assert_eq!(m.mail_from, format!("{}@node1.example.net", user.name));
    }

    // Block a: its next mail is held (PHP still sees success), b's still flows.
    let out = inst.ctl(&["block", TENANT_A]);
    assert_exit(&out, 0, "mailq-ctl block");
    for (user, tag) in [(&a, "fpm-a2"), (&b, "fpm-b2")] {
        let page = fpm.request(user, &script, &format!("tag={tag}"));
        assert!(page.contains("mail-ok"), "{tag}: PHP mail() failed: {page}");
    }
    let got = sink.wait_for(3, WAIT);
    assert!(
        got.iter()
            .any(|m| m.header("Subject").as_deref() == Some("fpm fpm-b2")),
        "b's mail must still be relayed while a is blocked"
    );
    assert_eq!(inst.messages("fpm-a2")[0].1, "held");
    assert_eq!(inst.account_state(TENANT_A).as_deref(), Some("ko"));
    assert_eq!(inst.account_state(TENANT_B).as_deref(), Some("ok"));
    assert!(
        !got.iter()
            .any(|m| m.header("Subject").as_deref() == Some("fpm fpm-a2")),
        "held mail reached the smarthost"
    );

    // Unblock: the held mail was kept, and now goes out.
    let out = inst.ctl(&["unblock", TENANT_A]);
    assert_exit(&out, 0, "mailq-ctl unblock");
    let got = sink.wait_for(4, WAIT);
    assert!(
        got.iter()
            .any(|m| m.header("Subject").as_deref() == Some("fpm fpm-a2"))
    );
}

/// The set-uid sendmail switches real, effective, saved and filesystem uid and gid to the
/// service user before it reads the message, holds no queue lock while it waits, and has
/// undone what the caller could lower and it can raise: soft resource limits and the idle
/// I/O class (the same wrapper leaves them lowered on an ordinary program: the control).
#[test]
fn sendmail_runs_as_the_service_user_with_every_id_switched() {
    if !crate::as_root(NEEDS) {
        return;
    }
    let inst = Install::new(closed_port());
    let (a, svc) = (inst.a().clone(), inst.svc().clone());
    // A first message creates the queue database.
    assert_exit(
        &inst.submit_as(&a, &["-t", "-i"], &message("creds-1")),
        0,
        "first",
    );
    // The caller's soft CPU and file limits lowered, I/O class idle, two extra descriptors
    // open (7 on /etc/passwd, 8 on a file of its own); sh, prlimit and ionice exec the
    // program, so the pid stays the same.
    let start = |program: &Path, args: &[&str], wait_uid: u32| -> Guard {
        let g = Guard(Some(
            inst.as_user(&a, "/bin/sh")
                .args([
                    "-c",
                    "exec 7</etc/passwd 8>>inherited.txt; exec \"$@\"",
                    "sh",
                ])
                .args([
                    "prlimit",
                    "--cpu=100:",
                    "--nofile=64:",
                    "--",
                    "ionice",
                    "-c",
                    "3",
                ])
                .arg(program)
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn"),
        ));
        let pid = g.pid();
        poll(&format!("{} to start", program.display()), || {
            let argv0 = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            (argv0.starts_with(program.as_os_str().as_encoded_bytes())
                && credentials(pid)?.0 == [wait_uid; 4])
                .then_some(())
        });
        g
    };
    // Descriptors still open on what the caller opened.
    let inherited = |pid: u32| -> Vec<PathBuf> {
        let mine = [
            PathBuf::from("/etc/passwd"),
            inst.home(&a).join("inherited.txt"),
        ];
        fs::read_dir(format!("/proc/{pid}/fd"))
            .expect("fd dir")
            .flatten()
            .filter_map(|e| fs::read_link(e.path()).ok())
            .filter(|t| mine.contains(t))
            .collect()
    };
    // soft == hard for the two limits, and the I/O class as `ionice -p` reports it.
    let inspect = |pid: u32| -> (bool, String) {
        let limits = fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
        let raised = ["Max cpu time", "Max open files"].iter().all(|name| {
            let line = limits.lines().find(|l| l.starts_with(name)).expect(name);
            let v: Vec<&str> = line[name.len()..].split_whitespace().collect();
            v[0] == v[1]
        });
        let io = run_timed(
            Command::new("ionice").args(["-p", &pid.to_string()]),
            None,
            WAIT,
        );
        (raised, text(&io.stdout))
    };

    let control = start(Path::new("/bin/cat"), &[], a.uid);
    let (raised, io) = inspect(control.pid());
    assert!(
        !raised && io.contains("idle"),
        "the wrapper must degrade cat: {io}"
    );
    assert_eq!(
        inherited(control.pid()).len(),
        2,
        "cat keeps the caller's descriptors"
    );
    drop(control);

    let mut g = start(&inst.sendmail, &["-t", "-i"], svc.uid);
    let (uids, gids) = credentials(g.pid()).expect("credentials");
    assert_eq!(uids, [svc.uid; 4], "Uid: real effective saved fs");
    assert_eq!(gids, [svc.gid; 4], "Gid: real effective saved fs");
    let (raised, io) = inspect(g.pid());
    assert!(raised, "soft limits must be back at the hard ones");
    assert!(!io.contains("idle"), "idle I/O class must be reset: {io}");
    assert_eq!(
        inherited(g.pid()),
        Vec::<PathBuf>::new(),
        "inherited descriptors"
    );

    // While it waits for its input it holds no lock: a writer gets in (the busy timeout
    // only covers the one-shot delivery of the first message; sendmail waits forever).
    inst.db()
        .execute_batch("BEGIN IMMEDIATE; COMMIT;")
        .expect("a sendmail waiting for input must not hold the write lock");

    let mut stdin = g.child().stdin.take().expect("stdin");
    stdin.write_all(&message("creds-2")).expect("write");
    drop(stdin);
    let out = g.finish(WAIT);
    assert_exit(&out, 0, "sendmail");
    assert!(out.stdout.is_empty(), "nothing on stdout");
    let rows = inst.messages("creds-2");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, TENANT_A);

    // What it created in the queue belongs to the service user and nobody else.
    let m = fs::metadata(inst.queue.join("queue.db")).expect("queue.db");
    assert_eq!((m.uid(), m.mode() & 0o077), (svc.uid, 0), "queue.db");
}

/// Nothing a tenant controls picks the account: not `-f`, `--config`, `SCRIPTMAIL_CONFIG`,
/// other environment variables, an unknown `--account` option, nor argv[0].
#[test]
fn tenant_cannot_choose_its_account() {
    if !crate::as_root(NEEDS) {
        return;
    }
    let inst = Install::new(closed_port());
    let (a, b) = (inst.a().clone(), inst.b().clone());
    let home = inst.home(&a);
    // The tenant's own config: maps its uid to b and points at its own queue.
    let evil_queue = home.join("evil-queue");
    let evil = home.join("evil.toml");
    fs::write(
        &evil,
        format!(
            "queue.dir = \"{}\"\n[accounts.map]\n\"{}\" = \"{TENANT_B}\"\n",
            evil_queue.display(),
            a.uid
        ),
    )
    .expect("evil config");
    std::os::unix::fs::chown(&evil, Some(a.uid), Some(a.gid)).expect("chown");
    let sendmail = inst.sendmail.clone();

    let b_addr = format!("{TENANT_B}@node1.example.net");
    // (tag, command, expected exit)
    let cases: Vec<(&str, Command, i32)> = vec![
        (
            "acct-f",
            {
                let mut c = inst.as_user(&a, &sendmail);
                c.args(["-f", &b_addr, "-t", "-i"]);
                c
            },
            0,
        ),
        (
            "acct-config",
            {
                let mut c = inst.as_user(&a, &sendmail);
                c.arg("--config").arg(&evil).args(["-t", "-i"]);
                c
            },
            0,
        ),
        (
            "acct-env",
            {
                let mut c = inst.as_user(&a, &sendmail);
                c.env("SCRIPTMAIL_CONFIG", &evil)
                    .env("USER", TENANT_B)
                    .env("LOGNAME", TENANT_B)
                    .env("SUDO_USER", TENANT_B)
                    .env("SUDO_UID", b.uid.to_string())
                    .env("HOME", format!("/home/{TENANT_B}"))
                    .env("LD_PRELOAD", "/nonexistent/evil.so")
                    .env("SQLITE_TMPDIR", &home)
                    .args(["-t", "-i"]);
                c
            },
            0,
        ),
        (
            "acct-option",
            {
                let mut c = inst.as_user(&a, &sendmail);
                c.args(["--account", TENANT_B, "-t", "-i"]);
                c
            },
            64,
        ),
        // argv[0] = mailq-ctl: still the drop-in, still account a; "block" and b's name
        // are just recipients.
        (
            "acct-argv0",
            {
                let mut c = inst.as_user(&a, &sendmail);
                c.arg0("mailq-ctl").args(["-i", "block", TENANT_B]);
                c
            },
            0,
        ),
    ];
    for (tag, mut cmd, code) in cases {
        let out = run_timed(&mut cmd, Some(&message(tag)), WAIT);
        assert_exit(&out, code, tag);
        let rows = inst.messages(tag);
        if code == 0 {
            assert_eq!(rows.len(), 1, "{tag}: {rows:?}");
            assert_eq!(rows[0].0, TENANT_A, "{tag}: attributed to {rows:?}");
        } else {
            assert!(rows.is_empty(), "{tag}: refused but queued: {rows:?}");
        }
    }
    // -f changes the envelope sender, not the account.
    assert_eq!(inst.messages("acct-f")[0].2, b_addr);
    // A symlink named mailq-ctl to the set-uid binary is the same drop-in.
    let link = home.join("mailq-ctl");
    symlink(&sendmail, &link).expect("link");
    let out = run_timed(
        inst.as_user(&a, &link).args(["-i", "block", TENANT_B]),
        Some(&message("acct-link")),
        WAIT,
    );
    assert_exit(&out, 0, "mailq-ctl symlink");
    assert_eq!(inst.messages("acct-link")[0].0, TENANT_A);
    // A symlink named sendmail to the (not set-uid) scriptmail program runs as the tenant:
    // it cannot write the real queue at all.
    let link = home.join("sendmail");
    symlink(&inst.scriptmail, &link).expect("link");
    let out = run_timed(
        inst.as_user(&a, &link).args(["-t", "-i"]),
        Some(&message("acct-unpriv")),
        WAIT,
    );
    assert!(
        !out.status.success() && out.status.code() != Some(75),
        "unprivileged copy: {out:?}"
    );
    assert!(inst.messages("acct-unpriv").is_empty());

    // Nothing a did created or touched account b, and its own config's queue stayed empty.
    assert_eq!(inst.account_state(TENANT_B), None);
    assert!(!evil_queue.join("queue.db").exists());
}

/// The config's uid map and allow-list decide the account and who may submit; a refused
/// caller gets 77 and one clear line, and nothing is queued.
#[test]
fn uid_map_and_allow_list_decide_who_submits() {
    if !crate::as_root(NEEDS) {
        return;
    }
    let users = {
        let _l = lock_etc();
        users()
    };
    let inst = Install::with(
        closed_port(),
        "accounts.allow = [\"shop-a\"]",
        &format!("[accounts.map]\n\"{}\" = \"shop-a\"\n", users.a.uid),
    );
    let (a, b) = (inst.a().clone(), inst.b().clone());
    assert_exit(
        &inst.submit_as(&a, &["-t", "-i"], &message("map-a")),
        0,
        "a",
    );
    let rows = inst.messages("map-a");
    assert_eq!(rows[0].0, "shop-a");
    assert_eq!(rows[0].2, "shop-a@node1.example.net");

    let out = inst.submit_as(&b, &["-t", "-i"], &message("map-b"));
    assert_exit(&out, 77, "b is not on the allow-list");
    let err = text(&out.stderr);
    assert!(
        err.starts_with("sendmail: ") && err.lines().count() == 1 && err.contains("not allowed"),
        "{err:?}"
    );
    assert!(inst.messages("map-b").is_empty());
}

/// A wrongly installed `sendmail` refuses to run privileged (78, one clear line, nothing
/// queued): set-uid root would parse every tenant's input as root, and set-gid alone would
/// leave the process the caller's to stop inside the queue lock.
#[test]
fn a_wrong_installation_refuses_to_run() {
    if !crate::as_root(NEEDS) {
        return;
    }
    let inst = Install::new(closed_port());
    let (a, svc) = (inst.a().clone(), inst.svc().clone());
    let cases = [
        ("wrong-setuid-root", 0, 0, 0o4755, "set-uid root"),
        ("wrong-setgid-only", 0, svc.gid, 0o2755, "set-gid only"),
    ];
    for (name, owner, group, mode, why) in cases {
        let path = inst.bin.path().join(name);
        fs::copy(SENDMAIL, &path).expect("copy");
        std::os::unix::fs::chown(&path, Some(owner), Some(group)).expect("chown");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
        let out = run_timed(
            inst.as_user(&a, &path).args(["-t", "-i"]),
            Some(&message(name)),
            WAIT,
        );
        assert_exit(&out, 78, name);
        let err = text(&out.stderr);
        assert!(
            err.starts_with("sendmail: ") && err.lines().count() == 1 && err.contains(why),
            "{name}: {err:?}"
        );
        assert!(inst.messages(name).is_empty(), "{name} queued");
    }
}
