//! The sandbox bank over HTTP: a stateful Berlin Group NextGenPSD2 (XS2A 1.3.12) server for
//! account information, in front of [`SandboxBank`]. Each of its three banks answers under
//! `/sandbox/xs2a/<bank code>/v1/…` with the approach it has in process: 90094815 embedded
//! (PSU-ID and password at the start of the authorisation, then `authenticationMethodId`,
//! then `scaAuthenticationData`), 90094816 redirect (`scaRedirect` to the bank's own pages,
//! which send the user to `TPP-Redirect-URI` or `TPP-Nok-Redirect-URI`), 90094817 decoupled
//! (PSU-ID and password, then the TPP polls the SCA status while the user approves in the
//! bank app). Consents, authorisations and their status live in this server's memory.
//!
//! Consents follow the access the TPP asks for: a bank-offered consent (empty lists) and
//! `allPsd2` cover every account; `availableAccounts` only the account list; a dedicated
//! consent only the IBANs it names. Transactions come in pages of [`PAGE_SIZE`] with a
//! `_links.next`.
//!
//! Mount [`router`] (and the bank's pages, [`crate::web::router`]) at the root of an address;
//! [`crate::SandboxConfig::public_url`] must be that address, so the redirect pages are found.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use finx_domain::Date;
use finx_domain::bank::{AccountDetails, AccountType, BalanceStatus, TransactionDetails};
use finx_domain::flow::BankSession;
use finx_domain::ids::InstitutionId;
use finx_domain::sca::{BankStep, StepAnswer};
use finx_ports::{BankConnector, BankError, BankReply, ConsentRequest, Presence, ReturnTo};
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use crate::SandboxBank;
use crate::catalog::{Approach, Bank};

/// Transactions per page.
pub const PAGE_SIZE: usize = 100;

/// The most consents held; the oldest go first.
const CAPACITY: usize = 10_000;

/// What the consent may read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Access {
    /// Every account, with balances and transactions.
    All,
    /// The account list only.
    ListOnly,
    /// These IBANs only.
    Ibans(Vec<String>),
}

/// One consent and its one authorisation.
#[derive(Debug, Clone)]
struct Consent {
    bank: &'static Bank,
    institution: InstitutionId,
    /// The step-protocol session as it stands.
    session: BankSession,
    /// The step the bank asked last, while the authorisation runs.
    step: Option<BankStep>,
    /// XS2A `consentStatus`.
    status: &'static str,
    /// XS2A `scaStatus`.
    sca_status: &'static str,
    authorisation_id: Option<String>,
    access: Access,
    recurring: bool,
    valid_until: Date,
    frequency_per_day: u16,
    return_to: ReturnTo,
    created: usize,
    /// OAuth flavour: the SCA goes through the bank's OAuth server; data needs this token.
    oauth_token: Option<String>,
    /// The PSU identified at the start, while the password is still due.
    psu_id: Option<String>,
}

#[derive(Default)]
struct Consents {
    map: HashMap<String, Consent>,
    counter: usize,
    /// OAuth authorisation codes: code → (consent, PKCE challenge, redirect URI).
    codes: HashMap<String, (String, String, String)>,
}

/// The server's state.
struct Server {
    bank: Arc<SandboxBank>,
    consents: Mutex<Consents>,
    /// The OAuth flavour (`/sandbox/xs2a-oauth/`): the redirect bank authorises through its
    /// OAuth server (`scaOAuth`, authorization code with PKCE) instead of `scaRedirect`.
    oauth: bool,
}

impl Server {
    fn lock(&self) -> MutexGuard<'_, Consents> {
        self.consents.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Registry entries for the sandbox's banks as served by [`router`] at `base` (ids
/// `sandbox-<bank code>`, the bank-offered consent model), for a finX that reaches them
/// through its XS2A connector.
#[must_use]
pub fn registry_entries(base: &Url) -> Vec<finx_domain::registry::RegisteredBank> {
    crate::catalog::BANKS
        .iter()
        .filter_map(|b| {
            let approach = match b.approach {
                Approach::Embedded => "EMBEDDED",
                Approach::Redirect => "REDIRECT",
                Approach::Decoupled => "DECOUPLED",
            };
            finx_domain::registry::RegisteredBank::from_draft(finx_domain::registry::BankDraft {
                id: Some(format!("sandbox-{}", b.code)),
                name: b.name.to_owned(),
                bic: Some(b.bic.to_owned()),
                bank_code: Some(b.code.to_owned()),
                country: Some("DE".into()),
                url: base
                    .join(&format!("sandbox/xs2a/{}", b.code))
                    .ok()?
                    .to_string(),
                sca_approaches: vec![approach.into()],
                consent_model: Some("bank-offered".into()),
                quirks: Vec::new(),
            })
            .ok()
        })
        .collect()
}

/// The XS2A routes of the sandbox bank, under `/sandbox/xs2a/{bank}/v1/`.
pub fn router(bank: Arc<SandboxBank>) -> Router {
    router_with(bank, None)
}

/// [`router`], demanding signed requests (`Digest`, `Signature`,
/// `TPP-Signature-Certificate`) whose QSealC the authority `signature_authority_der` (DER)
/// issued, as banks that require request signing do.
pub fn router_with(bank: Arc<SandboxBank>, signature_authority_der: Option<Vec<u8>>) -> Router {
    let routes = routes(bank.clone(), "/sandbox/xs2a", false).merge(routes(
        bank,
        "/sandbox/xs2a-oauth",
        true,
    ));
    match signature_authority_der {
        Some(der) => routes.layer(axum::middleware::from_fn_with_state(
            Arc::new(der),
            verify_signature,
        )),
        None => routes,
    }
}

/// Refuses requests that are not signed by a QSealC of the authority.
async fn verify_signature(
    State(authority): State<Arc<Vec<u8>>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let rid = header_of(&parts.headers, "x-request-id")
        .unwrap_or_default()
        .to_owned();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return error(
            StatusCode::BAD_REQUEST,
            "FORMAT_ERROR",
            "the body is too large",
            &rid,
        );
    };
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    match crate::signature::check(header, &bytes, &authority) {
        Ok(()) => {
            next.run(axum::extract::Request::from_parts(
                parts,
                axum::body::Body::from(bytes),
            ))
            .await
        }
        Err(refusal) => {
            let status = if refusal == crate::signature::Refusal::Missing {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::UNAUTHORIZED
            };
            error(
                status,
                refusal.code(),
                "the request's signature is not acceptable",
                &rid,
            )
        }
    }
}

