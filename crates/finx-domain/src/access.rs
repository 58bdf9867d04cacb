//! Ongoing access (issue 13): a bank connection that stays, with a recurring consent, and
//! the syncs that keep it fresh.
//!
//! An [`Access`] is what an ongoing flow leaves behind: the bank, the consent and the bank
//! session it authorises (never a password), the accounts the end user chose, and the
//! [`SyncLedger`] that counts its unattended syncs. A [`SyncJob`] is one sync of it,
//! scheduled or asked for, kept in the store so that it survives a restart and runs once
//! across instances: every claim of a job raises its `attempt`, and only the claim holding
//! the latest attempt may record the job's outcome.

use std::fmt;

use chrono::TimeDelta;

use crate::bank::AccountDetails;
use crate::flow::BankSession;
use crate::ids::{AccessId, ClientId, InstitutionId, SyncId};
use crate::sca::{Consent, ConsentStatus};
use crate::schedule::{AccessStatus, NotBefore, SyncLedger, SyncPolicy, day_of, start_of};
use crate::values::SyncPeriod;
use crate::{Date, Timestamp};

/// The customer's id for its end user (`user_id` of `POST /ongoing/access`): 1 to 255
/// printable characters, no control characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

/// A `user_id` that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("user_id must be 1 to 255 characters without control characters")]
pub struct UserIdError;

impl UserId {
    /// Parses a user id.
    ///
    /// # Errors
    /// [`UserIdError`] when empty, longer than 255 characters or holding a control
    /// character.
    pub fn parse(raw: &str) -> Result<Self, UserIdError> {
        let n = raw.chars().count();
        if (1..=255).contains(&n) && !raw.chars().any(char::is_control) && !raw.trim().is_empty() {
            Ok(Self(raw.to_owned()))
        } else {
            Err(UserIdError)
        }
    }

    /// The id.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({:?})", self.0)
    }
}

/// What an ongoing flow asks for besides a one-time flow's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ongoing {
    /// The customer's end user.
    pub user_id: UserId,
    /// The access this flow renews with a new consent, when it does: the same access,
    /// accounts and transaction ids continue.
    pub renews: Option<AccessId>,
}

/// Why an access's last sync failed, as the customer is told (the HTTP adapter gives each a
/// finX error code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncFailure {
    /// The bank says the consent expired (`CONSENT_EXPIRED`): the user must renew it.
    ConsentExpired,
    /// The bank says the consent is invalid or unknown (revoked by the user at the bank).
    ConsentRevoked,
    /// The bank refused for now (`ACCESS_EXCEEDED`, 429): postponed.
    RateLimited,
    /// The bank could not be reached or did not answer in time.
    BankUnavailable,
    /// The bank answered with an error.
    BankError,
    /// finX itself failed (storage).
    Internal,
}

impl SyncFailure {
    /// Every variant, in declaration order (for documenting the closed set).
    pub const ALL: [Self; 6] = [
        Self::ConsentExpired,
        Self::ConsentRevoked,
        Self::RateLimited,
        Self::BankUnavailable,
        Self::BankError,
        Self::Internal,
    ];

    /// The stable name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConsentExpired => "consent_expired",
            Self::ConsentRevoked => "consent_revoked",
            Self::RateLimited => "bank_rate_limited",
            Self::BankUnavailable => "bank_unavailable",
            Self::BankError => "bank_error",
            Self::Internal => "internal",
        }
    }

    /// Reads a stable name.
    #[must_use]
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == raw)
    }

    /// The finX error code: 10020 consent expired, 10021 consent revoked, 20001 the bank
    /// asked to wait, 40000 bank unreachable, 20000 bank error, 30000 internal.
    #[must_use]
    pub fn code(self) -> u32 {
        match self {
            Self::ConsentExpired => 10020,
            Self::ConsentRevoked => 10021,
            Self::RateLimited => 20001,
            Self::BankUnavailable => 40000,
            Self::BankError => 20000,
            Self::Internal => 30000,
        }
    }

    /// Whether the access's consent is over: no unattended sync may follow.
    #[must_use]
    pub fn ends_consent(self) -> bool {
        matches!(self, Self::ConsentExpired | Self::ConsentRevoked)
    }
}

