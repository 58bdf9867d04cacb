//! The rules of ongoing access (issue 13, first part): how often an access may be synced
//! without its user, when, from which date, and what its consent's status is.
//!
//! PSD2 allows at most four unattended accesses a day unless the consent says otherwise
//! (`frequencyPerDay`). finX's allowance is the smaller of its configured number and the
//! consent's; a day is the UTC calendar day. Scheduled syncs are spread over the day in as
//! many slots as the allowance, each moved by a jitter derived from the access, so that
//! accesses do not all go to their banks at the same moment; manual syncs count against the
//! same allowance. [`SyncLedger::admit`] is the one gate every unattended sync passes: it
//! never lets a day's count exceed the allowance, whatever the clock does.

use chrono::{Days, TimeDelta};
use sha2::{Digest, Sha256};

use crate::sca::ConsentStatus;
use crate::{Date, Timestamp};

/// What finX is configured to do for ongoing accesses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncPolicy {
    /// Unattended syncs a day at most (never more than the consent allows): 4.
    pub per_day: u16,
    /// Days an incremental sync reaches back before the last booked day: 3.
    pub overlap_days: u16,
    /// Days before `valid_until` from which a consent counts as expiring: 7.
    pub expiring_days: u16,
}

impl Default for SyncPolicy {
    fn default() -> Self {
        Self {
            per_day: 4,
            overlap_days: 3,
            expiring_days: 7,
        }
    }
}

impl SyncPolicy {
    /// Unattended syncs a day for a consent that allows `frequency_per_day`.
    #[must_use]
    pub fn allowance(&self, frequency_per_day: u16) -> u16 {
        self.per_day.min(frequency_per_day)
    }

    /// The first day an incremental sync fetches: the last booked day minus the overlap,
    /// or, with nothing booked yet, `period_days` back from `today` (today included); never
    /// before that.
    #[must_use]
    pub fn sync_from(&self, last_booked: Option<Date>, today: Date, period_days: u16) -> Date {
        let earliest = today - TimeDelta::days(i64::from(period_days.max(1)) - 1);
        match last_booked {
            Some(d) => (d - TimeDelta::days(i64::from(self.overlap_days)))
                .max(earliest)
                .min(today),
            None => earliest,
        }
    }
}

/// Where an ongoing access's consent stands, as the customer is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessStatus {
    /// Valid, and not close to its end.
    Valid,
    /// Valid, but within the expiring window of `valid_until`: time to renew.
    Expiring,
    /// Past `valid_until`, or the bank says it expired.
    Expired,
    /// Revoked at the bank (by the user), or ended by finX.
    Revoked,
}

impl AccessStatus {
    /// Every variant, in declaration order (for documenting the closed set).
    pub const ALL: [Self; 4] = [Self::Valid, Self::Expiring, Self::Expired, Self::Revoked];

    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Expiring => "expiring",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }

    /// The status of a consent with `status`, last usable on `valid_until`, on `today`.
    #[must_use]
    pub fn of(status: ConsentStatus, valid_until: Date, today: Date, policy: &SyncPolicy) -> Self {
        match status {
            ConsentStatus::RevokedByPsu | ConsentStatus::TerminatedByTpp => Self::Revoked,
            ConsentStatus::Expired | ConsentStatus::Rejected => Self::Expired,
            _ if today > valid_until => Self::Expired,
            _ if valid_until - today < TimeDelta::days(i64::from(policy.expiring_days)) => {
                Self::Expiring
            }
            _ => Self::Valid,
        }
    }

    /// Whether unattended syncs may run.
    #[must_use]
    pub fn syncs(self) -> bool {
        matches!(self, Self::Valid | Self::Expiring)
    }
}

/// The UTC day of an instant.
#[must_use]
pub fn day_of(t: Timestamp) -> Date {
    t.date_naive()
}

/// Midnight UTC starting `day`.
#[must_use]
pub fn start_of(day: Date) -> Timestamp {
    day.and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or_default()
}

/// The scheduled slots of `day` for an access with `allowance` syncs a day: the day cut
/// into that many equal spans, one slot in each, moved within the middle half of its span
/// by a jitter derived from `seed` (the access) and the day, so the same access keeps its
/// slots and different accesses spread out. Ascending; empty for an allowance of 0.
#[must_use]
pub fn slots(day: Date, allowance: u16, seed: &[u8]) -> Vec<Timestamp> {
    if allowance == 0 {
        return Vec::new();
    }
    let span = 86_400 / i64::from(allowance);
    (0..allowance)
        .map(|i| {
            let mut h = Sha256::new();
            h.update(seed);
            h.update(day.to_string().as_bytes());
            h.update(i.to_be_bytes());
            let d = h.finalize();
            let r = i64::from(u32::from_be_bytes([d[0], d[1], d[2], d[3]]));
            // Within [span/4, 3·span/4) of the span: never at a span's edge.
            let offset = span / 4 + r % (span / 2).max(1);
            start_of(day) + TimeDelta::seconds(i64::from(i) * span + offset)
        })
        .collect()
}

