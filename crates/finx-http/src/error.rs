//! The one place where errors become HTTP: the finX shape
//! `{"error": {"code", "group", "description", "data"}}` everywhere, and RFC 6749 §5.2
//! (`{"error", "error_description"}`) on `/auth/*`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use finx_core::CoreError;
use finx_domain::flow::FlowError;
use finx_ports::{BankError, StoreError};
use serde_json::{Value, json};

/// finX error codes. The ranges are finX's; codes marked "ours" are this server's choice.
pub mod code {
    /// Request does not match the input schema.
    pub const INVALID_REQUEST: u32 = 1000;
    /// Resource not found.
    pub const NOT_FOUND: u32 = 1002;
    /// Missing or invalid access token.
    pub const UNAUTHORIZED: u32 = 1003;
    /// Invalid client authorization.
    pub const INVALID_CLIENT: u32 = 1004;
    /// Method not allowed (ours).
    pub const METHOD_NOT_ALLOWED: u32 = 1005;
    /// Unsupported media type (ours).
    pub const UNSUPPORTED_MEDIA_TYPE: u32 = 1006;
    /// Forbidden (scope).
    pub const FORBIDDEN: u32 = 1007;
    /// Resource busy.
    pub const BUSY: u32 = 1008;
    /// Payload too large (ours).
    pub const PAYLOAD_TOO_LARGE: u32 = 1009;
    /// The flow does not allow this step now (ours).
    pub const FLOW_STEP: u32 = 1010;
    /// The widget link expired (ours).
    pub const LINK_EXPIRED: u32 = 1011;
    /// Too many syncs: the access's daily allowance is spent, or the bank asked to wait.
    pub const TOO_MANY_SYNCS: u32 = 1020;
    /// The feed changed during pagination: restart the pass (ours).
    pub const FEED_RESTART: u32 = 1023;
    /// The access's consent expired or was revoked; renew it (ours).
    pub const CONSENT_OVER: u32 = 1022;
    /// The bank says the consent expired (ours, user range).
    pub const CONSENT_EXPIRED: u32 = 10020;
    /// The bank says the consent was revoked or is unknown (ours, user range).
    pub const CONSENT_REVOKED: u32 = 10021;
    /// The bank asked finX to wait (ours, bank range).
    pub const BANK_RATE_LIMITED: u32 = 20001;
    /// Too many requests (ours).
    pub const TOO_MANY_REQUESTS: u32 = 1021;
    /// Login credentials invalid.
    pub const CREDENTIALS_INVALID: u32 = 10000;
    /// TAN invalid.
    pub const TAN_INVALID: u32 = 10004;
    /// The flow failed at the bank (ours, in the user range).
    pub const FLOW_FAILED: u32 = 10010;
    /// The bank answered with an error.
    pub const BANK_ERROR: u32 = 20000;
    /// Internal error.
    pub const INTERNAL: u32 = 30000;
    /// Service unavailable (storage).
    pub const UNAVAILABLE: u32 = 30001;
    /// The bank cannot be reached.
    pub const BANK_UNREACHABLE: u32 = 40000;
}

/// The finX code of a sync failure, as `last_error` and a failed sync show it.
#[must_use]
pub fn sync_failure_code(f: finx_domain::access::SyncFailure) -> u32 {
    f.code()
}

/// An error response.
#[derive(Debug)]
pub enum ApiError {
    /// The finX shape.
    Finx {
        /// HTTP status.
        status: StatusCode,
        /// finX code.
        code: u32,
        /// Human-readable description.
        description: String,
        /// Details: `{"field": ["reason"]}` for invalid input, else `{}`.
        data: Value,
        /// `WWW-Authenticate` for 401 (and 403 on scope).
        challenge: Option<String>,
        /// `Retry-After` seconds.
        retry_after: Option<u64>,
    },
    /// The OAuth shape (RFC 6749 §5.2, RFC 7009).
    OAuth {
        /// HTTP status.
        status: StatusCode,
        /// The RFC's error code.
        error: &'static str,
        /// Human-readable description.
        description: String,
    },
}

pub(crate) fn group(code: u32) -> &'static str {
    match code {
        1000..=1999 => "client",
        10000..=19999 => "user",
        20000..=29999 => "bank",
        40000..=49999 => "connectivity",
        _ => "general",
    }
}

