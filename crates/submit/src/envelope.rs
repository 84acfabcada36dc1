//! Whether an address can go into an SMTP envelope as the relay sends it.
//!
//! `sendmail` must not accept (exit 0) what the relay then cannot send: the mail would
//! fail after the caller was told it went, and count against the account's error
//! ratio. The relay builds `MAIL FROM`/`RCPT TO` with lettre's `Address`, whose rules
//! (lettre 0.11 `address/types.rs`, through the `email_address` crate) are:
//! the last `@` splits local part and domain; the local part is 1..=64 octets, either a
//! dot-atom (RFC 5322 §3.2.3 atext, or any Unicode alphanumeric) or a quoted string of
//! qtext, white space and quoted-pairs; the domain is at most 254 octets, and either a
//! `[...]` literal of dtext, an IP address, or labels of at most 63 octets that start
//! and end with an alphanumeric and hold only atext.
//!
//! `sendmail` links no lettre (crates/submit cannot depend on it), so the check is written
//! here, deliberately *at least as strict*: no non-ASCII in a quoted local part, no
//! tab, `<` or `>` anywhere (many servers end a path at the first `>`), domain labels
//! of letters, digits and `-` only (RFC 5321 §4.1.2 `sub-domain`) or Unicode
//! alphanumerics (an IDN in U-label form), and address literals only as RFC 5321
//! §4.1.3 writes them (`[IPv4]`, `[IPv6:...]`). A unit test and a property test in the
//! scriptmail package (`src/lettre_agreement.rs`, which links lettre) check that every
//! address this accepts, lettre accepts too.

use std::net::{Ipv4Addr, Ipv6Addr};

/// RFC 5321 §4.5.3.1.1; lettre's limit too.
const MAX_LOCAL: usize = 64;
/// lettre's (email_address's) limit for the domain.
const MAX_DOMAIN: usize = 254;
/// RFC 1035 §2.3.4: a label is at most 63 octets.
const MAX_LABEL: usize = 63;

/// Why an address cannot be sent.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum Unsendable {
    /// The input bytes were not UTF-8; what is left is U+FFFD where they were.
    #[error("not valid UTF-8")]
    NotUtf8,
    #[error("no '@domain'")]
    NoDomain,
    #[error("empty local part")]
    EmptyLocal,
    #[error("local part longer than {MAX_LOCAL} octets")]
    LocalTooLong,
    #[error("empty word in the local part (a leading, trailing or double dot)")]
    EmptyWord,
    #[error("'{0}' in the local part")]
    LocalChar(char),
    #[error("bad quoted local part")]
    BadQuoted,
    #[error("empty domain")]
    EmptyDomain,
    #[error("domain longer than {MAX_DOMAIN} octets")]
    DomainTooLong,
    #[error("empty label in the domain (a leading, trailing or double dot)")]
    EmptyLabel,
    #[error("domain label longer than {MAX_LABEL} octets")]
    LabelTooLong,
    #[error("a domain label must start and end with a letter or digit")]
    LabelEdge,
    #[error("'{0}' in the domain")]
    DomainChar(char),
    #[error("bad address literal (want [IPv4] or [IPv6:...])")]
    BadLiteral,
}

/// Check `addr` (`local@domain`, qualified) against the rules in the module doc.
pub fn check(addr: &str) -> Result<(), Unsendable> {
    if addr.contains(char::REPLACEMENT_CHARACTER) {
        return Err(Unsendable::NotUtf8);
    }
    let (local, domain) = addr.rsplit_once('@').ok_or(Unsendable::NoDomain)?;
    check_local(local)?;
    check_domain(domain)
}

/// Check a domain alone (the configured `node.domain`, for instance).
pub fn check_domain(domain: &str) -> Result<(), Unsendable> {
    if domain.is_empty() {
        return Err(Unsendable::EmptyDomain);
    }
    if domain.len() > MAX_DOMAIN {
        return Err(Unsendable::DomainTooLong);
    }
    if let Some(literal) = domain.strip_prefix('[') {
        let inner = literal.strip_suffix(']').ok_or(Unsendable::BadLiteral)?;
        let ok = match inner.get(..5) {
            Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => inner
                .get(5..)
                .is_some_and(|a| a.parse::<Ipv6Addr>().is_ok()),
            _ => inner.parse::<Ipv4Addr>().is_ok(),
        };
        return if ok {
            Ok(())
        } else {
            Err(Unsendable::BadLiteral)
        };
    }
    for label in domain.split('.') {
        if label.is_empty() {
            return Err(Unsendable::EmptyLabel);
        }
        if label.len() > MAX_LABEL {
            return Err(Unsendable::LabelTooLong);
        }
        if let Some(c) = label.chars().find(|&c| !is_label_char(c)) {
            return Err(Unsendable::DomainChar(c));
        }
        if !label.starts_with(char::is_alphanumeric) || !label.ends_with(char::is_alphanumeric) {
            return Err(Unsendable::LabelEdge);
        }
    }
    Ok(())
}

