//! The real clock, the operating system's randomness and tokio's timer, as finX ports.

use chrono::{SubsecRound, Utc};
use finx_ports::{Clock, SecretGenerator, Timer};

/// tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioTimer;

#[async_trait::async_trait]
impl Timer for TokioTimer {
    async fn sleep(&self, duration: std::time::Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> chrono::DateTime<Utc> {
        // Stores keep microseconds; cutting here makes every store read back what it got.
        Utc::now().trunc_subsecs(6)
    }
}

/// Randomness from the operating system (`getrandom`).
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

impl OsRandom {
    fn fill<const N: usize>() -> [u8; N] {
        let mut buf = [0u8; N];
        // The OS generator failing means the machine cannot make secrets at all; carrying on
        // with predictable bytes would be worse than stopping.
        #[allow(clippy::expect_used)]
        getrandom::fill(&mut buf).expect("the operating system's random number generator failed");
        buf
    }
}

impl SecretGenerator for OsRandom {
    fn bytes32(&self) -> [u8; 32] {
        Self::fill()
    }

    fn bytes16(&self) -> [u8; 16] {
        Self::fill()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bytes_differ() {
        assert_ne!(OsRandom.bytes32(), OsRandom.bytes32());
        assert_ne!(OsRandom.bytes16(), [0; 16]);
        assert_eq!(
            SystemClock.now().timestamp_subsec_nanos() % 1000,
            0,
            "whole microseconds"
        );
    }
}
