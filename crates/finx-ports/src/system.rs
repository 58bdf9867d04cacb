use std::time::Duration;

use async_trait::async_trait;
use finx_domain::Timestamp;

/// The time. The core reads it here and only here, so tests can move it.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait Clock: Send + Sync {
    /// The current time. It MUST NOT go backwards between calls on the same instance by more
    /// than the host clock does.
    fn now(&self) -> Timestamp;
}

/// Randomness for secrets and ids.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait SecretGenerator: Send + Sync {
    /// 32 bytes that MUST come from a cryptographically secure generator: they become
    /// tokens, codes and client secrets.
    fn bytes32(&self) -> [u8; 32];

    /// 16 bytes from the same generator, for ids.
    fn bytes16(&self) -> [u8; 16];
}

/// Waiting, for deadlines: the core bounds every bank call with it.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Timer: Send + Sync {
    /// Resolves once `duration` has passed (real time: a bank that hangs hangs in real
    /// time). MUST NOT block the thread.
    async fn sleep(&self, duration: Duration);
}
