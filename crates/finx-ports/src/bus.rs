use async_trait::async_trait;
use finx_domain::ids::AccountId;

use crate::error::StoreError;

/// What a write may have changed, for the read caches of every instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// The transactions, balances or details of these accounts.
    Accounts(Vec<AccountId>),
    /// Anything: a grant or token revoked, a purge, data whose accounts are not known.
    Everything,
}

/// What [`InvalidationBus::next`] heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// Another instance (or this one) published this.
    Published(Invalidation),
    /// The bus is connected: from now on every publication is heard. Comes first, and
    /// again after each [`Heard::Lost`].
    Connected,
    /// Publications may have been missed since the last [`Heard::Connected`]; the reader
    /// MUST treat everything as changed until the next `Connected`.
    Lost,
}

/// Tells the other instances on the same database what a write changed, so that their read
/// caches drop what it made stale (PostgreSQL: `NOTIFY`/`LISTEN`).
///
/// A store that only one process uses has nothing to tell: its bus is not
/// [`shared`](Self::shared) and [`publish`](Self::publish) does nothing.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait InvalidationBus: Send + Sync {
    /// Whether other processes may write to the same data. When `false`, every write goes
    /// through this process and [`next`](Self::next) never answers.
    fn shared(&self) -> bool;

    /// Makes `what` heard by every instance's [`next`](Self::next). MUST be called only
    /// after the write it describes committed. A failure MUST be reported, never hidden.
    async fn publish(&self, what: &Invalidation) -> Result<(), StoreError>;

    /// The next thing heard. MUST answer [`Heard::Connected`] before the first
    /// [`Heard::Published`], and [`Heard::Lost`] whenever a publication may have been
    /// missed (a dropped connection), before the next `Connected`. Waits while nothing
    /// happens; on a bus that is not shared it never answers.
    async fn next(&self) -> Heard;
}
