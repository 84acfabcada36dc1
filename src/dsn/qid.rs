//! Finding scriptmail's own queue id in what came back: the VERP address
//! the relay sent from (docs/bounces.md, "Turn on VERP"), the `Received:`
//! trace header scriptmail writes, and the Message-ID it generates.

use super::all;

/// The queue id a VERP address carries: `<local_part>+<QID>@<domain>`
/// (compared without regard to case: MTAs may fold addresses). Returned
/// uppercased, as scriptmail writes queue ids.
pub fn verp_qid(addr: &str, local_part: &str, domain: &str) -> Option<String> {
    let a = addr.trim().trim_start_matches('<').trim_end_matches('>');
    let (local, dom) = a.rsplit_once('@')?;
    if !dom.eq_ignore_ascii_case(domain) {
        return None;
    }
    // `get` and `strip_prefix`, never `[..n]`: `local` is outside input and
    // `n` may fall inside one of its multi-byte characters.
    let head = local.get(..local_part.len())?;
    if !head.eq_ignore_ascii_case(local_part) {
        return None;
    }
    qid_token(local.get(local_part.len()..)?.strip_prefix('+')?)
}

/// The queue id in scriptmail's trace header among `headers` (the original
/// message's), written by host `hostname`: `Received: by HOST (scriptmail,
/// from userid UID account NAME) id QID; DATE` (RFC 5321 §4.4). The first
/// such field is ours: scriptmail prepends it, so a forged one written by
/// the script sits below it.
pub fn trace_qid(headers: &[(String, String)], hostname: &str) -> Option<String> {
    let prefix = format!("by {hostname} (scriptmail, ");
    let value = all(headers, "Received").find(|v| {
        v.get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(&prefix))
    })?;
    let after = value.split_once(") id ")?.1;
    qid_token(after.split(';').next()?.trim())
}

/// The queue id in a Message-ID scriptmail generated: `<MS.QID@HOST>`.
pub fn message_id_qid(value: &str, hostname: &str) -> Option<String> {
    let v = value.trim().trim_start_matches('<').trim_end_matches('>');
    let (left, host) = v.rsplit_once('@')?;
    if !host.eq_ignore_ascii_case(hostname) {
        return None;
    }
    let (ms, qid) = left.split_once('.')?;
    if ms.is_empty() || !ms.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    qid_token(qid)
}

/// A queue id as scriptmail writes them: 1-64 ASCII letters and digits.
fn qid_token(s: &str) -> Option<String> {
    (!s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| s.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verp_addresses() {
        let q = |a| verp_qid(a, "bounces", "node1.example.net");
        assert_eq!(
            q("bounces+6740A1B2C3D4E5F7@node1.example.net").as_deref(),
            Some("6740A1B2C3D4E5F7")
        );
        // Folded by an MTA, in angle brackets.
        assert_eq!(
            q("<BOUNCES+6740a1b2c3d4e5f7@NODE1.example.net>").as_deref(),
            Some("6740A1B2C3D4E5F7")
        );
        assert_eq!(q("bounces@node1.example.net"), None);
        assert_eq!(q("bounces+@node1.example.net"), None);
        assert_eq!(q("bouncesX6740@node1.example.net"), None);
        assert_eq!(q("bounces+6740@other.example"), None);
        assert_eq!(q("bounces+67;40@node1.example.net"), None);
        assert_eq!(q("b+6740@node1.example.net"), None);
    }

    #[test]
    fn verp_addresses_with_non_ascii_local_parts() {
        // Anyone can send these: a multi-byte character where the prefix or
        // its `+` would be must not abort (it did: byte 7 inside "é").
        let q = |a| verp_qid(a, "bounces", "node1.example.net");
        for a in [
            "bounce\u{e9}@node1.example.net",
            "bounce\u{e9}6740@node1.example.net",
            "bounces\u{e9}6740@node1.example.net",
            "bounc\u{e9}+6740@node1.example.net",
            "\u{e9}@node1.example.net",
            "bounces+\u{e9}@node1.example.net",
            "bounces+67\u{e9}40@node1.example.net",
            "\u{1f600}\u{1f600}@node1.example.net",
        ] {
            assert_eq!(q(a), None, "{a:?}");
        }
        // A non-ASCII configured prefix works like an ASCII one.
        assert_eq!(
            verp_qid("r\u{e9}+AB12@n.test", "r\u{e9}", "n.test").as_deref(),
            Some("AB12")
        );
        assert_eq!(verp_qid("r\u{e8}+AB12@n.test", "r\u{e9}", "n.test"), None);
    }

    #[test]
    fn trace_header_forgery_below_ours_is_ignored() {
        let h = vec![
            ("Received".to_string(), "from mx (Postfix) id X".to_string()),
            (
                "Received".to_string(),
                "by node1.example.net (scriptmail, from userid 5 account a) id REAL1; date"
                    .to_string(),
            ),
            (
                "Received".to_string(),
                "by node1.example.net (scriptmail, from userid 6 account b) id FORGED; date"
                    .to_string(),
            ),
        ];
        assert_eq!(trace_qid(&h, "node1.example.net").as_deref(), Some("REAL1"));
        assert_eq!(trace_qid(&h, "other.example"), None);
        assert_eq!(
            message_id_qid("<17.ABC@node1.example.net>", "node1.example.net").as_deref(),
            Some("ABC")
        );
        assert_eq!(
            message_id_qid("<x.ABC@node1.example.net>", "node1.example.net"),
            None
        );
        assert_eq!(
            message_id_qid("<17.ABC@elsewhere>", "node1.example.net"),
            None
        );
    }
}
