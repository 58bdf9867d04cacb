use std::fmt;

use async_trait::async_trait;
use finx_domain::Date;
use finx_domain::bank::{AccountDetails, Balance, Institution, TransactionDetails};
use finx_domain::flow::BankSession;
use finx_domain::ids::InstitutionId;
use finx_domain::sca::{BankStep, Consent, StepAnswer};
use thiserror::Error;
use url::Url;

use crate::error::BoxError;

/// The two values of the classic login form (a name and a PIN), for callers that drive a
/// flow without the widget. The secret is redacted in `Debug`.
#[derive(Clone)]
pub struct BankCredentials {
    /// Login name.
    pub user: String,
    /// PIN or password.
    pub secret: String,
}

impl fmt::Debug for BankCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BankCredentials")
            .field("user", &self.user)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// Where the bank sends the end user back after its own pages (redirect SCA): finX's
/// return route for this flow, with a single-use nonce in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnTo {
    /// After success (XS2A `TPP-Redirect-URI`).
    pub ok: Url,
    /// After a failure or cancel (XS2A `TPP-Nok-Redirect-URI`).
    pub nok: Url,
}

/// The end user's browser, while they are present (XS2A `PSU-IP-Address`,
/// `PSU-User-Agent`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PsuContext {
    /// The end user's IP address.
    pub ip: Option<std::net::IpAddr>,
    /// The end user's browser.
    pub user_agent: Option<String>,
}

/// Whether the end user takes part in a data call: present (the widget's flow, waiting for
/// their data) or not (a scheduled or manual sync). Banks count only unattended reads
/// against a consent's `frequencyPerDay`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// The end user waits, at this address and browser (XS2A `PSU-IP-Address`,
    /// `PSU-User-Agent`).
    Present(PsuContext),
    /// Nobody is there: finX reads on its own.
    Unattended,
}

/// The consent finX asks the bank for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRequest {
    /// The end user, present while the flow runs.
    pub psu: PsuContext,
    /// IBANs the customer named, for banks that take a consent for given accounts.
    pub ibans: Vec<String>,
    /// Repeated access (ongoing) or a single one (one-time).
    pub recurring: bool,
    /// The last day it should be usable.
    pub valid_until: Date,
    /// Unattended accesses a day asked for.
    pub frequency_per_day: u16,
}

/// What the bank said to the start of an authorisation or to an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BankReply {
    /// The bank asks for this step next.
    Next {
        /// The session to continue in (a connector may keep its state in the handle).
        session: BankSession,
        /// The step.
        step: BankStep,
    },
    /// The bank is done: data may be read in `session` under `consent`.
    Done {
        /// The authorised session.
        session: BankSession,
        /// What the end user allowed.
        consent: Consent,
    },
}

/// A bank connector's failure.
#[derive(Debug, Error)]
pub enum BankError {
    /// Wrong login name or PIN.
    #[error("login credentials invalid")]
    InvalidCredentials,
    /// The login is locked at the bank.
    #[error("login locked at the bank")]
    Locked,
    /// Wrong TAN.
    #[error("TAN invalid")]
    InvalidTan,
    /// The bank (or the end user in the bank's app) rejected the authorisation.
    #[error("authorisation rejected at the bank")]
    Rejected,
    /// The end user cancelled at the bank.
    #[error("cancelled at the bank by the end user")]
    CancelledByUser,
    /// The authorisation expired at the bank before it was finished.
    #[error("authorisation expired at the bank")]
    AuthorisationExpired,
    /// The bank says the consent has expired (XS2A `CONSENT_EXPIRED`): the end user must
    /// authorise a new one.
    #[error("consent expired at the bank")]
    ConsentExpired,
    /// The bank says the consent is invalid or unknown (XS2A `CONSENT_INVALID`,
    /// `CONSENT_UNKNOWN`): revoked by the end user at the bank, or ended.
    #[error("consent revoked or unknown at the bank")]
    ConsentRevoked,
    /// The session is unknown or has expired at the bank.
    #[error("bank session expired")]
    SessionExpired,
    /// The institution is not served by this connector.
    #[error("unknown institution")]
    UnknownInstitution,
    /// The bank cannot be reached or refuses service now.
    #[error("bank unavailable: {0}")]
    Unavailable(String),
    /// The bank says too many requests (XS2A `ACCESS_EXCEEDED`, HTTP 429): not before this
    /// long, when it says.
    #[error("rate limited by the bank")]
    RateLimited {
        /// How long to wait, when the bank says.
        retry_after: Option<std::time::Duration>,
    },
    /// Anything else.
    #[error("bank connector failure")]
    Unexpected(#[source] BoxError),
}

impl BankError {
    /// A short word for the kind of failure, for metrics and logs (never the bank's text).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidCredentials => "invalid_credentials",
            Self::Locked => "locked",
            Self::InvalidTan => "invalid_tan",
            Self::Rejected => "rejected",
            Self::CancelledByUser => "cancelled_by_user",
            Self::AuthorisationExpired => "authorisation_expired",
            Self::ConsentExpired => "consent_expired",
            Self::ConsentRevoked => "consent_revoked",
            Self::SessionExpired => "session_expired",
            Self::UnknownInstitution => "unknown_institution",
            Self::Unavailable(_) => "unavailable",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unexpected(_) => "unexpected",
        }
    }
}

