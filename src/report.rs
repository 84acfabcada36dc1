//! The daily error report and the immediate notice of an automatic block
//! (docs/bounces.md, "The daily error report", "Immediate notices"): what
//! goes to an account's report recipient.
//!
//! Building the text is pure ([`render`], [`render_notice`], [`compose`]);
//! [`execute`] gathers the reports of one UTC day from the store and prints
//! or sends them; [`notify`] sends the block notices. Mail goes through the
//! queue as *system* mail (`NewMessage { system: true }`): relayed even for
//! a blocked account, never counted against it.
//!
//! Everything a script controls — subjects, recipient addresses, script
//! paths, server answers quoting them — is untrusted: it only ever appears
//! in the body, one value per line, through the one sanitiser of every
//! output (`sanitize.rs`: control, bidi, line-separator and zero-width
//! characters replaced) and with its length capped. The header fields are built
//! from trusted values only (configuration, the validated report recipient,
//! an account name reduced to safe characters), so nothing a script wrote
//! can add a header or a recipient.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::json;

use crate::clock::{self, DAY_MS};
use crate::config::Config;
use crate::exit::Exit;
use crate::log::{self, Level};
use crate::sanitize;
use crate::store::admin::{ErrorRow, Event};
use crate::store::bounces::{BlockNotice, ExpiredMail, ReportAccount, ReportQueued};
use crate::store::{Durability, EnqueuePolicy, NewMessage, Store, StoreError};

/// The most mails in error (and expired mails) listed in one report; the
/// rest are counted.
pub const MAX_ITEMS: i64 = 200;
/// Longest untrusted value shown, in characters.
const MAX_VALUE: usize = 300;

/// Why reports could not be made or sent.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("account {0} has no report recipient (mailq-ctl set {0} --report-to ADDR)")]
    NoRecipient(String),
    #[error("report.from = {0:?} is not a usable sender address")]
    BadFrom(String),
}

impl ReportError {
    pub fn exit_code(&self) -> Exit {
        match self {
            ReportError::Store(e) => e.exit_code(),
            ReportError::NoRecipient(_) => Exit::Usage,
            ReportError::BadFrom(_) => Exit::Config,
        }
    }
}

/// One account's report for one UTC day.
#[derive(Debug, Clone)]
pub struct Report {
    pub account: String,
    /// `None` when previewing an account that has no report recipient.
    pub report_to: Option<String>,
    /// UTC day number.
    pub day: i64,
    pub errors: Vec<ErrorRow>,
    pub errors_total: i64,
    pub expired: Vec<ExpiredMail>,
    pub expired_total: i64,
    pub events: Vec<Event>,
}

impl Report {
    /// Nothing to say: no report is sent.
    pub fn is_empty(&self) -> bool {
        self.errors_total == 0 && self.expired_total == 0 && self.events.is_empty()
    }
}

/// Gather an account's report for `day` from the store.
pub fn collect(
    store: &Store,
    account_id: i64,
    account: &str,
    report_to: Option<&str>,
    day: i64,
) -> Result<Report, StoreError> {
    let (from, to) = (day * DAY_MS, (day + 1) * DAY_MS);
    let (errors, errors_total) = store.report_errors(account_id, from, to, MAX_ITEMS)?;
    let (expired, expired_total) = store.report_expired(account_id, from, to, MAX_ITEMS)?;
    let events = store.report_events(account_id, from, to)?;
    Ok(Report {
        account: account.to_string(),
        report_to: report_to.map(str::to_string),
        day,
        errors,
        errors_total,
        expired,
        expired_total,
        events,
    })
}

// ---------------------------------------------------------------------------
// Text (pure).

/// An untrusted value as one line of a report: RFC 2047 encoded words
/// decoded (so subjects read as their sender meant them), then through the
/// sanitiser (`sanitize.rs`) and cut at `max` characters.
fn shown(s: &str, max: usize) -> String {
    sanitize::truncate(&sanitize::line(&decode_encoded_words(s)), max).into_owned()
}

/// Decode RFC 2047 encoded words (`=?utf-8?B?...?=`, `=?windows-1252?Q?...?=`)
/// in a header value, so subjects read as the sender meant them, in any
/// charset mail-parser knows (the bounce parser's MIME library, `dsn`):
/// a windows-1252 "€" stays a "€". Malformed words are left as they are.
pub fn decode_encoded_words(s: &str) -> String {
    if !s.contains("=?") {
        return s.to_string();
    }
    // A line break would end the field: one line at a time.
    s.split_inclusive('\n')
        .map(|line| {
            let text = line.trim_end_matches(['\r', '\n']);
            let field = format!("Subject: {text}\n\n");
            let decoded = mail_parser::MessageParser::new()
                .parse_headers(field.as_bytes())
                .and_then(|m| m.subject().map(str::to_owned))
                .unwrap_or_else(|| text.to_owned());
            decoded + &line[text.len()..]
        })
        .collect()
}

