//! The OpenAPI 3.1 document of the API, served at `/v1/openapi.json` and
//! kept in the repository as docs/openapi.json (`scriptmail generate
//! openapi docs/openapi.json`; a test fails when they differ, and when a
//! route of `routes.rs` is missing from it or it lists one the server does
//! not have). Every schema is closed (`additionalProperties: false`, every
//! key required), so the integration tests can hold each answer to it.

use std::sync::LazyLock;

use serde_json::{Map, Value, json};

use super::http::Method;
use super::routes::{Access, ROUTES};

mod schemas;

use schemas::{arr, r, s, t};

/// What the document says of one route: summary, the answer's schema, the
/// request body's schema, query parameters, and its answers besides 200.
struct Op {
    summary: &'static str,
    answer: Value,
    body: Option<&'static str>,
    query: &'static [(&'static str, &'static str)],
}

fn op(method: Method, path: &str) -> Op {
    use Method::*;
    let o = |summary, answer: Value, body, query| Op {
        summary,
        answer,
        body,
        query,
    };
    let filter_q: &'static [(&str, &str)] = &[
        ("script", "string"),
        ("domain", "string"),
        ("older_than_s", "integer"),
        ("newer_than_s", "integer"),
        ("limit", "integer"),
    ];
    match (method, path) {
        (Get, "/") => o(
            "The \"E-mail scripts\" page (HTML, by Accept-Language)",
            json!({"type": "string"}),
            None,
            &[],
        ),
        (Get, "/assets/page.css") => o("The page's style sheet", s(), None, &[]),
        (Get, "/assets/page.js") => o("The page's script", s(), None, &[]),
        (Get, "/healthz") => o("200 when the queue can be read", r("Health"), None, &[]),
        (Get, "/metrics") => o(
            "Prometheus text format: per-account counters and node gauges",
            s(),
            None,
            &[],
        ),
        (Get, "/hosting/web/{account}/email") => o(
            "The account as the control panel's API shows it",
            r("Email"),
            None,
            &[],
        ),
        (Put, "/hosting/web/{account}/email") => o(
            "Set the error-report recipient (null: none)",
            r("Email"),
            Some("EmailBody"),
            &[],
        ),
        (Post, "/hosting/web/{account}/email/request") => o(
            "BLOCK, UNBLOCK or PURGE; the task id",
            s(),
            Some("RequestBody"),
            &[],
        ),
        (Get, "/hosting/web/{account}/email/bounces") => o(
            "The mails in error, newest first",
            arr(r("Bounce")),
            None,
            &[("limit", "integer")],
        ),
        (Get, "/hosting/web/{account}/email/volumes") => o(
            "Mail sent per UTC day, oldest first",
            arr(r("Volume")),
            None,
            &[("days", "integer")],
        ),
        (Get, "/v1/openapi.json") => o("This document", t("object"), None, &[]),
        (Post, "/v1/session") => o(
            "Sign in with a token: a session cookie and its CSRF token",
            r("Session"),
            Some("SignInBody"),
            &[],
        ),
        (Get, "/v1/session") => o("Who is signed in", r("Session"), None, &[]),
        (Delete, "/v1/session") => o("Sign out", r("SignedOut"), None, &[]),
        (Get, "/v1/tasks/{id}") => o("A task made by .../email/request", r("Task"), None, &[]),
        (Get, "/v1/accounts") => o(
            "Every account with its settings (admin)",
            r("Accounts"),
            None,
            &[("search", "string"), ("limit", "integer")],
        ),
        (Get, "/v1/status") => o(
            "One line per account (admin)",
            r("Overview"),
            None,
            &[("sort", "string")],
        ),
        (Get, "/v1/accounts/{account}") => o("mailq-ctl status ACCOUNT", r("Status"), None, &[]),
        (Put, "/v1/accounts/{account}") => o(
            "mailq-ctl set ACCOUNT (limits: admin)",
            r("Set"),
            Some("SetBody"),
            &[],
        ),
        (Post, "/v1/accounts/{account}/block") => o(
            "mailq-ctl block ACCOUNT",
            r("Change"),
            Some("BlockBody"),
            &[],
        ),
        (Post, "/v1/accounts/{account}/unblock") => o(
            "mailq-ctl unblock ACCOUNT",
            r("Change"),
            Some("UnblockBody"),
            &[],
        ),
        (Post, "/v1/accounts/{account}/purge") => o(
            "mailq-ctl purge ACCOUNT [FILTER] (Purge, or HeldPurge with a filter)",
            json!({"anyOf": [r("Purge"), r("HeldPurge")]}),
            Some("FilterBody"),
            &[],
        ),
        (Get, "/v1/accounts/{account}/held") => {
            o("mailq-ctl held ACCOUNT [FILTER]", r("Held"), None, filter_q)
        }
        (Post, "/v1/accounts/{account}/release") => o(
            "mailq-ctl release ACCOUNT FILTER (admin)",
            r("HeldRelease"),
            Some("FilterBody"),
            &[],
        ),
        (Get, "/v1/accounts/{account}/stats") => o(
            "mailq-ctl stats ACCOUNT",
            r("Stats"),
            None,
            &[("days", "integer")],
        ),
        (Get, "/v1/accounts/{account}/errors") => o(
            "mailq-ctl errors ACCOUNT",
            r("Errors"),
            None,
            &[("limit", "integer")],
        ),
        (Get, "/v1/accounts/{account}/history") => o(
            "mailq-ctl history ACCOUNT",
            r("History"),
            None,
            &[("limit", "integer")],
        ),
        (Post, "/v1/accounts/{account}/test") => o(
            "mailq-ctl test ACCOUNT --to ADDR",
            r("Test"),
            Some("TestBody"),
            &[],
        ),
        (Get, "/v1/accounts/{account}/page") => o(
            "Everything the page shows, and which buttons it enables",
            r("Panel"),
            None,
            &[],
        ),
        (Get, "/v1/queue") => o(
            "mailq-ctl queue",
            r("QueueList"),
            None,
            &[
                ("account", "string"),
                ("state", "string"),
                ("limit", "integer"),
            ],
        ),
        (Get, "/v1/messages/{qid}") => o(
            "mailq-ctl show QID",
            r("Show"),
            None,
            &[("body", "boolean")],
        ),
        (Post, "/v1/messages/{qid}/release") => {
            o("mailq-ctl release QID (admin)", r("Move"), None, &[])
        }
        (Delete, "/v1/messages/{qid}") => o("mailq-ctl delete QID", r("Move"), None, &[]),
        (Post, "/v1/flush") => o("mailq-ctl flush", r("Flush"), Some("FlushBody"), &[]),
        (Post, "/v1/sweep") => o("mailq-ctl sweep (admin)", r("Sweep"), None, &[]),
        (Get, "/v1/report") => o(
            "mailq-ctl report (admin)",
            r("Report"),
            None,
            &[("account", "string"), ("day", "string")],
        ),
        (Post, "/v1/report") => o(
            "mailq-ctl report --send (admin)",
            r("Report"),
            Some("ReportBody"),
            &[],
        ),
        (Get, "/v1/metrics") => o("mailq-ctl metrics (admin)", r("Metrics"), None, &[]),
        (Get, "/v1/node") => o("This node's gauges (admin)", r("Node"), None, &[]),
        _ => o("", json!({}), None, &[]),
    }
}

