//! Who is asking (docs/api.md, "Tokens" and "Sessions and CSRF"): a
//! bearer token, or the page's session cookie — the latter, for anything
//! that changes state, with the session's CSRF token and an `Origin` of
//! this host. Failed authentications are counted per client: after
//! [`MAX_FAILURES`] in [`WINDOW`] the client gets 429 until the window
//! ends, whatever it sends, and each failure is logged (syslog, with the
//! client's address and why). A failure is a wrong token (as a bearer
//! token or at sign-in); a stale session cookie is only "sign in again".

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::http::{ApiError, Req};
use super::sessions::{self, Sessions};
use super::tokens::{Scope, Tokens};
use crate::log::{self, Level};

/// Failed authentications a client may make per window.
pub const MAX_FAILURES: u32 = 10;
/// The rate limit's window.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Clients remembered at most (the oldest windows are dropped first).
const MAX_CLIENTS: usize = 10_000;

/// The failed authentications of each client in its current window.
#[derive(Default)]
pub struct Failures {
    map: HashMap<String, (Instant, u32)>,
}

impl Failures {
    /// Seconds until `client` may try again, if it is over the limit.
    pub fn blocked(&self, client: &str, now: Instant) -> Option<u64> {
        let (start, n) = self.map.get(client)?;
        let end = *start + WINDOW;
        (*n >= MAX_FAILURES && now < end).then(|| end.duration_since(now).as_secs().max(1))
    }

    /// Count a failure of `client`; its count in the window.
    pub fn record(&mut self, client: &str, now: Instant) -> u32 {
        if self.map.len() >= MAX_CLIENTS {
            self.map.retain(|_, (start, _)| now < *start + WINDOW);
        }
        if self.map.len() >= MAX_CLIENTS {
            // Still full of live windows: forget the oldest.
            if let Some(k) = self
                .map
                .iter()
                .min_by_key(|(_, (s, _))| *s)
                .map(|(k, _)| k.clone())
            {
                self.map.remove(&k);
            }
        }
        let e = self.map.entry(client.to_string()).or_insert((now, 0));
        if now >= e.0 + WINDOW {
            *e = (now, 0);
        }
        e.1 += 1;
        e.1
    }
}

/// How the caller authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    Bearer,
    /// The page's session (its id and CSRF token).
    Session {
        id: String,
        csrf: String,
    },
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    pub token: String,
    pub scope: Scope,
    pub via: Via,
}

impl Who {
    /// The actor recorded with what this caller changes.
    pub fn actor(&self) -> String {
        format!("api:{}", self.token)
    }

    /// `account` if this caller may see it; else the answer for an account
    /// that does not exist.
    pub fn account<'a>(&self, account: &'a str) -> Result<&'a str, ApiError> {
        if self.scope.sees(account) {
            Ok(account)
        } else {
            Err(ApiError::no_account(account))
        }
    }

    pub fn is_admin(&self) -> bool {
        self.scope == Scope::Admin
    }

    /// Refuse what only an admin token may do.
    pub fn admin(&self, what: &str) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("{what} needs an admin token")))
        }
    }
}

/// The state authentication shares between workers.
pub struct Gate {
    pub tokens: Mutex<Tokens>,
    pub sessions: Mutex<Sessions>,
    pub failures: Mutex<Failures>,
}