/// An account name as it may appear in a header: letters, digits and
/// `._-+@` only (account names come from passwd or the configuration, but
/// a header is no place to find out they were odd).
fn header_safe_name(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-+@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn when(ms: i64) -> String {
    clock::format_rfc3339(ms)
}

/// The subject of an account's daily report.
pub fn subject(r: &Report, hostname: &str) -> String {
    format!(
        "scriptmail report for {} on {}: {}",
        header_safe_name(&r.account),
        hostname,
        clock::format_day(r.day)
    )
}

/// The plain-text body of an account's daily report.
pub fn render(r: &Report, hostname: &str) -> String {
    let mut t = String::new();
    let day = clock::format_day(r.day);
    let _ = writeln!(
        t,
        "Mail report for the account \"{}\" on {hostname}",
        shown(&r.account, 64)
    );
    let _ = writeln!(t, "Day: {day} (00:00 to 24:00 UTC)");
    let _ = writeln!(t);
    let _ = writeln!(
        t,
        "{} mail(s) in error, {} held mail(s) expired, {} change(s) of the account's state.",
        r.errors_total,
        r.expired_total,
        r.events.len()
    );
    if r.errors_total > 0 {
        let _ = writeln!(t);
        heading(&mut t, "Mails in error");
        let _ = writeln!(
            t,
            "The receiving side refused these mails, or they could not be delivered in time."
        );
        for e in &r.errors {
            let _ = writeln!(t);
            let _ = writeln!(t, "{}  to: {}", when(e.at), shown(&e.rcpt, MAX_VALUE));
            let _ = writeln!(t, "    server answer: {}", shown(&e.message, MAX_VALUE * 2));
            let _ = writeln!(t, "    subject: {}", shown(&e.subject, MAX_VALUE));
            let _ = writeln!(t, "    script: {}", or_unknown(&e.script));
            let _ = writeln!(
                t,
                "    queue id: {} ({})",
                shown(&e.qid, 64),
                kind_text(&e.kind)
            );
        }
        more(&mut t, r.errors_total, r.errors.len());
    }
    if r.expired_total > 0 {
        let _ = writeln!(t);
        heading(&mut t, "Held mail that expired");
        let _ = writeln!(
            t,
            "These mails were held while the account was blocked and were dropped, unsent,"
        );
        let _ = writeln!(t, "when they reached the maximum holding time.");
        for m in &r.expired {
            let _ = writeln!(t);
            let to: Vec<String> = m.recipients.iter().map(|a| shown(a, MAX_VALUE)).collect();
            let _ = writeln!(t, "{}  to: {}", when(m.at), to.join(", "));
            let _ = writeln!(t, "    written: {}", when(m.created));
            let _ = writeln!(t, "    subject: {}", shown(&m.subject, MAX_VALUE));
            let _ = writeln!(t, "    script: {}", or_unknown(&m.script));
            let _ = writeln!(t, "    queue id: {}", shown(&m.qid, 64));
        }
        more(&mut t, r.expired_total, r.expired.len());
    }
    if !r.events.is_empty() {
        let _ = writeln!(t);
        heading(&mut t, "Changes of the account's state");
        for e in &r.events {
            let _ = writeln!(t);
            let _ = writeln!(
                t,
                "{}  {} -> {} ({})",
                when(e.at),
                shown(&e.old, 16),
                shown(&e.new, 16),
                state_text(&e.new)
            );
            let _ = writeln!(
                t,
                "    reason: {}, by: {}",
                shown(&e.reason, 32),
                shown(&e.actor, 64)
            );
            if !e.note.is_empty() {
                let _ = writeln!(t, "    note: {}", shown(&e.note, MAX_VALUE));
            }
        }
    }
    let _ = writeln!(t);
    let _ = writeln!(t, "-- ");
    let _ = writeln!(
        t,
        "Sent by scriptmail on {hostname} once a day when there is something to report."
    );
    t
}

fn heading(t: &mut String, title: &str) {
    let _ = writeln!(t, "{title}");
    let _ = writeln!(t, "{}", "=".repeat(title.chars().count()));
}

fn more(t: &mut String, total: i64, shown: usize) {
    if total > shown as i64 {
        let _ = writeln!(t);
        let _ = writeln!(
            t,
            "... and {} more (mailq-ctl errors lists them all).",
            total - shown as i64
        );
    }
}

fn or_unknown(script: &str) -> String {
    if script.is_empty() {
        "(unknown)".into()
    } else {
        shown(script, MAX_VALUE)
    }
}

fn kind_text(kind: &str) -> &'static str {
    match kind {
        "rejected" => "refused by the relay",
        "expired" => "expired in the queue",
        "dsn" => "returned later by a delivery report",
        _ => "in error",
    }
}

