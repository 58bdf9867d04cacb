//! The session handle: where the dialog with one bank stands, as base64url JSON. It names a
//! consent, so stores seal it; it never holds a credential or a TAN.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use finx_domain::flow::BankSession;
use finx_ports::Presence;
use serde::{Deserialize, Serialize};

use crate::wire::Terms;

/// Handles longer than this are not ours.
const MAX_HANDLE: usize = 8 * 1024;

/// The step the dialog is at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Stage {
    /// The PSU's credentials start the authorisation (`next`).
    Login,
    /// A method is to be chosen (`next` takes it).
    Method,
    /// The TAN is due (`next` takes it).
    Tan,
    /// The user is at the bank's pages (`next` is the SCA status).
    Redirect,
    /// The user approves in the bank's app (`next` is the SCA status).
    Decoupled,
    /// The user authorises at the bank's OAuth server; the code comes back to finX.
    OAuth,
    /// The consent is valid: data may be read.
    Done,
}

/// What the handle says. Its `Debug` shows no consent id, token or verifier.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Session {
    /// The bank's registry id.
    pub(crate) bank: String,
    /// The consent.
    pub(crate) consent: String,
    /// Where the dialog stands.
    pub(crate) stage: Stage,
    /// The link the next call goes to.
    pub(crate) next: Option<String>,
    /// The bank's page, for a redirect.
    pub(crate) redirect: Option<String>,
    /// This consent only lists the accounts (`availableAccounts`); a dedicated one follows.
    pub(crate) listing: bool,
    /// The consent terms finX asked for, for a follow-up consent.
    pub(crate) request: Terms,
    /// OAuth: where the code is exchanged, the PKCE verifier and the redirect URI sent.
    #[serde(default)]
    pub(crate) oauth: Option<OAuth>,
    /// OAuth: the bank's token for this consent (the handle is sealed at rest).
    #[serde(default)]
    pub(crate) access_token: Option<String>,
    /// Whether the password goes with the start of the authorisation (else the PSU's id
    /// alone, the password only if the bank then asks).
    #[serde(default = "yes")]
    pub(crate) password_at_start: bool,
}

fn yes() -> bool {
    true
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("bank", &self.bank)
            .field("stage", &self.stage)
            .field("listing", &self.listing)
            .field("oauth", &self.oauth.is_some())
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "[redacted]"),
            )
            .finish_non_exhaustive()
    }
}

/// A pending OAuth authorisation. Not `Debug`: it holds the PKCE verifier.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct OAuth {
    pub(crate) token_endpoint: String,
    pub(crate) verifier: String,
    pub(crate) redirect_uri: String,
}

impl Session {
    /// The headers of a data call: `Consent-ID`, the bearer token after OAuth, and the end
    /// user's address and browser while they are present.
    pub(crate) fn data_headers(&self, psu: &Presence) -> Vec<(&'static str, String)> {
        let mut h = vec![("Consent-ID", self.consent.clone())];
        h.extend(self.bearer());
        if let Presence::Present(p) = psu {
            h.extend(crate::psu_headers(p));
        }
        h
    }

    /// `Authorization: Bearer …` when the consent was authorised through OAuth.
    pub(crate) fn bearer(&self) -> Vec<(&'static str, String)> {
        self.access_token
            .iter()
            .map(|t| ("Authorization", format!("Bearer {t}")))
            .collect()
    }
}

impl Session {
    /// The handle.
    pub(crate) fn seal(&self) -> BankSession {
        let json = serde_json::to_vec(self).unwrap_or_default();
        BankSession::new(format!("xs2a.{}", URL_SAFE_NO_PAD.encode(json)))
    }

    /// The session of a handle this connector made; `None` for anything else.
    pub(crate) fn open(handle: &BankSession) -> Option<Self> {
        let raw = handle.expose();
        if raw.len() > MAX_HANDLE {
            return None;
        }
        let b64 = raw.strip_prefix("xs2a.")?;
        let json = URL_SAFE_NO_PAD.decode(b64).ok()?;
        serde_json::from_slice(&json).ok()
    }
}
