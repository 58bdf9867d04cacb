//! The finX HTTP API: axum on hyper.
//!
//! [`router`] builds the whole API over a [`Finx`] core: the customer endpoints of the
//! finX reference, `/healthz`, `/readyz` and `/openapi.json` (generated from the handlers
//! with utoipa). Errors take the finX shape everywhere and the RFC 6749 shape on `/auth/*`;
//! [`error`] is the one place that maps core errors to HTTP.
//!
//! Every response carries an `X-Request-ID` (the caller's, or a new one), and every request
//! is traced with its method, path (never its query, which may carry a link token) and
//! request id.

pub mod addr;
mod api;
pub mod catalog;
pub mod enrich;
pub mod error;
#[cfg(test)]
mod fuzz;
pub mod hooks;
pub mod limit;
pub mod link;
mod openapi;
use crate::openapi::{ClosedSets, CommonAnswers};
pub mod pages;
mod parse;
pub mod render;
pub mod uploads;
pub mod verify;
mod widget;
pub mod wire;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderName, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use finx_core::Finx;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use url::Url;
use utoipa::OpenApi;

use crate::error::{ApiError, code};
pub use crate::link::LinkKey;
pub use crate::parse::BODY_LIMIT;

/// The sandbox's demo client, whose credentials the demo callback page shows.
#[derive(Clone)]
pub struct DemoClient {
    /// Its id.
    pub id: String,
    /// Its secret (a sandbox value, printed at start too).
    pub secret: String,
}

impl std::fmt::Debug for DemoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoClient")
            .field("id", &self.id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// Settings of the HTTP adapter.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// The public base URL, e.g. `https://finx.example.com/`; widget links are built on it.
    pub public_url: Url,
    /// The key that signs widget link tokens.
    pub link_key: LinkKey,
    /// Serve `/demo/callback`, a page showing what a redirect brought back and the next
    /// command with these credentials (sandbox only; `None` serves no such page).
    pub demo_client: Option<DemoClient>,
    /// Rate limits.
    pub limits: limit::RateLimits,
    /// Reverse proxies whose `X-Forwarded-For` / `Forwarded` headers are believed: only
    /// when the peer is in one of these networks is the client address taken from them.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The longest a flow's data fetch may run before it is abandoned (and the flow failed
    /// by the stale-sync job).
    pub completion_budget: Duration,
    /// The most rendered transaction JSON kept for reuse, in bytes, per transaction and
    /// again per page ([`render::DEFAULT_CACHE_BYTES`]; 0 keeps none).
    pub render_cache_bytes: u64,
}

