//! The arguments of MAIL and RCPT (RFC 5321 §4.1.1.2, §4.1.1.3): the path, checked so that
//! what is recorded can be relayed and logged, and the parameters (SIZE, BODY, and the
//! DSN parameters of RFC 3461), each refused with its own reply.

use super::Envelope;
use crate::dsn_params::{self, Envid, Notify};
use crate::{address, envelope};

/// A reply chosen by a parser: code plus text with its enhanced status code.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Reply {
    pub(super) code: u16,
    pub(super) text: &'static str,
}

const fn reply(code: u16, text: &'static str) -> Reply {
    Reply { code, text }
}

// RFC 5321 §4.2.3 / RFC 3463 codes used for parameter and path errors.
const BAD_SENDER: Reply = reply(501, "5.1.7 Error: bad sender address syntax");
const BAD_RCPT: Reply = reply(501, "5.1.3 Error: bad recipient address syntax");
const BAD_PARAM: Reply = reply(501, "5.5.4 Error: bad parameter value");
const DUP_PARAM: Reply = reply(501, "5.5.4 Error: duplicate parameter");
/// RFC 5321 §4.1.1.11 / §4.2.2: 555 for MAIL/RCPT parameters we do not implement.
const UNKNOWN_PARAM: Reply = reply(555, "5.5.4 Error: unsupported parameter");

/// Whether the relay can send `path` once qualified with `domain`: refusing it at MAIL
/// or RCPT tells the client which address is wrong, where refusing the whole message
/// after DATA would not.
fn sendable(path: &str, domain: &str) -> bool {
    envelope::check(&address::qualify(path, domain)).is_ok()
}

/// `MAIL FROM:<reverse-path> [params]` (RFC 5321 §4.1.1.2, §4.1.2).
pub(super) fn parse_mail(arg: &str, limit: u64, domain: &str) -> Result<Envelope, Reply> {
    let (path, params) = split_path(arg, "FROM:").ok_or(BAD_SENDER)?;
    if !path.is_empty() && !sendable(&path, domain) {
        return Err(BAD_SENDER);
    }
    let mut env = Envelope {
        sender: (!path.is_empty()).then_some(path),
        ..Envelope::default()
    };
    for param in keyed(params) {
        let (key, value) = param?;
        match (key.as_str(), value) {
            // RFC 6152 §2: BODY=7BIT | 8BITMIME (BINARYMIME needs CHUNKING, not offered).
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("8BITMIME") => env.body_8bit = true,
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("7BIT") => env.body_8bit = false,
            // RFC 1870 §6: a declared size above our limit is refused at once.
            ("SIZE", Some(v)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                // Too many digits to fit u64 is certainly too large.
                if v.parse::<u64>().map_or(true, |n| n > limit) {
                    return Err(reply(
                        552,
                        "5.3.4 Error: message size exceeds fixed maximum message size",
                    ));
                }
            }
            ("RET", Some(v)) => env.dsn_ret = Some(v.parse().map_err(|_| BAD_PARAM)?),
            ("ENVID", Some(v)) => env.envid = Some(Envid::from_xtext(v).map_err(|_| BAD_PARAM)?),
            ("BODY" | "SIZE" | "RET" | "ENVID", _) => return Err(BAD_PARAM),
            _ => return Err(UNKNOWN_PARAM),
        }
    }
    Ok(env)
}

/// `RCPT TO:<forward-path> [params]` (RFC 5321 §4.1.1.3). Returns the address and the
/// NOTIFY value, if any.
pub(super) fn parse_rcpt(arg: &str, domain: &str) -> Result<(String, Option<Notify>), Reply> {
    let (path, params) = split_path(arg, "TO:").ok_or(BAD_RCPT)?;
    // The null path is only a reverse-path (RFC 5321 §4.1.2).
    if path.is_empty() || !sendable(&path, domain) {
        return Err(BAD_RCPT);
    }
    let mut notify = None;
    for param in keyed(params) {
        let (key, value) = param?;
        match (key.as_str(), value) {
            ("NOTIFY", Some(v)) => notify = Some(v.parse().map_err(|_| BAD_PARAM)?),
            // RFC 3461 §4.2: ORCPT=addr-type;xtext. Checked, then not used: we relay with
            // the recipient as given. What it decodes to must be printable text, as it
            // would end up in headers and logs.
            ("ORCPT", Some(v)) => {
                let (kind, addr) = v.split_once(';').ok_or(BAD_PARAM)?;
                let printable = dsn_params::xtext_decode(addr)
                    .is_some_and(|a| a.iter().all(|b| (0x20..0x7f).contains(b)));
                if kind.is_empty() || addr.is_empty() || !printable {
                    return Err(BAD_PARAM);
                }
            }
            ("NOTIFY" | "ORCPT", None) => return Err(BAD_PARAM),
            _ => return Err(UNKNOWN_PARAM),
        }
    }
    Ok((path, notify))
}

