//! Integration tests: cluster mode (docs/cluster.md; issue 14) — three
//! nodes on one machine (three configurations, queues, relayd processes
//! and node names) against a real PostgreSQL started by `pg.rs`, relaying
//! to the real smtp-sink (a scripted server only where mail must fail).
//! The account is the caller's own ([`me`]) on every node.

use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use crate::apiutil::{Client, Schemas, request, start_api, token};
use crate::fake_smtp::{Action, FakeSmtp};
use crate::pg::Pg;
use crate::sink::Sink;
use crate::util::*;

const WAIT: Duration = Duration::from_secs(30);

/// One node: its environment, relayd and name.
struct Node {
    name: String,
    env: Env,
    relayd: Option<Daemon>,
    url: String,
}

impl Node {
    /// A node relaying to `port`, in the cluster of `url` (200 ms syncs).
    fn new(name: &str, port: u16, url: &str) -> Node {
        Node::with(name, port, url, "")
    }

    fn with(name: &str, port: u16, url: &str, top: &str) -> Node {
        let cluster = format!(
            "[cluster]\nurl = \"{url}\"\nnode = \"{name}\"\ntls = \"none\"\nsync_interval = \"200ms\"\n"
        );
        Node {
            name: name.to_string(),
            env: Env::with_sections(port, top, &cluster),
            relayd: None,
            url: url.to_string(),
        }
    }

    /// Start relayd and wait for its first sync.
    fn start(&mut self) {
        let synced_before = self.last_sync();
        self.relayd = Some(self.env.relayd());
        wait_until(WAIT, || {
            let s = self.last_sync();
            s.is_some() && s != synced_before
        });
    }

    /// Its last sync as the store has it (ms), if any.
    fn last_sync(&self) -> Option<i64> {
        let Ok(mut c) = postgres::Client::connect(&self.url, postgres::NoTls) else {
            return None;
        };
        c.query_opt(
            "SELECT (extract(epoch FROM last_sync) * 1000)::bigint FROM nodes WHERE name = $1",
            &[&self.name],
        )
        .ok()
        .flatten()
        .and_then(|r| r.get(0))
    }

    fn ctl(&self, args: &[&str]) -> Output {
        self.env.ctl(args)
    }

    /// `mailq-ctl --json ARGS`, which must succeed.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.ctl(&all);
        assert_ok(&out);
        serde_json::from_slice(&out.stdout).expect("json")
    }

    /// This node's own view of the account (`--local`).
    fn local(&self) -> Value {
        self.json(&["--local", "status", me()])
    }

    fn send(&self, subject: &str) {
        assert_ok(
            &self
                .env
                .submit(&["-t", "-i"], &simple_message("a@example.com", subject)),
        );
    }

    fn held(&self) -> i64 {
        self.env.count("state = 'held'")
    }

    fn kill9(&mut self) {
        if let Some(d) = self.relayd.take() {
            d.kill9();
        }
    }
}

/// Three nodes a, b, c relaying to `port`, relayd running on each.
fn three(port: u16, url: &str) -> Vec<Node> {
    ["a", "b", "c"]
        .iter()
        .map(|n| {
            let mut node = Node::new(n, port, url);
            node.start();
            node
        })
        .collect()
}

fn subjects(sink: &Sink) -> Vec<String> {
    sink.messages()
        .iter()
        .filter_map(|m| m.header("Subject"))
        .collect()
}

