//! Secrets: tokens, codes and client secrets, and the keyed hash that is all a store ever sees
//! of them.
//!
//! A secret redacts its `Debug`, has no `PartialEq` (use [`ct_eq`](AccessToken::ct_eq), which
//! runs in constant time) and leaves this crate's types only through `expose`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use thiserror::Error;

/// A presented secret is not of a form we could have issued.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("malformed {0}")]
pub struct MalformedSecret(pub &'static str);

/// The longest secret we read; longer input is rejected before any work is done on it.
pub const MAX_SECRET_LEN: usize = 4096;

macro_rules! secret {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $what:literal) => {
        $(#[$doc])*
        pub struct $name(String);

        impl $name {
            /// What every secret of this kind starts with, so a leaked one is recognisable.
            pub const PREFIX: &'static str = $prefix;

            /// Builds a fresh secret from 32 random bytes (256 bits).
            #[must_use]
            pub fn from_random(bytes: [u8; 32]) -> Self {
                Self(format!("{}{}", $prefix, URL_SAFE_NO_PAD.encode(bytes)))
            }

            /// Takes a secret presented by a caller. Only its size and alphabet are checked
            /// here; whether it is known is for the store to say, through its hash.
            ///
            /// # Errors
            /// [`MalformedSecret`] when empty, longer than [`MAX_SECRET_LEN`] or not printable
            /// ASCII.
            pub fn from_presented(raw: &str) -> Result<Self, MalformedSecret> {
                if raw.is_empty() || raw.len() > MAX_SECRET_LEN || !raw.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(MalformedSecret($what));
                }
                Ok(Self(raw.to_owned()))
            }

            /// The secret itself, for the one place that must send it: the response body.
            #[must_use]
            pub fn expose(&self) -> &str {
                &self.0
            }

            /// Compares two secrets in constant time.
            #[must_use]
            pub fn ct_eq(&self, other: &Self) -> bool {
                self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({}[redacted])", stringify!($name), $prefix)
            }
        }

        impl Clone for $name {
            fn clone(&self) -> Self {
                Self(self.0.clone())
            }
        }

        impl HashableSecret for $name {
            const DOMAIN: &'static [u8] = $prefix.as_bytes();
            fn secret_bytes(&self) -> &[u8] {
                self.0.as_bytes()
            }
        }
    };
}

secret!(
    /// A bearer access token (`fxa_…`).
    AccessToken, "fxa_", "access token"
);
secret!(
    /// A refresh token (`fxr_…`).
    RefreshToken, "fxr_", "refresh token"
);
secret!(
    /// An authorization code (`fxc_…`).
    AuthorizationCode, "fxc_", "authorization code"
);
secret!(
    /// A client secret (`fxs_…`).
    ClientSecret, "fxs_", "client secret"
);
secret!(
    /// The random value of the cookie that binds widget flows to the browser that opened
    /// them (`fxb_…`). Flows keep only its hash.
    BrowserToken, "fxb_", "browser token"
);

secret!(
    /// The nonce in finX's return address that a bank's redirect comes back to (`fxn_…`):
    /// only the return the bank was given resumes the flow, and only once. Flows keep only
    /// its hash.
    ReturnNonce, "fxn_", "return nonce"
);

/// A secret that can be hashed by a [`TokenHasher`]. Each kind hashes under its own domain,
/// so an access token's hash never equals a refresh token's.
pub trait HashableSecret {
    /// Domain separation tag.
    const DOMAIN: &'static [u8];
    /// The raw bytes.
    fn secret_bytes(&self) -> &[u8];
}

/// The keyed hash (HMAC-SHA256) of a secret: what stores keep and look up by.
#[derive(Clone, Copy)]
pub struct TokenHash([u8; 32]);

impl std::hash::Hash for TokenHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Equal hashes have equal bytes, so hashing the bytes agrees with `PartialEq`.
        self.0.hash(state);
    }
}

impl TokenHash {
    /// Wraps 32 bytes read back from a store.
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, for stores that keep text.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Reads lower- or upper-case hex.
    ///
    /// # Errors
    /// [`MalformedSecret`] unless exactly 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, MalformedSecret> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).map_err(|_| MalformedSecret("token hash"))?;
        Ok(Self(out))
    }
}

impl PartialEq for TokenHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for TokenHash {}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A prefix is enough to correlate log lines and too short to be useful to an attacker.
        write!(f, "TokenHash({}…)", &self.to_hex()[..8])
    }
}

/// Hashes secrets with HMAC-SHA256 under the server's secret key.
#[derive(Clone)]
pub struct TokenHasher {
    mac: Hmac<Sha256>,
}

impl TokenHasher {
    /// A hasher keyed with `key` (at least 32 bytes are recommended).
    ///
    /// # Errors
    /// [`MalformedSecret`] when the key is shorter than 16 bytes.
    pub fn new(key: &[u8]) -> Result<Self, MalformedSecret> {
        if key.len() < 16 {
            return Err(MalformedSecret("hash key (at least 16 bytes)"));
        }
        let mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| MalformedSecret("hash key"))?;
        Ok(Self { mac })
    }

    /// The keyed hash of `data` in `domain` (for values finX hands out and must recognise
    /// as its own, e.g. feed cursors).
    #[must_use]
    pub fn tag(&self, domain: &[u8], data: &[u8]) -> TokenHash {
        let mut mac = self.mac.clone();
        mac.update(domain);
        mac.update(&[0]);
        mac.update(data);
        TokenHash(mac.finalize().into_bytes().into())
    }

    /// The keyed hash of a secret.
    #[must_use]
    pub fn hash<S: HashableSecret>(&self, secret: &S) -> TokenHash {
        let mut mac = self.mac.clone();
        mac.update(S::DOMAIN);
        mac.update(&[0]);
        mac.update(secret.secret_bytes());
        TokenHash(mac.finalize().into_bytes().into())
    }
}