/// The XS2A routes under `prefix`; in the OAuth flavour also the OAuth server's.
fn routes(bank: Arc<SandboxBank>, prefix: &str, oauth: bool) -> Router {
    let state = Arc::new(Server {
        bank,
        consents: Mutex::new(Consents::default()),
        oauth,
    });
    let p = |path: &str| format!("{prefix}/{{bank}}{path}");
    let mut router = Router::new()
        .route(&p("/v1/consents"), post(create_consent))
        .route(
            &p("/v1/consents/{consent}"),
            get(get_consent).delete(delete_consent),
        )
        .route(&p("/v1/consents/{consent}/status"), get(consent_status))
        .route(
            &p("/v1/consents/{consent}/authorisations"),
            post(start_authorisation).get(authorisation_ids),
        )
        .route(
            &p("/v1/consents/{consent}/authorisations/{authorisation}"),
            get(sca_status).put(update_authorisation),
        )
        .route(&p("/v1/accounts"), get(accounts))
        .route(&p("/v1/accounts/{account}"), get(account))
        .route(&p("/v1/accounts/{account}/balances"), get(balances))
        .route(&p("/v1/accounts/{account}/transactions"), get(transactions));
    if oauth {
        router = router
            .route(
                &p("/.well-known/oauth-authorization-server"),
                get(oauth_metadata),
            )
            .route(&p("/authorize"), get(oauth_authorize))
            .route(&p("/token"), post(oauth_token));
    }
    router.with_state(state)
}

/// An XS2A error: status and `tppMessages`.
fn error(status: StatusCode, code: &str, text: &str, request_id: &str) -> Response {
    let body = json!({ "tppMessages": [{ "category": "ERROR", "code": code, "text": text }] });
    with_request_id((status, Json(body)).into_response(), request_id)
}

fn with_request_id(mut res: Response, request_id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        res.headers_mut().insert("x-request-id", v);
    }
    res
}

fn header_of<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The request id the TPP sent: required, a UUID.
fn request_id(headers: &HeaderMap) -> Result<String, Box<Response>> {
    match header_of(headers, "x-request-id") {
        Some(id) if uuid::Uuid::parse_str(id).is_ok() => Ok(id.to_owned()),
        _ => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "FORMAT_ERROR",
            "X-Request-ID is missing or not a UUID",
            "",
        ))),
    }
}

fn bank_of(code: &str) -> Option<(&'static Bank, InstitutionId)> {
    let bank = Bank::by_code(code)?;
    let id = bank.institution_id().ok()?;
    Some((bank, id))
}

fn random_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // Without randomness ids would collide; a fixed one makes that visible at once.
        return "00000000000000000000000000000000".into();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The prefix of the links the server gives: relative to the bank's XS2A base URL, as
/// `/v1/…`, so they work wherever the base is (behind a proxy, say).
fn base(_code: &str) -> String {
    "/v1".to_owned()
}

fn href(path: String) -> Value {
    json!({ "href": path })
}

macro_rules! try_or {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return *r,
        }
    };
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConsentBody {
    access: Value,
    recurring_indicator: bool,
    valid_until: String,
    frequency_per_day: u16,
    #[serde(default)]
    combined_service_indicator: bool,
}

fn parse_access(access: &Value) -> Option<Access> {
    let obj = access.as_object()?;
    if obj.get("allPsd2").and_then(Value::as_str) == Some("allAccounts") {
        return Some(Access::All);
    }
    if obj.get("availableAccounts").and_then(Value::as_str) == Some("allAccounts")
        || obj
            .get("availableAccountsWithBalance")
            .and_then(Value::as_str)
            == Some("allAccounts")
    {
        return Some(Access::ListOnly);
    }
    let list = |k: &str| obj.get(k).and_then(Value::as_array);
    let (a, b, t) = (list("accounts"), list("balances"), list("transactions"));
    if a.is_none() && b.is_none() && t.is_none() {
        return None;
    }
    let mut ibans: Vec<String> = [a, b, t]
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|r| r.get("iban").and_then(Value::as_str).map(str::to_owned))
        .collect();
    ibans.sort();
    ibans.dedup();
    if ibans.is_empty() {
        Some(Access::All)
    } else {
        Some(Access::Ibans(ibans))
    }
}