/// A way to reach banks: the sandbox, or a Berlin Group NextGenPSD2 (XS2A) API.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait BankConnector: Send + Sync {
    /// Every bank this connector serves, in a stable order.
    async fn institutions(&self) -> Result<Vec<Institution>, BankError>;

    /// Banks whose name contains `query` or whose BIC or bank code equals it
    /// ([`Institution::matches`]). The default filters [`institutions`](Self::institutions).
    async fn search_institutions(&self, query: &str) -> Result<Vec<Institution>, BankError> {
        Ok(self
            .institutions()
            .await?
            .into_iter()
            .filter(|i| i.matches(query))
            .collect())
    }

    /// A page of the catalog: the banks [`search_institutions`](Self::search_institutions)
    /// finds, in `country` only when given (ignoring ASCII case), ordered by name then id,
    /// `offset` skipped, at most `limit`. The default pages
    /// [`search_institutions`](Self::search_institutions) in memory.
    async fn catalog(
        &self,
        query: &str,
        country: Option<String>,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<Institution>, BankError> {
        let mut found: Vec<Institution> = self
            .search_institutions(query)
            .await?
            .into_iter()
            .filter(|i| {
                country
                    .as_deref()
                    .is_none_or(|c| i.country.eq_ignore_ascii_case(c.trim()))
            })
            .collect();
        found.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        Ok(found
            .into_iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .collect())
    }

    /// One bank by id; `None` when unknown.
    async fn institution(&self, id: &InstitutionId) -> Result<Option<Institution>, BankError> {
        Ok(self.institutions().await?.into_iter().find(|i| i.id == *id))
    }

    /// The bank with national bank code `bank_code` in `country`; `None` when unknown.
    async fn resolve_bank_code(
        &self,
        country: &str,
        bank_code: &str,
    ) -> Result<Option<Institution>, BankError> {
        Ok(self
            .institutions()
            .await?
            .into_iter()
            .find(|i| i.country == country && i.bank_code.as_deref() == Some(bank_code)))
    }

    /// Starts an authorisation at `institution` for `consent` and says what the bank asks
    /// first (a login form, a redirect to its pages, a decoupled approval, ...). A redirect
    /// MUST send the end user back to `return_to`. MUST NOT answer [`BankReply::Done`]:
    /// some step always comes first.
    async fn begin(
        &self,
        institution: &InstitutionId,
        consent: &ConsentRequest,
        return_to: &ReturnTo,
    ) -> Result<BankReply, BankError>;

    /// Gives the bank the end user's answer to the step it asked in `session`, and says
    /// what comes next. The core continues with the session returned (a connector may keep
    /// its state in the handle). MUST answer [`BankError::InvalidCredentials`] for wrong
    /// login values and [`BankError::InvalidTan`] for a wrong TAN, leaving `session` able
    /// to take another try; [`BankError::Locked`], [`BankError::Rejected`],
    /// [`BankError::CancelledByUser`] and [`BankError::AuthorisationExpired`] for what
    /// their names say. MUST NOT log a login value or a TAN. A redirect step asked again
    /// MUST send the end user back to `return_to`.
    async fn answer(
        &self,
        institution: &InstitutionId,
        session: &BankSession,
        answer: &StepAnswer,
        return_to: &ReturnTo,
    ) -> Result<BankReply, BankError>;

    /// Ends the consent behind an authorised `session` at the bank (XS2A
    /// `DELETE /v1/consents/{id}`), so nothing can be read with it any more. MUST succeed
    /// when the consent is already gone (expired, revoked, unknown to the bank).
    async fn end_consent(&self, session: &BankSession) -> Result<(), BankError>;

    /// The accounts of an authenticated session. External ids MUST be stable across
    /// sessions of the same login.
    ///
    /// A [`Presence::Present`] call MUST tell the bank the end user is there (XS2A
    /// `PSU-IP-Address`), since a bank counts only unattended reads against the consent's
    /// `frequencyPerDay`; a [`Presence::Unattended`] one (a scheduled or manual sync) MUST
    /// NOT claim they are.
    async fn accounts(
        &self,
        session: &BankSession,
        psu: &Presence,
    ) -> Result<Vec<AccountDetails>, BankError>;

    /// The balances of one account; `psu` as for [`accounts`](Self::accounts).
    async fn balances(
        &self,
        session: &BankSession,
        account: &str,
        psu: &Presence,
    ) -> Result<Vec<Balance>, BankError>;

    /// Booked and pending transactions of one account booked from `from` to `to`, inclusive.
    /// External ids MUST be stable across calls, so a resync does not duplicate anything.
    /// `psu` as for [`accounts`](Self::accounts).
    async fn transactions(
        &self,
        session: &BankSession,
        account: &str,
        from: Date,
        to: Date,
        psu: &Presence,
    ) -> Result<Vec<TransactionDetails>, BankError>;
}
