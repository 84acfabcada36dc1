//! Property tests of everything that parses outside input: the address parser, the
//! message reader, the option parser, the `-bs` server and the 998-octet
//! re-encoding. None may panic or hang on arbitrary bytes, and what goes on the wire
//! must parse back to the same recipients and the same body (issue 11).
//!
//! Case counts are fixed here (not taken from the environment), sized so the whole set
//! runs in a few seconds of a debug build: CI time is bounded and runs are comparable.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStringExt;

use proptest::prelude::*;

use crate::message::{self, Message, ReadOptions};
use crate::reencode::tests::{assert_fits, b64_decode, qp_decode};
use crate::smtp_server::{self, Settings, Verdict};
use crate::{address, encoding, envelope, options, reencode};

/// Cases for cheap properties and for the heavier ones (whole messages, sessions).
const MANY: u32 = 512;
const SOME: u32 = 128;

fn read(input: &[u8], ignore_dots: bool) -> Result<Message, message::MessageError> {
    message::read(
        input,
        &ReadOptions {
            ignore_dots,
            max_size: 1 << 22,
        },
    )
}

fn wire(m: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    m.write_wire(&mut out);
    out
}

/// Bytes that look like mail more often than uniform bytes do.
fn mailish_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    let pieces: Vec<&'static [u8]> = vec![
        b"\r\n",
        b"\n",
        b"\r",
        b".",
        b"..",
        b" ",
        b"\t",
        b":",
        b"To",
        b"Cc",
        b"Bcc",
        b"From ",
        b"Subject",
        b"@",
        b"<",
        b">",
        b",",
        b";",
        b"\"",
        b"\\",
        b"(",
        b")",
        b"[",
        b"]",
        b"=?",
        b"?=",
        b"a",
        b"x.org",
        b"\xc3\xa9",
        b"\xff",
        b"\0",
        b"--b",
        b"MAIL FROM:",
        b"RCPT TO:",
        b"DATA",
        b"QUIT",
        b"EHLO x",
        b"Content-Type: multipart/mixed; boundary=b",
        b"Content-Transfer-Encoding: ",
        b"base64",
        b"quoted-printable",
        b"=3D",
        b"=\r\n",
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..max),
        proptest::collection::vec(proptest::sample::select(pieces), 0..max / 4)
            .prop_map(|v| v.concat()),
    ]
}

/// An address the relay can send: a dot-atom or a quoted string, a plain domain.
fn address() -> impl Strategy<Value = String> {
    let re = |r: &str| proptest::string::string_regex(r).expect("regex");
    let local = prop_oneof![
        3 => re("[a-z0-9!#$%&'*+/=?^_`{|}~-]{1,8}(\\.[a-z0-9_-]{1,6}){0,2}"),
        1 => re("\"[a-z ,;:@()]{1,10}\""),
        1 => re("[a-zéü]{1,6}"),
    ];
    let domain = re("[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?(\\.[a-z]{2,5}){1,2}");
    (local, domain).prop_map(|(l, d)| format!("{l}@{d}"))
}

/// A display name: words, a quoted string with specials, or an encoded word.
fn display_name() -> impl Strategy<Value = String> {
    let re = |r: &str| proptest::string::string_regex(r).expect("regex");
    prop_oneof![
        re("[A-Za-z]{1,8}( [A-Z][a-z]{0,6}\\.?){0,2}"),
        re("\"[A-Za-z ,;:<>@()]{0,12}\""),
        re("=\\?UTF-8\\?Q\\?[A-Za-z_=0-9,]{1,12}\\?="),
    ]
}

/// One list entry as a script writes it, with the address it stands for.
fn entry() -> impl Strategy<Value = (String, String)> {
    (
        address(),
        proptest::option::of(display_name()),
        any::<bool>(),
    )
        .prop_map(|(a, name, comment)| {
            let mut text = match name {
                Some(n) => format!("{n} <{a}>"),
                None => a.clone(),
            };
            if comment {
                text.push_str(" (a comment, with <specials>)");
            }
            (text, a)
        })
}

/// A body line without line-break characters.
fn line(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(|v| {
        v.into_iter()
            .filter(|&b| b != b'\r' && b != b'\n')
            .collect()
    })
}

