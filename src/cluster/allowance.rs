//! The limits in cluster mode as pure rules (docs/cluster.md, "Limits
//! across nodes"): whether a node lets one more submission through, and
//! what the cluster store grants a node that asks for more.
//!
//! ## The protocol
//! For each account and limit period (a UTC day for `max_per_day`, an hour
//! for `max_per_hour`) a node holds a **cap**: how many submissions it may
//! let through in the period, an absolute count. A submission within the
//! cap passes (queued, relayed at once); past it, it is accepted (exit 0)
//! and **gated**: queued but not claimable. The cluster store keeps every
//! node's cap as its *reservation* (with what the node last pushed as
//! `used`). A node with gated mail asks for more at its next sync: under a
//! lock on the account, the store computes what is left,
//! `rem = limit - Σ other nodes' max(reserved, used) - mine`, grants
//! `min(rem, max(1, rem / active_nodes))` more, and the node then releases
//! that many gated messages, oldest first. A cap is raised in the store
//! first and on the node after; it is lowered on the node first and in the
//! store after (when another node is starved, see `Grant::squeeze`). So a
//! node's cap is never above its reservation, and reservations never add up
//! past the limit.
//!
//! ## The bound
//! While every node syncs (its allowances are fresh), the submissions let
//! through never exceed the limit: **overshoot 0 messages** — each pass is
//! within its node's cap, each cap within its reservation, and a grant never
//! exceeds what is left under the lock. When none is left and the cluster
//! total has reached the limit, the node that asked blocks the account for
//! the whole cluster (`ko`, reason `limit`), which holds the gated mail.
//!
//! When a node cannot reach the store for longer than its lease, it lets
//! mail through by the local rule ([`admit`] with `online == false`): its
//! own count plus the others' count as it last saw it, against the limit.
//! Then the bound is per node: the cluster may let through up to
//! `Σ (limit - T_i)` more than the limit, where `T_i` is the total node `i`
//! last saw — at worst `active_nodes × limit` when every node lost the
//! store since the start of the period.

use crate::account::{Limits, RateLimit};

/// One limit period of one account, as this node holds it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Share {
    /// Submissions this node let through in the period.
    pub passed: u64,
    /// How many it may let through in the period.
    pub cap: u64,
    /// The other nodes' count as this node last saw it (used only while the
    /// cluster store is unreachable).
    pub others: u64,
}

/// What happens to one submission of a sending account with a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Within the allowance: queued, relayed at once.
    Pass,
    /// Past the allowance: queued but gated until a sync grants more.
    Gate,
    /// Past the limit by the local rule (the store unreachable): the
    /// account is blocked and the message held.
    Trip(RateLimit),
}

/// Whether one more submission passes. `online`: the node's allowances are
/// fresh (its last sync is within its lease).
pub fn admit(limits: &Limits, day: &Share, hour: &Share, online: bool) -> Admit {
    let periods = [
        (limits.per_day.max, day, RateLimit::PerDay),
        (limits.per_hour.max, hour, RateLimit::PerHour),
    ];
    for (max, share, which) in periods {
        if max == 0 {
            continue;
        }
        if online {
            if share.passed >= share.cap {
                return Admit::Gate;
            }
        } else if share.others.saturating_add(share.passed) >= max {
            return Admit::Trip(which);
        }
    }
    Admit::Pass
}

/// What a node asking for more learns, under the account's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// Its new cap (never below its old one).
    pub cap: u64,
    /// Nothing is left and the cluster total has reached the limit: block
    /// the account cluster-wide.
    pub trip: bool,
    /// Nothing is left but the total has not reached the limit: other
    /// nodes hold reservations they do not use; they give them back.
    pub squeeze: bool,
}

