//! The documented `--json` schema of every `mailq-ctl` verb
//! (docs/mailq-ctl.md), as data, and the check every `--json` call runs.

use super::*;

// ---------------------------------------------------------------------------
// The documented JSON schema (docs/mailq-ctl.md), as data: every object
// must have exactly these keys with these types.

#[derive(Debug)]
pub(super) enum J {
    Str,
    Int,
    Bool,
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// `null` or the inner type.
    Opt(&'static J),
    Obj(&'static [(&'static str, J)]),
    Arr(&'static J),
}

pub(super) const ACCOUNT_STATES: &[&str] = &["ok", "ko", "bounce", "spam", "force", "purging"];
pub(super) const MESSAGE_STATES: &[&str] = &[
    "held", "queued", "sending", "deferred", "sent", "failed", "expired",
];

pub(super) const QUEUE: &[(&str, J)] = &[
    ("held", J::Int),
    ("queued", J::Int),
    ("deferred", J::Int),
    ("sending", J::Int),
];
pub(super) const DAY: &[(&str, J)] = &[
    ("day", J::Str),
    ("submitted", J::Int),
    ("sent", J::Int),
    ("errors", J::Int),
    ("held", J::Int),
    ("expired", J::Int),
];
pub(super) const STATUS: &[(&str, J)] = &[
    ("account", J::Str),
    ("state", J::OneOf(ACCOUNT_STATES)),
    ("sends", J::Bool),
    ("reason", J::Str),
    ("since", J::Str),
    ("changed_by", J::Opt(&J::Str)),
    ("note", J::Opt(&J::Str)),
    ("report_to", J::Opt(&J::Str)),
    ("max_per_day", J::Int),
    ("max_per_day_default", J::Bool),
    ("max_per_hour", J::Int),
    ("max_per_hour_default", J::Bool),
    ("sent_total", J::Int),
    ("sent_today", J::Int),
    ("error_total", J::Int),
    ("today", J::Obj(DAY)),
    ("queue", J::Obj(QUEUE)),
    ("oldest_held", J::Opt(&J::Str)),
    ("oldest_held_age_s", J::Opt(&J::Int)),
    ("expires_in_s", J::Opt(&J::Int)),
    ("first_seen", J::Str),
    ("pending_nodes", J::Arr(&J::Str)),
];
pub(super) const OVERVIEW: &[(&str, J)] = &[(
    "accounts",
    J::Arr(&J::Obj(&[
        ("account", J::Str),
        ("state", J::OneOf(ACCOUNT_STATES)),
        ("sends", J::Bool),
        ("reason", J::Str),
        ("since", J::Str),
        ("sent_total", J::Int),
        ("sent_today", J::Int),
        ("error_total", J::Int),
        ("queue", J::Obj(QUEUE)),
        ("oldest_held", J::Opt(&J::Str)),
    ])),
)];
pub(super) const ACCOUNT: &[(&str, J)] = &[
    ("account", J::Str),
    ("state", J::OneOf(ACCOUNT_STATES)),
    ("sends", J::Bool),
    ("reason", J::Str),
    ("since", J::Str),
    ("report_to", J::Opt(&J::Str)),
    ("max_per_day", J::Int),
    ("max_per_day_default", J::Bool),
    ("max_per_hour", J::Int),
    ("max_per_hour_default", J::Bool),
    ("first_seen", J::Str),
];
pub(super) const ACCOUNTS: &[(&str, J)] = &[("accounts", J::Arr(&J::Obj(ACCOUNT)))];
pub(super) const SET: &[(&str, J)] = &[
    ("created", J::Bool),
    ("account", J::Str),
    ("state", J::OneOf(ACCOUNT_STATES)),
    ("sends", J::Bool),
    ("reason", J::Str),
    ("since", J::Str),
    ("report_to", J::Opt(&J::Str)),
    ("max_per_day", J::Int),
    ("max_per_day_default", J::Bool),
    ("max_per_hour", J::Int),
    ("max_per_hour_default", J::Bool),
    ("first_seen", J::Str),
];
pub(super) const CHANGE: &[(&str, J)] = &[
    ("account", J::Str),
    ("old_state", J::OneOf(ACCOUNT_STATES)),
    ("new_state", J::OneOf(ACCOUNT_STATES)),
    ("changed", J::Bool),
    ("reason", J::Str),
    ("actor", J::Str),
    ("note", J::Str),
    ("released", J::Int),
    ("held", J::Int),
];
pub(super) const PURGE: &[(&str, J)] = &[
    ("account", J::Str),
    ("old_state", J::OneOf(ACCOUNT_STATES)),
    ("new_state", J::OneOf(&["ok"])),
    ("dropped", J::Int),
    ("dropped_held", J::Int),
    ("dropped_queued", J::Int),
    ("released", J::Int),
    ("actor", J::Str),
];
pub(super) const SWEEP: &[(&str, J)] = &[
    ("recovered", J::Int),
    ("imported", J::Int),
    ("expired", J::Int),
    (
        "expired_by_account",
        J::Arr(&J::Obj(&[("account", J::Str), ("expired", J::Int)])),
    ),
    (
        "deleted",
        J::Obj(&[
            ("messages", J::Int),
            ("bodies", J::Int),
            ("errors", J::Int),
            ("events", J::Int),
            ("daily", J::Int),
            ("hourly", J::Int),
        ]),
    ),
    ("hold_max_age_s", J::Int),
    ("history_days", J::Int),
];
pub(super) const MESSAGE: &[(&str, J)] = &[
    ("qid", J::Str),
    ("account", J::Str),
    ("state", J::OneOf(MESSAGE_STATES)),
    ("created", J::Str),
    ("next_attempt", J::Opt(&J::Str)),
    ("attempts", J::Int),
    ("sender", J::Str),
    ("nrcpt", J::Int),
    ("size", J::Int),
    ("subject", J::Str),
    ("script", J::Str),
    ("last_error", J::Str),
    ("done_at", J::Opt(&J::Str)),
];
pub(super) const QUEUE_LIST: &[(&str, J)] = &[("messages", J::Arr(&J::Obj(MESSAGE)))];
pub(super) const SHOW: &[(&str, J)] = &[
    ("qid", J::Str),
    ("account", J::Str),
    ("state", J::OneOf(MESSAGE_STATES)),
    ("created", J::Str),
    ("next_attempt", J::Opt(&J::Str)),
    ("attempts", J::Int),
    ("sender", J::Str),
    ("nrcpt", J::Int),
    ("size", J::Int),
    ("subject", J::Str),
    ("script", J::Str),
    ("last_error", J::Str),
    ("done_at", J::Opt(&J::Str)),
    ("cwd", J::Str),
    ("uid", J::Int),
    (
        "recipients",
        J::Arr(&J::Obj(&[
            ("address", J::Str),
            ("state", J::OneOf(&["pending", "sent", "failed"])),
        ])),
    ),
    ("headers", J::Opt(&J::Str)),
    ("body", J::Opt(&J::Str)),
];
pub(super) const MOVE: &[(&str, J)] = &[
    ("qid", J::Str),
    ("account", J::Str),
    ("old_state", J::OneOf(MESSAGE_STATES)),
    ("new_state", J::Opt(&J::OneOf(&["queued"]))),
];
pub(super) const FLUSH: &[(&str, J)] = &[
    ("account", J::Opt(&J::Str)),
    ("via", J::OneOf(&["foreground", "daemon", "none"])),
    ("due", J::Int),
    ("sent", J::Int),
    ("deferred", J::Int),
    ("failed", J::Int),
    ("pending", J::Int),
    ("gone", J::Int),
    (
        "messages",
        J::Arr(&J::Obj(&[
            ("qid", J::Str),
            ("account", J::Str),
            ("state", J::Opt(&J::OneOf(MESSAGE_STATES))),
            ("attempts", J::Int),
            ("answer", J::Str),
            ("next_attempt", J::Opt(&J::Str)),
        ])),
    ),
];
pub(super) const STATS: &[(&str, J)] = &[
    ("account", J::Str),
    ("days", J::Arr(&J::Obj(DAY))),
    (
        "total",
        J::Obj(&[
            ("submitted", J::Int),
            ("sent", J::Int),
            ("errors", J::Int),
            ("held", J::Int),
            ("expired", J::Int),
        ]),
    ),
];
pub(super) const ERRORS: &[(&str, J)] = &[
    ("account", J::Str),
    (
        "errors",
        J::Arr(&J::Obj(&[
            ("at", J::Str),
            ("qid", J::Str),
            ("recipient", J::Str),
            ("kind", J::OneOf(&["rejected", "expired", "dsn"])),
            ("answer", J::Str),
            ("subject", J::Str),
            ("script", J::Str),
        ])),
    ),
];
pub(super) const HISTORY: &[(&str, J)] = &[
    ("account", J::Str),
    (
        "events",
        J::Arr(&J::Obj(&[
            ("at", J::Str),
            ("old_state", J::OneOf(ACCOUNT_STATES)),
            ("new_state", J::OneOf(ACCOUNT_STATES)),
            ("reason", J::Str),
            ("actor", J::Str),
            ("note", J::Str),
        ])),
    ),
];
pub(super) const TEST: &[(&str, J)] = &[
    ("account", J::Str),
    ("qid", J::Str),
    ("to", J::Str),
    (
        "outcome",
        J::OneOf(&[
            "delivered",
            "deferred",
            "failed",
            "held",
            "pending",
            "deleted",
        ]),
    ),
    ("state", J::Opt(&J::OneOf(MESSAGE_STATES))),
    ("account_state", J::OneOf(ACCOUNT_STATES)),
    ("answer", J::Opt(&J::Str)),
    ("via", J::Opt(&J::OneOf(&["foreground", "daemon"]))),
];
pub(super) const FILTER: &[(&str, J)] = &[
    ("script", J::Opt(&J::Str)),
    ("domain", J::Opt(&J::Str)),
    ("older_than_s", J::Opt(&J::Int)),
    ("newer_than_s", J::Opt(&J::Int)),
];
pub(super) const HELD: &[(&str, J)] = &[
    ("account", J::Str),
    ("state", J::OneOf(ACCOUNT_STATES)),
    ("sends", J::Bool),
    ("filter", J::Obj(FILTER)),
    ("held", J::Int),
    ("oldest", J::Opt(&J::Str)),
    ("oldest_age_s", J::Opt(&J::Int)),
    ("expires_in_s", J::Opt(&J::Int)),
    ("newest", J::Opt(&J::Str)),
    (
        "scripts",
        J::Arr(&J::Obj(&[("script", J::Str), ("held", J::Int)])),
    ),
    ("distinct_scripts", J::Int),
    (
        "domains",
        J::Arr(&J::Obj(&[("domain", J::Str), ("held", J::Int)])),
    ),
    ("distinct_domains", J::Int),
];
pub(super) const HELD_RELEASE: &[(&str, J)] = &[
    ("account", J::Str),
    ("state", J::OneOf(ACCOUNT_STATES)),
    ("filter", J::Obj(FILTER)),
    ("released", J::Int),
    ("held", J::Int),
    ("actor", J::Str),
];
pub(super) const HELD_PURGE: &[(&str, J)] = &[
    ("account", J::Str),
    ("state", J::OneOf(ACCOUNT_STATES)),
    ("filter", J::Obj(FILTER)),
    ("dropped", J::Int),
    ("held", J::Int),
    ("actor", J::Str),
    ("note", J::Str),
];
pub(super) const ERROR: &[(&str, J)] = &[("error", J::Str), ("exit", J::Int)];

