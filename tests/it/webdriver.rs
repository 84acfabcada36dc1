//! A small synchronous W3C WebDriver client (std TcpStream + serde_json)
//! driving Debian's headless Chromium through `chromedriver`, for the page
//! test (browser.rs). chromedriver keeps its connections open even when
//! asked to close them, so answers are read by their Content-Length.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CHROMIUM: &str = "/usr/bin/chromium";

fn request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> std::io::Result<(u16, Value)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut r = BufReader::new(s);
    let (mut head, mut line) = (String::new(), String::new());
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad answer: {head}")))?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut buf = vec![0; len];
    r.read_exact(&mut buf)?;
    let v = if buf.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&buf).map_err(std::io::Error::other)?
    };
    Ok((status, v))
}

/// chromedriver and one browser session; both end on drop.
pub struct Browser {
    port: u16,
    id: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Start chromedriver and a headless Chromium with a fresh profile.
    pub fn start() -> Browser {
        let port = crate::util::closed_port();
        let mut driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; .ci/run installs it)");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, v)) = request(port, "GET", "/status", None)
                && v["value"]["ready"] == true
            {
                break;
            }
            if Instant::now() > deadline {
                let _ = driver.kill();
                panic!("chromedriver not ready");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--hide-scrollbars", "--lang=en-US", "--window-size=1280,900",
                format!("--user-data-dir={}", profile.path().display()),
            ]}
        }}});
        let (status, v) = request(port, "POST", "/session", Some(&caps)).expect("new session");
        let Some(id) = v["value"]["sessionId"].as_str() else {
            let _ = driver.kill();
            panic!("no session: {status} {v}");
        };
        Browser {
            port,
            id: id.to_string(),
            driver,
            _profile: profile,
        }
    }

    /// One command of the session; its `value`.
    #[track_caller]
    pub fn cmd(&self, method: &str, rel: &str, body: Option<Value>) -> Value {
        let (st, v) = request(
            self.port,
            method,
            &format!("/session/{}{rel}", self.id),
            body.as_ref(),
        )
        .unwrap_or_else(|e| panic!("{method} {rel}: {e}"));
        assert_eq!(st, 200, "{method} {rel}: {v}");
        v["value"].clone()
    }

    pub fn go(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    /// Run `script` (a function body; `arguments` are `args`) in the page.
    #[track_caller]
    pub fn js(&self, script: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// The element `css` selects (it must exist).
    #[track_caller]
    pub fn find(&self, css: &str) -> String {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    /// Click `css` as a user would (it must be visible and not covered).
    #[track_caller]
    pub fn click(&self, css: &str) {
        let e = self.find(css);
        self.cmd("POST", &format!("/element/{e}/click"), Some(json!({})));
    }

    /// Type `text` into `css` (keys, e.g. "\u{E007}" for Enter, included).
    #[track_caller]
    pub fn keys(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// `css`'s visible text.
    #[track_caller]
    pub fn text(&self, css: &str) -> String {
        let e = self.find(css);
        self.cmd("GET", &format!("/element/{e}/text"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Wait until `script` returns true; panic with what it saw otherwise.
    #[track_caller]
    pub fn wait(&self, what: &str, script: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.js(script, json!([])) == Value::Bool(true) {
                return;
            }
            if Instant::now() > deadline {
                let page = self.js("return document.body.innerText", json!([]));
                panic!(
                    "waited in vain for {what}; the page says:\n{}",
                    page.as_str().unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A Chrome DevTools Protocol command (through chromedriver).
    #[track_caller]
    pub fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.cmd(
            "POST",
            "/goog/cdp/execute",
            Some(json!({ "cmd": cmd, "params": params })),
        )
    }

    /// A viewport of exactly `width` × `height` CSS pixels.
    pub fn viewport(&self, width: u32, height: u32) {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600}),
        );
    }

    /// A PNG of the whole page (beyond the viewport) at the current width.
    pub fn screenshot(&self) -> Vec<u8> {
        let v = self.cdp(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        );
        let png = base64(v["data"].as_str().expect("screenshot data"));
        assert_eq!(png.get(..8), Some(&b"\x89PNG\r\n\x1a\n"[..]), "a PNG");
        png
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = request(self.port, "DELETE", &format!("/session/{}", self.id), None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Decode standard base64 (what WebDriver and CDP send images in).
pub fn base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for v in s.bytes().filter_map(val) {
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[test]
fn base64_decodes() {
    assert_eq!(base64("aGVsbG8gd29ybGQ="), b"hello world");
    assert_eq!(base64("iVBORw0KGgo="), b"\x89PNG\r\n\x1a\n");
}
