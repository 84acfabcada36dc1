//! Every route the API has, in one table: method, path pattern, who may
//! call it and the handler. The server dispatches from it, the OpenAPI
//! document must list exactly these (a test compares them), and
//! docs/api.md describes them.

use super::auth::Who;
use super::http::{ApiError, Method, Req, Resp, percent_decode};
use super::{Ctx, hosting, metrics, page, v1};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (the page, its assets, the OpenAPI document, sign-in).
    Public,
    /// Anyone while `api.open_metrics` is on; else an admin token.
    Metrics,
    /// A token (bearer or the page's session); the handler checks scope.
    Token,
}

/// A handler: the request, its path parameters, and who asks (`None` only
/// on public routes).
pub type Handler = fn(&mut Ctx<'_>, &Req, &Params) -> Result<Resp, ApiError>;

/// One route.
#[derive(Debug)]
pub struct Route {
    pub method: Method,
    /// Segments; `{name}` matches one non-empty segment.
    pub path: &'static str,
    pub access: Access,
    pub handler: Handler,
}

const fn r(method: Method, path: &'static str, access: Access, handler: Handler) -> Route {
    Route {
        method,
        path,
        access,
        handler,
    }
}

use Access::{Metrics as M, Public as P, Token as T};
use Method::{Delete, Get, Post, Put};

/// The routes, matched in this order.
pub const ROUTES: &[Route] = &[
    // The page and what it loads.
    r(Get, "/", P, page::index),
    r(Get, "/assets/page.css", P, page::css),
    r(Get, "/assets/page.js", P, page::js),
    // Health and metrics.
    r(Get, "/healthz", M, metrics::healthz),
    r(Get, "/metrics", M, metrics::prometheus),
    // The control panel's own API: same paths and field names.
    r(Get, "/hosting/web/{account}/email", T, hosting::get_email),
    r(Put, "/hosting/web/{account}/email", T, hosting::put_email),
    r(
        Post,
        "/hosting/web/{account}/email/request",
        T,
        hosting::request,
    ),
    r(
        Get,
        "/hosting/web/{account}/email/bounces",
        T,
        hosting::bounces,
    ),
    r(
        Get,
        "/hosting/web/{account}/email/volumes",
        T,
        hosting::volumes,
    ),
    // The native API.
    r(Get, "/v1/openapi.json", P, v1::openapi),
    r(Post, "/v1/session", P, page::sign_in),
    r(Get, "/v1/session", T, page::session),
    r(Delete, "/v1/session", T, page::sign_out),
    r(Get, "/v1/tasks/{id}", T, hosting::task),
    r(Get, "/v1/accounts", T, v1::accounts),
    r(Get, "/v1/status", T, v1::overview),
    r(Get, "/v1/accounts/{account}", T, v1::status),
    r(Put, "/v1/accounts/{account}", T, v1::set),
    r(Post, "/v1/accounts/{account}/block", T, v1::block),
    r(Post, "/v1/accounts/{account}/unblock", T, v1::unblock),
    r(Post, "/v1/accounts/{account}/purge", T, v1::purge),
    r(Get, "/v1/accounts/{account}/held", T, v1::held),
    r(Post, "/v1/accounts/{account}/release", T, v1::release_held),
    r(Get, "/v1/accounts/{account}/stats", T, v1::stats),
    r(Get, "/v1/accounts/{account}/errors", T, v1::errors),
    r(Get, "/v1/accounts/{account}/history", T, v1::history),
    r(Post, "/v1/accounts/{account}/test", T, v1::test),
    r(Get, "/v1/accounts/{account}/page", T, page::panel),
    r(Get, "/v1/queue", T, v1::queue),
    r(Get, "/v1/messages/{qid}", T, v1::show),
    r(Post, "/v1/messages/{qid}/release", T, v1::release),
    r(Delete, "/v1/messages/{qid}", T, v1::delete),
    r(Post, "/v1/flush", T, v1::flush),
    r(Post, "/v1/sweep", T, v1::sweep),
    r(Get, "/v1/report", T, v1::report),
    r(Post, "/v1/report", T, v1::send_report),
    r(Get, "/v1/metrics", T, v1::metrics),
    r(Get, "/v1/node", T, v1::node),
];

/// The values of a route's `{name}` segments, percent-decoded.
#[derive(Debug, Default)]
pub struct Params(Vec<(&'static str, String)>);

impl Params {
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| *k == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// Match `path` against one pattern.
fn matches(pattern: &'static str, path: &str) -> Option<Params> {
    let mut params = Vec::new();
    let mut p = pattern.split('/');
    let mut s = path.split('/');
    loop {
        match (p.next(), s.next()) {
            (None, None) => return Some(Params(params)),
            (Some(pat), Some(seg)) => {
                if let Some(name) = pat.strip_prefix('{').and_then(|n| n.strip_suffix('}')) {
                    let value = percent_decode(seg);
                    if value.is_empty() {
                        return None;
                    }
                    params.push((name, value));
                } else if pat != seg {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

/// The route for `method` and `path`: 404 when no pattern matches, 405
/// when one does for another method.
pub fn find(method: Method, path: &str) -> Result<(&'static Route, Params), ApiError> {
    let mut other_method = false;
    for route in ROUTES {
        if let Some(params) = matches(route.path, path) {
            if route.method == method {
                return Ok((route, params));
            }
            other_method = true;
        }
    }
    if other_method {
        Err(ApiError::new(
            405,
            format!("{} is not allowed on {path}", method.as_str()),
        ))
    } else {
        Err(ApiError::new(404, format!("no such path: {path}")))
    }
}

impl Ctx<'_> {
    /// The caller (routes with [`Access::Token`] always have one).
    pub fn who(&self) -> Result<&Who, ApiError> {
        self.who
            .as_ref()
            .ok_or_else(|| ApiError::unauthorized("authentication required"))
    }

    /// The `{account}` of the path if the caller may see it; the actor of
    /// what follows is the caller.
    pub fn account<'p>(&mut self, params: &'p Params) -> Result<&'p str, ApiError> {
        let who = self.who()?;
        let account = who.account(params.get("account"))?;
        let actor = who.actor();
        self.control.set_actor(&actor)?;
        Ok(account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_segments() {
        let (r, p) = find(Get, "/hosting/web/shop%201/email").unwrap();
        assert_eq!(r.path, "/hosting/web/{account}/email");
        assert_eq!(p.get("account"), "shop 1");
        assert_eq!(find(Get, "/hosting/web//email").unwrap_err().status, 404);
        assert_eq!(find(Get, "/hosting/web/a/email/x").unwrap_err().status, 404);
        assert_eq!(
            find(Delete, "/hosting/web/a/email").unwrap_err().status,
            405
        );
        assert_eq!(find(Get, "/").unwrap().0.path, "/");
        assert_eq!(find(Get, "").unwrap_err().status, 404);
    }

    #[test]
    fn no_two_routes_share_method_and_pattern() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} {}",
                    a.method.as_str(),
                    a.path
                );
            }
        }
    }
}
