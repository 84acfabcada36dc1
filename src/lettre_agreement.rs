//! The submitter's envelope check agrees with the relay: every address
//! `envelope::check` accepts (crates/submit, which cannot link lettre),
//! lettre — which builds the relay's `MAIL FROM` and `RCPT TO` — accepts
//! too, so `sendmail` never exits 0 for mail the relay cannot send; and
//! an envelope id the option parser keeps goes out as valid xtext.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::envelope::check;

/// Every address `envelope`'s own table accepts, and every address of the
/// table in `address::tests` that the check accepts, lettre accepts too.
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

mod envid {
    use std::ffi::{OsStr, OsString};
    use std::os::unix::ffi::OsStringExt;

    use proptest::prelude::*;

    use crate::options;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// A `-V` envelope id the option parser keeps is one the relay can pass on: lettre
        /// writes it as RFC 3461 §4 xtext that decodes back to it.
        #[test]
        fn kept_envids_go_out_as_valid_xtext(v in proptest::collection::vec(any::<u8>(), 0..120)) {
            let argv = [OsString::from("-V"), OsString::from_vec(v.clone()), OsString::from("a@x.org")];
            let inv = options::parse(OsStr::new("sendmail"), &argv).expect("-V never fails");
            let Some(envid) = inv.envid else {
                prop_assert_eq!(inv.warnings.len(), 1);
                return Ok(());
            };
            let param = lettre::transport::smtp::extension::MailParameter::Other {
                keyword: "ENVID".into(),
                value: Some(envid.to_string()),
            }
            .to_string();
            let xtext = param.strip_prefix("ENVID=").expect("keyword");
            let mut decoded = Vec::new();
            let b = xtext.as_bytes();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'+' {
                    let hex = &xtext[i + 1..i + 3];
                    prop_assert!(hex.bytes().all(|h| h.is_ascii_digit() || (b'A'..=b'F').contains(&h)));
                    decoded.push(u8::from_str_radix(hex, 16).expect("hex"));
                    i += 3;
                } else {
                    // xchar: "!" to "~" except "+" and "=".
                    prop_assert!((0x21..=0x7e).contains(&b[i]) && b[i] != b'=', "{:?}", xtext);
                    decoded.push(b[i]);
                    i += 1;
                }
            }
            prop_assert_eq!(decoded, envid.as_str().as_bytes());
            prop_assert!(xtext.len() <= 300);
        }
    }
}