/// A body as the reader stores it: lines in CRLF, some of them long.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![4 => line(80), 1 => line(3000)];
    proptest::collection::vec(line, 0..8).prop_map(|lines| {
        let mut b = Vec::new();
        for l in lines {
            b.extend_from_slice(&l);
            b.extend_from_slice(b"\r\n");
        }
        b
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(MANY))]

    #[test]
    fn address_parsers_never_panic(s in any::<String>(), m in mailish_bytes(200)) {
        let m = String::from_utf8_lossy(&m);
        for input in [s.as_str(), m.as_ref()] {
            if let Ok(list) = address::parse_list(input) {
                for a in list {
                    let _ = envelope::check(&address::qualify(&a, "node.example"));
                }
            }
            let _ = address::parse_sender(input);
        }
    }

    /// A list written as scripts write it parses back to its addresses, in order.
    #[test]
    fn address_lists_round_trip(entries in proptest::collection::vec(entry(), 1..6),
                                sep in prop_oneof![Just(", "), Just(",\r\n "), Just(";")]) {
        let text: Vec<&str> = entries.iter().map(|(t, _)| t.as_str()).collect();
        let want: Vec<&str> = entries.iter().map(|(_, a)| a.as_str()).collect();
        let got = address::parse_list(&text.join(sep));
        prop_assert_eq!(got.as_deref().map(|v| v.iter().map(String::as_str).collect::<Vec<_>>()),
                        Ok(want.clone()));
        for a in want {
            prop_assert_eq!(envelope::check(a), Ok(()), "{}", a);
        }
    }

    #[test]
    fn message_reader_never_panics_and_is_stable(input in mailish_bytes(2000),
                                                 ignore_dots in any::<bool>()) {
        let Ok(m) = read(&input, ignore_dots) else { return Ok(()) };
        let w = wire(&m);
        prop_assert_eq!(m.wire_len(), w.len() as u64);
        // CRLF only: no bare CR or LF reaches the wire.
        for (i, &b) in w.iter().enumerate() {
            if b == b'\r' { prop_assert_eq!(w.get(i + 1), Some(&b'\n')); }
            if b == b'\n' { prop_assert!(i > 0 && w[i - 1] == b'\r'); }
        }
        // Reading the wire form again gives the same message (with -i: no dot rules).
        let again = read(&w, true).expect("wire form reads");
        prop_assert_eq!(&again.body, &m.body);
        prop_assert_eq!(again.headers.len(), m.headers.len());
        let _ = m.extract_recipients();
    }

    /// Every mix of line ends gives the same lines in CRLF; without `-i` a lone
    /// dot ends the message, with it the dot is text.
    #[test]
    fn line_ends_and_dots(lines in proptest::collection::vec(line(60), 0..12),
                          ends in proptest::collection::vec(
                              prop_oneof![Just(&b"\n"[..]), Just(&b"\r\n"[..]), Just(&b"\r\r\n"[..])], 12),
                          dot_at in proptest::option::of(0usize..12)) {
        let mut lines: Vec<Vec<u8>> = lines.into_iter().filter(|l| l.as_slice() != b".").collect();
        if let Some(at) = dot_at {
            lines.insert(at.min(lines.len()), b".".to_vec());
        }
        let mut input = b"X-A: 1\n\n".to_vec();
        for (l, end) in lines.iter().zip(ends.iter().cycle()) {
            input.extend_from_slice(l);
            input.extend_from_slice(end);
        }
        let crlf = |ls: &[Vec<u8>]| -> Vec<u8> {
            ls.iter().flat_map(|l| l.iter().copied().chain(*b"\r\n")).collect()
        };
        let with_i = read(&input, true).expect("read");
        prop_assert_eq!(with_i.body, crlf(&lines));
        let without = read(&input, false).expect("read");
        let cut = lines.iter().position(|l| l.as_slice() == b".").unwrap_or(lines.len());
        prop_assert_eq!(without.body, crlf(&lines[..cut]));
    }

    /// Folded recipient headers give the recipients, and the wire form gives them again.
    #[test]
    fn recipients_survive_the_wire(entries in proptest::collection::vec(entry(), 1..8),
                                   b in body()) {
        let text: Vec<&str> = entries.iter().map(|(t, _)| t.as_str()).collect();
        let want: Vec<String> = entries.iter().map(|(_, a)| a.clone()).collect();
        let mut input = format!("To: {}\r\nSubject: s\r\n\r\n", text.join(",\r\n\t")).into_bytes();
        input.extend_from_slice(&b);
        let mut m = read(&input, true).expect("read");
        prop_assert_eq!(m.extract_recipients().expect("recipients"), want.clone());
        prop_assert_eq!(&m.body, &b);
        reencode::refit(&mut m);
        let w = wire(&m);
        assert_fits(&w);
        let back = read(&w, true).expect("read back");
        prop_assert_eq!(back.extract_recipients().expect("recipients"), want);
        prop_assert_eq!(decoded_body(&back), b);
    }

    #[test]
    fn option_parser_never_panics(args in proptest::collection::vec(
        proptest::collection::vec(any::<u8>(), 0..12), 0..8),
        tail in proptest::collection::vec("[ -~]{0,10}", 0..4)) {
        let mut argv: Vec<OsString> = args.into_iter().map(OsString::from_vec).collect();
        if options::parse(OsStr::new("sendmail"), &argv).is_ok() {
            // Then nothing waits for an argument, and whatever follows "--" is a
            // recipient, exactly as given.
            argv.push("--".into());
            argv.extend(tail.iter().map(OsString::from));
            let inv = options::parse(OsStr::new("sendmail"), &argv);
            prop_assert!(inv.is_ok_and(|i| i.recipients.ends_with(&tail)));
        }
    }
}

