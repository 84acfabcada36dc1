//! The hand-off frame: the bytes `sendmail` writes to relayd's submit socket
//! and into a maildrop file, and the one-line replies relayd answers with
//! (docs/submission.md, "The protocol").
//!
//! A frame is a first line `VERB VERSION`, then `key value` lines, then
//! `data N` and exactly N raw bytes:
//!
//! ```text
//! MSG 1
//! qid 6A1F0C2B9D3E4F5A6B7C
//! from web1@node1.example.net
//! rcpt bob@example.org
//! cwd /home/web1/www
//! data 1234
//! <1234 bytes: the message in wire form>
//! ```
//!
//! Lines end with LF alone and hold printable ASCII only: every value is
//! escaped (`%XX` for `%`, space, controls, DEL and every byte above 0x7E),
//! so a working directory or a subject with any byte in it stays one line.
//! Parsing is strict — a wrong version, a line over [`MAX_LINE`], a raw byte
//! outside the printable range, a bad escape, too many fields or too much
//! data is an error — except that unknown keys are skipped (so a field a
//! sender adds means nothing to a receiver that does not know it; a frame
//! that claims `uid` or `account` changes nothing). Nothing here panics on
//! any input (property tests: `handoff::proptests`).

use std::io::{self, BufRead, Read};

use crate::exit::Exit;

/// The protocol version this build speaks (first line of every frame and
/// of relayd's greeting).
pub const VERSION: u32 = 1;
/// Longest line, LF excluded: room for a working directory of PATH_MAX
/// bytes escaped three for one, and then some.
pub const MAX_LINE: usize = 64 * 1024;
/// Longest key.
const MAX_KEY: usize = 32;

/// What a frame asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// Queue the message that follows (from `sendmail`, over the socket).
    Msg,
    /// List the caller's pending mail (`sendmail -bp`).
    List,
    /// A maildrop file: a message frame written by trusted code, which
    /// also carries the caller's uid and the submission time.
    Maildrop,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Msg => "MSG",
            Verb::List => "LIST",
            Verb::Maildrop => "MAILDROP",
        }
    }

    fn parse(s: &str) -> Option<Verb> {
        match s {
            "MSG" => Some(Verb::Msg),
            "LIST" => Some(Verb::List),
            "MAILDROP" => Some(Verb::Maildrop),
            _ => None,
        }
    }
}

/// Caps a reader applies to one frame.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// Most `key value` lines (unknown keys count too).
    pub max_fields: usize,
    /// Most data bytes.
    pub max_data: u64,
}

/// A frame's first line and fields; its data is read separately
/// ([`read_data`]) so the reader can put it where it wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub verb: Verb,
    /// `(key, unescaped value)` in the order they came.
    pub fields: Vec<(String, String)>,
    pub data_len: u64,
}

impl Head {
    /// Every value of `key`.
    pub fn all<'a, 'k>(&'a self, key: &'k str) -> impl Iterator<Item = &'a str> + use<'a, 'k> {
        self.fields
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a frame or a reply could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("line longer than {MAX_LINE} bytes")]
    LineTooLong,
    #[error("frame ends before its end")]
    Truncated,
    #[error("unknown frame {0:?}")]
    UnknownVerb(String),
    #[error("unsupported protocol version {0:?} (this is {VERSION})")]
    Version(String),
    #[error("malformed line {0:?}")]
    BadLine(String),
    #[error("bad escape in the value of {0}")]
    BadEscape(String),
    #[error("more than {0} fields")]
    TooManyFields(usize),
    #[error("{got} bytes of data, more than {max}")]
    TooLarge { got: u64, max: u64 },
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl FrameError {
    /// The exit status a refusal for this error carries.
    pub fn exit(&self) -> Exit {
        match self {
            FrameError::TooLarge { .. } => Exit::Unavailable,
            FrameError::Io(_) => Exit::IoErr,
            _ => Exit::DataErr,
        }
    }
}

/// Append `value` escaped: bytes 0x21..=0x7E except `%` as they are, every
/// other byte as `%XX` (upper-case hex).
pub fn escape_into(value: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in value.as_bytes() {
        if (0x21..=0x7E).contains(&b) && b != b'%' {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xF)]]);
        }
    }
}

