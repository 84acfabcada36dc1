//! Property test of the bounce parser (the style of the submit crate's
//! `proptests.rs`): it reads mail from outside, so it must not panic on any
//! bytes (docs/design.md, "Invariants", 5).

use proptest::prelude::*;

/// What bounces are made of: MIME structure, RFC 3464 fields, and the
/// addresses, hosts and queue ids the matching looks for.
const PIECES: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b" ",
    b":",
    b";",
    b"@",
    b"<",
    b">",
    b"\"",
    b"=?",
    b"?=",
    b"\xc3\xa9",
    b"\xff",
    b"\0",
    b"--b",
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=b",
    b"Content-Type: message/delivery-status",
    b"Content-Type: message/rfc822",
    b"Content-Type: text/rfc822-headers",
    b"Content-Transfer-Encoding: base64",
    b"Content-Transfer-Encoding: quoted-printable",
    b"Reporting-MTA: dns; mx.example",
    b"Final-Recipient: rfc822; a@x.org",
    b"Original-Recipient: rfc822; a@x.org",
    b"Action: failed",
    b"Status: 5.1.1",
    b"Diagnostic-Code: smtp; 550 5.1.1 unknown",
    b"Received: from x by node1.example.net with ESMTP id ",
    b"Message-ID: <",
    b"bounces+",
    b"node1.example.net",
    b"6A1F0C2B9D3E4F5A6B7C",
    b"=3D",
    b"=\r\n",
];

/// Bytes that look like a bounce more often than uniform bytes do: those
/// pieces with runs of arbitrary bytes between them.
fn bounceish_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        3 => proptest::sample::select(PIECES).prop_map(<[u8]>::to_vec),
        1 => proptest::collection::vec(any::<u8>(), 0..16),
    ];
    proptest::collection::vec(piece, 0..max / 8).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn dsn_parser_never_panics(raw in bounceish_bytes(3000), s in any::<String>()) {
        let report = super::parse(&raw);
        let _ = report.failures().count();
        let _ = super::trace_qid(&report.original_headers, "node1.example.net");
        for a in [s.as_str(), &String::from_utf8_lossy(&raw)] {
            let _ = super::verp_qid(a, "bounces", "node1.example.net");
            // With the right domain, so the local part is looked at.
            let _ = super::verp_qid(&format!("{a}@node1.example.net"), "bounces", "node1.example.net");
            let _ = super::verp_qid(a, "b\u{e9}", "n\u{e9}.test");
            let _ = super::message_id_qid(a, "node1.example.net");
        }
    }
}