/// The body as the reader sees it: decoded when `reencode` encoded it.
fn decoded_body(m: &Message) -> Vec<u8> {
    match m
        .values("Content-Transfer-Encoding")
        .next()
        .map(|v| v.to_ascii_lowercase())
        .as_deref()
    {
        Some("quoted-printable") => qp_decode(&m.body),
        Some("base64") => b64_decode(&m.body),
        _ => m.body.clone(),
    }
}

/// One message a session accepted: its recipients and its data.
type Accepted = (Vec<String>, Vec<u8>);

/// Run a `-bs` session over `script`; the replies and every accepted message.
fn session(script: &[u8]) -> (Vec<u8>, Vec<Accepted>) {
    let mut out = Vec::new();
    let mut got = Vec::new();
    let settings = Settings {
        hostname: "mx.test",
        max_size: 1 << 20,
        max_recipients: 100,
        domain: "mx.test",
    };
    let _ = smtp_server::serve(script, &mut out, &settings, |env, data| {
        got.push((env.recipients.clone(), data.to_vec()));
        Verdict::Accepted(format!("Q{}", got.len()))
    });
    (out, got)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(SOME))]

    #[test]
    fn smtp_server_never_panics(script in mailish_bytes(3000)) {
        let (out, _) = session(&script);
        // Every reply is one CRLF-terminated line starting with a code.
        for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            prop_assert!(line.len() >= 4 && line[..3].iter().all(u8::is_ascii_digit));
            prop_assert!(line.ends_with(b"\r"));
        }
    }

    /// Messages sent dot-stuffed with CRLF arrive as they were, one per DATA, to their
    /// own recipients, whatever their lines hold (a lone dot, bare LF, "MAIL FROM").
    #[test]
    fn smtp_data_round_trips(msgs in proptest::collection::vec(
        (proptest::collection::vec(address(), 1..4),
         proptest::collection::vec(prop_oneof![
             4 => line(100),
             1 => Just(b".".to_vec()),
             1 => Just(b"..x\n.\nMAIL FROM:<evil@x>".to_vec()),
         ], 0..10)), 1..4)) {
        let mut script = b"EHLO client\r\n".to_vec();
        let mut want = Vec::new();
        for (rcpts, lines) in &msgs {
            script.extend_from_slice(b"MAIL FROM:<app@x.org>\r\n");
            for r in rcpts {
                script.extend_from_slice(format!("RCPT TO:<{r}>\r\n").as_bytes());
            }
            script.extend_from_slice(b"DATA\r\n");
            let mut data = Vec::new();
            for l in lines {
                if l.first() == Some(&b'.') {
                    script.push(b'.');
                }
                script.extend_from_slice(l);
                script.extend_from_slice(b"\r\n");
                // A bare LF inside a client line ends a line of the data, and the
                // transparency rule then applies to what follows it as to any line
                // (a lone "." there is text: only CRLF.CRLF ends DATA).
                for (j, seg) in l.split(|&b| b == b'\n').enumerate() {
                    let seg = match seg.strip_prefix(b".") {
                        Some(rest) if j > 0 && !rest.is_empty() => rest,
                        _ => seg,
                    };
                    data.extend_from_slice(seg);
                    data.extend_from_slice(b"\r\n");
                }
            }
            script.extend_from_slice(b".\r\n");
            want.push((rcpts.clone(), data));
        }
        script.extend_from_slice(b"QUIT\r\n");
        let (out, got) = session(&script);
        prop_assert_eq!(got.len(), msgs.len(), "{}", String::from_utf8_lossy(&out));
        for ((rcpts, data), (grcpts, gdata)) in want.iter().zip(&got) {
            prop_assert_eq!(rcpts, grcpts);
            prop_assert_eq!(data, gdata);
        }
    }

    /// Whatever the body, after `reencode` no line is longer than 998 octets and the
    /// decoded body is the body that was read.
    #[test]
    fn long_lines_are_reencoded_losslessly(b in body(),
                                           ct in prop_oneof![
                                               Just(""),
                                               Just("Content-Type: text/html; charset=utf-8\r\n"),
                                               Just("Content-Type: image/png\r\n"),
                                               Just("Content-Transfer-Encoding: 8bit\r\n"),
                                           ]) {
        let mut input = format!("To: a@x.org\r\n{ct}\r\n").into_bytes();
        input.extend_from_slice(&b);
        let mut m = read(&input, true).expect("read");
        let before = m.body.clone();
        reencode::refit(&mut m);
        let w = wire(&m);
        assert_fits(&w);
        let back = read(&w, true).expect("read back");
        prop_assert_eq!(decoded_body(&back), before);
    }

    /// A body already quoted-printable or base64, but in long lines: soft breaks or
    /// re-wrapping make it fit, and it decodes to the same bytes.
    #[test]
    fn encoded_bodies_with_long_lines_keep_their_bytes(b in body(), qp in any::<bool>()) {
        let (cte, encoded) = if qp {
            ("quoted-printable", encoding::qp_encode(&b))
        } else {
            ("base64", encoding::base64_encode(&b))
        };
        // Undo the encoder's own line breaks (soft breaks, base64 lines): long lines.
        let long: Vec<u8> = if qp {
            String::from_utf8_lossy(&encoded).replace("=\r\n", "").into_bytes()
        } else {
            encoded.iter().copied().filter(|&c| c != b'\r' && c != b'\n').collect()
        };
        let mut input = format!(
            "To: a@x.org\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: {cte}\r\n\r\n"
        ).into_bytes();
        input.extend_from_slice(&long);
        input.extend_from_slice(b"\r\n");
        let mut m = read(&input, true).expect("read");
        reencode::refit(&mut m);
        let w = wire(&m);
        assert_fits(&w);
        let back = read(&w, true).expect("read back");
        let mut want = b.clone();
        if qp {
            // The CRLF that ends the body is a hard line break of the text.
            want.extend_from_slice(b"\r\n");
        }
        prop_assert_eq!(decoded_body(&back), want);
    }

    /// In a multipart message each part decodes to what it was.
    #[test]
    fn multipart_parts_are_reencoded_losslessly(parts in proptest::collection::vec(
        (body(), prop_oneof![Just("text/plain"), Just("application/octet-stream")]), 1..4)) {
        let mut input = b"To: a@x.org\r\nMIME-Version: 1.0\r\n\
            Content-Type: multipart/mixed; boundary=\"=_b\"\r\n\r\npreamble\r\n".to_vec();
        for (b, ct) in &parts {
            input.extend_from_slice(format!("--=_b\r\nContent-Type: {ct}\r\n\r\n").as_bytes());
            input.extend_from_slice(b);
            input.extend_from_slice(b"\r\n");
        }
        input.extend_from_slice(b"--=_b--\r\n");
        let mut m = read(&input, true).expect("read");
        reencode::refit(&mut m);
        let w = wire(&m);
        assert_fits(&w);
        let body = read(&w, true).expect("read back").body;
        let mut pieces = split_parts(&body, b"--=_b");
        prop_assert_eq!(pieces.len(), parts.len());
        for ((b, _), piece) in parts.iter().zip(pieces.drain(..)) {
            let at = piece.windows(4).position(|w| w == b"\r\n\r\n").expect("part header");
            let head = String::from_utf8_lossy(&piece[..at]).to_ascii_lowercase();
            let content = &piece[at + 4..];
            let decoded = if head.contains("transfer-encoding: quoted-printable") {
                qp_decode(content)
            } else if head.contains("transfer-encoding: base64") {
                b64_decode(content)
            } else {
                content.to_vec()
            };
            prop_assert_eq!(&decoded, b);
        }
    }
}

/// The parts of a multipart body (between delimiter lines, CRLF before each removed).
fn split_parts<'a>(body: &'a [u8], dash: &[u8]) -> Vec<&'a [u8]> {
    let mut starts = Vec::new();
    let mut pos = 0;
    for line in body.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(dash) {
            starts.push((pos, pos + line.len(), line[dash.len()..].starts_with(b"--")));
        }
        pos += line.len();
    }
    let mut parts = Vec::new();
    for w in starts.windows(2) {
        let (_, end, closing) = w[0];
        if closing {
            break;
        }
        let next = w[1].0;
        let seg = &body[end..next];
        parts.push(seg.strip_suffix(b"\r\n").unwrap_or(seg));
    }
    parts
}
