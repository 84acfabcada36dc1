//! The HTTP shapes the handlers see, independent of the server crate: a
//! request ([`Req`]: method, decoded path, query, headers, body, client),
//! a response ([`Resp`]) and an error ([`ApiError`]) that knows its status
//! and renders as the JSON every error of the API has —
//! `{"class": "Client::NotFound", "message": "no such account: shop1"}`,
//! the shape of the control panel's own API (docs/api.md, "Errors").

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::control::ControlError;
use crate::exit::{Exit, Failure};
use crate::store::StoreError;

/// The methods the API answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Put,
    Post,
    Delete,
}

impl Method {
    pub fn parse(m: &str) -> Option<Method> {
        match m {
            // HEAD is a GET whose body the server does not send.
            "GET" | "HEAD" => Some(Method::Get),
            "PUT" => Some(Method::Put),
            "POST" => Some(Method::Post),
            "DELETE" => Some(Method::Delete),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }

    /// Whether it may change something (and so needs the CSRF checks when
    /// a browser session makes it).
    pub fn is_unsafe(self) -> bool {
        self != Method::Get
    }
}

/// One request, as the handlers see it.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: Method,
    /// The path, not yet split or decoded.
    pub path: String,
    /// Query parameters, percent-decoded.
    pub query: Vec<(String, String)>,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Who is asking, for the rate limit and the logs (an address).
    pub client: String,
}

impl Req {
    /// A request for `target` (`/path?query`).
    pub fn new(method: Method, target: &str, headers: Vec<(String, String)>, client: &str) -> Req {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        Req {
            method,
            path: path.to_string(),
            query: parse_query(query),
            headers: headers
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
            body: Vec::new(),
            client: client.to_string(),
        }
    }

    /// The first header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The query parameter `name` as a number in `range`, or `default`.
    pub fn number(
        &self,
        name: &str,
        default: u32,
        range: std::ops::RangeInclusive<u32>,
    ) -> Result<u32, ApiError> {
        match self.param(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "{name}: {v:?} is not a number from {} to {}",
                        range.start(),
                        range.end()
                    ))
                }),
        }
    }

    /// The query parameter `name` as a boolean (`true`, `false`, `1`, `0`).
    pub fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.param(name) {
            None | Some("false" | "0") => Ok(false),
            Some("true" | "1" | "") => Ok(true),
            Some(v) => Err(ApiError::bad_request(format!(
                "{name}: {v:?} is not true or false"
            ))),
        }
    }

    /// The body as the JSON document `T`; an empty body reads as `{}`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        let body: &[u8] = if self.body.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &self.body
        };
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))
    }
}

/// `a=1&b=x%20y` → pairs, `+` as a space (HTML forms).
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

