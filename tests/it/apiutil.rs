//! What the API tests share: an environment with `scriptmail api`
//! listening on a free port, tokens made with the real `mailq-ctl
//! api-token add`, a small HTTP/1.1 client, and a checker that holds a
//! JSON answer to its schema in docs/openapi.json (closed objects: a key
//! added, missing or of another type fails).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::util::{Daemon, Env, assert_ok, closed_port, stdout, wait_until};

/// A running `scriptmail api`.
pub struct Api {
    pub port: u16,
    pub daemon: Daemon,
}

/// An environment relaying to `relay_port` whose API listens on a free
/// port, tokens in the environment's directory; `top` adds dotted keys.
pub fn env_with_api(relay_port: u16, top: &str) -> (Env, u16) {
    let port = closed_port();
    let env = Env::with_config(
        relay_port,
        &format!("api.listen = \"127.0.0.1:{port}\"\napi.tokens_file = \"api-tokens\"\n{top}"),
    );
    (env, port)
}

/// Start `scriptmail api` and wait until it answers.
pub fn start_api(env: &Env, port: u16) -> Api {
    let log = env.path().join("api.stderr");
    let err = std::fs::File::create(&log).expect("api stderr file");
    let child = env
        .scriptmail()
        .arg("api")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("start scriptmail api");
    wait_until(Duration::from_secs(20), || {
        try_http(port, "GET", "/v1/openapi.json", &[], None).is_ok_and(|r| r.status == 200)
    });
    Api {
        port,
        daemon: Daemon {
            child: Some(child),
            stderr: Some(log),
        },
    }
}

/// `mailq-ctl api-token add NAME --scope SCOPE`: the token, from the last
/// line of its output.
pub fn token(env: &Env, name: &str, scope: &str) -> String {
    let out = env.ctl(&["api-token", "add", name, "--scope", scope]);
    assert_ok(&out);
    let text = stdout(&out);
    let last = text.lines().last().expect("a last line").to_string();
    assert!(
        last.starts_with("sm_") && last.len() == 67,
        "the token alone on the last line: {text}"
    );
    last
}

/// One answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text()))
    }
}

/// One request on a new connection (`Connection: close`).
pub fn try_http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(90)))?;
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            req.push_str("Content-Type: application/json\r\n");
        }
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    req.push_str(body.unwrap_or(""));
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_reply(&raw).ok_or_else(|| std::io::Error::other("malformed answer"))
}

/// Parse a whole HTTP/1.1 answer (tiny_http sends Content-Length).
pub fn parse_reply(raw: &[u8]) -> Option<Reply> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Some(Reply {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    })
}

#[track_caller]
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Reply {
    try_http(port, method, path, headers, body).expect("HTTP request")
}

/// A client with a bearer token.
pub struct Client<'a> {
    pub port: u16,
    pub auth: String,
    pub schemas: &'a Schemas,
}

impl Client<'_> {
    #[track_caller]
    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        http(
            self.port,
            method,
            path,
            &[("Authorization", &self.auth)],
            body,
        )
    }

    /// `method path` answers 200 with a document of `schema`.
    #[track_caller]
    pub fn ok(&self, method: &str, path: &str, body: Option<&str>, schema: &str) -> Value {
        let r = self.call(method, path, body);
        assert_eq!(r.status, 200, "{method} {path}: {}", r.text());
        let v = r.json();
        if let Err(e) = self.schemas.check(schema, &v) {
            panic!("{method} {path}: not a {schema}: {e}\n{v:#}");
        }
        v
    }

    /// `method path` is refused with `status` and an error document.
    #[track_caller]
    pub fn refused(&self, method: &str, path: &str, body: Option<&str>, status: u16) -> String {
        let r = self.call(method, path, body);
        assert_eq!(r.status, status, "{method} {path}: {}", r.text());
        let v = r.json();
        self.schemas.check("Error", &v).expect("an error document");
        v["message"].as_str().unwrap_or_default().to_string()
    }
}

/// A task id from `.../email/request`.
#[track_caller]
pub fn request(c: &Client<'_>, account: &str, action: &str) -> String {
    let r = c.call(
        "POST",
        &format!("/hosting/web/{account}/email/request"),
        Some(&format!("{{\"action\": \"{action}\"}}")),
    );
    assert_eq!(r.status, 200, "{action}: {}", r.text());
    let id = r.json();
    assert!(id.is_string(), "a task id string: {id}");
    id.as_str().unwrap_or_default().to_string()
}

/// docs/openapi.json's schemas.
pub struct Schemas(pub Value);

impl Schemas {
    pub fn load() -> Schemas {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json"))
                .expect("docs/openapi.json");
        Schemas(serde_json::from_str(&text).expect("docs/openapi.json is JSON"))
    }

    /// Whether `v` is a `name` (a schema of components/schemas).
    pub fn check(&self, name: &str, v: &Value) -> Result<(), String> {
        let schema = self.0["components"]["schemas"]
            .get(name)
            .ok_or_else(|| format!("no schema {name}"))?;
        self.validate(schema, v, "$")
    }

    fn validate(&self, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let name = r.trim_start_matches("#/components/schemas/");
            return self.check(name, v).map_err(|e| format!("{at}: {e}"));
        }
        if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
            let errs: Vec<String> = any
                .iter()
                .filter_map(|s| self.validate(s, v, at).err())
                .collect();
            return if errs.len() < any.len() {
                Ok(())
            } else {
                Err(errs.join(" | "))
            };
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array)
            && !values.contains(v)
        {
            return Err(format!("{at}: {v} is not one of {values:?}"));
        }
        let kind = schema.get("type").and_then(Value::as_str).unwrap_or("any");
        let ok = match kind {
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            "array" => v.is_array(),
            "object" => v.is_object(),
            _ => true,
        };
        if !ok {
            return Err(format!("{at}: {v} is not a {kind}"));
        }
        if let (Some(items), Some(list)) = (schema.get("items"), v.as_array()) {
            for (i, x) in list.iter().enumerate() {
                self.validate(items, x, &format!("{at}[{i}]"))?;
            }
        }
        if let (Some(props), Some(obj)) = (
            schema.get("properties").and_then(Value::as_object),
            v.as_object(),
        ) {
            for k in schema["required"].as_array().into_iter().flatten() {
                let k = k.as_str().unwrap_or_default();
                if !obj.contains_key(k) {
                    return Err(format!("{at}: key {k} is missing"));
                }
            }
            for (k, x) in obj {
                match props.get(k) {
                    Some(s) => self.validate(s, x, &format!("{at}.{k}"))?,
                    None if schema["additionalProperties"] == Value::Bool(false) => {
                        return Err(format!("{at}: key {k} is not documented"));
                    }
                    None => {}
                }
            }
        }
        Ok(())
    }
}
