//! The customer API: the guide's three calls and the rest of the finX reference.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use finx_core::{Authorization, OnetimeAccessRequest};
use finx_domain::query::{RawTransactionQuery, TransactionQuery};
use finx_ports::Client;

use crate::error::ApiError;
use crate::limit::Throttled;
use crate::pages::{self, PageKey};
use crate::parse::{self, Kind};
use crate::wire::{
    AccountDto, AccountList, BalanceDto, Health, OnetimeAccessBody, OnetimeAccessResponse,
    RevokeBody, TokenBody, TokenResponse, TransactionDto, TransactionList,
};
use crate::{AppState, link};

/// A refusal by the rate limit `limit`: counted, and answered with 429.
fn throttled(state: &AppState, limit: &str, Throttled(wait): Throttled) -> ApiError {
    state.finx.telemetry().rate_limited(limit);
    ApiError::too_many(wait)
}

/// Checks a client's credentials under the failure budget of its IP and id: once spent,
/// further attempts are refused before the secret is looked at.
async fn authenticate(
    state: &AppState,
    ip: IpAddr,
    id: &str,
    secret: &str,
) -> Result<Client, ApiError> {
    // Both budgets are looked at in one step before the secret is checked; a failure is
    // recorded against both in one step (into debt if parallel guesses overdrew them).
    let attempt = state
        .limiter
        .begin_auth(ip, id)
        .map_err(|t| throttled(state, "client_auth", t))?;
    match state.finx.authenticate_client(id, secret).await {
        Err(finx_core::CoreError::InvalidClient) => {
            attempt.failed();
            Err(ApiError::client_auth())
        }
        Ok(client) => {
            attempt.succeeded();
            Ok(client)
        }
        Err(e) => Err(e.into()),
    }
}

