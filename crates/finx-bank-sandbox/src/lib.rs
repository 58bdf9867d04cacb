//! # The finX sandbox bank
//!
//! [`SandboxBank`] is a [`BankConnector`] that serves three made-up German banks with
//! realistic, deterministic account data. Integrate against it before you go live: every
//! login scenario a real bank can produce (SCA, wrong PIN, wrong TAN, locked login, bank
//! down, slow bank, very large account) is one user name away.
//!
//! ## Banks
//!
//! Each bank authenticates the way a kind of real bank does (XS2A `ASPSP-SCA-Approach`):
//!
//! | Institution id     | Name                            | BIC           | Bank code  | Approach  |
//! |--------------------|---------------------------------|---------------|------------|-----------|
//! | `sandbox-90094815` | finX Sandbox Bank               | `FINXDEB1XXX` | `90094815` | embedded  |
//! | `sandbox-90094816` | Sparkasse Musterstadt (Sandbox) | `SPMUDEM1XXX` | `90094816` | redirect  |
//! | `sandbox-90094817` | Testbank Direkt (Sandbox)       | `TBDIDEF1XXX` | `90094817` | decoupled |
//!
//! - **Embedded** (90094815): `begin` asks for the login form (fields `user`, labelled
//!   "Anmeldename", and `pin`, "PIN"); then a choice among `push` ("pushTAN"), `chip`
//!   ("chipTAN optisch", with flicker data) and `photo` ("photoTAN", with a 200 × 200 PNG);
//!   then the TAN.
//! - **Redirect** (90094816): `begin` answers a redirect to the bank's own page
//!   `/sandbox-bank/authorise/<id>` at [`SandboxConfig::public_url`], served by
//!   [`web::router`]. There the user logs in ("Anmeldename oder Legitimations-ID" / "PIN"),
//!   confirms with the TAN, or cancels; three wrong PINs or TANs reject. The bank then sends
//!   the browser to finX's `ok` or `nok` return address. finX's `Returned` answer asks the
//!   bank's record, which decides (the route taken is a hint); a user who came back before
//!   finishing gets the same redirect again.
//! - **Decoupled** (90094817): `begin` asks for the login form ("Kontonummer oder
//!   Benutzername" / "Passwort"), then a decoupled step polled every 2 s. The bank app page
//!   `/sandbox-bank/app` lists the approvals waiting; one is approved with the TAN or
//!   declined. Nobody acting, it decides itself after [`SandboxConfig::decoupled_delay`]
//!   (on the [`Clock`]): approved, or declined for `decoupled-reject`.
//!
//! Any other institution id is `BankError::UnknownInstitution`.
//!
//! ## Test logins
//!
//! The same logins work at every bank. The PIN is `demo` ([`SANDBOX_PIN`]) and the TAN is
//! `123456` ([`SANDBOX_TAN`]). User names are case-insensitive and may carry surrounding
//! spaces; PINs are exact. An empty user name or PIN, or one over 256 bytes, is
//! `BankError::InvalidCredentials` whoever the user. A consent ended by finX
//! (`end_consent`) or revoked by the user ([`SandboxBank::revoke`]) reads nothing any more
//! (`BankError::ConsentRevoked`; XS2A `CONSENT_INVALID`).
//!
//! | User               | PIN    | Outcome                                                                                  |
//! |--------------------|--------|------------------------------------------------------------------------------------------|
//! | `demo`             | `demo` | SCA as the bank does it; TAN `123456` passes, any other is `InvalidTan` and may be retried. |
//! | `nosca`            | `demo` | Done right after the login, without SCA; the same data as `demo`.                        |
//! | `slow`             | `demo` | Like `demo`, but the login and every transaction fetch first wait [`SandboxConfig::slow_delay`]. |
//! | `bigdata`          | `demo` | Like `demo`; one giro account with exactly 10 000 transactions over its 730 days of history. |
//! | `decoupled-reject` | `demo` | Like `demo`, but declines in the decoupled bank's app (`BankError::Rejected`).           |
//! | `redirect-cancel`  | `demo` | Like `demo`, but cancels on the redirect bank's pages (`BankError::CancelledByUser`).    |
//! | `moving`           | `demo` | One `giro` account whose bank day starts 60 days back and moves one day forward with each balance read (one per sync): new transactions arrive, pending card payments book (restaurants with the tip, under a new id), and one bakery payment in five is reversed. |
//! | `throttled`        | `demo` | Like `demo`, but every balance read of an account under a consent after the first is `BankError::RateLimited` with a retry after 7200 s (XS2A: 429 `ACCESS_EXCEEDED`, `Retry-After`). |
//! | `locked`           | any    | `BankError::Locked`.                                                                     |
//! | `unavailable`      | any    | `BankError::Unavailable`.                                                                |
//! | anything else      | any    | `BankError::InvalidCredentials`, as is a known user with a wrong PIN.                    |
//!
//! At the redirect bank these outcomes happen on its pages and reach finX through the
//! `Returned` answer. Every consent the sandbox finishes with is `valid`, with the terms
//! finX asked for in `begin`, and covers every account (the user chooses in finX).
//!
//! ## Accounts
//!
//! `demo`, `nosca` and `slow` see the same household, Erika Mustermann's, with three
//! accounts whose external ids are `giro` (Girokonto), `savings` (Tagesgeld) and `card`
//! (Visa Classic: no IBAN, card ending `1111`). `bigdata` sees one `giro` account. All are
//! in EUR; IBANs are built from the bank code and these account numbers:
//!
//! | Bank                            | `giro`                                          | `savings`  | `giro` of `bigdata` |
//! |---------------------------------|-------------------------------------------------|------------|---------------------|
//! | finX Sandbox Bank               | 2881 (`DE82 9009 4815 0000 0028 81`), "MUSTERMANN, ERIKA" | 2882 | 2889              |
//! | Sparkasse Musterstadt (Sandbox) | 1002003004, joint: "Erika und Max Mustermann"   | 3002003004 | 1002003999          |
//! | Testbank Direkt (Sandbox)       | 5550012345, "Dr. Erika Müller-Mustermann"       | 5550012346 | 5550019999          |
//!
//! The household's giro accounts name their holders as each bank writes them (joint, a
//! title, an umlaut, family name first in capitals): account verification meets all of
//! it. Every other account is held by "Erika Mustermann".
//!
//! Asking for balances or transactions of another account id is `BankError::Unexpected`.
//!
//! ## Data
//!
//! History covers the last 730 days, today included; windows are cut to that and to today,
//! and a window whose start is after its end is empty. Transactions come newest day first.
//! Each day is generated on its own from the seed, the bank, the login's household and the
//! account, so overlapping windows agree exactly, and so do two instances with one seed.
//! Payments due on a weekend or a TARGET2 holiday move to the next business day.
//!
//! | Scenario           | Where                                                                                                           |
//! |--------------------|-----------------------------------------------------------------------------------------------------------------|
//! | Salary             | Giro, last business day: "Musterfirma GmbH", `LOHN/GEHALT 03/2026`, purpose code `SALA`, 2 800–3 400 euros.      |
//! | Rent               | Giro, the 1st: standing order of −950.00 to "Hausverwaltung Schmidt GmbH", "Miete Wohnung 3.OG links".          |
//! | SEPA direct debits | Giro: Telekom (5th), FitX (8th), Stadtwerke Musterstadt (electricity, 15th), Netflix (18th), Spotify (23rd), Allianz and the Rundfunkbeitrag (quarterly). Creditor id, mandate and end-to-end reference are set and spelled out in the purpose, `EREF+… MREF+… CRED+… SVWZ+…`. |
//! | Card payments      | Giro: girocard, 2–5 a week (supermarkets, drugstores, Amazon, restaurants), plus the bakery every morning. Credit card: online shops, hotels, restaurants and foreign merchants, non-euro ones with the original amount and a 1.75 % fee. |
//! | Pending → booked   | Card payments of today and yesterday are pending: `booked: false`, id `p-<date>-<n>`. Later they book as `b-<date>-<n>`; restaurants add the tip and hotels the extras, so those amounts change. |
//! | Cash and friends   | ATM withdrawals of 50, 100 or 200 euros about twice a month; friends paying back ("Erstattung Pizza").          |
//! | Savings            | 200.00 standing order from giro on the 2nd; interest every quarter.                                             |
//! | Fees               | Giro account fee at month end: 4.90 (finX Sandbox Bank), 6.95 (Sparkasse), none (Testbank Direkt).              |
//! | Card settlement    | Around the 20th the giro account pays the card's previous month ("Ausgleich Kreditkartenabrechnung").           |
//!
//! On its last business day of every month the giro account sweeps into, or tops up from,
//! the savings account to close at a balance between 4 200 and 6 200 euros, so balances stay
//! plausible at any date and reconcile exactly with the transactions. `balances` returns a
//! `Booked` balance and an `Available` one (booked plus pending, plus the limit for the
//! credit card), both dated today.
//!
//! ## Sessions
//!
//! Session handles are stateless: each names the bank, the login, the stage (login, method,
//! TAN for a method, redirect or decoupled authorisation, authorised) and the consent terms,
//! and carries an HMAC-SHA256 tag under a key derived from the seed, so any instance with
//! the same seed accepts it. A handle that was tampered with or signed under another seed is
//! `BankError::SessionExpired`; so is reading data with a handle that is not authorised, and
//! an answer that does not fit the handle's stage. What happens away from finX (on the
//! redirect bank's pages, in the decoupled bank's app) is held in this instance's memory, at
//! most 10 000 authorisations, each for an hour; its outcome is handed over once. Several
//! finX instances with one in-process sandbox therefore share embedded flows, but a redirect
//! or decoupled authorisation only on the instance that started it.
//!
//! "Today" is the UTC date of the [`Clock`]; the sandbox never reads the system clock. The
//! `slow` delay uses Tokio's timer when called on a Tokio runtime.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use finx_domain::Date;
use finx_domain::bank::{AccountDetails, Balance, BalanceStatus, Institution, TransactionDetails};
use finx_domain::flow::BankSession;
use finx_domain::ids::InstitutionId;
use finx_domain::money::{Currency, Money};
use finx_domain::sca::{BankStep, Consent, ConsentStatus, LoginField, StepAnswer};
use finx_ports::{BankConnector, BankError, BankReply, Clock, ConsentRequest, Presence, ReturnTo};
use thiserror::Error;
use url::Url;

