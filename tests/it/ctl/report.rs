//! What `mailq-ctl` reports: `status` of all accounts, `accounts`,
//! `stats`, the daily `report` (its recipient rule, sent once) and `metrics`.

use super::*;

#[test]
fn status_of_all_accounts_accounts_and_stats() {
    let sink = Sink::start();
    // `newsite`: a name the node resolves (the uid map), not a Unix user.
    let env = Env::with_sections(sink.port(), "", "[accounts.map]\n\"60000\" = \"newsite\"\n");
    send(&env, "a@example.com", "1");
    send(&env, "a@example.com", "2");
    sink.wait_for(2, WAIT);
    wait_until(WAIT, || env.count("state = 'sent'") == 2);
    // The panel configures an account before its first mail.
    let set = json(
        &env,
        &[
            "set",
            "newsite",
            "--report-to",
            "Web Master <webmaster@example.com>",
            "--max-per-hour",
            "10",
        ],
        SET,
    );
    assert_eq!(set["created"], true);
    assert_eq!(set["report_to"], "webmaster@example.com");
    json(&env, &["block", "newsite", "--reason", "spam"], CHANGE);

    let all = json(&env, &["status", "--sort", "state"], OVERVIEW);
    let names: Vec<&str> = all["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["account"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["newsite", me()], "blocked first");
    assert_eq!(all["accounts"][1]["sent_today"], 2);
    let by_sent = json(&env, &["status", "--sort", "sent"], OVERVIEW);
    assert_eq!(by_sent["accounts"][0]["account"], me());
    let text = ok(env.ctl(&["status"]));
    let header = text.lines().next().unwrap();
    assert!(
        header.starts_with("ACCOUNT") && header.contains("HELD"),
        "{text}"
    );
    assert!(
        !text.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );

    let acc = json(&env, &["accounts"], ACCOUNTS);
    let newsite = &acc["accounts"][0];
    assert_eq!(
        (
            newsite["account"].as_str(),
            newsite["max_per_hour"].as_i64()
        ),
        (Some("newsite"), Some(10))
    );
    json(&env, &["set", "newsite", "--no-report"], SET);
    assert!(json(&env, &["accounts"], ACCOUNTS)["accounts"][0]["report_to"].is_null());

    let st = json(&env, &["stats", me(), "--days", "7"], STATS);
    let days = st["days"].as_array().unwrap();
    assert_eq!(days.len(), 7);
    assert_eq!(days[6]["sent"], 2, "today is last");
    assert_eq!(days[0]["sent"], 0);
    assert_eq!(st["total"]["sent"], 2);
    let chart = ok(env.ctl(&["stats", me(), "--days", "3"]));
    assert_eq!(
        chart.lines().filter(|l| l.contains("#")).count(),
        1,
        "{chart}"
    );
}

/// `report` from the command line: today's block/unblock shows up, with the
/// documented JSON; `--send` queues one mail to the recipient, once.
#[test]
fn report_verb_prints_and_sends_once() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    assert_ok(&env.ctl(&["set", me(), "--report-to", "webmaster@example.com"]));
    assert_ok(&env.ctl(&["block", me(), "--note", "ticket 42"]));
    assert_ok(&env.ctl(&["unblock", me()]));
    let today =
        scriptmail::clock::format_day(scriptmail::clock::day_of(scriptmail::clock::now_ms()));
    let v = json(&env, &["report", "--day", &today], REPORT);
    let reports = v["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 1, "{v}");
    let events = reports[0]["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["new_state"] == "ko" && e["note"] == "ticket 42"),
        "{v}"
    );
    let text = stdout(&env.ctl(&["report", "--day", &today]));
    assert!(text.contains("ticket 42"), "{text}");

    assert_ok(&env.ctl(&["report", "--day", &today, "--send"]));
    let got = sink.wait_for(1, WAIT);
    assert_eq!(got[0].rcpt_to, ["webmaster@example.com"]);
    // A second run of the timer sends nothing twice.
    assert_ok(&env.ctl(&["report", "--day", &today, "--send"]));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.messages().len(), 1);
    // Nothing to say about a quiet day.
    let v = json(&env, &["report", "--day", "2020-01-01"], REPORT);
    assert!(v["reports"].as_array().unwrap().is_empty(), "{v}");
    let line = refused(&env, &["report", "--day", "yesterday"], 64);
    assert!(line.contains("YYYY-MM-DD"), "{line}");
}