/// Authenticates the client from HTTP Basic, counting failures against the client's
/// address (`X-Forwarded-For` or `Forwarded` only from trusted proxies).
pub(crate) async fn basic_client(
    state: &AppState,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<Client, ApiError> {
    let ip = crate::addr::client_ip(peer, headers, &state.config.trusted_proxies);
    let (id, secret) = parse::basic(headers)?.ok_or_else(ApiError::client_auth)?;
    authenticate(state, ip, &id, &secret).await
}

/// Authenticates the client from HTTP Basic or, failing that, from the body; both at once
/// is refused (RFC 6749 §2.3).
async fn token_client(
    state: &AppState,
    headers: &HeaderMap,
    ip: IpAddr,
    id: Option<&str>,
    secret: Option<&str>,
) -> Result<Client, ApiError> {
    let creds = match (
        parse::basic(headers).map_err(ApiError::into_oauth)?,
        id,
        secret,
    ) {
        // A client_id beside Basic is allowed when it names the same client (RFC 6749 §3.2.1).
        (Some((basic_id, _)), Some(i), None) if basic_id != i => {
            return Err(ApiError::oauth(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "client_id differs from the Basic credentials.",
            ));
        }
        (Some(_), _, Some(_)) => {
            return Err(ApiError::oauth(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Use one client authentication method, not two.",
            ));
        }
        (Some(c), _, None) => c,
        (None, Some(i), Some(s)) => (i.to_owned(), s.to_owned()),
        _ => {
            return Err(ApiError::oauth(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Client authentication is required.",
            ));
        }
    };
    authenticate(state, ip, &creds.0, &creds.1)
        .await
        .map_err(|e| match e {
            e @ ApiError::Finx {
                status: StatusCode::TOO_MANY_REQUESTS,
                ..
            } => e,
            other => other.into_oauth(),
        })
}

pub(crate) async fn authorized(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Authorization, ApiError> {
    let token = parse::bearer(headers)?;
    Ok(state.finx.authorize(token).await?)
}

pub(crate) fn path_id(
    p: Result<Path<String>, PathRejection>,
    what: &str,
) -> Result<String, ApiError> {
    p.map(|Path(id)| id)
        .map_err(|_| ApiError::invalid(what, "is not a valid path segment"))
}

/// Create a widget link for one-time account access (step 1 of the guide).
#[utoipa::path(
    post, path = "/onetime/access", tag = "flow",
    request_body = OnetimeAccessBody,
    security(("client_basic" = [])),
    responses(
        (status = 200, description = "The widget link and the flow id", body = OnetimeAccessResponse),
        (status = 400, description = "Invalid request", body = crate::wire::ErrorBody),
        (status = 401, description = "Invalid client authorization", body = crate::wire::ErrorBody),
        (status = 413, description = "Body too large", body = crate::wire::ErrorBody),
        (status = 415, description = "Not JSON", body = crate::wire::ErrorBody),
    )
)]
pub(crate) async fn onetime_access(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<OnetimeAccessResponse>, ApiError> {
    let client = basic_client(&state, &headers, peer).await?;
    let b: OnetimeAccessBody = parse::json_body(&headers, body)?;
    let flow = state
        .finx
        .create_onetime_access(&client, flow_request(b))
        .await?;
    widget_link(&state, &flow)
}

/// The core's request from the body both `/onetime/access` and `/ongoing/access` take.
fn flow_request(b: OnetimeAccessBody) -> OnetimeAccessRequest {
    OnetimeAccessRequest {
        redirect_uri: b.redirect_uri,
        state: b.state,
        language: b.language,
        accounts: b
            .accounts
            .unwrap_or_default()
            .into_iter()
            .map(|a| a.id)
            .collect(),
        account_types: b.account_types.unwrap_or_default(),
        allow_multi_selection: b.allow_multi_selection,
        sync_period: b.sync_period,
        provider_id: b.provider_id,
        scope: b.scope,
    }
}

/// The widget link of a new flow.
pub(crate) fn widget_link(
    state: &AppState,
    flow: &finx_domain::flow::Flow,
) -> Result<Json<OnetimeAccessResponse>, ApiError> {
    let token = link::sign(
        &state.config.link_key,
        flow.id,
        flow.created_at,
        flow.expires_at,
    );
    let mut location = state
        .config
        .public_url
        .join("widget")
        .map_err(|_| ApiError::invalid("public_url", "cannot be joined"))?;
    location.query_pairs_mut().append_pair("token", &token);
    Ok(Json(OnetimeAccessResponse {
        location: location.to_string(),
        id: flow.id.to_string(),
    }))
}

/// Create a widget link for ongoing access: a bank connection finX keeps synced, or the
/// renewal of one (`access_id`).
#[utoipa::path(
    post, path = "/ongoing/access", tag = "flow",
    request_body = crate::wire::OngoingAccessBody,
    security(("client_basic" = [])),
    responses(
        (status = 200, description = "The widget link and the flow id", body = OnetimeAccessResponse),
        (status = 400, description = "Invalid request", body = crate::wire::ErrorBody),
        (status = 401, description = "Invalid client authorization", body = crate::wire::ErrorBody),
        (status = 404, description = "No such access of this client and user", body = crate::wire::ErrorBody),
        (status = 413, description = "Body too large", body = crate::wire::ErrorBody),
        (status = 415, description = "Not JSON", body = crate::wire::ErrorBody),
    )
)]
pub(crate) async fn ongoing_access(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<OnetimeAccessResponse>, ApiError> {
    let client = basic_client(&state, &headers, peer).await?;
    let b: crate::wire::OngoingAccessBody = parse::json_body(&headers, body)?;
    let (flow, user_id, access_id) = b.into_parts();
    let req = finx_core::OngoingAccessRequest {
        flow: flow_request(flow),
        user_id,
        access_id,
    };
    let flow = state.finx.create_ongoing_access(&client, req).await?;
    widget_link(&state, &flow)
}

/// The end user's ongoing accesses at this customer.
#[utoipa::path(
    get, path = "/rest/accesses", tag = "accesses",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Accesses (none for a one-time grant)", body = crate::wire::AccessList),
        (status = 401, description = "Missing or invalid token", body = crate::wire::ErrorBody),
    )
)]
pub(crate) async fn accesses(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<crate::wire::AccessList>, ApiError> {
    let auth = authorized(&state, &headers).await?;
    let list = state.finx.list_accesses(&auth).await?;
    Ok(Json(crate::wire::AccessList {
        accesses: list.iter().map(crate::wire::AccessDto::of).collect(),
    }))
}

/// One access.
#[utoipa::path(
    get, path = "/rest/accesses/{access_id}", tag = "accesses",
    params(("access_id" = String, Path, description = "`X…`")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The access", body = crate::wire::AccessDto),
        (status = 401, description = "Missing or invalid token", body = crate::wire::ErrorBody),
        (status = 404, description = "No such access for this token", body = crate::wire::ErrorBody),
    )
)]
pub(crate) async fn access(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<crate::wire::AccessDto>, ApiError> {
    let auth = authorized(&state, &headers).await?;
    let id = path_id(id, "access_id")?;
    let view = state.finx.get_access(&auth, &id).await?;
    Ok(Json(crate::wire::AccessDto::of(&view)))
}

/// Delete an access: its consent is ended at the bank, its data deleted, and every grant
/// holding it revoked.
#[utoipa::path(
    delete, path = "/rest/accesses/{access_id}", tag = "accesses",
    params(("access_id" = String, Path, description = "`X…`")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or invalid token", body = crate::wire::ErrorBody),
        (status = 404, description = "No such access for this token", body = crate::wire::ErrorBody),
    )
)]
pub(crate) async fn delete_access(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let auth = authorized(&state, &headers).await?;
    let id = path_id(id, "access_id")?;
    state.finx.delete_access(&auth, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ask for a sync now. It counts toward the access's daily allowance; when that is spent,
/// the answer is 429 with finX error 1020 and `Retry-After`.
#[utoipa::path(
    post, path = "/rest/accesses/{access_id}/syncs", tag = "accesses",
    params(("access_id" = String, Path, description = "`X…`")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "The sync, queued (or the one already due or running)", body = crate::wire::SyncDto),
        (status = 401, description = "Missing or invalid token", body = crate::wire::ErrorBody),
        (status = 404, description = "No such access for this token", body = crate::wire::ErrorBody),
        (status = 409, description = "The consent expired or was revoked (1022): renew it", body = crate::wire::ErrorBody),
        (status = 429, description = "Too many syncs (1020); see Retry-After", body = crate::wire::ErrorBody),
    )
)]
pub(crate) async fn start_sync(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let auth = authorized(&state, &headers).await?;
    let id = path_id(id, "access_id")?;
    let job = state.finx.request_sync(&auth, &id).await?;
    let mut res = (StatusCode::ACCEPTED, Json(crate::wire::SyncDto::of(&job))).into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(&format!(
        "/rest/accesses/{}/syncs/{}",
        job.access_id, job.id
    )) {
        res.headers_mut().insert(axum::http::header::LOCATION, v);
    }
    Ok(res)
}

