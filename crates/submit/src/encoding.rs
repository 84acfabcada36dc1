//! The Content-Transfer-Encodings `reencode` writes: quoted-printable and base64
//! (RFC 2045 §6.7, §6.8), and re-cutting content already in them into short lines.

use crate::reencode::MAX_LINE;

/// RFC 2045 §6.7 rule 5 and §6.8: encoded lines are at most 76 characters.
pub(crate) const ENCODED_LINE: usize = 76;

/// Split at CRLF (the separators removed).
pub(crate) fn split_crlf(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(bytes);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.windows(2).position(|w| w == b"\r\n") {
            Some(i) => {
                rest = Some(&r[i + 2..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Quoted-printable (RFC 2045 §6.7) of text: CRLF stays a (hard) line break; every
/// other byte that is not printable ASCII, `=`, a blank before a line break, and a
/// CR or LF on its own are `=XX`; lines are cut with soft breaks at 76 characters.
/// A line starting with `From ` gets its `F` encoded too, so no mbox writer on the
/// way adds a `>` to it. Decoding gives back exactly `content`.
pub fn qp_encode(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + content.len() / 8 + 8);
    for (k, line) in split_crlf(content).enumerate() {
        if k > 0 {
            out.extend_from_slice(b"\r\n");
        }
        let mut width = 0;
        for (i, &b) in line.iter().enumerate() {
            let last = i + 1 == line.len();
            let literal = match b {
                b'=' => false,
                b' ' | b'\t' => !last,
                b'F' if i == 0 => !line.starts_with(b"From "),
                33..=126 => true,
                _ => false,
            };
            let len = if literal { 1 } else { 3 };
            // Room for this and, unless it ends the line, the soft break's `=`.
            let room = if last { ENCODED_LINE } else { ENCODED_LINE - 1 };
            if width + len > room {
                out.extend_from_slice(b"=\r\n");
                width = 0;
            }
            if literal {
                out.push(b);
            } else {
                out.extend_from_slice(&[b'=', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
            }
            width += len;
        }
    }
    out
}

/// Quoted-printable content with soft line breaks added to its long lines, never
/// inside an `=XX` escape (or right after a stray `=`): decoders remove them, so the
/// decoded bytes are unchanged.
pub(crate) fn soft_break_qp(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + content.len() / 32 + 8);
    for (k, line) in split_crlf(content).enumerate() {
        if k > 0 {
            out.extend_from_slice(b"\r\n");
        }
        if line.len() <= MAX_LINE {
            out.extend_from_slice(line);
            continue;
        }
        let mut width = 0;
        let mut i = 0;
        while i < line.len() {
            let unit = if line[i] == b'=' {
                let hex = line
                    .get(i + 1..i + 3)
                    .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
                if hex { 3 } else { 2.min(line.len() - i) }
            } else {
                1
            };
            if width + unit > ENCODED_LINE - 1 && width > 0 && i + unit < line.len() {
                out.extend_from_slice(b"=\r\n");
                width = 0;
            }
            out.extend_from_slice(&line[i..i + unit]);
            width += unit;
            i += unit;
        }
    }
    out
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Length of [`base64_encode`]'s output for `n` bytes (before any final CRLF).
pub(crate) fn base64_len(n: usize) -> usize {
    let chars = n.div_ceil(3) * 4;
    chars + chars.div_ceil(ENCODED_LINE).saturating_sub(1) * 2
}

/// Base64 (RFC 2045 §6.8) in lines of 76 characters, ending in CRLF if `content` did
/// (so a body keeps ending in a line break).
pub fn base64_encode(content: &[u8]) -> Vec<u8> {
    let mut chars = Vec::with_capacity(content.len().div_ceil(3) * 4);
    for chunk in content.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                chars.push(B64[((n >> (18 - 6 * k)) & 63) as usize]);
            } else {
                chars.push(b'=');
            }
        }
    }
    lines_of(&chars, content.ends_with(b"\r\n"))
}

/// Base64 content re-cut into lines of 76 characters (decoders skip line breaks).
pub(crate) fn rewrap_base64(content: &[u8]) -> Vec<u8> {
    let chars: Vec<u8> = content
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    lines_of(&chars, content.ends_with(b"\r\n"))
}

fn lines_of(chars: &[u8], final_crlf: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(chars.len() + chars.len() / 38 + 2);
    for (k, line) in chars.chunks(ENCODED_LINE).enumerate() {
        if k > 0 {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(line);
    }
    if final_crlf {
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reencode::tests::{assert_fits, b64_decode, long_text, qp_decode};

    #[test]
    fn quoted_printable_round_trips_exactly() {
        let long = long_text(5000);
        let cases: Vec<Vec<u8>> = vec![
            long.clone().into_bytes(),
            format!("{long}\r\nshort\r\n\r\n{long} \r\n").into_bytes(),
            b"From the start\r\nFrom: x\r\n.\r\n..\r\ntrailing \t\r\n=3D already\r\n".to_vec(),
            b"nul\0 bare\rcr bare\nlf \xff\xfe end".to_vec(),
            vec![b' '; 2000],
            b"=".repeat(1000),
        ];
        for c in cases {
            let e = qp_encode(&c);
            assert_fits(&e);
            assert!(
                e.split(|&b| b == b'\n')
                    .all(|l| l.len() <= ENCODED_LINE + 1)
            );
            assert_eq!(qp_decode(&e), c);
        }
        assert_eq!(qp_encode(b"From x\r\nFrom"), b"=46rom x\r\nFrom");
        assert_eq!(qp_encode(b"a \r\nb\t"), b"a=20\r\nb=09");
    }

    #[test]
    fn soft_breaks_keep_quoted_printable_text() {
        let mut line = Vec::new();
        for k in 0..600 {
            line.extend_from_slice(if k % 3 == 0 { b"=C3=A9" } else { b"ab" });
        }
        line.extend_from_slice(b"=\r\nnext=");
        let e = soft_break_qp(&line);
        assert_fits(&e);
        assert_eq!(qp_decode(&e), qp_decode(&line));
        // A stray '=' never gets a soft break right after it.
        let stray = format!("{}=x{}", "a".repeat(74), "b".repeat(2000));
        let e = soft_break_qp(stray.as_bytes());
        assert_fits(&e);
        assert!(!e.windows(2).any(|w| w == b"=="));
    }

    #[test]
    fn base64_encodes_and_rewraps() {
        assert_eq!(base64_encode(b""), b"");
        assert_eq!(base64_encode(b"f"), b"Zg==");
        assert_eq!(base64_encode(b"fo"), b"Zm8=");
        assert_eq!(base64_encode(b"foobar"), b"Zm9vYmFy");
        let data: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        let e = base64_encode(&data);
        assert_eq!(e.len(), base64_len(data.len()));
        assert_fits(&e);
        assert_eq!(b64_decode(&e), data);
        let one_line: Vec<u8> = e
            .iter()
            .copied()
            .filter(|&b| b != b'\r' && b != b'\n')
            .collect();
        let r = rewrap_base64(&one_line);
        assert_fits(&r);
        assert_eq!(b64_decode(&r), data);
    }
}