impl TokenHasher {
    /// A short public name of the key (8 hex digits of a keyed hash of a fixed string), to
    /// tell keys apart in configuration, logs and the store without showing them.
    #[must_use]
    pub fn key_id(&self) -> String {
        hex::encode(&self.tag(b"finx-key-id", b"").as_bytes()[..4])
    }
}

/// The hash key in use and the keys it replaced: new hashes are made under the current key,
/// and a presented secret is recognised under any of them, so rotating the key logs nobody
/// out. A key is dropped once nothing hashed under it is still wanted.
#[derive(Clone, Debug)]
pub struct HashKeys {
    current: TokenHasher,
    previous: Vec<TokenHasher>,
}

impl HashKeys {
    /// The current key and the previous ones, newest first.
    ///
    /// # Errors
    /// [`MalformedSecret`] when a key is shorter than 16 bytes.
    pub fn new(current: &[u8], previous: &[Vec<u8>]) -> Result<Self, MalformedSecret> {
        Ok(Self {
            current: TokenHasher::new(current)?,
            previous: previous
                .iter()
                .map(|k| TokenHasher::new(k))
                .collect::<Result<_, _>>()?,
        })
    }

    /// The key new hashes are made under.
    #[must_use]
    pub fn current(&self) -> &TokenHasher {
        &self.current
    }

    /// Every key, the current one first.
    pub fn all(&self) -> impl Iterator<Item = &TokenHasher> {
        std::iter::once(&self.current).chain(&self.previous)
    }

    /// The hash of a secret under the current key (for storing).
    #[must_use]
    pub fn hash<S: HashableSecret>(&self, secret: &S) -> TokenHash {
        self.current.hash(secret)
    }

    /// The hashes a stored secret may have: under the current key first, then the previous
    /// ones (for looking up).
    #[must_use]
    pub fn candidates<S: HashableSecret>(&self, secret: &S) -> Vec<TokenHash> {
        self.all().map(|k| k.hash(secret)).collect()
    }

    /// Whether `hash` is `secret`'s under any key (constant time per key).
    #[must_use]
    pub fn matches<S: HashableSecret>(&self, secret: &S, hash: &TokenHash) -> bool {
        self.all()
            .map(|k| k.hash(secret) == *hash)
            .fold(false, |a, b| a | b)
    }
}

impl fmt::Debug for TokenHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHasher([redacted key])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug() {
        let t = AccessToken::from_random([0xAB; 32]);
        assert!(t.expose().starts_with("fxa_"));
        assert_eq!(t.expose().len(), 4 + 43);
        let dbg = format!("{t:?}");
        assert!(!dbg.contains(&t.expose()[4..]), "{dbg}");
        assert!(format!("{:?}", TokenHasher::new(&[1; 32]).expect("key")).contains("redacted"));
    }

    #[test]
    fn a_rotated_key_still_recognises_what_the_previous_key_hashed() {
        let old = HashKeys::new(&[1; 32], &[]).expect("key");
        let new = HashKeys::new(&[2; 32], &[vec![1; 32]]).expect("keys");
        let only_new = HashKeys::new(&[2; 32], &[]).expect("key");
        let t = AccessToken::from_random([0xCD; 32]);
        let stored = old.hash(&t);
        assert_ne!(new.hash(&t), stored, "new hashes use the new key");
        assert!(new.matches(&t, &stored));
        assert_eq!(new.candidates(&t), vec![new.hash(&t), stored]);
        assert!(
            !only_new.matches(&t, &stored),
            "a dropped key recognises nothing"
        );
        assert_ne!(old.current().key_id(), new.current().key_id());
        assert_eq!(old.current().key_id().len(), 8);
    }

    #[test]
    fn hashes_are_keyed_and_separated_by_kind() {
        let h1 = TokenHasher::new(&[1; 32]).expect("key");
        let h2 = TokenHasher::new(&[2; 32]).expect("key");
        let a = AccessToken::from_presented("same").expect("ok");
        let r = RefreshToken::from_presented("same").expect("ok");
        assert_eq!(h1.hash(&a), h1.hash(&a));
        assert_ne!(h1.hash(&a), h2.hash(&a));
        assert_ne!(h1.hash(&a), h1.hash(&r));
        let hash = h1.hash(&a);
        assert_eq!(TokenHash::from_hex(&hash.to_hex()), Ok(hash));
        assert!(TokenHasher::new(b"short").is_err());
        let signed = format!("+f{}", &hash.to_hex()[2..]);
        assert!(
            TokenHash::from_hex(&signed).is_err(),
            "a sign is not a hex digit"
        );
    }

    #[test]
    fn presented_secrets_are_bounded() {
        assert!(AccessToken::from_presented("").is_err());
        assert!(AccessToken::from_presented("a b").is_err());
        assert!(AccessToken::from_presented(&"a".repeat(MAX_SECRET_LEN + 1)).is_err());
        assert!(AccessToken::from_presented(&"a".repeat(MAX_SECRET_LEN)).is_ok());
        let a = AccessToken::from_presented("abc").expect("ok");
        assert!(a.ct_eq(&AccessToken::from_presented("abc").expect("ok")));
        assert!(!a.ct_eq(&AccessToken::from_presented("abd").expect("ok")));
    }
}
