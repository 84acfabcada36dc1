//! What the sweep deletes: held mail past `queue.hold_max_age` (it
//! becomes `expired`) and history past `queue.history_days`, in chunks.

use rusqlite::params;

use super::counters::{Counter, bump_daily};
use super::messages::delete_message_rows;
use super::{Result, Store};
use crate::clock;

/// What the housekeeping part of a sweep deleted.
#[derive(Debug, Clone, Copy, Default)]
pub struct Housekeeping {
    pub messages: u64,
    pub bodies: u64,
    pub errors: u64,
    pub events: u64,
    pub daily: u64,
    pub hourly: u64,
}

impl Store {
    /// Expire up to `limit` held messages created before `cutoff`: they
    /// become `expired` (metadata kept for the report, body deleted) and are
    /// counted in `daily.expired`. Returns (account, count) per account.
    pub fn expire_held(
        &mut self,
        cutoff: i64,
        now: i64,
        limit: usize,
    ) -> Result<Vec<(String, u64)>> {
        macro_rules! victims {
            () => {
                concat!(
                    "SELECT id FROM messages WHERE ",
                    pending!(),
                    " AND state = 'held' AND created < ?1 LIMIT ?2"
                )
            };
        }
        let args = params![cutoff, limit as i64];
        let tx = self.write_tx()?;
        let per_account: Vec<(i64, u64)> = tx
            .prepare_cached(concat!(
                "SELECT account_id, count(*) FROM messages WHERE id IN (",
                victims!(),
                ") GROUP BY account_id"
            ))?
            .query_map(args, |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?
            .collect::<rusqlite::Result<_>>()?;
        // Bodies first, while the chunk is still `held`.
        tx.prepare_cached(concat!(
            "DELETE FROM bodies WHERE message_id IN (",
            victims!(),
            ")"
        ))?
        .execute(args)?;
        tx.prepare_cached(concat!(
            "UPDATE messages SET state = 'expired', done_at = ?3, next_attempt = ?3
             WHERE id IN (",
            victims!(),
            ")"
        ))?
        .execute(params![cutoff, limit as i64, now])?;
        let mut out = Vec::with_capacity(per_account.len());
        for (account_id, n) in per_account {
            bump_daily(&tx, account_id, now, Counter::Expired, n as i64)?;
            let name: String = tx
                .prepare_cached("SELECT name FROM accounts WHERE id = ?1")?
                .query_row([account_id], |r| r.get(0))?;
            out.push((name, n));
        }
        tx.commit()?;
        Ok(out)
    }

    /// Delete what is older than `history_cutoff` (ms): done messages,
    /// mails in error, events (always keeping each account's newest, which
    /// explains its current state), daily rows; hourly rows before
    /// `hour_cutoff`; and any body left over by a done message. Works in
    /// chunks of `chunk` rows or accounts per transaction.
    pub fn housekeep(
        &mut self,
        history_cutoff: i64,
        hour_cutoff: i64,
        chunk: usize,
    ) -> Result<Housekeeping> {
        let mut h = Housekeeping::default();
        let day_cutoff = clock::day_of(history_cutoff);
        // Done messages, through the `messages_done` index.
        loop {
            let tx = self.write_tx()?;
            let ids: Vec<i64> = tx
                .prepare_cached(
                    "SELECT id FROM messages WHERE done_at IS NOT NULL AND done_at < ?1 LIMIT ?2",
                )?
                .query_map(params![history_cutoff, chunk as i64], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            for id in &ids {
                delete_message_rows(&tx, *id)?;
            }
            tx.commit()?;
            h.messages += ids.len() as u64;
            if ids.len() < chunk {
                break;
            }
        }
        // Per-account tables, through their (account_id, ...) keys: a search
        // per account instead of a scan of millions of daily rows.
        let ids: Vec<i64> = self
            .conn
            .prepare_cached("SELECT id FROM accounts ORDER BY id")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for group in ids.chunks(chunk.max(1)) {
            let tx = self.write_tx()?;
            for &id in group {
                h.errors += tx
                    .prepare_cached("DELETE FROM errors WHERE account_id = ?1 AND at < ?2")?
                    .execute(params![id, history_cutoff])? as u64;
                h.events += tx
                    .prepare_cached(
                        "DELETE FROM events WHERE account_id = ?1 AND at < ?2
                         AND id <> (SELECT id FROM events WHERE account_id = ?1
                                    ORDER BY at DESC, id DESC LIMIT 1)",
                    )?
                    .execute(params![id, history_cutoff])? as u64;
                h.daily += tx
                    .prepare_cached("DELETE FROM daily WHERE account_id = ?1 AND day < ?2")?
                    .execute(params![id, day_cutoff])? as u64;
                h.hourly += tx
                    .prepare_cached("DELETE FROM hourly WHERE account_id = ?1 AND hour < ?2")?
                    .execute(params![id, hour_cutoff])? as u64;
            }
            tx.commit()?;
        }
        // Bodies of done (or vanished) messages: the relay deletes them as
        // it goes, so this only repairs what a crash left behind. `bodies`
        // holds only not-yet-done mail, so the scan is short.
        let tx = self.write_tx()?;
        h.bodies = tx.execute(
            "DELETE FROM bodies WHERE message_id IN (
                 SELECT b.message_id FROM bodies b LEFT JOIN messages m ON m.id = b.message_id
                 WHERE m.id IS NULL OR m.done_at IS NOT NULL)",
            [],
        )? as u64;
        tx.commit()?;
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::BlockReason;
    use crate::queue::MessageState;
    use crate::store::testing::{T0, state_of, store, submit};

    #[test]
    fn expiry_counts_per_day_and_housekeeping_keeps_the_newest_event() {
        let (_d, mut s) = store();
        let old = T0 - 500 * clock::DAY_MS;
        submit(&mut s, "alice", "OLD", old);
        s.block("alice", BlockReason::Manual, "root", "long ago", old + 1)
            .unwrap();
        // Held by the block, then released on its own: not held mail any more.
        s.release("OLD", old + 2).unwrap();
        assert!(submit(&mut s, "alice", "H1", T0 - 10_000));
        assert!(submit(&mut s, "alice", "H2", T0 - 9_000));
        assert!(submit(&mut s, "alice", "H3", T0));
        let expired = s.expire_held(T0 - 5_000, T0, 1).unwrap();
        assert_eq!(expired, vec![("alice".to_string(), 1)]);
        let expired = s.expire_held(T0 - 5_000, T0, 100).unwrap();
        assert_eq!(expired, vec![("alice".to_string(), 1)]);
        assert_eq!(state_of(&s, "H1"), MessageState::Expired);
        assert_eq!(state_of(&s, "H3"), MessageState::Held);
        assert!(s.message("H1", true).unwrap().data.is_none());
        let today = s.daily_stats("alice", 1, T0).unwrap();
        assert_eq!((today[0].expired, today[0].held), (2, 3));
        // History older than 400 days goes; the block event that explains
        // the current state stays even though it is older.
        let h = s
            .housekeep(crate::store::day_start(T0, 400), clock::hour_of(T0) - 1, 2)
            .unwrap();
        assert_eq!(h.daily, 1);
        assert_eq!(h.events, 0);
        assert_eq!(s.history("alice", 10).unwrap().len(), 1);
        assert_eq!(s.daily_stats("alice", 400, T0).unwrap().len(), 400);
        // The OLD message was never done (no relay ran): it stays.
        assert_eq!(state_of(&s, "OLD"), MessageState::Queued);
    }
}
