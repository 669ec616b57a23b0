//! Rate limiting as values: token buckets with the time passed in.
//!
//! A trigger's object keeps one bucket for the trigger and one per client IP
//! (bounded: the least recently used IPs are forgotten first). Every request
//! takes a token before anything else happens, so unsigned floods count too.

use std::collections::HashMap;

use crate::time::Timestamp;

/// A token bucket refilled at `rate` tokens per second up to `rate` tokens
/// (one second of burst).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenBucket {
    tokens: f64,
    updated: Timestamp,
}

impl TokenBucket {
    /// A full bucket.
    pub fn full(rate: u32, now: Timestamp) -> Self {
        TokenBucket {
            tokens: f64::from(rate),
            updated: now,
        }
    }

    /// Takes one token, or says how many whole seconds until one is there.
    pub fn take(&mut self, rate: u32, now: Timestamp) -> Result<(), u32> {
        let rate = f64::from(rate.max(1));
        let elapsed = (now.millis() - self.updated.millis()).max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / rate;
            Err(wait.ceil().max(1.0) as u32)
        }
    }
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    /// The trigger's overall rate.
    Trigger,
    /// The rate of one client IP on this trigger.
    ClientIp,
}

impl LimitScope {
    /// The name used in the 429 body.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitScope::Trigger => "trigger",
            LimitScope::ClientIp => "client_ip",
        }
    }
}

/// The per-trigger limiter: one bucket for the trigger, one per client IP.
#[derive(Debug, Clone)]
pub struct Limiter {
    trigger: Option<TokenBucket>,
    ips: HashMap<String, TokenBucket>,
    max_ips: usize,
}

impl Limiter {
    /// A limiter remembering at most `max_ips` client IPs.
    pub fn new(max_ips: usize) -> Self {
        Limiter {
            trigger: None,
            ips: HashMap::new(),
            max_ips: max_ips.max(1),
        }
    }

    /// Admits one request from `ip`, or refuses it with its scope and the
    /// seconds to wait. A request refused per IP does not use a trigger token.
    pub fn admit(
        &mut self,
        ip: &str,
        trigger_rate: u32,
        ip_rate: u32,
        now: Timestamp,
    ) -> Result<(), (LimitScope, u32)> {
        if !self.ips.contains_key(ip) && self.ips.len() >= self.max_ips {
            self.forget_oldest();
        }
        let bucket = self
            .ips
            .entry(ip.to_string())
            .or_insert_with(|| TokenBucket::full(ip_rate, now));
        bucket
            .take(ip_rate, now)
            .map_err(|s| (LimitScope::ClientIp, s))?;
        let trigger = self
            .trigger
            .get_or_insert_with(|| TokenBucket::full(trigger_rate, now));
        trigger
            .take(trigger_rate, now)
            .map_err(|s| (LimitScope::Trigger, s))
    }

    fn forget_oldest(&mut self) {
        // Drop the least recently used tenth; amortised O(1) per request.
        // The cutoff is found by sorting the ages alone, as plain numbers:
        // the stats' percentiles sort the same type, so the Wasm carries
        // one sort for both rather than one more for (age, IP) pairs.
        let drop = (self.max_ips / 10).max(1);
        let mut ages: Vec<u64> = self.ips.values().map(|b| age_key(b.updated)).collect();
        ages.sort_unstable();
        let Some(&cutoff) = ages.get(drop - 1) else {
            self.ips.clear();
            return;
        };
        // Every IP older than the cutoff goes (fewer than `drop` of them),
        // and as many at the cutoff as make up `drop`.
        let mut at_cutoff = drop - ages.iter().take_while(|a| **a < cutoff).count();
        self.ips.retain(|_, b| {
            let age = age_key(b.updated);
            let goes = age < cutoff || (age == cutoff && at_cutoff > 0);
            if age == cutoff && goes {
                at_cutoff -= 1;
            }
            !goes
        });
    }
}

/// A bucket's last update as a number that orders as the time does.
fn age_key(t: Timestamp) -> u64 {
    (t.millis() as u64) ^ (1 << 63)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_refills() {
        let t0 = Timestamp(1_000_000);
        let mut b = TokenBucket::full(5, t0);
        for _ in 0..5 {
            assert_eq!(b.take(5, t0), Ok(()));
        }
        assert_eq!(b.take(5, t0), Err(1));
        assert_eq!(b.take(5, t0.plus_millis(199)), Err(1));
        assert_eq!(b.take(5, t0.plus_millis(400)), Ok(()), "refilled at 5/s");
    }

    #[test]
    fn per_ip_limit_applies_before_the_trigger_limit() {
        let t0 = Timestamp(0);
        let mut l = Limiter::new(100);
        for _ in 0..3 {
            assert!(l.admit("a", 10, 3, t0).is_ok());
        }
        assert_eq!(l.admit("a", 10, 3, t0), Err((LimitScope::ClientIp, 1)));
        for _ in 0..7 {
            assert!(l.admit("b", 10, 100, t0).is_ok());
        }
        assert_eq!(l.admit("c", 10, 100, t0), Err((LimitScope::Trigger, 1)));
    }

    #[test]
    fn ip_table_is_bounded() {
        let mut l = Limiter::new(50);
        for i in 0..1000 {
            let _ = l.admit(
                &format!("10.0.{}.{}", i / 256, i % 256),
                1_000_000,
                5,
                Timestamp(i),
            );
        }
        assert!(l.ips.len() <= 50);
    }

    #[test]
    fn a_full_ip_table_forgets_the_least_recently_used_tenth() {
        let mut l = Limiter::new(20);
        // Twenty IPs, two of each age (ages 0 to 9), "a" of each pair first.
        for age in 0..10 {
            for side in ["a", "b"] {
                assert!(l
                    .admit(&format!("{side}{age}"), 1_000, 10, Timestamp(age))
                    .is_ok());
            }
        }
        // "a0" is used again: it is now the most recent.
        assert!(l.admit("a0", 1_000, 10, Timestamp(100)).is_ok());
        // A new IP makes room: two go (a tenth of 20), the two oldest,
        // which are "b0" and one of the pair aged 1.
        assert!(l.admit("new", 1_000, 10, Timestamp(101)).is_ok());
        assert_eq!(l.ips.len(), 19);
        assert!(l.ips.contains_key("a0") && l.ips.contains_key("new"));
        assert!(!l.ips.contains_key("b0"));
        let aged_one = ["a1", "b1"]
            .iter()
            .filter(|k| l.ips.contains_key(**k))
            .count();
        assert_eq!(aged_one, 1, "exactly one at the cutoff goes");
        // Negative times (never real, but representable) order before zero.
        assert!(age_key(Timestamp(-1)) < age_key(Timestamp(0)));
        assert!(age_key(Timestamp(i64::MAX)) > age_key(Timestamp(0)));
    }
}