/// A bank connection kept alive by a recurring consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// Its id: stable across renewals, so account and transaction ids stay the same.
    pub id: AccessId,
    /// The customer.
    pub client_id: ClientId,
    /// The customer's end user.
    pub user_id: UserId,
    /// The bank.
    pub institution: InstitutionId,
    /// The bank session the consent authorises (redacted `Debug`; sealed at rest).
    pub session: BankSession,
    /// The consent.
    pub consent: Consent,
    /// The accounts the end user chose.
    pub accounts: Vec<AccountDetails>,
    /// Days of history the first fetch took.
    pub sync_period: SyncPeriod,
    /// Unattended syncs counted.
    pub ledger: SyncLedger,
    /// The last successful sync.
    pub synced_at: Option<Timestamp>,
    /// The latest booked day seen, where the next incremental sync starts (minus overlap).
    pub last_booked: Option<Date>,
    /// Why the last sync failed, if it did.
    pub last_error: Option<SyncFailure>,
    /// Created.
    pub created_at: Timestamp,
    /// Bumped by every change; updates are a compare-and-swap on it.
    pub version: u64,
}

impl Access {
    /// The jitter seed of its slots.
    #[must_use]
    pub fn seed(&self) -> &[u8] {
        self.id.as_str().as_bytes()
    }

    /// Its unattended syncs a day under `policy` (none for a consent that is not
    /// recurring).
    #[must_use]
    pub fn allowance(&self, policy: &SyncPolicy) -> u16 {
        if !self.consent.recurring {
            return 0;
        }
        policy.allowance(self.consent.frequency_per_day)
    }

    /// Where its consent stands on the day of `now`.
    #[must_use]
    pub fn status(&self, now: Timestamp, policy: &SyncPolicy) -> AccessStatus {
        AccessStatus::of(
            self.consent.status,
            self.consent.valid_until,
            day_of(now),
            policy,
        )
    }

    /// Syncs left on the day of `now`.
    #[must_use]
    pub fn syncs_left(&self, now: Timestamp, policy: &SyncPolicy) -> u16 {
        if self.status(now, policy).syncs() {
            self.ledger.left(now, self.allowance(policy))
        } else {
            0
        }
    }

    /// The next scheduled sync after `now`: the next jittered slot, or with `interval` (for
    /// tests) `now + interval`; never before a postponement, never on a spent day, and none
    /// once the consent is over or past its last day.
    #[must_use]
    pub fn next_sync(
        &self,
        now: Timestamp,
        policy: &SyncPolicy,
        interval: Option<TimeDelta>,
    ) -> Option<Timestamp> {
        if !self.status(now, policy).syncs() {
            return None;
        }
        let allowance = self.allowance(policy);
        let next = match interval {
            None => self.ledger.next_sync(now, allowance, self.seed())?,
            Some(step) => {
                let mut ledger = self.ledger;
                let at = (now + step).max(self.ledger.not_before.unwrap_or(now));
                match ledger.admit(at, allowance) {
                    Ok(()) => at,
                    Err(NotBefore(t)) => t.max(at),
                }
            }
        };
        let last = start_of(self.consent.valid_until) + TimeDelta::days(1);
        (next < last).then_some(next)
    }

    /// Admits one unattended sync at `now` (see [`SyncLedger::admit`]).
    ///
    /// # Errors
    /// [`NotBefore`] when the day's allowance is spent or the access is postponed; the
    /// consent's end when it is over.
    pub fn admit(&mut self, now: Timestamp, policy: &SyncPolicy) -> Result<(), AdmitError> {
        if !self.status(now, policy).syncs() {
            return Err(AdmitError::ConsentOver);
        }
        let allowance = self.allowance(policy);
        self.ledger
            .admit(now, allowance)
            .map_err(|NotBefore(t)| AdmitError::NotBefore(t))
    }

    /// Records a failed sync: the consent ends on `ConsentExpired`/`ConsentRevoked`; a
    /// rate limit postpones the access (never a retry in a loop).
    pub fn sync_failed(
        &mut self,
        failure: SyncFailure,
        now: Timestamp,
        retry_after: Option<TimeDelta>,
        policy: &SyncPolicy,
    ) {
        self.last_error = Some(failure);
        match failure {
            SyncFailure::ConsentExpired => self.consent.status = ConsentStatus::Expired,
            SyncFailure::ConsentRevoked => self.consent.status = ConsentStatus::RevokedByPsu,
            SyncFailure::RateLimited => {
                let allowance = self.allowance(policy);
                let next = self
                    .ledger
                    .next_sync(now, allowance, self.seed())
                    .unwrap_or(now);
                self.ledger.postpone(now, retry_after, next);
            }
            _ => {}
        }
    }