/// What every handler gets: one shared [`Shared`], so extracting it for a request is a
/// reference count, not a copy of the core's settings.
#[derive(Clone)]
pub struct AppState(std::sync::Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The state every handler shares.
pub struct Shared {
    /// The core.
    pub finx: Finx,
    /// Settings.
    pub config: HttpConfig,
    /// The rate limiter.
    pub limiter: limit::Limiter,
    /// The data fetches running for flows: the server waits for them at shutdown.
    pub tasks: tokio_util::task::TaskTracker,
    /// Transactions' JSON, rendered once.
    pub renderer: render::Renderer,
    /// Rendered pages of transactions, kept while they stand.
    pub pages: pages::Pages,
    /// Set once shutdown starts: readiness fails from then on.
    draining: std::sync::atomic::AtomicBool,
}

impl AppState {
    /// The state for `finx` under `config`.
    #[must_use]
    pub fn new(finx: Finx, config: HttpConfig) -> Self {
        let limiter = limit::Limiter::new(config.limits);
        let renderer = render::Renderer::new(config.render_cache_bytes);
        let pages = pages::Pages::new(config.render_cache_bytes);
        Self(std::sync::Arc::new(Shared {
            finx,
            config,
            limiter,
            tasks: tokio_util::task::TaskTracker::new(),
            renderer,
            pages,
            draining: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    /// Shutdown has started: `/readyz` fails from now on, so that a load balancer stops
    /// sending requests while the ones in flight (and any that still come) are answered.
    pub fn begin_drain(&self) {
        self.0
            .draining
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether shutdown has started.
    #[must_use]
    pub fn draining(&self) -> bool {
        self.0.draining.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// The OpenAPI document of this API.
#[derive(OpenApi)]
#[openapi(
    // The version is Cargo's (utoipa's default).
    info(title = "finX", description = "Open, self-hostable account-information API."),
    paths(
        api::onetime_access, api::ongoing_access, api::token, api::revoke, api::accounts, api::account, api::balance,
        api::transactions, api::transactions_feed, api::account_transactions, api::transaction, api::accesses, api::access,
        api::delete_access, api::start_sync, api::sync, api::healthz, api::readyz,
        hooks::add, hooks::list, hooks::remove, hooks::rotate, hooks::enable, hooks::attempts,
        enrich::categories, enrich::add_rule, enrich::list_rules, enrich::delete_rule,
        catalog::banks, uploads::create, uploads::show, verify::create, verify::show
    ),
    components(schemas(
        wire::OnetimeAccessBody, wire::AccountRef, wire::OnetimeAccessResponse, wire::TokenBody, wire::RevokeBody,
        wire::TokenResponse, wire::AccountList, wire::AccountDto, wire::BalanceDto, wire::AccountStatusDto,
        wire::TransactionList, wire::TransactionDto, wire::CategoryDto, wire::ErrorBody, wire::ErrorDetail,
        wire::OAuthErrorBody, wire::Health, wire::OngoingAccessBody, wire::AccessList, wire::AccessDto,
        wire::ConsentDto, wire::ErrorRef, wire::SyncDto, wire::FeedDto, wire::RemovedDto,
        hooks::WebhookBody, hooks::WebhookDto, hooks::WebhookSecretDto, hooks::WebhookList,
        hooks::AttemptDto, hooks::AttemptList,
        enrich::CategoryInfo, enrich::CategoryTree, enrich::RuleBody, enrich::RuleDto, enrich::RuleList,
        catalog::CatalogBank, catalog::CatalogPage,
        uploads::UploadBody, uploads::UploadAccount, uploads::UploadTransaction, uploads::UploadDto,
        verify::VerificationBody, verify::ProvidedDto, verify::MatchedDto, verify::VerifiedAccountDto,
        verify::VerificationDto
    )),
    modifiers(&Security, &ClosedSets, &CommonAnswers),
    tags(
        (name = "flow", description = "Create widget links"),
        (name = "auth", description = "Tokens (RFC 6749, RFC 7009)"),
        (name = "data", description = "Accounts and transactions"),
        (name = "accesses", description = "Ongoing accesses and their syncs"),
        (name = "webhooks", description = "Webhook endpoints, signed per Standard Webhooks"),
        (name = "enrichment", description = "Categories, and a customer's own categorisation rules"),
        (name = "ops", description = "Health and readiness"),
    )
)]
pub struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "client_basic",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

async fn openapi() -> Response {
    axum::Json(openapi::document(&ApiDoc::openapi())).into_response()
}

async fn not_found() -> ApiError {
    ApiError::finx(StatusCode::NOT_FOUND, code::NOT_FOUND, "No such endpoint.")
}

async fn method_not_allowed() -> ApiError {
    ApiError::finx(
        StatusCode::METHOD_NOT_ALLOWED,
        code::METHOD_NOT_ALLOWED,
        "Method not allowed on this endpoint.",
    )
}

/// The most header bytes (names and values) a request may carry.
pub const HEADER_LIMIT: usize = 16 * 1024;
/// The longest request target.
pub const URI_LIMIT: usize = 8 * 1024;

/// Refuses requests whose headers or target are oversized, before any handler runs.
async fn limit_request_size(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if header_bytes > HEADER_LIMIT {
        return ApiError::finx(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            code::PAYLOAD_TOO_LARGE,
            format!("The headers exceed {HEADER_LIMIT} bytes."),
        )
        .into_response();
    }
    if req.uri().to_string().len() > URI_LIMIT {
        return ApiError::finx(
            StatusCode::URI_TOO_LONG,
            code::PAYLOAD_TOO_LARGE,
            format!("The URI exceeds {URI_LIMIT} bytes."),
        )
        .into_response();
    }
    next.run(req).await
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a handler panicked");
    ApiError::finx(
        StatusCode::INTERNAL_SERVER_ERROR,
        code::INTERNAL,
        "Internal error.",
    )
    .into_response()
}

/// The sandbox's stand-in for a customer's callback: shows what the redirect carried and
/// the next call of the guide. Values are HTML-escaped.
async fn demo_callback(
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Response {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .map(|(k, v)| (escape(&k), escape(&v)))
        .collect();
    let rows: String = pairs
        .iter()
        .map(|(k, v)| format!("<tr><th>{k}</th><td><code>{v}</code></td></tr>"))
        .collect();
    let code = pairs
        .iter()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.clone());
    let redirect = state
        .config
        .public_url
        .join("demo/callback")
        .map(|u| u.to_string())
        .unwrap_or_default();
    let token = state
        .config
        .public_url
        .join("auth/token")
        .map(|u| u.to_string())
        .unwrap_or_default();
    let (id, secret) = state.config.demo_client.as_ref().map_or_else(
        || ("CLIENT_ID".to_owned(), "CLIENT_SECRET".to_owned()),
        |d| (escape(&d.id), escape(&d.secret)),
    );
    let next = code.map(|c| {
        format!(
            "<p>Step 2 of the guide: exchange the code.</p><pre>curl -s -u {id}:{secret} -H 'Content-Type: application/json' \\\n  -d '{{\"grant_type\":\"authorization_code\",\"code\":\"{c}\",\"redirect_uri\":\"{r}\"}}' \\\n  {t}</pre>",
            r = escape(&redirect),
            t = escape(&token)
        )
    });
    let html = format!(
        "<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport content='width=device-width'>\
         <title>finX demo callback</title><body style='font-family:sans-serif;max-width:50em;margin:2em auto'>\
         <h1>Back from the finX widget</h1><table>{rows}</table>{}</body></html>",
        next.unwrap_or_default()
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// The whole API, with `extra` routes (another adapter's pages, e.g. the sandbox bank's)
/// served under the same limits, time-outs and headers.
pub fn router_with(state: AppState, extra: Router) -> Router {
    let demo = state.config.demo_client.is_some();
    let request_id = HeaderName::from_static("x-request-id");
    let trace = TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
        let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
        tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
    });
    Router::new()
        .route("/onetime/access", post(api::onetime_access))
        .route("/onetime/account-verification", post(verify::create))
        .route(
            "/rest/account-verifications/{verification_id}",
            get(verify::show),
        )
        .route(
            "/uploads",
            post(uploads::create).layer(DefaultBodyLimit::max(uploads::UPLOAD_BODY_LIMIT)),
        )
        .route("/uploads/{upload_id}", get(uploads::show))
        .route("/ongoing/access", post(api::ongoing_access))
        .route("/rest/accesses", get(api::accesses))
        .route(
            "/rest/accesses/{access_id}",
            get(api::access).delete(api::delete_access),
        )
        .route("/rest/accesses/{access_id}/syncs", post(api::start_sync))
        .route("/rest/accesses/{access_id}/syncs/{sync_id}", get(api::sync))
        .route("/webhooks", post(hooks::add).get(hooks::list))
        .route(
            "/webhooks/{endpoint_id}",
            axum::routing::delete(hooks::remove),
        )
        .route("/webhooks/{endpoint_id}/rotate", post(hooks::rotate))
        .route("/webhooks/{endpoint_id}/enable", post(hooks::enable))
        .route("/webhooks/{endpoint_id}/attempts", get(hooks::attempts))
        .route("/categories", get(enrich::categories))
        .route("/rest/catalog/banks", get(catalog::banks))
        .route(
            "/category-rules",
            post(enrich::add_rule).get(enrich::list_rules),
        )
        .route(
            "/category-rules/{rule_id}",
            axum::routing::delete(enrich::delete_rule),
        )
        .route("/auth/token", post(api::token))
        .route("/auth/revoke", post(api::revoke))
        .route("/rest/accounts", get(api::accounts))
        .route("/rest/accounts/{account_id}", get(api::account))
        .route("/rest/accounts/{account_id}/balance", get(api::balance))
        .route(
            "/rest/accounts/{account_id}/transactions",
            get(api::account_transactions),
        )
        .route("/rest/transactions", get(api::transactions))
        .route("/rest/transactions/sync", get(api::transactions_feed))
        .route("/rest/transactions/{transaction_id}", get(api::transaction))
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/openapi.json", get(openapi))
        .route(
            "/demo/callback",
            if demo {
                get(demo_callback)
            } else {
                get(not_found)
            },
        )
        .merge(widget::routes())
        .merge(docs())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone())
        .merge(extra)
        .layer(axum::middleware::from_fn(run_to_completion))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(limit_request_size))
        .layer(axum::middleware::from_fn(limit_request_time))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(axum::middleware::from_fn_with_state(state, observe))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(trace)
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// The access log and the request metrics: one INFO line per request (target
/// `finx::access`) with its id, method, route template, status and latency, and the same in
/// the telemetry. Only the route template is logged (`/rest/accounts/{account_id}`, or
/// `unmatched`), never the path's values, a query string, a header or a body, so no token
/// or secret can reach the log.
async fn observe(
    State(state): State<AppState>,
    req: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let res = next.run(req).await;
    let took = started.elapsed();
    let status = res.status().as_u16();
    state
        .finx
        .telemetry()
        .http_request(&route, method.as_str(), status, took);
    tracing::info!(
        target: "finx::access",
        request_id = %id,
        method = %method,
        route = %route,
        status,
        latency_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    res
}

/// `/docs`: the API described for people, by Swagger UI. Its assets are compiled into the
/// binary (utoipa-swagger-ui's vendored build) and served from `/docs/`, so the page works
/// offline and reaches no other host: the online validator is off.
fn docs() -> Router<AppState> {
    utoipa_swagger_ui::SwaggerUi::new("/docs")
        .config(
            utoipa_swagger_ui::Config::new(["/openapi.json"])
                .validator_url("none")
                .try_it_out_enabled(false),
        )
        .into()
}

/// Time limits of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerTimeouts {
    /// A client must send a request's headers within this (slowloris): default 10 s.
    pub header_read: Duration,
    /// A request must be answered within this, or gets 503 in the finX error shape: default
    /// 75 s (above two bank calls at the default bank timeout of 30 s).
    pub request: Duration,
}

impl Default for ServerTimeouts {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(10),
            request: Duration::from_secs(75),
        }
    }
}

/// Answers 503 in the finX error shape when the request takes longer than the limit in the
/// request's extensions (set by [`serve`]).
async fn limit_request_time(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let Some(RequestTimeout(limit)) = req.extensions().get::<RequestTimeout>().copied() else {
        return next.run(req).await;
    };
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => {
            tracing::warn!(seconds = limit.as_secs(), "request timed out");
            let mut res = ApiError::finx(
                StatusCode::SERVICE_UNAVAILABLE,
                code::INTERNAL,
                "The request took too long; try again.",
            )
            .into_response();
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            res
        }
    }
}

/// Runs the handler as a task of its own, so a request that is given up (its client went
/// away, or it ran past the time limit) still runs to its end instead of being dropped at
/// whatever `.await` it had reached. A handler dropped inside a store transaction could tear
/// it: sqlx's SQLite transactions are not drop-safe (launchbadge/sqlx#3932), and a torn one
/// left the single writer connection "at non-zero transaction depth", failing every later
/// write. A panic is passed on to the panic layer outside.
async fn run_to_completion(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    match tokio::spawn(next.run(req)).await {
        Ok(res) => res,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => ApiError::finx(
            StatusCode::SERVICE_UNAVAILABLE,
            code::INTERNAL,
            "The server is shutting down; try again.",
        )
        .into_response(),
    }
}

/// The request time limit, put in each request's extensions by [`serve`].
#[derive(Debug, Clone, Copy)]
struct RequestTimeout(Duration);

/// Serves `router` on `listener` until `shutdown` resolves, then lets requests in flight
/// finish (at most `grace`). Each connection must send its request headers within
/// `timeouts.header_read` (closed otherwise), and each request is answered within
/// `timeouts.request`. Handlers see the peer as `ConnectInfo<SocketAddr>`.
///
/// # Errors
/// When the listener fails for good.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
    timeouts: ServerTimeouts,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use tower::ServiceExt as _;

    // HTTP/1 only: the header-read timeout is HTTP/1's, and cleartext HTTP/2 would let a
    // client hold a connection without ever completing a request. (A TLS proxy in front may
    // still speak HTTP/2 to browsers.)
    let mut builder = Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header_read);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, do not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.as_mut() => break,
        };
        let limit = RequestTimeout(timeouts.request);
        let service = router
            .clone()
            .map_request(move |req: Request<hyper::body::Incoming>| {
                let mut req = req.map(axum::body::Body::new);
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                req.extensions_mut().insert(limit);
                req
            });
        let service = hyper_util::service::TowerToHyperService::new(service);
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!("requests still running after the grace period; stopping anyway");
        }
    }
    Ok(())
}

