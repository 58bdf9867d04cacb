use std::fmt;

use async_trait::async_trait;
use finx_domain::Date;
use finx_domain::bank::{AccountDetails, Balance, Institution, TransactionDetails};
use finx_domain::flow::{BankSession, ScaChallenge};
use finx_domain::ids::InstitutionId;
use thiserror::Error;

use crate::error::BoxError;

/// What the end user typed into the bank's login form. The secret is redacted in `Debug`.
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

/// What the bank answered to a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginOutcome {
    /// The bank wants strong customer authentication next.
    ScaRequired {
        /// The session to continue in.
        session: BankSession,
        /// What it asks for.
        challenge: ScaChallenge,
    },
    /// Logged in; no SCA needed.
    Authenticated {
        /// The session.
        session: BankSession,
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
    /// The session is unknown or has expired at the bank.
    #[error("bank session expired")]
    SessionExpired,
    /// The institution is not served by this connector.
    #[error("unknown institution")]
    UnknownInstitution,
    /// The bank cannot be reached or refuses service now.
    #[error("bank unavailable: {0}")]
    Unavailable(String),
    /// Anything else.
    #[error("bank connector failure")]
    Unexpected(#[source] BoxError),
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

    /// Logs in. MUST answer [`BankError::InvalidCredentials`] for wrong credentials (so the
    /// core can count attempts), and MUST NOT log the secret.
    async fn start_login(
        &self,
        institution: &InstitutionId,
        credentials: &BankCredentials,
    ) -> Result<LoginOutcome, BankError>;

    /// Answers the SCA challenge of `session`, returning the session to use from now on (a
    /// connector may keep its state in the handle, so the core MUST continue with the
    /// returned one). MUST answer [`BankError::InvalidTan`] for a wrong TAN and leave
    /// `session` able to take another try.
    async fn submit_sca(&self, session: &BankSession, tan: &str) -> Result<BankSession, BankError>;

    /// The accounts of an authenticated session. External ids MUST be stable across
    /// sessions of the same login.
    async fn accounts(&self, session: &BankSession) -> Result<Vec<AccountDetails>, BankError>;

    /// The balances of one account.
    async fn balances(
        &self,
        session: &BankSession,
        account: &str,
    ) -> Result<Vec<Balance>, BankError>;

    /// Booked and pending transactions of one account booked from `from` to `to`, inclusive.
    /// External ids MUST be stable across calls, so a resync does not duplicate anything.
    async fn transactions(
        &self,
        session: &BankSession,
        account: &str,
        from: Date,
        to: Date,
    ) -> Result<Vec<TransactionDetails>, BankError>;
}
