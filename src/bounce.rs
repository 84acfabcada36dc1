//! `scriptmail bounce [RECIPIENT]`: DSN intake from the node MTA's pipe
//! transport (docs/bounces.md, "Bounce capture"). Reads one message on
//! stdin, parses it (`dsn`), matches it to the message and account it is
//! about, and records each permanently failed recipient as a mail in error.
//!
//! ## Matching, most reliable first
//! 1. VERP: with `bounce.verp`, the relay sends as
//!    `<local_part>+<QID>@<bounce.domain>`, so the bounce's envelope
//!    recipient names the queue id. It comes from the optional argument
//!    (Postfix pipe: `${original_recipient}`), else `X-Original-To`,
//!    `Delivered-To` or `To`, else what the report says the original
//!    sender was (`X-Postfix-Sender`, the returned `Return-Path`).
//! 2. The report's `Original-Envelope-Id` (RFC 3464 §2.2.1): a queue id, or
//!    the ENVID the script gave with `-V` when exactly one message has it.
//! 3. The returned original headers: scriptmail's `Received:` trace
//!    (`by HOST (scriptmail, ...) id QID`) or a Message-ID scriptmail
//!    generated (`<MS.QID@HOST>`).
//!
//! Recipients are matched through `Final-Recipient`, then
//! `Original-Recipient`, then — for reports that name none or another
//! (alias-expanded) address — the message's only recipient, or those of its
//! recipients the report mentions.
//!
//! ## Exit status (what the MTA does with it)
//! - 0: recorded, or nothing to record (a delay warning, a success report,
//!   a duplicate, an automatic reply, a bounce of scriptmail's own report);
//! - 65 (`EX_DATAERR`, permanent): the input matches no message or is no
//!   report. It is saved in the `bounces_unmatched` table and logged first,
//!   so nothing is lost silently;
//! - 71 (`EX_OSERR`): the queue could not be used right now. Postfix's
//!   pipe(8) treats it as temporary (4.3.0) and delivers the bounce again
//!   later. (Never 75, as everywhere in scriptmail.)

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;

use crate::clock;
use crate::config::Config;
use crate::dsn::{self, Action, RecipientStatus, Report};
use crate::exit::{Exit, Failure};
use crate::log::{self, Level};
use crate::sanitize;
use crate::store::{BouncedMessage, DsnRecorded};
use crate::store::{Durability, Store, StoreError};

/// Input beyond the message size limit plus this much report is not read.
const REPORT_OVERHEAD: u64 = 1 << 20;

/// Why a bounce could not be taken in.
#[derive(Debug, thiserror::Error)]
pub enum BounceError {
    #[error("cannot read the bounce on stdin: {0}")]
    Read(std::io::Error),
    #[error("queue unavailable, try again later: {0}")]
    Store(#[from] StoreError),
    #[error("{reason}; saved as unmatched bounce #{id} in {queue}")]
    Unmatched {
        reason: String,
        id: i64,
        queue: String,
    },
}

impl Failure for BounceError {
    fn exit_code(&self) -> Exit {
        match self {
            // Temporary for the MTA: it will hand the bounce over again.
            BounceError::Read(_) | BounceError::Store(_) => Exit::OsErr,
            BounceError::Unmatched { .. } => Exit::DataErr,
        }
    }
}

/// What became of one bounce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intake {
    /// Matched; failures recorded (or all duplicates).
    Recorded {
        qid: String,
        account: String,
        recorded: Vec<String>,
        duplicates: Vec<String>,
        /// The error-ratio rule moved the account to `bounce`.
        tripped: bool,
    },
    /// Matched, but it reports no permanent failure (delay, success).
    NoFailure { qid: String, account: String },
    /// A bounce of scriptmail's own mail (a report): logged, not counted.
    System { qid: String },
    /// An automatic reply (RFC 3834) sent to the bounce address.
    AutoReply,
}

