//! A message as `sendmail` hands it over: everything relayd stores except
//! what relayd decides itself (the account, from the kernel's peer uid; the
//! arrival time; the `Received:` trace). Encoded as a [`frame`](super::frame)
//! for the socket and for maildrop files, and checked again on arrival:
//! relayd accepts only what an honest `sendmail` could have sent, so a
//! tenant writing frames by hand gains nothing (docs/submission.md).

use super::frame::{self, Head, Verb};
use crate::dsn_params::{Envid, Notify, Ret};
use crate::envelope;
use crate::exit::Exit;
use crate::sanitize;

/// Longest subject and script name kept (they are for listings and logs).
pub const MAX_LABEL: usize = 200;
/// Longest working directory kept, in bytes.
pub const MAX_CWD: usize = 4096;

/// One message handed over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parcel {
    /// Chosen by `sendmail` (see `submit::new_qid`): relayd and the
    /// maildrop import are idempotent by it.
    pub qid: String,
    /// The envelope sender; empty is the null sender.
    pub sender: String,
    pub recipients: Vec<String>,
    pub subject: String,
    pub script: String,
    pub cwd: String,
    pub dsn_notify: Option<Notify>,
    pub dsn_ret: Option<Ret>,
    pub envid: Option<Envid>,
    pub body_8bit: bool,
    /// The message in wire form (CRLF lines, none over 998 octets).
    pub data: Vec<u8>,
}

/// What only trusted code writes: a maildrop file's caller and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub uid: u32,
    /// When `sendmail` took the message (ms since the epoch).
    pub time: i64,
}

/// Caps a receiver applies to a message frame.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_recipients: usize,
    pub max_data: u64,
}

impl Limits {
    /// The frame caps that go with these limits.
    pub fn caps(&self) -> frame::Caps {
        frame::Caps {
            // Every recipient is a field, plus the dozen others and room for
            // fields a newer sender adds.
            max_fields: self.max_recipients.saturating_add(64),
            max_data: self.max_data,
        }
    }

    /// The largest message data a frame may carry for a configured
    /// `max_message_size`: `sendmail` checks the size before it re-encodes
    /// lines over 998 octets, which can add about a third (base64).
    pub fn max_data_for(max_message_size: u64) -> u64 {
        max_message_size
            .saturating_add(max_message_size / 2)
            .saturating_add(64 * 1024)
    }
}

/// Why a message frame is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text}")]
pub struct Refusal {
    pub exit: Exit,
    pub text: String,
}

fn refuse(exit: Exit, text: impl Into<String>) -> Refusal {
    Refusal {
        exit,
        text: text.into(),
    }
}

impl Parcel {
    /// The frame head for this message (`MSG`, or `MAILDROP` with its origin).
    pub fn head(&self, origin: Option<Origin>) -> Vec<u8> {
        let (uid, time) = match origin {
            Some(o) => (o.uid.to_string(), o.time.to_string()),
            None => (String::new(), String::new()),
        };
        let notify = self.dsn_notify.map(|n| n.to_string());
        let ret = self.dsn_ret.map(|r| r.to_string());
        let mut fields: Vec<(&str, &str)> = Vec::with_capacity(self.recipients.len() + 12);
        if origin.is_some() {
            fields.push(("uid", &uid));
            fields.push(("time", &time));
        }
        fields.push(("qid", &self.qid));
        fields.push(("from", &self.sender));
        for r in &self.recipients {
            fields.push(("rcpt", r));
        }
        fields.push(("subject", &self.subject));
        fields.push(("script", &self.script));
        fields.push(("cwd", &self.cwd));
        if let Some(v) = &notify {
            fields.push(("notify", v));
        }
        if let Some(v) = &ret {
            fields.push(("ret", v));
        }
        if let Some(v) = &self.envid {
            fields.push(("envid", v.as_str()));
        }
        fields.push(("body8", if self.body_8bit { "1" } else { "0" }));
        let verb = if origin.is_some() {
            Verb::Maildrop
        } else {
            Verb::Msg
        };
        frame::encode_head(verb, &fields, self.data.len() as u64)
    }
}