use crate::auth::{Authorisations, Decision, Page, Pending};
use crate::catalog::{AccountKind, Approach, BANKS, Bank, User, account_details};
use crate::ledger::{Ledger, euros};
use crate::session::{Claims, Method, SessionKey, Stage, Terms};

mod auth;
mod calendar;
mod catalog;
mod challenge;
mod ledger;
mod rng;
mod sepa;
mod session;
pub mod signature;
mod tables;
pub mod tls;
pub mod web;
pub mod xs2a;

/// The PIN of every sandbox login.
pub const SANDBOX_PIN: &str = "demo";

/// The TAN that passes strong customer authentication.
pub const SANDBOX_TAN: &str = "123456";

/// Longer user names or PINs are rejected as wrong credentials without further ado.
const MAX_INPUT_BYTES: usize = 256;

/// Wrong tries the redirect bank's pages take before they reject the authorisation.
const BANK_PAGE_TRIES: u8 = 3;

/// How the sandbox behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// Seeds all generated data and the session key. Instances that share flows MUST share
    /// the seed.
    pub seed: u64,
    /// How long the `slow` login waits before logging in and before each transaction fetch.
    pub slow_delay: Duration,
    /// After how long a decoupled approval nobody acted on in the bank app decides itself:
    /// approved, or declined for `decoupled-reject`.
    pub decoupled_delay: Duration,
    /// Where the sandbox's own pages (the redirect bank's login, the bank app) are served:
    /// [`web::router`] mounted at this address's root.
    pub public_url: Url,
}

