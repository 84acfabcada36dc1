//! The "E-mail scripts" page (docs/api.md, "The page"): `/` in the
//! language `Accept-Language` asks for, its CSS and JavaScript (embedded
//! in the binary: nothing from elsewhere, so the Content-Security-Policy
//! allows only this origin), sign-in and sign-out, and the one document
//! the page draws from, `GET /v1/accounts/{account}/page`.
//!
//! ## Which buttons are enabled
//! The control panel's page offers Block, Unblock and Purge, "depending
//! on the service status, some options may not be available", and sending
//! must be blocked before the queue can be purged (docs/api.md, "Which
//! buttons are enabled", quotes its customer guides). With the
//! state rules of `account.rs` (the page never forces) that gives
//! [`buttons`]: Block while the account sends; Unblock from `ko`, and from
//! `bounce` or `spam` once nothing is held (purge first); Purge while the
//! account is blocked (not during a purge). docs/api.md has the table.

use serde::{Deserialize, Serialize};

use super::Ctx;
use super::auth::{Via, lock};
use super::hosting::{no_errors, no_stats, seen};
use super::http::{ApiError, Req, Resp};
use super::i18n::{self, Lang};
use super::routes::Params;
use super::sessions;
use crate::account::State;
use crate::control::{self, FilterDoc, HeldDoc, HistoryDoc, StatusDoc};

const HTML: &str = include_str!("assets/page.html");
const CSS: &str = include_str!("assets/page.css");
const JS: &str = include_str!("assets/page.js");

/// Only this origin: the page, its script and style; no inline script.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Which of the page's buttons can be pressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Buttons {
    pub block: bool,
    pub unblock: bool,
    pub purge: bool,
}

/// The buttons the page enables in `state` with `held` messages held (see
/// the module doc).
pub fn buttons(state: State, held: i64) -> Buttons {
    let blocked = matches!(state, State::Ko | State::Bounce | State::Spam);
    Buttons {
        block: state.is_sending(),
        unblock: state == State::Ko || (blocked && held == 0),
        purge: blocked,
    }
}

/// `GET /v1/accounts/{account}/page`: everything the page shows.
#[derive(Debug, Serialize)]
pub struct PanelDoc {
    pub status: StatusDoc,
    pub buttons: Buttons,
    pub stats: control::StatsDoc,
    pub errors: control::ErrorsDoc,
    pub held: HeldDoc,
    pub history: HistoryDoc,
    pub hold_max_age_s: u64,
}

/// Days in the page's graph.
const GRAPH_DAYS: u32 = 30;

pub fn panel(ctx: &mut Ctx<'_>, _: &Req, p: &Params) -> Result<Resp, ApiError> {
    let account = ctx.account(p)?;
    let now = ctx.now;
    let status = ctx.control.status(account, now)?;
    let stats = seen(
        ctx,
        account,
        |c| c.stats(account, GRAPH_DAYS, now),
        || no_stats(account),
    )?;
    let errors = seen(
        ctx,
        account,
        |c| c.errors(account, 20),
        || no_errors(account),
    )?;
    let all = control::HeldFilter::default();
    let held = seen(
        ctx,
        account,
        |c| c.held(account, &all, 10, now),
        || HeldDoc {
            account: account.to_string(),
            state: status.state,
            sends: status.sends,
            filter: FilterDoc::from(&all),
            held: 0,
            oldest: None,
            oldest_age_s: None,
            expires_in_s: None,
            newest: None,
            scripts: Vec::new(),
            distinct_scripts: 0,
            domains: Vec::new(),
            distinct_domains: 0,
        },
    )?;
    let history = seen(
        ctx,
        account,
        |c| c.history(account, 20),
        || HistoryDoc {
            account: account.to_string(),
            events: Vec::new(),
        },
    )?;
    Ok(Resp::json(&PanelDoc {
        buttons: buttons(status.state, status.queue.held),
        status,
        stats,
        errors,
        held,
        history,
        hold_max_age_s: ctx.shared.cfg.hold_max_age.as_secs(),
    }))
}