fn state_text(state: &str) -> &'static str {
    match state {
        "ok" => "sending",
        "force" => "sending, with a doubled error allowance",
        "ko" => "blocked: new mail is held",
        "bounce" => "blocked for too many mails in error: new mail is held",
        "spam" => "blocked by abuse handling: new mail is held",
        "purging" => "held mail being deleted",
        _ => "unknown state",
    }
}

/// Subject and body of the notice sent when an account is blocked
/// automatically.
pub fn render_notice(n: &BlockNotice, cfg: &Config) -> (String, String) {
    let account = shown(&n.account, 64);
    let subject = format!(
        "scriptmail: account {} blocked ({}) on {}",
        header_safe_name(&n.account),
        header_safe_name(&n.event.new),
        cfg.hostname
    );
    let mut t = String::new();
    let _ = writeln!(
        t,
        "The account \"{account}\" on {} was blocked automatically at {}.",
        cfg.hostname,
        when(n.event.at)
    );
    let _ = writeln!(t);
    let _ = writeln!(
        t,
        "    new state: {} ({})",
        shown(&n.event.new, 16),
        state_text(&n.event.new)
    );
    let _ = writeln!(t, "    was: {}", shown(&n.event.old, 16));
    let why = match n.event.reason.as_str() {
        "bounce" => "too many of its mails came back in error",
        "limit" => "it sent more mail than its limit allows",
        _ => "automatic protection",
    };
    let _ = writeln!(t, "    reason: {why}");
    if !n.event.note.is_empty() {
        let _ = writeln!(t, "    detail: {}", shown(&n.event.note, MAX_VALUE));
    }
    let _ = writeln!(t);
    let _ = writeln!(
        t,
        "While it is blocked, mail its scripts send is held, not delivered, for at most {}.",
        clock::format_age(crate::store::ms(cfg.hold_max_age))
    );
    let _ = writeln!(
        t,
        "An administrator can release it (mailq-ctl unblock) or delete it (mailq-ctl purge)."
    );
    let _ = writeln!(
        t,
        "The mails in error are listed by mailq-ctl errors and in the next daily report."
    );
    (subject, t)
}

/// The one rule for a report recipient (and `report.from`): `mailq-ctl set
/// --report-to` accepts exactly what this accepts, so an accepted recipient
/// always gets its reports (issue 11 item 12). One plain `local@domain` we
/// can write into a `To:` field and an envelope without quoting: a
/// dot-atom local part (RFC 5322 §3.2.3: atext, single dots inside; no
/// quoted string, no space) of at most 64 octets and a host name (letters,
/// digits and hyphens per label, RFC 1123 §2.1) — and lettre, which the
/// relay hands it to, must take it too.
pub fn valid_recipient(addr: &str) -> bool {
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    addr.len() <= 254
        && local.len() <= 64
        && is_dot_atom(local)
        && is_host_name(domain)
        && addr.parse::<lettre::Address>().is_ok()
}

/// RFC 5322 §3.2.3 dot-atom-text: atext runs joined by single dots.
fn is_dot_atom(s: &str) -> bool {
    const SPECIAL: &[u8] = b"!#$%&'*+-/=?^_`{|}~";
    !s.is_empty()
        && s.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || SPECIAL.contains(&b))
        })
}

