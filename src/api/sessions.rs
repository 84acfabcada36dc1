//! Browser sessions of the page (docs/api.md, "Sessions and CSRF"): a
//! token signs in once; the browser then holds a random session id in an
//! `HttpOnly`, `SameSite=Strict` cookie, and the server keeps the session
//! in memory — which token made it, its scope, and its CSRF token, which
//! every state-changing request must echo in `X-CSRF-Token` (besides an
//! `Origin` of this host). A session ends after 30 minutes without use,
//! 12 hours after sign-in, at sign-out, when its token is revoked, or when
//! the daemon restarts (sign in again).
//!
//! Times come from the caller (`Instant`), so the expiry rules are tested
//! without waiting.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::tokens::{Scope, Token};

/// The session cookie's name.
pub const COOKIE: &str = "scriptmail_session";
/// A session unused this long ends.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after sign-in, used or not.
pub const MAX_AGE: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most; the oldest goes first.
const MAX_SESSIONS: usize = 10_000;

/// One signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub token_name: String,
    /// The token's hash: a revoked token (or a new one of the same name)
    /// does not carry the session on.
    pub token_hash: String,
    pub scope: Scope,
    pub csrf: String,
    created: Instant,
    last: Instant,
}

/// The sessions, by id.
#[derive(Default)]
pub struct Sessions {
    map: HashMap<String, Session>,
}

/// 32 random bytes as hex, from the kernel's random source.
pub fn random_id() -> std::io::Result<String> {
    Ok(super::tokens::new_secret()?.split_off(3))
}

impl Sessions {
    /// A new session for `token`: its id and the session.
    pub fn create(&mut self, token: &Token, now: Instant) -> std::io::Result<(String, Session)> {
        self.map.retain(|_, s| alive(s, now));
        if self.map.len() >= MAX_SESSIONS
            && let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(k, _)| k.clone())
        {
            self.map.remove(&oldest);
        }
        let id = random_id()?;
        let s = Session {
            token_name: token.name.clone(),
            token_hash: token.hash.clone(),
            scope: token.scope.clone(),
            csrf: random_id()?,
            created: now,
            last: now,
        };
        self.map.insert(id.clone(), s.clone());
        Ok((id, s))
    }

    /// The live session `id`, marked used; an expired one is removed.
    pub fn get(&mut self, id: &str, now: Instant) -> Option<Session> {
        let s = self.map.get_mut(id)?;
        if !alive(s, now) {
            self.map.remove(id);
            return None;
        }
        s.last = now;
        Some(s.clone())
    }

    pub fn remove(&mut self, id: &str) {
        self.map.remove(id);
    }

    /// How many are kept (live or not yet swept).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

fn alive(s: &Session, now: Instant) -> bool {
    now.saturating_duration_since(s.last) < IDLE
        && now.saturating_duration_since(s.created) < MAX_AGE
}

/// The session id in a `Cookie:` header.
pub fn cookie_id(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim())
}

/// The `Set-Cookie` value for session `id`; `secure` when the client
/// reached us over TLS (the proxy says so in `X-Forwarded-Proto`).
pub fn set_cookie(id: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that ends the session in the browser.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Compare two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// Whether the request's `Origin` is this host: the browser says which
/// page made the request, and only our own page may change anything with
/// the session's cookie. Without an `Origin` (old browsers send none on
/// same-origin requests) the `Referer` must be ours.
pub fn same_origin(origin: Option<&str>, referer: Option<&str>, host: Option<&str>) -> bool {
    let Some(host) = host.filter(|h| !h.is_empty()) else {
        return false;
    };
    let authority = |url: &str| -> Option<String> {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))?;
        Some(rest.split('/').next().unwrap_or("").to_ascii_lowercase())
    };
    let host = host.to_ascii_lowercase();
    match (origin, referer) {
        (Some(o), _) => authority(o).as_deref() == Some(host.as_str()),
        (None, Some(r)) => authority(r).as_deref() == Some(host.as_str()),
        (None, None) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(name: &str) -> Token {
        Token {
            name: name.into(),
            scope: Scope::Account("shop1".into()),
            hash: super::super::tokens::hash(name),
            created: 0,
        }
    }

    #[test]
    fn sessions_end_when_idle_or_old() {
        let mut s = Sessions::default();
        let t0 = Instant::now();
        let (id, first) = s.create(&token("panel"), t0).unwrap();
        assert_eq!((id.len(), first.csrf.len()), (64, 64));
        assert_ne!(id, first.csrf);
        assert_eq!(s.get(&id, t0 + IDLE / 2).unwrap().token_name, "panel");
        // Used every 20 minutes, it lives until MAX_AGE, not longer.
        let mut t = t0;
        while t + Duration::from_secs(20 * 60) < t0 + MAX_AGE {
            t += Duration::from_secs(20 * 60);
            assert!(s.get(&id, t).is_some());
        }
        assert!(s.get(&id, t0 + MAX_AGE).is_none());
        assert!(s.is_empty(), "an expired session is removed");
        let (id2, _) = s.create(&token("b"), t0).unwrap();
        assert!(s.get(&id2, t0 + IDLE).is_none(), "idle");
        let (id3, _) = s.create(&token("c"), t0).unwrap();
        s.remove(&id3);
        assert!(s.get(&id3, t0).is_none());
    }

    #[test]
    fn cookies_and_origins() {
        assert_eq!(cookie_id("a=b; scriptmail_session=abc ; c=d"), Some("abc"));
        assert_eq!(cookie_id("a=b"), None);
        let c = set_cookie("x", true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.ends_with("Secure"));
        assert!(!set_cookie("x", false).contains("Secure"));
        let host = Some("panel.example:8025");
        assert!(same_origin(Some("http://panel.example:8025"), None, host));
        assert!(same_origin(Some("https://PANEL.example:8025"), None, host));
        assert!(!same_origin(Some("https://evil.example"), None, host));
        assert!(!same_origin(Some("null"), None, host));
        assert!(!same_origin(
            Some("https://panel.example:8025.evil"),
            None,
            host
        ));
        assert!(same_origin(None, Some("http://panel.example:8025/x"), host));
        assert!(!same_origin(None, None, host));
        assert!(!same_origin(Some("http://a"), None, None));
        assert!(same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("a", "ab"));
    }
}
