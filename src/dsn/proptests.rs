//! Property test of the bounce parser (the style of the submit crate's
//! `proptests.rs`): it reads mail from outside, so it must not panic on any
//! bytes (docs/design.md, "Invariants", 5).

use proptest::prelude::*;

/// Bytes that look like a bounce more often than uniform bytes do.
fn bounceish_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    let pieces: Vec<&'static [u8]> = vec![
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
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..max),
        proptest::collection::vec(proptest::sample::select(pieces), 0..max / 4)
            .prop_map(|v| v.concat()),
    ]
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
