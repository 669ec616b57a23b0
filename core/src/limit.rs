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
        let mut by_age: Vec<(Timestamp, String)> = self
            .ips
            .iter()
            .map(|(k, b)| (b.updated, k.clone()))
            .collect();
        by_age.sort();
        let drop = (self.max_ips / 10).max(1);
        for (_, k) in by_age.into_iter().take(drop) {
            self.ips.remove(&k);
        }
    }
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
}
