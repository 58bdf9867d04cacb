//! # The finX sandbox bank
//!
//! [`SandboxBank`] is a [`BankConnector`] that serves three made-up German banks with
//! realistic, deterministic account data. Integrate against it before you go live: every
//! login scenario a real bank can produce (SCA, wrong PIN, wrong TAN, locked login, bank
//! down, slow bank, very large account) is one user name away.
//!
//! ## Banks
//!
//! | Institution id     | Name                            | BIC           | Bank code  | Login form labels                        |
//! |--------------------|---------------------------------|---------------|------------|------------------------------------------|
//! | `sandbox-90094815` | finX Sandbox Bank               | `FINXDEB1XXX` | `90094815` | Anmeldename / PIN                        |
//! | `sandbox-90094816` | Sparkasse Musterstadt (Sandbox) | `SPMUDEM1XXX` | `90094816` | Anmeldename oder Legitimations-ID / PIN  |
//! | `sandbox-90094817` | Testbank Direkt (Sandbox)       | `TBDIDEF1XXX` | `90094817` | Kontonummer oder Benutzername / Passwort |
//!
//! Any other institution id is `BankError::UnknownInstitution`.
//!
//! ## Test logins
//!
//! The same logins work at every bank. The PIN is `demo` ([`SANDBOX_PIN`]) and the TAN is
//! `123456` ([`SANDBOX_TAN`]). User names are case-insensitive and may carry surrounding
//! spaces; PINs are exact. An empty user name or PIN, or one over 256 bytes, is
//! `BankError::InvalidCredentials` whoever the user.
//!
//! | User          | PIN    | Outcome                                                                                          |
//! |---------------|--------|--------------------------------------------------------------------------------------------------|
//! | `demo`        | `demo` | `ScaRequired` (pushTAN). TAN `123456` passes; any other TAN is `InvalidTan`, and may be retried. |
//! | `nosca`       | `demo` | `Authenticated` without SCA; the same data as `demo`.                                            |
//! | `slow`        | `demo` | Like `demo`, but login and every transaction fetch first wait [`SandboxConfig::slow_delay`].     |
//! | `bigdata`     | `demo` | Like `demo`; one giro account with exactly 10 000 transactions over its 730 days of history.     |
//! | `locked`      | any    | `BankError::Locked`.                                                                             |
//! | `unavailable` | any    | `BankError::Unavailable`.                                                                        |
//! | anything else | any    | `BankError::InvalidCredentials`, as is a known user with a wrong PIN.                            |
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
//! | finX Sandbox Bank               | 2881 (`DE82 9009 4815 0000 0028 81`)            | 2882       | 2889                |
//! | Sparkasse Musterstadt (Sandbox) | 1002003004, joint: "Erika und Max Mustermann"   | 3002003004 | 1002003999          |
//! | Testbank Direkt (Sandbox)       | 5550012345                                      | 5550012346 | 5550019999          |
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
//! Sessions are stateless: the handle names the bank, the login and the stage
//! (`sca_pending` or `authorized`) and carries an HMAC-SHA256 tag under a key derived from
//! the seed, so any instance with the same seed accepts it. A handle that was tampered with
//! or signed under another seed is `BankError::SessionExpired`; so is reading data with a
//! handle whose TAN is still due, and sending a TAN for a handle that needs none. Handles
//! do not expire.
//!
//! "Today" is the UTC date of the [`Clock`]; the sandbox never reads the system clock. The
//! `slow` delay uses Tokio's timer when called on a Tokio runtime.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use finx_domain::Date;
use finx_domain::bank::{AccountDetails, Balance, BalanceStatus, Institution, TransactionDetails};
use finx_domain::flow::{BankSession, ScaChallenge};
use finx_domain::ids::InstitutionId;
use finx_domain::money::{Currency, Money};
use finx_ports::{BankConnector, BankCredentials, BankError, Clock, LoginOutcome};
use thiserror::Error;

use crate::catalog::{AccountKind, BANKS, Bank, User, account_details};
use crate::ledger::{Ledger, euros};
use crate::session::{Claims, SessionKey, Stage};

mod calendar;
mod catalog;
mod ledger;
mod rng;
mod sepa;
mod session;
mod tables;

/// The PIN of every sandbox login.
pub const SANDBOX_PIN: &str = "demo";

