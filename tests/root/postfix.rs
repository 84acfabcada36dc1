//! A real MTA's bounces: a private Postfix instance whose pipe transport
//! runs `scriptmail bounce`, as docs/bounces.md tells admins to set it up.
//! Root: Postfix starts as root, refuses to pipe into a command as root,
//! and so runs the scriptmail side as `nobody`.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::fake_smtp::{Action, FakeSmtp, free_port};
use crate::util::{Env, SCRIPTMAIL, SENDMAIL, assert_ok, run_with_input, stderr, wait_until};

/// What this test needs root for (`crate::as_root`).
const NEEDS: &str = "a private Postfix piping bounces into scriptmail run as nobody";

/// `nobody`: Postfix's pipe(8) refuses to run a command as root, so the
/// Postfix test runs the whole scriptmail side as this user.
const NOBODY: u32 = 65534;
const LONG: Duration = Duration::from_secs(60);

/// A private Postfix (`postfix -c DIR start`) listening on 127.0.0.1:`port`:
/// `test.example` is local with no recipient table, so an unknown user is
/// accepted and then bounced by local(8); `reject.example` is relayed to a
/// given SMTP server; `node1.example.net` (the VERP domain) goes to the
/// `scriptmail` pipe transport, exactly as docs/bounces.md tells admins.
/// Stopped on drop.
struct Postfix {
    etc: PathBuf,
    data: PathBuf,
}