/// A block from a holds mail submitted on b and c; unblock from c
/// releases it on all three; purge drops held mail on every node and
/// reports the total.
#[test]
fn block_unblock_and_purge_act_on_every_node() {
    let pg = Pg::shared();
    let url = pg.database();
    let sink = Sink::start();
    let nodes = three(sink.port(), &url);
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);

    let d = a.json(&["block", me(), "--note", "cluster test"]);
    assert_eq!(
        (d["old_state"].as_str(), d["new_state"].as_str()),
        (Some("ok"), Some("ko"))
    );
    // Every node applied it before block returned (it waits for them).
    for n in &nodes {
        assert_eq!(n.local()["state"], "ko", "node {}", n.name);
    }
    b.send("on b");
    c.send("on c");
    assert_eq!((b.held(), c.held()), (1, 1));
    // The cluster's status sums the nodes' held mail.
    wait_until(WAIT, || a.json(&["status", me()])["queue"]["held"] == 2);
    let h = c.json(&["history", me()]);
    assert_eq!(h["events"][0]["note"], "cluster test");

    let u = c.json(&["unblock", me()]);
    assert_eq!(
        (u["new_state"].as_str(), u["released"].as_i64()),
        (Some("ok"), Some(2))
    );
    let got = sink.wait_for(2, WAIT);
    assert_eq!(got.len(), 2);
    let mut s = subjects(&sink);
    s.sort();
    assert_eq!(s, ["on b", "on c"]);
    for n in &nodes {
        assert_eq!(n.local()["state"], "ok");
    }

    // Purge: held mail on all three dropped, the total reported.
    a.json(&["block", me()]);
    for n in &nodes {
        n.send(&format!("purged on {}", n.name));
    }
    let p = b.json(&["purge", me(), "--yes"]);
    assert_eq!(
        (p["dropped"].as_i64(), p["new_state"].as_str()),
        (Some(3), Some("ok")),
        "{p}"
    );
    for n in &nodes {
        assert_eq!(n.held(), 0, "node {}", n.name);
        assert_eq!(n.local()["state"], "ok");
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.messages().len(), 2, "nothing purged went out");
    // mailq-ctl cluster: every node, in step, nothing pending.
    let k = a.json(&["cluster"]);
    let names: Vec<&str> = k["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    wait_until(WAIT, || {
        a.json(&["cluster"])["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["lag"] == 0 && n["pending_commands"] == 0 && n["active"] == true)
    });
}

/// max_per_day = 100, three nodes sending 60 each at once (no pacing): at
/// most 100 go out (the bound is 0 while every node syncs, docs/cluster.md),
/// the rest is held, and the account is ko/limit on every node.
#[test]
fn daily_limit_holds_across_nodes_under_unpaced_bursts() {
    let pg = Pg::shared();
    let url = pg.database();
    let sink = Sink::start();
    let nodes = three(sink.port(), &url);
    nodes[0].json(&["set", me(), "--max-per-day", "100"]);
    // Every node has the limit before the burst.
    wait_until(WAIT, || {
        nodes
            .iter()
            .all(|n| n.local()["max_per_day"].as_i64() == Some(100))
    });
    std::thread::scope(|s| {
        for n in &nodes {
            s.spawn(move || {
                for i in 0..60 {
                    n.send(&format!("{} {i}", n.name));
                }
            });
        }
    });
    // Settled: the account blocked everywhere, nothing left queued.
    wait_until(Duration::from_secs(60), || {
        nodes.iter().all(|n| {
            let l = n.local();
            l["state"] == "ko" && n.env.count("state IN ('queued', 'sending')") == 0
        })
    });
    std::thread::sleep(Duration::from_millis(500));
    let sent = sink.messages().len() as i64;
    let held: i64 = nodes.iter().map(Node::held).sum();
    assert!(sent <= 100, "{sent} sent past max_per_day = 100");
    assert!(sent >= 50, "the cluster let through only {sent} of 100");
    assert_eq!(sent + held, 180, "every message sent or held");
    for n in &nodes {
        let l = n.local();
        assert_eq!(
            (l["state"].as_str(), l["reason"].as_str()),
            (Some("ko"), Some("limit"))
        );
    }
    let s = nodes[1].json(&["status", me()]);
    assert_eq!(
        (s["state"].as_str(), s["reason"].as_str()),
        (Some("ko"), Some("limit"))
    );
    assert_eq!(s["changed_by"], "scriptmail");
    wait_until(WAIT, || {
        nodes[2].json(&["status", me()])["queue"]["held"] == held
    });
}