impl Default for SandboxConfig {
    /// Seed 42, three seconds for `slow` and for decoupled approvals, pages on
    /// `http://127.0.0.1:8080/`.
    fn default() -> Self {
        Self {
            seed: 42,
            slow_delay: Duration::from_secs(3),
            decoupled_delay: Duration::from_secs(3),
            public_url: Url::parse("http://127.0.0.1:8080/")
                .unwrap_or_else(|_| unreachable!("a valid literal")),
        }
    }
}

/// The sandbox bank connector. See the [crate documentation](crate) for its logins and data.
pub struct SandboxBank {
    config: SandboxConfig,
    clock: Arc<dyn Clock>,
    key: SessionKey,
    authorisations: Authorisations,
    /// Balance reads per bank session of the `moving` login (its bank day moves forward one
    /// day with each, one per sync) and of the `throttled` one.
    moving: std::sync::Mutex<std::collections::HashMap<String, i64>>,
    /// Sessions whose consent was ended (by finX) or revoked (by the user, [`revoke`]):
    /// they read nothing any more.
    ///
    /// [`revoke`]: SandboxBank::revoke
    ended: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl fmt::Debug for SandboxBank {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The seed is the session key's only input, so it stays out of logs.
        f.debug_struct("SandboxBank")
            .field("seed", &"[redacted]")
            .field("slow_delay", &self.config.slow_delay)
            .field("decoupled_delay", &self.config.decoupled_delay)
            .field("public_url", &self.config.public_url.as_str())
            .finish_non_exhaustive()
    }
}