/// The parameters in order, their keywords upper-cased (they are
/// case-insensitive, RFC 5321 §2.4); a keyword given again is an error where
/// it comes, so the first fault in the line is the one answered.
fn keyed<'a>(
    params: impl Iterator<Item = (&'a str, Option<&'a str>)>,
) -> impl Iterator<Item = Result<(String, Option<&'a str>), Reply>> {
    let mut seen: Vec<String> = Vec::new();
    params.map(move |(key, value)| {
        let key = key.to_ascii_uppercase();
        if seen.contains(&key) {
            return Err(DUP_PARAM);
        }
        seen.push(key.clone());
        Ok((key, value))
    })
}

/// Split `FROM:<path> params` / `TO:<path> params` into the path (brackets and any source
/// route removed, `""` for `<>`) and the `KEY[=VALUE]` parameters. `None` on bad syntax.
fn split_path<'a>(
    arg: &'a str,
    keyword: &str,
) -> Option<(String, impl Iterator<Item = (&'a str, Option<&'a str>)>)> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    // "MAIL FROM: <a@b>" is common enough (and accepted by Postfix) to allow the space.
    let rest = arg.get(keyword.len()..)?.trim_start_matches(' ');
    let (path, after) = if let Some(inner) = rest.strip_prefix('<') {
        let end = closing_bracket(inner)?;
        (&inner[..end], &inner[end + 1..])
    } else {
        // No brackets: RFC 5321 requires them, but Postfix accepts a bare address unless
        // strict_rfc821_envelopes is set; so do we, up to the first space.
        let end = rest.find(' ').unwrap_or(rest.len());
        let bare = &rest[..end];
        if bare.is_empty() || bare.contains(['<', '>']) {
            return None;
        }
        (bare, &rest[end..])
    };
    // Parameters are separated from the path by a space (RFC 5321 §4.1.2 Mail-parameters).
    if !after.is_empty() && !after.starts_with(' ') {
        return None;
    }
    // RFC 5321 §4.1.1.3 / Appendix C: a source route "@a,@b:user@c" must be accepted and
    // its route ignored.
    let path = if path.starts_with('@') {
        let (_, mailbox) = path.split_once(':')?;
        if mailbox.is_empty() {
            return None;
        }
        mailbox
    } else {
        path
    };
    if !valid_mailbox_text(path) {
        return None;
    }
    let params = after
        .split(' ')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (p, None),
        });
    Some((path.to_owned(), params))
}

/// Where a left-to-right scan stands with respect to quoted strings and
/// quoted-pairs (RFC 5321 §4.1.2 Quoted-string).
#[derive(Default)]
struct QuoteScan {
    in_quote: bool,
    escaped: bool,
}

impl QuoteScan {
    /// Take the next character; true when it is "bare": outside a quoted
    /// string, not escaped, and not itself a quote or a backslash.
    fn step(&mut self, c: char) -> bool {
        let bare = !self.in_quote && !self.escaped && c != '\\' && c != '"';
        if self.escaped {
            self.escaped = false;
        } else if c == '\\' {
            self.escaped = true;
        } else if c == '"' {
            self.in_quote = !self.in_quote;
        }
        bare
    }

    /// No quoted string or quoted-pair left open.
    fn balanced(&self) -> bool {
        !self.in_quote && !self.escaped
    }
}

/// Index of the `>` that closes a path, skipping quoted strings and quoted-pairs
/// (RFC 5321 §4.1.2 Quoted-string), so `<"a>b"@c>` works.
fn closing_bracket(s: &str) -> Option<usize> {
    let mut q = QuoteScan::default();
    s.char_indices()
        .find(|&(_, c)| q.step(c) && c == '>')
        .map(|(i, _)| i)
}

/// Loose mailbox check: what we record must not break a later SMTP command or log line.
/// No control characters anywhere, and no unquoted space or angle bracket.
fn valid_mailbox_text(s: &str) -> bool {
    let mut q = QuoteScan::default();
    s.chars().all(|c| {
        let bare = q.step(c);
        !(c.is_control() || (bare && matches!(c, ' ' | '<' | '>')))
    }) && q.balanced()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_ends_at_the_first_bare_angle_bracket() {
        assert_eq!(closing_bracket("a@b> SIZE=1"), Some(3));
        assert_eq!(closing_bracket("\"a>b\"@c> x"), Some(7));
        assert_eq!(closing_bracket("a\\>b>"), Some(4));
        assert_eq!(closing_bracket("\"a>b"), None);
        assert_eq!(closing_bracket("a@b"), None);
    }

    #[test]
    fn mailbox_text_may_quote_or_escape_what_would_break_a_command() {
        for ok in ["a@b", "\"john doe\"@x", "a\\ b@x", "\"a<b>\"@x", "\"\"@x"] {
            assert!(valid_mailbox_text(ok), "{ok:?}");
        }
        for bad in [
            "john doe@x",
            "a<b@x",
            "\"open@x",
            "a\\",
            "a\u{1}b@x",
            "\"a\u{7}\"@x",
            "a\\\u{1}@x",
        ] {
            assert!(!valid_mailbox_text(bad), "{bad:?}");
        }
    }
}
