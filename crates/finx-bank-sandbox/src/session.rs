//! Stateless session handles: the handle itself says which bank, which login and which stage,
//! and an HMAC-SHA256 tag under a key derived from the seed keeps it honest. Any sandbox
//! instance with the same seed accepts the handles of any other.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use finx_domain::flow::BankSession;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::catalog::{Bank, User};

type HmacSha256 = Hmac<Sha256>;

/// What a handle's payload starts with; a new layout gets a new version.
const PREFIX: &str = "finx-sandbox-session/v1";

/// Handles longer than this are not ours; they are rejected before decoding.
const MAX_HANDLE_LEN: usize = 512;

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Logged in, waiting for the TAN.
    ScaPending,
    /// Fully logged in: data may be read.
    Authorized,
}

impl Stage {
    fn as_str(self) -> &'static str {
        match self {
            Self::ScaPending => "sca_pending",
            Self::Authorized => "authorized",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        [Self::ScaPending, Self::Authorized]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// What a valid handle says.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Claims {
    /// The bank.
    pub(crate) bank: &'static Bank,
    /// The login.
    pub(crate) user: User,
    /// The stage.
    pub(crate) stage: Stage,
}

/// The key that signs handles.
pub(crate) struct SessionKey([u8; 32]);

impl SessionKey {
    /// The key for `seed`. Sandbox handles guard sandbox data only, so a key derived from a
    /// configuration value is enough; what matters is that a handed-out handle cannot be
    /// edited into another login's.
    pub(crate) fn derive(seed: u64) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"finx-bank-sandbox session key v1");
        hasher.update(seed.to_be_bytes());
        Self(hasher.finalize().into())
    }

    fn mac(&self) -> Option<HmacSha256> {
        <HmacSha256 as Mac>::new_from_slice(&self.0).ok()
    }

    /// A signed handle for `claims`; `None` only if HMAC could not be keyed.
    pub(crate) fn seal(&self, claims: Claims) -> Option<BankSession> {
        let payload = format!(
            "{PREFIX}|{}|{}|{}",
            claims.bank.code,
            claims.user.name(),
            claims.stage.as_str()
        );
        let mut mac = self.mac()?;
        mac.update(payload.as_bytes());
        let tag = mac.finalize().into_bytes();
        Some(BankSession::new(format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(tag)
        )))
    }

    /// The claims of a handle this key signed; `None` for anything else.
    pub(crate) fn open(&self, session: &BankSession) -> Option<Claims> {
        let handle = session.expose();
        if handle.len() > MAX_HANDLE_LEN {
            return None;
        }
        let (payload, tag) = handle.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        let mut mac = self.mac()?;
        mac.update(&payload);
        // Constant-time comparison.
        mac.verify_slice(&tag).ok()?;
        let payload = String::from_utf8(payload).ok()?;
        let mut parts = payload.split('|');
        if parts.next()? != PREFIX {
            return None;
        }
        let bank = Bank::by_code(parts.next()?)?;
        let user = User::parse(parts.next()?)?;
        let stage = Stage::parse(parts.next()?)?;
        if parts.next().is_some() {
            return None;
        }
        Some(Claims { bank, user, stage })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::BANKS;

    fn claims() -> Claims {
        Claims {
            bank: &BANKS[1],
            user: User::Demo,
            stage: Stage::ScaPending,
        }
    }

    #[test]
    fn a_sealed_handle_opens_to_its_claims() {
        let key = SessionKey::derive(7);
        let handle = key.seal(claims()).expect("sealed");
        let opened = key.open(&handle).expect("opens");
        assert_eq!(opened.bank.code, "90094816");
        assert_eq!(opened.user, User::Demo);
        assert_eq!(opened.stage, Stage::ScaPending);
    }

    #[test]
    fn an_edited_payload_or_tag_or_another_key_is_rejected() {
        let key = SessionKey::derive(7);
        let handle = key.seal(claims()).expect("sealed");
        let (payload, tag) = handle.expose().split_once('.').expect("two parts");
        let edited = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).expect("b64"))
            .expect("utf8")
            .replace("sca_pending", "authorized");
        let forged = BankSession::new(format!("{}.{tag}", URL_SAFE_NO_PAD.encode(edited)));
        assert!(key.open(&forged).is_none());
        let mut bad_tag = tag.to_owned();
        bad_tag.replace_range(0..1, if tag.starts_with('A') { "B" } else { "A" });
        assert!(
            key.open(&BankSession::new(format!("{payload}.{bad_tag}")))
                .is_none()
        );
        assert!(SessionKey::derive(8).open(&handle).is_none());
        assert!(key.open(&BankSession::new(String::new())).is_none());
        assert!(key.open(&BankSession::new("x".repeat(10_000))).is_none());
    }
}
