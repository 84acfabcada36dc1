//! Retry and expiry policy: pure functions of the message's history and an
//! injected clock, so every branch is unit-tested without waiting.
//!
//! Backoff is exponential from `retry_initial`, doubled per attempt, capped
//! at `retry_max`, with ±25 % jitter so that a smarthost coming back after an
//! outage is not hit by the whole queue in the same second. The last retry
//! is pulled in to the queue-lifetime deadline so a message fails on time.

use std::time::Duration;

/// What to do after a temporary failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Try again at this instant (ms since the epoch).
    RetryAt(i64),
    /// The queue lifetime is over: fail the message.
    Expire,
}

/// The retry policy.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub initial: Duration,
    pub max: Duration,
    pub lifetime: Duration,
}

impl Policy {
    /// Decide after attempt number `attempts` (1 = the first) failed
    /// temporarily at `now`, for a message created at `created`. `jitter` is
    /// a uniform random number in [0, 1).
    pub fn after_temporary_failure(
        &self,
        created: i64,
        attempts: u32,
        now: i64,
        jitter: f64,
    ) -> Decision {
        let deadline = created.saturating_add(ms(self.lifetime));
        if now >= deadline {
            return Decision::Expire;
        }
        let exp = attempts.saturating_sub(1).min(30);
        let base = ms(self.initial)
            .saturating_mul(1i64 << exp)
            .min(ms(self.max));
        let factor = 0.75 + 0.5 * jitter.clamp(0.0, 1.0);
        let delay = ((base as f64) * factor) as i64;
        Decision::RetryAt(now.saturating_add(delay.max(1000)).min(deadline))
    }
}

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// A uniform number in [0, 1) from the kernel's randomness.
pub fn jitter() -> f64 {
    (crate::os::random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn policy() -> Policy {
        Policy {
            initial: Duration::from_secs(60),
            max: Duration::from_secs(3600),
            lifetime: Duration::from_secs(5 * 86400),
        }
    }

    #[test]
    fn doubles_from_initial_without_jitter_at_midpoint() {
        let p = policy();
        let now = 1_000_000;
        assert_eq!(
            p.after_temporary_failure(now, 1, now, 0.5),
            Decision::RetryAt(now + MIN)
        );
        assert_eq!(
            p.after_temporary_failure(now, 2, now, 0.5),
            Decision::RetryAt(now + 2 * MIN)
        );
        assert_eq!(
            p.after_temporary_failure(now, 3, now, 0.5),
            Decision::RetryAt(now + 4 * MIN)
        );
    }

    #[test]
    fn caps_at_max() {
        let p = policy();
        let now = 1_000_000;
        assert_eq!(
            p.after_temporary_failure(now, 20, now, 0.5),
            Decision::RetryAt(now + 60 * MIN)
        );
        assert_eq!(
            p.after_temporary_failure(now, u32::MAX, now, 0.5),
            Decision::RetryAt(now + 60 * MIN)
        );
    }

    #[test]
    fn jitter_stays_within_a_quarter() {
        let p = policy();
        let now = 1_000_000;
        let Decision::RetryAt(lo) = p.after_temporary_failure(now, 1, now, 0.0) else {
            panic!()
        };
        let Decision::RetryAt(hi) = p.after_temporary_failure(now, 1, now, 0.999_999) else {
            panic!()
        };
        assert_eq!(lo, now + 45_000);
        assert!(hi < now + 75_000 && hi > now + 74_000);
    }

    #[test]
    fn expires_at_lifetime_and_pulls_last_retry_in() {
        let p = policy();
        let created = 0;
        let deadline = 5 * 86_400_000;
        assert_eq!(
            p.after_temporary_failure(created, 50, deadline, 0.5),
            Decision::Expire
        );
        assert_eq!(
            p.after_temporary_failure(created, 50, deadline + 1, 0.5),
            Decision::Expire
        );
        assert_eq!(
            p.after_temporary_failure(created, 50, deadline - 10_000, 0.5),
            Decision::RetryAt(deadline)
        );
    }

    #[test]
    fn never_retries_in_under_a_second() {
        let p = Policy {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(1),
            lifetime: Duration::from_secs(60),
        };
        assert_eq!(
            p.after_temporary_failure(0, 1, 0, 0.0),
            Decision::RetryAt(1000)
        );
    }

    #[test]
    fn a_message_that_always_fails_is_retried_then_expires_on_time() {
        // Replay a whole life with the injected clock: each attempt happens
        // when the previous decision said, until the policy gives up.
        let p = policy();
        let created = 7_000;
        let deadline = created + 5 * 86_400_000;
        let mut now = created;
        let mut attempts = 1;
        let mut last_gap = 0;
        while let Decision::RetryAt(t) = p.after_temporary_failure(created, attempts, now, 0.5) {
            assert!(t > now && t <= deadline, "retry {t} after {now}");
            let gap = t - now;
            if t < deadline {
                assert!(gap >= last_gap, "backoff never shrinks");
                assert!(gap <= 60 * MIN);
            }
            last_gap = gap;
            now = t;
            attempts += 1;
            assert!(attempts < 1000, "never gives up");
        }
        assert_eq!(now, deadline, "the last try is at the deadline");
        // 1+2+4+...+32 min, then hourly: about 120 + 7 tries in 5 days.
        assert!((120..140).contains(&attempts), "{attempts}");
    }

    #[test]
    fn jitter_spreads_a_burst() {
        // 1000 messages failing in the same second must not all come back
        // in the same second.
        let p = policy();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            if let Decision::RetryAt(t) = p.after_temporary_failure(0, 1, 0, jitter()) {
                seen.insert(t / 1000);
            }
        }
        assert!(seen.len() > 20, "{} distinct seconds", seen.len());
    }

    #[test]
    fn jitter_is_in_unit_interval() {
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
        }
    }
}
