use finx_domain::token::{RedeemError, RotateError};
use thiserror::Error;

/// Any error, boxed: how adapters report infrastructure failures without the core naming
/// their libraries.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A storage operation failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A compare-and-swap lost, or a record with the same key exists.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The store cannot be reached now; the caller may retry later.
    #[error("storage unavailable")]
    Unavailable(#[source] BoxError),
    /// Anything else.
    #[error("storage failure")]
    Unexpected(#[source] BoxError),
}

/// [`GrantStore::redeem_code`](crate::GrantStore::redeem_code) failed.
#[derive(Debug, Error)]
pub enum RedeemFailure {
    /// The rules refused.
    #[error(transparent)]
    Rejected(#[from] RedeemError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// [`GrantStore::rotate_refresh_token`](crate::GrantStore::rotate_refresh_token) failed.
#[derive(Debug, Error)]
pub enum RotateFailure {
    /// The rules refused.
    #[error(transparent)]
    Rejected(#[from] RotateError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