/// An account id that the session's login does not have.
#[derive(Debug, Error)]
#[error("the sandbox login has no account {0:?}")]
struct UnknownAccount(String);

/// HMAC could not be keyed (it accepts any key length, so this does not happen).
#[derive(Debug, Error)]
#[error("could not sign the sandbox session handle")]
struct SealFailed;

/// The operating system gave no random bytes.
#[derive(Debug, Error)]
#[error("no randomness for an authorisation id")]
struct NoRandomness;

/// What the redirect bank's pages show next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BankPage {
    /// The login form, with an error after a wrong try.
    Login {
        /// The bank's name.
        bank: &'static str,
        /// The label of the name field.
        user_label: &'static str,
        /// The label of the PIN field.
        secret_label: &'static str,
        /// What went wrong last.
        error: Option<&'static str>,
    },
    /// The TAN form.
    Tan {
        /// The bank's name.
        bank: &'static str,
        /// What went wrong last.
        error: Option<&'static str>,
    },
    /// Done: send the user back to finX here.
    Back(Url),
    /// No such authorisation (unknown, finished or expired).
    Unknown,
}

/// A decoupled approval waiting in the bank app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// Its id.
    pub id: String,
    /// The bank.
    pub bank: &'static str,
    /// The login.
    pub user: &'static str,
}

/// Why the bank app could not act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum AppError {
    /// No such approval waits.
    #[error("no such approval is waiting")]
    Unknown,
    /// The TAN is wrong.
    #[error("wrong TAN")]
    WrongTan,
}

impl SandboxBank {
    /// A sandbox bank with `config`, reading "today" from `clock`.
    #[must_use]
    pub fn new(config: SandboxConfig, clock: Arc<dyn Clock>) -> Self {
        let key = SessionKey::derive(config.seed);
        Self {
            config,
            clock,
            key,
            authorisations: Authorisations::default(),
            moving: std::sync::Mutex::default(),
            ended: std::sync::Mutex::default(),
        }
    }

    /// The end user revokes the consent behind `session` at the bank: from now on it reads
    /// nothing (`CONSENT_INVALID` over XS2A, [`BankError::ConsentRevoked`] in process).
    pub fn revoke(&self, session: &BankSession) {
        let mut ended = self
            .ended
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if ended.len() > 100_000 {
            ended.clear();
        }
        ended.insert(session.expose().to_owned());
    }

    fn is_ended(&self, session: &BankSession) -> bool {
        self.ended
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(session.expose())
    }

    /// Counts a balance read of an account by the `throttled` login's session; returns the
    /// count.
    fn count_read(&self, session: &BankSession, account: &str) -> i64 {
        let mut m = self
            .moving
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if m.len() > 100_000 {
            m.clear();
        }
        let n = m
            .entry(format!("throttled:{account}:{}", session.expose()))
            .or_insert(0);
        *n += 1;
        *n
    }

    /// The bank day of `user`'s session: today, except for `moving`, whose day starts
    /// [`MOVING_LAG_DAYS`](ledger::MOVING_LAG_DAYS) back and moves forward one day each time
    /// `advance` is set (a sync's balance read), never past today.
    fn bank_day(&self, user: User, session: &BankSession, advance: bool) -> Date {
        let today = self.today();
        if user != User::Moving {
            return today;
        }
        let mut m = self
            .moving
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if m.len() > 100_000 {
            m.clear();
        }
        let n = m.entry(session.expose().to_owned()).or_insert(0);
        if advance && *n < ledger::MOVING_LAG_DAYS {
            *n += 1;
        }
        today - chrono::TimeDelta::days(ledger::MOVING_LAG_DAYS - *n)
    }

    fn today(&self) -> Date {
        self.clock.now().date_naive()
    }

    fn seal(&self, claims: &Claims) -> Result<BankSession, BankError> {
        self.key
            .seal(claims)
            .ok_or_else(|| BankError::Unexpected(Box::new(SealFailed)))
    }

    /// The claims of a fully logged-in session.
    fn authorized(&self, session: &BankSession) -> Result<(Claims, User), BankError> {
        if self.is_ended(session) {
            return Err(BankError::ConsentRevoked);
        }
        match self.key.open(session) {
            Some(claims) if claims.stage == Stage::Authorized => {
                let user = claims.user.ok_or(BankError::SessionExpired)?;
                Ok((claims, user))
            }
            _ => Err(BankError::SessionExpired),
        }
    }