/// The TAN that passes strong customer authentication.
pub const SANDBOX_TAN: &str = "123456";

/// Longer user names or PINs are rejected as wrong credentials without further ado.
const MAX_INPUT_BYTES: usize = 256;

/// How the sandbox behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxConfig {
    /// Seeds all generated data and the session key. Instances that share flows MUST share
    /// the seed.
    pub seed: u64,
    /// How long the `slow` login waits before logging in and before each transaction fetch.
    pub slow_delay: Duration,
}

impl Default for SandboxConfig {
    /// Seed 42, a three-second delay for `slow`.
    fn default() -> Self {
        Self {
            seed: 42,
            slow_delay: Duration::from_secs(3),
        }
    }
}

/// The sandbox bank connector. See the [crate documentation](crate) for its logins and data.
pub struct SandboxBank {
    config: SandboxConfig,
    clock: Arc<dyn Clock>,
    key: SessionKey,
}

impl fmt::Debug for SandboxBank {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The seed is the session key's only input, so it stays out of logs.
        f.debug_struct("SandboxBank")
            .field("seed", &"[redacted]")
            .field("slow_delay", &self.config.slow_delay)
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

impl SandboxBank {
    /// A sandbox bank with `config`, reading "today" from `clock`.
    #[must_use]
    pub fn new(config: SandboxConfig, clock: Arc<dyn Clock>) -> Self {
        let key = SessionKey::derive(config.seed);
        Self { config, clock, key }
    }

    fn today(&self) -> Date {
        self.clock.now().date_naive()
    }

    fn seal(&self, claims: Claims) -> Result<BankSession, BankError> {
        self.key
            .seal(claims)
            .ok_or_else(|| BankError::Unexpected(Box::new(SealFailed)))
    }

    /// The claims of a fully logged-in session.
    fn authorized(&self, session: &BankSession) -> Result<Claims, BankError> {
        match self.key.open(session) {
            Some(claims) if claims.stage == Stage::Authorized => Ok(claims),
            _ => Err(BankError::SessionExpired),
        }
    }

    /// The ledger and account kind behind `account` for the session's login.
    fn account(&self, claims: &Claims, account: &str) -> Result<(Ledger, AccountKind), BankError> {
        let profile = claims.user.profile();
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

    async fn start_login(
        &self,
        institution: &InstitutionId,
        credentials: &BankCredentials,
    ) -> Result<LoginOutcome, BankError> {
        let bank =
            Bank::by_institution(institution.as_str()).ok_or(BankError::UnknownInstitution)?;
        let (user, secret) = (credentials.user.as_str(), credentials.secret.as_str());
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
        if !user.needs_sca() {
            let session = self.seal(Claims {
                bank,
                user,
                stage: Stage::Authorized,
            })?;
            return Ok(LoginOutcome::Authenticated { session });
        }
        let session = self.seal(Claims {
            bank,
            user,
            stage: Stage::ScaPending,
        })?;
        let challenge = ScaChallenge {
            method: "pushTAN".to_owned(),
            prompt: Some(format!(
                "Bitte geben Sie die TAN {SANDBOX_TAN} ein (Sandbox)."
            )),
        };
        Ok(LoginOutcome::ScaRequired { session, challenge })
    }

    async fn submit_sca(&self, session: &BankSession, tan: &str) -> Result<BankSession, BankError> {
        let claims = self.key.open(session).ok_or(BankError::SessionExpired)?;
        if claims.stage != Stage::ScaPending {
            return Err(BankError::SessionExpired);
        }
        if tan.trim() != SANDBOX_TAN {
            return Err(BankError::InvalidTan);
        }
        self.seal(Claims {
            stage: Stage::Authorized,
            ..claims
        })
    }

    async fn accounts(&self, session: &BankSession) -> Result<Vec<AccountDetails>, BankError> {
        let claims = self.authorized(session)?;
        let profile = claims.user.profile();
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
    ) -> Result<Vec<Balance>, BankError> {
        let claims = self.authorized(session)?;
        let (ledger, kind) = self.account(&claims, account)?;
        let today = self.today();
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
    ) -> Result<Vec<TransactionDetails>, BankError> {
        let claims = self.authorized(session)?;
        let (ledger, kind) = self.account(&claims, account)?;
        if claims.user == User::Slow {
            self.pause().await;
        }
        Ok(ledger.transactions(kind, from, to, self.today()))
    }
}
