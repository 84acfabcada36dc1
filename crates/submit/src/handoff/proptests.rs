//! Property tests of the hand-off frame (the style of `src/proptests.rs`):
//! relayd parses what any tenant writes to its socket, so no input may make
//! a parser panic or hang, and what `sendmail` encodes must come back equal.
//! Case counts are fixed here, sized for a few seconds of a debug build.

use proptest::prelude::*;

use super::frame::{self, Caps, Reply, Verb};
use super::listing;
use super::parcel::{self, Limits, Origin, Parcel};

const MANY: u32 = 512;

const LIMITS: Limits = Limits {
    max_recipients: 8,
    max_data: 4096,
};

/// Bytes that look like frames more often than uniform bytes do.
fn framey_bytes() -> impl Strategy<Value = Vec<u8>> {
    let pieces: Vec<&'static [u8]> = vec![
        b"MSG 1\n",
        b"LIST 1\n",
        b"MAILDROP 1\n",
        b"MSG 2\n",
        b"qid 6A1F0C2B9D3E4F5A6B7C\n",
        b"from a@x.org\n",
        b"from \n",
        b"rcpt b@x.org\n",
        b"uid 0\n",
        b"time 1\n",
        b"account root\n",
        b"body8 1\n",
        b"notify NEVER\n",
        b"data 3\n",
        b"data 99999999999999999999\n",
        b"data 0\n",
        b"%",
        b"%4",
        b"%41",
        b"%ZZ",
        b" ",
        b"\n",
        b"\r\n",
        b"\0",
        b"\xff",
        b"abc",
        b"250 Q queued\n",
        b"554 65 no\n",
        b"row Q 1 2 held %00\n",
        b"rcpt %00\n",
    ];
    prop::collection::vec(
        prop_oneof![
            prop::sample::select(pieces).prop_map(<[u8]>::to_vec),
            prop::collection::vec(any::<u8>(), 0..8),
        ],
        0..24,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(MANY))]

    /// Any bytes: the reader returns (a head, an end, or an error) and never
    /// panics; a head it returns respects the caps and checks or refuses
    /// without panicking either way, and its data read stops at the cap.
    #[test]
    fn reading_any_bytes_never_panics(bytes in framey_bytes()) {
        let caps = Caps { max_fields: 6, max_data: 16 };
        let mut r = &bytes[..];
        if let Ok(Some(h)) = frame::read_head(&mut r, &caps) {
            prop_assert!(h.fields.len() <= 6);
            prop_assert!(h.data_len <= 16);
            let _ = parcel::envelope(&h, &LIMITS, false);
            let _ = parcel::envelope(&h, &LIMITS, true);
            let mut data = Vec::new();
            let _ = frame::read_data(&mut r, h.data_len, &mut data);
            prop_assert!(data.len() as u64 <= h.data_len);
        }
        let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
        let _ = Reply::parse(line);
        let _ = listing::parse_line(line);
        let _ = frame::is_ready(line);
        let _ = parcel::is_wire_form(&bytes);
    }

    /// Escaping keeps a value on one printable line and gives it back.
    #[test]
    fn escape_round_trips(s in any::<String>()) {
        let e = frame::escape(&s);
        prop_assert!(e.bytes().all(|b| (0x21..=0x7E).contains(&b)));
        prop_assert_eq!(frame::unescape(e.as_bytes()), Some(s));
    }

    /// A parcel with any working directory, subject, script and data comes
    /// back as relayd reads it: the directory exactly, labels cleaned, and
    /// the origin only from a maildrop frame.
    #[test]
    fn a_parcel_round_trips(
        cwd in any::<String>(),
        subject in "[ -~]{0,40}",
        script in any::<String>(),
        data in prop::collection::vec(any::<u8>(), 0..64),
        rcpts in prop::collection::vec(prop::sample::select(vec!["a@x.org", "b@y.example", "c.d@z.net"]), 1..4),
        uid in any::<u32>(),
        time in 0i64..i64::MAX,
        trusted in any::<bool>(),
    ) {
        let p = Parcel {
            qid: "6A1F0C2B9D3E4F5A6B7C".into(),
            sender: String::new(),
            recipients: rcpts.iter().map(|s| s.to_string()).collect(),
            subject: subject.clone(),
            script,
            cwd: cwd.clone(),
            body_8bit: false,
            data: data.clone(),
            ..Parcel::default()
        };
        let origin = trusted.then_some(Origin { uid, time });
        let mut bytes = p.head(origin);
        bytes.extend_from_slice(&data);
        let mut r = &bytes[..];
        let h = frame::read_head(&mut r, &LIMITS.caps());
        let h = h.expect("a frame sendmail wrote must read back");
        let h = h.expect("a head");
        prop_assert_eq!(h.verb, if trusted { Verb::Maildrop } else { Verb::Msg });
        let env = parcel::envelope(&h, &LIMITS, trusted).expect("checks pass");
        prop_assert_eq!(env.origin, origin);
        let keep = parcel::floor_char_boundary(&cwd, parcel::MAX_CWD);
        prop_assert_eq!(&env.parcel.cwd, &cwd[..keep]);
        prop_assert_eq!(&env.parcel.subject, subject.trim());
        prop_assert!(!env.parcel.script.chars().any(char::is_control));
        let mut got = Vec::new();
        frame::read_data(&mut r, env.data_len, &mut got).expect("data");
        prop_assert_eq!(got, data);
    }
}