fn operation(method: Method, path: &'static str, access: Access) -> Value {
    let o = op(method, path);
    let mut params: Vec<Value> = path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|p| p.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": s()}))
        .collect();
    params.extend(o.query.iter().map(
        |(name, kind)| json!({"name": name, "in": "query", "required": false, "schema": t(kind)}),
    ));
    let media = match path {
        "/" => "text/html",
        "/metrics" | "/assets/page.css" | "/assets/page.js" => "text/plain",
        _ => "application/json",
    };
    let error = json!({"description": "refused; see docs/api.md, \"Errors\"", "content": {"application/json": {"schema": r("Error")}}});
    let mut responses = json!({
        "200": {"description": "OK", "content": {media: {"schema": o.answer}}},
        "default": error,
    });
    if access == Access::Public && method == Method::Get {
        responses = json!({"200": responses["200"].clone()});
    }
    let mut out = json!({
        "summary": o.summary,
        "operationId": format!("{}{}", method.as_str().to_lowercase(), path.replace(['/', '{', '}', '.'], "_")),
        "parameters": params,
        "responses": responses,
    });
    if let Some(b) = o.body {
        out["requestBody"] =
            json!({"required": false, "content": {"application/json": {"schema": r(b)}}});
    }
    match access {
        Access::Public => out["security"] = json!([]),
        Access::Metrics => out["security"] = json!([{}, {"bearer": []}]),
        Access::Token => {}
    }
    out
}

fn build() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let entry = paths.entry(route.path).or_insert_with(|| json!({}));
        entry[route.method.as_str().to_lowercase()] =
            operation(route.method, route.path, route.access);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "scriptmail panel API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The control panel's e-mail API (/hosting/web/{account}/email...), the native API (/v1, the documents of `mailq-ctl --json`), the page, /metrics and /healthz. Authentication: `Authorization: Bearer TOKEN` (mailq-ctl api-token add), or the page's session cookie with its X-CSRF-Token. See docs/api.md.",
        },
        "servers": [{"url": "http://127.0.0.1:8025"}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "A token from `mailq-ctl api-token add NAME --scope admin|account:ACCOUNT`"},
                "session": {"type": "apiKey", "in": "cookie", "name": super::sessions::COOKIE, "description": "The page's session (POST /v1/session); state-changing requests also need X-CSRF-Token and an Origin of this host"},
            },
            "schemas": schemas::schemas(),
        },
    })
}

static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| serde_json::to_string_pretty(&build()).unwrap_or_default() + "\n");

/// The document, as served and as kept in docs/openapi.json.
pub fn document() -> &'static str {
    &DOCUMENT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_and_nothing_else() {
        let doc: Value = serde_json::from_str(document()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        let mut documented = 0;
        for (path, ops) in paths {
            for (method, o) in ops.as_object().unwrap() {
                documented += 1;
                let m = Method::parse(&method.to_uppercase()).unwrap();
                assert!(
                    ROUTES.iter().any(|r| r.path == path && r.method == m),
                    "{method} {path} is documented but not served"
                );
                assert!(
                    !o["summary"].as_str().unwrap().is_empty(),
                    "{method} {path}: no summary"
                );
            }
        }
        assert_eq!(documented, ROUTES.len());
        // Every reference resolves.
        let text = document();
        for part in text.split("\"#/components/schemas/").skip(1) {
            let name = part.split('"').next().unwrap();
            assert!(doc["components"]["schemas"].get(name).is_some(), "{name}");
        }
    }

    #[test]
    fn the_committed_document_is_the_served_one() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == document(),
            "docs/openapi.json is stale: run `cargo run -- generate openapi docs/openapi.json`"
        );
    }
}