/// `scriptmail bounce`, after the switch to the queue owner.
pub fn run(
    cfg: &Config,
    config_path: Option<&Path>,
    recipient: Option<&str>,
) -> Result<(), BounceError> {
    let raw = read_input(cfg).map_err(BounceError::Read)?;
    let now = clock::now_ms();
    let mut store = Store::open(&cfg.db_path(), Durability::Full)?;
    store.set_protection(crate::store::Protection::from(cfg));
    intake(cfg, &mut store, &raw, recipient, now)?;
    // A block this bounce caused is announced at once.
    match crate::report::notify(cfg, &mut store, now) {
        Ok(0) => {}
        Ok(_) => crate::wake::relay(cfg, config_path),
        Err(e) => log::log(
            Level::Warning,
            &format!(
                "block notice not queued: {}",
                sanitize::line(&e.to_string())
            ),
        ),
    }
    Ok(())
}

/// Read stdin up to the size limit; the rest is read and dropped so the
/// MTA's pipe sees a consumer to the end.
fn read_input(cfg: &Config) -> std::io::Result<Vec<u8>> {
    let limit = cfg.max_message_size.saturating_add(REPORT_OVERHEAD);
    let mut stdin = std::io::stdin().lock();
    let mut raw = Vec::new();
    (&mut stdin).take(limit).read_to_end(&mut raw)?;
    std::io::copy(&mut stdin, &mut std::io::sink())?;
    Ok(raw)
}

/// Take one bounce in: parse, match, record (module doc).
pub fn intake(
    cfg: &Config,
    store: &mut Store,
    raw: &[u8],
    recipient: Option<&str>,
    now: i64,
) -> Result<Intake, BounceError> {
    let report = dsn::parse(raw);
    let envelope = recipient
        .or(report.header("X-Original-To"))
        .or(report.header("Delivered-To"))
        .unwrap_or("")
        .trim()
        .to_string();
    if report.is_auto_reply() {
        log::log(
            Level::Info,
            &format!(
                "bounce to=<{}> status=ignored stat={}",
                sanitize::line(&envelope),
                log::quote(&format!(
                    "automatic reply, not a delivery report: {}",
                    report.header("Subject").unwrap_or("")
                ))
            ),
        );
        return Ok(Intake::AutoReply);
    }
    let found = find_message(cfg, store, &report, recipient)?;
    let Some((msg, how)) = found else {
        let reason = if report.format.is_none() {
            "not a delivery status notification"
        } else {
            "no message matches this bounce (no VERP address, ENVID or scriptmail trace of a known message)"
        };
        return Err(unmatched(cfg, store, &report, &envelope, raw, reason, now)?);
    };
    if report.format.is_none() {
        return Err(unmatched(
            cfg,
            store,
            &report,
            &envelope,
            raw,
            &format!(
                "not a delivery status notification (addressed to message {})",
                msg.qid
            ),
            now,
        )?);
    }
    let format = report.format.map_or("", |f| f.as_str());
    for r in report
        .recipients
        .iter()
        .filter(|r| r.action != Action::Failed)
    {
        log::log(
            Level::Info,
            &format!(
                "qid={} account={} to=<{}> relay=bounce dsn={} status={} format={format} matched={how} stat={} (not an error)",
                msg.qid,
                sanitize::line(&msg.account),
                sanitize::line(r.address().unwrap_or("")),
                sanitize::line(r.status.as_deref().unwrap_or("")),
                r.action.as_str(),
                log::quote(&r.reason())
            ),
        );
    }
    let mut failures: Vec<(String, String, String)> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let attribution = Attribution::new(&msg, &report);
    for r in report.failures() {
        for rcpt in attribution.of(r) {
            if seen.insert(rcpt.to_ascii_lowercase()) {
                failures.push((rcpt, r.reason(), r.status.clone().unwrap_or_default()));
            }
        }
    }
    if failures.is_empty() {
        return Ok(Intake::NoFailure {
            qid: msg.qid,
            account: msg.account,
        });
    }
    if msg.system {
        for (rcpt, text, _) in &failures {
            log::log(
                Level::Warning,
                &format!(
                    "qid={} account={} to=<{}> relay=bounce status=bounced stat={} (scriptmail's own mail, not counted)",
                    msg.qid,
                    sanitize::line(&msg.account),
                    sanitize::line(rcpt),
                    log::quote(text)
                ),
            );
        }
        return Ok(Intake::System { qid: msg.qid });
    }
    let pairs: Vec<(String, String)> = failures
        .iter()
        .map(|(r, t, _)| (r.clone(), t.clone()))
        .collect();
    let DsnRecorded {
        recorded,
        duplicates,
        tripped,
    } = store.record_dsn(msg.id, &pairs, now)?;
    for (rcpt, text, status) in &failures {
        let dup = duplicates.contains(rcpt);
        log::log(
            Level::Info,
            &format!(
                "qid={} account={} to=<{}> relay=bounce dsn={} status={} format={format} matched={how} stat={}",
                msg.qid,
                sanitize::line(&msg.account),
                sanitize::line(rcpt),
                sanitize::line(status),
                if dup { "duplicate" } else { "bounced" },
                log::quote(text)
            ),
        );
    }
    Ok(Intake::Recorded {
        qid: msg.qid,
        account: msg.account,
        recorded,
        duplicates,
        tripped: tripped.is_some(),
    })
}

