//! Verifying finX's webhooks: [Standard Webhooks](https://www.standardwebhooks.com/)
//! signatures (HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}`), with a
//! timestamp tolerance against replays.
//!
//! ```no_run
//! # fn handle(headers: &reqwest::header::HeaderMap, body: &[u8]) -> Result<(), finx_client::WebhookError> {
//! let verifier = finx_client::WebhookVerifier::new("whsec_…")?;
//! let event = verifier.verify(headers, body)?;
//! // Deliveries are at least once: drop an `event.id` already handled.
//! match event.event_type.as_str() {
//!     "access.synced" => { /* read the sync feed from your cursor */ }
//!     _ => {}
//! }
//! # Ok(())
//! # }
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use serde::Deserialize;
use thiserror::Error;

/// Why a webhook was refused.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebhookError {
    /// A secret is not `whsec_` and base64.
    #[error("invalid webhook secret")]
    Secret,
    /// A `webhook-*` header is missing or unreadable.
    #[error("missing or unreadable header {0}")]
    Header(&'static str),
    /// The timestamp is further from now than the tolerance (a replay, or a clock off).
    #[error("the webhook's timestamp is outside the tolerance")]
    Timestamp,
    /// No signature matches: not from finX, or altered.
    #[error("no matching signature")]
    Signature,
    /// The body is not a finX event.
    #[error("the body is not a finX event: {0}")]
    Body(String),
}

/// A verified event.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct WebhookEvent {
    /// The event id (`webhook-id`): the same on every retry.
    #[serde(skip)]
    pub id: String,
    /// E.g. `access.synced`, `access.consent_expiring`, `grant.revoked`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When it happened (RFC 3339).
    pub timestamp: String,
    /// Ids and counts, per type (never bank data).
    pub data: serde_json::Value,
}

/// Checks webhook signatures with one or more secrets (during a rotation, both the new
/// and the old one).
#[derive(Debug, Clone)]
pub struct WebhookVerifier {
    keys: Vec<Key>,
    tolerance: Duration,
}

#[derive(Clone)]
struct Key(std::sync::Arc<standardwebhooks::Webhook>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("whsec_[redacted]")
    }
}

/// The default timestamp tolerance: 5 minutes either way.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

impl WebhookVerifier {
    /// A verifier for one endpoint secret (`whsec_…`).
    ///
    /// # Errors
    /// [`WebhookError::Secret`].
    pub fn new(secret: &str) -> Result<Self, WebhookError> {
        Self::with_secrets(&[secret])
    }

    /// A verifier that accepts a signature by any of `secrets`.
    ///
    /// # Errors
    /// [`WebhookError::Secret`] when one is not a webhook secret, or none is given.
    pub fn with_secrets(secrets: &[&str]) -> Result<Self, WebhookError> {
        if secrets.is_empty() {
            return Err(WebhookError::Secret);
        }
        let keys = secrets
            .iter()
            .map(|s| {
                if !s.starts_with("whsec_") {
                    return Err(WebhookError::Secret);
                }
                standardwebhooks::Webhook::new(s)
                    .map(|w| Key(std::sync::Arc::new(w)))
                    .map_err(|_| WebhookError::Secret)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            keys,
            tolerance: DEFAULT_TOLERANCE,
        })
    }

    /// Another timestamp tolerance.
    #[must_use]
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Verifies a delivery against the system clock.
    ///
    /// # Errors
    /// See [`WebhookError`].
    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<WebhookEvent, WebhookError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.verify_at(headers, body, now)
    }

    /// Verifies a delivery as of `now` (Unix seconds).
    ///
    /// # Errors
    /// See [`WebhookError`].
    pub fn verify_at(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: i64,
    ) -> Result<WebhookEvent, WebhookError> {
        let header = |name: &'static str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .ok_or(WebhookError::Header(name))
        };
        let id = header("webhook-id")?;
        let timestamp: i64 = header("webhook-timestamp")?
            .parse()
            .map_err(|_| WebhookError::Header("webhook-timestamp"))?;
        let signatures = header("webhook-signature")?;
        if now.abs_diff(timestamp) > self.tolerance.as_secs() {
            return Err(WebhookError::Timestamp);
        }
        let matched = self.keys.iter().any(|k| {
            k.0.sign(id, timestamp, body).is_ok_and(|expected| {
                signatures
                    .split(' ')
                    .any(|given| constant_time_eq(given.as_bytes(), expected.as_bytes()))
            })
        });
        if !matched {
            return Err(WebhookError::Signature);
        }
        let mut event: WebhookEvent =
            serde_json::from_slice(body).map_err(|e| WebhookError::Body(e.to_string()))?;
        id.clone_into(&mut event.id);
        Ok(event)
    }
}

/// Compares in time that depends on the length only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn headers(id: &str, ts: i64, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("webhook-id", HeaderValue::from_str(id).expect("id"));
        h.insert(
            "webhook-timestamp",
            HeaderValue::from_str(&ts.to_string()).expect("ts"),
        );
        h.insert(
            "webhook-signature",
            HeaderValue::from_str(sig).expect("sig"),
        );
        h
    }

    #[test]
    fn the_specifications_example_verifies_within_the_tolerance_only() {
        let v = WebhookVerifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
        let body = br#"{"type":"t","timestamp":"2021-02-25T15:02:10Z","data":{}}"#;
        let wh = standardwebhooks::Webhook::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .expect("secret");
        let sig = wh.sign("msg_1", 1_614_265_330, body).expect("sign");
        let h = headers("msg_1", 1_614_265_330, &format!("v1,AAAA {sig}"));
        let e = v.verify_at(&h, body, 1_614_265_330 + 299).expect("valid");
        assert_eq!(e.id, "msg_1");
        assert_eq!(e.event_type, "t");
        assert_eq!(
            v.verify_at(&h, body, 1_614_265_330 + 301),
            Err(WebhookError::Timestamp)
        );
        assert_eq!(
            v.verify_at(&h, b"{\"type\":\"u\"}", 1_614_265_330),
            Err(WebhookError::Signature)
        );
        let other = WebhookVerifier::new("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").expect("s");
        assert_eq!(
            other.verify_at(&h, body, 1_614_265_330),
            Err(WebhookError::Signature)
        );
        assert_eq!(
            v.verify_at(&HeaderMap::new(), body, 0),
            Err(WebhookError::Header("webhook-id"))
        );
        assert!(WebhookVerifier::new("not-a-secret").is_err());
        let h = headers("msg_1", i64::MIN, &sig);
        assert_eq!(
            v.verify_at(&h, body, i64::MAX),
            Err(WebhookError::Timestamp)
        );
    }
}
