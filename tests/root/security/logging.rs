//! Logging: hostile strings reach syslog as one clean line whose fields parse back.

use super::*;

/// Split a `key=value key="quoted \" value" key=<angle value>` log line into pairs.
pub(crate) fn fields(line: &str) -> Vec<(String, String)> {
    let body = line.split_once("]: ").map_or(line, |(_, b)| b);
    let mut out = Vec::new();
    let mut chars = body.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ' ' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() && chars.peek().is_none() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            match chars.peek() {
                Some('"') => {
                    chars.next();
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => value.extend(chars.next()),
                            '"' => break,
                            c => value.push(c),
                        }
                    }
                }
                Some('<') => {
                    chars.next();
                    for c in chars.by_ref() {
                        if c == '>' {
                            break;
                        }
                        value.push(c);
                    }
                }
                _ => {
                    while let Some(&c) = chars.peek() {
                        if c == ' ' {
                            break;
                        }
                        value.push(c);
                        chars.next();
                    }
                }
            }
        }
        out.push((key, value));
    }
}

/// Hostile strings — a working directory, a script name and a subject with CR/LF, escape
/// sequences and other control characters, an envelope sender holding fake `key=value`
/// pairs — reach syslog as one clean line per event, whose fields parse back unchanged;
/// an error message shown on the terminal is cleaned too.
#[test]
fn hostile_strings_reach_syslog_as_one_clean_line() {
    if !crate::as_root(NEEDS) {
        return;
    }
    let sink = Sink::start();
    let inst = Install::new(sink.port());
    let a = inst.a().clone();
    let home = inst.home(&a);
    let evil_dir = home.join("x\r\nqid=FAKE status=sent\x1b[31m\x07\u{85}end");
    fs::create_dir(&evil_dir).expect("evil dir");
    std::os::unix::fs::chown(&evil_dir, Some(a.uid), Some(a.gid)).expect("chown");
    inst.log_lines();

    let sender = "\"x status=sent qid=FAKE\"@example.com";
    let msg = "To: rcpt@example.com\r\n\
               Subject: log-inject \x1b]0;owned\x07 \x7f\r\n\
               X-PHP-Originating-Script: 1001:evil\rqid=FAKE\x1b[2J.php\r\n\
               \r\n\
               body\r\n";
    let out = run_timed(
        inst.as_user(&a, &inst.sendmail)
            .current_dir(&evil_dir)
            .args(["-f", sender, "-t", "-i"]),
        Some(msg.as_bytes()),
        WAIT,
    );
    assert_exit(&out, 0, "sendmail");
    let qid = inst.qid("log-inject");
    // If delivery does not come, say what the queue looked like (this is how
    // the one-shot locked out by -wal/-shm files a root connection had
    // created was found; Store::open keeps them now).
    let mut lines = Vec::new();
    if !sink.wait_until(1, WAIT) {
        lines.extend(inst.log_lines());
        panic!("{}; log: {lines:#?}", inst.diagnose());
    }

    poll("the relay's log line", || {
        lines.extend(inst.log_lines());
        lines
            .iter()
            .any(|l| l.contains(&qid) && l.contains("status=sent"))
            .then_some(())
    });
    for l in &lines {
        assert!(
            !l.chars().any(char::is_control),
            "control character in a log line: {l:?}"
        );
    }
    let enqueue: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains(&format!("qid={qid} ")) && l.contains("status=queued"))
        .collect();
    assert_eq!(enqueue.len(), 1, "one line for the enqueue: {lines:#?}");
    let f = fields(enqueue[0]);
    let get = |k: &str| -> Vec<&str> {
        f.iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(get("qid"), [qid.as_str()], "{f:?}");
    assert_eq!(get("status"), ["queued"], "{f:?}");
    assert_eq!(get("account"), [TENANT_A], "{f:?}");
    assert_eq!(get("from"), ["\"x status=sent qid=FAKE\"@example.com"]);
    let cwd = get("cwd");
    assert!(
        cwd.len() == 1 && cwd[0].ends_with("x??qid=FAKE status=sent?[31m??end"),
        "cwd kept, cleaned: {cwd:?}"
    );
    let script = get("script");
    assert!(
        script.len() == 1 && script[0].contains("evil") && !script[0].contains('\r'),
        "{script:?}"
    );
    // No line anywhere starts a forged event.
    for l in &lines {
        assert!(
            fields(l).iter().all(|(k, v)| k != "qid" || v != "FAKE"),
            "forged field: {l:?}"
        );
    }

    // Terminal output: an error naming a hostile address is one cleaned line.
    let out = inst.submit_as(
        &a,
        &["-i", "bad\x1b[31m\r\nrcpt@example.com"],
        b"Subject: x\n\nbody\n",
    );
    assert_ne!(out.status.code(), Some(0));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(
        !err.trim_end_matches('\n').chars().any(char::is_control),
        "control characters on the terminal: {err:?}"
    );
}