/// `value` escaped, as a string.
pub fn escape(value: &str) -> String {
    let mut out = Vec::with_capacity(value.len());
    escape_into(value, &mut out);
    // Only ASCII was pushed.
    String::from_utf8_lossy(&out).into_owned()
}

/// The value an escaped string stands for: strict (upper-case hex only, no
/// raw byte outside 0x21..=0x7E, no raw `%`), and valid UTF-8. `None`
/// otherwise.
pub fn unescape(s: &[u8]) -> Option<String> {
    let hex = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        if b == b'%' {
            let hi = hex(*s.get(i + 1)?)?;
            let lo = hex(*s.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else if (0x21..=0x7E).contains(&b) {
            out.push(b);
            i += 1;
        } else {
            return None;
        }
    }
    String::from_utf8(out).ok()
}

/// The head of a frame: `VERB VERSION`, the fields, `data N`.
pub fn encode_head(verb: Verb, fields: &[(&str, &str)], data_len: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        64 + fields
            .iter()
            .map(|(k, v)| k.len() + v.len() + 2)
            .sum::<usize>(),
    );
    out.extend_from_slice(verb.as_str().as_bytes());
    out.extend_from_slice(format!(" {VERSION}\n").as_bytes());
    for (k, v) in fields {
        out.extend_from_slice(k.as_bytes());
        if !v.is_empty() {
            out.push(b' ');
            escape_into(v, &mut out);
        }
        out.push(b'\n');
    }
    out.extend_from_slice(format!("data {data_len}\n").as_bytes());
    out
}

/// Read one LF-terminated line of at most [`MAX_LINE`] bytes into `buf`
/// (without the LF). `Ok(false)` at end of input before any byte.
pub fn read_line(r: &mut impl BufRead, buf: &mut Vec<u8>) -> Result<bool, FrameError> {
    buf.clear();
    let n = r.take(MAX_LINE as u64 + 1).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(false);
    }
    if buf.last() != Some(&b'\n') {
        return Err(if buf.len() > MAX_LINE {
            FrameError::LineTooLong
        } else {
            FrameError::Truncated
        });
    }
    buf.pop();
    Ok(true)
}

/// Shown in errors: a line, cut short and made printable.
fn shown(line: &[u8]) -> String {
    let cut = line.get(..line.len().min(60)).unwrap_or_default();
    crate::sanitize::line(&String::from_utf8_lossy(cut)).into_owned()
}

/// A decimal number of at most 19 digits (no sign, no blanks).
pub fn number(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Read a frame's head. `Ok(None)` at a clean end of input (no byte of a
/// new frame).
pub fn read_head(r: &mut impl BufRead, caps: &Caps) -> Result<Option<Head>, FrameError> {
    let mut line = Vec::new();
    if !read_line(r, &mut line)? {
        return Ok(None);
    }
    let first = std::str::from_utf8(&line).map_err(|_| FrameError::BadLine(shown(&line)))?;
    let (verb, version) = first
        .split_once(' ')
        .ok_or_else(|| FrameError::BadLine(shown(&line)))?;
    let verb = Verb::parse(verb).ok_or_else(|| FrameError::UnknownVerb(shown(verb.as_bytes())))?;
    if number(version) != Some(u64::from(VERSION)) {
        return Err(FrameError::Version(shown(version.as_bytes())));
    }
    let mut fields = Vec::new();
    loop {
        if !read_line(r, &mut line)? {
            return Err(FrameError::Truncated);
        }
        let (key, value) = match line.iter().position(|&b| b == b' ') {
            Some(i) => (
                line.get(..i).unwrap_or_default(),
                line.get(i + 1..).unwrap_or_default(),
            ),
            None => (line.as_slice(), &[][..]),
        };
        let key_ok = !key.is_empty()
            && key.len() <= MAX_KEY
            && key
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_');
        if !key_ok {
            return Err(FrameError::BadLine(shown(&line)));
        }
        // Checked above: ASCII.
        let key = String::from_utf8_lossy(key).into_owned();
        if key == "data" {
            let n = std::str::from_utf8(value)
                .ok()
                .and_then(number)
                .ok_or_else(|| FrameError::BadLine(shown(&line)))?;
            if n > caps.max_data {
                return Err(FrameError::TooLarge {
                    got: n,
                    max: caps.max_data,
                });
            }
            return Ok(Some(Head {
                verb,
                fields,
                data_len: n,
            }));
        }
        if fields.len() == caps.max_fields {
            return Err(FrameError::TooManyFields(caps.max_fields));
        }
        let value = unescape(value).ok_or_else(|| FrameError::BadEscape(key.clone()))?;
        fields.push((key, value));
    }
}

/// Append exactly `len` bytes of frame data to `out`.
pub fn read_data(r: &mut impl Read, len: u64, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let got = r.take(len).read_to_end(out)?;
    if got as u64 != len {
        return Err(FrameError::Truncated);
    }
    Ok(())
}

/// The exit status a reply's number names, if it is one this crate uses.
pub fn exit_from(code: u64) -> Option<Exit> {
    [
        Exit::Usage,
        Exit::DataErr,
        Exit::NoUser,
        Exit::Unavailable,
        Exit::Software,
        Exit::OsErr,
        Exit::CantCreat,
        Exit::IoErr,
        Exit::NoPerm,
        Exit::Config,
    ]
    .into_iter()
    .find(|e| u64::from(e.code()) == code)
}

/// relayd's answer to one message frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `250 QID queued|held`: committed (now or by an earlier try).
    Accepted { qid: String, held: bool },
    /// `5xx EXIT TEXT`: refused for good; `sendmail` exits with EXIT.
    Refused { code: u16, exit: Exit, text: String },
    /// `4xx EXIT TEXT`: relayd cannot take it now; `sendmail` uses the
    /// maildrop (the same queue id, so nothing is taken twice).
    Deferred { code: u16, text: String },
}