impl ApiError {
    /// A finX error with no details.
    #[must_use]
    pub fn finx(status: StatusCode, code: u32, description: impl Into<String>) -> Self {
        Self::Finx {
            status,
            code,
            description: description.into(),
            data: json!({}),
            challenge: None,
            retry_after: None,
        }
    }

    /// Invalid input: 400, code 1000, `data: {field: [reason]}`.
    #[must_use]
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self::Finx {
            status: StatusCode::BAD_REQUEST,
            code: code::INVALID_REQUEST,
            description: format!("Request doesn't match input schema: {field}: {reason}"),
            data: json!({ field: [reason] }),
            challenge: None,
            retry_after: None,
        }
    }

    /// 429 with `Retry-After` (whole seconds, at least 1).
    #[must_use]
    pub fn too_many(wait: std::time::Duration) -> Self {
        Self::Finx {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: code::TOO_MANY_REQUESTS,
            description: "Too many requests; slow down.".into(),
            data: json!({}),
            challenge: None,
            retry_after: Some(wait.as_secs().max(1) + u64::from(wait.subsec_nanos() > 0)),
        }
    }

    /// 401 for a missing or bad bearer token.
    #[must_use]
    pub fn bearer(description: &str) -> Self {
        Self::Finx {
            status: StatusCode::UNAUTHORIZED,
            code: code::UNAUTHORIZED,
            description: description.to_owned(),
            data: json!({}),
            challenge: Some(format!(
                "Bearer realm=\"finX\", error=\"invalid_token\", error_description=\"{description}\""
            )),
            retry_after: None,
        }
    }

    /// 401 for failed client authentication.
    #[must_use]
    pub fn client_auth() -> Self {
        Self::Finx {
            status: StatusCode::UNAUTHORIZED,
            code: code::INVALID_CLIENT,
            description: "Invalid client authorization.".into(),
            data: json!({}),
            challenge: Some("Basic realm=\"finX\"".into()),
            retry_after: None,
        }
    }

    /// An OAuth error.
    #[must_use]
    pub fn oauth(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self::OAuth {
            status,
            error,
            description: description.into(),
        }
    }

    /// The status code.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Finx { status, .. } | Self::OAuth { status, .. } => *status,
        }
    }

    /// The same error in the OAuth shape, for `/auth/*`.
    #[must_use]
    pub fn into_oauth(self) -> Self {
        match self {
            Self::OAuth { .. } => self,
            Self::Finx {
                status,
                code,
                description,
                ..
            } => {
                // RFC 6749 §5.2: 400, or 401 for invalid_client; server trouble stays 5xx.
                let (status, error) = match (status.as_u16(), code) {
                    (401, _) => (StatusCode::UNAUTHORIZED, "invalid_client"),
                    (500, _) => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
                    (503, _) | (_, code::BUSY) => {
                        (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
                    }
                    _ => (StatusCode::BAD_REQUEST, "invalid_request"),
                };
                Self::OAuth {
                    status,
                    error,
                    description,
                }
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Finx {
                status,
                code,
                description,
                data,
                challenge,
                retry_after,
            } => {
                let body = json!({ "error": { "code": code, "group": group(code), "description": description, "data": data } });
                let mut res = (status, axum::Json(body)).into_response();
                if let Some(c) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
                    res.headers_mut().insert(header::WWW_AUTHENTICATE, c);
                }
                if let Some(s) = retry_after {
                    res.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(s));
                }
                res
            }
            Self::OAuth {
                status,
                error,
                description,
            } => {
                let body = json!({ "error": error, "error_description": description });
                let mut res = (status, axum::Json(body)).into_response();
                let h = res.headers_mut();
                h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
                if status == StatusCode::UNAUTHORIZED {
                    h.insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Basic realm=\"finX\""),
                    );
                }
                res
            }
        }
    }
}

/// Logs an unexpected failure with its whole chain; callers get a generic message.
fn log_unexpected(what: &str, e: &dyn std::error::Error) {
    let mut chain = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    tracing::error!(error = %chain, "{what}");
}