impl Postfix {
    fn start(base: &Path, port: u16, reject_port: u16, pipe: &str) -> Postfix {
        let etc = base.join("postfix-etc");
        let queue = base.join("postfix-queue");
        let data = base.join("postfix-data");
        for d in [&etc, &queue, &data] {
            std::fs::create_dir_all(d).expect("postfix dirs");
        }
        // data_directory must belong to the mail owner (master.lock).
        chown(&data, "postfix");
        let main_cf = format!(
            "compatibility_level = 3.6\n\
             queue_directory = {queue}\n\
             data_directory = {data}\n\
             myhostname = mx.test.example\n\
             mydomain = test.example\n\
             myorigin = $myhostname\n\
             mydestination = test.example\n\
             inet_interfaces = 127.0.0.1\n\
             inet_protocols = ipv4\n\
             mynetworks = 127.0.0.0/8\n\
             local_recipient_maps =\n\
             alias_maps =\n\
             alias_database =\n\
             relayhost =\n\
             append_dot_mydomain = no\n\
             smtputf8_enable = no\n\
             biff = no\n\
             smtp_dns_support_level = disabled\n\
             maillog_file = {data}/maillog\n\
             maillog_file_prefixes = {base}\n\
             transport_maps = inline:{{ node1.example.net=scriptmail:, reject.example=smtp:[127.0.0.1]:{reject_port} }}\n",
            queue = queue.display(),
            data = data.display(),
            base = base.display(),
        );
        let master_cf = format!(
            "127.0.0.1:{port} inet n - n - - smtpd\n\
             pickup    unix  n       -       n       60      1       pickup\n\
             cleanup   unix  n       -       n       -       0       cleanup\n\
             qmgr      unix  n       -       n       300     1       qmgr\n\
             rewrite   unix  -       -       n       -       -       trivial-rewrite\n\
             bounce    unix  -       -       n       -       0       bounce\n\
             defer     unix  -       -       n       -       0       bounce\n\
             trace     unix  -       -       n       -       0       bounce\n\
             verify    unix  -       -       n       -       1       verify\n\
             flush     unix  n       -       n       1000?   0       flush\n\
             proxymap  unix  -       -       n       -       -       proxymap\n\
             smtp      unix  -       -       n       -       -       smtp\n\
             showq     unix  n       -       n       -       -       showq\n\
             error     unix  -       -       n       -       -       error\n\
             retry     unix  -       -       n       -       -       error\n\
             discard   unix  -       -       n       -       -       discard\n\
             local     unix  -       n       n       -       -       local\n\
             anvil     unix  -       -       n       -       1       anvil\n\
             scache    unix  -       -       n       -       1       scache\n\
             postlog   unix-dgram n  -       n       -       1       postlogd\n\
             {pipe}\n"
        );
        std::fs::write(etc.join("main.cf"), main_cf).expect("main.cf");
        std::fs::write(etc.join("master.cf"), master_cf).expect("master.cf");
        let out = Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(&etc)
            .arg("start")
            .output()
            .expect("run postfix start");
        let pf = Postfix { etc, data };
        assert!(
            out.status.success(),
            "postfix start failed: {}{}\nmaillog:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            pf.maillog()
        );
        // Ready once smtpd's port answers.
        wait_until(Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        pf
    }

    fn maillog(&self) -> String {
        std::fs::read_to_string(self.data.join("maillog")).unwrap_or_default()
    }

    fn running(&self) -> bool {
        Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(&self.etc)
            .arg("status")
            .output()
            .is_ok_and(|o| o.status.success())
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        // `postfix stop` signals this instance's own master (its pid file),
        // nothing else.
        let _ = Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(&self.etc)
            .arg("stop")
            .output();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.running() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn chown(path: &Path, user: &str) {
    let out = Command::new("chown")
        .arg(user)
        .arg(path)
        .output()
        .expect("chown");
    assert!(
        out.status.success(),
        "chown {user} {}: {}",
        path.display(),
        stderr(&out)
    );
}

/// Let `nobody` run scriptmail on this environment: the queue belongs to
/// nobody (so every program, root's included, works as nobody), the test
/// directory is searchable, the syslog socket writable, and the programs
/// are copied where nobody can run them (the build tree may sit below a
/// directory only root can search). Returns (sendmail, scriptmail).
fn share_with_nobody(env: &Env) -> (PathBuf, PathBuf) {
    // Like /tmp (sticky, writable by all): relayd, as the queue owner nobody, binds its
    // submit socket here.
    std::fs::set_permissions(env.path(), std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    std::fs::set_permissions(
        env.path().join("syslog.sock"),
        std::fs::Permissions::from_mode(0o666),
    )
    .expect("chmod socket");
    let out = Command::new("chown")
        .arg(format!("{NOBODY}:{NOBODY}"))
        .arg(&env.queue)
        .output()
        .expect("chown");
    assert_ok(&out);
    let bin = env.path().join("bin");
    std::fs::create_dir(&bin).expect("bin dir");
    let mut copies = Vec::new();
    for program in [SENDMAIL.path(), Path::new(SCRIPTMAIL)] {
        let to = bin.join(program.file_name().expect("name"));
        std::fs::copy(program, &to).expect("copy program");
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        copies.push(to);
    }
    (copies[0].clone(), copies[1].clone())
}

/// `sendmail -t` as uid `uid`, from the program at `sendmail`.
fn submit_as(env: &Env, sendmail: &Path, uid: u32, message: &[u8]) -> Output {
    let mut cmd = Command::new(sendmail);
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("SCRIPTMAIL_CONFIG", &env.config)
        .current_dir(env.path())
        .arg("-t")
        .arg("-i")
        .uid(uid)
        .gid(uid);
    run_with_input(&mut cmd, message)
}

/// The whole loop with a real MTA: scriptmail relays (VERP sender) to a
/// private Postfix; Postfix bounces an unknown local user and a recipient
/// its next hop refuses with 550, writes real RFC 3464 reports to the VERP
/// address, and its pipe transport runs `scriptmail bounce
/// ${original_recipient}` as the docs say. The right messages and
/// recipients end up in error; the accepted recipient does not.
#[test]
fn postfix_bounces_are_piped_into_scriptmail_bounce() {
    if !crate::as_root(NEEDS) {
        return;
    }
    let next_hop = FakeSmtp::start();
    next_hop.on(
        "RCPT",
        Some("bob@reject.example"),
        None,
        Action::reply(
            550,
            "5.1.1 <bob@reject.example>: Recipient address rejected: User unknown",
        ),
    );
    let pf_port = free_port();
    let env = Env::with_sections(pf_port, "bounce.verp = true", "");
    let (sendmail, scriptmail) = share_with_nobody(&env);
    let pipe = format!(
        "scriptmail unix - n n - - pipe\n  flags=Rq user=nobody argv={} --config {} bounce ${{original_recipient}}",
        scriptmail.display(),
        env.config.display()
    );
    let postfix = Postfix::start(env.path(), pf_port, next_hop.port(), &pipe);
    let _relayd = env.relayd();

    let first = b"To: nosuchuser@test.example, alice@reject.example\r\n\
Subject: order 1\r\n\r\nHello.\r\n";
    assert_ok(&submit_as(&env, &sendmail, NOBODY, first));
    let second = b"To: bob@reject.example\r\nSubject: order 2\r\n\r\nHello.\r\n";
    assert_ok(&submit_as(&env, &sendmail, NOBODY, second));
    let q = env.qids();
    assert_eq!(q.len(), 2);

    let seen = std::cell::Cell::new(0);
    let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until(LONG, || {
            seen.set(env.errors().len());
            seen.get() >= 2
        })
    }));
    if waited.is_err() {
        panic!(
            "{} mail(s) in error after {LONG:?}\nscriptmail log:\n{}\npostfix maillog:\n{}",
            seen.get(),
            env.log_lines().join("\n"),
            postfix.maillog()
        );
    }
    let mut errs = env.errors();
    errs.sort();
    let mut expected = vec![
        (q[0].clone(), "nosuchuser@test.example"),
        (q[1].clone(), "bob@reject.example"),
    ];
    expected.sort();
    assert_eq!(
        errs.iter()
            .map(|e| (e.0.clone(), e.1.as_str()))
            .collect::<Vec<_>>(),
        expected,
        "{errs:?}"
    );
    assert!(errs.iter().all(|e| e.2 == "dsn"), "{errs:?}");
    let local = errs
        .iter()
        .find(|e| e.1 == "nosuchuser@test.example")
        .unwrap();
    assert_eq!(local.3, "5.1.1 unknown user: \"nosuchuser\"");
    let remote = errs.iter().find(|e| e.1 == "bob@reject.example").unwrap();
    assert!(
        remote
            .3
            .contains("550 5.1.1 <bob@reject.example>: Recipient address rejected"),
        "{}",
        remote.3
    );
    // alice was delivered by Postfix's next hop and stays sent.
    assert_eq!(
        next_hop.wait_for(1, LONG)[0].rcpt_to,
        ["alice@reject.example"]
    );
    let alice: String = env
        .db()
        .query_row(
            "SELECT state FROM recipients WHERE rcpt = 'alice@reject.example'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(alice, "sent");
    assert_eq!(env.error_total("nobody"), 2);
    let daily_errors: i64 = env
        .db()
        .query_row("SELECT sum(errors) FROM daily", [], |r| r.get(0))
        .unwrap();
    assert_eq!(daily_errors, 2);
    // The bounces really came from Postfix through the pipe, and were logged.
    let maillog = postfix.maillog();
    assert!(maillog.contains("relay=scriptmail"), "{maillog}");
    assert!(
        maillog.contains("sender non-delivery notification"),
        "{maillog}"
    );
    let log = env.log_lines().join("\n");
    assert!(
        log.contains("relay=bounce dsn=5.1.1 status=bounced format=rfc3464 matched=verp"),
        "{log}"
    );
    // And the admin sees them.
    let out = env.ctl(&["errors", "nobody"]);
    assert_ok(&out);
    let text = crate::util::stdout(&out);
    assert!(
        text.contains("nosuchuser@test.example") && text.contains("bob@reject.example"),
        "{text}"
    );
}