impl Reply {
    /// The reply line, LF included.
    pub fn line(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Reply::Accepted { qid, held } => {
                out.extend_from_slice(b"250 ");
                escape_into(qid, &mut out);
                out.extend_from_slice(if *held { b" held" } else { b" queued" });
            }
            Reply::Refused { code, exit, text } => {
                out.extend_from_slice(format!("{code} {} ", exit.code()).as_bytes());
                escape_into(text, &mut out);
            }
            Reply::Deferred { code, text } => {
                out.extend_from_slice(format!("{code} {} ", Exit::IoErr.code()).as_bytes());
                escape_into(text, &mut out);
            }
        }
        out.push(b'\n');
        out
    }

    /// Parse a reply line (without its LF).
    pub fn parse(line: &[u8]) -> Result<Reply, FrameError> {
        let bad = || FrameError::BadLine(shown(line));
        let text = std::str::from_utf8(line).map_err(|_| bad())?;
        let mut parts = text.splitn(3, ' ');
        let code = parts.next().and_then(number).ok_or_else(bad)?;
        let a = parts.next().ok_or_else(bad)?;
        let b = parts.next().unwrap_or_default();
        match code {
            250 => Ok(Reply::Accepted {
                qid: unescape(a.as_bytes()).ok_or_else(bad)?,
                held: match b {
                    "held" => true,
                    "queued" => false,
                    _ => return Err(bad()),
                },
            }),
            400..=499 => Ok(Reply::Deferred {
                code: code as u16,
                text: unescape(b.as_bytes()).ok_or_else(bad)?,
            }),
            500..=599 => Ok(Reply::Refused {
                code: code as u16,
                exit: number(a).and_then(exit_from).unwrap_or(Exit::Unavailable),
                text: unescape(b.as_bytes()).ok_or_else(bad)?,
            }),
            _ => Err(bad()),
        }
    }
}

/// relayd's first line on a new connection.
pub fn greeting() -> Vec<u8> {
    format!("220 scriptmail {VERSION}\n").into_bytes()
}

/// The first line for a connection relayd turns away (a cap is reached).
pub fn turned_away(why: &str) -> Vec<u8> {
    Reply::Deferred {
        code: 421,
        text: why.to_string(),
    }
    .line()
}

