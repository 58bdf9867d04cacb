use finx_domain::flow::{FailureReason, FlowError};
use finx_domain::scope::{ScopeError, ScopeItem};
use finx_ports::{BankError, StoreError};
use thiserror::Error;

/// Why a use case refused or failed. The HTTP adapter maps each variant to one status and
/// one wire error, in one place.
#[derive(Debug, Error)]
pub enum CoreError {
    /// A request value is invalid.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// An upload is refused: the field by its path, and why.
    #[error(transparent)]
    InvalidUpload(#[from] finx_domain::upload::UploadError),
    /// Client authentication failed (unknown client or wrong secret).
    #[error("client authentication failed")]
    InvalidClient,
    /// The client may not do this with this token (RFC 7009 `unauthorized_client`).
    #[error("the token was not issued to this client")]
    UnauthorizedClient,
    /// The requested scope is unknown or wider than allowed.
    #[error(transparent)]
    InvalidScope(#[from] ScopeError),
    /// The code or refresh token is invalid, expired, used or not this client's
    /// (RFC 6749 `invalid_grant`).
    #[error("invalid grant: {0}")]
    InvalidGrant(&'static str),
    /// The bearer token is missing, unknown, expired or revoked.
    #[error("invalid or expired access token")]
    InvalidToken,
    /// The token lacks a scope.
    #[error("the access token lacks the scope {}", .0.as_str())]
    InsufficientScope(ScopeItem),
    /// The thing asked for does not exist, or not for this caller.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The flow does not allow this step now.
    #[error(transparent)]
    Flow(#[from] FlowError),
    /// The bank rejected the credentials; the end user may try again.
    #[error("login credentials invalid; {attempts_left} attempts left")]
    CredentialsInvalid {
        /// Tries left before the flow fails.
        attempts_left: u8,
    },
    /// The bank rejected the TAN; the end user may try again.
    #[error("TAN invalid; {attempts_left} attempts left")]
    TanInvalid {
        /// Tries left before the flow fails.
        attempts_left: u8,
    },
    /// The flow failed for good with this reason.
    #[error("the flow failed: {}", .0.code())]
    FlowFailed(FailureReason),
    /// The access's daily allowance of unattended syncs is spent, or the bank asked finX to
    /// wait (finX error 1020).
    #[error("too many syncs; the next one may start at {retry_at}")]
    TooManySyncs {
        /// When the next sync may start.
        retry_at: finx_domain::Timestamp,
        /// Seconds from now until then (at least 1).
        retry_after: u64,
    },
    /// The access's consent has expired or was revoked: it must be renewed first.
    #[error("the access's consent is {}; renew it first", .0.as_str())]
    ConsentOver(finx_domain::schedule::AccessStatus),
    /// In the middle of a pass of the transactions feed, a transaction of this pass changed
    /// again: the customer must discard the pass and restart from `cursor`.
    #[error("the feed changed during pagination; restart from the pass's first cursor")]
    FeedRestart {
        /// The pass's first cursor.
        cursor: String,
    },
    /// Another request changed the same flow at the same time.
    #[error("the resource is busy; try again")]
    Busy,
    /// The bank connector failed in a way the flow does not absorb.
    #[error("bank error")]
    Bank(#[from] BankError),
    /// The store failed.
    #[error("storage error")]
    Store(#[from] StoreError),
}

/// Why a replayed authorization code fails.
pub(crate) const CODE_REUSED: &str =
    "the code was already used; every token of its grant is revoked";
/// Why a replayed refresh token fails.
pub(crate) const REFRESH_REUSED: &str =
    "the refresh token was already used; every token of its grant is revoked";

impl CoreError {
    /// Whether a replayed code or refresh token was caught (and its grant revoked).
    #[must_use]
    pub fn is_token_reuse(&self) -> bool {
        matches!(self, Self::InvalidGrant(why) if *why == CODE_REUSED || *why == REFRESH_REUSED)
    }
}

pub(crate) fn invalid(field: &'static str, reason: impl ToString) -> CoreError {
    CoreError::Invalid {
        field,
        reason: reason.to_string(),
    }
}