#[cfg(test)]
mod completion_tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use axum::routing::get;
    use tower::ServiceExt as _;

    use super::*;

    /// A request given up at the time limit still runs its handler to the end (as the real
    /// router's layers are ordered: the limit outside, the task inside).
    #[tokio::test]
    async fn a_request_given_up_still_runs_to_its_end() {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let app = Router::new()
            .route(
                "/slow",
                get(move || async move {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    flag.store(true, Ordering::SeqCst);
                    "done"
                }),
            )
            .layer(axum::middleware::from_fn(run_to_completion))
            .layer(axum::middleware::from_fn(limit_request_time));
        let mut req = Request::builder()
            .uri("/slow")
            .body(axum::body::Body::empty())
            .expect("request");
        req.extensions_mut()
            .insert(RequestTimeout(Duration::from_millis(20)));
        let res = app.clone().oneshot(req).await.expect("answer");
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "given up");
        assert!(!done.load(Ordering::SeqCst));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(done.load(Ordering::SeqCst), "the handler ran to its end");
    }

    /// A panicking handler still reaches the panic layer as a 500 in the finX shape.
    #[tokio::test]
    async fn a_panic_inside_still_becomes_a_500() {
        let app = Router::new()
            .route(
                "/boom",
                get(|| async {
                    if true {
                        panic!("boom");
                    }
                    "never"
                }),
            )
            .layer(axum::middleware::from_fn(run_to_completion))
            .layer(CatchPanicLayer::custom(panic_response));
        let res = app
            .oneshot(
                Request::builder()
                    .uri("/boom")
                    .body(axum::body::Body::empty())
                    .expect("request"),
            )
            .await
            .expect("answer");
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