/// Whether a greeting line says relayd is ready for frames of this version.
pub fn is_ready(line: &[u8]) -> bool {
    line == greeting().strip_suffix(b"\n").unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: Caps = Caps {
        max_fields: 8,
        max_data: 100,
    };

    fn head(bytes: &[u8]) -> Result<Option<Head>, FrameError> {
        read_head(&mut &bytes[..], &CAPS)
    }

    #[test]
    fn a_frame_round_trips_with_any_bytes_in_its_values() {
        let cwd = "/srv/a b/%x\r\n\t\u{1b}[31m/caf\u{e9}";
        let mut bytes = encode_head(Verb::Msg, &[("cwd", cwd), ("empty", "")], 3);
        assert!(
            bytes
                .iter()
                .all(|&b| b == b'\n' || (0x20..0x7F).contains(&b))
        );
        bytes.extend_from_slice(b"abc");
        let mut r = &bytes[..];
        let h = read_head(&mut r, &CAPS).unwrap().unwrap();
        assert_eq!(h.verb, Verb::Msg);
        assert_eq!(h.all("cwd").collect::<Vec<_>>(), [cwd]);
        assert_eq!(h.all("empty").collect::<Vec<_>>(), [""]);
        let mut data = Vec::new();
        read_data(&mut r, h.data_len, &mut data).unwrap();
        assert_eq!(data, b"abc");
        assert!(read_head(&mut r, &CAPS).unwrap().is_none(), "clean end");
    }

    #[test]
    fn strict_about_everything_but_unknown_keys() {
        let ok = head(b"MSG 1\nwhatever_new 1\ndata 0\n").unwrap().unwrap();
        assert_eq!(ok.fields.len(), 1);
        for (bad, what) in [
            (&b"MSG 2\ndata 0\n"[..], "version"),
            (b"MSG 01x\ndata 0\n", "version"),
            (b"HELO 1\ndata 0\n", "verb"),
            (b"MSG 1\nKey v\ndata 0\n", "upper-case key"),
            (b"MSG 1\nk a b\ndata 0\n", "raw space in a value"),
            (b"MSG 1\nk %4\ndata 0\n", "short escape"),
            (b"MSG 1\nk %4a\ndata 0\n", "lower-case escape"),
            (b"MSG 1\nk %FF\ndata 0\n", "escape to invalid UTF-8"),
            (b"MSG 1\nk v\r\ndata 0\n", "CR"),
            (b"MSG 1\ndata -1\n", "negative length"),
            (b"MSG 1\ndata 101\n", "too much data"),
            (b"MSG 1\nk v\n", "no data line"),
            (b"MSG 1\nk v", "cut in a line"),
        ] {
            assert!(
                head(bad).is_err(),
                "{what}: {:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let many: Vec<u8> = [&b"MSG 1\n"[..], &b"k v\n".repeat(9), b"data 0\n"].concat();
        assert!(matches!(head(&many), Err(FrameError::TooManyFields(8))));
        let long = [&b"MSG 1\nk "[..], &vec![b'a'; MAX_LINE], b"\ndata 0\n"].concat();
        assert!(matches!(head(&long), Err(FrameError::LineTooLong)));
    }

    #[test]
    fn data_shorter_than_announced_is_truncated() {
        let mut r = &b"ab"[..];
        let mut out = Vec::new();
        assert!(matches!(
            read_data(&mut r, 3, &mut out),
            Err(FrameError::Truncated)
        ));
    }

    #[test]
    fn replies_round_trip() {
        for r in [
            Reply::Accepted {
                qid: "0123456789ABCDEF0123".into(),
                held: true,
            },
            Reply::Accepted {
                qid: "Q".into(),
                held: false,
            },
            Reply::Refused {
                code: 554,
                exit: Exit::NoPerm,
                text: "not allowed: a\nb".into(),
            },
            Reply::Deferred {
                code: 451,
                text: "busy".into(),
            },
        ] {
            let line = r.line();
            assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
            assert_eq!(Reply::parse(line.strip_suffix(b"\n").unwrap()).unwrap(), r);
        }
        assert!(Reply::parse(b"250 Q maybe").is_err());
        assert!(Reply::parse(b"999 1 x").is_err());
        // An exit status this crate never uses becomes 69.
        assert_eq!(
            Reply::parse(b"554 75 x").unwrap(),
            Reply::Refused {
                code: 554,
                exit: Exit::Unavailable,
                text: "x".into()
            }
        );
    }

    #[test]
    fn greeting_says_the_version() {
        assert!(is_ready(b"220 scriptmail 1"));
        assert!(!is_ready(b"220 scriptmail 2"));
        assert!(!is_ready(&turned_away("full")));
    }
}