fn store_error(e: &StoreError) -> ApiError {
    match e {
        StoreError::Conflict(_) => ApiError::finx(
            StatusCode::CONFLICT,
            code::BUSY,
            "The resource is busy; try again.",
        ),
        StoreError::Unavailable(_) => {
            log_unexpected("storage unavailable", e);
            ApiError::Finx {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: code::UNAVAILABLE,
                description: "The service is temporarily unavailable; try again.".into(),
                data: json!({}),
                challenge: None,
                retry_after: Some(5),
            }
        }
        StoreError::Unexpected(_) => {
            log_unexpected("storage failure", e);
            ApiError::finx(
                StatusCode::INTERNAL_SERVER_ERROR,
                code::INTERNAL,
                "Internal error.",
            )
        }
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::Invalid { field, reason } => Self::invalid(field, reason),
            CoreError::InvalidUpload(e) => Self::invalid(&e.field, e.reason),
            CoreError::InvalidScope(s) => Self::invalid("scope", s.to_string()),
            CoreError::InvalidClient => Self::client_auth(),
            CoreError::UnauthorizedClient => Self::oauth(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                "The token was not issued to this client.",
            ),
            CoreError::InvalidGrant(why) => {
                Self::oauth(StatusCode::BAD_REQUEST, "invalid_grant", why)
            }
            CoreError::InvalidToken => {
                Self::bearer("The access token is invalid, expired or revoked.")
            }
            CoreError::InsufficientScope(item) => Self::Finx {
                status: StatusCode::FORBIDDEN,
                code: code::FORBIDDEN,
                description: format!("The access token lacks the scope {}.", item.as_str()),
                data: json!({ "scope": [item.as_str()] }),
                challenge: Some(format!(
                    "Bearer realm=\"finX\", error=\"insufficient_scope\", scope=\"{}\"",
                    item.as_str()
                )),
                retry_after: None,
            },
            CoreError::NotFound(what) => Self::finx(
                StatusCode::NOT_FOUND,
                code::NOT_FOUND,
                format!("No such {what}."),
            ),
            CoreError::Flow(FlowError::Expired) => Self::finx(
                StatusCode::GONE,
                code::LINK_EXPIRED,
                "The link has expired; ask for a new one.",
            ),
            CoreError::Flow(f) => Self::finx(StatusCode::CONFLICT, code::FLOW_STEP, f.to_string()),
            CoreError::CredentialsInvalid { attempts_left } => Self::Finx {
                status: StatusCode::BAD_REQUEST,
                code: code::CREDENTIALS_INVALID,
                description: "Login credentials invalid.".into(),
                data: json!({ "attempts_left": attempts_left }),
                challenge: None,
                retry_after: None,
            },
            CoreError::TanInvalid { attempts_left } => Self::Finx {
                status: StatusCode::BAD_REQUEST,
                code: code::TAN_INVALID,
                description: "TAN invalid.".into(),
                data: json!({ "attempts_left": attempts_left }),
                challenge: None,
                retry_after: None,
            },
            CoreError::FlowFailed(reason) => Self::Finx {
                status: StatusCode::BAD_REQUEST,
                code: code::FLOW_FAILED,
                description: format!("The flow failed: {}.", reason.code()),
                data: json!({ "reason": reason.code() }),
                challenge: None,
                retry_after: None,
            },
            CoreError::TooManySyncs {
                retry_at,
                retry_after,
            } => Self::Finx {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: code::TOO_MANY_SYNCS,
                description: "Maximum number of account synchronizations exceeded.".into(),
                data: json!({ "retry_at": retry_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true) }),
                challenge: None,
                retry_after: Some(retry_after),
            },
            CoreError::FeedRestart { cursor } => Self::Finx {
                status: StatusCode::CONFLICT,
                code: code::FEED_RESTART,
                description: "Transactions changed during pagination: discard the pages of this pass and restart from data.restart_cursor.".into(),
                data: json!({ "restart_cursor": cursor }),
                challenge: None,
                retry_after: None,
            },
            CoreError::ConsentOver(status) => Self::finx(
                StatusCode::CONFLICT,
                code::CONSENT_OVER,
                format!(
                    "The access's consent is {}; renew it with POST /ongoing/access and its access_id.",
                    status.as_str()
                ),
            ),
            CoreError::Busy => Self::finx(
                StatusCode::CONFLICT,
                code::BUSY,
                "The resource is busy; try again.",
            ),
            CoreError::Bank(BankError::Unavailable(_)) => Self::finx(
                StatusCode::SERVICE_UNAVAILABLE,
                code::BANK_UNREACHABLE,
                "The bank cannot be reached.",
            ),
            CoreError::Bank(b) => {
                log_unexpected("bank connector failure", &b);
                Self::finx(
                    StatusCode::BAD_GATEWAY,
                    code::BANK_ERROR,
                    "The bank answered with an error.",
                )
            }
            CoreError::Store(s) => store_error(&s),
        }
    }
}
