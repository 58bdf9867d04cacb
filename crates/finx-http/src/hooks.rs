//! The webhook API: a customer manages its own endpoints (client Basic), as the operator
//! does with `finx-server clients webhook`.

use std::net::SocketAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use finx_domain::webhook::{Attempt, Endpoint};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::api::basic_client;
use crate::error::ApiError;
use crate::parse;

/// `POST /webhooks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookBody {
    /// Where events are POSTed: `https` (or `http` to loopback in sandbox mode); never a
    /// private address in production.
    #[schema(pattern = r"^https?://")]
    pub url: String,
}

/// A webhook endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookDto {
    /// Its id.
    pub endpoint_id: String,
    /// Where events go.
    pub url: String,
    /// `enabled`, or `disabled` after a day of failed deliveries (enable it again with
    /// `POST /webhooks/{endpoint_id}/enable`).
    #[schema(value_type = String, example = "enabled")]
    pub status: &'static str,
    /// Since when it is disabled (RFC 3339).
    pub disabled_at: Option<String>,
    /// The last delivery it accepted (RFC 3339).
    pub last_success_at: Option<String>,
    /// Until when the secret before the last rotation still signs too (RFC 3339).
    pub previous_secret_until: Option<String>,
    /// Registered (RFC 3339).
    pub created_at: String,
}

/// An endpoint with its signing secret: answered once, when it is made or rotated.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookSecretDto {
    /// The endpoint.
    #[serde(flatten)]
    pub endpoint: WebhookDto,
    /// The signing secret (`whsec_…`): verify `webhook-signature` with it. Shown this once.
    pub secret: String,
}

/// `GET /webhooks`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    /// The client's endpoints, oldest first.
    pub webhooks: Vec<WebhookDto>,
}

/// One delivery attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptDto {
    /// The event (`webhook-id`).
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// Which attempt, from 1.
    pub attempt: u32,
    /// When (RFC 3339).
    pub at: String,
    /// The HTTP status the endpoint answered, if it answered.
    pub status: Option<u16>,
    /// What went wrong, if it did.
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: u32,
}

/// `GET /webhooks/{endpoint_id}/attempts`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptList {
    /// Newest first.
    pub attempts: Vec<AttemptDto>,
}

fn rfc3339(t: finx_domain::Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl WebhookDto {
    fn of(e: &Endpoint) -> Self {
        Self {
            endpoint_id: e.id.to_string(),
            url: e.url.as_str().to_owned(),
            status: if e.disabled_at.is_some() {
                crate::openapi::ENDPOINT_STATES[1]
            } else {
                crate::openapi::ENDPOINT_STATES[0]
            },
            disabled_at: e.disabled_at.map(rfc3339),
            last_success_at: e.last_success_at.map(rfc3339),
            previous_secret_until: e.previous.as_ref().map(|(_, until)| rfc3339(*until)),
            created_at: rfc3339(e.created_at),
        }
    }
}

impl WebhookSecretDto {
    fn of(e: &Endpoint) -> Self {
        Self {
            endpoint: WebhookDto::of(e),
            secret: e.secret.expose(),
        }
    }
}

impl AttemptDto {
    fn of(a: &Attempt) -> Self {
        Self {
            event_id: a.event_id.to_string(),
            event_type: a.event_type.clone(),
            attempt: a.attempt,
            at: rfc3339(a.at),
            status: a.status,
            error: a.error.clone(),
            duration_ms: a.millis,
        }
    }
}

fn endpoint_id(p: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    p.map(|Path(id)| id)
        .map_err(|_| ApiError::invalid("endpoint_id", "is not a valid path segment"))
}

async fn client_id(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<String, ApiError> {
    Ok(basic_client(state, headers, peer)
        .await?
        .id
        .as_str()
        .to_owned())
}

/// Register a webhook endpoint. The answer holds its signing secret, shown this once.
#[utoipa::path(
    post, path = "/webhooks", tag = "webhooks",
    request_body = WebhookBody,
    security(("client_basic" = [])),
    responses(
        (status = 201, description = "Registered, with its secret", body = WebhookSecretDto),
        (status = 400, description = "A URL webhooks may not go to", body = crate::wire::ErrorBody),
        (status = 401, description = "Invalid client authorization", body = crate::wire::ErrorBody),
        (status = 413, description = "Body too large", body = crate::wire::ErrorBody),
        (status = 415, description = "Not JSON", body = crate::wire::ErrorBody),
    )
)]
pub(crate) async fn add(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<WebhookSecretDto>), ApiError> {
    let client = client_id(&state, peer, &headers).await?;
    let b: WebhookBody = parse::json_body(&headers, body)?;
    let e = state.finx.add_webhook(&client, &b.url).await?;
    Ok((StatusCode::CREATED, Json(WebhookSecretDto::of(&e))))
}

