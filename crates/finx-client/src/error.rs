//! One error type for everything the SDK does.

use thiserror::Error;

/// What went wrong. Server errors keep the server's code, group, description and the
/// request id to quote to finX support.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The API answered with a finX error.
    #[error("finX error {code} ({group}): {description}{}", request_suffix(.request_id))]
    Api {
        /// HTTP status.
        status: u16,
        /// finX code, e.g. 1000.
        code: u32,
        /// `client`, `user`, `bank`, `general` or `connectivity`.
        group: String,
        /// What the server said.
        description: String,
        /// Details, e.g. `{"field": ["reason"]}`.
        data: serde_json::Value,
        /// The `X-Request-ID` of the response.
        request_id: Option<String>,
    },
    /// The token endpoint answered with an RFC 6749 error other than `invalid_grant`.
    #[error("OAuth error {error}: {description}{}", request_suffix(.request_id))]
    OAuth {
        /// HTTP status.
        status: u16,
        /// The RFC's code, e.g. `invalid_client`.
        error: String,
        /// What the server said.
        description: String,
        /// The `X-Request-ID` of the response.
        request_id: Option<String>,
    },
    /// The code or refresh token is invalid, expired or was reused (`invalid_grant`). For a
    /// refresh token this means the end user must connect again: the grant is gone.
    #[error("the grant is no longer valid: {description}{}", request_suffix(.request_id))]
    InvalidGrant {
        /// What the server said (e.g. "the refresh token was already used; every token of
        /// its grant is revoked").
        description: String,
        /// The `X-Request-ID` of the response.
        request_id: Option<String>,
    },
    /// The callback URL's `state` is not the one the app sent.
    #[error("the callback's state does not match the one sent")]
    StateMismatch,
    /// The callback URL is not one finX produces.
    #[error("not a finX callback: {0}")]
    Callback(String),
    /// This connection has no tokens stored.
    #[error("no tokens stored for this connection")]
    NotConnected,
    /// The network or the HTTP exchange failed.
    #[error("HTTP failure")]
    Http(#[from] reqwest::Error),
    /// A refresh did not finish in time (whether the server rotated is unknown, so the
    /// refresh lease is kept until it expires), or an upload waited for is still pending.
    #[error("the operation did not finish in time")]
    Timeout,
    /// The answer could not be read.
    #[error("unexpected answer: {0}")]
    Decode(String),
    /// The token store failed.
    #[error("token store failure")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The settings are not usable (e.g. a base URL that is not a URL).
    #[error("invalid configuration: {0}")]
    Config(String),
}

fn request_suffix(id: &Option<String>) -> String {
    id.as_ref()
        .map(|i| format!(" (request {i})"))
        .unwrap_or_default()
}

impl Error {
    /// The finX request id, when the server sent one.
    #[must_use]
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Self::Api { request_id, .. }
            | Self::OAuth { request_id, .. }
            | Self::InvalidGrant { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// Whether the request surely never reached the server (so nothing changed there).
    #[must_use]
    pub fn never_reached_the_server(&self) -> bool {
        matches!(self, Self::Http(e) if e.is_connect() || e.is_builder())
    }

    /// Whether the HTTP status was 401 (the access token is not accepted).
    #[must_use]
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, Self::Api { status: 401, .. })
    }
}
