//! The widget link token: a compact JWS (HS256) naming one flow, with an expiry.
//!
//! Only `{"alg":"HS256","kid":…,"typ":"JWT"}` is accepted: no algorithm negotiation, no
//! `none`. `kid` names the link key that signed it, so a rotated key's links still open.
//! The signature is checked in constant time before anything of the payload is read.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use finx_domain::Timestamp;
use finx_domain::ids::FlowId;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

const ALG: &str = "HS256";
const TYP: &str = "JWT";
const AUDIENCE: &str = "finx-widget";

/// The keys link tokens are signed with: the current one, which signs, and the ones it
/// replaced, which still verify the links they signed. Each token names its key (`kid`).
#[derive(Clone)]
pub struct LinkKey {
    /// `(kid, key)`, the current key first.
    keys: Vec<(String, Vec<u8>)>,
}

impl LinkKey {
    /// A key from bytes (at least 32 recommended).
    #[must_use]
    pub fn new(bytes: Vec<u8>) -> Self {
        Self::with_previous(bytes, Vec::new())
    }

    /// The current key and the keys it replaced (newest first), whose links stay valid
    /// until they expire.
    #[must_use]
    pub fn with_previous(current: Vec<u8>, previous: Vec<Vec<u8>>) -> Self {
        let keys = std::iter::once(current)
            .chain(previous)
            .map(|k| (key_id(&k), k))
            .collect();
        Self { keys }
    }

    /// The id of the current key, as tokens carry it.
    #[must_use]
    pub fn key_id(&self) -> &str {
        &self.keys[0].0
    }

    /// The current key's bytes.
    fn current(&self) -> &[u8] {
        &self.keys[0].1
    }

    /// The key a token names (`None`: unknown, or not a token of ours); a token from
    /// before key ids names none and is the current key's.
    pub(crate) fn key_of(&self, token: &str) -> Option<&[u8]> {
        let header = token.split('.').next()?;
        let header: Header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
        if header.alg != ALG || header.typ != TYP {
            return None;
        }
        match header.kid {
            None => Some(self.current()),
            Some(kid) => self
                .keys
                .iter()
                .find(|(id, _)| *id == kid)
                .map(|(_, k)| k.as_slice()),
        }
    }
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    #[allow(clippy::expect_used)]
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length")
}

/// A short public name of a key: 8 hex digits of a keyed hash of a fixed string.
fn key_id(key: &[u8]) -> String {
    let mut m = mac(key);
    m.update(b"finx-link-key-id");
    hex::encode(&m.finalize().into_bytes()[..4])
}

impl fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LinkKey({} keys, [redacted])", self.keys.len())
    }
}

/// The JOSE header: exactly these members.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    alg: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
    typ: String,
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

/// Signs a token for `flow` under the current key, valid until `expires_at`.
#[must_use]
pub fn sign(key: &LinkKey, flow: FlowId, issued_at: Timestamp, expires_at: Timestamp) -> String {
    let header = Header {
        alg: ALG.into(),
        kid: Some(key.key_id().to_owned()),
        typ: TYP.into(),
    };
    let claims = Claims {
        sub: flow.to_string(),
        aud: AUDIENCE.into(),
        iat: issued_at.timestamp(),
        exp: expires_at.timestamp(),
    };
    let header = serde_json::to_vec(&header).unwrap_or_default();
    let payload = serde_json::to_vec(&claims).unwrap_or_default();
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let mut mac = mac(key.current());
    mac.update(signing_input.as_bytes());
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// Checks a token, under the key it names, and returns its flow.
///
/// # Errors
/// [`LinkError::Invalid`] for anything not signed by one of `key`'s keys as we sign;
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
    let signing_key = key.key_of(token).ok_or(LinkError::Invalid)?;
    let signature = URL_SAFE_NO_PAD.decode(s).map_err(|_| LinkError::Invalid)?;
    let mut mac = mac(signing_key);
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
    fn after_a_rotation_links_of_the_previous_key_still_open() {
        let old = LinkKey::new(vec![1; 32]);
        let rotated = LinkKey::with_previous(vec![2; 32], vec![vec![1; 32]]);
        let dropped = LinkKey::new(vec![2; 32]);
        let flow = FlowId::from_random([4; 16]);
        let t = sign(&old, flow, now(), now() + TimeDelta::hours(1));
        assert_eq!(verify(&rotated, &t, now()), Ok(flow));
        assert_eq!(verify(&dropped, &t, now()), Err(LinkError::Invalid));
        let fresh = sign(&rotated, flow, now(), now() + TimeDelta::hours(1));
        assert_eq!(verify(&rotated, &fresh, now()), Ok(flow));
        assert_eq!(verify(&old, &fresh, now()), Err(LinkError::Invalid));
        assert_eq!(rotated.key_of(&fresh), Some([2u8; 32].as_slice()));
        assert_eq!(rotated.key_of(&t), Some([1u8; 32].as_slice()));
        assert_ne!(old.key_id(), rotated.key_id());
        // A token from before key ids (no `kid`) is the current key's.
        let legacy_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
        let rest = t.split_once('.').map(|(_, r)| r).unwrap_or_default();
        let legacy = format!("{legacy_header}.{rest}");
        assert_eq!(old.key_of(&legacy), Some([1u8; 32].as_slice()));
        // An unknown kid is refused, not tried against every key.
        let unknown = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","kid":"00000000","typ":"JWT"}"#);
        assert_eq!(
            verify(&rotated, &format!("{unknown}.{rest}"), now()),
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