/// The client's webhook endpoints (without secrets).
#[utoipa::path(
    get, path = "/webhooks", tag = "webhooks",
    security(("client_basic" = [])),
    responses(
        (status = 200, description = "Endpoints", body = WebhookList),
        (status = 401, description = "Invalid client authorization", body = crate::wire::ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<WebhookList>, ApiError> {
    let client = client_id(&state, peer, &headers).await?;
    let all = state.finx.list_webhooks(&client).await?;
    Ok(Json(WebhookList {
        webhooks: all.iter().map(WebhookDto::of).collect(),
    }))
}

/// Remove an endpoint with its pending deliveries and log.
#[utoipa::path(
    delete, path = "/webhooks/{endpoint_id}", tag = "webhooks",
    params(("endpoint_id" = String, Path, description = "The endpoint")),
    security(("client_basic" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Invalid client authorization", body = crate::wire::ErrorBody),
        (status = 404, description = "No such endpoint of this client", body = crate::wire::ErrorBody),
    )
)]
pub(crate) async fn remove(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let client = client_id(&state, peer, &headers).await?;
    let id = endpoint_id(id)?;
    state.finx.remove_webhook(&client, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Give an endpoint a new secret. The old one keeps signing beside it (a second `v1,`
/// signature) for the overlap, so receivers switch without losing a delivery.
#[utoipa::path(
    post, path = "/webhooks/{endpoint_id}/rotate", tag = "webhooks",
    params(("endpoint_id" = String, Path, description = "The endpoint")),
    security(("client_basic" = [])),
    responses(
        (status = 200, description = "The new secret, shown this once", body = WebhookSecretDto),
        (status = 401, description = "Invalid client authorization", body = crate::wire::ErrorBody),
        (status = 404, description = "No such endpoint of this client", body = crate::wire::ErrorBody),
    )
)]
pub(crate) async fn rotate(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<WebhookSecretDto>, ApiError> {
    let client = client_id(&state, peer, &headers).await?;
    let id = endpoint_id(id)?;
    let e = state.finx.rotate_webhook_secret(&client, &id).await?;
    Ok(Json(WebhookSecretDto::of(&e)))
}

/// Enable an endpoint that was disabled for failing.
#[utoipa::path(
    post, path = "/webhooks/{endpoint_id}/enable", tag = "webhooks",
    params(("endpoint_id" = String, Path, description = "The endpoint")),
    security(("client_basic" = [])),
    responses(
        (status = 200, description = "Enabled", body = WebhookDto),
        (status = 401, description = "Invalid client authorization", body = crate::wire::ErrorBody),
        (status = 404, description = "No such endpoint of this client", body = crate::wire::ErrorBody),
    )
)]
pub(crate) async fn enable(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<WebhookDto>, ApiError> {
    let client = client_id(&state, peer, &headers).await?;
    let id = endpoint_id(id)?;
    let e = state.finx.enable_webhook(&client, &id).await?;
    Ok(Json(WebhookDto::of(&e)))
}

/// An endpoint's latest delivery attempts (kept 30 days).
#[utoipa::path(
    get, path = "/webhooks/{endpoint_id}/attempts", tag = "webhooks",
    params(
        ("endpoint_id" = String, Path, description = "The endpoint"),
        ("count" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "At most this many, default 100"),
    ),
    security(("client_basic" = [])),
    responses(
        (status = 200, description = "Attempts, newest first", body = AttemptList),
        (status = 400, description = "Invalid count", body = crate::wire::ErrorBody),
        (status = 401, description = "Invalid client authorization", body = crate::wire::ErrorBody),
        (status = 404, description = "No such endpoint of this client", body = crate::wire::ErrorBody),
    )
)]
pub(crate) async fn attempts(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Json<AttemptList>, ApiError> {
    let client = client_id(&state, peer, &headers).await?;
    let id = endpoint_id(id)?;
    let p = parse::pairs(
        raw.as_deref().unwrap_or_default(),
        Some(&["count"]),
        "query",
    )?;
    let count = match p.get("count") {
        None => 100,
        Some(c) => c
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=finx_core::WEBHOOK_LOG_MAX).contains(n))
            .ok_or_else(|| ApiError::invalid("count", "must be a whole number from 1 to 1000"))?,
    };
    let log = state.finx.webhook_log(&client, &id, count).await?;
    Ok(Json(AttemptList {
        attempts: log.iter().map(AttemptDto::of).collect(),
    }))
}