/// `metrics`: Prometheus text format, one series per account, values that
/// match `status`; labels escaped.
#[test]
fn metrics_verb_exports_prometheus_text() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    assert_ok(&env.submit(&["-t", "-i"], &simple_message("a@example.com", "m")));
    sink.wait_for(1, WAIT);
    wait_until(WAIT, || env.count("state = 'sent'") == 1);
    assert_ok(&env.ctl(&["block", me()]));
    assert_ok(&env.submit(&["-t", "-i"], &simple_message("a@example.com", "held")));
    let out = env.ctl(&["metrics"]);
    assert_ok(&out);
    let text = stdout(&out);
    let me = me();
    for line in [
        format!("scriptmail_sent_total{{account=\"{me}\"}} 1"),
        format!("scriptmail_held{{account=\"{me}\"}} 1"),
        format!("scriptmail_sending{{account=\"{me}\"}} 0"),
        format!("scriptmail_state{{account=\"{me}\",state=\"ko\"}} 1"),
        "# TYPE scriptmail_sent_total counter".into(),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    // Every sample line is `name{labels} integer`.
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = l.rsplit_once(' ').unwrap();
        assert!(
            series.starts_with("scriptmail_") && series.ends_with('}'),
            "{l}"
        );
        value.parse::<i64>().unwrap_or_else(|_| panic!("{l}"));
    }
    let v = json(&env, &["metrics"], METRICS);
    assert_eq!(v["accounts"][0]["held"], 1);
}

/// Item 12: `set --report-to` accepts exactly what the report sender can
/// send (one shared rule), so an accepted recipient always gets its report.
#[test]
fn report_to_is_checked_by_the_rule_reports_are_sent_with() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    for bad in [
        "\"a b\"@x.org",
        "a..b@x.org",
        ".a@x.org",
        "a@x..org",
        "a@-x.org",
    ] {
        let line = refused(&env, &["set", me(), "--report-to", bad], 64);
        assert!(line.contains("not a valid"), "{bad}: {line}");
    }
    assert!(json(&env, &["status", me()], STATUS)["report_to"].is_null());
    // What is accepted is sent.
    for good in [
        "o'brien+reports@x.org",
        "Web Master <web.master@sub.example.com>",
    ] {
        json(&env, &["set", me(), "--report-to", good], SET);
    }
    assert_ok(&env.ctl(&["block", me()]));
    let today =
        scriptmail::clock::format_day(scriptmail::clock::day_of(scriptmail::clock::now_ms()));
    let v = json(&env, &["report", "--day", &today, "--send"], REPORT);
    assert_eq!(v["reports"][0]["status"], "queued", "{v}");
    let got = sink.wait_for(1, WAIT);
    assert_eq!(got[0].rcpt_to, ["web.master@sub.example.com"]);
}

/// Item 10: the daily report is queued and marked sent in one transaction:
/// however many `report --send` run at once, one report per account and day.
#[test]
fn concurrent_report_runs_send_one_report_per_account_and_day() {
    const DAYS: i64 = 12;
    const RUNS: usize = 4;
    let env = Env::new(closed_port());
    // Nobody relays: the reports stay in the queue to be counted.
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, text.replace(SCRIPTMAIL, "/bin/true")).unwrap();
    assert_ok(&env.ctl(&["set", me(), "--report-to", "webmaster@example.com"]));
    let today = scriptmail::clock::day_of(scriptmail::clock::now_ms());
    {
        // Something to report on each of the last DAYS days.
        let c = rusqlite::Connection::open(env.queue.join("queue.db")).unwrap();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        for d in 1..=DAYS {
            c.execute(
                "INSERT INTO events (account_id, at, old_state, new_state, reason, actor, note, notified)
                 SELECT id, ?1, 'ok', 'ko', 'manual', ?3, 'day ' || ?2, 1 FROM accounts WHERE name = ?3",
                rusqlite::params![(today - d) * 86_400_000 + 3_600_000, d, me()],
            )
            .unwrap();
        }
    }
    for d in 1..=DAYS {
        let day = scriptmail::clock::format_day(today - d);
        let runs: Vec<std::process::Child> = (0..RUNS)
            .map(|_| {
                env.scriptmail()
                    .args(["mailq-ctl", "report", "--send", "--day", &day])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("report")
            })
            .collect();
        for r in runs {
            let out = r.wait_with_output().expect("wait");
            assert_ok(&out);
        }
    }
    let db = env.db();
    let dup: Vec<(String, i64)> = db
        .prepare("SELECT subject, count(*) FROM messages WHERE system GROUP BY subject HAVING count(*) > 1")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(dup.is_empty(), "reports queued more than once: {dup:?}");
    assert_eq!(env.count("system"), DAYS);
    let marked: i64 = db
        .query_row("SELECT count(*) FROM reports", [], |r| r.get(0))
        .unwrap();
    assert_eq!(marked, DAYS);
}