/// Decode `%XX` escapes; a bad escape stays as it is; invalid UTF-8
/// becomes U+FFFD.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b.get(i),
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (Some(b'%'), Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (Some(&c), _, _) => {
                out.push(c);
                i += 1;
            }
            (None, _, _) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl Resp {
    /// `doc` as JSON, 200.
    pub fn json<T: Serialize>(doc: &T) -> Resp {
        // Serialising our own documents cannot fail (string keys, no maps
        // with other keys); an empty object would be the least wrong answer.
        let body = serde_json::to_vec_pretty(doc).unwrap_or_else(|_| b"{}".to_vec());
        Resp {
            status: 200,
            content_type: "application/json",
            body,
            headers: Vec::new(),
        }
    }

    pub fn text(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Resp {
        Resp {
            status,
            content_type,
            body: body.into(),
            headers: Vec::new(),
        }
    }

    pub fn with_status(mut self, status: u16) -> Resp {
        self.status = status;
        self
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Resp {
        self.headers.push((name, value.into()));
        self
    }
}

/// A request the API does not carry out, with the status that says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    /// Seconds, for 429.
    pub retry_after: Option<u64>,
}

/// The error document.
#[derive(Serialize)]
struct ErrorDoc<'a> {
    class: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(401, message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(403, message)
    }

    /// The answer for an account the caller may not see: exactly what an
    /// account that does not exist gets (SECURITY.md, "The panel API").
    pub fn no_account(name: &str) -> ApiError {
        ApiError::from(ControlError::Store(StoreError::NoAccount(name.to_string())))
    }

    /// The same for a message.
    pub fn no_message(qid: &str) -> ApiError {
        ApiError::from(ControlError::Store(StoreError::NoMessage(qid.to_string())))
    }

    /// The class of the control panel's API errors.
    pub fn class(&self) -> &'static str {
        match self.status {
            400 => "Client::BadRequest",
            401 => "Client::Unauthorized",
            403 => "Client::Forbidden",
            404 => "Client::NotFound",
            405 => "Client::MethodNotAllowed",
            409 => "Client::Conflict",
            411 => "Client::LengthRequired",
            413 => "Client::PayloadTooLarge",
            415 => "Client::UnsupportedMediaType",
            429 => "Client::TooManyRequests",
            503 => "Server::ServiceUnavailable",
            _ => "Server::InternalServerError",
        }
    }

    pub fn into_resp(self) -> Resp {
        let body = serde_json::to_vec(&ErrorDoc {
            class: self.class(),
            message: &self.message,
        })
        .unwrap_or_default();
        let mut r = Resp {
            status: self.status,
            content_type: "application/json",
            body,
            headers: Vec::new(),
        };
        if self.status == 401 {
            r = r.with_header("WWW-Authenticate", "Bearer realm=\"scriptmail\"");
        }
        if let Some(s) = self.retry_after {
            r = r.with_header("Retry-After", s.to_string());
        }
        r
    }
}

impl From<ControlError> for ApiError {
    /// By the exit status `mailq-ctl` gives the same failure: a bad
    /// argument 400, nothing by that name 404, refused by the state rules
    /// or the policy 409, the queue or the configuration failing 500.
    fn from(e: ControlError) -> ApiError {
        let status = match e.exit_code() {
            Exit::Usage | Exit::DataErr => 400,
            Exit::NoUser => 404,
            Exit::NoPerm => 409,
            _ => 500,
        };
        ApiError::new(status, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_and_escapes_decode_without_panicking() {
        let r = Req::new(
            Method::Get,
            "/x?limit=5&q=a%20b+c&bad=%zz%4&e=%C3%A9",
            vec![],
            "c",
        );
        assert_eq!(r.path, "/x");
        assert_eq!(r.param("limit"), Some("5"));
        assert_eq!(r.param("q"), Some("a b c"));
        assert_eq!(r.param("bad"), Some("%zz%4"));
        assert_eq!(r.param("e"), Some("é"));
        assert_eq!(percent_decode("%ff%"), "\u{fffd}%");
        assert_eq!(r.number("limit", 1, 1..=10), Ok(5));
        assert_eq!(r.number("none", 7, 1..=10), Ok(7));
        assert_eq!(r.number("q", 1, 1..=10).unwrap_err().status, 400);
        assert!(
            Req::new(Method::Get, "/?f=true", vec![], "c")
                .flag("f")
                .unwrap()
        );
    }

    #[test]
    fn errors_carry_the_panel_api_classes() {
        let e = ApiError::no_account("shop1");
        assert_eq!(e.status, 404);
        let r = e.into_resp();
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["class"], "Client::NotFound");
        assert_eq!(v["message"], "no such account: shop1");
        let r = ApiError::unauthorized("x").into_resp();
        assert!(r.headers.iter().any(|(k, _)| *k == "WWW-Authenticate"));
    }

    #[test]
    fn malformed_json_is_a_400_with_the_parser_s_message() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Body {
            action: String,
        }
        let mut r = Req::new(Method::Post, "/", vec![], "c");
        r.body = b"{\"action\": ".to_vec();
        let e = r.json::<Body>().unwrap_err();
        assert_eq!(e.status, 400);
        assert!(
            e.message.starts_with("malformed JSON body: "),
            "{}",
            e.message
        );
    }
}
