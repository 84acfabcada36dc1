//! HTTP/1.1 on the wire (RFC 9112): reading one request — request line,
//! header fields, a `Content-Length` body — within fixed limits, and
//! writing one response. Only what the API needs: no chunked request
//! bodies (411), no trailers, no pipelining beyond one request after
//! another on a kept-alive connection.
//!
//! Every limit is checked before the bytes it bounds are read: a request
//! line or field line over [`MAX_LINE`], a header section over
//! [`MAX_HEAD`], a body over [`MAX_BODY`] (413, and the connection
//! closes without reading it). How long a client may take is the
//! caller's: the reader it passes fails with `TimedOut` at its deadline.

use std::io::{BufRead, Write};

use super::http::{Method, Resp};

/// The longest request line or field line.
pub const MAX_LINE: usize = 8 * 1024;
/// The largest header section.
pub const MAX_HEAD: usize = 16 * 1024;
/// The most header fields.
const MAX_FIELDS: usize = 100;
/// The largest request body.
pub const MAX_BODY: usize = 16 * 1024;

/// A request as read off the wire.
#[derive(Debug)]
pub struct Raw {
    /// `None`: a method the API does not serve (405).
    pub method: Option<Method>,
    /// HEAD: answer without the body.
    pub head_only: bool,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the client keeps the connection for another request.
    pub keep_alive: bool,
}

/// Why no request could be read.
#[derive(Debug)]
pub enum WireError {
    /// The client closed the connection (or was idle) before a request began.
    Closed,
    /// The request is refused with this status; the connection closes.
    Refuse(u16, &'static str),
    /// Reading failed or took too long; nothing can be answered.
    Io(std::io::Error),
}

impl From<std::io::Error> for WireError {
    fn from(e: std::io::Error) -> WireError {
        WireError::Io(e)
    }
}

/// Read one line ending in LF (CR LF, or a bare LF), without it; at most
/// `max` bytes. `Ok(None)`: end of input before any byte.
fn line(r: &mut impl BufRead, max: usize) -> Result<Option<String>, WireError> {
    let mut buf = Vec::new();
    loop {
        let avail = r.fill_buf()?;
        if avail.is_empty() {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(WireError::Refuse(
                    400,
                    "the request ended in the middle of a line",
                ))
            };
        }
        let (chunk, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (&avail[..=i], true),
            None => (avail, false),
        };
        if buf.len() + chunk.len() > max {
            return Err(WireError::Refuse(
                431,
                "a request line or header field is too long",
            ));
        }
        buf.extend_from_slice(chunk);
        let n = chunk.len();
        r.consume(n);
        if done {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return String::from_utf8(buf)
                .map(Some)
                .map_err(|_| WireError::Refuse(400, "the request head is not UTF-8"));
        }
    }
}