/// Why an unattended sync may not run now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotBefore(pub Timestamp);

/// The unattended syncs of one access on its current day: what [`admit`](Self::admit)
/// counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncLedger {
    /// The UTC day counted.
    pub day: Date,
    /// Syncs admitted on it.
    pub used: u16,
    /// No sync before this (a bank's `ACCESS_EXCEEDED`, say).
    pub not_before: Option<Timestamp>,
}

impl SyncLedger {
    /// A ledger with nothing used.
    #[must_use]
    pub fn new(day: Date) -> Self {
        Self {
            day,
            used: 0,
            not_before: None,
        }
    }

    /// Syncs used on `day`.
    #[must_use]
    pub fn used_on(&self, day: Date) -> u16 {
        if day == self.day { self.used } else { 0 }
    }

    /// Syncs left on the day of `now` under `allowance`.
    #[must_use]
    pub fn left(&self, now: Timestamp, allowance: u16) -> u16 {
        allowance.saturating_sub(self.used_on(day_of(now)))
    }

    /// Admits one unattended sync at `now` (and counts it), or says when the next one may
    /// run: after a postponement, or, with the day's allowance spent, at the next midnight
    /// UTC. Never lets a day's count exceed `allowance`.
    ///
    /// # Errors
    /// [`NotBefore`] with the earliest time to ask again.
    pub fn admit(&mut self, now: Timestamp, allowance: u16) -> Result<(), NotBefore> {
        if let Some(t) = self.not_before
            && now < t
        {
            return Err(NotBefore(t));
        }
        let today = day_of(now);
        if today != self.day {
            // Another day: but a clock that went back must not reopen a spent day.
            if today < self.day {
                return Err(NotBefore(start_of(self.day)));
            }
            self.day = today;
            self.used = 0;
        }
        if self.used >= allowance {
            let tomorrow = today.checked_add_days(Days::new(1)).unwrap_or(today);
            return Err(NotBefore(start_of(tomorrow)));
        }
        self.used += 1;
        Ok(())
    }

    /// The bank refused for now (`ACCESS_EXCEEDED`): no sync before `retry_after` from
    /// `now`, and at least until the next slot; never a retry in a loop.
    pub fn postpone(
        &mut self,
        now: Timestamp,
        retry_after: Option<TimeDelta>,
        next_slot: Timestamp,
    ) {
        let wait = now
            + retry_after
                .unwrap_or(TimeDelta::zero())
                .max(TimeDelta::minutes(15));
        self.not_before = Some(wait.max(next_slot));
    }