/// Find the message a bounce is about, and say how (for the log).
fn find_message(
    cfg: &Config,
    store: &Store,
    report: &Report,
    recipient: Option<&str>,
) -> Result<Option<(BouncedMessage, &'static str)>, StoreError> {
    let verp = |a: &str| dsn::verp_qid(a, &cfg.bounce.local_part, &cfg.bounce.domain);
    // 1. VERP, from where the envelope recipient shows.
    let envelope = recipient
        .into_iter()
        .chain(report.headers_named("X-Original-To"))
        .chain(report.headers_named("Delivered-To"))
        .chain(report.headers_named("To"));
    for addr in envelope {
        if let Some(qid) = verp(addr)
            && let Some(m) = store.bounced_by_qid(&qid)?
        {
            return Ok(Some((m, "verp")));
        }
    }
    let reported_sender = report
        .original_sender
        .as_deref()
        .into_iter()
        .chain(report.original_headers_named("Return-Path"));
    for addr in reported_sender {
        if let Some(qid) = verp(addr)
            && let Some(m) = store.bounced_by_qid(&qid)?
        {
            return Ok(Some((m, "verp-sender")));
        }
    }
    // 2. The ENVID.
    if let Some(envid) = report.envid.as_deref() {
        let as_qid = envid.trim().to_ascii_uppercase();
        if let Some(m) = store.bounced_by_qid(&as_qid)? {
            return Ok(Some((m, "envid")));
        }
        if let Some(m) = store.bounced_by_envid(envid.trim())? {
            return Ok(Some((m, "envid")));
        }
    }
    // 3. The returned headers.
    if let Some(qid) = dsn::trace_qid(&report.original_headers, &cfg.hostname)
        && let Some(m) = store.bounced_by_qid(&qid)?
    {
        return Ok(Some((m, "received")));
    }
    for mid in report.original_headers_named("Message-ID") {
        if let Some(qid) = dsn::message_id_qid(mid, &cfg.hostname)
            && let Some(m) = store.bounced_by_qid(&qid)?
        {
            return Ok(Some((m, "message-id")));
        }
    }
    Ok(None)
}

/// Which of the message's recipients a failure is about (module doc).
///
/// Built once per bounce: a bounce may name up to a thousand failures over
/// megabytes of text, for a message with as many recipients, and anyone
/// who received the message can send one; so lookups are hash sets, and
/// the text is scanned once, not once per failure and recipient.
struct Attribution<'a> {
    msg: &'a BouncedMessage,
    /// The message's recipients by lower-cased address.
    by_key: HashMap<String, &'a str>,
    /// Those of them the report's text mentions.
    in_text: HashSet<&'a str>,
}