/// One sync.
#[utoipa::path(
    get, path = "/rest/accesses/{access_id}/syncs/{sync_id}", tag = "accesses",
    params(
        ("access_id" = String, Path, description = "`X…`"),
        ("sync_id" = String, Path, description = "The sync's id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The sync", body = crate::wire::SyncDto),
        (status = 401, description = "Missing or invalid token", body = crate::wire::ErrorBody),
        (status = 404, description = "No such sync for this token", body = crate::wire::ErrorBody),
    )
)]
pub(crate) async fn sync(
    State(state): State<AppState>,
    headers: HeaderMap,
    ids: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<crate::wire::SyncDto>, ApiError> {
    let auth = authorized(&state, &headers).await?;
    let Path((access_id, sync_id)) =
        ids.map_err(|_| ApiError::invalid("sync_id", "is not a valid path segment"))?;
    let job = state.finx.get_sync(&auth, &access_id, &sync_id).await?;
    Ok(Json(crate::wire::SyncDto::of(&job)))
}

fn token_body(headers: &HeaderMap, body: &[u8]) -> Result<TokenBody, ApiError> {
    match parse::kind(headers, &[Kind::Json, Kind::Form]).map_err(ApiError::into_oauth)? {
        Kind::Json => parse::json(body).map_err(ApiError::into_oauth),
        Kind::Form => {
            let text = std::str::from_utf8(body).map_err(|_| {
                ApiError::oauth(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "The body is not valid UTF-8.",
                )
            })?;
            // RFC 6749 §3.2: unknown parameters are ignored; repeated ones are errors.
            let mut p = parse::pairs(text, None, "body").map_err(ApiError::into_oauth)?;
            Ok(TokenBody {
                grant_type: p.remove("grant_type"),
                code: p.remove("code"),
                redirect_uri: p.remove("redirect_uri"),
                refresh_token: p.remove("refresh_token"),
                scope: p.remove("scope"),
                client_id: p.remove("client_id"),
                client_secret: p.remove("client_secret"),
            })
        }
    }
}

fn required<'a>(v: Option<&'a str>, name: &str) -> Result<&'a str, ApiError> {
    v.filter(|s| !s.is_empty()).ok_or_else(|| {
        ApiError::oauth(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("{name} is required."),
        )
    })
}