fn check_local(local: &str) -> Result<(), Unsendable> {
    if local.is_empty() {
        return Err(Unsendable::EmptyLocal);
    }
    if local.len() > MAX_LOCAL {
        return Err(Unsendable::LocalTooLong);
    }
    if local.starts_with('"') {
        return check_quoted(local);
    }
    for word in local.split('.') {
        if word.is_empty() {
            return Err(Unsendable::EmptyWord);
        }
        if let Some(c) = word.chars().find(|&c| !is_atext(c)) {
            return Err(Unsendable::LocalChar(c));
        }
    }
    Ok(())
}

/// RFC 5321 §4.1.2 Quoted-string, printable ASCII only: qtextSMTP (no `"` or `\`),
/// space, and quoted-pairs of a visible character.
fn check_quoted(local: &str) -> Result<(), Unsendable> {
    let inner = local
        .strip_prefix('"')
        .and_then(|l| l.strip_suffix('"'))
        .filter(|i| !i.is_empty())
        .ok_or(Unsendable::BadQuoted)?;
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        let ok = match c {
            '\\' => chars
                .next()
                .is_some_and(|e| e.is_ascii_graphic() && !is_angle(e)),
            ' ' => true,
            '"' => false,
            _ => c.is_ascii_graphic() && !is_angle(c),
        };
        if !ok {
            return Err(Unsendable::BadQuoted);
        }
    }
    Ok(())
}

fn is_angle(c: char) -> bool {
    c == '<' || c == '>'
}

/// RFC 5322 §3.2.3 atext, plus Unicode alphanumerics (RFC 6531 §3.3 UTF8-non-ascii,
/// as far as lettre takes it).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || "!#$%&'*+-/=?^_`{|}~".contains(c)
        || (!c.is_ascii() && c.is_alphanumeric())
}

/// RFC 5321 §4.1.2 Let-dig / Ldh-str, plus Unicode alphanumerics (U-labels).
fn is_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || (!c.is_ascii() && c.is_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        use Unsendable::*;
        let cases: &[(&str, Result<(), Unsendable>)] = &[
            ("a@x.org", Ok(())),
            ("first.last+tag@sub.x.org", Ok(())),
            ("o'brien@x.org", Ok(())),
            ("\"john doe\"@x.org", Ok(())),
            ("\"a\\\"b\"@x.org", Ok(())),
            ("\"a,b;c@d\"@x.org", Ok(())),
            ("jösé@例え.jp", Ok(())),
            ("a@localhost", Ok(())),
            ("a@1.2.3.4", Ok(())),
            ("a@[192.0.2.1]", Ok(())),
            ("a@[IPv6:2001:db8::1]", Ok(())),
            ("a@[ipv6:::1]", Ok(())),
            ("a@x-y.org", Ok(())),
            ("b\u{fffd}@x.org", Err(NotUtf8)),
            ("bob", Err(NoDomain)),
            ("@x.org", Err(EmptyLocal)),
            ("a@", Err(EmptyDomain)),
            ("a..b@x.org", Err(EmptyWord)),
            (".a@x.org", Err(EmptyWord)),
            ("a.@x.org", Err(EmptyWord)),
            ("a b@x.org", Err(LocalChar(' '))),
            ("a\t@x.org", Err(LocalChar('\t'))),
            ("a<b@x.org", Err(LocalChar('<'))),
            ("a\"b@x.org", Err(LocalChar('"'))),
            ("a@b@x.org", Err(LocalChar('@'))),
            ("\u{1F600}@x.org", Err(LocalChar('\u{1F600}'))),
            ("\"\"@x.org", Err(BadQuoted)),
            ("\"@x.org", Err(BadQuoted)),
            ("\"a\"b\"@x.org", Err(BadQuoted)),
            ("\"a\tb\"@x.org", Err(BadQuoted)),
            ("\"a>b\"@x.org", Err(BadQuoted)),
            ("\"jösé\"@x.org", Err(BadQuoted)),
            ("\"a\\\"@x.org", Err(BadQuoted)),
            ("a@x..org", Err(EmptyLabel)),
            ("a@x.org.", Err(EmptyLabel)),
            ("a@-x.org", Err(LabelEdge)),
            ("a@x-.org", Err(LabelEdge)),
            ("a@x_y.org", Err(DomainChar('_'))),
            ("a@x!y.org", Err(DomainChar('!'))),
            ("a@[1.2.3]", Err(BadLiteral)),
            ("a@[IPv6:1.2.3.4]", Err(BadLiteral)),
            ("a@[x]", Err(BadLiteral)),
            ("a@[1.2.3.4", Err(BadLiteral)),
        ];
        for (addr, want) in cases {
            assert_eq!(check(addr), *want, "{addr:?}");
        }
        let long_local = format!("{}@x.org", "a".repeat(65));
        assert_eq!(check(&long_local), Err(LocalTooLong));
        assert_eq!(check(&format!("{}@x.org", "a".repeat(64))), Ok(()));
        let long_label = format!("a@{}.org", "b".repeat(64));
        assert_eq!(check(&long_label), Err(LabelTooLong));
        let long_domain = format!("a@{}org", "b.".repeat(127));
        assert_eq!(check(&long_domain), Err(DomainTooLong));
    }
}