/// A message frame's head, checked; its data still to be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The parcel, `data` empty.
    pub parcel: Parcel,
    pub data_len: u64,
    /// Only from a maildrop file (see [`envelope`]).
    pub origin: Option<Origin>,
}

/// Check a message frame's head. `origin` is read only when `trusted` (a
/// maildrop file, written by `sendmail` after its switch to the service
/// user); over the socket the kernel names the caller, and `uid`, `time`,
/// `account` or any other unknown key are ignored.
pub fn envelope(head: &Head, limits: &Limits, trusted: bool) -> Result<Envelope, Refusal> {
    let want = if trusted { Verb::Maildrop } else { Verb::Msg };
    if head.verb != want {
        return Err(refuse(
            Exit::Usage,
            format!("a {} frame is not a message here", head.verb.as_str()),
        ));
    }
    if head.data_len > limits.max_data {
        return Err(refuse(
            Exit::Unavailable,
            format!("message too large: more than {} bytes", limits.max_data),
        ));
    }
    fn one_of<'h>(head: &'h Head, key: &str) -> Result<Option<&'h str>, Refusal> {
        let mut it = head.all(key);
        let v = it.next();
        if it.next().is_some() {
            return Err(refuse(Exit::DataErr, format!("more than one {key}")));
        }
        Ok(v)
    }
    let one = |key: &str| one_of(head, key);
    let qid = one("qid")?.unwrap_or_default();
    if qid.len() != 20
        || !qid
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
    {
        return Err(refuse(Exit::DataErr, "bad or missing queue id"));
    }
    let sender = one("from")?.ok_or_else(|| refuse(Exit::DataErr, "no envelope sender"))?;
    checked(sender, true)?;
    let recipients: Vec<String> = head.all("rcpt").map(str::to_owned).collect();
    if recipients.is_empty() {
        return Err(refuse(Exit::Usage, "no recipients"));
    }
    if recipients.len() > limits.max_recipients {
        return Err(refuse(
            Exit::DataErr,
            format!(
                "too many recipients: more than {} (queue.max_recipients)",
                limits.max_recipients
            ),
        ));
    }
    for r in &recipients {
        checked(r, false)?;
    }
    let label = |key: &str| -> Result<String, Refusal> {
        let v = one(key)?.unwrap_or_default();
        Ok(sanitize::truncate(&sanitize::line(v.trim()), MAX_LABEL).into_owned())
    };
    // The DSN parameters as `sendmail` normalised them (`dsn_params`: the
    // one rule the option parser and the -bs server apply too).
    let dsn_notify = one("notify")?
        .map(str::parse::<Notify>)
        .transpose()
        .map_err(|_| refuse(Exit::DataErr, "bad DSN notify value"))?;
    let dsn_ret = one("ret")?
        .map(str::parse::<Ret>)
        .transpose()
        .map_err(|_| refuse(Exit::DataErr, "bad DSN return value"))?;
    let envid = one("envid")?
        .map(|e| Envid::new(e.as_bytes()))
        .transpose()
        .map_err(|_| refuse(Exit::DataErr, "bad DSN envelope id"))?;
    let body_8bit = match one("body8")? {
        None | Some("0") => false,
        Some("1") => true,
        Some(_) => return Err(refuse(Exit::DataErr, "bad body8 value")),
    };
    let origin = if trusted {
        let num = |key: &str| one(key).ok().flatten().and_then(frame::number);
        let uid = num("uid").and_then(|u| u32::try_from(u).ok());
        let time = num("time").and_then(|t| i64::try_from(t).ok());
        match (uid, time) {
            (Some(uid), Some(time)) => Some(Origin { uid, time }),
            _ => return Err(refuse(Exit::DataErr, "maildrop file without uid or time")),
        }
    } else {
        None
    };
    let cwd = one("cwd")?.unwrap_or_default();
    let cwd = cwd
        .get(..floor_char_boundary(cwd, MAX_CWD))
        .unwrap_or_default();
    Ok(Envelope {
        parcel: Parcel {
            qid: qid.to_owned(),
            sender: sender.to_owned(),
            recipients,
            subject: label("subject")?,
            script: label("script")?,
            cwd: cwd.to_owned(),
            dsn_notify,
            dsn_ret,
            envid,
            body_8bit,
            data: Vec::new(),
        },
        data_len: head.data_len,
        origin,
    })
}

