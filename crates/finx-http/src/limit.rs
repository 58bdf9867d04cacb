//! Rate limits: token buckets in memory, per client and per client address.
//!
//! `/auth/token` is limited per address before anything else and per client once the
//! client is known; client authentication draws on a failure budget per address and per
//! address and client id on every endpoint that authenticates clients: a spent budget
//! refuses attempts before the secret is even checked. Each check, and each record of a
//! failure, covers both budgets in one step under one lock. Successes cost nothing, so a
//! customer's parallel calls are never held back; guesses that pass the check together are
//! all recorded and put the budget into debt (as deep as a day of refill), which later
//! waits pay back: over time no address guesses faster than the configured rate. Failures from
//! one address never stop the same client from another address. IPv6 addresses count by
//! their /64, the block one subscriber usually holds. Limits are per server instance.
//!
//! `governor` was considered: its keyed limiters check and record in one step, but a
//! check there always spends a unit, while budgets of failures need a look that spends
//! nothing and a record that may go into debt; so this stays a small hand-written bucket
//! map. It is sharded (one lock per shard), and when a shard is full it forgets only
//! buckets that have refilled (which is the same as forgetting nothing), then, under a
//! flood of fresh keys, the tenth closest to full: never every budget at once, and a spent
//! budget last.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
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
    /// Thousandths of a request; below zero is debt (failure budgets only).
    level: i64,
    at: Instant,
}

const SHARDS: usize = 16;
/// Buckets one shard keeps before it forgets any (16 shards: 1.6 M keys in all).
const SHARD_CAPACITY: usize = 100_000;

/// The address a limit counts: IPv4 as it is (IPv4-mapped IPv6 too), IPv6 by its /64.
#[must_use]
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The buckets.
#[derive(Debug, Clone)]
pub struct Limiter {
    limits: RateLimits,
    shards: Arc<Vec<Mutex<HashMap<Key, Bucket>>>>,
    hasher: std::collections::hash_map::RandomState,
    capacity: usize,
}

/// Refused: try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled(pub Duration);

/// A client authentication that the failure budgets allowed. Its outcome is reported with
/// [`failed`](Self::failed) (recorded against both budgets in one step) or
/// [`succeeded`](Self::succeeded) (costs nothing).
#[derive(Debug)]
#[must_use = "report whether the secret was right"]
pub struct AuthAttempt<'a> {
    limiter: &'a Limiter,
    ip: IpAddr,
    client: String,
}

impl AuthAttempt<'_> {
    /// The secret was right.
    pub fn succeeded(self) {}

    /// The secret was wrong: one unit of each budget is spent, into debt if need be.
    pub fn failed(self) {
        let l = self.limiter;
        let mut shard = l.shard(&self.ip);
        let now = Instant::now();
        l.spend(&mut shard, Key::FailIp(self.ip), now);
        l.spend(&mut shard, Key::FailPair(self.ip, self.client), now);
    }
}

impl Limiter {
    /// Buckets for `limits`.
    #[must_use]
    pub fn new(limits: RateLimits) -> Self {
        Self::with_capacity(limits, SHARD_CAPACITY)
    }

