//! The schemas of the OpenAPI document: every document the API answers
//! with and every request body, as JSON Schema (OpenAPI 3.1). Objects are
//! closed — exactly these keys, all required — so an answer that gains,
//! loses or retypes a key no longer matches (the integration tests check
//! every answer against its schema).

use serde_json::{Map, Value, json};

pub fn t(kind: &str) -> Value {
    json!({ "type": kind })
}
pub fn s() -> Value {
    t("string")
}
fn i() -> Value {
    t("integer")
}
fn b() -> Value {
    t("boolean")
}
fn time() -> Value {
    json!({ "type": "string", "format": "date-time" })
}
pub fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}
pub fn arr(items: Value) -> Value {
    json!({ "type": "array", "items": items })
}
fn en(values: &[&str]) -> Value {
    json!({ "type": "string", "enum": values })
}
/// `x` or `null`.
fn null(x: Value) -> Value {
    json!({ "anyOf": [x, { "type": "null" }] })
}
/// A closed object: exactly these keys.
fn obj(props: &[(&str, Value)]) -> Value {
    let required: Vec<&str> = props.iter().map(|(k, _)| *k).collect();
    let properties: Map<String, Value> = props
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    json!({ "type": "object", "additionalProperties": false, "required": required, "properties": properties })
}
/// A request body: these keys, none required unless listed.
fn body(props: &[(&str, Value)], required: &[&str]) -> Value {
    let mut o = obj(props);
    o["required"] = json!(required);
    o
}

const LIMITS: [&str; 4] = [
    "max_per_day",
    "max_per_day_default",
    "max_per_hour",
    "max_per_hour_default",
];

fn limits() -> Vec<(&'static str, Value)> {
    LIMITS
        .iter()
        .map(|k| (*k, if k.ends_with("default") { b() } else { i() }))
        .collect()
}

fn account_props() -> Vec<(&'static str, Value)> {
    let mut p = vec![
        ("account", s()),
        ("state", r("State")),
        ("sends", b()),
        ("reason", s()),
        ("since", time()),
        ("report_to", null(s())),
    ];
    p.extend(limits());
    p.push(("first_seen", time()));
    p
}

fn message_props() -> Vec<(&'static str, Value)> {
    vec![
        ("qid", s()),
        ("account", s()),
        ("state", r("MessageState")),
        ("created", time()),
        ("next_attempt", null(time())),
        ("attempts", i()),
        ("sender", s()),
        ("nrcpt", i()),
        ("size", i()),
        ("subject", s()),
        ("script", s()),
        ("last_error", s()),
        ("done_at", null(time())),
    ]
}