/// Read one request. `w` gets the interim `100 Continue` a client that
/// sent `Expect: 100-continue` waits for.
pub fn read_request(r: &mut impl BufRead, w: &mut impl Write) -> Result<Raw, WireError> {
    // RFC 9112 §2.2: empty lines before a request line are ignored.
    let request_line = loop {
        match line(r, MAX_LINE) {
            Ok(Some(l)) if l.is_empty() => continue,
            Ok(Some(l)) => break l,
            Ok(None) => return Err(WireError::Closed),
            Err(WireError::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                return Err(WireError::Closed);
            }
            Err(e) => return Err(e),
        }
    };
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(WireError::Refuse(400, "malformed request line"));
    };
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        v if v.starts_with("HTTP/") => {
            return Err(WireError::Refuse(505, "only HTTP/1.0 and HTTP/1.1"));
        }
        _ => return Err(WireError::Refuse(400, "malformed request line")),
    };
    if !target.starts_with('/') {
        return Err(WireError::Refuse(400, "the request target must be a path"));
    }
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut size = request_line.len();
    loop {
        let Some(l) = line(r, MAX_LINE)? else {
            return Err(WireError::Refuse(
                400,
                "the request ended in its header section",
            ));
        };
        if l.is_empty() {
            break;
        }
        size += l.len() + 2;
        if size > MAX_HEAD || headers.len() >= MAX_FIELDS {
            return Err(WireError::Refuse(431, "the header section is too large"));
        }
        let Some((name, value)) = l.split_once(':') else {
            return Err(WireError::Refuse(400, "malformed header field"));
        };
        // RFC 9112 §5.1: no whitespace between the name and the colon.
        if name.is_empty() || name.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(WireError::Refuse(400, "malformed header field name"));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    if get("transfer-encoding").is_some() {
        return Err(WireError::Refuse(
            411,
            "send the body with a Content-Length",
        ));
    }
    let lengths: Vec<&str> = headers
        .iter()
        .filter(|(k, _)| k == "content-length")
        .map(|(_, v)| v.as_str())
        .collect();
    let length = match lengths.as_slice() {
        [] => 0,
        [one] if !one.is_empty() && one.bytes().all(|b| b.is_ascii_digit()) => {
            one.parse::<usize>().unwrap_or(usize::MAX)
        }
        _ => return Err(WireError::Refuse(400, "malformed Content-Length")),
    };
    if length > MAX_BODY {
        return Err(WireError::Refuse(413, "the body is limited to 16384 bytes"));
    }
    if length > 0
        && get("expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
        && !http10
    {
        w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        w.flush()?;
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body)?;
    let connection = get("connection").unwrap_or("").to_ascii_lowercase();
    let keep_alive = if http10 {
        connection.contains("keep-alive")
    } else {
        !connection.contains("close")
    };
    Ok(Raw {
        method: Method::parse(method),
        head_only: method == "HEAD",
        target: target.to_string(),
        headers,
        body,
        keep_alive,
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// Write `resp`, with the headers every answer carries.
pub fn write_response(
    w: &mut impl Write,
    resp: &Resp,
    keep_alive: bool,
    head_only: bool,
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n\
         X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n",
        resp.status,
        reason(resp.status),
        resp.content_type,
        resp.body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    if !resp.headers.iter().any(|(k, _)| *k == "Cache-Control") {
        head.push_str("Cache-Control: no-store\r\n");
    }
    for (k, v) in &resp.headers {
        // Our own header values; a line break in one would split the head.
        if !v.contains(['\r', '\n']) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())?;
    if !head_only {
        w.write_all(&resp.body)?;
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    fn read(raw: &[u8]) -> (Result<Raw, WireError>, Vec<u8>) {
        let mut out = Vec::new();
        let r = read_request(&mut BufReader::new(raw), &mut out);
        (r, out)
    }

    fn refused(raw: &[u8]) -> u16 {
        match read(raw).0 {
            Err(WireError::Refuse(s, _)) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn requests_are_read_with_their_body_and_connection_mode() {
        let (r, out) = read(b"\r\nPOST /a?b=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n{}GET");
        let r = r.unwrap();
        assert_eq!(
            (r.method, r.target.as_str(), r.body.as_slice()),
            (Some(Method::Post), "/a?b=1", &b"{}"[..])
        );
        assert!(r.keep_alive);
        assert_eq!(out, b"HTTP/1.1 100 Continue\r\n\r\n");
        assert_eq!(r.headers[0], ("host".into(), "x".into()));
        let r = read(b"HEAD / HTTP/1.0\nX: y\n\n").0.unwrap();
        assert!(r.head_only && !r.keep_alive && r.method == Some(Method::Get));
        let r = read(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            .0
            .unwrap();
        assert!(!r.keep_alive);
        assert!(
            read(b"PATCH / HTTP/1.1\r\n\r\n")
                .0
                .unwrap()
                .method
                .is_none()
        );
        assert!(matches!(read(b"").0, Err(WireError::Closed)));
    }

    #[test]
    fn limits_are_checked_before_reading_what_they_bound() {
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n"),
            413
        );
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nContent-Length: 16385\r\n\r\n"),
            413
        );
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            411
        );
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            400
        );
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
            400
        );
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_LINE));
        assert_eq!(refused(long.as_bytes()), 431);
        let many: String = (0..200).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(
            refused(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()),
            431
        );
        assert_eq!(refused(b"GET / HTTP/2.0\r\n\r\n"), 505);
        assert_eq!(refused(b"GET http://x/ HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(refused(b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"), 400);
        assert_eq!(refused(b"GET /  HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(refused(b"GET / HTTP/1.1\r\nHost: \xff\r\n\r\n"), 400);
        // A body shorter than announced is an error, not a hang or a panic.
        assert!(matches!(
            read(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab").0,
            Err(WireError::Io(_))
        ));
    }

    #[test]
    fn responses_carry_length_connection_and_safe_headers() {
        let mut out = Vec::new();
        let r = Resp::text(404, "application/json", "{}").with_header("X-A", "b\r\nEvil: 1");
        write_response(&mut out, &r, false, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
        assert!(text.contains("Content-Length: 2\r\nConnection: close\r\n"));
        assert!(!text.contains("Evil"));
        assert!(text.ends_with("\r\n\r\n{}"));
        let mut out = Vec::new();
        write_response(&mut out, &r, true, true).unwrap();
        assert!(String::from_utf8(out).unwrap().ends_with("keep-alive\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\nCache-Control: no-store\r\n\r\n"));
    }

    /// Outside input never panics: the request reader, the query and
    /// percent decoding, Accept-Language, the tokens file (a fixed number
    /// of cases, as in src/proptests.rs).
    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn httpish() -> impl Strategy<Value = Vec<u8>> {
            let piece = prop_oneof![
                Just(b"GET / HTTP/1.1\r\n".to_vec()),
                Just(b"POST /v1/session HTTP/1.0\r\n".to_vec()),
                Just(b"Content-Length: 3\r\n".to_vec()),
                Just(b"Content-Length: 99999999999999999999999\r\n".to_vec()),
                Just(b"Transfer-Encoding: chunked\r\n".to_vec()),
                Just(b"Expect: 100-continue\r\n".to_vec()),
                Just(b"\r\n".to_vec()),
                Just(b"\n".to_vec()),
                Just(b"%zz%C3%A9?a=b&&=".to_vec()),
                proptest::collection::vec(any::<u8>(), 0..40),
            ];
            proptest::collection::vec(piece, 0..12).prop_map(|v| v.concat())
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

            #[test]
            fn the_request_reader_never_panics(input in httpish()) {
                let mut out = Vec::new();
                if let Ok(r) = read_request(&mut std::io::BufReader::new(&input[..]), &mut out) {
                    prop_assert!(r.body.len() <= MAX_BODY);
                    prop_assert!(r.target.starts_with('/'));
                }
            }

            #[test]
            fn decoders_never_panic(s in ".{0,80}", b in proptest::collection::vec(any::<u8>(), 0..80)) {
                let text = String::from_utf8_lossy(&b);
                let _ = crate::api::http::parse_query(&s);
                let _ = crate::api::http::percent_decode(&text);
                let _ = crate::api::i18n::pick(Some(&s));
                let _ = crate::api::tokens::parse(&text, std::path::Path::new("/x"));
                let _ = crate::api::sessions::cookie_id(&s);
            }
        }
    }
}