async fn create_consent(
    State(s): State<Arc<Server>>,
    Path(code): Path<String>,
    headers: HeaderMap,
    body: Result<Json<ConsentBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let rid = try_or!(request_id(&headers));
    let Some((bank, institution)) = bank_of(&code) else {
        return error(
            StatusCode::NOT_FOUND,
            "RESOURCE_UNKNOWN",
            "no such bank",
            &rid,
        );
    };
    let Ok(Json(body)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "FORMAT_ERROR",
            "the consent body is malformed",
            &rid,
        );
    };
    if header_of(&headers, "psu-ip-address").is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "FORMAT_ERROR",
            "PSU-IP-Address is required",
            &rid,
        );
    }
    let Some(access) = parse_access(&body.access) else {
        return error(
            StatusCode::BAD_REQUEST,
            "FORMAT_ERROR",
            "access is malformed",
            &rid,
        );
    };
    let Ok(valid_until) = chrono::NaiveDate::parse_from_str(&body.valid_until, "%Y-%m-%d") else {
        return error(
            StatusCode::BAD_REQUEST,
            "FORMAT_ERROR",
            "validUntil is not a date",
            &rid,
        );
    };
    if body.frequency_per_day == 0 || (!body.recurring_indicator && body.frequency_per_day != 1) {
        return error(
            StatusCode::BAD_REQUEST,
            "FORMAT_ERROR",
            "frequencyPerDay must be 1 for a one-off consent, and at least 1",
            &rid,
        );
    }
    let _ = body.combined_service_indicator;
    let redirect = header_of(&headers, "tpp-redirect-uri").and_then(|u| Url::parse(u).ok());
    let nok = header_of(&headers, "tpp-nok-redirect-uri").and_then(|u| Url::parse(u).ok());
    if bank.approach == Approach::Redirect && redirect.is_none() && !s.oauth {
        return error(
            StatusCode::BAD_REQUEST,
            "FORMAT_ERROR",
            "TPP-Redirect-URI is required by this bank",
            &rid,
        );
    }
    let fallback =
        Url::parse("http://127.0.0.1/").unwrap_or_else(|_| unreachable!("a valid literal"));
    let ok = redirect.unwrap_or(fallback);
    let return_to = ReturnTo {
        nok: nok.unwrap_or_else(|| ok.clone()),
        ok,
    };
    let ibans = match &access {
        Access::Ibans(i) => i.clone(),
        _ => Vec::new(),
    };
    let request = ConsentRequest {
        psu: finx_ports::PsuContext::default(),
        ibans,
        recurring: body.recurring_indicator,
        valid_until,
        frequency_per_day: body.frequency_per_day,
    };
    let reply = match s.bank.begin(&institution, &request, &return_to).await {
        Ok(BankReply::Next { session, step }) => (session, step),
        Ok(BankReply::Done { .. }) | Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "SERVICE_INVALID",
                "cannot start",
                &rid,
            );
        }
    };
    let id = random_id();
    let (session, step) = reply;
    let base = base(&code);
    let mut links = serde_json::Map::new();
    links.insert("self".into(), href(format!("{base}/consents/{id}")));
    links.insert(
        "status".into(),
        href(format!("{base}/consents/{id}/status")),
    );
    let mut authorisation_id = None;
    let approach = match &step {
        BankStep::Redirect { .. } if s.oauth => {
            // The bank's OAuth server authorises; its pages come at `authorize`.
            let server = s
                .bank
                .config
                .public_url
                .join(&format!(
                    "sandbox/xs2a-oauth/{code}/.well-known/oauth-authorization-server"
                ))
                .map(|u| u.to_string())
                .unwrap_or_default();
            links.insert("scaOAuth".into(), href(server));
            "REDIRECT"
        }
        BankStep::Redirect { url } => {
            // The authorisation starts with the consent (implicit start).
            let aid = random_id();
            links.insert("scaRedirect".into(), href(url.to_string()));
            links.insert(
                "scaStatus".into(),
                href(format!("{base}/consents/{id}/authorisations/{aid}")),
            );
            authorisation_id = Some(aid);
            "REDIRECT"
        }
        _ => {
            // The decoupled bank identifies the PSU first and asks for the password after;
            // the embedded one takes both at the start.
            let start = if bank.approach == Approach::Decoupled {
                "startAuthorisationWithPsuIdentification"
            } else {
                "startAuthorisationWithPsuAuthentication"
            };
            links.insert(
                start.into(),
                href(format!("{base}/consents/{id}/authorisations")),
            );
            if bank.approach == Approach::Decoupled {
                "DECOUPLED"
            } else {
                "EMBEDDED"
            }
        }
    };
    let consent = Consent {
        bank,
        institution,
        session,
        step: Some(step),
        status: "received",
        sca_status: if authorisation_id.is_some() {
            "started"
        } else {
            "received"
        },
        authorisation_id,
        access,
        recurring: body.recurring_indicator,
        valid_until,
        frequency_per_day: body.frequency_per_day,
        return_to,
        created: 0,
        oauth_token: None,
        psu_id: None,
    };
    {
        let mut all = s.lock();
        all.counter += 1;
        let n = all.counter;
        if all.map.len() >= CAPACITY {
            let oldest = all
                .map
                .iter()
                .min_by_key(|(_, c)| c.created)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                all.map.remove(&k);
            }
        }
        all.map.insert(
            id.clone(),
            Consent {
                created: n,
                ..consent
            },
        );
    }
    let body = json!({ "consentStatus": "received", "consentId": id, "_links": links });
    let mut res = (StatusCode::CREATED, Json(body)).into_response();
    // No `Location`: the document wants an absolute URL there, and `_links.self` says it.
    res.headers_mut()
        .insert("aspsp-sca-approach", HeaderValue::from_static(approach));
    with_request_id(res, &rid)
}

/// The consent `id` of bank `code`, or the error response.
fn consent_of(s: &Server, code: &str, id: &str, rid: &str) -> Result<Consent, Box<Response>> {
    match s.lock().map.get(id) {
        Some(c) if c.bank.code == code => Ok(c.clone()),
        _ => Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "CONSENT_UNKNOWN",
            "no such consent",
            rid,
        ))),
    }
}

/// In the OAuth flavour, a consent authorised through the OAuth server is read only with
/// its token.
fn bearer_ok(c: &Consent, headers: &HeaderMap) -> bool {
    match &c.oauth_token {
        None => true,
        Some(t) => header_of(headers, "authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .is_some_and(|given| subtle_eq(given.as_bytes(), t.as_bytes())),
    }
}

/// Constant-time equality of two tokens.
fn subtle_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest as _, Sha256};
    // Hashing first makes the comparison independent of where the inputs differ.
    let (x, y) = (Sha256::digest(a), Sha256::digest(b));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

fn save(s: &Server, id: &str, consent: Consent) {
    s.lock().map.insert(id.to_owned(), consent);
}