/// A host name: labels of letters, digits and inner hyphens (RFC 1123 §2.1).
fn is_host_name(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// The whole message, CRLF line endings, ready for the queue. The body is
/// 7-bit as is, or quoted-printable (RFC 2045 §6.7) when it holds UTF-8.
pub fn compose(
    cfg: &Config,
    to: &str,
    subject: &str,
    kind: &str,
    body: &str,
    qid: &str,
    now: i64,
) -> Vec<u8> {
    let ascii = body.is_ascii();
    let mut m = String::new();
    let mut h = |name: &str, value: &str| {
        m.push_str(name);
        m.push_str(": ");
        m.push_str(value);
        m.push_str("\r\n");
    };
    h(
        "Received",
        &format!(
            "by {} (scriptmail report)\r\n\tid {qid}; {}",
            cfg.hostname,
            clock::format_rfc5322(now)
        ),
    );
    h("From", &format!("scriptmail <{}>", cfg.report_from));
    h("To", &format!("<{to}>"));
    h("Subject", &encode_subject(subject));
    h("Date", &clock::format_rfc5322(now));
    h("Message-ID", &format!("<{now}.{qid}@{}>", cfg.hostname));
    h("MIME-Version", "1.0");
    h("Content-Type", "text/plain; charset=utf-8");
    h(
        "Content-Transfer-Encoding",
        if ascii { "7bit" } else { "quoted-printable" },
    );
    // RFC 3834 §5: machine-generated; autoresponders must not answer.
    h("Auto-Submitted", "auto-generated");
    h("X-Scriptmail-Report", kind);
    m.push_str("\r\n");
    for line in body.lines() {
        if ascii {
            m.push_str(line);
            m.push_str("\r\n");
        } else {
            qp_line(&mut m, line);
        }
    }
    m.into_bytes()
}

/// A subject with non-ASCII (a hostname or account cannot have any, but a
/// configuration might) becomes one RFC 2047 `B` word per chunk.
fn encode_subject(s: &str) -> String {
    if s.is_ascii() {
        return s.to_string();
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in s.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    words.push(chunk);
    words
        .iter()
        .map(|w| format!("=?utf-8?B?{}?=", base64_encode(w.as_bytes())))
        .collect::<Vec<_>>()
        .join("\r\n ")
}

fn base64_encode(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One body line, quoted-printable, soft-broken before 76 characters.
fn qp_line(m: &mut String, line: &str) {
    let bytes = line.as_bytes();
    let mut width = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let last = i + 1 == bytes.len();
        let lit = (b == b' ' || b == b'\t') && !last || (33..=126).contains(&b) && b != b'=';
        let piece = if lit {
            (b as char).to_string()
        } else {
            format!("={b:02X}")
        };
        if width + piece.len() > 75 {
            m.push_str("=\r\n");
            width = 0;
        }
        m.push_str(&piece);
        width += piece.len();
    }
    m.push_str("\r\n");
}

// ---------------------------------------------------------------------------
// Sending and the command.

/// A report or notice about to be queued.
struct Outgoing<'a> {
    account: &'a str,
    to: &'a str,
    subject: &'a str,
    /// `daily` or `notice` (the `X-Scriptmail-Report` field).
    kind: &'a str,
    body: &'a str,
}

/// Enqueue one report or notice as system mail for its account; its qid.
/// A daily report (`daily: Some((account_id, day))`) is queued only if
/// none was for that account and day, in the same transaction
/// ([`Store::enqueue_report`]); `Ok(Err(qid))` names the earlier one.
fn enqueue(
    cfg: &Config,
    store: &mut Store,
    o: &Outgoing<'_>,
    daily: Option<(i64, i64)>,
    now: i64,
) -> Result<Result<String, String>, ReportError> {
    let Outgoing {
        account,
        to,
        subject,
        kind,
        body,
    } = *o;
    if !valid_recipient(&cfg.report_from) {
        return Err(ReportError::BadFrom(cfg.report_from.clone()));
    }
    let qid = crate::submit::new_qid(now);
    let data = compose(cfg, to, subject, kind, body, &qid, now);
    let recipients = [to.to_string()];
    let m = NewMessage {
        qid: &qid,
        account,
        uid: 0,
        sender: &cfg.report_from,
        recipients: &recipients,
        data: &data,
        subject,
        script: "",
        cwd: "",
        dsn_notify: None,
        dsn_ret: None,
        envid: None,
        body_8bit: false,
        system: true,
    };
    match daily {
        Some((account_id, day)) => match store.enqueue_report(&m, account_id, day, now)? {
            ReportQueued::Queued => Ok(Ok(qid)),
            ReportQueued::Already(earlier) => Ok(Err(earlier)),
        },
        None => {
            store.enqueue(&m, EnqueuePolicy::default(), now)?;
            Ok(Ok(qid))
        }
    }
}

/// Queue a notice for every automatic block not yet announced (limit or
/// error ratio) of an account with a report recipient. Returns how many
/// were queued; the caller wakes the relay. Called by `scriptmail bounce`
/// after it records errors, and meant for the relay and the sweep too.
pub fn notify(cfg: &Config, store: &mut Store, now: i64) -> Result<usize, ReportError> {
    let mut queued = 0;
    for n in store.take_block_notices()? {
        if !valid_recipient(&n.report_to) {
            log::log(
                Level::Warning,
                &format!(
                    "account={} status=skipped stat={}",
                    sanitize::line(&n.account),
                    log::quote(&format!(
                        "block notice not sent: invalid report recipient {}",
                        n.report_to
                    ))
                ),
            );
            continue;
        }
        let (subject, body) = render_notice(&n, cfg);
        let Ok(qid) = enqueue(
            cfg,
            store,
            &Outgoing {
                account: &n.account,
                to: &n.report_to,
                subject: &subject,
                kind: "notice",
                body: &body,
            },
            None,
            now,
        )?
        else {
            continue;
        };
        log::log(
            Level::Info,
            &format!(
                "qid={qid} account={} to=<{}> status=queued stat=\"block notice ({})\"",
                sanitize::line(&n.account),
                sanitize::line(&n.report_to),
                sanitize::line(&n.event.new)
            ),
        );
        queued += 1;
    }
    Ok(queued)
}

/// What `mailq-ctl report` is asked to do.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'a> {
    /// Only this account (it may lack a recipient when only previewing).
    pub account: Option<&'a str>,
    /// Queue the reports instead of printing them.
    pub send: bool,
    /// UTC day number; default: yesterday.
    pub day: Option<i64>,
}