    /// The next scheduled sync after `now`: the first slot of today still ahead with syncs
    /// left, else the first slot of a later day; never before a postponement. `None` for
    /// an allowance of 0.
    #[must_use]
    pub fn next_sync(&self, now: Timestamp, allowance: u16, seed: &[u8]) -> Option<Timestamp> {
        if allowance == 0 {
            return None;
        }
        let earliest = self.not_before.map_or(now, |t| t.max(now));
        let mut day = day_of(earliest);
        for _ in 0..3 {
            let used = self.used_on(day);
            let ahead = slots(day, allowance, seed)
                .into_iter()
                .skip(usize::from(used))
                .find(|s| *s >= earliest);
            if used < allowance
                && let Some(s) = ahead
            {
                return Some(s);
            }
            day = day.checked_add_days(Days::new(1))?;
        }
        slots(day, allowance, seed).into_iter().next()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    fn t(h: u32, m: u32) -> Timestamp {
        chrono::Utc
            .with_ymd_and_hms(2026, 3, 10, h, m, 0)
            .single()
            .expect("valid")
    }

    #[test]
    fn the_allowance_is_the_smaller_of_policy_and_consent() {
        let p = SyncPolicy::default();
        assert_eq!(p.allowance(4), 4);
        assert_eq!(p.allowance(1), 1);
        assert_eq!(p.allowance(24), 4);
        assert_eq!(p.allowance(0), 0);
    }

    #[test]
    fn slots_spread_over_the_day_and_differ_per_access() {
        let day = t(0, 0).date_naive();
        let a = slots(day, 4, b"access-a");
        assert_eq!(a.len(), 4);
        for (i, s) in a.iter().enumerate() {
            let from = start_of(day) + TimeDelta::hours(6 * i as i64);
            assert!(
                *s >= from + TimeDelta::minutes(90) && *s < from + TimeDelta::minutes(270),
                "{s}"
            );
        }
        assert_ne!(a, slots(day, 4, b"access-b"), "accesses spread out");
        assert_eq!(a, slots(day, 4, b"access-a"), "stable per access");
        assert!(slots(day, 0, b"x").is_empty());
    }

    #[test]
    fn a_spent_day_waits_for_midnight_and_a_postponement_is_kept() {
        let mut l = SyncLedger::new(t(0, 0).date_naive());
        assert!(l.admit(t(1, 0), 2).is_ok());
        assert!(l.admit(t(2, 0), 2).is_ok());
        assert_eq!(
            l.admit(t(3, 0), 2),
            Err(NotBefore(t(0, 0) + TimeDelta::days(1)))
        );
        assert_eq!(l.left(t(3, 0), 2), 0);
        assert_eq!(l.left(t(3, 0) + TimeDelta::days(1), 2), 2);
        assert!(l.admit(t(0, 1) + TimeDelta::days(1), 2).is_ok());
        let next = t(12, 0) + TimeDelta::days(1);
        l.postpone(
            t(11, 0) + TimeDelta::days(1),
            Some(TimeDelta::seconds(30)),
            next,
        );
        assert_eq!(
            l.admit(t(11, 30) + TimeDelta::days(1), 2),
            Err(NotBefore(next))
        );
        assert!(
            l.next_sync(t(11, 30) + TimeDelta::days(1), 2, b"a")
                .is_some_and(|s| s >= next)
        );
    }

    #[test]
    fn consents_are_valid_expiring_expired_or_revoked() {
        let p = SyncPolicy::default();
        let today = t(0, 0).date_naive();
        let until = |d: i64| today + TimeDelta::days(d);
        assert_eq!(
            AccessStatus::of(ConsentStatus::Valid, until(30), today, &p),
            AccessStatus::Valid
        );
        assert_eq!(
            AccessStatus::of(ConsentStatus::Valid, until(6), today, &p),
            AccessStatus::Expiring
        );
        assert_eq!(
            AccessStatus::of(ConsentStatus::Valid, until(-1), today, &p),
            AccessStatus::Expired
        );
        assert_eq!(
            AccessStatus::of(ConsentStatus::Expired, until(30), today, &p),
            AccessStatus::Expired
        );
        assert_eq!(
            AccessStatus::of(ConsentStatus::RevokedByPsu, until(30), today, &p),
            AccessStatus::Revoked
        );
        assert!(AccessStatus::Expiring.syncs() && !AccessStatus::Revoked.syncs());
    }

    #[test]
    fn incremental_syncs_reach_back_an_overlap_but_not_past_the_period() {
        let p = SyncPolicy::default();
        let today = t(0, 0).date_naive();
        assert_eq!(p.sync_from(None, today, 90), today - TimeDelta::days(89));
        assert_eq!(
            p.sync_from(Some(today - TimeDelta::days(1)), today, 90),
            today - TimeDelta::days(4)
        );
        assert_eq!(
            p.sync_from(Some(today - TimeDelta::days(400)), today, 90),
            today - TimeDelta::days(89)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// Whatever the clock does (forward in steps of any size, back now and then),
        /// however often syncs are asked for, and whatever the bank postpones, no UTC day
        /// ever sees more admitted syncs than the allowance.
        #[test]
        fn no_day_exceeds_its_allowance(
            allowance in 0u16..6,
            steps in proptest::collection::vec((-3_600i64..30_000, any::<bool>(), proptest::option::of(0i64..7_200)), 1..200),
        ) {
            let mut now = t(0, 0);
            let mut ledger = SyncLedger::new(now.date_naive());
            let mut admitted: std::collections::BTreeMap<Date, u16> = Default::default();
            for (secs, ask, postpone) in steps {
                now += TimeDelta::seconds(secs);
                if ask && ledger.admit(now, allowance).is_ok() {
                    *admitted.entry(now.date_naive()).or_insert(0) += 1;
                }
                if let Some(p) = postpone {
                    let next = ledger.next_sync(now, allowance.max(1), b"a").unwrap_or(now);
                    ledger.postpone(now, Some(TimeDelta::seconds(p)), next);
                }
                if let Some(s) = ledger.next_sync(now, allowance, b"a") {
                    prop_assert!(s >= now);
                }
            }
            for (day, n) in admitted {
                prop_assert!(n <= allowance, "{day}: {n} > {allowance}");
            }
        }
    }
}