fn no_store(json: Json<TokenResponse>) -> Response {
    let mut res = json.into_response();
    let h = res.headers_mut();
    h.insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    h.insert(
        axum::http::header::PRAGMA,
        axum::http::HeaderValue::from_static("no-cache"),
    );
    res
}

/// Exchange an authorization code or a refresh token for tokens (step 2 of the guide).
#[utoipa::path(
    post, path = "/auth/token", tag = "auth",
    request_body(content = TokenBody, description = "JSON, or application/x-www-form-urlencoded with the same names"),
    security(("client_basic" = [])),
    responses(
        (status = 200, description = "Tokens", body = TokenResponse),
        (status = 400, description = "RFC 6749 error", body = crate::wire::OAuthErrorBody),
        (status = 401, description = "invalid_client", body = crate::wire::OAuthErrorBody),
        (status = 429, description = "Too many requests; see Retry-After", body = crate::wire::ErrorBody),
    )
)]
pub(crate) async fn token(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let grant = std::sync::OnceLock::new();
    let reused = std::sync::atomic::AtomicBool::new(false);
    let result = token_grant(&state, peer, &headers, body, &grant, &reused).await;
    let outcome = match &result {
        Ok(_) => "issued",
        Err(_) if reused.load(std::sync::atomic::Ordering::Relaxed) => "reuse_detected",
        Err(ApiError::OAuth { error, .. }) => error,
        Err(_) => "error",
    };
    state
        .finx
        .telemetry()
        .token_grant(grant.get().copied().unwrap_or("other"), outcome);
    result
}

