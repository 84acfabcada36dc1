//! Integration tests: `scriptmail api` over real HTTP (docs/api.md; issue
//! 15) — the control panel's API acting on real mail (the real `sendmail`, relayed
//! to the real smtp-sink), every /v1 endpoint held to its OpenAPI schema
//! and to `mailq-ctl --json`, tokens (no token 401, another account 404
//! exactly as a missing one, revoked 401, the failure rate limit and its
//! log lines), sessions and CSRF, malformed requests, /metrics and
//! /healthz, a Unix socket.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use serde_json::{Value, json};

use crate::apiutil::*;
use crate::sink::Sink;
use crate::util::*;

const WAIT: Duration = Duration::from_secs(30);
const DSN: &str = include_str!("../fixtures/bounces/postfix-local-unknown.eml");

/// `scriptmail bounce` with a Postfix DSN about `rcpt` of message `qid`,
/// as the MTA's pipe transport runs it (docs/bounces.md).
fn bounce(env: &Env, qid: &str, rcpt: &str) {
    let dsn = DSN
        .replace("6740A1B2C3D4E5F7", qid)
        .replace("nosuchuser@test.example", rcpt);
    let out = run_with_input(
        env.scriptmail()
            .arg("bounce")
            .arg(format!("bounces+{qid}@node1.example.net")),
        dsn.as_bytes(),
    );
    assert_ok(&out);
}

/// The queue ids of the account's messages in `state`, oldest first.
fn qids(env: &Env, state: &str) -> Vec<String> {
    let db = env.db();
    let mut st = db
        .prepare("SELECT qid FROM messages WHERE state = ?1 AND NOT system ORDER BY id")
        .expect("prepare");
    st.query_map([state], |r| r.get(0))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows")
}

