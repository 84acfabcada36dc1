//! What a terminal and syslog are shown: the state's colour, and untrusted
//! text sanitised (issue 11).

use super::*;

/// On a terminal the state is coloured as a control panel shows it (green
/// sends, red does not; docs/mailq-ctl.md), and NO_COLOR turns it off.
#[test]
fn state_is_coloured_on_a_terminal_unless_no_color() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    send(&env, "a@example.com", "x");
    json(&env, &["block", me()], CHANGE);
    let on_tty = |no_color: bool| -> String {
        // script(1) gives the command a pseudo-terminal as stdout.
        let cmd = format!("{SCRIPTMAIL} mailq-ctl status");
        let mut c = std::process::Command::new("script");
        c.args(["-qefc", &cmd, "/dev/null"])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("SCRIPTMAIL_CONFIG", &env.config)
            .env("TERM", "xterm")
            .stdin(Stdio::null());
        if no_color {
            c.env("NO_COLOR", "1");
        }
        ok(c.output().expect("script"))
    };
    let coloured = on_tty(false);
    assert!(coloured.contains("\x1b[1;31mko\x1b[0m"), "{coloured:?}");
    let plain = on_tty(true);
    assert!(!plain.contains('\x1b') && plain.contains("ko"), "{plain:?}");
    json(&env, &["unblock", me()], CHANGE);
    assert!(on_tty(false).contains("\x1b[1;32mok\x1b[0m"));
}

// ---------------------------------------------------------------------------
// Issue 11: the queue side of the hardening.

/// The characters no output of untrusted text may carry (SECURITY.md):
/// controls, bidi overrides and isolates, line separators, zero-width.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}'
            | '\u{061C}' | '\u{2028}' | '\u{2029}' | '\u{200B}'..='\u{200D}' | '\u{2060}'
            | '\u{FEFF}')
}

/// Every line of `text` is free of [`unsafe_char`]s.
#[track_caller]
fn assert_clean_lines(text: &str, what: &str) {
    for line in text.lines() {
        assert!(
            !line.chars().any(unsafe_char),
            "{what}: unsafe character in {line:?}"
        );
    }
}

/// Item 11: untrusted text reaches no terminal and no syslog line with
/// control, bidi, line-separator or zero-width characters; JSON keeps the
/// exact strings (the panel escapes them itself).
#[test]
fn hostile_text_is_sanitised_in_tables_and_syslog() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    const HOSTILE: &str = "x\u{202e}txt\u{2066}iso\u{2069}\u{200b}zw\u{feff}\u{2028}ls\u{061c}\u{200f}\u{1b}[2J\u{85}";
    // Through the command line: a note, and a sending script's directory
    // (logged by sendmail) and subject (listed by `queue`).
    assert_ok(&env.ctl(&["set", me(), "--max-per-day", "100"]));
    assert_ok(&env.ctl(&["block", me(), "--note", HOSTILE]));
    let dir = env.path().join(format!("site{HOSTILE}"));
    std::fs::create_dir(&dir).unwrap();
    let message = "To: a@example.com\r\nSubject: inv\u{202e}txt\u{200b}oice\r\n\r\nbody\r\n";
    assert_ok(&run_with_input(
        env.sendmail().current_dir(&dir).args(["-t", "-i"]),
        message.as_bytes(),
    ));
    // Straight into the database: an actor and a note as an older build
    // or another writer might have stored them.
    env.settle();
    let c = rusqlite::Connection::open(env.queue.join("queue.db")).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c.execute(
        "INSERT INTO events (account_id, at, old_state, new_state, reason, actor, note, notified)
         SELECT id, 1, 'ko', 'ko', 'manual', ?1, ?1, 1 FROM accounts WHERE name = ?2",
        [HOSTILE, me()],
    )
    .unwrap();
    drop(c);

    let history = ok(env.ctl(&["history", me()]));
    assert_clean_lines(&history, "history");
    assert!(history.contains("x?txt?iso??zw??ls???[2J?"), "{history}");
    let status = ok(env.ctl(&["status", me()]));
    assert_clean_lines(&status, "status");
    let queue = ok(env.ctl(&["queue"]));
    assert_clean_lines(&queue, "queue");
    assert!(queue.contains("inv?txt?oice"), "{queue}");
    let h = json(&env, &["history", me()], HISTORY);
    assert!(
        h["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor"] == HOSTILE),
        "JSON keeps the exact string: {h}"
    );
    let logs = env.log_lines();
    assert!(logs.iter().any(|l| l.contains("note=")), "{logs:?}");
    assert!(logs.iter().any(|l| l.contains("cwd=")), "{logs:?}");
    for l in &logs {
        assert!(!l.chars().any(unsafe_char), "syslog: {l:?}");
    }
}
