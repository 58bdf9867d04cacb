//! A clock the tests move by hand, and shortcuts for logging in.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDate;
use finx_bank_sandbox::{SandboxBank, SandboxConfig};
use finx_domain::flow::BankSession;
use finx_domain::ids::InstitutionId;
use finx_domain::{Date, Timestamp};
use finx_ports::{BankConnector, BankCredentials, Clock, LoginOutcome};

/// The day most tests run on: a Friday.
pub(crate) const TODAY: (i32, u32, u32) = (2026, 3, 20);

/// The institution of the customer guide.
pub(crate) const FINX: &str = "sandbox-90094815";

/// A clock that says what it is told.
pub(crate) struct FakeClock(Mutex<Timestamp>);

impl FakeClock {
    /// A clock at noon UTC on `date`.
    pub(crate) fn at(date: Date) -> Arc<Self> {
        Arc::new(Self(Mutex::new(noon(date))))
    }

    /// Moves the clock to noon UTC on `date`.
    pub(crate) fn set(&self, date: Date) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = noon(date);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn noon(date: Date) -> Timestamp {
    date.and_hms_opt(12, 0, 0).expect("noon exists").and_utc()
}

pub(crate) fn day(y: i32, m: u32, d: u32) -> Date {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

pub(crate) fn today() -> Date {
    day(TODAY.0, TODAY.1, TODAY.2)
}

/// `today()` moved by `days`.
pub(crate) fn days_from_today(days: i64) -> Date {
    today() + chrono::Duration::days(days)
}

/// A sandbox with `seed` whose clock stands at `TODAY`.
pub(crate) fn sandbox(seed: u64) -> (SandboxBank, Arc<FakeClock>) {
    let clock = FakeClock::at(today());
    let config = SandboxConfig {
        seed,
        slow_delay: Duration::from_millis(50),
    };
    (SandboxBank::new(config, clock.clone()), clock)
}

pub(crate) fn institution(id: &str) -> InstitutionId {
    InstitutionId::parse(id).expect("valid institution id")
}

pub(crate) fn credentials(user: &str, secret: &str) -> BankCredentials {
    BankCredentials {
        user: user.to_owned(),
        secret: secret.to_owned(),
    }
}

/// Logs `user` in at `institution` with PIN `demo`, answering the SCA with the right TAN.
pub(crate) async fn login(bank: &SandboxBank, institution_id: &str, user: &str) -> BankSession {
    let outcome = bank
        .start_login(&institution(institution_id), &credentials(user, "demo"))
        .await
        .expect("login");
    match outcome {
        LoginOutcome::Authenticated { session } => session,
        LoginOutcome::ScaRequired { session, .. } => bank
            .submit_sca(&session, "123456")
            .await
            .expect("TAN accepted"),
    }
}