/// Check `v` against `t`; `path` names the place for the failure message.
pub(super) fn check(v: &Value, t: &J, path: &str) {
    match t {
        J::Str => assert!(v.is_string(), "{path}: expected a string, got {v}"),
        J::Int => assert!(v.is_i64(), "{path}: expected an integer, got {v}"),
        J::Bool => assert!(v.is_boolean(), "{path}: expected a boolean, got {v}"),
        J::OneOf(allowed) => {
            let s = v
                .as_str()
                .unwrap_or_else(|| panic!("{path}: expected a string, got {v}"));
            assert!(
                allowed.contains(&s),
                "{path}: {s:?} is not one of {allowed:?}"
            );
        }
        J::Opt(inner) => {
            if !v.is_null() {
                check(v, inner, path);
            }
        }
        J::Obj(fields) => {
            let o = v
                .as_object()
                .unwrap_or_else(|| panic!("{path}: expected an object, got {v}"));
            for (k, ft) in fields.iter() {
                let fv = o
                    .get(*k)
                    .unwrap_or_else(|| panic!("{path}: missing key {k:?} in {v}"));
                check(fv, ft, &format!("{path}.{k}"));
            }
            for k in o.keys() {
                assert!(
                    fields.iter().any(|(f, _)| f == k),
                    "{path}: undocumented key {k:?}"
                );
            }
        }
        J::Arr(inner) => {
            let a = v
                .as_array()
                .unwrap_or_else(|| panic!("{path}: expected an array, got {v}"));
            for (i, e) in a.iter().enumerate() {
                check(e, inner, &format!("{path}[{i}]"));
            }
        }
    }
}