/// `/auth/token`'s work; says the grant type in `grant` once known, and in `reused` when a
/// replayed code or refresh token revoked its grant.
async fn token_grant(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    grant: &std::sync::OnceLock<&'static str>,
    reused: &std::sync::atomic::AtomicBool,
) -> Result<Response, ApiError> {
    let ip = crate::addr::client_ip(peer, headers, &state.config.trusted_proxies);
    state
        .limiter
        .token_ip(ip)
        .map_err(|t| throttled(state, "token_ip", t))?;
    let body = parse::body(body).map_err(ApiError::into_oauth)?;
    let b = token_body(headers, &body)?;
    let client = token_client(
        state,
        headers,
        crate::addr::client_ip(peer, headers, &state.config.trusted_proxies),
        b.client_id.as_deref(),
        b.client_secret.as_deref(),
    )
    .await?;
    state
        .limiter
        .token_client(client.id.as_str())
        .map_err(|t| throttled(state, "token_client", t))?;
    let oauth = |e: finx_core::CoreError| match e {
        e if e.is_token_reuse() => {
            reused.store(true, std::sync::atomic::Ordering::Relaxed);
            ApiError::from(e).into_oauth()
        }
        finx_core::CoreError::InvalidScope(s) => {
            ApiError::oauth(StatusCode::BAD_REQUEST, "invalid_scope", s.to_string())
        }
        other => ApiError::from(other).into_oauth(),
    };
    let t = match required(b.grant_type.as_deref(), "grant_type")? {
        "authorization_code" => {
            let _ = grant.set("authorization_code");
            let code = required(b.code.as_deref(), "code")?;
            let redirect_uri = required(b.redirect_uri.as_deref(), "redirect_uri")?;
            state
                .finx
                .exchange_code(&client, code, redirect_uri)
                .await
                .map_err(oauth)?
        }
        "refresh_token" => {
            let _ = grant.set("refresh_token");
            let refresh = required(b.refresh_token.as_deref(), "refresh_token")?;
            state
                .finx
                .refresh(&client, refresh, b.scope.as_deref())
                .await
                .map_err(oauth)?
        }
        other => {
            return Err(ApiError::oauth(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!(
                    "grant_type {:?} is not supported; use authorization_code or refresh_token.",
                    other.chars().take(64).collect::<String>()
                ),
            ));
        }
    };
    Ok(no_store(Json(TokenResponse {
        access_token: t.access_token.expose().to_owned(),
        expires_in: t.expires_in,
        scope: t.scope.to_string(),
        token_type: "Bearer",
        refresh_token: t.refresh_token.map(|r| r.expose().to_owned()),
        refresh_token_expires_in: t.refresh_expires_in,
    })))
}

/// Revoke an access or refresh token (RFC 7009): 200 even for unknown tokens.
#[utoipa::path(
    post, path = "/auth/revoke", tag = "auth",
    request_body(content = RevokeBody, description = "JSON, or application/x-www-form-urlencoded"),
    security(("client_basic" = [])),
    responses(
        (status = 200, description = "Revoked (or unknown)"),
        (status = 400, description = "RFC 6749 error", body = crate::wire::OAuthErrorBody),
        (status = 401, description = "invalid_client", body = crate::wire::OAuthErrorBody),
    )
)]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = parse::body(body).map_err(ApiError::into_oauth)?;
    let b: RevokeBody =
        match parse::kind(&headers, &[Kind::Json, Kind::Form]).map_err(ApiError::into_oauth)? {
            Kind::Json => parse::json(&body).map_err(ApiError::into_oauth)?,
            Kind::Form => {
                let text = std::str::from_utf8(&body).map_err(|_| {
                    ApiError::oauth(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "The body is not valid UTF-8.",
                    )
                })?;
                let mut p = parse::pairs(text, None, "body").map_err(ApiError::into_oauth)?;
                RevokeBody {
                    token: p.remove("token"),
                    token_type_hint: p.remove("token_type_hint"),
                    client_id: p.remove("client_id"),
                    client_secret: p.remove("client_secret"),
                }
            }
        };
    let client = token_client(
        &state,
        &headers,
        crate::addr::client_ip(peer, &headers, &state.config.trusted_proxies),
        b.client_id.as_deref(),
        b.client_secret.as_deref(),
    )
    .await?;
    let token = required(b.token.as_deref(), "token")?;
    state
        .finx
        .revoke(&client, token)
        .await
        .map_err(|e| ApiError::from(e).into_oauth())?;
    let mut res = StatusCode::OK.into_response();
    res.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(res)
}