    /// Records a successful sync at `now` that saw booked days up to `last_booked`.
    pub fn sync_succeeded(&mut self, now: Timestamp, last_booked: Option<Date>) {
        self.synced_at = Some(now);
        self.last_error = None;
        self.last_booked = match (self.last_booked, last_booked) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    /// Takes a renewed consent, its session and the accounts the user chose this time: the
    /// same access continues (account ids derive from the access and the bank's ids, so
    /// an account chosen again keeps its id and history).
    pub fn renew(&mut self, session: BankSession, consent: Consent, accounts: Vec<AccountDetails>) {
        self.session = session;
        self.consent = consent;
        self.accounts = accounts;
        self.last_error = None;
        self.ledger.not_before = None;
    }
}

/// Why an unattended sync may not run now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdmitError {
    /// Not before this time (allowance spent, or postponed).
    NotBefore(Timestamp),
    /// The consent is expired or revoked.
    ConsentOver,
}

/// What started a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// The scheduler, at a slot.
    Scheduled,
    /// The customer (`POST /rest/accesses/{id}/syncs`).
    Manual,
}

impl JobKind {
    /// Every variant, in declaration order (for documenting the closed set).
    pub const ALL: [Self; 2] = [Self::Scheduled, Self::Manual];

    /// The stable name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Manual => "manual",
        }
    }

    /// Reads a stable name.
    #[must_use]
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }
}

/// Where a sync stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// Waiting for its time and a runner.
    Queued,
    /// A runner holds it (until its lease ends).
    Running,
    /// Done; its changes are visible.
    Succeeded,
    /// Done without changes; see the error.
    Failed,
}

impl JobStatus {
    /// Every variant, in declaration order (for documenting the closed set).
    pub const ALL: [Self; 4] = [Self::Queued, Self::Running, Self::Succeeded, Self::Failed];

    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    /// Reads a wire name.
    #[must_use]
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Whether it has ended.
    #[must_use]
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

/// What a sync changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncCounts {
    /// New transactions.
    pub added: u64,
    /// Transactions that changed.
    pub modified: u64,
    /// Pending transactions the bank no longer reports.
    pub removed: u64,
}

/// One sync of an access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncJob {
    /// Its id.
    pub id: SyncId,
    /// The access.
    pub access_id: AccessId,
    /// What started it.
    pub kind: JobKind,
    /// Where it stands.
    pub status: JobStatus,
    /// Not before this.
    pub run_at: Timestamp,
    /// How many times a runner claimed it; only the latest claim may finish it.
    pub attempt: u32,
    /// A runner holds it until then; past it, another runner may take it over.
    pub lease_until: Option<Timestamp>,
    /// Created.
    pub created_at: Timestamp,
    /// Last claimed.
    pub started_at: Option<Timestamp>,
    /// Ended.
    pub finished_at: Option<Timestamp>,
    /// What it changed (succeeded).
    pub counts: Option<SyncCounts>,
    /// Why it failed.
    pub error: Option<SyncFailure>,
}

impl SyncJob {
    /// A queued job.
    #[must_use]
    pub fn queued(
        id: SyncId,
        access_id: AccessId,
        kind: JobKind,
        run_at: Timestamp,
        now: Timestamp,
    ) -> Self {
        Self {
            id,
            access_id,
            kind,
            status: JobStatus::Queued,
            run_at,
            attempt: 0,
            lease_until: None,
            created_at: now,
            started_at: None,
            finished_at: None,
            counts: None,
            error: None,
        }
    }
}