    fn with_capacity(limits: RateLimits, capacity: usize) -> Self {
        Self {
            limits,
            shards: Arc::new((0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect()),
            hasher: std::collections::hash_map::RandomState::new(),
            capacity,
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

    /// The shard of anything keyed by `by` (an address's failure keys share one shard, so
    /// both are taken under one lock).
    fn shard(&self, by: &impl Hash) -> MutexGuard<'_, HashMap<Key, Bucket>> {
        let i = usize::try_from(self.hasher.hash_one(by) % SHARDS as u64).unwrap_or(0);
        self.shards[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The bucket's level now, refilled for the time since it was last touched.
    fn refill(&self, key: &Key, b: &mut Bucket, now: Instant) {
        let rate = self.rate(key);
        let full = self.full(key);
        let elapsed_ms = i64::try_from(now.duration_since(b.at).as_millis()).unwrap_or(i64::MAX);
        // per_minute requests a minute = per_minute thousandths per 60 ms.
        let refill = elapsed_ms.saturating_mul(i64::from(rate.per_minute)) / 60;
        b.level = b.level.saturating_add(refill).min(full);
        b.at = now;
    }

    /// A full bucket, in thousandths.
    fn full(&self, key: &Key) -> i64 {
        i64::from(self.rate(key).burst) * 1000
    }

    /// How long until the bucket holds one request again.
    fn wait(&self, key: &Key, level: i64) -> Throttled {
        let per_minute = i64::from(self.rate(key).per_minute);
        let missing = 1000 - level;
        let ms = if per_minute == 0 {
            60_000
        } else {
            missing.saturating_mul(60) / per_minute + 1
        };
        Throttled(Duration::from_millis(u64::try_from(ms).unwrap_or(60_000)))
    }

    /// Makes room for one more key: first forgets buckets that are full again (forgetting
    /// those loses nothing), then, if every key is busy, the tenth closest to full.
    fn make_room(&self, shard: &mut HashMap<Key, Bucket>, now: Instant) {
        if shard.len() < self.capacity {
            return;
        }
        shard.retain(|k, b| {
            let mut b2 = *b;
            self.refill(k, &mut b2, now);
            b2.level < self.full(k)
        });
        if shard.len() < self.capacity {
            return;
        }
        // Every key is in use: forget the tenth closest to full, which costs the least (a
        // spent budget, the one that matters, is the last to go).
        let mut fullness: Vec<(i64, Key)> = shard
            .iter()
            .map(|(k, b)| {
                let full = self.full(k).max(1000);
                (b.level.saturating_mul(1000) / full, k.clone())
            })
            .collect();
        fullness.sort_unstable_by_key(|f| std::cmp::Reverse(f.0));
        for (_, k) in fullness.into_iter().take(self.capacity / 10 + 1) {
            shard.remove(&k);
        }
    }

    /// The bucket of `key`, refilled to now; a new one (full) after making room for it.
    fn bucket<'m>(
        &self,
        shard: &'m mut HashMap<Key, Bucket>,
        key: Key,
        now: Instant,
    ) -> &'m mut Bucket {
        if !shard.contains_key(&key) {
            self.make_room(shard, now);
        }
        let full = self.full(&key);
        let b = shard.entry(key.clone()).or_insert(Bucket {
            level: full,
            at: now,
        });
        self.refill(&key, b, now);
        b
    }

    /// Takes one request from the bucket, or says how long to wait: one step.
    fn take(
        &self,
        shard: &mut HashMap<Key, Bucket>,
        key: Key,
        now: Instant,
    ) -> Result<(), Throttled> {
        let b = self.bucket(shard, key.clone(), now);
        if b.level >= 1000 {
            b.level -= 1000;
            return Ok(());
        }
        let level = b.level;
        Err(self.wait(&key, level))
    }

    /// Whether the bucket holds one request; spends nothing. A key never seen is full.
    fn look(
        &self,
        shard: &mut HashMap<Key, Bucket>,
        key: &Key,
        now: Instant,
    ) -> Result<(), Throttled> {
        let Some(b) = shard.get_mut(key) else {
            return Ok(());
        };
        self.refill(key, b, now);
        if b.level >= 1000 {
            Ok(())
        } else {
            let level = b.level;
            Err(self.wait(key, level))
        }
    }

    /// Spends one request, into debt as deep as a day of refill (the bound only keeps the
    /// arithmetic finite): every failure is paid back by waiting.
    fn spend(&self, shard: &mut HashMap<Key, Bucket>, key: Key, now: Instant) {
        let day = i64::from(self.rate(&key).per_minute.max(1)) * 1000 * 60 * 24;
        let floor = -day;
        let b = self.bucket(shard, key, now);
        b.level = (b.level - 1000).max(floor);
    }

    /// A `/auth/token` request from `ip`.
    ///
    /// # Errors
    /// [`Throttled`] when over the limit.
    pub fn token_ip(&self, ip: IpAddr) -> Result<(), Throttled> {
        let ip = limit_key(ip);
        self.take(&mut self.shard(&ip), Key::TokenIp(ip), Instant::now())
    }

    /// A `/auth/token` request by an authenticated client.
    ///
    /// # Errors
    /// [`Throttled`] when over the limit.
    pub fn token_client(&self, client: &str) -> Result<(), Throttled> {
        let key = Key::TokenClient(client.to_owned());
        self.take(&mut self.shard(&client), key, Instant::now())
    }

    /// Starts a client authentication from `ip`: allowed while both the address's failure
    /// budget and the address-and-client's hold a unit (looked at in one step).
    ///
    /// # Errors
    /// [`Throttled`] when either budget is spent.
    pub fn begin_auth(&self, ip: IpAddr, client: &str) -> Result<AuthAttempt<'_>, Throttled> {
        let ip = limit_key(ip);
        let client: String = client.chars().take(128).collect();
        let now = Instant::now();
        let mut shard = self.shard(&ip);
        self.look(&mut shard, &Key::FailIp(ip), now)?;
        self.look(&mut shard, &Key::FailPair(ip, client.clone()), now)?;
        Ok(AuthAttempt {
            limiter: self,
            ip,
            client,
        })
    }

    /// How many keys are held, over all shards (for tests and metrics).
    #[must_use]
    pub fn keys(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
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

    fn failures(burst: u32) -> RateLimits {
        RateLimits {
            auth_failures_per_ip: Rate {
                burst,
                per_minute: 1,
            },
            ..RateLimits::default()
        }
    }

    #[test]
    fn failures_spend_the_budget_and_successes_cost_nothing() {
        let l = Limiter::new(failures(2));
        let ip: IpAddr = [10, 0, 0, 1].into();
        for _ in 0..10 {
            l.begin_auth(ip, "c")
                .expect("a success costs nothing")
                .succeeded();
        }
        l.begin_auth(ip, "c").expect("first").failed();
        l.begin_auth(ip, "c").expect("second").failed();
        assert!(l.begin_auth(ip, "c").is_err());
        assert!(
            l.begin_auth(ip, "other").is_err(),
            "the address's budget is spent"
        );
        assert!(
            l.begin_auth([10, 0, 0, 2].into(), "c").is_ok(),
            "the same client from another address is not stopped"
        );
    }

    /// Successes are never held back, however many run at once; guesses that pass the
    /// check together all count, and the debt they leave is waited off.
    #[test]
    fn parallel_guesses_are_all_counted_and_paid_back() {
        let l = Limiter::new(failures(5));
        let ip: IpAddr = [10, 0, 0, 3].into();
        let barrier = std::sync::Barrier::new(32);
        let admitted = std::sync::atomic::AtomicI64::new(0);
        std::thread::scope(|s| {
            for _ in 0..32 {
                s.spawn(|| {
                    barrier.wait();
                    if let Ok(a) = l.begin_auth(ip, "c") {
                        admitted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        a.failed();
                    }
                });
            }
        });
        let admitted = admitted.into_inner();
        assert!(admitted >= 5, "{admitted}");
        let Err(Throttled(wait)) = l.begin_auth(ip, "c") else {
            panic!("the budget is spent")
        };
        // One unit a minute: every guess past the burst adds a minute of waiting, so the
        // overdraft is waited off.
        let owed = admitted - 4;
        assert!(
            wait >= Duration::from_secs(u64::try_from(owed * 60 - 1).unwrap_or(0)),
            "{admitted} admitted, {wait:?}"
        );
        let busy = Limiter::new(failures(5));
        let ok = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..64 {
                s.spawn(|| {
                    if let Ok(a) = busy.begin_auth(ip, "c") {
                        a.succeeded();
                        ok.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(ok.into_inner(), 64, "successes cost nothing");
    }

    #[test]
    fn ipv6_counts_by_its_slash_64_and_mapped_ipv4_as_ipv4() {
        let l = Limiter::new(failures(2));
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        l.begin_auth(a, "c").expect("a").failed();
        l.begin_auth(b, "c").expect("b").failed();
        assert!(l.begin_auth(a, "c").is_err(), "one /64, one budget");
        assert!(l.begin_auth(c, "c").is_ok(), "another /64");
        assert_eq!(
            limit_key("::ffff:192.0.2.1".parse().expect("ip")),
            IpAddr::from([192, 0, 2, 1])
        );
    }

    /// A flood of fresh keys never wipes the budgets: a spent budget stays spent.
    #[test]
    fn a_flood_of_fresh_keys_does_not_reset_a_spent_budget() {
        let l = Limiter::with_capacity(failures(1), 50);
        let attacker: IpAddr = [192, 0, 2, 66].into();
        l.begin_auth(attacker, "c").expect("first").failed();
        assert!(l.begin_auth(attacker, "c").is_err());
        for i in 0..20_000u32 {
            let ip = IpAddr::from((0xC633_6400u32 + i).to_be_bytes());
            let _ = l.token_ip(ip);
        }
        assert!(l.keys() <= 50 * SHARDS, "bounded: {}", l.keys());
        assert!(
            l.begin_auth(attacker, "c").is_err(),
            "the spent budget survived the flood"
        );
    }
}
