//! The widget: the pages an end user walks through, server-rendered, working without
//! JavaScript (plain forms and redirects). `static/widget.js` only adds niceties: it marks
//! forms when framed, submits the "fetch" form by itself, and on the last step posts the
//! result to the parent window in iframe mode. While the server fetches, the waiting page
//! reloads itself with a meta refresh.
//!
//! Once a bank is chosen, the bank leads (`finx_domain::sca`): the page shows the step it
//! asked for (its login form with its own fields, a method choice, a TAN with text, an inline
//! PNG or flicker code, a link to continue at the bank, or an "approve in your app" page that
//! polls through `/widget/poll` at the bank's pace). `/widget/callback` is where the bank's
//! own pages send the user back: it resumes only the flow named by its single-use `state`,
//! only in the browser holding that flow (or binding a flow no browser holds yet).
//!
//! Every request carries the link token, which names the flow; every form also carries a
//! CSRF token derived from it (HMAC), checked in constant time; a POST that the browser marks
//! `Sec-Fetch-Site: cross-site`, or whose `Origin` is another site, is refused (under
//! `no-referrer` browsers send `Origin: null` with our own forms, so the CSRF token is the
//! main protection). Pages send a `Content-Security-Policy` whose `frame-ancestors` are the
//! client's registered origins (and loopback), and `Referrer-Policy: no-referrer`.

mod texts;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use finx_core::{CoreError, WidgetView};
use finx_domain::bank::{AccountDetails, AccountType};
use finx_domain::flow::{FlowError, FlowStatus};
use finx_domain::ids::FlowId;
use finx_domain::reference::AccountReference;
use finx_domain::sca::{BankStep, StepAnswer};
use finx_domain::values::Language;
use hmac::{Hmac, Mac};
use minijinja::{Environment, Value, context};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use url::Url;

use crate::AppState;
use crate::link::{self, LinkError};
use texts::texts;

/// The widget's routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/widget", get(page))
        .route("/widget/bank", post(bank))
        .route("/widget/login", post(login))
        .route("/widget/method", post(method))
        .route("/widget/tan", post(tan))
        .route("/widget/poll", get(poll))
        .route("/widget/callback", get(callback))
        .route("/widget/accounts", post(accounts))
        .route("/widget/sync", post(sync))
        .route("/widget/cancel", post(cancel))
        .route("/widget/return", post(go_back))
        .route("/widget/static/widget.css", get(css))
        .route("/widget/static/widget.js", get(js))
}

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in [
            ("base.html", include_str!("templates/base.html")),
            ("banks.html", include_str!("templates/banks.html")),
            ("login.html", include_str!("templates/login.html")),
            ("tan.html", include_str!("templates/tan.html")),
            ("method.html", include_str!("templates/method.html")),
            ("redirect.html", include_str!("templates/redirect.html")),
            ("decoupled.html", include_str!("templates/decoupled.html")),
            ("waiting.html", include_str!("templates/waiting.html")),
            ("accounts.html", include_str!("templates/accounts.html")),
            ("sync.html", include_str!("templates/sync.html")),
            ("result.html", include_str!("templates/result.html")),
            ("message.html", include_str!("templates/message.html")),
        ] {
            // The templates are part of the binary and parsed in a unit test; a broken one
            // is a build defect, not a request error.
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(template = name, error = %e, "widget template does not parse");
            }
        }
        env
    })
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("static/widget.css"),
    )
        .into_response()
}

async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("static/widget.js"),
    )
        .into_response()
}

/// The flow a request is about.
struct Ctx {
    flow: FlowId,
    token: String,
    csrf: String,
    /// Shown in an iframe (the script says so): the last step posts to the parent window.
    framed: bool,
}

/// The CSRF token of a link: HMAC of the link token under the link key.
fn csrf_for(state: &AppState, token: &str) -> String {
    // Under the key that signed the link, so a page served before a key rotation still
    // posts.
    let key = state.config.link_key.key_of(token).unwrap_or_default();
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable!("any key length"));
    mac.update(b"finx-widget-csrf\0");
    mac.update(token.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
}

/// Opens the flow named by a link token. An expired link still names its flow, so the user
/// can be sent back with `error=link_expired`.
fn open(state: &AppState, token: &str, framed: bool) -> Result<Ctx, Box<Response>> {
    let flow = match link::verify(&state.config.link_key, token, state.finx.now()) {
        Ok(f) | Err(LinkError::Expired(f)) => f,
        Err(LinkError::Invalid) => {
            return Err(Box::new(plain_error(
                StatusCode::BAD_REQUEST,
                "invalid_link",
            )));
        }
    };
    Ok(Ctx {
        flow,
        token: token.to_owned(),
        csrf: csrf_for(state, token),
        framed,
    })
}

/// The cookie that binds flows to the browser that first opened them.
const BROWSER_COOKIE: &str = "finx_browser";