/// What `execute` did: the JSON document and the human text to print, and
/// how many mails it queued (the caller wakes the relay when > 0).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub json: serde_json::Value,
    pub text: String,
    pub queued: usize,
}

/// Make the reports of one day; print them or, with `send`, queue them
/// (once per account and day: a re-run of the timer sends nothing twice).
pub fn execute(
    cfg: &Config,
    store: &mut Store,
    opts: &Options<'_>,
    now: i64,
) -> Result<Outcome, ReportError> {
    let day = opts.day.unwrap_or(clock::day_of(now) - 1);
    let accounts: Vec<ReportAccount> = match opts.account {
        None => store.report_accounts(None)?,
        Some(name) => {
            let a = store.account(name)?;
            match a.report_to.filter(|r| !r.is_empty()) {
                Some(report_to) => vec![ReportAccount {
                    id: a.id,
                    name: a.name,
                    report_to,
                }],
                None if opts.send => return Err(ReportError::NoRecipient(a.name)),
                // Preview an account without a recipient.
                None => vec![ReportAccount {
                    id: a.id,
                    name: a.name,
                    report_to: String::new(),
                }],
            }
        }
    };
    let mut items = Vec::new();
    let mut text = String::new();
    let mut queued = 0;
    for a in &accounts {
        let to = (!a.report_to.is_empty()).then_some(a.report_to.as_str());
        let r = collect(store, a.id, &a.name, to, day)?;
        if r.is_empty() {
            continue;
        }
        let subject = subject(&r, &cfg.hostname);
        let body = render(&r, &cfg.hostname);
        let mut status = "printed";
        let mut qid = None;
        if opts.send {
            match to {
                Some(to) if !valid_recipient(to) => {
                    status = "invalid-recipient";
                    let _ = writeln!(
                        text,
                        "{}: not sent, the report recipient {} is not a valid address",
                        shown(&a.name, 64),
                        shown(to, MAX_VALUE)
                    );
                    log::log(
                        Level::Warning,
                        &format!(
                            "account={} status=skipped stat={}",
                            sanitize::line(&a.name),
                            log::quote(&format!("report not sent: invalid recipient {to}"))
                        ),
                    );
                }
                Some(to) => match enqueue(
                    cfg,
                    store,
                    &Outgoing {
                        account: &a.name,
                        to,
                        subject: &subject,
                        kind: "daily",
                        body: &body,
                    },
                    Some((a.id, day)),
                    now,
                )? {
                    Err(earlier) => {
                        status = "already-sent";
                        let _ = writeln!(
                            text,
                            "{}: report for {} already sent (queue id {earlier})",
                            shown(&a.name, 64),
                            clock::format_day(day)
                        );
                        qid = Some(earlier);
                    }
                    Ok(q) => {
                        log::log(
                            Level::Info,
                            &format!(
                                "qid={q} account={} to=<{}> status=queued stat=\"daily report {} errors={} expired={} events={}\"",
                                sanitize::line(&a.name),
                                sanitize::line(to),
                                clock::format_day(day),
                                r.errors_total,
                                r.expired_total,
                                r.events.len()
                            ),
                        );
                        let _ = writeln!(
                            text,
                            "{}: report for {} queued to {} (queue id {q})",
                            shown(&a.name, 64),
                            clock::format_day(day),
                            shown(to, MAX_VALUE)
                        );
                        status = "queued";
                        qid = Some(q);
                        queued += 1;
                    }
                },
                None => {
                    status = "no-recipient";
                    let _ = writeln!(text, "{}: no report recipient", shown(&a.name, 64));
                }
            }
        } else {
            let _ = writeln!(
                text,
                "To: {}\nSubject: {}\n\n{}",
                to.map_or_else(
                    || "(no report recipient)".to_string(),
                    |t| shown(t, MAX_VALUE)
                ),
                subject,
                body
            );
        }
        items.push(report_json(&r, status, qid.as_deref()));
    }
    if items.is_empty() {
        let _ = writeln!(text, "Nothing to report for {}.", clock::format_day(day));
    }
    Ok(Outcome {
        json: json!({
            "day": clock::format_day(day),
            "reports": items,
        }),
        text,
        queued,
    })
}

