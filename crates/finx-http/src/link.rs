//! The widget link token: a compact JWS (HS256) naming one flow, with an expiry.
//!
//! Only `{"alg":"HS256","typ":"JWT"}` is accepted: no algorithm negotiation, no `none`.
//! The signature is checked in constant time before anything of the payload is read.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use finx_domain::Timestamp;
use finx_domain::ids::FlowId;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;
const AUDIENCE: &str = "finx-widget";

/// The key link tokens are signed with.
#[derive(Clone)]
pub struct LinkKey(Vec<u8>);

impl LinkKey {
    /// A key from bytes (at least 32 recommended).
    #[must_use]
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The key bytes, for keys derived from this one.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length.
        #[allow(clippy::expect_used)]
        Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts any key length")
    }
}

impl fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkKey([redacted])")
    }
}

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    aud: String,
    iat: i64,
    exp: i64,
}

/// Why a link token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not a well-formed token, or signed with another key or algorithm.
    #[error("invalid link token")]
    Invalid,
    /// Genuine, but past its expiry; names its flow so the user can still be sent back.
    #[error("the link has expired")]
    Expired(FlowId),
}

/// Signs a token for `flow`, valid until `expires_at`.
#[must_use]
pub fn sign(key: &LinkKey, flow: FlowId, issued_at: Timestamp, expires_at: Timestamp) -> String {
    let claims = Claims {
        sub: flow.to_string(),
        aud: AUDIENCE.into(),
        iat: issued_at.timestamp(),
        exp: expires_at.timestamp(),
    };
    let payload = serde_json::to_vec(&claims).unwrap_or_default();
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(HEADER),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let mut mac = key.mac();
    mac.update(signing_input.as_bytes());
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// Checks a token and returns its flow.
///
/// # Errors
/// [`LinkError::Invalid`] for anything not signed by `key` as we sign;
/// [`LinkError::Expired`] once `now` is past its expiry.
pub fn verify(key: &LinkKey, token: &str, now: Timestamp) -> Result<FlowId, LinkError> {
    if token.len() > 2048 {
        return Err(LinkError::Invalid);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(LinkError::Invalid);
    };
    if URL_SAFE_NO_PAD.decode(h).map_err(|_| LinkError::Invalid)? != HEADER.as_bytes() {
        return Err(LinkError::Invalid);
    }
    let signature = URL_SAFE_NO_PAD.decode(s).map_err(|_| LinkError::Invalid)?;
    let mut mac = key.mac();
    mac.update(h.as_bytes());
    mac.update(b".");
    mac.update(p.as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| LinkError::Invalid)?;
    let claims: Claims =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).map_err(|_| LinkError::Invalid)?)
            .map_err(|_| LinkError::Invalid)?;
    if claims.aud != AUDIENCE {
        return Err(LinkError::Invalid);
    }
    let flow = FlowId::parse(&claims.sub).map_err(|_| LinkError::Invalid)?;
    if now.timestamp() >= claims.exp {
        return Err(LinkError::Expired(flow));
    }
    Ok(flow)
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone};

    use super::*;

    fn now() -> Timestamp {
        chrono::Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or_default()
    }

    #[test]
    fn a_signed_link_names_its_flow_until_it_expires() {
        let key = LinkKey::new(vec![1; 32]);
        let flow = FlowId::from_random([4; 16]);
        let t = sign(&key, flow, now(), now() + TimeDelta::hours(1));
        assert_eq!(verify(&key, &t, now()), Ok(flow));
        assert_eq!(
            verify(&key, &t, now() + TimeDelta::hours(1)),
            Err(LinkError::Expired(flow))
        );
        assert_eq!(
            verify(&LinkKey::new(vec![2; 32]), &t, now()),
            Err(LinkError::Invalid)
        );
    }

    #[test]
    fn tampered_or_foreign_tokens_are_refused() {
        let key = LinkKey::new(vec![1; 32]);
        let t = sign(
            &key,
            FlowId::from_random([4; 16]),
            now(),
            now() + TimeDelta::hours(1),
        );
        let parts: Vec<&str> = t.split('.').collect();
        let other = sign(
            &key,
            FlowId::from_random([5; 16]),
            now(),
            now() + TimeDelta::hours(1),
        );
        let other_payload = other.split('.').nth(1).unwrap_or_default();
        let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        for bad in [
            format!("{}.{}.{}", parts[0], other_payload, parts[2]),
            format!("{none_header}.{}.", parts[1]),
            format!("{}.{}", parts[0], parts[1]),
            format!("{t}.x"),
            String::new(),
            "a.b.c".into(),
            "ä.ö.ü".into(),
        ] {
            assert_eq!(verify(&key, &bad, now()), Err(LinkError::Invalid), "{bad}");
        }
    }
}
