//! Content-Type values (RFC 2045 §5.1): the media type and its parameters, as the
//! re-encoding of an outgoing message (`reencode`) needs them.
//!
//! Hand-written rather than taken from the bounce parser's MIME library (`dsn` uses
//! mail-parser): this runs in the privileged `sendmail`, which links only what it must.

/// The media type (lowercase) and parameters (names lowercase) of a Content-Type value;
/// no header means `text/plain` (RFC 2045 §5.2).
pub fn content_type(value: Option<&str>) -> (String, Vec<(String, String)>) {
    let Some(value) = value else {
        return ("text/plain".into(), Vec::new());
    };
    let mut pieces = split_params(value).into_iter();
    let mime = pieces
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let params = pieces
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((k.trim().to_ascii_lowercase(), unquote(v.trim())))
        })
        .collect();
    (mime, params)
}

/// The value of parameter `name` (lowercase), when present and not empty.
pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// Split on `;` outside quoted strings (RFC 2045 §5.1: a value may be a
/// quoted-string).
fn split_params(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
        } else if quoted && c == '\\' {
            cur.push(c);
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
            cur.push(c);
        } else if c == ';' && !quoted {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

/// A quoted-string's content, quoted-pairs resolved (RFC 5322 §3.2.4).
fn unquote(v: &str) -> String {
    match v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut esc = false;
            for c in inner.chars() {
                if esc {
                    out.push(c);
                    esc = false;
                } else if c == '\\' {
                    esc = true;
                } else {
                    out.push(c);
                }
            }
            out
        }
        None => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_parameters() {
        let (mime, params) = content_type(Some(
            "Multipart/Mixed; Boundary=\"a;b \\\"c\\\"\"; charset=utf-8",
        ));
        assert_eq!(mime, "multipart/mixed");
        assert_eq!(param(&params, "boundary"), Some("a;b \"c\""));
        assert_eq!(param(&params, "charset"), Some("utf-8"));
        assert_eq!(param(&params, "name"), None);
        assert_eq!(content_type(None).0, "text/plain");
        let (_, params) = content_type(Some("multipart/mixed; boundary=\"\"; x"));
        assert_eq!(param(&params, "boundary"), None);
    }
}
