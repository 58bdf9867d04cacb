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
const PREFIX: &str = "finx-sandbox-session/v2";

/// Handles longer than this are not ours; they are rejected before decoding.
const MAX_HANDLE_LEN: usize = 1024;

/// An SCA method of the embedded bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    /// pushTAN: the TAN comes to the bank's app.
    Push,
    /// chipTAN with a flicker code for the card reader.
    Chip,
    /// photoTAN: an image for the app to read.
    Photo,
}

impl Method {
    /// Every method, in the order the bank offers them.
    pub(crate) const ALL: [Self; 3] = [Self::Push, Self::Chip, Self::Photo];

    /// The id the bank gives it (`authenticationMethodId`).
    pub(crate) fn id(self) -> &'static str {
        match self {
            Self::Push => "push",
            Self::Chip => "chip",
            Self::Photo => "photo",
        }
    }

    /// A method by id.
    pub(crate) fn parse(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.id() == id)
    }
}

/// Where a session stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stage {
    /// The login form is due.
    Login,
    /// The SCA method choice is due.
    Method,
    /// The TAN for this method is due.
    Tan(Method),
    /// The user is at the bank's pages for this authorisation.
    Redirect(String),
    /// The user approves this authorisation in the bank's app.
    Decoupled(String),
    /// Fully authorised: data may be read.
    Authorized,
}

impl Stage {
    fn text(&self) -> String {
        match self {
            Self::Login => "login".into(),
            Self::Method => "method".into(),
            Self::Tan(m) => format!("tan-{}", m.id()),
            Self::Redirect(id) => format!("redirect-{id}"),
            Self::Decoupled(id) => format!("decoupled-{id}"),
            Self::Authorized => "authorized".into(),
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "login" => Self::Login,
            "method" => Self::Method,
            "authorized" => Self::Authorized,
            _ => {
                let (kind, rest) = raw.split_once('-')?;
                match kind {
                    "tan" => Self::Tan(Method::parse(rest)?),
                    "redirect" if is_auth_id(rest) => Self::Redirect(rest.to_owned()),
                    "decoupled" if is_auth_id(rest) => Self::Decoupled(rest.to_owned()),
                    _ => return None,
                }
            }
        })
    }
}

/// Authorisation ids are 32 lowercase hex digits.
pub(crate) fn is_auth_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The consent a session works towards, as finX asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Terms {
    /// The bank's id for it.
    pub(crate) consent_id: String,
    /// Repeated access or one.
    pub(crate) recurring: bool,
    /// The last day.
    pub(crate) valid_until: finx_domain::Date,
    /// Accesses a day.
    pub(crate) frequency_per_day: u16,
}

/// What a valid handle says.
#[derive(Debug, Clone)]
pub(crate) struct Claims {
    /// The bank.
    pub(crate) bank: &'static Bank,
    /// The login, once known.
    pub(crate) user: Option<User>,
    /// The stage.
    pub(crate) stage: Stage,
    /// The consent.
    pub(crate) terms: Terms,
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
    pub(crate) fn seal(&self, claims: &Claims) -> Option<BankSession> {
        let payload = format!(
            "{PREFIX}|{}|{}|{}|{}|{}|{}|{}",
            claims.bank.code,
            claims.user.map_or("-", User::name),
            claims.stage.text(),
            claims.terms.consent_id,
            u8::from(claims.terms.recurring),
            claims.terms.valid_until.format("%Y-%m-%d"),
            claims.terms.frequency_per_day,
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
        let user = match parts.next()? {
            "-" => None,
            name => Some(User::parse(name)?),
        };
        let stage = Stage::parse(parts.next()?)?;
        let consent_id = parts.next()?.to_owned();
        let recurring = match parts.next()? {
            "1" => true,
            "0" => false,
            _ => return None,
        };
        let valid_until = chrono::NaiveDate::parse_from_str(parts.next()?, "%Y-%m-%d").ok()?;
        let frequency_per_day = parts.next()?.parse().ok()?;
        if parts.next().is_some() {
            return None;
        }
        Some(Claims {
            bank,
            user,
            stage,
            terms: Terms {
                consent_id,
                recurring,
                valid_until,
                frequency_per_day,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::BANKS;

    fn claims() -> Claims {
        Claims {
            bank: &BANKS[1],
            user: Some(User::Demo),
            stage: Stage::Tan(Method::Photo),
            terms: Terms {
                consent_id: "c1".into(),
                recurring: false,
                valid_until: chrono::NaiveDate::from_ymd_opt(2026, 3, 21).expect("date"),
                frequency_per_day: 1,
            },
        }
    }

    #[test]
    fn a_sealed_handle_opens_to_its_claims() {
        let key = SessionKey::derive(7);
        let handle = key.seal(&claims()).expect("sealed");
        let opened = key.open(&handle).expect("opens");
        assert_eq!(opened.bank.code, "90094816");
        assert_eq!(opened.user, Some(User::Demo));
        assert_eq!(opened.stage, Stage::Tan(Method::Photo));
        assert_eq!(opened.terms, claims().terms);
    }

    #[test]
    fn an_edited_payload_or_tag_or_another_key_is_rejected() {
        let key = SessionKey::derive(7);
        let handle = key.seal(&claims()).expect("sealed");
        let (payload, tag) = handle.expose().split_once('.').expect("two parts");
        let edited = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).expect("b64"))
            .expect("utf8")
            .replace("tan-photo", "authorized");
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