/// The largest index ≤ `max` that is a char boundary of `s`.
pub fn floor_char_boundary(s: &str, max: usize) -> usize {
    let mut i = max.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// An address the relay can send (`envelope::check`); the sender may be
/// empty (the null sender).
fn checked(addr: &str, sender: bool) -> Result<(), Refusal> {
    if sender && addr.is_empty() {
        return Ok(());
    }
    envelope::check(addr).map_err(|why| {
        refuse(
            Exit::DataErr,
            format!("bad address {:?}: {why}", sanitize::line(addr)),
        )
    })
}

/// Whether `data` is a message in wire form as `sendmail` writes it: CRLF
/// line ends only (no bare CR or LF, which a smarthost might read as the end
/// of the data: SMTP smuggling), no line over 998 octets (RFC 5322 §2.1.1),
/// and a final CRLF.
pub fn is_wire_form(data: &[u8]) -> bool {
    if !data.is_empty() && !data.ends_with(b"\r\n") {
        return false;
    }
    let mut line_start = 0;
    for (i, &b) in data.iter().enumerate() {
        match b {
            b'\r' if data.get(i + 1) != Some(&b'\n') => return false,
            b'\n' => {
                if i == 0 || data.get(i - 1) != Some(&b'\r') || i - 1 - line_start > 998 {
                    return false;
                }
                line_start = i + 1;
            }
            _ => {}
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_recipients: 3,
        max_data: 1000,
    };

    fn parcel() -> Parcel {
        Parcel {
            qid: "6A1F0C2B9D3E4F5A6B7C".into(),
            sender: "web1@node1.example.net".into(),
            recipients: vec!["a@example.org".into(), "b@example.org".into()],
            subject: "Hello".into(),
            script: "1001:/www/contact.php".into(),
            cwd: "/home/web1/www".into(),
            dsn_notify: Some("SUCCESS,FAILURE".parse().unwrap()),
            dsn_ret: Some("HDRS".parse().unwrap()),
            envid: Some(Envid::new(b"id 1").unwrap()),
            body_8bit: true,
            data: b"Subject: Hello\r\n\r\nHi\r\n".to_vec(),
        }
    }

    fn decode(bytes: &[u8], trusted: bool) -> Result<Envelope, Refusal> {
        let h = frame::read_head(&mut &bytes[..], &LIMITS.caps())
            .expect("frame")
            .expect("head");
        envelope(&h, &LIMITS, trusted)
    }

    #[test]
    fn a_parcel_round_trips() {
        let p = parcel();
        let e = decode(&p.head(None), false).unwrap();
        assert_eq!(e.data_len, p.data.len() as u64);
        assert_eq!(e.origin, None);
        assert_eq!(
            e.parcel,
            Parcel {
                data: Vec::new(),
                ..p.clone()
            }
        );
        let o = Origin {
            uid: 1001,
            time: 1_700_000_000_000,
        };
        let e = decode(&p.head(Some(o)), true).unwrap();
        assert_eq!(e.origin, Some(o));
    }

    #[test]
    fn a_frame_claiming_an_identity_gets_none() {
        // Over the socket: uid/time/account are unknown keys, ignored.
        let mut fields = vec![("uid", "0"), ("account", "root"), ("time", "1")];
        let p = parcel();
        fields.extend([
            ("qid", p.qid.as_str()),
            ("from", ""),
            ("rcpt", "a@example.org"),
        ]);
        let bytes = frame::encode_head(Verb::Msg, &fields, 0);
        let e = decode(&bytes, false).unwrap();
        assert_eq!(e.origin, None);
        // And a maildrop frame is refused over the socket, a message frame in a file.
        assert_eq!(
            decode(&p.head(Some(Origin { uid: 0, time: 1 })), false)
                .unwrap_err()
                .exit,
            Exit::Usage
        );
        assert!(decode(&p.head(None), true).is_err());
    }

    /// DSN values a hand-written frame may carry: what `dsn_params` refuses
    /// is refused, what it accepts is stored as it normalises it.
    #[test]
    fn dsn_values_are_checked_by_the_one_rule() {
        let head = |key: &'static str, value: &'static str| {
            let fields = vec![
                ("qid", "6A1F0C2B9D3E4F5A6B7C"),
                ("from", ""),
                ("rcpt", "a@example.org"),
                (key, value),
            ];
            frame::encode_head(Verb::Msg, &fields, 0)
        };
        for (key, bad) in [
            ("notify", "NEVER,SUCCESS"),
            ("notify", "SOMETIMES"),
            ("ret", "BODY"),
            ("envid", "a\r\nRCPT TO:<x@y>"),
        ] {
            let e = decode(&head(key, bad), false).unwrap_err();
            assert_eq!(e.exit, Exit::DataErr, "{key}={bad:?}");
        }
        let e = decode(&head("notify", "success,Success , delay"), false).unwrap();
        assert_eq!(
            e.parcel.dsn_notify.map(|n| n.to_string()).as_deref(),
            Some("SUCCESS,DELAY")
        );
        let e = decode(&head("ret", "hdrs"), false).unwrap();
        assert_eq!(e.parcel.dsn_ret, Some(Ret::Hdrs));
    }

    #[test]
    fn what_sendmail_would_refuse_is_refused() {
        let cases: Vec<(Parcel, Exit)> = vec![
            (
                Parcel {
                    qid: "x".into(),
                    ..parcel()
                },
                Exit::DataErr,
            ),
            (
                Parcel {
                    qid: "6a1f0c2b9d3e4f5a6b7c".into(),
                    ..parcel()
                },
                Exit::DataErr,
            ),
            (
                Parcel {
                    recipients: vec![],
                    ..parcel()
                },
                Exit::Usage,
            ),
            (
                Parcel {
                    recipients: vec![
                        "a@x.org".into(),
                        "b@x.org".into(),
                        "c@x.org".into(),
                        "d@x.org".into(),
                    ],
                    ..parcel()
                },
                Exit::DataErr,
            ),
            (
                Parcel {
                    sender: "bad address".into(),
                    ..parcel()
                },
                Exit::DataErr,
            ),
            (
                Parcel {
                    recipients: vec!["a@b@c".into()],
                    ..parcel()
                },
                Exit::DataErr,
            ),
            (
                Parcel {
                    data: vec![b'x'; 1001],
                    ..parcel()
                },
                Exit::Unavailable,
            ),
        ];
        for (p, exit) in cases {
            let caps = frame::Caps {
                max_data: u64::MAX,
                ..LIMITS.caps()
            };
            let h = frame::read_head(&mut &p.head(None)[..], &caps)
                .unwrap()
                .unwrap();
            assert_eq!(
                envelope(&h, &LIMITS, false).unwrap_err().exit,
                exit,
                "{p:?}"
            );
        }
        // Labels are cleaned and cut; an empty sender is the null sender.
        let p = Parcel {
            subject: format!("\u{1b}[31m{}", "s".repeat(300)),
            sender: String::new(),
            ..parcel()
        };
        let e = decode(&p.head(None), false).unwrap();
        assert!(e.parcel.subject.starts_with("?[31m"));
        assert_eq!(e.parcel.subject.chars().count(), MAX_LABEL);
        assert_eq!(e.parcel.sender, "");
    }

    #[test]
    fn wire_form() {
        for ok in [&b""[..], b"a\r\n", b"Subject: x\r\n\r\nbody\r\n"] {
            assert!(is_wire_form(ok), "{ok:?}");
        }
        let long = [vec![b'x'; 998], b"\r\n".to_vec()].concat();
        assert!(is_wire_form(&long));
        let longer = [vec![b'x'; 999], b"\r\n".to_vec()].concat();
        for bad in [
            &b"a"[..],
            b"a\n",
            b"a\r\nb\n.\nc\r\n",
            b"a\rb\r\n",
            b"\n",
            &longer,
        ] {
            assert!(!is_wire_form(bad), "{bad:?}");
        }
    }
}
