//! Identifiers. Each is a newtype so that a flow id cannot be passed where a grant id is due.

use std::fmt;

use sha2::{Digest, Sha256};
use thiserror::Error;
use uuid::Uuid;

/// An identifier could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid {kind}: {reason}")]
pub struct IdError {
    /// Which identifier.
    pub kind: &'static str,
    /// What is wrong.
    pub reason: &'static str,
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// Builds the id from 16 random bytes (a version 4 UUID).
            #[must_use]
            pub fn from_random(bytes: [u8; 16]) -> Self {
                Self(uuid::Builder::from_random_bytes(bytes).into_uuid())
            }

            /// Parses the hyphenated UUID form.
            ///
            /// # Errors
            /// [`IdError`] when it is not a UUID.
            pub fn parse(raw: &str) -> Result<Self, IdError> {
                Uuid::try_parse(raw)
                    .map(Self)
                    .map_err(|_| IdError { kind: $kind, reason: "not a UUID" })
            }

            /// The UUID.
            #[must_use]
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }
    };
}

uuid_id!(
    /// A one-time access flow (the `id` answered by `POST /onetime/access`).
    FlowId, "flow id"
);
uuid_id!(
    /// A grant: the family of one code and every token issued from it.
    GrantId, "grant id"
);
uuid_id!(
    /// A transaction upload (the `id` answered by `POST /uploads`).
    UploadId, "upload id"
);
uuid_id!(
    /// A sync of an ongoing access (the `sync_id` of `/rest/accesses/{id}/syncs`).
    SyncId, "sync id"
);

uuid_id!(
    /// A webhook event (the `webhook-id` of its deliveries: the same for every retry).
    EventId, "event id"
);
uuid_id!(
    /// A customer's webhook endpoint.
    EndpointId, "endpoint id"
);

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The letter every id of this kind starts with.
            pub const PREFIX: char = $prefix;

            /// Parses an id: the prefix letter and 1 to 64 alphanumerics.
            ///
            /// # Errors
            /// [`IdError`] for anything else.
            pub fn parse(raw: &str) -> Result<Self, IdError> {
                let ok = raw.starts_with($prefix)
                    && (2..=65).contains(&raw.len())
                    && raw.bytes().all(|b| b.is_ascii_alphanumeric());
                if ok {
                    Ok(Self(raw.to_owned()))
                } else {
                    Err(IdError { kind: $kind, reason: concat!("must be '", $prefix, "' followed by up to 64 letters or digits") })
                }
            }

            /// Derives a stable id from its parts, so that syncing the same bank data again
            /// yields the same ids.
            #[must_use]
            pub fn derive(parts: &[&str]) -> Self {
                Self(format!("{}{}", $prefix, digest_hex(parts)))
            }

            /// The id.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    };
}

prefixed_id!(
    /// A bank connection (finX `access_id`), one per completed login at a bank.
    AccessId, 'X', "access id"
);
prefixed_id!(
    /// An account (finX `account_id`).
    AccountId, 'A', "account id"
);
prefixed_id!(
    /// A transaction (finX `transaction_id`).
    TransactionId, 'T', "transaction id"
);

/// 20 hex characters of SHA-256 over the length-prefixed parts.
fn digest_hex(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(&h.finalize()[..10])
}

/// A customer (OAuth client) id: 1 to 128 of `A-Z a-z 0-9 . _ -`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(String);

impl ClientId {
    /// Parses a client id.
    ///
    /// # Errors
    /// [`IdError`] when empty, too long or with other characters.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let ok = (1..=128).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(IdError {
                kind: "client id",
                reason: "must be 1 to 128 of A-Z a-z 0-9 . _ -",
            })
        }
    }

    /// The id.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientId({})", self.0)
    }
}

/// A bank (institution) as a bank connector names it, e.g. `sandbox-90094815`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstitutionId(String);

impl InstitutionId {
    /// Parses an institution id: 1 to 64 of `A-Z a-z 0-9 . _ -`.
    ///
    /// # Errors
    /// [`IdError`] for anything else.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let ok = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(IdError {
                kind: "institution id",
                reason: "must be 1 to 64 of A-Z a-z 0-9 . _ -",
            })
        }
    }

    /// The id.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstitutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for InstitutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InstitutionId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_prefixed() {
        let a = AccountId::derive(&["X1", "acct-1"]);
        assert_eq!(a, AccountId::derive(&["X1", "acct-1"]));
        assert_ne!(a, AccountId::derive(&["X1a", "cct-1"]));
        assert!(a.as_str().starts_with('A'));
        assert_eq!(AccountId::parse(a.as_str()), Ok(a));
        assert!(AccountId::parse("T123").is_err());
        assert!(TransactionId::parse("T").is_err());
    }

    #[test]
    fn uuid_ids_parse_their_display() {
        let f = FlowId::from_random([7; 16]);
        assert_eq!(FlowId::parse(&f.to_string()), Ok(f));
        assert!(FlowId::parse("nope").is_err());
        assert!(ClientId::parse("demo-client_1.x").is_ok());
        assert!(ClientId::parse("a b").is_err());
    }
}