async fn get_consent(
    State(s): State<Arc<Server>>,
    Path((code, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let rid = try_or!(request_id(&headers));
    let c = try_or!(consent_of(&s, &code, &id, &rid));
    if !bearer_ok(&c, &headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "TOKEN_INVALID",
            "the OAuth token is missing or wrong",
            &rid,
        );
    }
    let access = match &c.access {
        Access::All if c.status == "valid" => {
            // The bank lets the user choose at the bank; the sandbox grants every account.
            let ibans: Vec<Value> = s
                .bank
                .accounts(&c.session, &Presence::Unattended)
                .await
                .unwrap_or_default()
                .into_iter()
                .filter_map(|a| a.iban.map(|i| json!({ "iban": i.to_string() })))
                .collect();
            json!({ "accounts": ibans, "balances": ibans, "transactions": ibans })
        }
        Access::All => json!({ "accounts": [], "balances": [], "transactions": [] }),
        Access::ListOnly => json!({ "availableAccounts": "allAccounts" }),
        Access::Ibans(ibans) => {
            let refs: Vec<Value> = ibans.iter().map(|i| json!({ "iban": i })).collect();
            json!({ "accounts": refs, "balances": refs, "transactions": refs })
        }
    };
    let body = json!({
        "access": access,
        "recurringIndicator": c.recurring,
        "validUntil": c.valid_until.format("%Y-%m-%d").to_string(),
        "frequencyPerDay": c.frequency_per_day,
        "lastActionDate": s.bank.today().format("%Y-%m-%d").to_string(),
        "consentStatus": c.status,
    });
    with_request_id(Json(body).into_response(), &rid)
}

async fn delete_consent(
    State(s): State<Arc<Server>>,
    Path((code, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let rid = try_or!(request_id(&headers));
    let mut c = try_or!(consent_of(&s, &code, &id, &rid));
    c.status = "terminatedByTpp";
    save(&s, &id, c);
    with_request_id(StatusCode::NO_CONTENT.into_response(), &rid)
}

async fn consent_status(
    State(s): State<Arc<Server>>,
    Path((code, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let rid = try_or!(request_id(&headers));
    let c = try_or!(consent_of(&s, &code, &id, &rid));
    with_request_id(
        Json(json!({ "consentStatus": c.status })).into_response(),
        &rid,
    )
}

async fn authorisation_ids(
    State(s): State<Arc<Server>>,
    Path((code, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let rid = try_or!(request_id(&headers));
    let c = try_or!(consent_of(&s, &code, &id, &rid));
    let ids: Vec<String> = c.authorisation_id.into_iter().collect();
    with_request_id(
        Json(json!({ "authorisationIds": ids })).into_response(),
        &rid,
    )
}

/// The authorisation's JSON for the step the bank asks now, or for its end.
fn sca_body(code: &str, consent: &str, aid: &str, c: &Consent, prompt_only: bool) -> Value {
    let base = base(code);
    let here = format!("{base}/consents/{consent}/authorisations/{aid}");
    let mut body = serde_json::Map::new();
    body.insert("scaStatus".into(), json!(c.sca_status));
    body.insert("authorisationId".into(), json!(aid));
    let mut links = serde_json::Map::new();
    links.insert("scaStatus".into(), href(here.clone()));
    match &c.step {
        Some(BankStep::ChooseMethod { methods }) if !prompt_only => {
            let list: Vec<Value> = methods
                .iter()
                .map(|m| {
                    json!({
                        "authenticationType": m.kind.as_xs2a(),
                        "authenticationMethodId": m.id,
                        "name": m.name,
                    })
                })
                .collect();
            body.insert("scaMethods".into(), json!(list));
            links.insert("selectAuthenticationMethod".into(), href(here.clone()));
        }
        Some(BankStep::Tan { challenge }) if !prompt_only => {
            let mut ch = serde_json::Map::new();
            if let Some(png) = &challenge.image_png {
                ch.insert("image".into(), json!(STANDARD.encode(png)));
            }
            if let Some(f) = &challenge.flicker {
                ch.insert("data".into(), json!([f]));
            }
            if let Some(n) = challenge.max_length {
                ch.insert("otpMaxLength".into(), json!(n));
            }
            ch.insert("otpFormat".into(), json!("integer"));
            if let Some(p) = &challenge.prompt {
                ch.insert("additionalInformation".into(), json!(p));
            }
            body.insert("challengeData".into(), Value::Object(ch));
            let kind = match challenge.method.as_str() {
                "photoTAN" => "PHOTO_OTP",
                "pushTAN" => "PUSH_OTP",
                _ => "CHIP_OTP",
            };
            body.insert(
                "chosenScaMethod".into(),
                json!({
                    "authenticationType": kind,
                    "authenticationMethodId": challenge.method,
                    "name": challenge.method,
                }),
            );
            links.insert("authoriseTransaction".into(), href(here.clone()));
        }
        Some(BankStep::Decoupled {
            prompt: Some(p), ..
        }) => {
            body.insert("psuMessage".into(), json!(p));
        }
        _ => {}
    }
    body.insert("_links".into(), Value::Object(links));
    Value::Object(body)
}

/// An XS2A error for a step-protocol failure.
fn bank_error(e: &BankError, rid: &str) -> Response {
    match e {
        BankError::InvalidCredentials | BankError::InvalidTan => error(
            StatusCode::UNAUTHORIZED,
            "PSU_CREDENTIALS_INVALID",
            "the PSU credentials are wrong",
            rid,
        ),
        BankError::Locked => error(
            StatusCode::UNAUTHORIZED,
            "SERVICE_BLOCKED",
            "the PSU's access is blocked",
            rid,
        ),
        BankError::Unavailable(_) => error(
            StatusCode::BAD_REQUEST,
            "SERVICE_INVALID",
            "the service is unavailable (sandbox scenario)",
            rid,
        ),
        BankError::RateLimited { retry_after } => {
            let mut res = error(
                StatusCode::TOO_MANY_REQUESTS,
                "ACCESS_EXCEEDED",
                "the consent's unattended accesses are spent for now",
                rid,
            );
            if let Some(wait) = retry_after {
                res.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from(wait.as_secs()),
                );
            }
            res
        }
        BankError::ConsentRevoked => error(
            StatusCode::UNAUTHORIZED,
            "CONSENT_INVALID",
            "the consent was revoked by the PSU",
            rid,
        ),
        _ => error(
            StatusCode::BAD_REQUEST,
            "FORMAT_ERROR",
            "the answer does not fit",
            rid,
        ),
    }
}

/// Applies the bank's reply to the consent.
fn apply(c: &mut Consent, reply: &BankReply) {
    match reply {
        BankReply::Next { session, step } => {
            c.session = session.clone();
            c.sca_status = match step {
                BankStep::ChooseMethod { .. } => "psuAuthenticated",
                BankStep::Tan { .. } => "scaMethodSelected",
                _ => "started",
            };
            c.step = Some(step.clone());
        }
        BankReply::Done { session, .. } => {
            c.session = session.clone();
            c.sca_status = "finalised";
            c.status = "valid";
            c.step = None;
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct AuthBody {
    psu_data: Option<PsuData>,
    authentication_method_id: Option<String>,
    sca_authentication_data: Option<String>,
}

#[derive(Deserialize)]
struct PsuData {
    password: Option<String>,
}

async fn start_authorisation(
    State(s): State<Arc<Server>>,
    Path((code, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let rid = try_or!(request_id(&headers));
    let mut c = try_or!(consent_of(&s, &code, &id, &rid));
    if c.authorisation_id.is_some() || c.status != "received" {
        return error(
            StatusCode::CONFLICT,
            "STATUS_INVALID",
            "the authorisation has started",
            &rid,
        );
    }
    let body: AuthBody = body
        .and_then(|Json(v)| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let Some(user) = header_of(&headers, "psu-id") else {
        return error(
            StatusCode::BAD_REQUEST,
            "FORMAT_ERROR",
            "PSU-ID is required",
            &rid,
        );
    };
    let Some(password) = body.psu_data.and_then(|p| p.password) else {
        // Identified; the password is asked for next (updatePsuAuthentication).
        let aid = random_id();
        c.authorisation_id = Some(aid.clone());
        c.psu_id = Some(user.to_owned());
        c.sca_status = "psuIdentified";
        save(&s, &id, c);
        let here = format!("{}/consents/{id}/authorisations/{aid}", base(&code));
        let body = json!({
            "scaStatus": "psuIdentified",
            "authorisationId": aid,
            "_links": { "updatePsuAuthentication": href(here.clone()), "scaStatus": href(here) },
        });
        let mut res = (StatusCode::CREATED, Json(body)).into_response();
        res.headers_mut()
            .insert("aspsp-sca-approach", start_approach(&code));
        return with_request_id(res, &rid);
    };
    let answer = StepAnswer::Login(vec![
        ("user".into(), user.to_owned()),
        ("pin".into(), password),
    ]);
    let reply = match answer_bank(&s, &id, &mut c, &answer, &rid).await {
        Ok(r) => r,
        Err(res) => return *res,
    };
    let aid = random_id();
    c.authorisation_id = Some(aid.clone());
    apply(&mut c, &reply);
    let body = sca_body(&code, &id, &aid, &c, false);
    save(&s, &id, c);
    let mut res = (StatusCode::CREATED, Json(body)).into_response();
    res.headers_mut()
        .insert("aspsp-sca-approach", start_approach(&code));
    with_request_id(res, &rid)
}

/// The `ASPSP-SCA-Approach` of an authorisation started with the PSU's credentials.
fn start_approach(code: &str) -> HeaderValue {
    let decoupled = Bank::by_code(code).is_some_and(|b| b.approach == Approach::Decoupled);
    HeaderValue::from_static(if decoupled { "DECOUPLED" } else { "EMBEDDED" })
}

/// Gives the bank the PSU's answer for consent `id`. A lock or an unavailable bank ends the
/// authorisation (failed, the consent rejected); any refusal is the XS2A error to send.
async fn answer_bank(
    s: &Server,
    id: &str,
    c: &mut Consent,
    answer: &StepAnswer,
    rid: &str,
) -> Result<BankReply, Box<Response>> {
    match s
        .bank
        .answer(&c.institution, &c.session, answer, &c.return_to)
        .await
    {
        Ok(r) => Ok(r),
        Err(e) => {
            if matches!(e, BankError::Locked | BankError::Unavailable(_)) {
                c.sca_status = "failed";
                c.status = "rejected";
                save(s, id, c.clone());
            }
            Err(Box::new(bank_error(&e, rid)))
        }
    }
}

async fn update_authorisation(
    State(s): State<Arc<Server>>,
    Path((code, id, aid)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let rid = try_or!(request_id(&headers));
    let mut c = try_or!(consent_of(&s, &code, &id, &rid));
    if c.authorisation_id.as_deref() != Some(aid.as_str()) {
        return error(
            StatusCode::FORBIDDEN,
            "RESOURCE_UNKNOWN",
            "no such authorisation",
            &rid,
        );
    }
    let body: AuthBody = body
        .and_then(|Json(v)| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let password = body.psu_data.as_ref().and_then(|p| p.password.clone());
    let answer = match (
        &c.step,
        body.authentication_method_id,
        body.sca_authentication_data,
    ) {
        (Some(BankStep::Login { .. }), _, _) if c.sca_status == "psuIdentified" => {
            let (Some(user), Some(password)) = (c.psu_id.clone(), password) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "FORMAT_ERROR",
                    "psuData.password is required",
                    &rid,
                );
            };
            StepAnswer::Login(vec![("user".into(), user), ("pin".into(), password)])
        }
        (Some(BankStep::ChooseMethod { .. }), Some(m), _) => StepAnswer::Method(m),
        (Some(BankStep::Tan { .. }), _, Some(tan)) => StepAnswer::Tan(tan),
        _ => {
            return error(
                StatusCode::CONFLICT,
                "STATUS_INVALID",
                "the authorisation is not at that step",
                &rid,
            );
        }
    };
    let reply = match answer_bank(&s, &id, &mut c, &answer, &rid).await {
        Ok(r) => r,
        Err(res) => return *res,
    };
    c.psu_id = None;
    apply(&mut c, &reply);
    let body = sca_body(&code, &id, &aid, &c, false);
    save(&s, &id, c);
    with_request_id(Json(body).into_response(), &rid)
}

/// The SCA status; for redirect and decoupled authorisations the bank is asked how the user
/// decided (on its pages, in its app).
async fn sca_status(
    State(s): State<Arc<Server>>,
    Path((code, id, aid)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let rid = try_or!(request_id(&headers));
    let mut c = try_or!(consent_of(&s, &code, &id, &rid));
    if c.authorisation_id.as_deref() != Some(aid.as_str()) {
        return error(
            StatusCode::FORBIDDEN,
            "RESOURCE_UNKNOWN",
            "no such authorisation",
            &rid,
        );
    }
    let answer = match &c.step {
        Some(BankStep::Redirect { .. }) => Some(StepAnswer::Returned { ok: true }),
        Some(BankStep::Decoupled { .. }) => Some(StepAnswer::Poll),
        _ => None,
    };
    if let Some(answer) = answer {
        match s
            .bank
            .answer(&c.institution, &c.session, &answer, &c.return_to)
            .await
        {
            Ok(BankReply::Next { session, .. })
                if matches!(answer, StepAnswer::Returned { .. }) =>
            {
                // Still at the bank's pages.
                c.session = session;
            }
            Ok(reply) => apply(&mut c, &reply),
            Err(_) => {
                c.sca_status = "failed";
                c.status = "rejected";
                c.step = None;
            }
        }
        save(&s, &id, c.clone());
    }
    with_request_id(
        Json(json!({ "scaStatus": c.sca_status })).into_response(),
        &rid,
    )
}

/// The consent named by `Consent-ID`, valid, for reading.
fn reading_consent(
    s: &Server,
    code: &str,
    headers: &HeaderMap,
    rid: &str,
) -> Result<Consent, Box<Response>> {
    let Some(id) = header_of(headers, "consent-id") else {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "FORMAT_ERROR",
            "Consent-ID is required",
            rid,
        )));
    };
    let c = consent_of(s, code, id, rid).map_err(|_| {
        Box::new(error(
            StatusCode::UNAUTHORIZED,
            "CONSENT_UNKNOWN",
            "no such consent",
            rid,
        ))
    })?;
    if !bearer_ok(&c, headers) {
        return Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "TOKEN_INVALID",
            "the OAuth token is missing or wrong",
            rid,
        )));
    }
    match c.status {
        "valid" if c.valid_until >= s.bank.today() => Ok(c),
        "valid" => Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "CONSENT_EXPIRED",
            "the consent has expired",
            rid,
        ))),
        _ => Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "CONSENT_INVALID",
            "the consent is not valid",
            rid,
        ))),
    }
}

fn cash_account_type(t: AccountType) -> &'static str {
    match t {
        AccountType::Savings => "SVGS",
        AccountType::CreditCard => "CARD",
        AccountType::Loan => "LOAN",
        _ => "CACC",
    }
}

