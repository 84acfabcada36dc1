//! The daily report in cluster mode (docs/cluster.md, "The daily
//! report"): the mails in error, expired held mail and state changes of
//! every node, and one report per account and day for the whole cluster —
//! the node that claims the `(account, day)` row first queues it (the
//! timer runs on every node; the others find it claimed).

use postgres::Row;

use super::authority::ClusterAuthority;
use super::{ClusterError, reads};
use crate::clock::DAY_MS;
use crate::report::{Ledger, MAX_ITEMS, Report, ReportError};
use crate::store::{EnqueuePolicy, ExpiredMail, NewMessage, ReportAccount, StoreError};

impl From<ClusterError> for ReportError {
    fn from(e: ClusterError) -> ReportError {
        match e {
            ClusterError::Store(s) => ReportError::Store(s),
            other => ReportError::Unavailable(other.to_string()),
        }
    }
}

fn expired_from(r: &Row) -> ExpiredMail {
    ExpiredMail {
        at: r.get(0),
        created: r.get(1),
        qid: r.get(2),
        sender: r.get(3),
        recipients: r.get(4),
        subject: r.get(5),
        script: r.get(6),
    }
}

impl Ledger for ClusterAuthority {
    fn report_accounts(&mut self, only: Option<&str>) -> Result<Vec<ReportAccount>, ReportError> {
        let rows = self.with(|c, _, _| {
            let rows = match only {
                None => c.query(
                    "SELECT name, report_to FROM accounts
                     WHERE report_to IS NOT NULL AND report_to <> '' ORDER BY name",
                    &[],
                )?,
                Some(name) => {
                    let rows = c.query(
                        "SELECT name, coalesce(report_to, '') FROM accounts WHERE name = $1",
                        &[&name],
                    )?;
                    if rows.is_empty() {
                        return Err(StoreError::NoAccount(name.to_string()).into());
                    }
                    rows
                }
            };
            Ok(rows)
        })?;
        Ok(rows
            .iter()
            .map(|r| ReportAccount {
                id: 0,
                name: r.get(0),
                report_to: r.get(1),
            })
            .collect())
    }

    fn report_of(&mut self, a: &ReportAccount, day: i64) -> Result<Report, ReportError> {
        let (from, to) = (day * DAY_MS, (day + 1) * DAY_MS);
        let name = a.name.as_str();
        Ok(self.with(|c, _, _| {
            let errors = c
                .query(
                    "SELECT at, qid, rcpt, kind, message, subject, script FROM errors
                     WHERE account = $1 AND at >= $2 AND at < $3
                     ORDER BY at, node, qid, rcpt LIMIT $4",
                    &[&name, &from, &to, &MAX_ITEMS],
                )?
                .iter()
                .map(reads::error_from)
                .collect();
            let errors_total: i64 = c
                .query_one(
                    "SELECT count(*) FROM errors WHERE account = $1 AND at >= $2 AND at < $3",
                    &[&name, &from, &to],
                )?
                .get(0);
            let expired = c
                .query(
                    "SELECT at, created, qid, sender, recipients, subject, script FROM expired
                     WHERE account = $1 AND at >= $2 AND at < $3 ORDER BY at, node, qid LIMIT $4",
                    &[&name, &from, &to, &MAX_ITEMS],
                )?
                .iter()
                .map(expired_from)
                .collect();
            let expired_total: i64 = c
                .query_one(
                    "SELECT count(*) FROM expired WHERE account = $1 AND at >= $2 AND at < $3",
                    &[&name, &from, &to],
                )?
                .get(0);
            Ok(Report {
                account: a.name.clone(),
                report_to: (!a.report_to.is_empty()).then(|| a.report_to.clone()),
                day,
                errors,
                errors_total,
                expired,
                expired_total,
                events: reads::events_between(c, name, from, to)?,
            })
        })?)
    }

    /// Claim the `(account, day)` row, then queue the report here; a claim
    /// whose mail could not be queued is given back.
    fn queue_report(
        &mut self,
        m: &NewMessage<'_>,
        a: &ReportAccount,
        day: i64,
        now: i64,
    ) -> Result<Result<(), String>, ReportError> {
        let node = self.node().to_string();
        Ok(self.with(|c, store, _| {
            let claimed = c.execute(
                "INSERT INTO reports (account, day, node, qid) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
                &[&a.name, &day, &node, &m.qid],
            )? == 1;
            if !claimed {
                let earlier: String = c
                    .query_one(
                        "SELECT qid FROM reports WHERE account = $1 AND day = $2",
                        &[&a.name, &day],
                    )?
                    .get(0);
                return Ok(Err(earlier));
            }
            if let Err(e) = store.enqueue(m, EnqueuePolicy::default(), now) {
                c.execute(
                    "DELETE FROM reports WHERE account = $1 AND day = $2 AND qid = $3",
                    &[&a.name, &day, &m.qid],
                )?;
                return Err(e.into());
            }
            Ok(Ok(()))
        })?)
    }
}