    /// The ledger and account kind behind `account` for the session's login.
    fn account(
        &self,
        claims: &Claims,
        user: User,
        account: &str,
    ) -> Result<(Ledger, AccountKind), BankError> {
        let profile = user.profile();
        let kind = profile
            .accounts()
            .iter()
            .copied()
            .find(|k| k.external_id() == account)
            .ok_or_else(|| {
                BankError::Unexpected(Box::new(UnknownAccount(account.chars().take(64).collect())))
            })?;
        Ok((Ledger::new(self.config.seed, claims.bank, profile), kind))
    }

    async fn pause(&self) {
        let delay = self.config.slow_delay;
        if delay.is_zero() {
            return;
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::time::sleep(delay).await;
        } else {
            // Not on Tokio: blocking is crude, but it is what a slow bank feels like.
            std::thread::sleep(delay);
        }
    }

    fn random_id() -> Result<String, BankError> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|_| BankError::Unexpected(Box::new(NoRandomness)))?;
        Ok(hex::encode(bytes))
    }

    /// Checks a login the way every sandbox bank does: the scripted failures, then the PIN.
    async fn check_login(&self, bank: &Bank, user: &str, secret: &str) -> Result<User, BankError> {
        if [user, secret]
            .iter()
            .any(|s| s.is_empty() || s.len() > MAX_INPUT_BYTES)
        {
            return Err(BankError::InvalidCredentials);
        }
        let name = user.trim().to_ascii_lowercase();
        match name.as_str() {
            "locked" => return Err(BankError::Locked),
            "unavailable" => {
                return Err(BankError::Unavailable(format!(
                    "{} is down for maintenance (sandbox scenario)",
                    bank.name
                )));
            }
            _ => {}
        }
        let user = User::parse(&name).ok_or(BankError::InvalidCredentials)?;
        if user == User::Slow {
            self.pause().await;
        }
        if secret != SANDBOX_PIN {
            return Err(BankError::InvalidCredentials);
        }
        Ok(user)
    }

    /// The session and consent of a finished authorisation.
    fn done(&self, claims: &Claims, user: User) -> Result<BankReply, BankError> {
        let session = self.seal(&Claims {
            user: Some(user),
            stage: Stage::Authorized,
            ..claims.clone()
        })?;
        Ok(BankReply::Done {
            session,
            consent: Consent {
                id: claims.terms.consent_id.clone(),
                status: ConsentStatus::Valid,
                valid_until: claims.terms.valid_until,
                frequency_per_day: claims.terms.frequency_per_day.max(1),
                recurring: claims.terms.recurring,
                // The sandbox lets the user choose among all accounts in finX.
                accounts: Vec::new(),
            },
        })
    }

    fn next(&self, claims: &Claims, stage: Stage, step: BankStep) -> Result<BankReply, BankError> {
        let session = self.seal(&Claims {
            stage,
            ..claims.clone()
        })?;
        Ok(BankReply::Next { session, step })
    }

    fn decoupled_step(bank: &Bank) -> BankStep {
        BankStep::Decoupled {
            prompt: Some(format!(
                "Bitte bestätigen Sie den Zugriff in der App von {}. (Sandbox: die Bank-App \
                 ist die Seite /sandbox-bank/app; ohne Eingriff entscheidet sie nach einigen \
                 Sekunden selbst.)",
                bank.name
            )),
            poll_after_seconds: 2,
        }
    }

    fn redirect_step(&self, id: &str) -> Result<BankStep, BankError> {
        let url = self
            .config
            .public_url
            .join(&format!("sandbox-bank/authorise/{id}"))
            .map_err(|e| BankError::Unexpected(Box::new(e)))?;
        Ok(BankStep::Redirect { url })
    }

    /// What the redirect bank's page for authorisation `id` shows.
    #[must_use]
    pub fn bank_page(&self, id: &str) -> BankPage {
        let now = self.clock.now();
        match self.authorisations.get(id, now) {
            Some(p) if p.bank.approach == Approach::Redirect => Self::page_of(&p, None),
            _ => BankPage::Unknown,
        }
    }

    fn page_of(p: &Pending, error: Option<&'static str>) -> BankPage {
        if p.decision != Decision::Pending {
            let to = if p.decision == Decision::Approved {
                &p.return_to.ok
            } else {
                &p.return_to.nok
            };
            return BankPage::Back(to.clone());
        }
        match p.page {
            Page::Login(_) => BankPage::Login {
                bank: p.bank.name,
                user_label: p.bank.user_label,
                secret_label: p.bank.secret_label,
                error,
            },
            Page::Tan(_) => BankPage::Tan {
                bank: p.bank.name,
                error,
            },
        }
    }

    /// The user logs in on the redirect bank's page of authorisation `id`.
    pub async fn bank_login(&self, id: &str, user: &str, secret: &str) -> BankPage {
        let Some(p) = self.authorisations.get(id, self.clock.now()) else {
            return BankPage::Unknown;
        };
        if p.bank.approach != Approach::Redirect
            || p.decision != Decision::Pending
            || p.page != Page::Login(p.wrong_logins())
        {
            return Self::page_of(&p, None);
        }
        let checked = self.check_login(p.bank, user, secret).await;
        let now = self.clock.now();
        self.authorisations
            .update(id, now, |p| {
                let mut error = None;
                match checked {
                    Ok(User::RedirectCancel) => {
                        p.user = Some(User::RedirectCancel);
                        p.decision = Decision::Cancelled;
                    }
                    Ok(User::NoSca) => {
                        p.user = Some(User::NoSca);
                        p.decision = Decision::Approved;
                    }
                    Ok(user) => {
                        p.user = Some(user);
                        p.page = Page::Tan(0);
                    }
                    Err(BankError::Locked) => p.decision = Decision::Locked,
                    Err(BankError::Unavailable(_)) => p.decision = Decision::Unavailable,
                    Err(_) => {
                        let wrong = p.wrong_logins() + 1;
                        p.page = Page::Login(wrong);
                        if wrong >= BANK_PAGE_TRIES {
                            p.decision = Decision::Rejected;
                        }
                        error = Some("Anmeldename oder PIN falsch.");
                    }
                }
                Self::page_of(p, error)
            })
            .unwrap_or(BankPage::Unknown)
    }

    /// The user enters the TAN on the redirect bank's page of authorisation `id`.
    #[must_use]
    pub fn bank_tan(&self, id: &str, tan: &str) -> BankPage {
        self.authorisations
            .update(id, self.clock.now(), |p| {
                let Page::Tan(wrong) = p.page else {
                    return Self::page_of(p, None);
                };
                if p.decision != Decision::Pending || p.bank.approach != Approach::Redirect {
                    return Self::page_of(p, None);
                }
                if tan.trim() == SANDBOX_TAN {
                    p.decision = Decision::Approved;
                    return Self::page_of(p, None);
                }
                p.page = Page::Tan(wrong + 1);
                if wrong + 1 >= BANK_PAGE_TRIES {
                    p.decision = Decision::Rejected;
                }
                Self::page_of(p, Some("Die TAN ist falsch."))
            })
            .unwrap_or(BankPage::Unknown)
    }

    /// The user cancels on the redirect bank's page of authorisation `id`.
    #[must_use]
    pub fn bank_cancel(&self, id: &str) -> BankPage {
        self.authorisations
            .update(id, self.clock.now(), |p| {
                if p.decision == Decision::Pending && p.bank.approach == Approach::Redirect {
                    p.decision = Decision::Cancelled;
                }
                Self::page_of(p, None)
            })
            .unwrap_or(BankPage::Unknown)
    }

    /// The decoupled approvals waiting in the bank app.
    #[must_use]
    pub fn waiting_approvals(&self) -> Vec<Approval> {
        self.authorisations
            .waiting(self.clock.now())
            .into_iter()
            .map(|(id, p)| Approval {
                id,
                bank: p.bank.name,
                user: p.user.map_or("?", User::name),
            })
            .collect()
    }

    /// The user approves (with the TAN) or declines approval `id` in the bank app.
    ///
    /// # Errors
    /// [`AppError::Unknown`] when no such approval waits; [`AppError::WrongTan`].
    pub fn decide(&self, id: &str, approve: bool, tan: &str) -> Result<(), AppError> {
        self.authorisations
            .update(id, self.clock.now(), |p| {
                if p.decision != Decision::Pending || p.bank.approach != Approach::Decoupled {
                    return Err(AppError::Unknown);
                }
                if !approve {
                    p.decision = Decision::Rejected;
                    return Ok(());
                }
                if tan.trim() != SANDBOX_TAN {
                    return Err(AppError::WrongTan);
                }
                p.decision = Decision::Approved;
                Ok(())
            })
            .unwrap_or(Err(AppError::Unknown))
    }

    /// The outcome of the away-from-finX authorisation `id` for the session `claims`:
    /// done, still waiting (`None`), or an error.
    fn outcome(&self, claims: &Claims, id: &str) -> Result<Option<BankReply>, BankError> {
        let now = self.clock.now();
        let Some(p) = self.authorisations.get(id, now) else {
            return Err(BankError::AuthorisationExpired);
        };
        if p.bank.code != claims.bank.code {
            return Err(BankError::SessionExpired);
        }
        let mut decision = p.decision;
        if decision == Decision::Pending && p.bank.approach == Approach::Decoupled {
            let waited = (now - p.started).to_std().unwrap_or_default();
            if waited >= self.config.decoupled_delay {
                decision = if p.user == Some(User::DecoupledReject) {
                    Decision::Rejected
                } else {
                    Decision::Approved
                };
            }
        }
        let reply = match decision {
            Decision::Pending => return Ok(None),
            Decision::Approved => {
                let user = p.user.ok_or(BankError::AuthorisationExpired)?;
                self.done(claims, user)
            }
            Decision::Rejected => Err(BankError::Rejected),
            Decision::Cancelled => Err(BankError::CancelledByUser),
            Decision::Locked => Err(BankError::Locked),
            Decision::Unavailable => Err(BankError::Unavailable(format!(
                "{} is down for maintenance (sandbox scenario)",
                p.bank.name
            ))),
        };
        // The outcome is handed over once.
        self.authorisations.remove(id);
        reply.map(Some)
    }
}

