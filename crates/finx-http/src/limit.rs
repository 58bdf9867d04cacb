//! Rate limits: token buckets in memory, per client and per IP.
//!
//! `/auth/token` is limited per IP before anything else and per client once the client is
//! known; failed client authentication is limited per IP and per client id on every
//! endpoint that authenticates clients, and an exhausted failure budget refuses further
//! attempts before the secret is even checked. Limits are per server instance.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// One limit: a burst and a steady rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests allowed at once.
    pub burst: u32,
    /// Requests per minute refilled.
    pub per_minute: u32,
}

/// Every limit the API applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// `/auth/token` requests per IP.
    pub token_per_ip: Rate,
    /// `/auth/token` requests per authenticated client.
    pub token_per_client: Rate,
    /// Failed client authentications per IP.
    pub auth_failures_per_ip: Rate,
    /// Failed client authentications per client id from one IP. Keyed by the pair, so a
    /// stranger guessing from elsewhere cannot lock a client out.
    pub auth_failures_per_ip_and_client: Rate,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            token_per_ip: Rate {
                burst: 600,
                per_minute: 6_000,
            },
            token_per_client: Rate {
                burst: 1_200,
                per_minute: 12_000,
            },
            auth_failures_per_ip: Rate {
                burst: 20,
                per_minute: 10,
            },
            auth_failures_per_ip_and_client: Rate {
                burst: 100,
                per_minute: 60,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    TokenIp(IpAddr),
    TokenClient(String),
    FailIp(IpAddr),
    FailPair(IpAddr, String),
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Thousandths of a request.
    level: u64,
    at: Instant,
}

/// The buckets.
#[derive(Debug, Clone)]
pub struct Limiter {
    limits: RateLimits,
    buckets: Arc<Mutex<HashMap<Key, Bucket>>>,
}

/// Refused: try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled(pub Duration);

impl Limiter {
    /// Buckets for `limits`.
    #[must_use]
    pub fn new(limits: RateLimits) -> Self {
        Self {
            limits,
            buckets: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn rate(&self, key: &Key) -> Rate {
        match key {
            Key::TokenIp(_) => self.limits.token_per_ip,
            Key::TokenClient(_) => self.limits.token_per_client,
            Key::FailIp(_) => self.limits.auth_failures_per_ip,
            Key::FailPair(..) => self.limits.auth_failures_per_ip_and_client,
        }
    }

    /// Takes one request from the bucket (`take`), or only looks (`!take`).
    fn check(&self, key: Key, take: bool) -> Result<(), Throttled> {
        let rate = self.rate(&key);
        let full = u64::from(rate.burst) * 1000;
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        // A mere look at a key never seen inserts nothing: its bucket would be full.
        if !take && !buckets.contains_key(&key) {
            return Ok(());
        }
        if buckets.len() > 100_000 {
            // Forget the idle: a bucket untouched for a minute has refilled anyway. Under a
            // flood of fresh keys, forget everything rather than grow without bound.
            buckets.retain(|_, b| now.duration_since(b.at) < Duration::from_secs(60));
            if buckets.len() > 100_000 {
                buckets.clear();
            }
        }
        let b = buckets.entry(key).or_insert(Bucket {
            level: full,
            at: now,
        });
        let elapsed_ms = u64::try_from(now.duration_since(b.at).as_millis()).unwrap_or(u64::MAX);
        // per_minute requests a minute = per_minute thousandths per 60 ms.
        let refill = elapsed_ms.saturating_mul(u64::from(rate.per_minute)) / 60;
        b.level = b.level.saturating_add(refill).min(full);
        b.at = now;
        if b.level >= 1000 {
            if take {
                b.level -= 1000;
            }
            return Ok(());
        }
        let missing = 1000 - b.level;
        let wait_ms = if rate.per_minute == 0 {
            60_000
        } else {
            missing.saturating_mul(60) / u64::from(rate.per_minute) + 1
        };
        Err(Throttled(Duration::from_millis(wait_ms)))
    }

    /// A `/auth/token` request from `ip`.
    ///
    /// # Errors
    /// [`Throttled`] when over the limit.
    pub fn token_ip(&self, ip: IpAddr) -> Result<(), Throttled> {
        self.check(Key::TokenIp(ip), true)
    }

    /// A `/auth/token` request by an authenticated client.
    ///
    /// # Errors
    /// [`Throttled`] when over the limit.
    pub fn token_client(&self, client: &str) -> Result<(), Throttled> {
        self.check(Key::TokenClient(client.to_owned()), true)
    }

    /// Whether `ip` and `client` may still try to authenticate.
    ///
    /// # Errors
    /// [`Throttled`] when their failure budget is spent.
    pub fn may_authenticate(&self, ip: IpAddr, client: &str) -> Result<(), Throttled> {
        self.check(Key::FailIp(ip), false)?;
        self.check(Key::FailPair(ip, client.chars().take(128).collect()), false)
    }

    /// Records a failed client authentication.
    pub fn failed(&self, ip: IpAddr, client: &str) {
        let _ = self.check(Key::FailIp(ip), true);
        let _ = self.check(Key::FailPair(ip, client.chars().take(128).collect()), true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refuses_with_a_wait() {
        let l = Limiter::new(RateLimits {
            token_per_ip: Rate {
                burst: 3,
                per_minute: 60,
            },
            ..RateLimits::default()
        });
        let ip: IpAddr = [127, 0, 0, 1].into();
        for _ in 0..3 {
            assert!(l.token_ip(ip).is_ok());
        }
        let Err(Throttled(wait)) = l.token_ip(ip) else {
            panic!("the fourth is refused")
        };
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(1010),
            "{wait:?}"
        );
        assert!(
            l.token_ip([127, 0, 0, 2].into()).is_ok(),
            "other IPs have their own bucket"
        );
    }

    #[test]
    fn failures_spend_a_budget_that_looking_does_not() {
        let l = Limiter::new(RateLimits {
            auth_failures_per_ip: Rate {
                burst: 2,
                per_minute: 1,
            },
            ..RateLimits::default()
        });
        let ip: IpAddr = [10, 0, 0, 1].into();
        assert!(l.may_authenticate(ip, "c").is_ok());
        assert!(l.may_authenticate(ip, "c").is_ok(), "looking is free");
        l.failed(ip, "c");
        l.failed(ip, "c");
        assert!(l.may_authenticate(ip, "c").is_err());
        assert!(
            l.may_authenticate(ip, "other").is_err(),
            "the IP's budget is spent"
        );
    }
}