/// The control panel's API, same paths and field names, on real mail: the account
/// object before and after the recipient changes; BLOCK holds what
/// `sendmail` accepts (nothing reaches the sink), UNBLOCK relays it to the
/// real smtp-sink, PURGE drops what was held and ends `ok`; each request is
/// a task id whose task says what it did; the mails in error and the
/// volumes are the account's, with exactly its keys.
#[test]
fn panel_api_block_unblock_purge_act_on_real_mail() {
    let sink = Sink::start();
    let (env, port) = env_with_api(sink.port(), "");
    let _api = start_api(&env, port);
    let schemas = Schemas::load();
    let c = Client {
        port,
        auth: format!("Bearer {}", token(&env, "panel", as_me("account:root"))),
        schemas: &schemas,
    };
    let email = as_me("/hosting/web/root/email");
    // Before its first mail the account is a fresh `ok` one.
    let e = c.ok("GET", email, None, "Email");
    assert_eq!(
        e,
        json!({"state": "ok", "email": null, "sent": 0, "sentToday": 0, "bounce": 0, "maxPerDay": 0})
    );
    let e = c.ok(
        "PUT",
        email,
        Some(r#"{"email": "webmaster@example.org"}"#),
        "Email",
    );
    assert_eq!(e["email"], "webmaster@example.org");
    assert_eq!(
        c.ok("GET", email, None, "Email")["email"],
        "webmaster@example.org"
    );
    let msg = c.refused("PUT", email, Some(r#"{"email": "not an address"}"#), 400);
    assert!(msg.contains("not a valid report recipient"), "{msg}");

    // BLOCK: mail from sendmail is held, the sink gets nothing. (The
    // test's syslog socket queues only a few lines: read as we go.)
    let id = request(&c, me(), "BLOCK");
    let mut logs = env.log_lines().join("\n");
    let t = c.ok("GET", &format!("/v1/tasks/{id}"), None, "Task");
    assert_eq!(
        (
            &t["action"],
            &t["status"],
            &t["result"]["new_state"],
            &t["actor"]
        ),
        (
            &json!("BLOCK"),
            &json!("done"),
            &json!("ko"),
            &json!("api:panel")
        )
    );
    assert_eq!(c.ok("GET", email, None, "Email")["state"], "ko");
    for subject in ["one", "two"] {
        assert_ok(&env.submit(&["-t", "-i"], &simple_message("ann@example.com", subject)));
        env.settle();
    }
    assert_eq!(qids(&env, "held").len(), 2);
    let h = c.ok("GET", as_me("/v1/accounts/root/held"), None, "Held");
    assert_eq!(
        (h["held"].as_i64(), h["state"].as_str()),
        (Some(2), Some("ko"))
    );
    assert!(sink.messages().is_empty());
    let again = c.refused(
        "POST",
        &format!("{email}/request"),
        Some(r#"{"action": "BLOCK"}"#),
        409,
    );
    assert!(again.contains("already blocked"), "{again}");

    // UNBLOCK: the held mail goes to the smarthost.
    let id = request(&c, me(), "UNBLOCK");
    let t = c.ok("GET", &format!("/v1/tasks/{id}"), None, "Task");
    assert_eq!(t["result"]["released"], 2);
    let got = sink.wait_for(2, WAIT);
    assert!(got.iter().all(|m| m.rcpt_to == ["ann@example.com"]));
    wait_until(WAIT, || c.ok("GET", email, None, "Email")["sent"] == 2);
    let e = c.ok("GET", email, None, "Email");
    assert_eq!(
        (e["state"].as_str(), e["sentToday"].as_i64()),
        (Some("ok"), Some(2))
    );

    // PURGE: what is held is dropped, never sent; the account is ok.
    request(&c, me(), "BLOCK");
    assert_ok(&env.submit(&["-t", "-i"], &simple_message("bob@example.com", "three")));
    env.settle();
    assert_eq!(qids(&env, "held").len(), 1);
    let id = request(&c, me(), "PURGE");
    logs.push_str(&env.log_lines().join("\n"));
    let t = c.ok("GET", &format!("/v1/tasks/{id}"), None, "Task");
    assert_eq!(
        (
            t["result"]["dropped"].as_i64(),
            t["result"]["new_state"].as_str()
        ),
        (Some(1), Some("ok"))
    );
    assert!(qids(&env, "held").is_empty());
    assert_eq!(env.count("1"), 2, "the purged message is gone");
    assert_eq!(c.ok("GET", email, None, "Email")["state"], "ok");
    assert_eq!(sink.messages().len(), 2);

    // The mails in error: a DSN comes back for the first message.
    let sent = qids(&env, "sent");
    bounce(&env, &sent[0], "ann@example.com");
    let b = c
        .call("GET", &format!("{email}/bounces?limit=5"), None)
        .json();
    let list = b.as_array().expect("an array");
    for x in list {
        schemas.check("Bounce", x).unwrap();
    }
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["to"], "ann@example.com");
    assert!(
        list[0]["message"].as_str().unwrap().contains("5.1.1"),
        "{b}"
    );
    assert!(list[0]["date"].as_str().unwrap().ends_with('Z'));
    assert_eq!(c.ok("GET", email, None, "Email")["bounce"], 1);
    c.refused("GET", &format!("{email}/bounces?limit=0"), None, 400);

    // Volumes: one entry per UTC day, oldest first, today's the two sent.
    let v = c.call("GET", &format!("{email}/volumes"), None).json();
    let days = v.as_array().expect("an array");
    assert_eq!(days.len(), 30);
    for d in days {
        schemas.check("Volume", d).unwrap();
    }
    let today =
        scriptmail::clock::format_day(scriptmail::clock::day_of(scriptmail::clock::now_ms()));
    assert_eq!(days[29]["date"], format!("{today}T00:00:00Z"));
    assert_eq!(days[29]["volume"], 2);
    assert!(days[..29].iter().all(|d| d["volume"] == 0));
    // Every action is logged with the token as its actor.
    assert!(
        logs.contains("old=ok new=ko reason=manual actor=\"api:panel\""),
        "{logs}"
    );
    assert!(logs.contains("reason=purge actor=\"api:panel\""), "{logs}");
}

/// Who may see what: no token is 401; an account token gets 404 for
/// another account (and its messages and tasks) exactly as for one that
/// does not exist, and 403 for what would let it escape its own block or
/// limits; a revoked token is 401 at its next use.
#[test]
fn tokens_scope_accounts_and_revocation_takes_effect_at_once() {
    let (env, port) = env_with_api(closed_port(), "");
    std::fs::write(
        &env.config,
        std::fs::read_to_string(&env.config).unwrap() + "[accounts.map]\n\"5000\" = \"shop9\"\n",
    )
    .unwrap();
    let _api = start_api(&env, port);
    let schemas = Schemas::load();
    let admin = Client {
        port,
        auth: format!("Bearer {}", token(&env, "ops", "admin")),
        schemas: &schemas,
    };
    let root = Client {
        port,
        auth: format!("Bearer {}", token(&env, "site", as_me("account:root"))),
        schemas: &schemas,
    };
    // No token, a malformed header, a wrong token.
    let r = http(port, "GET", as_me("/hosting/web/root/email"), &[], None);
    assert_eq!(r.status, 401);
    assert!(
        r.header("WWW-Authenticate")
            .is_some_and(|h| h.starts_with("Bearer"))
    );
    assert_eq!(
        http(
            port,
            "GET",
            as_me("/v1/accounts/root"),
            &[("Authorization", "Basic eDp5")],
            None
        )
        .status,
        401
    );
    assert_eq!(
        http(
            port,
            "GET",
            as_me("/v1/accounts/root"),
            &[("Authorization", "Bearer sm_00")],
            None
        )
        .status,
        401
    );

    // shop9 exists (configured), shop8 does not: for root's token both are
    // the same "no such account".
    admin.ok(
        "PUT",
        "/v1/accounts/shop9",
        Some(r#"{"report_to": "a@example.org"}"#),
        "Set",
    );
    let test = admin.ok(
        "POST",
        "/v1/accounts/shop9/test",
        Some(r#"{"to": "x@example.com", "wait_s": 0}"#),
        "Test",
    );
    let qid = test["qid"].as_str().unwrap().to_string();
    assert_eq!(
        admin.ok("GET", "/hosting/web/shop9/email", None, "Email")["email"],
        "a@example.org"
    );
    for (path, missing) in [
        ("/hosting/web/{}/email", "/hosting/web/shop8/email"),
        (
            "/hosting/web/{}/email/bounces",
            "/hosting/web/shop8/email/bounces",
        ),
        (
            "/hosting/web/{}/email/volumes",
            "/hosting/web/shop8/email/volumes",
        ),
        ("/v1/accounts/{}", "/v1/accounts/shop8"),
        ("/v1/accounts/{}/held", "/v1/accounts/shop8/held"),
        ("/v1/accounts/{}/history", "/v1/accounts/shop8/history"),
        ("/v1/accounts/{}/page", "/v1/accounts/shop8/page"),
    ] {
        let other = root.call("GET", &path.replace("{}", "shop9"), None);
        let none = admin.call("GET", missing, None);
        assert_eq!((other.status, none.status), (404, 404), "{path}");
        assert_eq!(
            other.text().replace("shop9", "X"),
            none.text().replace("shop8", "X"),
            "{path}"
        );
    }
    let msg = root.refused(
        "POST",
        "/hosting/web/shop9/email/request",
        Some(r#"{"action": "BLOCK"}"#),
        404,
    );
    assert_eq!(msg, "no such account: shop9");
    assert_eq!(
        admin.ok("GET", "/hosting/web/shop9/email", None, "Email")["state"],
        "ok",
        "untouched"
    );
    let shown = root.call("GET", &format!("/v1/messages/{qid}"), None);
    let missing = admin.call("GET", "/v1/messages/0000000000DEADBEEF00", None);
    assert_eq!((shown.status, missing.status), (404, 404));
    assert_eq!(
        shown.text().replace(&qid, "Q"),
        missing.text().replace("0000000000DEADBEEF00", "Q")
    );
    root.refused("DELETE", &format!("/v1/messages/{qid}"), None, 404);
    root.refused("GET", "/v1/queue?account=shop9", None, 404);
    let q = root.ok("GET", "/v1/queue", None, "QueueList");
    assert!(
        q["messages"].as_array().unwrap().is_empty(),
        "only its own mail: {q}"
    );
    admin.ok("GET", &format!("/v1/messages/{qid}"), None, "Show");
    let task = request(&admin, "shop9", "BLOCK");
    root.refused("GET", &format!("/v1/tasks/{task}"), None, 404);
    admin.ok("GET", &format!("/v1/tasks/{task}"), None, "Task");

    // An account token cannot escape its own block or limits, nor see the node.
    for (method, path, body) in [
        (
            "PUT",
            as_me("/v1/accounts/root"),
            Some(r#"{"max_per_day": 0}"#),
        ),
        (
            "POST",
            as_me("/v1/accounts/root/block"),
            Some(r#"{"reason": "spam"}"#),
        ),
        (
            "POST",
            as_me("/v1/accounts/root/unblock"),
            Some(r#"{"force": true}"#),
        ),
        (
            "POST",
            as_me("/v1/accounts/root/release"),
            Some(r#"{"script": "x.php"}"#),
        ),
        ("GET", "/v1/accounts", None),
        ("GET", "/v1/status", None),
        ("POST", "/v1/sweep", None),
        ("GET", "/v1/report", None),
        ("GET", "/v1/metrics", None),
        ("GET", "/v1/node", None),
    ] {
        let m = root.refused(method, path, body, 403);
        assert!(m.contains("needs an admin token"), "{path}: {m}");
    }
    // What the control panel's page does, it may.
    request(&root, me(), "BLOCK");
    request(&root, me(), "UNBLOCK");
    root.ok(
        "PUT",
        as_me("/v1/accounts/root"),
        Some(r#"{"report_to": "me@example.org"}"#),
        "Set",
    );

    // Revoked: 401 at the next request.
    assert_ok(&env.ctl(&["api-token", "revoke", "site"]));
    let r = root.call("GET", as_me("/v1/accounts/root"), None);
    assert_eq!(r.status, 401, "{}", r.text());
    admin.ok("GET", as_me("/v1/accounts/root"), None, "Status");
}

/// Failed authentications are counted per client (the configured proxy
/// header names it): past ten in a minute the client gets 429 with
/// Retry-After, even with a good token, while another client is served;
/// each failure and the limit are logged.
#[test]
fn failed_authentications_are_rate_limited_per_client_and_logged() {
    let (env, port) = env_with_api(closed_port(), "api.client_address_header = \"X-Real-IP\"");
    let _api = start_api(&env, port);
    let good = format!("Bearer {}", token(&env, "ops", "admin"));
    let from = |ip: &str, auth: &str| {
        http(
            port,
            "GET",
            as_me("/v1/accounts/root"),
            &[("X-Real-IP", ip), ("Authorization", auth)],
            None,
        )
    };
    // The test's syslog socket queues only a few lines: read as we go.
    let mut logs = String::new();
    for i in 0..10 {
        let r = from("10.0.0.1", &format!("Bearer sm_guess{i}"));
        assert_eq!(r.status, 401, "attempt {i}");
        logs.push_str(&env.log_lines().join("\n"));
    }
    let r = from("10.0.0.1", "Bearer sm_guess10");
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(
        r.header("Retry-After")
            .and_then(|s| s.parse::<u64>().ok())
            .is_some_and(|s| (1..=60).contains(&s))
    );
    assert_eq!(
        from("10.0.0.1", &good).status,
        429,
        "blocked whatever it sends"
    );
    let signin = http(
        port,
        "POST",
        "/v1/session",
        &[("X-Real-IP", "10.0.0.1")],
        Some(r#"{"token": "x"}"#),
    );
    assert_eq!(signin.status, 429);
    assert_eq!(from("10.0.0.2", &good).status, 200, "another client");
    wait_until(WAIT, || {
        logs.push_str(&env.log_lines().join("\n"));
        logs.contains("api authentication failed client=\"10.0.0.1\" reason=\"unknown or revoked token\" failures=10")
            && logs.contains("api client=\"10.0.0.1\" rate-limited for 60s after 10 failed authentications")
    });
}

/// The page's session: sign-in gives an HttpOnly, SameSite=Strict cookie
/// (Secure behind TLS) and a CSRF token; a state change with the cookie
/// needs that token and an Origin of this host; sign-out and revocation
/// end the session.
#[test]
fn sessions_need_the_csrf_token_and_our_origin_for_changes() {
    let (env, port) = env_with_api(closed_port(), "");
    let _api = start_api(&env, port);
    let tok = token(&env, "site", as_me("account:root"));
    let host = format!("127.0.0.1:{port}");
    let origin = format!("http://{host}");
    let sign_in = |extra: &[(&str, &str)]| {
        let mut h = vec![("Origin", origin.as_str())];
        h.extend_from_slice(extra);
        http(
            port,
            "POST",
            "/v1/session",
            &h,
            Some(&format!("{{\"token\": \"{tok}\"}}")),
        )
    };
    assert_eq!(
        http(
            port,
            "POST",
            "/v1/session",
            &[],
            Some(r#"{"token": "sm_nope"}"#)
        )
        .status,
        401
    );
    let cross = http(
        port,
        "POST",
        "/v1/session",
        &[("Origin", "http://evil.example")],
        Some(&format!("{{\"token\": \"{tok}\"}}")),
    );
    assert_eq!(cross.status, 403);
    let r = sign_in(&[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let cookie = r.header("Set-Cookie").unwrap().to_string();
    for attr in [
        "scriptmail_session=",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
    ] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let s = r.json();
    Schemas::load().check("Session", &s).unwrap();
    assert_eq!(
        (s["scope"].as_str(), s["account"].as_str()),
        (Some(as_me("account:root")), Some(me()))
    );
    let csrf = s["csrf"].as_str().unwrap().to_string();
    assert_eq!(csrf.len(), 64);
    let tls = sign_in(&[("X-Forwarded-Proto", "https")]);
    assert!(tls.header("Set-Cookie").unwrap().ends_with("; Secure"));
    let id = cookie.split(';').next().unwrap().to_string();

    let with = |method: &str, path: &str, h: &[(&str, &str)], body: Option<&str>| {
        let mut all = vec![("Cookie", id.as_str())];
        all.extend_from_slice(h);
        http(port, method, path, &all, body)
    };
    assert_eq!(
        with("GET", as_me("/v1/accounts/root"), &[], None).status,
        200
    );
    assert_eq!(
        with("GET", "/v1/session", &[], None).json()["csrf"],
        csrf.as_str()
    );
    let block = r#"{"action": "BLOCK"}"#;
    let path = as_me("/hosting/web/root/email/request");
    for (headers, why) in [
        (vec![("Origin", origin.as_str())], "X-CSRF-Token"),
        (
            vec![
                ("Origin", origin.as_str()),
                ("X-CSRF-Token", "0".repeat(64).leak() as &str),
            ],
            "X-CSRF-Token",
        ),
        (
            vec![
                ("Origin", "http://evil.example"),
                ("X-CSRF-Token", csrf.as_str()),
            ],
            "cross-origin",
        ),
        (vec![("X-CSRF-Token", csrf.as_str())], "cross-origin"),
        (
            vec![
                ("Referer", "http://evil.example/x"),
                ("X-CSRF-Token", csrf.as_str()),
            ],
            "cross-origin",
        ),
    ] {
        let r = with("POST", path, &headers, Some(block));
        assert_eq!(r.status, 403, "{headers:?}: {}", r.text());
        assert!(
            r.json()["message"].as_str().unwrap().contains(why),
            "{}",
            r.text()
        );
    }
    let status = |env: &Env| {
        env.db()
            .query_row(
                as_me("SELECT state FROM accounts WHERE name = 'root'"),
                [],
                |r| r.get::<_, String>(0),
            )
            .unwrap_or_else(|_| "none".into())
    };
    assert_eq!(status(&env), "none", "nothing happened");
    let r = with(
        "POST",
        path,
        &[("Origin", &origin), ("X-CSRF-Token", &csrf)],
        Some(block),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let referer = format!("{origin}/");
    let r = with(
        "POST",
        path,
        &[("Referer", &referer), ("X-CSRF-Token", &csrf)],
        Some(r#"{"action": "UNBLOCK"}"#),
    );
    assert_eq!(
        r.status,
        200,
        "a same-origin Referer stands for a missing Origin: {}",
        r.text()
    );
    assert_eq!(status(&env), "ok");

    // Sign-out ends it; so does revoking the token.
    let r = with(
        "DELETE",
        "/v1/session",
        &[("Origin", &origin), ("X-CSRF-Token", &csrf)],
        None,
    );
    assert_eq!(r.status, 200);
    assert!(r.header("Set-Cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(
        with("GET", as_me("/v1/accounts/root"), &[], None).status,
        401
    );
    let again = sign_in(&[]);
    let id2 = again
        .header("Set-Cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        http(port, "GET", "/v1/session", &[("Cookie", &id2)], None).status,
        200
    );
    assert_ok(&env.ctl(&["api-token", "revoke", "site"]));
    assert_eq!(
        http(port, "GET", "/v1/session", &[("Cookie", &id2)], None).status,
        401
    );
}

/// Requests the API refuses, each with its status and a message saying
/// why: malformed JSON, an unknown action or key, wrong values, a body
/// that is not JSON, too large or chunked, an unknown path or method.
#[test]
fn malformed_requests_get_400_and_friends_with_a_message() {
    let (env, port) = env_with_api(closed_port(), "");
    let _api = start_api(&env, port);
    let schemas = Schemas::load();
    let c = Client {
        port,
        auth: format!("Bearer {}", token(&env, "ops", "admin")),
        schemas: &schemas,
    };
    let req = as_me("/hosting/web/root/email/request");
    let m = c.refused("POST", req, Some(r#"{"action": "#), 400);
    assert!(m.starts_with("malformed JSON body: "), "{m}");
    let m = c.refused("POST", req, Some(r#"{"action": "FREEZE"}"#), 400);
    assert_eq!(m, "unknown action \"FREEZE\": one of BLOCK, UNBLOCK, PURGE");
    let m = c.refused(
        "POST",
        req,
        Some(r#"{"action": "BLOCK", "force": true}"#),
        400,
    );
    assert!(m.contains("unknown field `force`"), "{m}");
    let m = c.refused("POST", req, Some("[1, 2]"), 400);
    assert!(m.starts_with("malformed JSON body"), "{m}");
    c.refused("POST", req, None, 400);
    c.refused(
        "POST",
        as_me("/v1/accounts/root/block"),
        Some(r#"{"reason": "boredom"}"#),
        400,
    );
    c.refused(
        "PUT",
        as_me("/v1/accounts/root"),
        Some(r#"{"max_per_day": "lots"}"#),
        400,
    );
    c.refused("PUT", as_me("/v1/accounts/root"), Some("{}"), 400);
    c.refused("GET", as_me("/v1/accounts/root/stats?days=0"), None, 400);
    c.refused(
        "GET",
        as_me("/v1/accounts/root/held?older_than_s=soon"),
        None,
        400,
    );
    c.refused("GET", "/v1/queue?state=lost", None, 400);
    c.refused("GET", "/v1/status?sort=size", None, 400);
    c.refused("POST", "/v1/flush", Some(r#"{"wait_s": 3600}"#), 400);
    let auth = c.auth.as_str();
    let r = http(
        port,
        "POST",
        req,
        &[("Authorization", auth), ("Content-Type", "text/plain")],
        Some(r#"{"action": "BLOCK"}"#),
    );
    assert_eq!(r.status, 415, "{}", r.text());
    let big = format!(
        "{{\"action\": \"BLOCK\", \"pad\": \"{}\"}}",
        "x".repeat(20_000)
    );
    let r = http(port, "POST", req, &[("Authorization", auth)], Some(&big));
    assert_eq!(r.status, 413, "{}", r.text());
    let r = http(
        port,
        "POST",
        req,
        &[("Authorization", auth), ("Transfer-Encoding", "chunked")],
        None,
    );
    assert_eq!(r.status, 411, "{}", r.text());
    c.refused("GET", as_me("/hosting/web/root/mail"), None, 404);
    c.refused("DELETE", as_me("/hosting/web/root/email"), None, 405);
    c.refused("GET", "/v1/tasks/nope", None, 404);
    // Nothing of it changed the account.
    assert_eq!(
        c.ok("GET", as_me("/hosting/web/root/email"), None, "Email")["state"],
        "ok"
    );
}

/// Drop the values that tick with the clock.
fn steady(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        for k in ["oldest_held_age_s", "expires_in_s", "oldest_age_s"] {
            o.remove(k);
        }
        for x in o.values_mut() {
            *x = steady(x.take());
        }
    } else if let Some(a) = v.as_array_mut() {
        for x in a.iter_mut() {
            *x = steady(x.take());
        }
    }
    v
}

/// Every /v1 read answers with its schema and the very document
/// `mailq-ctl --json` prints; every /v1 action answers with its schema
/// and does what the verb does.
#[test]
fn v1_answers_are_the_documents_of_mailq_ctl_json() {
    let sink = Sink::start();
    let (env, port) = env_with_api(sink.port(), "");
    let _api = start_api(&env, port);
    let schemas = Schemas::load();
    let c = Client {
        port,
        auth: format!("Bearer {}", token(&env, "ops", "admin")),
        schemas: &schemas,
    };
    let ctl = |args: &[&str]| -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = env.ctl(&all);
        assert_ok(&out);
        serde_json::from_slice(&out.stdout).expect("JSON")
    };
    // Some history: two sent, one in error, a block with mail held.
    assert_ok(&env.submit(&["-t", "-i"], &simple_message("ann@example.com", "one")));
    env.settle();
    assert_ok(&env.submit(&["-t", "-i"], &simple_message("bob@example.com", "two")));
    env.settle();
    sink.wait_for(2, WAIT);
    wait_until(WAIT, || qids(&env, "sent").len() == 2);
    bounce(&env, &qids(&env, "sent")[0], "ann@example.com");
    c.ok(
        "POST",
        as_me("/v1/accounts/root/block"),
        Some(r#"{"note": "ticket 1"}"#),
        "Change",
    );
    let php = b"To: cy@gmail.com\r\nSubject: held\r\nX-PHP-Originating-Script: 0:contact.php\r\n\r\nhi\r\n";
    assert_ok(&env.submit(&["-t", "-i"], php));
    env.settle();
    let qid = qids(&env, "held")[0].clone();

    for (path, args, schema) in [
        (as_me("/v1/accounts/root"), vec!["status", me()], "Status"),
        (
            "/v1/status?sort=held",
            vec!["status", "--sort", "held"],
            "Overview",
        ),
        ("/v1/accounts", vec!["accounts"], "Accounts"),
        (
            as_me("/v1/accounts/root/held?domain=gmail.com"),
            vec!["held", me(), "--domain", "gmail.com"],
            "Held",
        ),
        (
            as_me("/v1/accounts/root/stats?days=3"),
            vec!["stats", me(), "--days", "3"],
            "Stats",
        ),
        (
            as_me("/v1/accounts/root/errors?limit=5"),
            vec!["errors", me(), "--limit", "5"],
            "Errors",
        ),
        (
            as_me("/v1/accounts/root/history"),
            vec!["history", me()],
            "History",
        ),
        (
            "/v1/queue?state=sent",
            vec!["queue", "--state", "sent"],
            "QueueList",
        ),
        ("/v1/queue", vec!["queue"], "QueueList"),
        (
            &format!("/v1/messages/{qid}?body=true"),
            vec!["show", &qid, "--body"],
            "Show",
        ),
        ("/v1/metrics", vec!["metrics"], "Metrics"),
        (
            as_me("/v1/report?account=root"),
            vec!["report", "--account", me()],
            "Report",
        ),
    ] {
        let api = c.ok("GET", path, None, schema);
        assert_eq!(steady(api), steady(ctl(&args)), "{path}");
    }
    let held = c.ok(
        "GET",
        as_me("/v1/accounts/root/held?script=contact.php&limit=1"),
        None,
        "Held",
    );
    assert_eq!(
        (held["held"].as_i64(), held["filter"]["script"].as_str()),
        (Some(1), Some("contact.php"))
    );
    let page = c.ok("GET", as_me("/v1/accounts/root/page"), None, "Panel");
    assert_eq!(
        page["buttons"],
        json!({"block": false, "unblock": true, "purge": true})
    );
    assert_eq!(page["stats"]["days"].as_array().unwrap().len(), 30);
    c.ok("GET", "/v1/node", None, "Node");

    // The actions: a partial release and purge (the state stays), the
    // message verbs, settings, test, flush, sweep, the report.
    let r = c.ok(
        "POST",
        as_me("/v1/accounts/root/release"),
        Some(r#"{"domain": "gmail.com"}"#),
        "HeldRelease",
    );
    assert_eq!(
        (r["released"].as_i64(), r["state"].as_str()),
        (Some(1), Some("ko"))
    );
    sink.wait_for(3, WAIT);
    assert_ok(&env.submit(&["-t", "-i"], php));
    env.settle();
    let p = c.ok(
        "POST",
        as_me("/v1/accounts/root/purge"),
        Some(r#"{"script": "contact.php", "note": "spam"}"#),
        "HeldPurge",
    );
    assert_eq!(
        (p["dropped"].as_i64(), p["note"].as_str()),
        (Some(1), Some("spam"))
    );
    c.refused("POST", as_me("/v1/accounts/root/release"), Some("{}"), 400);
    assert_ok(&env.submit(&["-t", "-i"], php));
    env.settle();
    let q = qids(&env, "held")[0].clone();
    let m = c.ok("POST", &format!("/v1/messages/{q}/release"), None, "Move");
    assert_eq!(m["new_state"], "queued");
    sink.wait_for(4, WAIT);
    assert_ok(&env.submit(&["-t", "-i"], php));
    env.settle();
    let q = qids(&env, "held")[0].clone();
    let m = c.ok("DELETE", &format!("/v1/messages/{q}"), None, "Move");
    assert_eq!(m["new_state"], Value::Null);
    let s = c.ok(
        "PUT",
        as_me("/v1/accounts/root"),
        Some(r#"{"report_to": "ops@example.org", "max_per_day": 500, "max_per_hour": "default"}"#),
        "Set",
    );
    assert_eq!(
        (
            s["max_per_day"].as_i64(),
            s["max_per_hour_default"].as_bool()
        ),
        (Some(500), Some(true))
    );
    c.ok(
        "POST",
        "/v1/report",
        Some(as_me(r#"{"account": "root"}"#)),
        "Report",
    );
    let s = c.ok(
        "PUT",
        as_me("/v1/accounts/root"),
        Some(r#"{"report_to": null}"#),
        "Set",
    );
    assert_eq!(s["report_to"], Value::Null);
    let m = c.refused(
        "POST",
        "/v1/report",
        Some(as_me(r#"{"account": "root"}"#)),
        400,
    );
    assert!(m.contains("has no report recipient"), "{m}");
    let u = c.ok(
        "POST",
        as_me("/v1/accounts/root/unblock"),
        Some(r#"{"note": "clean"}"#),
        "Change",
    );
    assert_eq!(
        (u["new_state"].as_str(), u["note"].as_str()),
        (Some("ok"), Some("clean"))
    );
    let t = c.ok(
        "POST",
        as_me("/v1/accounts/root/test"),
        Some(r#"{"to": "me@example.org", "wait_s": 20}"#),
        "Test",
    );
    assert_eq!(t["outcome"], "delivered", "{t}");
    c.ok(
        "POST",
        "/v1/flush",
        Some(as_me(r#"{"account": "root", "wait_s": 1}"#)),
        "Flush",
    );
    c.ok("POST", "/v1/sweep", None, "Sweep");
    let purge = c.ok(
        "POST",
        as_me("/v1/accounts/root/purge"),
        Some("{}"),
        "Purge",
    );
    assert_eq!(purge["new_state"], "ok");
    // The history has every change, with the token as the actor.
    let h = c.ok("GET", as_me("/v1/accounts/root/history"), None, "History");
    let actors: Vec<&str> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    assert!(actors.iter().all(|a| *a == "api:ops"), "{actors:?}");
}

/// The OpenAPI document the server serves is docs/openapi.json, and it
/// lists every route the server has; the page, its assets, /healthz and
/// /metrics answer without a token.
#[test]
fn openapi_page_metrics_and_healthz_are_served() {
    let sink = Sink::start();
    let (env, port) = env_with_api(sink.port(), "");
    let _api = start_api(&env, port);
    let served = http(port, "GET", "/v1/openapi.json", &[], None);
    assert_eq!(served.status, 200);
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json")).unwrap();
    assert_eq!(
        served.text(),
        committed,
        "docs/openapi.json is what the server serves"
    );
    let doc = served.json();
    for route in scriptmail::api::ROUTES {
        let m = format!("{:?}", route.method).to_lowercase();
        assert!(
            doc["paths"][route.path][&m].is_object(),
            "{m} {} is not documented",
            route.path
        );
    }

    let page = http(
        port,
        "GET",
        "/",
        &[("Accept-Language", "fr-CH, fr;q=0.9, en;q=0.5")],
        None,
    );
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(
        html.contains("<html lang=\"fr\">") && html.contains("Bloquer l&#39;envoi"),
        "{html}"
    );
    assert!(
        page.header("Content-Security-Policy")
            .unwrap()
            .contains("default-src 'none'")
    );
    assert_eq!(page.header("X-Frame-Options"), Some("DENY"));
    let en = http(port, "GET", "/", &[], None).text();
    assert!(en.contains("<html lang=\"en\">") && en.contains("Block sending"));
    for (path, kind) in [
        ("/assets/page.css", "text/css"),
        ("/assets/page.js", "text/javascript"),
    ] {
        let r = http(port, "GET", path, &[], None);
        assert_eq!(r.status, 200);
        assert!(r.header("Content-Type").unwrap().starts_with(kind));
    }

    assert_ok(&env.submit(&["-t", "-i"], &simple_message("ann@example.com", "one")));
    env.settle();
    sink.wait_for(1, WAIT);
    let h = http(port, "GET", "/healthz", &[], None);
    assert_eq!(h.status, 200);
    Schemas::load().check("Health", &h.json()).unwrap();
    wait_until(WAIT, || {
        let m = http(port, "GET", "/metrics", &[], None).text();
        m.contains(as_me("scriptmail_sent_total{account=\"root\"} 1"))
            && m.contains("scriptmail_node_delivery_delay_last_hour_seconds_count 1")
    });
    let m = http(port, "GET", "/metrics", &[], None);
    assert!(
        m.header("Content-Type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = m.text();
    for line in [
        "scriptmail_node_messages{state=\"held\"} 0",
        "scriptmail_node_sent_total 1",
        as_me("scriptmail_state{account=\"root\",state=\"ok\"} 1"),
        "scriptmail_node_delivery_delay_last_hour_seconds_bucket{le=\"+Inf\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line}\n{text}");
    }
}

/// With `api.open_metrics = false`, /metrics and /healthz need an admin
/// token; and the API can listen on a Unix socket (mode 0660) instead.
#[test]
fn metrics_can_be_restricted_and_the_api_can_listen_on_a_unix_socket() {
    let (env, port) = env_with_api(closed_port(), "api.open_metrics = false");
    let api = start_api(&env, port);
    let admin = format!("Bearer {}", token(&env, "ops", "admin"));
    let site = format!("Bearer {}", token(&env, "site", as_me("account:root")));
    for path in ["/metrics", "/healthz"] {
        assert_eq!(http(port, "GET", path, &[], None).status, 401, "{path}");
        assert_eq!(
            http(port, "GET", path, &[("Authorization", &site)], None).status,
            403,
            "{path}"
        );
        assert_eq!(
            http(port, "GET", path, &[("Authorization", &admin)], None).status,
            200,
            "{path}"
        );
    }
    drop(api);

    let sock = env.path().join("api.sock");
    let text = std::fs::read_to_string(&env.config).unwrap().replace(
        &format!("api.listen = \"127.0.0.1:{port}\""),
        &format!("api.listen = \"{}\"", sock.display()),
    );
    std::fs::write(&env.config, text).unwrap();
    let child = env
        .scriptmail()
        .arg("api")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _daemon = Daemon {
        child: Some(child),
        stderr: None,
    };
    let ask = || -> Option<Reply> {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&sock).ok()?;
        write!(s, "GET /v1/accounts/{} HTTP/1.1\r\nHost: x\r\nAuthorization: {admin}\r\nConnection: close\r\n\r\n", me()).ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).ok()?;
        parse_reply(&raw)
    };
    wait_until(WAIT, || ask().is_some());
    let r = ask().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["account"], me());
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o660
    );
}

/// `mailq-ctl api-token`: the token once on the last line, only its hash
/// in the file (0600, the queue owner's), `list` without secrets, `revoke`,
/// and the refusals.
#[test]
fn api_token_verbs_keep_only_hashes_in_a_private_file() {
    let env = Env::with_config(closed_port(), "api.tokens_file = \"api-tokens\"");
    if scriptmail::os::effective_uid() == 0 {
        // Root writes the file for the queue's owner.
        std::os::unix::fs::chown(&env.queue, Some(65534), Some(65534)).unwrap();
    }
    let secret = token(&env, "panel", "account:shop1");
    let file = env.path().join("api-tokens");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains(&secret), "the secret is not stored");
    assert!(text.contains("panel account:shop1 "), "{text}");
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(
        meta.uid(),
        std::fs::metadata(&env.queue).unwrap().uid(),
        "the queue owner's"
    );
    let out = env.ctl(&["--json", "api-token", "list"]);
    assert_ok(&out);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["tokens"][0]["name"], "panel");
    assert_eq!(list["tokens"][0]["scope"], "account:shop1");
    assert!(!stdout(&out).contains(&secret));
    let out = env.ctl(&["--json", "api-token", "add", "ops", "--scope", "admin"]);
    let added: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(added["secret"].as_str().unwrap().starts_with("sm_"));
    for (args, code) in [
        (vec!["api-token", "add", "panel", "--scope", "admin"], 77),
        (vec!["api-token", "add", "x", "--scope", "root"], 64),
        (vec!["api-token", "add", "a b", "--scope", "admin"], 64),
        (vec!["api-token", "revoke", "nobody"], 67),
    ] {
        let out = env.ctl(&args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        assert_eq!(
            stderr(&out).lines().count(),
            1,
            "one line: {}",
            stderr(&out)
        );
    }
    assert_ok(&env.ctl(&["api-token", "revoke", "panel"]));
    assert!(!std::fs::read_to_string(&file).unwrap().contains("panel "));
}