fn account_json(code: &str, a: &AccountDetails) -> Value {
    let base = base(code);
    let mut o = serde_json::Map::new();
    o.insert("resourceId".into(), json!(a.external_id));
    if let Some(iban) = &a.iban {
        o.insert("iban".into(), json!(iban.to_string()));
    } else if let Some(n) = &a.account_number {
        o.insert("bban".into(), json!(n));
    }
    o.insert("currency".into(), json!(a.currency.as_str()));
    o.insert("name".into(), json!(a.name));
    o.insert("product".into(), json!(a.name));
    o.insert(
        "cashAccountType".into(),
        json!(cash_account_type(a.account_type)),
    );
    o.insert("status".into(), json!("enabled"));
    if let Some(bic) = &a.bic {
        o.insert("bic".into(), json!(bic));
    }
    o.insert("ownerName".into(), json!(a.owner));
    if let Some(l4) = &a.card_last4 {
        o.insert("maskedPan".into(), json!(masked_pan(l4)));
        o.insert("details".into(), json!(format!("Kreditkarte ****{l4}")));
    }
    o.insert(
        "_links".into(),
        json!({
            "balances": href(format!("{base}/accounts/{}/balances", a.external_id)),
            "transactions": href(format!("{base}/accounts/{}/transactions", a.external_id)),
        }),
    );
    Value::Object(o)
}