/// The stable JSON form of one report (raw values: JSON escapes them).
pub fn report_json(r: &Report, status: &str, qid: Option<&str>) -> serde_json::Value {
    json!({
        "account": r.account,
        "report_to": r.report_to,
        "day": clock::format_day(r.day),
        "status": status,
        "qid": qid,
        "errors": {
            "total": r.errors_total,
            "items": r.errors.iter().map(|e| json!({
                "at": when(e.at),
                "at_ms": e.at,
                "qid": e.qid,
                "rcpt": e.rcpt,
                "kind": e.kind,
                "message": e.message,
                "subject": e.subject,
                "script": e.script,
            })).collect::<Vec<_>>(),
        },
        "expired": {
            "total": r.expired_total,
            "items": r.expired.iter().map(|m| json!({
                "at": when(m.at),
                "at_ms": m.at,
                "created": when(m.created),
                "qid": m.qid,
                "sender": m.sender,
                "recipients": m.recipients,
                "subject": m.subject,
                "script": m.script,
            })).collect::<Vec<_>>(),
        },
        "events": r.events.iter().map(|e| json!({
            "at": when(e.at),
            "at_ms": e.at,
            "old_state": e.old,
            "new_state": e.new,
            "reason": e.reason,
            "actor": e.actor,
            "note": e.note,
        })).collect::<Vec<_>>(),
    })
}