/// A runner's hold on a job: only the holder of the latest attempt may finish it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// The job.
    pub job: SyncId,
    /// The attempt this claim is.
    pub attempt: u32,
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::bank::{AccountDetails, AccountType};
    use crate::money::Currency;

    fn at(h: u32) -> Timestamp {
        chrono::Utc
            .with_ymd_and_hms(2026, 3, 10, h, 0, 0)
            .single()
            .expect("valid")
    }

    fn access(valid_days: i64) -> Access {
        Access {
            id: AccessId::derive(&["a"]),
            client_id: ClientId::parse("demo").expect("id"),
            user_id: UserId::parse("user-1").expect("user"),
            institution: InstitutionId::parse("sandbox").expect("id"),
            session: BankSession::new("s".into()),
            consent: Consent {
                id: "c".into(),
                status: ConsentStatus::Valid,
                valid_until: at(0).date_naive() + TimeDelta::days(valid_days),
                frequency_per_day: 4,
                recurring: true,
                accounts: vec![],
            },
            accounts: vec![AccountDetails {
                external_id: "1".into(),
                iban: None,
                account_number: None,
                bank_code: None,
                bic: None,
                bank_name: "b".into(),
                currency: Currency::parse("EUR").expect("eur"),
                account_type: AccountType::Giro,
                name: "n".into(),
                owner: "o".into(),
                is_jointly_managed: false,
                card_last4: None,
            }],
            sync_period: SyncPeriod::default(),
            ledger: SyncLedger::new(at(0).date_naive()),
            synced_at: None,
            last_booked: None,
            last_error: None,
            created_at: at(0),
            version: 0,
        }
    }

    #[test]
    fn user_ids_are_bounded_and_printable() {
        assert!(UserId::parse("customer-42").is_ok());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("  ").is_err());
        assert!(UserId::parse("a\nb").is_err());
        assert!(UserId::parse(&"x".repeat(256)).is_err());
        assert!(UserId::parse(&"ü".repeat(255)).is_ok());
    }

    #[test]
    fn a_spent_day_refuses_until_midnight_and_an_ended_consent_refuses_for_good() {
        let p = SyncPolicy::default();
        let mut a = access(30);
        for h in 1..=4 {
            assert_eq!(a.admit(at(h), &p), Ok(()));
        }
        assert_eq!(a.syncs_left(at(5), &p), 0);
        assert_eq!(
            a.admit(at(5), &p),
            Err(AdmitError::NotBefore(at(0) + TimeDelta::days(1)))
        );
        a.sync_failed(SyncFailure::ConsentExpired, at(6), None, &p);
        assert_eq!(a.status(at(6), &p), AccessStatus::Expired);
        assert_eq!(
            a.admit(at(6) + TimeDelta::days(1), &p),
            Err(AdmitError::ConsentOver)
        );
        assert_eq!(a.next_sync(at(6), &p, None), None);
    }

    #[test]
    fn a_rate_limit_postpones_and_the_interval_respects_the_allowance() {
        let p = SyncPolicy::default();
        let mut a = access(30);
        a.sync_failed(
            SyncFailure::RateLimited,
            at(1),
            Some(TimeDelta::hours(2)),
            &p,
        );
        let after = a.ledger.not_before.expect("postponed");
        assert!(after >= at(3));
        assert!(a.admit(at(2), &p).is_err());
        assert!(a.next_sync(at(1), &p, None).is_some_and(|t| t >= after));
        let mut b = access(30);
        let step = Some(TimeDelta::seconds(5));
        assert_eq!(
            b.next_sync(at(1), &p, step),
            Some(at(1) + TimeDelta::seconds(5))
        );
        for h in 1..=4 {
            assert_eq!(b.admit(at(h), &p), Ok(()));
        }
        assert_eq!(
            b.next_sync(at(5), &p, step),
            Some(at(0) + TimeDelta::days(1)),
            "a spent day waits for midnight even when sped up"
        );
    }

    #[test]
    fn no_sync_is_planned_past_the_consent_s_last_day() {
        let p = SyncPolicy::default();
        let a = access(0);
        assert_eq!(a.status(at(23), &p), AccessStatus::Expiring);
        let next = a.next_sync(at(23), &p, None);
        assert!(
            next.is_none_or(|t| t < at(0) + TimeDelta::days(1)),
            "{next:?}"
        );
    }

    #[test]
    fn renewal_keeps_the_access_and_clears_what_ended_it() {
        let p = SyncPolicy::default();
        let mut a = access(30);
        a.sync_succeeded(at(1), Some(at(0).date_naive()));
        a.sync_failed(SyncFailure::ConsentRevoked, at(2), None, &p);
        assert_eq!(a.status(at(2), &p), AccessStatus::Revoked);
        let mut consent = a.consent.clone();
        consent.status = ConsentStatus::Valid;
        consent.id = "c2".into();
        let id = a.id.clone();
        let accounts = a.accounts.clone();
        a.renew(BankSession::new("s2".into()), consent, accounts);
        assert_eq!(a.id, id);
        assert_eq!(a.status(at(3), &p), AccessStatus::Valid);
        assert_eq!(a.last_error, None);
        assert_eq!(a.last_booked, Some(at(0).date_naive()));
        assert_eq!(
            SyncFailure::parse("consent_revoked"),
            Some(SyncFailure::ConsentRevoked)
        );
    }
}