impl Pending {
    fn wrong_logins(&self) -> u8 {
        match self.page {
            Page::Login(n) => n,
            Page::Tan(_) => 0,
        }
    }
}

#[async_trait]
impl BankConnector for SandboxBank {
    async fn institutions(&self) -> Result<Vec<Institution>, BankError> {
        BANKS
            .iter()
            .map(Bank::institution)
            .collect::<Result<_, _>>()
            .map_err(|e| BankError::Unexpected(Box::new(e)))
    }

    async fn begin(
        &self,
        institution: &InstitutionId,
        consent: &ConsentRequest,
        return_to: &ReturnTo,
    ) -> Result<BankReply, BankError> {
        let bank =
            Bank::by_institution(institution.as_str()).ok_or(BankError::UnknownInstitution)?;
        let claims = Claims {
            bank,
            user: None,
            stage: Stage::Login,
            terms: Terms {
                consent_id: format!("sandbox-{}", Self::random_id()?),
                recurring: consent.recurring,
                valid_until: consent.valid_until,
                frequency_per_day: consent.frequency_per_day,
            },
        };
        match bank.approach {
            Approach::Embedded | Approach::Decoupled => {
                let step = BankStep::Login {
                    fields: vec![
                        LoginField {
                            id: "user".into(),
                            label: bank.user_label.into(),
                            secret: false,
                        },
                        LoginField {
                            id: "pin".into(),
                            label: bank.secret_label.into(),
                            secret: true,
                        },
                    ],
                };
                self.next(&claims, Stage::Login, step)
            }
            Approach::Redirect => {
                let id = Self::random_id()?;
                let now = self.clock.now();
                let pending = Pending {
                    bank,
                    user: None,
                    started: now,
                    page: Page::Login(0),
                    decision: Decision::Pending,
                    return_to: return_to.clone(),
                };
                if !self.authorisations.insert(id.clone(), pending, now) {
                    return Err(BankError::Unavailable(
                        "too many authorisations in progress (sandbox)".into(),
                    ));
                }
                let step = self.redirect_step(&id)?;
                self.next(&claims, Stage::Redirect(id), step)
            }
        }
    }