/// `report` on its own (for a caller that has no store open yet): the
/// caller has already switched to the queue owner. Prints to stdout.
pub fn run(
    cfg: &Config,
    config_path: Option<&Path>,
    account: Option<&str>,
    send: bool,
    json: bool,
    day: Option<i64>,
) -> Result<Exit, (Exit, String)> {
    let fail = |e: ReportError| (e.exit_code(), e.to_string());
    let mut store = Store::open(&cfg.db_path(), Durability::Full).map_err(|e| fail(e.into()))?;
    let o = execute(
        cfg,
        &mut store,
        &Options { account, send, day },
        clock::now_ms(),
    )
    .map_err(fail)?;
    if o.queued > 0 {
        crate::wake::relay(cfg, config_path);
    }
    let out = if json {
        serde_json::to_string_pretty(&o.json).unwrap_or_default() + "\n"
    } else {
        o.text
    };
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const T0: i64 = 1_795_353_858_000; // 2026-11-22T13:24:18Z

    fn cfg() -> Config {
        Config::parse(
            "node.domain = \"node1.example.net\"\nreport.from = \"reports@node1.example.net\"\n",
            Path::new("/t.toml"),
        )
        .unwrap()
    }

    const HOSTILE: &str =
        "Win!\r\nBcc: victim@example.com\r\n\r\n\u{1b}[31mred\u{1b}[0m \u{202e}fdp.exe\u{7f}\u{85}";

    fn hostile_report() -> Report {
        Report {
            account: "acme\nX-Evil: 1".into(),
            report_to: Some("admin@example.com".into()),
            day: clock::day_of(T0),
            errors: vec![ErrorRow {
                at: T0,
                qid: "Q1\r\nX: y".into(),
                rcpt: "bob@example.com\r\nCc: all@example.com".into(),
                kind: "dsn".into(),
                message: "550 5.1.1 <bob@example.com>: unknown\r\n.\r\nQUIT".into(),
                subject: HOSTILE.into(),
                script: "/var/www/\u{1b}]0;pwned\u{7}x.php".into(),
            }],
            errors_total: 1,
            expired: vec![ExpiredMail {
                at: T0,
                created: T0 - 3 * DAY_MS,
                qid: "H1".into(),
                sender: "a@b".into(),
                recipients: vec!["x@example.com\nTo: y@example.com".into()],
                subject: "=?UTF-8?B?SMOpbGxvIHfDtnJsZA==?=".into(),
                script: String::new(),
            }],
            expired_total: 1,
            events: vec![Event {
                at: T0,
                old: "ok".into(),
                new: "bounce".into(),
                reason: "bounce".into(),
                actor: "scriptmail".into(),
                note: "error ratio 3/4 (75%)".into(),
            }],
        }
    }

    #[test]
    fn shown_decodes_sanitises_and_caps_length() {
        assert_eq!(shown("a\r\nb\u{1b}[1m", 100), "a??b?[1m");
        assert_eq!(shown("x\u{202e}y\u{2028}z\u{200b}", 100), "x?y?z?");
        assert_eq!(shown("abcdef", 4), "abc…");
        assert_eq!(shown("é\u{85}", 10), "é?");
    }

    #[test]
    fn encoded_words_decode() {
        assert_eq!(decode_encoded_words("=?UTF-8?B?SMOpbGxv?="), "Héllo");
        assert_eq!(
            decode_encoded_words("=?iso-8859-1?Q?caf=E9_cr=E8me?= ok"),
            "café crème ok"
        );
        assert_eq!(decode_encoded_words("=?utf-8?q?a?= =?utf-8?q?b?="), "ab");
        // Charsets beyond Latin-1 and UTF-8: windows-1252's euro sign and
        // quotes (they came out as C1 controls, then "?"), KOI8-R.
        assert_eq!(
            decode_encoded_words("=?windows-1252?Q?=84Rechnung_=FCber_100_=80=93?="),
            "„Rechnung über 100 €“"
        );
        assert_eq!(decode_encoded_words("=?koi8-r?B?8NLJ18XU?="), "Привет");
        assert_eq!(shown("=?windows-1252?Q?100_=80?=", 20), "100 €");
        assert_eq!(decode_encoded_words("=?utf-8?B?!!!?="), "=?utf-8?B?!!!?=");
        assert_eq!(decode_encoded_words("no words"), "no words");
        // A decoded control character is still sanitised by `shown`.
        assert_eq!(shown("=?utf-8?Q?a=0D=0AB?=", 10), "a??B");
    }

    #[test]
    fn hostile_values_stay_on_their_line_in_the_body() {
        let r = hostile_report();
        let body = render(&r, "node1.example.net");
        for line in body.lines() {
            assert!(
                !line.chars().any(sanitize::is_unsafe),
                "control character in {line:?}"
            );
            assert!(
                !line.starts_with("Bcc:") && !line.starts_with("Cc:") && !line.starts_with("To: y")
            );
            assert!(line != ".", "a lone dot line");
        }
        assert!(
            body.contains("to: bob@example.com??Cc: all@example.com"),
            "{body}"
        );
        assert!(
            body.contains("subject: Win!??Bcc: victim@example.com?????[31mred?[0m ?fdp.exe??"),
            "{body}"
        );
        assert!(body.contains("subject: Héllo wörld"), "{body}");
        assert!(body.contains("script: /var/www/?]0;pwned?x.php"), "{body}");
        assert!(body.contains("script: (unknown)"));
        assert!(body.contains("ok -> bounce"));
        assert!(body.contains("note: error ratio 3/4 (75%)"));
        assert!(body.contains("1 mail(s) in error, 1 held mail(s) expired, 1 change(s)"));
    }

    #[test]
    fn headers_come_from_trusted_values_only() {
        let c = cfg();
        let r = hostile_report();
        let subject = subject(&r, &c.hostname);
        assert_eq!(
            subject,
            "scriptmail report for acme_X-Evil__1 on node1.example.net: 2026-11-22"
        );
        let body = render(&r, &c.hostname);
        let m = compose(
            &c,
            "admin@example.com",
            &subject,
            "daily",
            &body,
            "QID1",
            T0,
        );
        let text = String::from_utf8(m.clone()).unwrap();
        let (head, rest) = text.split_once("\r\n\r\n").unwrap();
        let names: Vec<&str> = head
            .split("\r\n")
            .filter(|l| !l.starts_with('\t'))
            .map(|l| l.split(':').next().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "Received",
                "From",
                "To",
                "Subject",
                "Date",
                "Message-ID",
                "MIME-Version",
                "Content-Type",
                "Content-Transfer-Encoding",
                "Auto-Submitted",
                "X-Scriptmail-Report"
            ]
        );
        assert!(head.contains("To: <admin@example.com>\r\n"));
        assert!(head.contains("From: scriptmail <reports@node1.example.net>\r\n"));
        assert!(head.contains("Message-ID: <1795353858000.QID1@node1.example.net>"));
        // UTF-8 in the body: quoted-printable, 7-bit on the wire, no bare CR/LF.
        assert!(head.contains("Content-Transfer-Encoding: quoted-printable"));
        assert!(m.is_ascii());
        assert!(!rest.replace("\r\n", "").contains(['\r', '\n']));
        assert!(rest.split("\r\n").all(|l| l.len() <= 76), "line too long");
        assert!(rest.contains("H=C3=A9llo"), "{rest}");
        // The trace and Message-ID let a bounce of the report be matched.
        let report = crate::dsn::parse(&m);
        assert_eq!(
            crate::dsn::trace_qid(&report.headers, "node1.example.net"),
            None,
            "the report's own trace is not a script's"
        );
        assert_eq!(
            crate::dsn::message_id_qid(report.header("Message-ID").unwrap(), "node1.example.net")
                .as_deref(),
            Some("QID1")
        );
    }

    #[test]
    fn ascii_body_is_sent_as_is() {
        let c = cfg();
        let m = compose(
            &c,
            "a@example.com",
            "s",
            "daily",
            "line one\n.\nend\n",
            "Q",
            T0,
        );
        let text = String::from_utf8(m).unwrap();
        assert!(text.contains("Content-Transfer-Encoding: 7bit"));
        assert!(text.ends_with("\r\n\r\nline one\r\n.\r\nend\r\n"));
    }

    #[test]
    fn quoted_printable_lines() {
        let mut m = String::new();
        qp_line(&mut m, &"é".repeat(40));
        assert!(m.lines().all(|l| l.len() <= 76));
        assert!(m.contains("=\r\n"));
        let mut m = String::new();
        qp_line(&mut m, "a = b ");
        assert_eq!(m, "a =3D b=20\r\n");
        assert_eq!(base64_encode(b"Ma"), "TWE=");
        assert_eq!(base64_encode(b"Man"), "TWFu");
        assert_eq!(encode_subject("Café"), "=?utf-8?B?Q2Fmw6k=?=");
    }

    #[test]
    fn report_recipients_are_validated() {
        for ok in [
            "admin@example.com",
            "a.b+c@sub.example.org",
            "x@localhost",
            "o'brien+reports@x-y.example.org",
        ] {
            assert!(valid_recipient(ok), "{ok}");
        }
        for bad in [
            "",
            "admin",
            "@example.com",
            "admin@",
            "a@b@c",
            "a b@example.com",
            "a@example.com\r\nBcc: x@y",
            "a@example.com, b@example.com",
            "\"quoted\"@example.com",
            "<a@example.com>",
            "a@[127.0.0.1]",
            "a@example.com;b",
            "\"a b\"@x.org",
            "a..b@x.org",
            ".a@x.org",
            "a.@x.org",
            "a@x..org",
            "a@x.org.",
            "a@-x.org",
            "a@x_y.org",
            "é@example.com",
        ] {
            assert!(!valid_recipient(bad), "{bad:?}");
        }
    }

    #[test]
    fn notice_text() {
        let c = cfg();
        let n = BlockNotice {
            account: "acme".into(),
            report_to: "admin@example.com".into(),
            event: Event {
                at: T0,
                old: "ok".into(),
                new: "bounce".into(),
                reason: "bounce".into(),
                actor: "scriptmail".into(),
                note: "error ratio 3/4 (75%) since 2026-11-21T13:24:18Z is above 50%".into(),
            },
        };
        let (subject, body) = render_notice(&n, &c);
        assert_eq!(
            subject,
            "scriptmail: account acme blocked (bounce) on node1.example.net"
        );
        assert!(body.contains("too many of its mails came back in error"));
        assert!(body.contains("above 50%"));
        assert!(body.contains("at most 3d00h"));
    }
}