/// The accounts the end user consented to (step 3 of the guide).
#[utoipa::path(
    get, path = "/rest/accounts", tag = "data",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Accounts", body = AccountList),
        (status = 401, description = "Missing or invalid token", body = crate::wire::ErrorBody),
        (status = 403, description = "Lacks accounts=ro", body = crate::wire::ErrorBody),
    )
)]
pub(crate) async fn accounts(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<AccountList>, ApiError> {
    let auth = authorized(&state, &headers).await?;
    let accounts = state.finx.list_accounts(&auth).await?;
    Ok(Json(AccountList {
        accounts: accounts.iter().map(AccountDto::of).collect(),
    }))
}

/// One account.
#[utoipa::path(
    get, path = "/rest/accounts/{account_id}", tag = "data",
    params(("account_id" = String, Path, description = "`A…`")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The account", body = AccountDto),
        (status = 401, description = "Missing or invalid token", body = crate::wire::ErrorBody),
        (status = 404, description = "No such account for this token", body = crate::wire::ErrorBody),
    )
)]
pub(crate) async fn account(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<AccountDto>, ApiError> {
    let auth = authorized(&state, &headers).await?;
    let id = path_id(id, "account_id")?;
    Ok(Json(AccountDto::of(
        &state.finx.get_account(&auth, &id).await?,
    )))
}

/// One account's balance.
#[utoipa::path(
    get, path = "/rest/accounts/{account_id}/balance", tag = "data",
    params(("account_id" = String, Path, description = "`A…`")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The balance", body = BalanceDto),
        (status = 401, description = "Missing or invalid token", body = crate::wire::ErrorBody),
        (status = 403, description = "Lacks balance=ro", body = crate::wire::ErrorBody),
        (status = 404, description = "No such account for this token", body = crate::wire::ErrorBody),
    )
)]
pub(crate) async fn balance(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<BalanceDto>, ApiError> {
    let auth = authorized(&state, &headers).await?;
    let id = path_id(id, "account_id")?;
    let b = state.finx.get_balance(&auth, &id).await?;
    Ok(Json(BalanceDto::of(&b)))
}

/// The finX transaction query as documented; `transaction_query` parses it strictly (every
/// name of [`QUERY_PARAMS`], nothing else), so this type only describes it.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct TransactionParams {
    /// Page size, default 1000.
    #[param(minimum = 1, maximum = 1000)]
    count: Option<u32>,
    /// Items to skip, default 0.
    #[param(minimum = 0, maximum = 4_294_967_295_i64)]
    offset: Option<i64>,
    /// By booking date: `desc` (default) or `asc`.
    #[param(inline)]
    sort: Option<SortParam>,
    /// A date (inclusive; up to 9999-12-31, earlier than 1900 reads as 1900-01-01) or a
    /// transaction id (exclusive).
    #[param(schema_with = bound_schema)]
    since: Option<String>,
    /// As `since`.
    #[param(schema_with = bound_schema)]
    until: Option<String>,
    /// Which date `since` and `until` compare: `booked` (default), `created` or `modified`.
    #[param(inline)]
    since_type: Option<SinceTypeParam>,
    /// Whether pending transactions are included (default false).
    include_pending: Option<bool>,
    /// `purpose:TEXT` or `person:TEXT` (1–256 characters, case-insensitive substring), or
    /// `amount:DECIMAL` (exact).
    #[param(schema_with = filter_schema)]
    filter: Option<String>,
}

/// The id pattern (a prefix, then up to 64 letters or digits).
fn id_pattern(prefix: char) -> String {
    format!("{prefix}[A-Za-z0-9]{{1,64}}")
}

/// `since` and `until`: a date, or a transaction id.
fn bound_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type};
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date))),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(format!("^{}$", id_pattern('T')))),
        )
        .into()
}

/// `filter`.
fn filter_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(
            r"^((purpose|person):.{1,256}|amount:-?[0-9]{1,20}(\.[0-9]{1,8})?)$",
        ))
        .into()
}

/// `sort`.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub(crate) enum SortParam {
    /// Oldest first.
    Asc,
    /// Newest first.
    Desc,
}

/// `since_type`.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub(crate) enum SinceTypeParam {
    /// The booking date.
    Booked,
    /// When finX first saw it.
    Created,
    /// When finX last saw it change.
    Modified,
}

const QUERY_PARAMS: &[&str] = &[
    "accounts",
    "count",
    "offset",
    "sort",
    "since",
    "until",
    "since_type",
    "include_pending",
    "filter",
];