/// Escape text for HTML content and attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page in `lang`: `{{key}}` becomes the label, `{{lang}}` the tag,
/// `{{strings}}` every label as JSON for the script (`<` escaped, so no
/// label can close the script element).
pub fn render(lang: Lang) -> String {
    let strings: serde_json::Map<String, serde_json::Value> = i18n::LABELS
        .iter()
        .map(|(k, _)| (k.to_string(), i18n::label(lang, k).into()))
        .collect();
    let json = serde_json::Value::Object(strings)
        .to_string()
        .replace('<', "\\u003c");
    let mut out = String::with_capacity(HTML.len() + json.len());
    let mut rest = HTML;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        match &after[..end] {
            "lang" => out.push_str(lang.code()),
            "strings" => out.push_str(&json),
            key => out.push_str(&escape(i18n::label(lang, key))),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

pub fn index(_: &mut Ctx<'_>, req: &Req, _: &Params) -> Result<Resp, ApiError> {
    let lang = i18n::pick(req.header("accept-language"));
    Ok(Resp::text(200, "text/html; charset=utf-8", render(lang))
        .with_header("Content-Security-Policy", CSP)
        .with_header("X-Frame-Options", "DENY")
        .with_header("Content-Language", lang.code())
        .with_header("Vary", "Accept-Language"))
}

pub fn css(_: &mut Ctx<'_>, _: &Req, _: &Params) -> Result<Resp, ApiError> {
    Ok(Resp::text(200, "text/css; charset=utf-8", CSS).with_header("Cache-Control", "no-cache"))
}

pub fn js(_: &mut Ctx<'_>, _: &Req, _: &Params) -> Result<Resp, ApiError> {
    Ok(Resp::text(200, "text/javascript; charset=utf-8", JS)
        .with_header("Cache-Control", "no-cache"))
}

/// What the page knows of its session.
#[derive(Debug, Serialize)]
struct SessionDoc {
    token: String,
    scope: String,
    /// The account of an account token; `null` for an admin.
    account: Option<String>,
    /// Echo it in `X-CSRF-Token`; `null` with a bearer token.
    csrf: Option<String>,
    idle_timeout_s: u64,
    max_age_s: u64,
}

fn session_doc(token: &str, scope: &super::tokens::Scope, csrf: Option<String>) -> SessionDoc {
    SessionDoc {
        token: token.to_string(),
        scope: scope.to_string(),
        account: match scope {
            super::tokens::Scope::Account(a) => Some(a.clone()),
            super::tokens::Scope::Admin => None,
        },
        csrf,
        idle_timeout_s: sessions::IDLE.as_secs(),
        max_age_s: sessions::MAX_AGE.as_secs(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    token: String,
}

/// `POST /v1/session`: a token in, a session cookie out. From a browser
/// it must come from this origin (a cross-site sign-in would put the
/// victim in the attacker's session).
pub fn sign_in(ctx: &mut Ctx<'_>, req: &Req, _: &Params) -> Result<Resp, ApiError> {
    let gate = &ctx.shared.gate;
    gate.check_rate(&req.client, ctx.instant)?;
    if req.header("origin").is_some()
        && !sessions::same_origin(req.header("origin"), None, req.header("host"))
    {
        return Err(ApiError::forbidden("cross-origin sign-in refused"));
    }
    let body: SignIn = req.json()?;
    let Some(token) = gate.tokens().find(body.token.trim()).cloned() else {
        return Err(gate.fail(req, "sign-in with an unknown or revoked token", ctx.instant));
    };
    let (id, s) = lock(&gate.sessions)
        .create(&token, ctx.instant)
        .map_err(|e| ApiError::new(500, format!("no random source: {e}")))?;
    crate::log::log(
        crate::log::Level::Info,
        &format!(
            "api sign-in token={} client={}",
            crate::log::quote(&token.name),
            crate::log::quote(&req.client)
        ),
    );
    let secure = req
        .header("x-forwarded-proto")
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    Ok(
        Resp::json(&session_doc(&token.name, &token.scope, Some(s.csrf)))
            .with_header("Set-Cookie", sessions::set_cookie(&id, secure)),
    )
}

/// `GET /v1/session`: who is signed in (and the CSRF token again, for a
/// reloaded page).
pub fn session(ctx: &mut Ctx<'_>, _: &Req, _: &Params) -> Result<Resp, ApiError> {
    let who = ctx.who()?;
    let csrf = match &who.via {
        Via::Session { csrf, .. } => Some(csrf.clone()),
        Via::Bearer => None,
    };
    Ok(Resp::json(&session_doc(&who.token, &who.scope, csrf)))
}

/// `DELETE /v1/session`: sign out.
pub fn sign_out(ctx: &mut Ctx<'_>, _: &Req, _: &Params) -> Result<Resp, ApiError> {
    if let Via::Session { id, .. } = &ctx.who()?.via {
        lock(&ctx.shared.gate.sessions).remove(id);
    }
    Ok(Resp::json(&serde_json::json!({ "signed_out": true }))
        .with_header("Set-Cookie", sessions::clear_cookie()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buttons_follow_the_guides_and_the_state_rules() {
        use State::*;
        let b = |s, held| {
            let b = buttons(s, held);
            (b.block, b.unblock, b.purge)
        };
        assert_eq!(b(Ok, 0), (true, false, false));
        assert_eq!(b(Force, 5), (true, false, false));
        assert_eq!(b(Ko, 0), (false, true, true));
        assert_eq!(b(Ko, 5), (false, true, true));
        assert_eq!(b(Bounce, 5), (false, false, true), "purge first");
        assert_eq!(b(Bounce, 0), (false, true, true));
        assert_eq!(b(Spam, 3), (false, false, true));
        assert_eq!(b(Spam, 0), (false, true, true));
        assert_eq!(b(Purging, 3), (false, false, false));
        // Every enabled button is one the state rules accept.
        for s in State::ALL {
            for held in [0, 1] {
                let bt = buttons(s, held);
                if bt.block {
                    assert!(
                        crate::account::block_target(s, crate::account::BlockReason::Manual)
                            .is_ok()
                    );
                }
                if bt.unblock {
                    let to = crate::account::unblock_target(s, false, held as u64);
                    assert!(to.is_ok_and(|t| t != s), "{s} {held}");
                }
            }
        }
    }

    #[test]
    fn the_page_is_filled_in_every_language() {
        for lang in Lang::ALL {
            let page = render(lang);
            assert!(!page.contains("{{"), "{lang:?}: a placeholder is left");
            assert!(page.contains(&format!("<html lang=\"{}\"", lang.code())));
            assert!(page.contains(&escape(i18n::label(lang, "block"))));
            assert!(!page.contains("<script>"), "no inline script (CSP)");
        }
        assert!(render(Lang::Fr).contains("Bloquer l&#39;envoi"));
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