/// The accounts the consent covers.
async fn covered(s: &Server, c: &Consent) -> Result<Vec<AccountDetails>, BankError> {
    let all = s.bank.accounts(&c.session, &Presence::Unattended).await?;
    Ok(match &c.access {
        Access::Ibans(ibans) => all
            .into_iter()
            .filter(|a| {
                a.iban
                    .as_ref()
                    .is_some_and(|i| ibans.contains(&i.to_string()))
            })
            .collect(),
        _ => all,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccountsQuery {
    with_balance: Option<bool>,
}

async fn accounts(
    State(s): State<Arc<Server>>,
    Path(code): Path<String>,
    headers: HeaderMap,
    query: Result<Query<AccountsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let rid = try_or!(request_id(&headers));
    let c = try_or!(reading_consent(&s, &code, &headers, &rid));
    let with_balance = query
        .ok()
        .and_then(|Query(q)| q.with_balance)
        .unwrap_or(false);
    let list = match covered(&s, &c).await {
        Ok(l) => l,
        Err(e) => return bank_error(&e, &rid),
    };
    let mut out = Vec::new();
    for a in &list {
        let mut v = account_json(&code, a);
        if with_balance
            && c.access != Access::ListOnly
            && let Ok(b) = s
                .bank
                .balances(&c.session, &a.external_id, &Presence::Unattended)
                .await
            && let Some(o) = v.as_object_mut()
        {
            o.insert(
                "balances".into(),
                json!(b.iter().map(balance_json).collect::<Vec<_>>()),
            );
        }
        out.push(v);
    }
    with_request_id(Json(json!({ "accounts": out })).into_response(), &rid)
}

/// The consent's account `account`, if it covers it and may read more than the list.
async fn readable(
    s: &Server,
    c: &Consent,
    account: &str,
    rid: &str,
) -> Result<AccountDetails, Box<Response>> {
    if c.access == Access::ListOnly {
        return Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "CONSENT_INVALID",
            "the consent covers the account list only",
            rid,
        )));
    }
    let list = covered(s, c)
        .await
        .map_err(|e| Box::new(bank_error(&e, rid)))?;
    list.into_iter()
        .find(|a| a.external_id == account)
        .ok_or_else(|| {
            Box::new(error(
                StatusCode::NOT_FOUND,
                "RESOURCE_UNKNOWN",
                "no such account",
                rid,
            ))
        })
}