    async fn answer(
        &self,
        institution: &InstitutionId,
        session: &BankSession,
        answer: &StepAnswer,
        return_to: &ReturnTo,
    ) -> Result<BankReply, BankError> {
        let claims = self.key.open(session).ok_or(BankError::SessionExpired)?;
        if Bank::by_institution(institution.as_str()).map(|b| b.code) != Some(claims.bank.code) {
            return Err(BankError::SessionExpired);
        }
        match (&claims.stage, answer) {
            (Stage::Login, StepAnswer::Login(values)) => {
                let value = |id: &str| {
                    values
                        .iter()
                        .find(|(k, _)| k == id)
                        .map_or("", |(_, v)| v.as_str())
                };
                let user = self
                    .check_login(claims.bank, value("user"), value("pin"))
                    .await?;
                let claims = Claims {
                    user: Some(user),
                    ..claims
                };
                if user == User::NoSca {
                    return self.done(&claims, user);
                }
                match claims.bank.approach {
                    Approach::Decoupled => {
                        let id = Self::random_id()?;
                        let now = self.clock.now();
                        let pending = Pending {
                            bank: claims.bank,
                            user: Some(user),
                            started: now,
                            page: Page::Tan(0),
                            decision: Decision::Pending,
                            return_to: return_to.clone(),
                        };
                        if !self.authorisations.insert(id.clone(), pending, now) {
                            return Err(BankError::Unavailable(
                                "too many authorisations in progress (sandbox)".into(),
                            ));
                        }
                        self.next(
                            &claims,
                            Stage::Decoupled(id),
                            Self::decoupled_step(claims.bank),
                        )
                    }
                    _ => self.next(
                        &claims,
                        Stage::Method,
                        BankStep::ChooseMethod {
                            methods: challenge::methods(),
                        },
                    ),
                }
            }
            (Stage::Method, StepAnswer::Method(id)) => {
                let method = Method::parse(id).ok_or(BankError::SessionExpired)?;
                let step = BankStep::Tan {
                    challenge: challenge::challenge(method, &claims.terms.consent_id),
                };
                self.next(&claims, Stage::Tan(method), step)
            }
            (Stage::Tan(_), StepAnswer::Tan(tan)) => {
                if tan.trim() != SANDBOX_TAN {
                    return Err(BankError::InvalidTan);
                }
                let user = claims.user.ok_or(BankError::SessionExpired)?;
                self.done(&claims, user)
            }
            (Stage::Redirect(id), StepAnswer::Returned { .. }) => {
                // The route the user came back by is a hint; the bank's record decides.
                match self.outcome(&claims, id)? {
                    Some(reply) => Ok(reply),
                    None => {
                        let step = self.redirect_step(id)?;
                        self.next(&claims, claims.stage.clone(), step)
                    }
                }
            }
            (Stage::Decoupled(id), StepAnswer::Poll) => match self.outcome(&claims, id)? {
                Some(reply) => Ok(reply),
                None => self.next(
                    &claims,
                    claims.stage.clone(),
                    Self::decoupled_step(claims.bank),
                ),
            },
            _ => Err(BankError::SessionExpired),
        }
    }