/// Lock, ignoring poisoning: a worker that panicked mid-update leaves at
/// worst a stale entry, never a broken invariant of these maps.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Gate {
    /// Refuse a client over the failure limit (429).
    pub fn check_rate(&self, client: &str, now: Instant) -> Result<(), ApiError> {
        match lock(&self.failures).blocked(client, now) {
            Some(after) => Err(ApiError {
                retry_after: Some(after),
                ..ApiError::new(429, "too many failed authentications; try again later")
            }),
            None => Ok(()),
        }
    }

    /// Count and log a failed authentication; the 401 to answer.
    pub fn fail(&self, req: &Req, why: &str, now: Instant) -> ApiError {
        let n = lock(&self.failures).record(&req.client, now);
        log::log(
            Level::Warning,
            &format!(
                "api authentication failed client={} reason={} failures={n} path={}",
                log::quote(&req.client),
                log::quote(why),
                log::quote(&req.path)
            ),
        );
        if n == MAX_FAILURES {
            log::log(
                Level::Warning,
                &format!(
                    "api client={} rate-limited for {}s after {n} failed authentications",
                    log::quote(&req.client),
                    WINDOW.as_secs()
                ),
            );
        }
        ApiError::unauthorized(why)
    }

    /// Re-read the tokens file if it changed (logging a broken one once).
    pub fn tokens(&self) -> std::sync::MutexGuard<'_, Tokens> {
        let mut t = lock(&self.tokens);
        if let Some(e) = t.refresh() {
            log::log(Level::Err, &format!("api tokens file unusable: {e}"));
        }
        t
    }

    /// Who sent `req`: a bearer token or a live session whose token is
    /// still valid; for a session and an unsafe method, also the CSRF
    /// token and the origin.
    pub fn authenticate(&self, req: &Req, now: Instant) -> Result<Who, ApiError> {
        self.check_rate(&req.client, now)?;
        if let Some(auth) = req.header("authorization") {
            let Some(secret) = auth
                .strip_prefix("Bearer ")
                .or_else(|| auth.strip_prefix("bearer "))
            else {
                return Err(self.fail(req, "Authorization is not a Bearer token", now));
            };
            let found = self.tokens().find(secret.trim()).cloned();
            return match found {
                Some(t) => Ok(Who {
                    token: t.name,
                    scope: t.scope,
                    via: Via::Bearer,
                }),
                None => Err(self.fail(req, "unknown or revoked token", now)),
            };
        }
        let Some(id) = req.header("cookie").and_then(sessions::cookie_id) else {
            return Err(ApiError::unauthorized(
                "authentication required: Authorization: Bearer TOKEN, or sign in",
            ));
        };
        let session = lock(&self.sessions).get(id, now);
        let Some(s) = session.filter(|s| self.tokens().valid(&s.token_hash)) else {
            // Not counted as a failure: a session id is 256 random bits,
            // nobody guesses one, and a browser keeps sending a stale
            // cookie after a restart of the daemon.
            lock(&self.sessions).remove(id);
            return Err(ApiError::unauthorized(
                "the session has ended (expired, signed out or its token revoked): sign in again",
            ));
        };
        if req.method.is_unsafe() {
            check_csrf(req, &s.csrf)?;
        }
        Ok(Who {
            token: s.token_name,
            scope: s.scope,
            via: Via::Session {
                id: id.to_string(),
                csrf: s.csrf,
            },
        })
    }
}

/// A state-changing request made with the session cookie must come from
/// our own page: the session's CSRF token in `X-CSRF-Token`, and an
/// `Origin` (or `Referer`) of this host.
pub fn check_csrf(req: &Req, csrf: &str) -> Result<(), ApiError> {
    if !sessions::same_origin(
        req.header("origin"),
        req.header("referer"),
        req.header("host"),
    ) {
        return Err(ApiError::forbidden(
            "cross-origin request refused (Origin is not this host)",
        ));
    }
    match req.header("x-csrf-token") {
        Some(t) if sessions::same_secret(t, csrf) => Ok(()),
        _ => Err(ApiError::forbidden("missing or wrong X-CSRF-Token")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_block_a_client_for_the_rest_of_its_window() {
        let mut f = Failures::default();
        let t0 = Instant::now();
        for i in 1..MAX_FAILURES {
            assert_eq!(f.record("a", t0), i);
            assert_eq!(f.blocked("a", t0), None);
        }
        f.record("a", t0 + Duration::from_secs(10));
        assert_eq!(f.blocked("a", t0 + Duration::from_secs(10)), Some(50));
        assert_eq!(f.blocked("b", t0), None, "per client");
        assert_eq!(f.blocked("a", t0 + WINDOW), None, "the window ends");
        assert_eq!(f.record("a", t0 + WINDOW), 1, "a new window");
    }

    #[test]
    fn account_tokens_see_their_own_account_only() {
        let who = Who {
            token: "p".into(),
            scope: Scope::Account("shop1".into()),
            via: Via::Bearer,
        };
        assert_eq!(who.account("shop1"), Ok("shop1"));
        let e = who.account("shop2").unwrap_err();
        assert_eq!(e, ApiError::no_account("shop2"), "as if it did not exist");
        assert_eq!(who.admin("sweep").unwrap_err().status, 403);
        assert_eq!(who.actor(), "api:p");
    }
}