/// The store's side of a request for more: `reserved_others` is the sum of
/// the other active nodes' `max(reserved, used)` (and the used count of
/// inactive ones), `used_others` the sum of their used counts.
pub fn grant(
    limit: u64,
    active_nodes: u64,
    passed: u64,
    cap: u64,
    reserved_others: u64,
    used_others: u64,
) -> Grant {
    let mine = cap.max(passed);
    let rem = limit.saturating_sub(reserved_others.saturating_add(mine));
    let more = if rem == 0 {
        0
    } else {
        rem.min((rem / active_nodes.max(1)).max(1))
    };
    let reached = used_others.saturating_add(passed) >= limit;
    Grant {
        cap: mine + more,
        trip: more == 0 && reached,
        squeeze: more == 0 && !reached,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::AppliedLimit;
    use proptest::prelude::*;

    fn limits(day: u64, hour: u64) -> Limits {
        let l = |max| AppliedLimit {
            max,
            node_default: false,
        };
        Limits {
            per_day: l(day),
            per_hour: l(hour),
        }
    }

    fn share(passed: u64, cap: u64, others: u64) -> Share {
        Share {
            passed,
            cap,
            others,
        }
    }

    #[test]
    fn admit_within_the_cap_gates_past_it_and_trips_offline() {
        let l = limits(100, 0);
        let none = Share::default();
        assert_eq!(admit(&l, &share(4, 5, 0), &none, true), Admit::Pass);
        assert_eq!(admit(&l, &share(5, 5, 0), &none, true), Admit::Gate);
        // No grant yet (a new day, a new account): gated until the sync.
        assert_eq!(admit(&l, &none, &none, true), Admit::Gate);
        // Offline: the own count plus the others' last known one.
        assert_eq!(admit(&l, &share(59, 0, 40), &none, false), Admit::Pass);
        assert_eq!(
            admit(&l, &share(60, 0, 40), &none, false),
            Admit::Trip(RateLimit::PerDay)
        );
        // Either period can gate or trip; no limit never gates.
        let both = limits(100, 10);
        assert_eq!(
            admit(&both, &share(1, 50, 0), &share(3, 3, 0), true),
            Admit::Gate
        );
        assert_eq!(
            admit(&both, &share(1, 0, 0), &share(6, 0, 4), false),
            Admit::Trip(RateLimit::PerHour)
        );
        assert_eq!(admit(&limits(0, 0), &none, &none, true), Admit::Pass);
    }

    #[test]
    fn grants_split_what_is_left_and_the_last_ones_go_one_by_one() {
        // Three nodes, nothing used: a third of the limit each.
        assert_eq!(
            grant(100, 3, 0, 0, 0, 0),
            Grant {
                cap: 33,
                trip: false,
                squeeze: false
            }
        );
        // Two left for three nodes: one now, one to the next asker.
        assert_eq!(grant(100, 3, 33, 33, 65, 65).cap, 34);
        assert_eq!(grant(100, 3, 33, 33, 66, 66).cap, 34);
        // Nothing left, total reached: trip.
        let g = grant(100, 3, 34, 34, 66, 66);
        assert_eq!((g.cap, g.trip, g.squeeze), (34, true, false));
        // Nothing left but reserved, not used, elsewhere: squeeze.
        let g = grant(100, 3, 34, 34, 66, 40);
        assert_eq!((g.cap, g.trip, g.squeeze), (34, false, true));
        // Mail let through offline (passed above cap) counts.
        assert_eq!(grant(100, 2, 70, 10, 40, 40).cap, 70);
    }

    /// One node in the model of the protocol: its local share, its
    /// reservation and pushed count in the store, and its gated mail.
    #[derive(Debug, Clone, Copy, Default)]
    struct Node {
        passed: u64,
        cap: u64,
        gated: u64,
        reserved: u64,
        used: u64,
        /// A grant committed in the store, not yet applied on the node.
        granted: Option<u64>,
    }

    #[derive(Debug, Clone, Copy)]
    enum Step {
        Submit(usize),
        /// Ask the store (with gated mail) or give back (when squeezed).
        SyncStore(usize),
        /// Apply a grant on the node and release gated mail.
        SyncLocal(usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (0..3usize).prop_map(Step::Submit),
            2 => (0..3usize).prop_map(Step::SyncStore),
            2 => (0..3usize).prop_map(Step::SyncLocal),
        ]
    }

    /// Runs the steps; returns whether the account tripped.
    fn run(limit: u64, steps: &[Step], nodes: &mut [Node; 3]) -> bool {
        let mut squeezed = false;
        let mut tripped = false;
        for s in steps {
            match *s {
                Step::Submit(i) => {
                    let n = &mut nodes[i];
                    if tripped {
                        continue;
                    }
                    if n.passed < n.cap {
                        n.passed += 1;
                    } else {
                        n.gated += 1;
                    }
                }
                Step::SyncStore(i) => {
                    let others: Vec<Node> = (0..3).filter(|&j| j != i).map(|j| nodes[j]).collect();
                    let n = &mut nodes[i];
                    n.used = n.passed;
                    if n.gated > 0 && n.granted.is_none() {
                        let reserved: u64 = others.iter().map(|o| o.reserved.max(o.used)).sum();
                        let used: u64 = others.iter().map(|o| o.used).sum();
                        let g = grant(limit, 3, n.passed, n.cap, reserved, used);
                        n.reserved = g.cap;
                        n.granted = Some(g.cap);
                        tripped |= g.trip;
                        squeezed |= g.squeeze;
                    } else if squeezed && n.gated == 0 && n.cap > n.passed && n.granted.is_none() {
                        // Give back: the node first, then the store.
                        n.cap = n.passed;
                        n.reserved = n.passed;
                    }
                }
                Step::SyncLocal(i) => {
                    let n = &mut nodes[i];
                    if let Some(cap) = n.granted.take() {
                        n.cap = n.cap.max(cap);
                        let out = n.gated.min(n.cap - n.passed);
                        n.gated -= out;
                        n.passed += out;
                    }
                }
            }
            let total: u64 = nodes.iter().map(|n| n.passed).sum();
            assert!(total <= limit, "{total} passed > {limit}: {nodes:?}");
            for n in nodes.iter() {
                assert!(n.cap <= n.reserved.max(n.passed), "{n:?}");
            }
        }
        tripped
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Any interleaving of submissions and the two halves of each
        /// node's sync: never more than the limit let through.
        #[test]
        fn never_past_the_limit_while_online(
            limit in 1u64..60,
            steps in prop::collection::vec(step(), 0..400),
        ) {
            let mut nodes = [Node::default(); 3];
            run(limit, &steps, &mut nodes);
        }
    }

    /// Three nodes sending 60 each against 100, syncing in turn: exactly
    /// 100 pass, and the account trips once nothing is left.
    #[test]
    fn unpaced_bursts_reach_the_limit_and_trip() {
        let mut nodes = [Node::default(); 3];
        let mut steps = Vec::new();
        for _ in 0..60 {
            steps.extend([Step::Submit(0), Step::Submit(1), Step::Submit(2)]);
        }
        for _ in 0..40 {
            for i in 0..3 {
                steps.extend([Step::SyncStore(i), Step::SyncLocal(i)]);
            }
        }
        let tripped = run(100, &steps, &mut nodes);
        let total: u64 = nodes.iter().map(|n| n.passed).sum();
        assert_eq!(total, 100);
        assert!(tripped);
    }
}
