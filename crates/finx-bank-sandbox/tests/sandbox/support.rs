//! A clock the tests move by hand, and shortcuts for logging in.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDate;
use finx_bank_sandbox::BankPage;
use finx_bank_sandbox::{SandboxBank, SandboxConfig};
use finx_domain::flow::BankSession;
use finx_domain::ids::InstitutionId;
use finx_domain::sca::{BankStep, StepAnswer};
use finx_domain::{Date, Timestamp};
use finx_ports::{BankConnector, BankError, BankReply, Clock, ConsentRequest, ReturnTo};
use url::Url;

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

    /// Moves the clock forward by `by`.
    pub(crate) fn advance(&self, by: chrono::TimeDelta) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) += by;
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
        ..SandboxConfig::default()
    };
    (SandboxBank::new(config, clock.clone()), clock)
}

pub(crate) fn institution(id: &str) -> InstitutionId {
    InstitutionId::parse(id).expect("valid institution id")
}

/// A one-time consent, as finX asks for it.
pub(crate) fn consent() -> ConsentRequest {
    ConsentRequest {
        psu: finx_ports::PsuContext::default(),
        ibans: Vec::new(),
        recurring: false,
        valid_until: days_from_today(1),
        frequency_per_day: 1,
    }
}

/// finX's return addresses.
pub(crate) fn return_to() -> ReturnTo {
    ReturnTo {
        ok: Url::parse("http://finx.test/widget/callback?state=s&ok=1").expect("url"),
        nok: Url::parse("http://finx.test/widget/callback?state=s&ok=0").expect("url"),
    }
}

/// The login form's answer.
pub(crate) fn credentials(user: &str, secret: &str) -> StepAnswer {
    StepAnswer::Login(vec![
        ("user".to_owned(), user.to_owned()),
        ("pin".to_owned(), secret.to_owned()),
    ])
}

/// Begins at `institution`, expecting a step.
pub(crate) async fn begin(bank: &SandboxBank, institution_id: &str) -> (BankSession, BankStep) {
    match bank
        .begin(&institution(institution_id), &consent(), &return_to())
        .await
        .expect("begin")
    {
        BankReply::Next { session, step } => (session, step),
        BankReply::Done { .. } => panic!("a bank always asks something first"),
    }
}

/// Gives `answer` in `session` at `institution`.
pub(crate) async fn answer(
    bank: &SandboxBank,
    institution_id: &str,
    session: &BankSession,
    answer: StepAnswer,
) -> Result<BankReply, BankError> {
    bank.answer(&institution(institution_id), session, &answer, &return_to())
        .await
}

/// Begins at an embedded or decoupled bank and answers its login form.
pub(crate) async fn start(
    bank: &SandboxBank,
    institution_id: &str,
    user: &str,
    secret: &str,
) -> Result<BankReply, BankError> {
    let (session, step) = begin(bank, institution_id).await;
    assert!(matches!(step, BankStep::Login { .. }), "{step:?}");
    answer(bank, institution_id, &session, credentials(user, secret)).await
}

/// The session of a reply that asks for more.
pub(crate) fn next(reply: BankReply) -> (BankSession, BankStep) {
    match reply {
        BankReply::Next { session, step } => (session, step),
        BankReply::Done { .. } => panic!("the bank should ask for more"),
    }
}

/// The session of a reply that is done.
pub(crate) fn done(reply: BankReply) -> BankSession {
    match reply {
        BankReply::Done { session, .. } => session,
        BankReply::Next { step, .. } => panic!("the bank should be done, asks {step:?}"),
    }
}

/// The authorisation id at the end of a redirect step's URL.
pub(crate) fn authorisation_of(step: &BankStep) -> String {
    let BankStep::Redirect { url } = step else {
        panic!("a redirect step: {step:?}");
    };
    url.path_segments()
        .and_then(|mut s| s.next_back())
        .expect("id")
        .to_owned()
}

/// Logs `user` in at `institution` with PIN `demo`, through whatever the bank asks: the
/// pushTAN at the embedded bank, the bank's pages at the redirect bank, the bank app at
/// the decoupled bank, each with the right TAN.
pub(crate) async fn login(bank: &SandboxBank, institution_id: &str, user: &str) -> BankSession {
    let (mut session, mut step) = begin(bank, institution_id).await;
    for _ in 0..8 {
        let reply = match &step {
            BankStep::Login { .. } => {
                answer(bank, institution_id, &session, credentials(user, "demo")).await
            }
            BankStep::ChooseMethod { .. } => {
                answer(
                    bank,
                    institution_id,
                    &session,
                    StepAnswer::Method("push".into()),
                )
                .await
            }
            BankStep::Tan { .. } => {
                answer(
                    bank,
                    institution_id,
                    &session,
                    StepAnswer::Tan("123456".into()),
                )
                .await
            }
            BankStep::Redirect { .. } => {
                let id = authorisation_of(&step);
                if let BankPage::Login { .. } = bank.bank_page(&id) {
                    let page = bank.bank_login(&id, user, "demo").await;
                    if let BankPage::Tan { .. } = page {
                        assert!(matches!(bank.bank_tan(&id, "123456"), BankPage::Back(_)));
                    }
                }
                answer(
                    bank,
                    institution_id,
                    &session,
                    StepAnswer::Returned { ok: true },
                )
                .await
            }
            BankStep::Decoupled { .. } => {
                for a in bank.waiting_approvals() {
                    let _ = bank.decide(&a.id, true, "123456");
                }
                answer(bank, institution_id, &session, StepAnswer::Poll).await
            }
        };
        match reply.expect("the bank takes the answer") {
            BankReply::Done { session, .. } => return session,
            BankReply::Next {
                session: s,
                step: st,
            } => {
                session = s;
                step = st;
            }
        }
    }
    panic!("the bank asked too many steps");
}