fn counts(keys: &[&'static str]) -> Value {
    obj(&keys.iter().map(|k| (*k, i())).collect::<Vec<_>>())
}

pub fn schemas() -> Value {
    let mut status = vec![
        ("account", s()),
        ("state", r("State")),
        ("sends", b()),
        ("reason", s()),
        ("since", time()),
        ("changed_by", null(s())),
        ("note", null(s())),
        ("report_to", null(s())),
    ];
    status.extend(limits());
    status.extend([
        ("sent_total", i()),
        ("sent_today", i()),
        ("error_total", i()),
        ("today", r("Day")),
        ("queue", r("Queue")),
        ("oldest_held", null(time())),
        ("oldest_held_age_s", null(i())),
        ("expires_in_s", null(i())),
        ("first_seen", time()),
        // Cluster mode: the nodes that have not yet carried out the
        // account's latest change; always empty on a node alone.
        ("pending_nodes", arr(s())),
    ]);
    let mut set = account_props();
    set.insert(0, ("created", b()));
    let mut show = message_props();
    show.extend([
        ("cwd", s()),
        ("uid", i()),
        (
            "recipients",
            arr(obj(&[
                ("address", s()),
                ("state", en(&["pending", "sent", "failed"])),
            ])),
        ),
        ("headers", null(s())),
        ("body", null(s())),
    ]);
    let filter = || r("Filter");
    let list: Vec<(&str, Value)> = vec![
        ("Error", obj(&[("class", s()), ("message", s())])),
        (
            "State",
            en(&["ok", "ko", "bounce", "spam", "force", "purging"]),
        ),
        (
            "MessageState",
            en(&[
                "held", "queued", "sending", "deferred", "sent", "failed", "expired",
            ]),
        ),
        ("Queue", counts(&["held", "queued", "deferred", "sending"])),
        (
            "Day",
            obj(&[
                ("day", json!({"type": "string", "format": "date"})),
                ("submitted", i()),
                ("sent", i()),
                ("errors", i()),
                ("held", i()),
                ("expired", i()),
            ]),
        ),
        (
            "Email",
            obj(&[
                ("state", r("State")),
                ("email", null(s())),
                ("sent", i()),
                ("sentToday", i()),
                ("bounce", i()),
                ("maxPerDay", i()),
            ]),
        ),
        (
            "Bounce",
            obj(&[("date", time()), ("to", s()), ("message", s())]),
        ),
        ("Volume", obj(&[("date", time()), ("volume", i())])),
        (
            "Task",
            obj(&[
                ("id", s()),
                ("account", s()),
                ("action", en(&["BLOCK", "UNBLOCK", "PURGE"])),
                ("status", en(&["done"])),
                ("created", time()),
                ("done", time()),
                ("actor", s()),
                ("result", t("object")),
            ]),
        ),
        (
            "Session",
            obj(&[
                ("token", s()),
                ("scope", s()),
                ("account", null(s())),
                ("csrf", null(s())),
                ("idle_timeout_s", i()),
                ("max_age_s", i()),
            ]),
        ),
        ("SignedOut", obj(&[("signed_out", b())])),
        (
            "Health",
            obj(&[
                ("status", en(&["ok"])),
                ("held", i()),
                ("queued", i()),
                ("deferred", i()),
            ]),
        ),
        ("Status", obj(&status)),
        (
            "Overview",
            obj(&[(
                "accounts",
                arr(obj(&[
                    ("account", s()),
                    ("state", r("State")),
                    ("sends", b()),
                    ("reason", s()),
                    ("since", time()),
                    ("sent_total", i()),
                    ("sent_today", i()),
                    ("error_total", i()),
                    ("queue", r("Queue")),
                    ("oldest_held", null(time())),
                ])),
            )]),
        ),
        ("Account", obj(&account_props())),
        ("Accounts", obj(&[("accounts", arr(r("Account")))])),
        ("Set", obj(&set)),
        (
            "Change",
            obj(&[
                ("account", s()),
                ("old_state", r("State")),
                ("new_state", r("State")),
                ("changed", b()),
                (
                    "reason",
                    en(&[
                        "manual", "spam", "limit", "unblock", "force", "purge", "bounce",
                    ]),
                ),
                ("actor", s()),
                ("note", s()),
                ("released", i()),
                ("held", i()),
            ]),
        ),
        (
            "Purge",
            obj(&[
                ("account", s()),
                ("old_state", r("State")),
                ("new_state", r("State")),
                ("dropped", i()),
                ("dropped_held", i()),
                ("dropped_queued", i()),
                ("released", i()),
                ("actor", s()),
            ]),
        ),
        (
            "Filter",
            obj(&[
                ("script", null(s())),
                ("domain", null(s())),
                ("older_than_s", null(i())),
                ("newer_than_s", null(i())),
            ]),
        ),
        (
            "Held",
            obj(&[
                ("account", s()),
                ("state", r("State")),
                ("sends", b()),
                ("filter", filter()),
                ("held", i()),
                ("oldest", null(time())),
                ("oldest_age_s", null(i())),
                ("expires_in_s", null(i())),
                ("newest", null(time())),
                ("scripts", arr(obj(&[("script", s()), ("held", i())]))),
                ("distinct_scripts", i()),
                ("domains", arr(obj(&[("domain", s()), ("held", i())]))),
                ("distinct_domains", i()),
            ]),
        ),
        (
            "HeldRelease",
            obj(&[
                ("account", s()),
                ("state", r("State")),
                ("filter", filter()),
                ("released", i()),
                ("held", i()),
                ("actor", s()),
            ]),
        ),
        (
            "HeldPurge",
            obj(&[
                ("account", s()),
                ("state", r("State")),
                ("filter", filter()),
                ("dropped", i()),
                ("held", i()),
                ("actor", s()),
                ("note", s()),
            ]),
        ),
        (
            "Stats",
            obj(&[
                ("account", s()),
                ("days", arr(r("Day"))),
                (
                    "total",
                    counts(&["submitted", "sent", "errors", "held", "expired"]),
                ),
            ]),
        ),
        (
            "Errors",
            obj(&[
                ("account", s()),
                (
                    "errors",
                    arr(obj(&[
                        ("at", time()),
                        ("qid", s()),
                        ("recipient", s()),
                        ("kind", en(&["rejected", "expired", "dsn"])),
                        ("answer", s()),
                        ("subject", s()),
                        ("script", s()),
                    ])),
                ),
            ]),
        ),
        (
            "History",
            obj(&[
                ("account", s()),
                (
                    "events",
                    arr(obj(&[
                        ("at", time()),
                        ("old_state", r("State")),
                        ("new_state", r("State")),
                        ("reason", s()),
                        ("actor", s()),
                        ("note", s()),
                    ])),
                ),
            ]),
        ),
        ("Message", obj(&message_props())),
        ("QueueList", obj(&[("messages", arr(r("Message")))])),
        ("Show", obj(&show)),
        (
            "Move",
            obj(&[
                ("qid", s()),
                ("account", s()),
                ("old_state", r("MessageState")),
                ("new_state", null(r("MessageState"))),
            ]),
        ),
        (
            "Flush",
            obj(&[
                ("account", null(s())),
                ("via", en(&["foreground", "daemon", "none"])),
                ("due", i()),
                ("sent", i()),
                ("deferred", i()),
                ("failed", i()),
                ("pending", i()),
                ("gone", i()),
                (
                    "messages",
                    arr(obj(&[
                        ("qid", s()),
                        ("account", s()),
                        ("state", null(r("MessageState"))),
                        ("attempts", i()),
                        ("answer", s()),
                        ("next_attempt", null(time())),
                    ])),
                ),
            ]),
        ),
        (
            "Test",
            obj(&[
                ("account", s()),
                ("qid", s()),
                ("to", s()),
                (
                    "outcome",
                    en(&[
                        "delivered",
                        "held",
                        "deferred",
                        "failed",
                        "deleted",
                        "pending",
                    ]),
                ),
                ("state", null(r("MessageState"))),
                ("account_state", r("State")),
                ("answer", null(s())),
                ("via", null(en(&["foreground", "daemon", "none"]))),
            ]),
        ),
        (
            "Sweep",
            obj(&[
                ("recovered", i()),
                ("imported", i()),
                ("expired", i()),
                (
                    "expired_by_account",
                    arr(obj(&[("account", s()), ("expired", i())])),
                ),
                (
                    "deleted",
                    counts(&["messages", "bodies", "errors", "events", "daily", "hourly"]),
                ),
                ("hold_max_age_s", i()),
                ("history_days", i()),
            ]),
        ),
        (
            "Report",
            obj(&[
                ("day", json!({"type": "string", "format": "date"})),
                ("reports", arr(t("object"))),
            ]),
        ),
        (
            "Metrics",
            obj(&[(
                "accounts",
                arr(obj(&[
                    ("account", s()),
                    ("deferred", i()),
                    ("errors_total", i()),
                    ("held", i()),
                    ("queued", i()),
                    ("sent_today", i()),
                    ("sent_total", i()),
                    ("state", r("State")),
                ])),
            )]),
        ),
        (
            "Node",
            obj(&[
                ("held", i()),
                ("queued", i()),
                ("deferred", i()),
                ("sending", i()),
                ("oldest_waiting_age_s", i()),
                ("oldest_held_age_s", i()),
                ("deferred_attempts", i()),
                ("sent_total", i()),
                ("errors_total", i()),
                ("accounts", i()),
                ("accounts_blocked", i()),
                (
                    "delivery_delay",
                    obj(&[
                        ("window_s", i()),
                        ("count", i()),
                        ("sum_s", t("number")),
                        (
                            "buckets",
                            arr(obj(&[("le", null(t("number"))), ("count", i())])),
                        ),
                    ]),
                ),
            ]),
        ),
        (
            "Panel",
            obj(&[
                ("status", r("Status")),
                (
                    "buttons",
                    obj(&[("block", b()), ("unblock", b()), ("purge", b())]),
                ),
                ("stats", r("Stats")),
                ("errors", r("Errors")),
                ("held", r("Held")),
                ("history", r("History")),
                ("hold_max_age_s", i()),
            ]),
        ),
        // Request bodies.
        ("EmailBody", body(&[("email", null(s()))], &["email"])),
        (
            "RequestBody",
            body(
                &[("action", en(&["BLOCK", "UNBLOCK", "PURGE"]))],
                &["action"],
            ),
        ),
        ("SignInBody", body(&[("token", s())], &["token"])),
        (
            "SetBody",
            body(
                &[
                    ("report_to", null(s())),
                    ("max_per_day", json!({"anyOf": [i(), en(&["default"])]})),
                    ("max_per_hour", json!({"anyOf": [i(), en(&["default"])]})),
                ],
                &[],
            ),
        ),
        (
            "BlockBody",
            body(
                &[("reason", en(&["manual", "spam", "limit"])), ("note", s())],
                &[],
            ),
        ),
        ("UnblockBody", body(&[("force", b()), ("note", s())], &[])),
        (
            "FilterBody",
            body(
                &[
                    ("script", s()),
                    ("domain", s()),
                    ("older_than_s", i()),
                    ("newer_than_s", i()),
                    ("note", s()),
                ],
                &[],
            ),
        ),
        ("TestBody", body(&[("to", s()), ("wait_s", i())], &["to"])),
        ("FlushBody", body(&[("account", s()), ("wait_s", i())], &[])),
        (
            "ReportBody",
            body(
                &[
                    ("account", s()),
                    ("day", json!({"type": "string", "format": "date"})),
                ],
                &[],
            ),
        ),
    ];
    Value::Object(list.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}