/// The browser token the request carries, if any.
fn browser_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == BROWSER_COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// The `Set-Cookie` for a new browser token: HttpOnly always; on https also `Secure`,
/// `SameSite=None` and `Partitioned`, so it works in a customer's iframe (browsers refuse
/// `SameSite=None` without `Secure`, so plain http, i.e. loopback, keeps `Lax`).
fn set_browser_cookie(state: &AppState, token: &str) -> Option<HeaderValue> {
    let attrs = if state.config.public_url.scheme() == "https" {
        "Secure; SameSite=None; Partitioned"
    } else {
        "SameSite=Lax"
    };
    HeaderValue::from_str(&format!(
        "{BROWSER_COOKIE}={token}; Path=/widget; HttpOnly; {attrs}"
    ))
    .ok()
}

/// Lets only the browser that first came back with its cookie see or change the flow. A
/// request carrying a browser token binds an unbound flow to it, or must match the bound
/// one. A page view without a token, of a flow no browser holds yet, gets a new token (the
/// `Set-Cookie` returned) but binds nothing: a client that never keeps cookies (a mail
/// scanner opening the link first, say) cannot lock the user out, and an unbound flow has
/// no bank data to show. A step without a token is refused with a page asking for cookies.
/// Another browser gets a page saying the link is in use elsewhere, in the flow's language,
/// and nothing of the flow.
async fn browser_gate(
    state: &AppState,
    headers: &HeaderMap,
    flow: FlowId,
    may_issue: bool,
) -> Result<Option<HeaderValue>, Box<Response>> {
    let Some(token) = browser_cookie(headers) else {
        let stored = match state.finx.flow(flow).await {
            Ok(v) => v,
            Err(CoreError::NotFound(_)) => {
                return Err(Box::new(plain_error(StatusCode::NOT_FOUND, "invalid_link")));
            }
            Err(e) => return Err(Box::new(core_failure(&e))),
        };
        let language = stored.params.language;
        if stored.browser.is_some() {
            return Err(Box::new(elsewhere_page(language, "in_use_elsewhere")));
        }
        // Only a flow with nothing of the user's in it yet is shown unbound (every widget
        // step binds; a flow further on that no browser holds was driven some other way).
        // A flow at the bank that no browser holds has no answer in it: every answer is a
        // step, and every step binds.
        let nothing_yet = matches!(
            stored.status,
            FlowStatus::Created
                | FlowStatus::BankSelected { .. }
                | FlowStatus::AtBank { .. }
                | FlowStatus::Cancelled
                | FlowStatus::Failed { .. }
                | FlowStatus::Expired
        );
        if may_issue && nothing_yet {
            let t = state.finx.new_browser_token().expose().to_owned();
            return Ok(set_browser_cookie(state, &t));
        }
        return Err(Box::new(elsewhere_page(language, "cookies_required")));
    };
    match state.finx.bind_browser(flow, &token).await {
        Ok(()) => Ok(None),
        Err(CoreError::Flow(FlowError::OtherBrowser)) => {
            let language = language_of(state, flow).await;
            Err(Box::new(elsewhere_page(language, "in_use_elsewhere")))
        }
        Err(CoreError::NotFound(_)) => {
            Err(Box::new(plain_error(StatusCode::NOT_FOUND, "invalid_link")))
        }
        Err(e) => Err(Box::new(core_failure(&e))),
    }
}

