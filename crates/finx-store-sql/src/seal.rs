//! Encryption at rest for the secrets a flow must read back: bank session handles and the
//! authorization code kept for a reload of the last page. AES-256-GCM (RustCrypto's
//! `aes-gcm`) under the configured data key, a random 96-bit nonce per value, and the flow's
//! id as associated data, so a sealed value cannot be moved to another flow's row.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use finx_ports::StoreError;
use sha2::{Digest, Sha256};

use crate::corrupt;

/// The key that encrypts bank session handles and codes at rest. Its `Debug` is redacted.
#[derive(Clone)]
pub struct DataKey([u8; 32]);

impl DataKey {
    /// The built-in key of the sandbox. Refused in production by the server.
    pub const SANDBOX: &'static str = "finx-sandbox-data-key-not-for-production-use";

    /// Derives the AES-256 key from a configured secret of at least 32 characters.
    ///
    /// # Errors
    /// When the secret is shorter.
    pub fn from_secret(secret: &str) -> Result<Self, &'static str> {
        if secret.len() < 32 {
            return Err("the data key must be at least 32 characters");
        }
        let mut h = Sha256::new();
        h.update(b"finx-data-key-v1\0");
        h.update(secret.as_bytes());
        Ok(Self(h.finalize().into()))
    }

    /// The sandbox's key.
    #[must_use]
    pub fn sandbox() -> Self {
        Self::from_secret(Self::SANDBOX).unwrap_or(Self([0; 32]))
    }
}

impl Default for DataKey {
    fn default() -> Self {
        Self::sandbox()
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

const PREFIX: &str = "v1.";

impl DataKey {
    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.0))
    }

    /// Encrypts `plain`, bound to `context` (the flow id).
    pub(crate) fn seal(&self, plain: &str, context: &str) -> Result<String, StoreError> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce)
            .map_err(|e| StoreError::Unexpected(format!("no randomness: {e}").into()))?;
        let sealed = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| StoreError::Unexpected("encryption failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(out)))
    }

    /// Decrypts what [`seal`](Self::seal) made for the same `context`.
    pub(crate) fn open(&self, sealed: &str, context: &str) -> Result<String, StoreError> {
        let raw = sealed
            .strip_prefix(PREFIX)
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .filter(|r| r.len() > 12)
            .ok_or_else(|| corrupt("sealed value"))?;
        let (nonce, body) = raw.split_at(12);
        let plain = self
            .cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: context.as_bytes(),
                },
            )
            // A wrong key or a value moved from another row: not readable, not a panic.
            .map_err(|_| corrupt("sealed value (wrong data key?)"))?;
        String::from_utf8(plain).map_err(|_| corrupt("sealed value"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_context() {
        let k = DataKey::from_secret("0123456789abcdef0123456789abcdef").expect("key");
        let s = k.seal("session-handle", "flow-1").expect("seal");
        assert!(!s.contains("session-handle"));
        assert_ne!(
            s,
            k.seal("session-handle", "flow-1").expect("seal"),
            "fresh nonce"
        );
        assert_eq!(k.open(&s, "flow-1").expect("open"), "session-handle");
        assert!(k.open(&s, "flow-2").is_err(), "bound to its flow");
        let other = DataKey::from_secret("another key of thirty-two characters!").expect("key");
        assert!(other.open(&s, "flow-1").is_err());
        assert!(k.open("v1.AAAA", "flow-1").is_err());
        assert!(k.open("plain", "flow-1").is_err());
        assert!(DataKey::from_secret("short").is_err());
        assert_eq!(format!("{k:?}"), "DataKey([redacted])");
    }
}
