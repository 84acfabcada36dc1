//! The DSN parameters of RFC 3461 — NOTIFY, RET and ENVID — as types shared by the
//! command line (`-N`, `-R`, `-V`), the `-bs` server (`RCPT ... NOTIFY=`, `MAIL ... RET=
//! ENVID=`) and the queue, plus the xtext encoding (RFC 3461 §4) they travel in.
//!
//! Each type parses and validates once, where the value comes in, and writes itself with
//! `Display` in the form the queue stores (the TEXT columns `dsn_notify`, `dsn_ret`,
//! `envid`) and the relay sends.

use std::fmt;
use std::str::FromStr;

/// Why a DSN parameter value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DsnParamError {
    #[error("NOTIFY wants NEVER, or a list of SUCCESS, FAILURE, DELAY")]
    Notify,
    #[error("RET wants FULL or HDRS")]
    Ret,
    #[error("ENVID wants 1 to 100 printable ASCII characters")]
    Envid,
}

/// One condition of NOTIFY (RFC 3461 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Success,
    Failure,
    Delay,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Success => "SUCCESS",
            Condition::Failure => "FAILURE",
            Condition::Delay => "DELAY",
        }
    }
}

/// NOTIFY (RFC 3461 §4.1): `NEVER`, or a non-empty list of conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notify {
    Never,
    /// The conditions in the order first given, without duplicates: that order is what
    /// the queue stores and the relay sends.
    On(Conditions),
}

/// A non-empty, duplicate-free list of NOTIFY conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conditions {
    list: [Option<Condition>; 3],
}

impl Conditions {
    pub fn iter(&self) -> impl Iterator<Item = Condition> + '_ {
        self.list.iter().flatten().copied()
    }

    pub fn contains(&self, c: Condition) -> bool {
        self.iter().any(|x| x == c)
    }
}

impl FromStr for Notify {
    type Err = DsnParamError;

    /// Case-insensitive; blanks around items are allowed (Postfix's `-N` and `NOTIFY=`
    /// split on `, \t\r\n` too); duplicates are dropped; `NEVER` must stand alone
    /// (RFC 3461 §4.1).
    fn from_str(value: &str) -> Result<Notify, DsnParamError> {
        let mut never = false;
        let mut list = [None; 3];
        let mut n = 0;
        for raw in value.split(',') {
            let item = raw.trim_ascii();
            let c = if item.eq_ignore_ascii_case("never") {
                never = true;
                continue;
            } else if item.eq_ignore_ascii_case("success") {
                Condition::Success
            } else if item.eq_ignore_ascii_case("failure") {
                Condition::Failure
            } else if item.eq_ignore_ascii_case("delay") {
                Condition::Delay
            } else {
                return Err(DsnParamError::Notify);
            };
            if !list.contains(&Some(c))
                && let Some(slot) = list.get_mut(n)
            {
                *slot = Some(c);
                n += 1;
            }
        }
        match (never, n) {
            (true, 0) => Ok(Notify::Never),
            (false, 1..) => Ok(Notify::On(Conditions { list })),
            _ => Err(DsnParamError::Notify),
        }
    }
}

impl fmt::Display for Notify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notify::Never => f.write_str("NEVER"),
            Notify::On(list) => {
                for (i, c) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    f.write_str(c.as_str())?;
                }
                Ok(())
            }
        }
    }
}

/// RET (RFC 3461 §4.3): what of the message a failure report returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    Full,
    Hdrs,
}

impl FromStr for Ret {
    type Err = DsnParamError;

    /// `FULL` or `HDRS`, in any case.
    fn from_str(value: &str) -> Result<Ret, DsnParamError> {
        if value.eq_ignore_ascii_case("full") {
            Ok(Ret::Full)
        } else if value.eq_ignore_ascii_case("hdrs") {
            Ok(Ret::Hdrs)
        } else {
            Err(DsnParamError::Ret)
        }
    }
}