impl<'a> Attribution<'a> {
    fn new(msg: &'a BouncedMessage, report: &Report) -> Attribution<'a> {
        let by_key: HashMap<String, &str> = msg
            .recipients
            .iter()
            .map(|(rcpt, _)| (rcpt.to_ascii_lowercase(), rcpt.as_str()))
            .collect();
        let words = address_words(&report.text);
        let in_text = msg
            .recipients
            .iter()
            .filter(|(rcpt, _)| words.contains(&rcpt.to_ascii_lowercase()))
            .map(|(rcpt, _)| rcpt.as_str())
            .collect();
        Attribution {
            msg,
            by_key,
            in_text,
        }
    }

    fn of(&self, r: &RecipientStatus) -> Vec<String> {
        let own = |a: &str| self.by_key.get(&a.trim().to_ascii_lowercase()).copied();
        for a in [
            r.final_recipient.as_deref(),
            r.original_recipient.as_deref(),
        ]
        .into_iter()
        .flatten()
        {
            if let Some(rcpt) = own(a) {
                return vec![rcpt.to_string()];
            }
        }
        if let [(only, _)] = self.msg.recipients.as_slice() {
            return vec![only.clone()];
        }
        let diagnostic = address_words(r.diagnostic.as_deref().unwrap_or(""));
        let mentioned: Vec<String> = self
            .msg
            .recipients
            .iter()
            .filter(|(rcpt, _)| {
                self.in_text.contains(&rcpt.as_str())
                    || diagnostic.contains(&rcpt.to_ascii_lowercase())
            })
            .map(|(rcpt, _)| rcpt.clone())
            .collect();
        if !mentioned.is_empty() {
            return mentioned;
        }
        // An address the message was not sent to (an alias expanded further
        // on), or none at all: the mail is in error all the same.
        vec![r.address().unwrap_or("(unknown recipient)").to_string()]
    }
}

/// The lower-cased words of a text that may be addresses: split where no
/// unquoted address character can be (white space, brackets, quotes,
/// `, ; :`), trailing sentence dots removed.
fn address_words(text: &str) -> HashSet<String> {
    text.split(|c: char| c.is_whitespace() || "<>()[],;:\"'".contains(c))
        .map(|w| w.trim_end_matches('.'))
        .filter(|w| w.contains('@'))
        .map(str::to_ascii_lowercase)
        .collect()
}

/// Save an unmatchable bounce, log it, and make the error to return.
fn unmatched(
    cfg: &Config,
    store: &mut Store,
    report: &Report,
    envelope: &str,
    raw: &[u8],
    reason: &str,
    now: i64,
) -> Result<BounceError, StoreError> {
    let id = store.save_unmatched(envelope, reason, raw, now)?;
    let queue = cfg.queue_dir.display().to_string();
    log::log(
        Level::Warning,
        &format!(
            "bounce status=unmatched id={id} queue={} to=<{}> from=<{}> size={} stat={}",
            sanitize::line(&queue),
            sanitize::line(envelope),
            sanitize::line(report.header("From").unwrap_or("")),
            raw.len(),
            log::quote(&format!(
                "{reason}; subject: {}",
                report.header("Subject").unwrap_or("")
            ))
        ),
    );
    Ok(BounceError::Unmatched {
        reason: reason.to_string(),
        id,
        queue,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EnqueuePolicy, NewMessage, Protection};

    const T0: i64 = 1_795_353_858_000;
    const PF_LOCAL: &[u8] = include_bytes!("../tests/fixtures/bounces/postfix-local-unknown.eml");
    const PF_SMTP: &[u8] = include_bytes!("../tests/fixtures/bounces/postfix-smtp-reject.eml");
    const PF_DELAY: &[u8] = include_bytes!("../tests/fixtures/bounces/postfix-delayed.eml");

    fn setup() -> (tempfile::TempDir, Config, Store) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::parse(
            &format!(
                "node.domain = \"node1.example.net\"\nqueue.dir = \"{}\"\nbounce.verp = true\n",
                dir.path().display()
            ),
            Path::new("/t.toml"),
        )
        .unwrap();
        let mut store = Store::open(&cfg.db_path(), Durability::Normal).unwrap();
        store.set_protection(Protection::default());
        (dir, cfg, store)
    }

    fn enqueue(s: &mut Store, qid: &str, rcpts: &[&str], system: bool) {
        let rcpts: Vec<String> = rcpts.iter().map(|r| r.to_string()).collect();
        s.enqueue(
            &NewMessage {
                qid,
                account: "acme",
                uid: 1000,
                sender: "acme@node1.example.net",
                recipients: &rcpts,
                data: b"Subject: hello\r\n\r\nbody\r\n",
                subject: "hello",
                script: "/var/www/contact.php",
                cwd: "/var/www",
                dsn_notify: None,
                dsn_ret: None,
                envid: None,
                body_8bit: false,
                system,
            },
            EnqueuePolicy::default(),
            T0,
        )
        .unwrap();
    }

    fn strip_verp(raw: &[u8]) -> Vec<u8> {
        // The same bounce without any VERP address or ENVID left in it.
        String::from_utf8_lossy(raw)
            .replace("bounces+", "someone-")
            .replace("Original-Envelope-Id: 6740A1B2C3D4E5F7\n", "")
            .into_bytes()
    }

    #[test]
    fn verp_argument_matches_and_records() {
        let (_d, cfg, mut s) = setup();
        enqueue(
            &mut s,
            "6740A1B2C3D4E5F7",
            &["nosuchuser@test.example", "ok@test.example"],
            false,
        );
        let out = intake(
            &cfg,
            &mut s,
            PF_LOCAL,
            Some("bounces+6740A1B2C3D4E5F7@node1.example.net"),
            T0,
        )
        .unwrap();
        assert_eq!(
            out,
            Intake::Recorded {
                qid: "6740A1B2C3D4E5F7".into(),
                account: "acme".into(),
                recorded: vec!["nosuchuser@test.example".into()],
                duplicates: vec![],
                tripped: false,
            }
        );
        let errs = s.errors_of("acme", 10).unwrap();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].message, "5.1.1 unknown user: \"nosuchuser\"");
        assert_eq!(errs[0].kind.as_str(), "dsn");
        assert_eq!(errs[0].script, "/var/www/contact.php");
        assert_eq!(s.account("acme").unwrap().error_total, 1);
        // The MTA delivers the same bounce twice: counted once.
        let again = intake(&cfg, &mut s, PF_LOCAL, None, T0 + 1).unwrap();
        assert!(
            matches!(again, Intake::Recorded { ref recorded, ref duplicates, .. }
            if recorded.is_empty() && duplicates.len() == 1),
            "{again:?}"
        );
        assert_eq!(s.account("acme").unwrap().error_total, 1);
    }

    #[test]
    fn envid_and_trace_header_match_without_verp() {
        let (_d, cfg, mut s) = setup();
        enqueue(
            &mut s,
            "6740A1B2C3D4E5F7",
            &["nosuchuser@test.example"],
            false,
        );
        enqueue(
            &mut s,
            "6740A1B2C3D4E5F6",
            &["nosuchuser@test.example", "bob@reject.example"],
            false,
        );
        // ENVID (the local-unknown fixture carries one).
        let no_verp = String::from_utf8_lossy(PF_LOCAL).replace("bounces+", "someone-");
        let out = intake(&cfg, &mut s, no_verp.as_bytes(), None, T0).unwrap();
        assert!(matches!(out, Intake::Recorded { ref qid, .. } if qid == "6740A1B2C3D4E5F7"));
        // The Received: trace in the returned message.
        let out = intake(&cfg, &mut s, &strip_verp(PF_SMTP), None, T0).unwrap();
        match out {
            Intake::Recorded { qid, recorded, .. } => {
                assert_eq!(qid, "6740A1B2C3D4E5F6");
                assert_eq!(recorded, ["bob@reject.example"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn delays_are_logged_not_counted() {
        let (_d, cfg, mut s) = setup();
        enqueue(&mut s, "6740A1B2C3D4E5F8", &["carol@reject.example"], false);
        let out = intake(&cfg, &mut s, PF_DELAY, None, T0).unwrap();
        assert_eq!(
            out,
            Intake::NoFailure {
                qid: "6740A1B2C3D4E5F8".into(),
                account: "acme".into()
            }
        );
        assert_eq!(s.account("acme").unwrap().error_total, 0);
    }

    #[test]
    fn unmatched_is_saved_and_refused_with_65() {
        let (_d, cfg, mut s) = setup();
        let e = intake(
            &cfg,
            &mut s,
            PF_LOCAL,
            Some("bounces+FFFF@node1.example.net"),
            T0,
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), Exit::DataErr);
        assert!(e.to_string().contains("no message matches"), "{e}");
        assert!(e.to_string().contains("saved as unmatched bounce #"), "{e}");
        let u = s.unmatched_bounces(10).unwrap();
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].data, PF_LOCAL);
        assert_eq!(u[0].envelope_rcpt, "bounces+FFFF@node1.example.net");
        // Not a report at all, though addressed to a known message.
        enqueue(&mut s, "AAAA", &["x@example.com"], false);
        let e = intake(
            &cfg,
            &mut s,
            b"From: someone@example.com\nSubject: hi\n\nhello\n",
            Some("bounces+AAAA@node1.example.net"),
            T0,
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), Exit::DataErr);
        assert!(
            e.to_string().contains("not a delivery status notification"),
            "{e}"
        );
        assert_eq!(s.unmatched_bounces(10).unwrap().len(), 2);
    }

    #[test]
    fn auto_replies_and_own_mail_are_not_counted() {
        let (_d, cfg, mut s) = setup();
        let out = intake(
            &cfg,
            &mut s,
            b"From: ann@example.org\nSubject: Out of office\nAuto-Submitted: auto-replied\n\nAway.\n",
            Some("bounces+AAAA@node1.example.net"),
            T0,
        )
        .unwrap();
        assert_eq!(out, Intake::AutoReply);
        enqueue(
            &mut s,
            "6740A1B2C3D4E5F7",
            &["nosuchuser@test.example"],
            true,
        );
        let out = intake(&cfg, &mut s, PF_LOCAL, None, T0).unwrap();
        assert_eq!(
            out,
            Intake::System {
                qid: "6740A1B2C3D4E5F7".into()
            }
        );
        assert_eq!(s.account("acme").unwrap().error_total, 0);
        assert!(s.errors_of("acme", 10).unwrap().is_empty());
    }

    #[test]
    fn failures_without_a_known_address_go_to_the_only_or_mentioned_recipient() {
        let (_d, cfg, mut s) = setup();
        enqueue(
            &mut s,
            "BBBB",
            &["ann@example.org", "bob@example.org"],
            false,
        );
        let text = "From: MAILER-DAEMON@isp.example\n\
To: bounces+BBBB@node1.example.net\n\
Subject: Undeliverable: hello\n\n\
Delivery to bob@example.org failed: 550 mailbox unavailable\n";
        let out = intake(&cfg, &mut s, text.as_bytes(), None, T0).unwrap();
        match out {
            Intake::Recorded { recorded, .. } => assert_eq!(recorded, ["bob@example.org"]),
            other => panic!("{other:?}"),
        }
    }

    /// A bounce for a real message can come from any of its recipients:
    /// one naming a thousand unknown addresses over a megabyte of text must
    /// not cost (recipients x failures x text) work. Before the fix this
    /// took hours; the timer is far above what the linear version needs.
    #[test]
    fn a_large_crafted_bounce_is_matched_in_linear_time() {
        let (_d, cfg, mut s) = setup();
        let rcpts: Vec<String> = (0..1000).map(|n| format!("r{n}@example.org")).collect();
        let refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
        enqueue(&mut s, "CCCC", &refs, false);
        let mut text = String::from(
            "From: MAILER-DAEMON@isp.example\nTo: bounces+CCCC@node1.example.net\n\
             Subject: Undelivered Mail Returned to Sender\n\n",
        );
        for n in 0..1000 {
            text.push_str(&format!("<x{n}@elsewhere.example>: 550 5.1.1 unknown\n"));
        }
        text.push('\n');
        // The first recipient is mentioned, deep in the filler.
        for n in 0..20_000 {
            text.push_str(&format!("filler line {n} of the returned message text\n"));
            if n == 15_000 {
                text.push_str("Your mail to <R0@EXAMPLE.ORG>. was refused\n");
            }
        }
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let out = intake(&cfg, &mut s, text.as_bytes(), None, T0);
            let _ = tx.send(out.map_err(|e| e.to_string()));
        });
        let out = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("intake did not finish within 60 s");
        match out {
            Ok(Intake::Recorded { recorded, .. }) => assert_eq!(recorded, ["r0@example.org"]),
            other => panic!("{other:?}"),
        }
    }
}
