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
//! `sendmail` links no lettre (see `src/bin/sendmail.rs`), so the check is written
//! here, deliberately *at least as strict*: no non-ASCII in a quoted local part, no
//! tab, `<` or `>` anywhere (many servers end a path at the first `>`), domain labels
//! of letters, digits and `-` only (RFC 5321 §4.1.2 `sub-domain`) or Unicode
//! alphanumerics (an IDN in U-label form), and address literals only as RFC 5321
//! §4.1.3 writes them (`[IPv4]`, `[IPv6:...]`). A unit test and a property test check
//! that every address this accepts, lettre accepts too.

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
    use std::str::FromStr;

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

    /// Everything accepted above, and every address of the table in
    /// `address::tests` that the check accepts, lettre accepts too.
    #[test]
    fn accepted_means_lettre_accepts() {
        for addr in [
            "a@x.org",
            "first.last+tag@sub.x.org",
            "\"john doe\"@x.org",
            "\"a\\\"b\"@x.org",
            "\"a,b;c@d\"@x.org",
            "jösé@例え.jp",
            "a@localhost",
            "a@[192.0.2.1]",
            "a@[IPv6:2001:db8::1]",
            "a@[ipv6:::1]",
            "{}~!#$%&'*+-/=?^_`|@x9-9.y",
        ] {
            assert_eq!(check(addr), Ok(()), "{addr:?}");
            assert!(
                lettre::Address::from_str(addr).is_ok(),
                "lettre refuses {addr:?}"
            );
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Addresses shaped like real ones (dot-atoms, quoted strings, Unicode,
        /// LDH domains, literals), so that most pass the check.
        fn well_formed() -> impl Strategy<Value = String> {
            let atom = "[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]{1,8}";
            let re = |r: &str| proptest::string::string_regex(r).expect("regex");
            let local = prop_oneof![
                re(&format!("{atom}(\\.{atom}){{0,3}}")),
                // No `<` or `>`, even quoted (module doc).
                re("\"([ !#-;=?-\\[\\]-~]|\\\\[!-;=?-~]){1,12}\""),
                re("[a-zéößü例えЖ]{1,6}(\\.[a-z0-9ñ]{1,4})?"),
            ];
            let label = "[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?";
            let domain = prop_oneof![
                4 => re(&format!("{label}(\\.{label}){{0,3}}")),
                1 => re("[a-zé例]{1,5}\\.[a-z]{2,4}"),
                1 => any::<[u8; 4]>().prop_map(|b| format!("[{}]", Ipv4Addr::from(b))),
                1 => any::<[u16; 8]>().prop_map(|w| format!("[IPv6:{}]", Ipv6Addr::from(w))),
            ];
            (local, domain).prop_map(|(l, d)| format!("{l}@{d}"))
        }

        /// Anything near an address: its characters and the ones that break it.
        fn messy() -> impl Strategy<Value = String> {
            let alphabet: Vec<char> =
                "aZ09.-_+=!~@@\"\\ \t<>()[]:;,é例\u{1F600}\u{fffd}\u{85}\u{2028}\u{c2a9}"
                    .chars()
                    .collect();
            proptest::collection::vec(proptest::sample::select(alphabet), 0..40)
                .prop_map(|v| v.into_iter().collect())
        }

        /// A well-formed address with one to three characters inserted or replaced:
        /// the near misses where a check that is too lax shows.
        fn near_miss() -> impl Strategy<Value = String> {
            let alphabet: Vec<char> = ".-_@\"\\ <>[]:é\u{1F600}\u{fffd}".chars().collect();
            let edit = (
                any::<usize>(),
                proptest::sample::select(alphabet),
                any::<bool>(),
            );
            (well_formed(), proptest::collection::vec(edit, 1..4)).prop_map(|(a, edits)| {
                let mut chars: Vec<char> = a.chars().collect();
                for (at, c, replace) in edits {
                    let i = at % (chars.len() + 1);
                    if replace && i < chars.len() {
                        chars[i] = c;
                    } else {
                        chars.insert(i, c);
                    }
                }
                chars.into_iter().collect()
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            #[test]
            fn well_formed_addresses_pass_and_lettre_agrees(a in well_formed()) {
                prop_assert_eq!(check(&a), Ok(()), "{:?}", a);
                prop_assert!(lettre::Address::from_str(&a).is_ok(), "lettre refuses {:?}", a);
            }

            #[test]
            fn whatever_passes_lettre_accepts(a in prop_oneof![near_miss(), messy()]) {
                if check(&a).is_ok() {
                    prop_assert!(lettre::Address::from_str(&a).is_ok(), "lettre refuses {:?}", a);
                }
            }
        }
    }
}