impl fmt::Display for Ret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ret::Full => "FULL",
            Ret::Hdrs => "HDRS",
        })
    }
}

/// ENVID (RFC 3461 §4.4), plain (not xtext-encoded): 1 to 100 printable ASCII
/// characters, space included. Postfix asks the same of `-V` (printable text); the
/// limit of §4.4 is applied to the plain text, so it also bounds what the relay sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envid(String);

impl Envid {
    /// RFC 3461 §4.4: at most 100 characters.
    pub const MAX_LEN: usize = 100;

    /// The envelope id `text`, if it is one.
    pub fn new(text: &[u8]) -> Result<Envid, DsnParamError> {
        let ok = !text.is_empty()
            && text.len() <= Envid::MAX_LEN
            && text.iter().all(|b| (0x20..0x7f).contains(b));
        match std::str::from_utf8(text) {
            Ok(s) if ok => Ok(Envid(s.to_owned())),
            _ => Err(DsnParamError::Envid),
        }
    }

    /// The envelope id an SMTP client sent as `ENVID=` (xtext).
    pub fn from_xtext(value: &str) -> Result<Envid, DsnParamError> {
        Envid::new(&xtext_decode(value).ok_or(DsnParamError::Envid)?)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Envid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Decode RFC 3461 §4 xtext: `xchar`s ("!" to "~" except "+" and "="), and `+XX` (two
/// upper-case hex digits) for any byte. `None` when `s` is not xtext.
pub fn xtext_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(c) = bytes.next() {
        if c == b'+' {
            let hi = hex_digit(bytes.next()?)?;
            let lo = hex_digit(bytes.next()?)?;
            out.push(hi << 4 | lo);
        } else if (0x21..0x7f).contains(&c) && c != b'=' {
            out.push(c);
        } else {
            return None;
        }
    }
    Some(out)
}

/// An upper-case hex digit (xtext's `hexchar`, RFC 3461 §4).
fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notify(s: &str) -> Option<String> {
        s.parse::<Notify>().ok().map(|n| n.to_string())
    }

    #[test]
    fn notify_rules() {
        assert_eq!(notify("never").as_deref(), Some("NEVER"));
        assert_eq!(notify("NEVER,NEVER").as_deref(), Some("NEVER"));
        assert_eq!(
            notify("failure,delay,failure").as_deref(),
            Some("FAILURE,DELAY")
        );
        assert_eq!(notify("delay, Success").as_deref(), Some("DELAY,SUCCESS"));
        assert_eq!(
            notify("success,\tfailure").as_deref(),
            Some("SUCCESS,FAILURE")
        );
        assert_eq!(
            notify("Success,failure,DELAY").as_deref(),
            Some("SUCCESS,FAILURE,DELAY")
        );
        for bad in [
            "",
            "success;failure",
            "never,success",
            "success,never",
            "success,,failure",
            "sometimes",
            "success\u{a0}",
        ] {
            assert_eq!(notify(bad), None, "{bad:?}");
        }
        let Ok(Notify::On(list)) = "delay,failure".parse::<Notify>() else {
            panic!("parses");
        };
        assert!(list.contains(Condition::Delay) && list.contains(Condition::Failure));
        assert!(!list.contains(Condition::Success));
    }

    #[test]
    fn ret_rules() {
        assert_eq!("hdrs".parse::<Ret>(), Ok(Ret::Hdrs));
        assert_eq!("Full".parse::<Ret>(), Ok(Ret::Full));
        assert_eq!(Ret::Hdrs.to_string(), "HDRS");
        assert_eq!(Ret::Full.to_string(), "FULL");
        assert_eq!("body".parse::<Ret>(), Err(DsnParamError::Ret));
        assert_eq!(" full".parse::<Ret>(), Err(DsnParamError::Ret));
    }

    #[test]
    fn envid_rules() {
        assert_eq!(
            Envid::new(b"id 1+2=3").map(|e| e.to_string()).as_deref(),
            Ok("id 1+2=3")
        );
        assert!(Envid::new(&[b'x'; 100]).is_ok());
        for bad in [&b""[..], &[b'x'; 101], b"a\tb", b"caf\xc3\xa9", b"a\x7f"] {
            assert_eq!(Envid::new(bad), Err(DsnParamError::Envid), "{bad:?}");
        }
        assert_eq!(
            Envid::from_xtext("ab+2Bc+20d")
                .map(|e| e.to_string())
                .as_deref(),
            Ok("ab+c d")
        );
        // Decoded to something that is no printable text, or no xtext at all.
        for bad in ["a+0A", "a+2b", "a+2", "a b", "a=b", ""] {
            assert_eq!(Envid::from_xtext(bad), Err(DsnParamError::Envid), "{bad:?}");
        }
    }

    #[test]
    fn xtext() {
        assert_eq!(xtext_decode("a+2Bb+3Dc").as_deref(), Some(&b"a+b=c"[..]));
        assert_eq!(xtext_decode("+FF+00").as_deref(), Some(&b"\xff\x00"[..]));
        assert_eq!(xtext_decode("").as_deref(), Some(&b""[..]));
        // Hex must be upper-case; both digits must be there.
        for bad in ["a+2b", "a+2", "+", "a b", "a=b", "\u{e9}"] {
            assert_eq!(xtext_decode(bad), None, "{bad:?}");
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        /// xtext (RFC 3461 §4) of any bytes, as a client would write it.
        fn xtext_encode(b: &[u8]) -> String {
            b.iter()
                .map(|&c| {
                    if (0x21..0x7f).contains(&c) && c != b'+' && c != b'=' {
                        char::from(c).to_string()
                    } else {
                        format!("+{c:02X}")
                    }
                })
                .collect()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Whatever a caller passes, parsing never panics, and a value that
            /// parses writes itself as text that parses back to it.
            #[test]
            fn notify_round_trips(
                items in proptest::collection::vec(
                    proptest::sample::select(vec![
                        "never", "NEVER", "success", "Success", "failure", "FAILURE",
                        "delay", " delay\t", "", "sometimes", "success;delay",
                    ]),
                    1..5,
                ),
                junk in any::<String>(),
            ) {
                let s = items.join(",");
                for v in [&s, &junk] {
                    if let Ok(n) = v.parse::<Notify>() {
                        let text = n.to_string();
                        prop_assert_eq!(text.parse::<Notify>(), Ok(n));
                        prop_assert!(text.bytes().all(|b| b.is_ascii_uppercase() || b == b','));
                    }
                }
                // Valid exactly when every item is a condition, NEVER stands alone,
                // and something is there.
                let words: Vec<String> = items.iter().map(|i| i.trim().to_ascii_lowercase()).collect();
                let known = words.iter().all(|w| ["never", "success", "failure", "delay"].contains(&w.as_str()));
                let never = words.iter().any(|w| w == "never");
                let alone = !never || words.iter().all(|w| w == "never");
                prop_assert_eq!(s.parse::<Notify>().is_ok(), known && alone);
            }

            #[test]
            fn envid_keeps_exactly_its_bytes(b in proptest::collection::vec(any::<u8>(), 0..120)) {
                if let Ok(e) = Envid::new(&b) {
                    prop_assert_eq!(e.as_str().as_bytes(), &b[..]);
                    prop_assert_eq!(Envid::from_xtext(&xtext_encode(&b)), Ok(e));
                }
            }

            #[test]
            fn xtext_decodes_what_was_encoded(b in proptest::collection::vec(any::<u8>(), 0..64),
                                              junk in any::<String>()) {
                prop_assert_eq!(xtext_decode(&xtext_encode(&b)), Some(b));
                let _ = xtext_decode(&junk);
            }
        }
    }
}