pub(super) const REPORT_EVENT: &[(&str, J)] = &[
    ("at", J::Str),
    ("at_ms", J::Int),
    ("old_state", J::OneOf(ACCOUNT_STATES)),
    ("new_state", J::OneOf(ACCOUNT_STATES)),
    ("reason", J::Str),
    ("actor", J::Str),
    ("note", J::Str),
];
pub(super) const REPORT_ERROR: &[(&str, J)] = &[
    ("at", J::Str),
    ("at_ms", J::Int),
    ("qid", J::Str),
    ("rcpt", J::Str),
    ("kind", J::OneOf(&["rejected", "expired", "dsn"])),
    ("message", J::Str),
    ("subject", J::Str),
    ("script", J::Str),
];
pub(super) const REPORT_EXPIRED: &[(&str, J)] = &[
    ("at", J::Str),
    ("at_ms", J::Int),
    ("created", J::Str),
    ("qid", J::Str),
    ("sender", J::Str),
    ("recipients", J::Arr(&J::Str)),
    ("subject", J::Str),
    ("script", J::Str),
];
pub(super) const REPORT: &[(&str, J)] = &[
    ("day", J::Str),
    (
        "reports",
        J::Arr(&J::Obj(&[
            ("account", J::Str),
            ("report_to", J::Opt(&J::Str)),
            ("day", J::Str),
            ("status", J::Str),
            ("qid", J::Opt(&J::Str)),
            (
                "errors",
                J::Obj(&[("total", J::Int), ("items", J::Arr(&J::Obj(REPORT_ERROR)))]),
            ),
            (
                "expired",
                J::Obj(&[
                    ("total", J::Int),
                    ("items", J::Arr(&J::Obj(REPORT_EXPIRED))),
                ]),
            ),
            ("events", J::Arr(&J::Obj(REPORT_EVENT))),
        ])),
    ),
];
pub(super) const METRICS: &[(&str, J)] = &[(
    "accounts",
    J::Arr(&J::Obj(&[
        ("account", J::Str),
        ("state", J::OneOf(ACCOUNT_STATES)),
        ("sent_total", J::Int),
        ("errors_total", J::Int),
        ("sent_today", J::Int),
        ("held", J::Int),
        ("queued", J::Int),
        ("deferred", J::Int),
    ])),
)];