    /// The consent ends: the session reads nothing from now on. Ending it again is fine.
    async fn end_consent(&self, session: &BankSession) -> Result<(), BankError> {
        self.revoke(session);
        Ok(())
    }

    async fn accounts(
        &self,
        session: &BankSession,
        _psu: &Presence,
    ) -> Result<Vec<AccountDetails>, BankError> {
        let (claims, user) = self.authorized(session)?;
        let profile = user.profile();
        Ok(profile
            .accounts()
            .iter()
            .map(|kind| account_details(claims.bank, profile, *kind))
            .collect())
    }

    async fn balances(
        &self,
        session: &BankSession,
        account: &str,
        _psu: &Presence,
    ) -> Result<Vec<Balance>, BankError> {
        let (claims, user) = self.authorized(session)?;
        let (ledger, kind) = self.account(&claims, user, account)?;
        if user == User::Throttled && self.count_read(session, account) > 1 {
            return Err(BankError::RateLimited {
                retry_after: Some(std::time::Duration::from_secs(7200)),
            });
        }
        let today = self.bank_day(user, session, true);
        let sums = ledger.balances(kind, today);
        let credit_line = if kind == AccountKind::Card {
            claims.bank.card_limit_cents
        } else {
            0
        };
        let money = |cents: i64| Money::new(euros(cents), Currency::EUR);
        Ok(vec![
            Balance {
                amount: money(sums.booked),
                date: today,
                status: BalanceStatus::Booked,
            },
            Balance {
                amount: money(sums.booked + sums.pending + credit_line),
                date: today,
                status: BalanceStatus::Available,
            },
        ])
    }

    async fn transactions(
        &self,
        session: &BankSession,
        account: &str,
        from: Date,
        to: Date,
        _psu: &Presence,
    ) -> Result<Vec<TransactionDetails>, BankError> {
        let (claims, user) = self.authorized(session)?;
        let (ledger, kind) = self.account(&claims, user, account)?;
        if user == User::Slow {
            self.pause().await;
        }
        Ok(ledger.transactions(kind, from, to, self.bank_day(user, session, false)))
    }
}