/// The page for a browser other than the flow's (or one without cookies): the text `key`
/// in the flow's language, and no data.
fn elsewhere_page(language: Language, key: &str) -> Response {
    let t = texts(language);
    let html = format!(
        "<!doctype html><html lang={}><meta charset=utf-8><meta name=viewport content='width=device-width'>\
         <title>finX</title><link rel=stylesheet href=/widget/static/widget.css><main class=card><h1>{}</h1>\
         <p role=alert class=error id=message>{}</p></main>",
        language.code(),
        t["error_title"],
        t.get(key).copied().unwrap_or_default(),
    );
    let mut res = (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response();
    secure(&mut res, "'none'", "'self'");
    res
}

/// A page for requests that name no usable flow, in both languages.
fn plain_error(status: StatusCode, key: &str) -> Response {
    let de = texts(Language::De);
    let en = texts(Language::En);
    let html = format!(
        "<!doctype html><html lang=de><meta charset=utf-8><meta name=viewport content='width=device-width'>\
         <title>finX</title><link rel=stylesheet href=/widget/static/widget.css><main class=card><h1>{}</h1>\
         <p role=alert class=error>{}</p><p lang=en>{}</p></main>",
        de["error_title"],
        de.get(key).copied().unwrap_or_default(),
        en.get(key).copied().unwrap_or_default()
    );
    let mut res = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response();
    secure(&mut res, "'none'", "'self'");
    res
}

fn secure(res: &mut Response, frame_ancestors: &str, form_action: &str) {
    let csp = format!(
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'self'; \
         base-uri 'none'; form-action {form_action}; frame-ancestors {frame_ancestors}"
    );
    let h = res.headers_mut();
    // Should the policy not build (an origin with odd characters), the strictest one goes out.
    let v = HeaderValue::from_str(&csp)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"));
    h.insert(header::CONTENT_SECURITY_POLICY, v);
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// `frame-ancestors`: the origins of the client's registered redirect URIs, any port on
/// loopback when a loopback URI is registered.
async fn frame_ancestors(state: &AppState, view: &WidgetView) -> String {
    let Ok(Some(client)) = state.finx.find_client(&view.flow.client_id).await else {
        return "'none'".into();
    };
    let mut origins = vec!["'self'".to_owned()];
    for uri in &client.redirect_uris {
        if uri.is_loopback() {
            origins.extend(
                ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"].map(str::to_owned),
            );
        } else {
            origins.push(uri.origin());
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    origins.retain(|o| seen.insert(o.clone()));
    origins.join(" ")
}

async fn html(state: &AppState, view: &WidgetView, template: &str, ctx: Value) -> Response {
    let body = templates()
        .get_template(template)
        .and_then(|t| t.render(ctx))
        .unwrap_or_else(|e| {
            tracing::error!(template, error = %e, "widget page failed to render");
            String::from("<!doctype html><title>finX</title><p>Error.</p>")
        });
    let mut res = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response();
    let form_action = format!("'self' {}", view.flow.params.redirect_uri.origin());
    secure(&mut res, &frame_ancestors(state, view).await, &form_action);
    res
}

/// The widget page of a flow, relative: `/widget?token=…` (and `&iframe=1` when framed).
fn page_path(ctx: &Ctx) -> String {
    let mut target = String::from("/widget?token=");
    target.extend(form_urlencoded::byte_serialize(ctx.token.as_bytes()));
    if ctx.framed {
        target.push_str("&iframe=1");
    }
    target
}

fn to_page(ctx: &Ctx) -> Response {
    Redirect::to(&page_path(ctx)).into_response()
}

fn account_kind(t: AccountType, language: Language) -> &'static str {
    if language == Language::En {
        return t.as_str();
    }
    match t {
        AccountType::Giro => "Girokonto",
        AccountType::Savings => "Sparkonto",
        AccountType::CreditCard => "Kreditkarte",
        AccountType::Loan => "Darlehenskonto",
        AccountType::Depot => "Depot",
        AccountType::Unknown => "Konto",
    }
}

fn account_number(a: &AccountDetails) -> String {
    match (&a.iban, &a.card_last4, &a.account_number) {
        (Some(iban), _, _) => iban.to_string(),
        (None, Some(last4), _) => format!("•••• {last4}"),
        (None, None, Some(n)) => n.clone(),
        _ => String::new(),
    }
}

#[derive(Default)]
struct Extra {
    error: Option<String>,
    q: Option<String>,
    /// The end user's address and browser, for a bank call this page makes.
    psu: finx_ports::PsuContext,
}

/// The page for where the flow stands now.
async fn render(state: &AppState, ctx: &Ctx, extra: Extra) -> Response {
    let mut view = match state.finx.widget_view(ctx.flow).await {
        Ok(v) => v,
        Err(CoreError::NotFound(_)) => return plain_error(StatusCode::NOT_FOUND, "invalid_link"),
        Err(e) => return core_failure(&e),
    };
    // Once the bank is chosen, the bank says what comes first.
    if matches!(view.flow.status, FlowStatus::BankSelected { .. }) && extra.q.is_none() {
        match state
            .finx
            .open_at_bank_as(ctx.flow, extra.psu.clone())
            .await
        {
            Ok(_) | Err(CoreError::FlowFailed(_) | CoreError::Flow(_) | CoreError::Busy) => {}
            Err(e) => return core_failure(&e),
        }
        view = match state.finx.widget_view(ctx.flow).await {
            Ok(v) => v,
            Err(e) => return core_failure(&e),
        };
    }
    let flow = &view.flow;
    let language = flow.params.language;
    let t = texts(language);
    let bank = view.institution.as_ref().map(|i| i.name.clone());
    let live = !flow.status.is_terminal();
    let base = |extra_ctx: Value| {
        context! { t => t.clone(), lang => language.code(), token => ctx.token, csrf => ctx.csrf, bank => bank, live => live, ..extra_ctx }
    };
    let choosing = matches!(flow.status, FlowStatus::Created)
        || (matches!(flow.status, FlowStatus::BankSelected { .. }) && extra.q.is_some());
    if choosing {
        let q = extra.q.clone().unwrap_or_default();
        let banks = state.finx.search_institutions(&q).await.unwrap_or_default();
        let banks: Vec<Value> = banks
                .iter()
                .map(|b| context! { id => b.id.as_str(), name => b.name, bic => b.bic, bank_code => b.bank_code })
                .collect();
        let named_iban = flow
            .params
            .accounts
            .iter()
            .any(|a| matches!(a, AccountReference::Iban(_)));
        let note = (named_iban && matches!(flow.status, FlowStatus::Created))
            .then(|| t["unknown_bank_note"]);
        return html(
            state,
            &view,
            "banks.html",
            base(context! { banks => banks, q => q, note => note, error => extra.error }),
        )
        .await;
    }
    match &flow.status {
        FlowStatus::Created | FlowStatus::BankSelected { .. } => {
            // The bank did not answer the start (a concurrent start, say): ask again shortly.
            html(state, &view, "waiting.html", base(context! { refresh => page_path(ctx) })).await
        }
        FlowStatus::AtBank { .. } => render_step(state, ctx, &view, extra, base).await,
        FlowStatus::ScaPassed { offered, .. } => {
            let pre: Vec<&str> = flow.preselected().into_iter().map(|a| a.external_id.as_str()).collect();
            let accounts: Vec<Value> = offered
                .iter()
                .map(|a| {
                    context! {
                        external_id => a.external_id, name => a.name, kind => account_kind(a.account_type, language),
                        number => account_number(a), checked => pre.contains(&a.external_id.as_str()),
                    }
                })
                .collect();
            let multi = flow.params.allow_multi_selection;
            let verify = flow.params.verification.is_some();
            html(state, &view, "accounts.html", base(context! { accounts => accounts, multi => multi, verify => verify, error => extra.error })).await
        }
        FlowStatus::AccountsChosen { .. } | FlowStatus::Syncing { .. } => {
            // While the server fetches, the page reloads itself (no script needed) until
            // the fetch has ended.
            let claimable = matches!(flow.status, FlowStatus::AccountsChosen { .. });
            let sync_text = t["sync_text"].replace("{days}", &flow.params.sync_period.days().to_string());
            let refresh = (!claimable).then(|| page_path(ctx));
            html(state, &view, "sync.html", base(context! { claimable => claimable, sync_text => sync_text, refresh => refresh })).await
        }
        FlowStatus::Completed { .. } => {
            // A reload after completion goes back to the app with the same code, while it
            // still works.
            match state.finx.completion_redirect(ctx.flow).await {
                Ok(url) => finish(state, ctx, &url).await,
                Err(_) => {
                    html(state, &view, "message.html", base(context! { heading => t["done_title"], text => t["finished_text"], can_return => false, alert => false }))
                        .await
                }
            }
        }
        FlowStatus::Cancelled => {
            html(state, &view, "message.html", base(context! { heading => t["done_title"], text => t["cancelled_text"], can_return => false, alert => false }))
                .await
        }
        FlowStatus::Failed { reason } => {
            let key = format!("failed_{}", reason.code());
            let text = t.get(key.as_str()).copied().unwrap_or_default();
            html(state, &view, "message.html", base(context! { heading => t["failed_title"], text => text, can_return => true, alert => true }))
                .await
        }
        FlowStatus::Expired => {
            let text = t["failed_link_expired"];
            html(state, &view, "message.html", base(context! { heading => t["failed_title"], text => text, can_return => true, alert => true }))
                .await
        }
    }
}

/// The page for the step the bank asked for (or a waiting page while the bank answers).
async fn render_step(
    state: &AppState,
    ctx: &Ctx,
    view: &WidgetView,
    extra: Extra,
    base: impl Fn(Value) -> Value,
) -> Response {
    let flow = &view.flow;
    let t = texts(flow.params.language);
    let bank = view.institution.as_ref().map_or("", |i| i.name.as_str());
    let Some(step) = flow.asked() else {
        // The bank has the user's answer. Should its reply never come (the instance that
        // asked died), the flow fails rather than wait for ever.
        if let Ok(f) = state.finx.fail_if_stalled(ctx.flow).await
            && f.status.is_terminal()
        {
            return to_page(ctx);
        }
        return html(
            state,
            view,
            "waiting.html",
            base(context! { refresh => page_path(ctx) }),
        )
        .await;
    };
    match step {
        BankStep::Login { fields } => {
            let fields: Vec<Value> = fields
                .iter()
                .map(|f| context! { id => field_id(&f.id), label => f.label, secret => f.secret })
                .collect();
            let can_switch = flow.params.provider_id.is_none();
            html(
                state,
                view,
                "login.html",
                base(context! { fields => fields, error => extra.error, can_switch => can_switch }),
            )
            .await
        }
        BankStep::ChooseMethod { methods } => {
            let methods: Vec<Value> = methods
                .iter()
                .map(|m| context! { id => m.id, name => m.name })
                .collect();
            html(
                state,
                view,
                "method.html",
                base(context! { methods => methods, error => extra.error }),
            )
            .await
        }
        BankStep::Tan { challenge } => {
            let image = challenge.image_png.as_ref().map(|png| STANDARD.encode(png));
            html(
                state,
                view,
                "tan.html",
                base(context! {
                    method => challenge.method, prompt => challenge.prompt, image => image,
                    flicker => challenge.flicker, max_length => challenge.max_length, error => extra.error,
                }),
            )
            .await
        }
        BankStep::Redirect { url } => {
            let redirect_text = t["redirect_text"].replace("{bank}", bank);
            let redirect_button = t["redirect_button"].replace("{bank}", bank);
            html(
                state,
                view,
                "redirect.html",
                base(context! { url => url.as_str(), redirect_text => redirect_text, redirect_button => redirect_button, error => extra.error }),
            )
            .await
        }
        BankStep::Decoupled {
            prompt,
            poll_after_seconds,
        } => {
            let poll = page_path(ctx).replacen("/widget?", "/widget/poll?", 1);
            html(
                state,
                view,
                "decoupled.html",
                base(context! { prompt => prompt, after => poll_after_seconds, poll => poll }),
            )
            .await
        }
    }
}

/// A bank's field id as it may appear in an HTML id and a form field name.
fn field_id(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A failure with no flow page to show: a plain page with the status the API would use.
fn core_failure(e: &CoreError) -> Response {
    let (status, key) = match e {
        CoreError::NotFound(_) => (StatusCode::NOT_FOUND, "invalid_link"),
        CoreError::Busy | CoreError::Flow(_) => (StatusCode::CONFLICT, "busy"),
        CoreError::Store(finx_ports::StoreError::Unavailable(_)) => {
            (StatusCode::SERVICE_UNAVAILABLE, "busy")
        }
        other => {
            tracing::error!(error = %other, "widget step failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "busy")
        }
    };
    plain_error(status, key)
}

#[derive(Deserialize)]
struct PageQuery {
    token: Option<String>,
    q: Option<String>,
    iframe: Option<String>,
}

/// The end user's address (through trusted proxies) and browser, from the request.
fn psu_of(
    state: &AppState,
    extensions: &axum::http::Extensions,
    headers: &HeaderMap,
) -> finx_ports::PsuContext {
    let ip = extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| crate::addr::client_ip(c.0, headers, &state.config.trusted_proxies));
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(256).collect());
    finx_ports::PsuContext { ip, user_agent }
}

async fn page(
    State(state): State<AppState>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return plain_error(StatusCode::BAD_REQUEST, "invalid_link");
    };
    let Some(token) = q.token else {
        return plain_error(StatusCode::BAD_REQUEST, "invalid_link");
    };
    let ctx = match open(&state, &token, q.iframe.as_deref() == Some("1")) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let issued = match browser_gate(&state, &headers, ctx.flow, true).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let mut res = render(
        &state,
        &ctx,
        Extra {
            q: q.q.map(|s| s.chars().take(100).collect()),
            psu: psu_of(&state, &extensions, &headers),
            ..Extra::default()
        },
    )
    .await;
    if let Some(cookie) = issued {
        res.headers_mut().append(header::SET_COOKIE, cookie);
    }
    res
}

/// A submitted widget form: checked media type, origin and CSRF token.
struct Form {
    ctx: Ctx,
    fields: Vec<(String, String)>,
}

impl Form {
    fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

async fn read_form(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Form, Box<Response>> {
    // Browsers say where a request comes from; a cross-site form post is refused outright.
    if headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) == Some("cross-site") {
        return Err(Box::new(plain_error(StatusCode::FORBIDDEN, "invalid_link")));
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        // Under `Referrer-Policy: no-referrer` browsers send `Origin: null` with our own
        // forms; any real origin but ours is a cross-site post.
        let ours = state.config.public_url.origin().ascii_serialization();
        if origin != ours && origin != "null" {
            return Err(Box::new(plain_error(StatusCode::FORBIDDEN, "invalid_link")));
        }
    }
    let body =
        body.map_err(|_| Box::new(plain_error(StatusCode::PAYLOAD_TOO_LARGE, "invalid_link")))?;
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !is_form || std::str::from_utf8(&body).is_err() {
        return Err(Box::new(plain_error(
            StatusCode::BAD_REQUEST,
            "invalid_link",
        )));
    }
    let fields: Vec<(String, String)> = form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let token = fields
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let framed = fields.iter().any(|(k, v)| k == "iframe" && v == "1");
    let ctx = open(state, &token, framed)?;
    let given = fields
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    if !bool::from(given.as_bytes().ct_eq(ctx.csrf.as_bytes())) {
        return Err(Box::new(plain_error(StatusCode::FORBIDDEN, "invalid_link")));
    }
    // Every step comes from the browser that opened the link (its page view set the cookie).
    browser_gate(state, headers, ctx.flow, false).await?;
    Ok(Form { ctx, fields })
}

macro_rules! form_or_return {
    ($state:expr, $headers:expr, $body:expr) => {
        match read_form(&$state, &$headers, $body).await {
            Ok(f) => f,
            Err(r) => return *r,
        }
    };
}

async fn language_of(state: &AppState, flow: FlowId) -> Language {
    state
        .finx
        .flow(flow)
        .await
        .map(|f| f.params.language)
        .unwrap_or_default()
}

/// Sends the user back to the customer: a 303, or in iframe mode a page that posts the
/// result to the parent window (only to the redirect URI's origin).
async fn finish(state: &AppState, ctx: &Ctx, url: &Url) -> Response {
    if !ctx.framed {
        return Redirect::to(url.as_str()).into_response();
    }
    let view = match state.finx.widget_view(ctx.flow).await {
        Ok(v) => v,
        Err(_) => return Redirect::to(url.as_str()).into_response(),
    };
    let pairs: BTreeMap<String, String> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut location = url.clone();
    location.set_query(None);
    let query = serde_json::json!({
        "state": pairs.get("state"),
        "code": pairs.get("code"),
        "success": pairs.get("success").is_some_and(|s| s == "true"),
        "abort": pairs.get("cancel").is_some_and(|s| s == "true"),
        "flow_id": pairs.get("flow_id"),
        "error": pairs.get("error"),
    });
    let result = serde_json::json!({
        "location": location.as_str(),
        "query": query,
        "url": url.as_str(),
        "origin": url.origin().ascii_serialization(),
    });
    // Inside <script>, only "<" could end the element early: escape it (and friends).
    let json = result
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    let language = view.flow.params.language;
    let t = texts(language);
    let ctx = context! {
        t => t, lang => language.code(), token => ctx.token, csrf => ctx.csrf, bank => Option::<String>::None,
        live => false, heading => t["done_title"], text => t["done_text"], url => url.as_str(),
        result => Value::from_safe_string(json),
    };
    html(state, &view, "result.html", ctx).await
}

async fn bank(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let form = form_or_return!(state, headers, body);
    match state
        .finx
        .select_bank(form.ctx.flow, form.get("institution").unwrap_or_default())
        .await
    {
        Ok(_) => to_page(&form.ctx),
        Err(CoreError::Invalid { .. }) => {
            let t = texts(language_of(&state, form.ctx.flow).await);
            render(
                &state,
                &form.ctx,
                Extra {
                    error: Some(t["no_banks"].into()),
                    q: Some(String::new()),
                    ..Extra::default()
                },
            )
            .await
        }
        Err(e) => step_failed(&state, &form, &e).await,
    }
}

async fn login(
    State(state): State<AppState>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let form = form_or_return!(state, headers, body);
    let t = texts(language_of(&state, form.ctx.flow).await);
    // The bank's own fields, each answered by the form field of the same (HTML-safe) id.
    // A form posted right after the bank was chosen starts the dialog with the bank first.
    let psu = psu_of(&state, &extensions, &headers);
    let fields = match state.finx.open_at_bank_as(form.ctx.flow, psu).await {
        Ok(flow) => match flow.asked() {
            Some(BankStep::Login { fields }) => fields.clone(),
            _ => return to_page(&form.ctx),
        },
        Err(e) => return step_failed(&state, &form, &e).await,
    };
    let values: Vec<(String, String)> = fields
        .iter()
        .map(|f| {
            let raw = form
                .get(&format!("f_{}", field_id(&f.id)))
                .unwrap_or_default();
            let value = if f.secret { raw } else { raw.trim() };
            (f.id.clone(), value.to_owned())
        })
        .collect();
    let psu = psu_of(&state, &extensions, &headers);
    match state
        .finx
        .submit_step_as(form.ctx.flow, StepAnswer::Login(values), &psu)
        .await
    {
        Ok(_) => to_page(&form.ctx),
        Err(CoreError::CredentialsInvalid { attempts_left }) => {
            let error = format!(
                "{} {} {attempts_left}",
                t["wrong_credentials"], t["attempts_left"]
            );
            again(&state, &form, error).await
        }
        Err(CoreError::Invalid { .. }) => again(&state, &form, t["wrong_credentials"]).await,
        Err(e) => step_failed(&state, &form, &e).await,
    }
}

async fn method(
    State(state): State<AppState>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let form = form_or_return!(state, headers, body);
    match state
        .finx
        .submit_step_as(
            form.ctx.flow,
            StepAnswer::Method(form.get("method").unwrap_or_default().to_owned()),
            &psu_of(&state, &extensions, &headers),
        )
        .await
    {
        Ok(_) => to_page(&form.ctx),
        Err(CoreError::Invalid { .. }) => {
            let t = texts(language_of(&state, form.ctx.flow).await);
            again(&state, &form, t["busy"]).await
        }
        Err(e) => step_failed(&state, &form, &e).await,
    }
}

/// The decoupled page's poll: asks the bank (no sooner than it asked to be asked), then
/// shows where the flow stands.
async fn poll(
    State(state): State<AppState>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return plain_error(StatusCode::BAD_REQUEST, "invalid_link");
    };
    let ctx = match open(
        &state,
        q.token.as_deref().unwrap_or_default(),
        q.iframe.as_deref() == Some("1"),
    ) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    if let Err(r) = browser_gate(&state, &headers, ctx.flow, false).await {
        return *r;
    }
    let psu = psu_of(&state, &extensions, &headers);
    match state.finx.poll_bank_as(ctx.flow, &psu).await {
        Ok(_) | Err(CoreError::FlowFailed(_) | CoreError::Flow(_) | CoreError::Busy) => {}
        Err(e) => return core_failure(&e),
    }
    // Back to the page itself, so a reload never polls out of turn.
    to_page(&ctx)
}

/// The return route's query: finX's `state` and `ok`, and, from a bank's OAuth server,
/// `code` (its own `state` repeats finX's, so the first `state` is read).
#[derive(Default)]
struct CallbackQuery {
    state: Option<String>,
    ok: Option<String>,
    code: Option<String>,
}

impl CallbackQuery {
    fn parse(raw: Option<&str>) -> Self {
        let mut q = Self::default();
        for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            let slot = match k.as_ref() {
                "state" => &mut q.state,
                "ok" => &mut q.ok,
                "code" => &mut q.code,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(v.into_owned());
            }
        }
        q
    }
}

/// The return from the bank's own pages: only for the flow and browser it was made for,
/// and only once. The bank is then asked how the authorisation ended.
async fn callback(
    State(state): State<AppState>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Response {
    let q = CallbackQuery::parse(raw.as_deref());
    let Ok((flow, nonce)) = finx_core::Finx::return_state(q.state.as_deref().unwrap_or_default())
    else {
        return plain_error(StatusCode::BAD_REQUEST, "invalid_return");
    };
    let stored = match state.finx.flow(flow).await {
        Ok(f) => f,
        Err(CoreError::NotFound(_)) => {
            return plain_error(StatusCode::BAD_REQUEST, "invalid_return");
        }
        Err(e) => return core_failure(&e),
    };
    // Only the return the flow awaits, before anything else: a forged, replayed or stale
    // state binds nothing and shows nothing.
    match state.finx.awaits_return(flow, &nonce).await {
        Ok(true) => {}
        Ok(false) => {
            let mut res = elsewhere_page(stored.params.language, "invalid_return");
            *res.status_mut() = StatusCode::BAD_REQUEST;
            return res;
        }
        Err(e) => return core_failure(&e),
    }
    // The browser that holds the flow, and only it: a return needs the cookie. A flow no
    // browser holds yet (the user went to the bank from the first page view, which set the
    // cookie but bound nothing) is bound here, to the browser that comes back with the
    // nonce only the bank's redirect carried.
    if browser_cookie(&headers).is_none() {
        return elsewhere_page(stored.params.language, "cookies_required");
    }
    if let Err(r) = browser_gate(&state, &headers, flow, false).await {
        return *r;
    }
    let token = link::sign(
        &state.config.link_key,
        flow,
        stored.created_at,
        stored.expires_at,
    );
    let ctx = Ctx {
        flow,
        csrf: csrf_for(&state, &token),
        token,
        framed: false,
    };
    match state
        .finx
        .return_from_bank_as(
            flow,
            &nonce,
            q.ok.as_deref() == Some("1"),
            q.code.as_deref(),
            &psu_of(&state, &extensions, &headers),
        )
        .await
    {
        Ok(_) | Err(CoreError::FlowFailed(_) | CoreError::Busy) => to_page(&ctx),
        // Cancelled at the bank: back to the customer, as a cancel in the widget would.
        Err(CoreError::Flow(FlowError::Finished("cancelled"))) => {
            match state.finx.failure_redirect(flow).await {
                Ok(url) => finish(&state, &ctx, &url).await,
                Err(_) => to_page(&ctx),
            }
        }
        Err(CoreError::Flow(FlowError::Finished(_) | FlowError::Expired)) => to_page(&ctx),
        Err(CoreError::Invalid { .. }) => {
            let mut res = elsewhere_page(stored.params.language, "invalid_return");
            *res.status_mut() = StatusCode::BAD_REQUEST;
            res
        }
        Err(e) => core_failure(&e),
    }
}

async fn tan(
    State(state): State<AppState>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let form = form_or_return!(state, headers, body);
    let t = texts(language_of(&state, form.ctx.flow).await);
    match state
        .finx
        .submit_step_as(
            form.ctx.flow,
            StepAnswer::Tan(form.get("tan").unwrap_or_default().trim().to_owned()),
            &psu_of(&state, &extensions, &headers),
        )
        .await
    {
        Ok(_) => to_page(&form.ctx),
        Err(CoreError::TanInvalid { attempts_left }) => {
            let error = format!("{} {} {attempts_left}", t["wrong_tan"], t["attempts_left"]);
            again(&state, &form, error).await
        }
        Err(CoreError::Invalid { .. }) => again(&state, &form, t["wrong_tan"]).await,
        Err(e) => step_failed(&state, &form, &e).await,
    }
}

async fn accounts(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let form = form_or_return!(state, headers, body);
    match state
        .finx
        .choose_accounts(form.ctx.flow, form.all("account"))
        .await
    {
        Ok(_) => to_page(&form.ctx),
        Err(CoreError::Flow(FlowError::InvalidSelection(_))) => {
            let t = texts(language_of(&state, form.ctx.flow).await);
            again(&state, &form, t["choose_one"]).await
        }
        Err(e) => step_failed(&state, &form, &e).await,
    }
}

async fn sync(
    State(state): State<AppState>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let form = form_or_return!(state, headers, body);
    match state.finx.start_completion(form.ctx.flow).await {
        Ok(claimed) => {
            // The fetch is the server's job, not this request's: a browser that goes away
            // (or a reload) changes nothing. The page polls until it has ended. A flow that
            // was already claimed is being fetched already.
            if claimed {
                spawn_completion(&state, form.ctx.flow, psu_of(&state, &extensions, &headers));
            }
            to_page(&form.ctx)
        }
        Err(e) => step_failed(&state, &form, &e).await,
    }
}

/// Runs a claimed flow's data fetch on the runtime, bounded by the completion budget. A
/// fetch that overruns is dropped; the stale-sync job then fails the flow.
fn spawn_completion(state: &AppState, flow: FlowId, psu: finx_ports::PsuContext) {
    let finx = state.finx.clone();
    let budget = state.config.completion_budget;
    state.tasks.spawn(async move {
        match tokio::time::timeout(budget, finx.run_completion_as(flow, &psu)).await {
            Ok(Ok(_)) => tracing::info!(%flow, "flow completed"),
            Ok(Err(e)) => tracing::info!(%flow, error = %e, "flow did not complete"),
            Err(_) => {
                tracing::warn!(%flow, "data fetch overran its budget; left to the stale-sync job");
            }
        }
    });
}

async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let form = form_or_return!(state, headers, body);
    let result = state.finx.cancel(form.ctx.flow).await;
    leave(&state, &form, result).await
}

async fn go_back(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let form = form_or_return!(state, headers, body);
    let result = state.finx.failure_redirect(form.ctx.flow).await;
    leave(&state, &form, result).await
}

/// Sends the user back to the customer with the step's redirect, or shows why not.
async fn leave(state: &AppState, form: &Form, result: Result<Url, CoreError>) -> Response {
    match result {
        Ok(url) => finish(state, &form.ctx, &url).await,
        Err(e) => step_failed(state, form, &e).await,
    }
}

/// The same step again, with `error` shown by its field.
async fn again(state: &AppState, form: &Form, error: impl Into<String>) -> Response {
    render(
        state,
        &form.ctx,
        Extra {
            error: Some(error.into()),
            ..Extra::default()
        },
    )
    .await
}

/// A step that did not go through: the page for where the flow stands now says why (a
/// failed or expired flow shows its message; a busy one the same step again).
async fn step_failed(state: &AppState, form: &Form, e: &CoreError) -> Response {
    match e {
        CoreError::FlowFailed(_) | CoreError::Flow(FlowError::Expired | FlowError::Finished(_)) => {
            to_page(&form.ctx)
        }
        CoreError::Flow(FlowError::AttemptsExhausted) => {
            let t = texts(language_of(state, form.ctx.flow).await);
            again(state, form, t["no_attempts"]).await
        }
        CoreError::Busy | CoreError::Flow(_) => {
            let t = texts(language_of(state, form.ctx.flow).await);
            again(state, form, t["busy"]).await
        }
        other => core_failure(other),
    }
}

/// Reasons a flow can fail, for tests of the texts.
#[cfg(test)]
const REASONS: [finx_domain::flow::FailureReason; 9] = [
    finx_domain::flow::FailureReason::ScaRejected,
    finx_domain::flow::FailureReason::ScaExpired,
    finx_domain::flow::FailureReason::LoginFailed,
    finx_domain::flow::FailureReason::AccountLocked,
    finx_domain::flow::FailureReason::BankUnavailable,
    finx_domain::flow::FailureReason::ScaFailed,
    finx_domain::flow::FailureReason::NoAccounts,
    finx_domain::flow::FailureReason::SyncFailed,
    finx_domain::flow::FailureReason::LinkExpired,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses_and_every_failure_has_a_text() {
        let env = templates();
        for name in [
            "banks.html",
            "login.html",
            "tan.html",
            "method.html",
            "redirect.html",
            "decoupled.html",
            "waiting.html",
            "accounts.html",
            "sync.html",
            "result.html",
            "message.html",
        ] {
            assert!(env.get_template(name).is_ok(), "{name}");
        }
        for lang in [Language::De, Language::En] {
            let t = texts(lang);
            for r in REASONS {
                assert!(
                    t.contains_key(format!("failed_{}", r.code()).as_str()),
                    "{lang:?} {}",
                    r.code()
                );
            }
        }
    }
}