async fn account(
    State(s): State<Arc<Server>>,
    Path((code, account)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let rid = try_or!(request_id(&headers));
    let c = try_or!(reading_consent(&s, &code, &headers, &rid));
    let a = try_or!(readable(&s, &c, &account, &rid).await);
    with_request_id(
        Json(json!({ "account": account_json(&code, &a) })).into_response(),
        &rid,
    )
}

/// A card number as banks show it: only the last four digits.
fn masked_pan(last4: &str) -> String {
    format!("************{last4}")
}

/// The account reference of an account: its IBAN, else its BBAN, else its masked card
/// number.
fn reference_json(a: &AccountDetails) -> Value {
    if let Some(i) = &a.iban {
        json!({ "iban": i.to_string() })
    } else if let Some(n) = &a.account_number {
        json!({ "bban": n })
    } else {
        json!({ "maskedPan": masked_pan(a.card_last4.as_deref().unwrap_or("0000")) })
    }
}

fn amount_json(m: &finx_domain::money::Money) -> Value {
    json!({ "currency": m.currency().as_str(), "amount": m.amount().normalize().to_string() })
}

fn balance_json(b: &finx_domain::bank::Balance) -> Value {
    let kind = match b.status {
        BalanceStatus::Booked => "closingBooked",
        BalanceStatus::Available => "interimAvailable",
    };
    json!({
        "balanceAmount": amount_json(&b.amount),
        "balanceType": kind,
        "referenceDate": b.date.format("%Y-%m-%d").to_string(),
    })
}

async fn balances(
    State(s): State<Arc<Server>>,
    Path((code, account)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let rid = try_or!(request_id(&headers));
    let c = try_or!(reading_consent(&s, &code, &headers, &rid));
    let a = try_or!(readable(&s, &c, &account, &rid).await);
    let list = match s
        .bank
        .balances(&c.session, &account, &Presence::Unattended)
        .await
    {
        Ok(l) => l,
        Err(e) => return bank_error(&e, &rid),
    };
    let body = json!({ "account": reference_json(&a), "balances": list.iter().map(balance_json).collect::<Vec<_>>() });
    with_request_id(Json(body).into_response(), &rid)
}

/// The ISO 20022 bank transaction code of a finX type; `credit` tells received from sent.
fn transaction_json(t: &TransactionDetails) -> Value {
    let credit = t.amount.amount().is_sign_positive();
    let mut o = serde_json::Map::new();
    o.insert("transactionId".into(), json!(t.external_id));
    if let Some(e) = &t.end_to_end_reference {
        o.insert("endToEndId".into(), json!(e));
    }
    if let Some(m) = &t.mandate_reference {
        o.insert("mandateId".into(), json!(m));
    }
    if let Some(c) = &t.creditor_id {
        o.insert("creditorId".into(), json!(c));
    }
    o.insert(
        "bookingDate".into(),
        json!(t.booked_on.format("%Y-%m-%d").to_string()),
    );
    o.insert(
        "valueDate".into(),
        json!(t.value_date.format("%Y-%m-%d").to_string()),
    );
    o.insert("transactionAmount".into(), amount_json(&t.amount));
    let party = &t.counterparty;
    let (name_key, account_key, agent_key) = if credit {
        ("debtorName", "debtorAccount", "debtorAgent")
    } else {
        ("creditorName", "creditorAccount", "creditorAgent")
    };
    if let Some(n) = &party.name {
        o.insert(name_key.into(), json!(n));
    }
    if let Some(i) = &party.iban {
        o.insert(account_key.into(), json!({ "iban": i.to_string() }));
    }
    if let Some(b) = &party.bic {
        o.insert(agent_key.into(), json!(b));
    }
    if let Some(p) = &t.purpose {
        o.insert(
            "remittanceInformationUnstructured".into(),
            json!(p.chars().take(140).collect::<String>()),
        );
    }
    if let Some(p) = &t.sepa_purpose_code {
        o.insert("purposeCode".into(), json!(p));
    }
    if let Some(code) = &t.bank_transaction_code {
        o.insert("bankTransactionCode".into(), json!(code));
    }
    if let Some(b) = &t.booking_text {
        o.insert("proprietaryBankTransactionCode".into(), json!(b));
    }
    Value::Object(o)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TransactionsQuery {
    date_from: Option<String>,
    date_to: Option<String>,
    booking_status: Option<String>,
    page: Option<usize>,
}

async fn transactions(
    State(s): State<Arc<Server>>,
    Path((code, account)): Path<(String, String)>,
    headers: HeaderMap,
    query: Result<Query<TransactionsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let rid = try_or!(request_id(&headers));
    let Ok(Query(q)) = query else {
        return error(
            StatusCode::BAD_REQUEST,
            "FORMAT_ERROR",
            "the query is malformed",
            &rid,
        );
    };
    let c = try_or!(reading_consent(&s, &code, &headers, &rid));
    let a = try_or!(readable(&s, &c, &account, &rid).await);
    let status = q.booking_status.as_deref().unwrap_or("");
    if !matches!(status, "booked" | "pending" | "both") {
        return error(
            StatusCode::BAD_REQUEST,
            "PARAMETER_NOT_SUPPORTED",
            "bookingStatus must be booked, pending or both",
            &rid,
        );
    }
    let today = s.bank.today();
    let parse = |d: &Option<String>| {
        d.as_deref()
            .map(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d"))
    };
    let (from, to) = match (parse(&q.date_from), parse(&q.date_to)) {
        (Some(Ok(f)), None) => (f, today),
        (Some(Ok(f)), Some(Ok(t))) => (f, t),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "FORMAT_ERROR",
                "dateFrom is required, as a date",
                &rid,
            );
        }
    };
    let all = match s
        .bank
        .transactions(&c.session, &account, from, to, &Presence::Unattended)
        .await
    {
        Ok(l) => l,
        Err(e) => return bank_error(&e, &rid),
    };
    let wanted: Vec<&TransactionDetails> = all
        .iter()
        .filter(|t| match status {
            "booked" => t.booked,
            "pending" => !t.booked,
            _ => true,
        })
        .collect();
    let page = q.page.unwrap_or(0);
    let start = page.saturating_mul(PAGE_SIZE).min(wanted.len());
    let end = (start + PAGE_SIZE).min(wanted.len());
    let slice = &wanted[start..end];
    let booked: Vec<Value> = slice
        .iter()
        .filter(|t| t.booked)
        .map(|t| transaction_json(t))
        .collect();
    let pending: Vec<Value> = slice
        .iter()
        .filter(|t| !t.booked)
        .map(|t| transaction_json(t))
        .collect();
    let mut report = serde_json::Map::new();
    report.insert("booked".into(), json!(booked));
    if status != "booked" {
        report.insert("pending".into(), json!(pending));
    }
    let here = format!(
        "{}/accounts/{account}/transactions?dateFrom={}&dateTo={}&bookingStatus={status}",
        base(&code),
        from.format("%Y-%m-%d"),
        to.format("%Y-%m-%d")
    );
    let mut links = serde_json::Map::new();
    links.insert(
        "account".into(),
        href(format!("{}/accounts/{account}", base(&code))),
    );
    if end < wanted.len() {
        links.insert("next".into(), href(format!("{here}&page={}", page + 1)));
    }
    report.insert("_links".into(), Value::Object(links));
    let body = json!({ "account": reference_json(&a), "transactions": report });
    with_request_id(Json(body).into_response(), &rid)
}

/// The OAuth server's metadata (RFC 8414) the `scaOAuth` link leads to.
async fn oauth_metadata(State(s): State<Arc<Server>>, Path(code): Path<String>) -> Response {
    let at = |path: &str| {
        s.bank
            .config
            .public_url
            .join(&format!("sandbox/xs2a-oauth/{code}/{path}"))
            .map(|u| u.to_string())
            .unwrap_or_default()
    };
    Json(json!({
        "issuer": at(""),
        "authorization_endpoint": at("authorize"),
        "token_endpoint": at("token"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code"],
        "code_challenge_methods_supported": ["S256"],
    }))
    .into_response()
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

/// The OAuth authorization endpoint: checks the request, issues a code for the consent named
/// by `scope=AIS:<consentId>`, and sends the user to the bank's login and approval pages,
/// which send them back to `redirect_uri` with the code (or `error=access_denied`).
async fn oauth_authorize(
    State(s): State<Arc<Server>>,
    Path(code): Path<String>,
    query: Result<Query<AuthorizeQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let refuse =
        |why: &str| (StatusCode::BAD_REQUEST, format!("invalid_request: {why}")).into_response();
    let Ok(Query(q)) = query else {
        return refuse("malformed query");
    };
    let (
        Some("code"),
        Some(_client),
        Some(redirect),
        Some(scope),
        Some(state),
        Some(challenge),
        Some("S256"),
    ) = (
        q.response_type.as_deref(),
        q.client_id.as_deref(),
        q.redirect_uri.as_deref(),
        q.scope.as_deref(),
        q.state.as_deref(),
        q.code_challenge.as_deref(),
        q.code_challenge_method.as_deref(),
    )
    else {
        return refuse(
            "response_type=code, client_id, redirect_uri, scope, state and an S256 code_challenge are required",
        );
    };
    let Some(consent_id) = scope.strip_prefix("AIS:") else {
        return refuse("scope must be AIS:<consentId>");
    };
    let Ok(redirect_url) = Url::parse(redirect) else {
        return refuse("redirect_uri is not a URL");
    };
    let Ok(mut c) = consent_of(&s, &code, consent_id, "") else {
        return refuse("no such consent");
    };
    if c.status != "received" {
        return refuse("the consent is not waiting for authorisation");
    }
    let oauth_code = random_id();
    let with = |pairs: &[(&str, &str)]| {
        let mut u = redirect_url.clone();
        {
            let mut q = u.query_pairs_mut();
            for (k, v) in pairs {
                q.append_pair(k, v);
            }
        }
        u
    };
    let return_to = ReturnTo {
        ok: with(&[("code", &oauth_code), ("state", state)]),
        nok: with(&[("error", "access_denied"), ("state", state)]),
    };
    let request = ConsentRequest {
        psu: finx_ports::PsuContext::default(),
        ibans: Vec::new(),
        recurring: c.recurring,
        valid_until: c.valid_until,
        frequency_per_day: c.frequency_per_day,
    };
    let Ok(BankReply::Next {
        session,
        step: BankStep::Redirect { url },
    }) = s.bank.begin(&c.institution, &request, &return_to).await
    else {
        return refuse("this bank does not authorise by redirect");
    };
    c.session = session;
    c.step = Some(BankStep::Redirect { url: url.clone() });
    c.return_to = return_to;
    c.sca_status = "started";
    {
        let mut all = s.lock();
        if all.codes.len() >= CAPACITY {
            // A sandbox asked for codes nobody exchanges: start afresh rather than grow.
            all.codes.clear();
        }
        all.codes.insert(
            oauth_code,
            (
                consent_id.to_owned(),
                challenge.to_owned(),
                redirect.to_owned(),
            ),
        );
        all.map.insert(consent_id.to_owned(), c);
    }
    axum::response::Redirect::to(url.as_str()).into_response()
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
}

/// The OAuth token endpoint: exchanges a code, once, with its PKCE verifier, for the token
/// that reads the consent, once the user approved at the bank.
async fn oauth_token(
    State(s): State<Arc<Server>>,
    Path(code): Path<String>,
    form: Result<axum::extract::Form<TokenForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let oauth_error =
        |e: &str| (StatusCode::BAD_REQUEST, Json(json!({ "error": e }))).into_response();
    let Ok(axum::extract::Form(f)) = form else {
        return oauth_error("invalid_request");
    };
    let (Some("authorization_code"), Some(given), Some(redirect), Some(verifier)) = (
        f.grant_type.as_deref(),
        f.code.as_deref(),
        f.redirect_uri.as_deref(),
        f.code_verifier.as_deref(),
    ) else {
        return oauth_error("invalid_request");
    };
    // A code is used once, whatever happens next.
    let Some((consent_id, challenge, issued_for)) = s.lock().codes.remove(given) else {
        return oauth_error("invalid_grant");
    };
    let computed = {
        use sha2::{Digest as _, Sha256};
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
    };
    if computed != challenge || issued_for != redirect {
        return oauth_error("invalid_grant");
    }
    let Ok(mut c) = consent_of(&s, &code, &consent_id, "") else {
        return oauth_error("invalid_grant");
    };
    // Did the user approve at the bank?
    match s
        .bank
        .answer(
            &c.institution,
            &c.session,
            &StepAnswer::Returned { ok: true },
            &c.return_to,
        )
        .await
    {
        Ok(reply @ BankReply::Done { .. }) => apply(&mut c, &reply),
        _ => return oauth_error("invalid_grant"),
    }
    let token = random_id();
    c.oauth_token = Some(token.clone());
    save(&s, &consent_id, c);
    Json(json!({ "access_token": token, "token_type": "Bearer", "expires_in": 3600 }))
        .into_response()
}