/// `status` is the sum of the three nodes' figures; the mails in error of
/// every node are listed; one daily report goes out for the cluster.
#[test]
fn status_sums_nodes_lists_every_error_and_reports_once() {
    let pg = Pg::shared();
    let url = pg.database();
    let smtp = FakeSmtp::start();
    smtp.on(
        "RCPT",
        Some("<bad@"),
        None,
        Action::reply(550, "5.1.1 no such user"),
    );
    let nodes = three(smtp.port(), &url);
    nodes[0].json(&["set", me(), "--report-to", "webmaster@example.com"]);
    for (i, n) in nodes.iter().enumerate() {
        for k in 0..=i {
            n.send(&format!("good {} {k}", n.name));
        }
        assert_ok(
            &n.env
                .submit(&["-t", "-i"], &simple_message("bad@example.com", "bad")),
        );
    }
    // 1 + 2 + 3 sent, one error per node.
    smtp.wait_for(6, WAIT);
    for n in &nodes {
        wait_until(WAIT, || {
            n.env.count("state IN ('queued', 'sending', 'deferred')") == 0
        });
    }
    let local_sum =
        |key: &str| -> i64 { nodes.iter().map(|n| n.local()[key].as_i64().unwrap()).sum() };
    assert_eq!((local_sum("sent_total"), local_sum("error_total")), (6, 3));
    wait_until(WAIT, || {
        let s = nodes[1].json(&["status", me()]);
        s["sent_total"] == 6 && s["error_total"] == 3 && s["today"]["submitted"] == 9
    });
    let s = nodes[2].json(&["status", me()]);
    assert_eq!(
        (
            s["sent_today"].as_i64(),
            s["today"]["sent"].as_i64(),
            s["today"]["errors"].as_i64()
        ),
        (Some(6), Some(6), Some(3))
    );
    let stats = nodes[0].json(&["stats", me(), "--days", "2"]);
    assert_eq!(stats["days"][1]["sent"], 6, "{stats}");
    let errors = nodes[0].json(&["errors", me()]);
    let qids: std::collections::HashSet<String> = errors["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["qid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(qids.len(), 3, "one mail in error from each node: {errors}");
    for n in &nodes {
        let local: String = n
            .env
            .db()
            .query_row("SELECT qid FROM errors", [], |r| r.get(0))
            .unwrap();
        assert!(qids.contains(&local), "node {}'s error listed", n.name);
    }
    // The report timer runs on every node: one report for the cluster.
    let today =
        scriptmail::clock::format_day(scriptmail::clock::day_of(scriptmail::clock::now_ms()));
    let statuses: Vec<String> = nodes
        .iter()
        .map(|n| {
            let r = n.json(&["report", "--send", "--day", &today]);
            r["reports"][0]["status"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(statuses, ["queued", "already-sent", "already-sent"]);
    let got = smtp.wait_for(7, WAIT);
    let report = got
        .iter()
        .find(|m| m.rcpt_to == ["webmaster@example.com"])
        .expect("the report");
    for n in &nodes {
        let qid: String = n
            .env
            .db()
            .query_row("SELECT qid FROM errors", [], |r| r.get(0))
            .unwrap();
        assert!(
            report.text().contains(&qid),
            "report lists node {}'s error",
            n.name
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(smtp.delivered().len(), 7, "one report, not three");
}

/// PostgreSQL stopped: submissions on every node exit 0 and relay (past
/// the lease by the node's own count: max_per_day = 2 lets each node send
/// 2, and the node that goes past it blocks the account itself), mailq-ctl
/// says the store is unreachable (69) and --local still works. Once it is
/// back the figures are pushed, that block becomes the cluster's, and a
/// block issued afterwards reaches every node.
#[test]
fn nodes_relay_without_the_store_and_catch_up_after_it_restarts() {
    let pg = Pg::private();
    let url = pg.database();
    let sink = Sink::start();
    let nodes = three(sink.port(), &url);
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    a.json(&["set", me(), "--max-per-day", "2"]);
    wait_until(WAIT, || {
        nodes
            .iter()
            .all(|n| n.local()["max_per_day"].as_i64() == Some(2))
    });
    pg.stop();
    for n in &nodes {
        n.send(&format!("outage {}", n.name));
    }
    a.send("outage a 2");
    // Gated within the lease, then let through by each node's own count.
    sink.wait_for(4, WAIT);
    a.send("outage a 3");
    assert_eq!(a.held(), 1, "a's third is past the limit by its own count");
    let l = a.local();
    assert_eq!(
        (l["state"].as_str(), l["reason"].as_str()),
        (Some("ko"), Some("limit"))
    );
    assert_eq!(b.local()["state"], "ok");
    let out = a.ctl(&["block", me()]);
    assert_eq!(out.status.code(), Some(69), "{}", stderr(&out));
    let line = stderr(&out);
    assert!(line.contains("cluster store unreachable"), "{line}");
    assert!(line.contains("--local"), "{line}");
    assert_eq!(a.local()["sent_total"], 2);

    pg.restart();
    // Every node reconnects and pushes what it did meanwhile; a's block
    // becomes the cluster's.
    wait_until(WAIT, || {
        let s = a.json(&["status", me()]);
        s["sent_total"] == 4 && s["state"] == "ko"
    });
    for n in &nodes {
        wait_until(WAIT, || n.local()["state"] == "ko");
    }
    let u = c.json(&["unblock", me()]);
    assert_eq!(u["released"], 1);
    a.json(&["set", me(), "--max-per-day", "0"]);
    a.json(&["block", me(), "--note", "after the restart"]);
    for n in &nodes[1..] {
        assert_eq!(n.local()["state"], "ko");
        n.send("after restart");
        assert_eq!(n.held(), 1);
    }
}

/// relayd of node b killed with kill -9 while a purge is pending: it
/// carries it out after its restart — dropping the mail submitted before
/// the purge was asked for, keeping (and then relaying) the mail accepted
/// after it.
#[test]
fn a_node_killed_during_a_purge_carries_it_out_after_restart() {
    let pg = Pg::shared();
    let url = pg.database();
    let sink = Sink::start();
    let mut a = Node::new("a", sink.port(), &url);
    let mut b = Node::new("b", sink.port(), &url);
    a.start();
    b.start();
    a.json(&["block", me()]);
    b.send("before the purge");
    assert_eq!(b.held(), 1);
    b.kill9();
    // b is not there to do its part: the purge waits for it (a lease at
    // most), and the account stays purging until b has.
    let p = a.json(&["purge", me(), "--yes"]);
    assert_eq!(p["new_state"], "purging", "{p}");
    b.send("after the purge");
    assert_eq!(b.held(), 2);
    let k = a.json(&["cluster"]);
    let bk = k["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "b")
        .unwrap()
        .clone();
    assert!(bk["pending_commands"].as_i64().unwrap() >= 1, "{k}");
    let s = a.json(&["status", me()]);
    assert_eq!(
        (s["state"].as_str(), s["pending_nodes"].clone()),
        (Some("purging"), serde_json::json!(["b"]))
    );

    b.start();
    let got = sink.wait_for(1, WAIT);
    assert_eq!(got[0].header("Subject").as_deref(), Some("after the purge"));
    wait_until(WAIT, || a.json(&["status", me()])["state"] == "ok");
    wait_until(WAIT, || {
        a.json(&["status", me()])["pending_nodes"] == serde_json::json!([])
    });
    assert_eq!(b.held(), 0);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(subjects(&sink), ["after the purge"]);
    let h = a.json(&["history", me()]);
    let last = h["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["new_state"].as_str(), last["reason"].as_str()),
        (Some("ok"), Some("purge"))
    );
}

/// The schema: `cluster init` creates it, `--sql` prints it, and a store
/// newer than this program is refused (78) with a clear message.
#[test]
fn cluster_init_and_a_newer_schema_refused() {
    let pg = Pg::shared();
    let url = pg.database();
    let sink = Sink::start();
    let a = Node::new("a", sink.port(), &url);
    let init = a.json(&["cluster", "init"]);
    assert_eq!(
        (init["found"].clone(), init["version"].as_i64()),
        (Value::Null, Some(1))
    );
    let again = a.json(&["cluster", "init"]);
    assert_eq!(again["found"], 1);
    let sql = stdout(&a.ctl(&["cluster", "init", "--sql"]));
    assert!(
        sql.contains("CREATE TABLE accounts") && sql.contains("COMMIT;"),
        "{sql}"
    );
    let mut c = Pg::connect(&url);
    c.batch_execute("UPDATE scriptmail_schema SET version = 99")
        .unwrap();
    let out = a.ctl(&["status", me()]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("newer than this scriptmail supports"),
        "{}",
        stderr(&out)
    );
    // Not a cluster node: the cluster verbs say so.
    let alone = Env::new(sink.port());
    let out = alone.ctl(&["cluster"]);
    assert_eq!(out.status.code(), Some(78));
    assert!(
        stderr(&out).contains("no [cluster] url"),
        "{}",
        stderr(&out)
    );
}

/// TLS and a least-privilege role (docs/cluster.md): the owner creates the
/// schema and the grants `cluster init --sql --grant` prints; a node whose
/// role has only those privileges, with its password in password_file,
/// runs over `verify-full` — relayd syncs and pushes, mailq-ctl changes
/// state. A server that takes TLS only refuses `tls = none`; a certificate
/// from another CA is refused; `require` encrypts without checking it.
#[test]
fn tls_verify_full_and_a_least_privilege_role() {
    let (pg, certs) = Pg::private_tls();
    let url = pg.database();
    let db = Pg::db_name(&url).to_string();
    let sink = Sink::start();
    let pw = pg.dir().join("node.password");
    std::fs::write(&pw, "s3cret-node\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let node_url = format!("postgresql://scriptmail_node@localhost:{}/{db}", pg.port);
    let node = |name: &str, tls: &str, ca: &std::path::Path| {
        let cluster = format!(
            "[cluster]\nurl = \"{node_url}\"\nnode = \"{name}\"\nsync_interval = \"200ms\"\n\
             password_file = \"{}\"\ntls = \"{tls}\"\nca_file = \"{}\"\n",
            pw.display(),
            ca.display()
        );
        Node {
            name: name.to_string(),
            env: Env::with_sections(sink.port(), "", &cluster),
            relayd: None,
            url: pg.url(&db),
        }
    };
    let mut a = node("a", "verify-full", &certs.ca);
    // The owner (the superuser here) runs what `init --sql --grant` prints.
    let out = a.ctl(&["cluster", "init", "--sql", "--grant", "scriptmail_node"]);
    assert_ok(&out);
    let mut owner = pg.client(&db);
    owner
        .batch_execute("CREATE ROLE scriptmail_node LOGIN PASSWORD 's3cret-node'")
        .unwrap();
    owner.batch_execute(&stdout(&out)).unwrap();
    // No DDL for the nodes' role.
    let out = a.ctl(&["cluster", "init"]);
    assert_ok(&out);

    a.relayd = Some(a.env.relayd());
    wait_until(WAIT, || {
        owner
            .query_one(
                "SELECT count(*) FROM nodes WHERE name = 'a' AND last_sync IS NOT NULL",
                &[],
            )
            .unwrap()
            .get::<_, i64>(0)
            > 0
    });
    a.send("over tls");
    sink.wait_for(1, WAIT);
    wait_until(WAIT, || a.json(&["status", me()])["sent_total"] == 1);
    let d = a.json(&["block", me()]);
    assert_eq!(d["new_state"], "ko");
    // Every connection of the node's role is encrypted.
    let plain: i64 = owner
        .query_one(
            "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s ON s.pid = a.pid
             WHERE a.usename = 'scriptmail_node' AND NOT s.ssl",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(plain, 0);
    // What the role may not do.
    let mut as_node = postgres::Client::connect(
        &format!(
            "host={} port={} user=scriptmail_node password=s3cret-node dbname={db}",
            pg.dir().display(),
            pg.port
        ),
        postgres::NoTls,
    )
    .unwrap();
    let mut refused = |sql: &str| -> String {
        let e = as_node_exec(&mut as_node, sql);
        e.as_db_error()
            .map(|d| d.message().to_string())
            .unwrap_or_default()
    };
    assert!(refused("DROP TABLE accounts").contains("must be owner"));
    assert!(refused("DELETE FROM accounts").contains("permission denied"));
    assert!(refused("TRUNCATE changes").contains("permission denied"));
    assert!(refused("CREATE TABLE x (y int)").contains("permission denied"));

    let none = node("n", "none", &certs.ca);
    let out = none.ctl(&["status", me()]);
    assert_eq!(out.status.code(), Some(69), "{}", stderr(&out));
    assert!(stderr(&out).contains("pg_hba.conf"), "{}", stderr(&out));
    let wrong = node("w", "verify-full", &certs.other_ca);
    let out = wrong.ctl(&["status", me()]);
    assert_eq!(out.status.code(), Some(69), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cluster store unreachable"),
        "{}",
        stderr(&out)
    );
    let require = node("r", "require", &certs.other_ca);
    assert_eq!(require.json(&["status", me()])["state"], "ko");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = require.ctl(&["status", me()]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
}

fn as_node_exec(c: &mut postgres::Client, sql: &str) -> postgres::Error {
    c.batch_execute(sql).expect_err(sql)
}

/// One message, wherever it is: `release QID` and `delete QID` from
/// another node; the held mail of every node by domain, and a release
/// of the part a filter matches.
#[test]
fn messages_and_held_mail_of_other_nodes() {
    let pg = Pg::shared();
    let url = pg.database();
    let sink = Sink::start();
    let nodes = three(sink.port(), &url);
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    a.json(&["block", me()]);
    let send_to = |n: &Node, to: &str, subject: &str| {
        assert_ok(&n.env.submit(&["-t", "-i"], &simple_message(to, subject)));
    };
    send_to(b, "x@gmail.com", "b gmail");
    send_to(c, "y@example.org", "c org");
    send_to(c, "z@example.org", "c org 2");
    let qid = |n: &Node, subject: &str| -> String {
        n.env
            .db()
            .query_row(
                "SELECT qid FROM messages WHERE subject = ?1",
                [subject],
                |r| r.get(0),
            )
            .unwrap()
    };
    wait_until(WAIT, || a.json(&["held", me()])["held"] == 3);
    let h = a.json(&["held", me()]);
    let domains: Vec<(String, i64)> = h["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["domain"].as_str().unwrap().to_string(),
                d["held"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        domains,
        [("example.org".to_string(), 2), ("gmail.com".to_string(), 1)]
    );

    // A filter goes to every node; only b has gmail mail.
    let r = a.json(&["release", me(), "--domain", "gmail.com"]);
    assert_eq!(
        (r["released"].as_i64(), r["held"].as_i64()),
        (Some(1), Some(2)),
        "{r}"
    );
    assert_eq!(
        sink.wait_for(1, WAIT)[0].header("Subject").as_deref(),
        Some("b gmail")
    );
    // One message of c, from a.
    let q = qid(c, "c org");
    let m = a.json(&["release", &q]);
    assert_eq!(
        (m["qid"].as_str(), m["account"].as_str()),
        (Some(q.as_str()), Some(me()))
    );
    sink.wait_for(2, WAIT);
    let q2 = qid(c, "c org 2");
    let d = b.json(&["delete", &q2]);
    assert_eq!(
        (d["old_state"].as_str(), d["new_state"].clone()),
        (Some("held"), Value::Null)
    );
    assert_eq!(c.held(), 0);
    let out = a.ctl(&["release", "0123456789ABCDEF0123"]);
    assert_eq!(out.status.code(), Some(67), "{}", stderr(&out));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sink.messages().len(), 2);
}

/// The error-ratio rule over every node: no node alone has the sample,
/// the cluster does, and its ratio is above the threshold — the account
/// goes to `bounce` on every node.
#[test]
fn the_error_ratio_rule_counts_every_node() {
    let pg = Pg::shared();
    let url = pg.database();
    let smtp = FakeSmtp::start();
    smtp.on(
        "RCPT",
        Some("<bad@"),
        None,
        Action::reply(550, "5.1.1 no such user"),
    );
    let top = "limits.bounce_ratio = 0.4\nlimits.bounce_min_sample = 4";
    let nodes: Vec<Node> = ["a", "b", "c"]
        .iter()
        .map(|n| {
            let mut node = Node::with(n, smtp.port(), &url, top);
            node.start();
            node
        })
        .collect();
    for n in &nodes {
        n.send("good");
        assert_ok(
            &n.env
                .submit(&["-t", "-i"], &simple_message("bad@example.com", "bad")),
        );
        // Alone: a sample of 2, below 4: no node trips on its own.
        wait_until(WAIT, || {
            n.env.count("state IN ('queued', 'sending', 'deferred')") == 0
        });
    }
    // Together: 3 errors in 6, above 40 %.
    wait_until(WAIT, || {
        nodes.iter().all(|n| n.local()["state"] == "bounce")
    });
    let s = nodes[0].json(&["status", me()]);
    assert_eq!(
        (s["state"].as_str(), s["reason"].as_str()),
        (Some("bounce"), Some("bounce"))
    );
    assert!(
        s["note"].as_str().unwrap().contains("over the cluster"),
        "{s}"
    );
}

/// `cluster retire`: a node gone for good is no longer counted or waited
/// for; an active one cannot be retired.
#[test]
fn retiring_a_node_that_is_gone() {
    let pg = Pg::shared();
    let url = pg.database();
    let sink = Sink::start();
    let mut a = Node::new("a", sink.port(), &url);
    a.start();
    let mut c = Pg::connect(&url);
    c.batch_execute(as_me(
        "INSERT INTO nodes (name, last_sync, revision) VALUES ('gone', now() - interval '1 day', 0);
         INSERT INTO node_accounts (account, node, sent_total, error_total, held, queued, deferred, sending)
             VALUES ('root', 'gone', 5, 0, 7, 0, 0, 0);
         INSERT INTO accounts (name, since, first_seen) VALUES ('root', 0, 0) ON CONFLICT DO NOTHING;",
    ))
    .unwrap();
    let k = a.json(&["cluster"]);
    let gone = k["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "gone")
        .unwrap()
        .clone();
    assert_eq!(
        (gone["active"].as_bool(), gone["retired"].as_bool()),
        (Some(false), Some(false))
    );
    assert_eq!(a.json(&["status", me()])["queue"]["held"], 7);
    let out = a.ctl(&["cluster", "retire", "a"]);
    assert_eq!(out.status.code(), Some(77), "{}", stderr(&out));
    let r = a.json(&["cluster", "retire", "gone"]);
    assert_eq!(r["retired"], true);
    let s = a.json(&["status", me()]);
    // Its held mail is forgotten, its history kept.
    assert_eq!(
        (s["queue"]["held"].as_i64(), s["sent_total"].as_i64()),
        (Some(0), Some(5))
    );
    let text = stdout(&a.ctl(&["cluster"]));
    assert!(text.contains("retired") && text.contains("a *"), "{text}");
}

/// A node away longer than the change log keeps (7 days; the prune is
/// simulated): it takes every account's current state from the store when
/// it comes back, and releases the held mail of an account that sends.
#[test]
fn a_node_away_longer_than_the_log_takes_the_current_state() {
    let pg = Pg::shared();
    let url = pg.database();
    let sink = Sink::start();
    let mut a = Node::new("a", sink.port(), &url);
    let mut b = Node::new("b", sink.port(), &url);
    a.start();
    b.start();
    a.json(&["block", me()]);
    b.send("held on b");
    b.kill9();
    // While b is away: unblocked, then `daemon` blocked; the log pruned.
    a.json(&["unblock", me()]);
    a.json(&["block", "daemon"]);
    let mut c = Pg::connect(&url);
    c.batch_execute(
        "UPDATE meta SET value = (SELECT max(revision) FROM changes) WHERE key = 'pruned';
         DELETE FROM acks; DELETE FROM changes;",
    )
    .unwrap();
    b.start();
    let got = sink.wait_for(1, WAIT);
    assert_eq!(got[0].header("Subject").as_deref(), Some("held on b"));
    assert_eq!(b.local()["state"], "ok");
    assert_eq!(b.json(&["--local", "status", "daemon"])["state"], "ko");
}

/// The panel API in cluster mode (docs/api.md; issue 15): `scriptmail
/// api` runs on node a only, and acts on the whole cluster through it —
/// BLOCK through a's API holds mail submitted on b (nothing reaches the
/// sink) and b's `mailq-ctl status` says `ko`; a's API counts b's sent and
/// held mail, once b has pushed its figures; UNBLOCK through a's API
/// releases b's held mail to the sink. An account token still gets 404
/// for another account the cluster knows, exactly as for none.
#[test]
fn the_api_on_one_node_acts_on_the_whole_cluster() {
    let pg = Pg::shared();
    let url = pg.database();
    let sink = Sink::start();
    let port = closed_port();
    let api = format!("api.listen = \"127.0.0.1:{port}\"\napi.tokens_file = \"api-tokens\"");
    let mut a = Node::with("a", sink.port(), &url, &api);
    let mut b = Node::new("b", sink.port(), &url);
    a.start();
    b.start();
    let _api = start_api(&a.env, port);
    let schemas = Schemas::load();
    let panel = Client {
        port,
        auth: format!("Bearer {}", token(&a.env, "panel", as_me("account:root"))),
        schemas: &schemas,
    };
    let admin = Client {
        port,
        auth: format!("Bearer {}", token(&a.env, "ops", "admin")),
        schemas: &schemas,
    };
    let email = as_me("/hosting/web/root/email");
    let status = as_me("/v1/accounts/root");

    // Mail sent on b is counted by a's API: a itself sent nothing.
    b.send("sent on b");
    sink.wait_for(1, WAIT);
    wait_until(WAIT, || panel.ok("GET", email, None, "Email")["sent"] == 1);
    let e = panel.ok("GET", email, None, "Email");
    assert_eq!(
        (e["state"].as_str(), e["sentToday"].as_i64()),
        (Some("ok"), Some(1)),
        "{e}"
    );
    assert_eq!(a.local()["sent_total"], 0, "a sent none of it");

    // BLOCK on a's API: b applied it before the answer (the cluster
    // authority waits for the nodes' acknowledgements).
    let id = request(&panel, me(), "BLOCK");
    let t = panel.ok("GET", &format!("/v1/tasks/{id}"), None, "Task");
    assert_eq!(
        (t["result"]["new_state"].as_str(), t["actor"].as_str()),
        (Some("ko"), Some("api:panel")),
        "{t}"
    );
    assert_eq!(b.local()["state"], "ko");
    assert_eq!(b.json(&["status", me()])["state"], "ko");
    let h = b.json(&["history", me()]);
    assert!(
        h["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["new_state"] == "ko" && e["actor"] == "api:panel"),
        "the API's block in the cluster's history: {h}"
    );
    b.send("held on b 1");
    b.send("held on b 2");
    assert_eq!((b.held(), a.held()), (2, 0));
    // a's API counts b's held mail once b has pushed it.
    wait_until(WAIT, || {
        panel.ok("GET", status, None, "Status")["queue"]["held"] == 2
    });
    let s = panel.ok("GET", status, None, "Status");
    assert_eq!(
        (s["state"].as_str(), s["sent_total"].as_i64()),
        (Some("ko"), Some(1)),
        "{s}"
    );
    assert_eq!(panel.ok("GET", email, None, "Email")["state"], "ko");
    let held = panel.ok("GET", as_me("/v1/accounts/root/held"), None, "Held");
    assert_eq!(held["held"], 2, "{held}");
    // Still held on b (a sync cycle later): nothing of it went out.
    assert_eq!(b.held(), 2);
    assert_eq!(subjects(&sink), ["sent on b"], "nothing held went out");

    // UNBLOCK on a's API: b's held mail goes to the sink.
    let id = request(&panel, me(), "UNBLOCK");
    let t = panel.ok("GET", &format!("/v1/tasks/{id}"), None, "Task");
    assert_eq!(
        (
            t["result"]["new_state"].as_str(),
            t["result"]["released"].as_i64()
        ),
        (Some("ok"), Some(2)),
        "{t}"
    );
    sink.wait_for(3, WAIT);
    let mut got = subjects(&sink);
    got.sort();
    assert_eq!(got, ["held on b 1", "held on b 2", "sent on b"]);
    assert_eq!((b.held(), b.local()["state"].as_str()), (0, Some("ok")));
    wait_until(WAIT, || {
        let e = panel.ok("GET", email, None, "Email");
        e["sent"] == 3 && e["sentToday"] == 3 && e["state"] == "ok"
    });

    // Another account the cluster knows (blocked from b): the admin token
    // sees it through a's API, the account token gets the answer for an
    // account that does not exist, and cannot unblock it.
    let other = if me() == "daemon" { "bin" } else { "daemon" };
    b.json(&["block", other]);
    let other_email = format!("/hosting/web/{other}/email");
    assert_eq!(admin.ok("GET", &other_email, None, "Email")["state"], "ko");
    for (path, missing) in [
        (other_email.clone(), "/hosting/web/shop8/email".to_string()),
        (
            format!("/v1/accounts/{other}"),
            "/v1/accounts/shop8".to_string(),
        ),
        (
            format!("/v1/accounts/{other}/held"),
            "/v1/accounts/shop8/held".to_string(),
        ),
    ] {
        let theirs = panel.call("GET", &path, None);
        let none = admin.call("GET", &missing, None);
        assert_eq!((theirs.status, none.status), (404, 404), "{path}");
        assert_eq!(
            theirs.text().replace(other, "X"),
            none.text().replace("shop8", "X"),
            "{path}"
        );
    }
    let msg = panel.refused(
        "POST",
        &format!("{other_email}/request"),
        Some(r#"{"action": "UNBLOCK"}"#),
        404,
    );
    assert_eq!(msg, format!("no such account: {other}"));
    assert_eq!(admin.ok("GET", &other_email, None, "Email")["state"], "ko");
    assert_eq!(
        b.json(&["--local", "status", other])["state"],
        "ko",
        "untouched"
    );
}