fn transaction_query(
    raw: Option<&str>,
    fixed_account: Option<&str>,
) -> Result<TransactionQuery, ApiError> {
    let p = parse::pairs(raw.unwrap_or_default(), Some(QUERY_PARAMS), "query")?;
    if fixed_account.is_some() && p.contains_key("accounts") {
        return Err(ApiError::invalid("accounts", "is given by the path here"));
    }
    let get = |k: &str| p.get(k).map(String::as_str);
    let raw = RawTransactionQuery {
        accounts: fixed_account.or_else(|| get("accounts")),
        count: get("count"),
        offset: get("offset"),
        sort: get("sort"),
        since: get("since"),
        until: get("until"),
        since_type: get("since_type"),
        include_pending: get("include_pending"),
        filter: get("filter"),
    };
    TransactionQuery::parse(raw).map_err(|e| ApiError::invalid(e.field, e.reason))
}

/// The transactions sync feed: what changed since `cursor` (everything, without one), as
/// added, modified and removed, in the order it changed. Keep `next_cursor` and call again
/// while `has_more`; later, call with the last cursor to get what changed since.
#[utoipa::path(
    get, path = "/rest/transactions/sync", tag = "data",
    params(
        ("cursor" = Option<String>, Query, pattern = r"^(fxc1_[A-Za-z0-9_-]{1,507})?$", description = "The `next_cursor` of the last page; absent or empty to start from the beginning"),
        ("count" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Changes per page, default 100"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of changes", body = crate::wire::FeedDto),
        (status = 400, description = "Invalid cursor or count", body = crate::wire::ErrorBody),
        (status = 401, description = "Missing or invalid token", body = crate::wire::ErrorBody),
        (status = 403, description = "Lacks transactions=ro", body = crate::wire::ErrorBody),
        (status = 409, description = "Changed during pagination (1023): discard this pass and restart from `data.restart_cursor`", body = crate::wire::ErrorBody),
    )
)]
pub(crate) async fn transactions_feed(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<crate::wire::FeedDto>, ApiError> {
    let auth = authorized(&state, &headers).await?;
    let p = parse::pairs(
        raw.as_deref().unwrap_or_default(),
        Some(&["cursor", "count"]),
        "query",
    )?;
    let count = p
        .get("count")
        .map(|c| {
            c.parse::<u32>()
                .map_err(|_| ApiError::invalid("count", "must be a whole number from 1 to 500"))
        })
        .transpose()?;
    let page = state
        .finx
        .transactions_feed(&auth, p.get("cursor").map(String::as_str), count)
        .await?;
    let both: Vec<_> = page.added.iter().chain(&page.modified).cloned().collect();
    let categories = state.finx.categorize(&auth, &both).await?;
    Ok(Json(crate::wire::FeedDto::of(
        &page,
        &categories,
        auth.language,
    )))
}

/// Transactions, per the finX query.
#[utoipa::path(
    get, path = "/rest/transactions", tag = "data",
    params(
        ("accounts" = Option<String>, Query, pattern = r"^A[A-Za-z0-9]{1,64}(,A[A-Za-z0-9]{1,64}){0,99}$", description = "Comma-separated account ids (1 to 100)"),
        TransactionParams,
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of transactions", body = TransactionList),
        (status = 400, description = "Invalid query", body = crate::wire::ErrorBody),
        (status = 401, description = "Missing or invalid token", body = crate::wire::ErrorBody),
        (status = 403, description = "Lacks transactions=ro", body = crate::wire::ErrorBody),
        (status = 404, description = "An account, or a `since` or `until` transaction, the token does not see", body = crate::wire::ErrorBody),
    )
)]
pub(crate) async fn transactions(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<RenderedJson, ApiError> {
    let auth = authorized(&state, &headers).await?;
    let q = transaction_query(raw.as_deref(), None)?;
    let key = PageKey::new(auth.grant_id, None, raw.as_deref());
    transaction_page(&state, &headers, &auth, q, key).await
}

/// One account's transactions, per the finX query (without `accounts`).
#[utoipa::path(
    get, path = "/rest/accounts/{account_id}/transactions", tag = "data",
    params(
        ("account_id" = String, Path, description = "`A…`"),
        TransactionParams,
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of transactions", body = TransactionList),
        (status = 400, description = "Invalid query", body = crate::wire::ErrorBody),
        (status = 401, description = "Missing or invalid token", body = crate::wire::ErrorBody),
        (status = 403, description = "Lacks transactions=ro", body = crate::wire::ErrorBody),
        (status = 404, description = "No such account for this token, or a `since` or `until` transaction it does not see", body = crate::wire::ErrorBody),
    )
)]
pub(crate) async fn account_transactions(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<RenderedJson, ApiError> {
    let auth = authorized(&state, &headers).await?;
    let id = path_id(id, "account_id")?;
    if finx_domain::ids::AccountId::parse(&id).is_err() {
        return Err(ApiError::from(finx_core::CoreError::NotFound("account")));
    }
    let q = transaction_query(raw.as_deref(), Some(&id))?;
    let key = PageKey::new(auth.grant_id, Some(&id), raw.as_deref());
    transaction_page(&state, &headers, &auth, q, key).await
}

/// A page of transactions: the kept one while it stands ([`crate::pages`]), else read
/// from the store, rendered and kept.
async fn transaction_page(
    state: &AppState,
    headers: &HeaderMap,
    auth: &Authorization,
    q: finx_domain::query::TransactionQuery,
    key: PageKey,
) -> Result<RenderedJson, ApiError> {
    let version = state.finx.page_version(auth, &q)?;
    if let Some(current) = &version {
        if !pages::wants_fresh(headers) {
            if let Some(body) = state
                .pages
                .get(&key, |kept| state.finx.serves(kept, current))
            {
                return Ok(RenderedJson(body));
            }
        }
    }
    let txs = state.finx.list_transactions(auth, q).await?;
    let categories = state.finx.categorize(auth, &txs).await?;
    let body = axum::body::Bytes::from(state.renderer.list(&txs, &categories, auth.language));
    if let Some(version) = version {
        state.pages.keep(key, version, body.clone());
    }
    Ok(RenderedJson(body))
}

/// A JSON body rendered ahead ([`crate::render`]): the same bytes and `Content-Type` as
/// axum's `Json` of the wire type.
pub(crate) struct RenderedJson(axum::body::Bytes);

impl axum::response::IntoResponse for RenderedJson {
    fn into_response(self) -> axum::response::Response {
        (
            [(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            )],
            self.0,
        )
            .into_response()
    }
}

/// One transaction.
#[utoipa::path(
    get, path = "/rest/transactions/{transaction_id}", tag = "data",
    params(("transaction_id" = String, Path, description = "`T…`")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The transaction", body = TransactionDto),
        (status = 401, description = "Missing or invalid token", body = crate::wire::ErrorBody),
        (status = 404, description = "No such transaction for this token", body = crate::wire::ErrorBody),
    )
)]
pub(crate) async fn transaction(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<TransactionDto>, ApiError> {
    let auth = authorized(&state, &headers).await?;
    let id = path_id(id, "transaction_id")?;
    let t = state.finx.get_transaction(&auth, &id).await?;
    let category = state
        .finx
        .categorize(&auth, std::slice::from_ref(&t))
        .await?
        .pop()
        .flatten();
    Ok(Json(TransactionDto::of(
        &t,
        category.as_ref(),
        auth.language,
    )))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "Alive", body = Health)))]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: the store answers.
#[utoipa::path(
    get, path = "/readyz", tag = "ops",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "The store does not answer", body = crate::wire::ErrorBody),
    )
)]
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    if state.draining() {
        return Err(ApiError::finx(
            StatusCode::SERVICE_UNAVAILABLE,
            crate::error::code::UNAVAILABLE,
            "The instance is shutting down.",
        ));
    }
    state.finx.ready().await?;
    Ok(Json(Health { status: "ok" }))
}
