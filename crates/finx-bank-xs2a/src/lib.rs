//! # The XS2A connector
//!
//! A [`BankConnector`] for banks' Berlin Group NextGenPSD2 (XS2A 1.3) account information
//! APIs, over HTTPS with rustls, for the banks of a [`BankRegistry`].
//!
//! ## How a flow maps onto XS2A
//! - `begin` creates the consent (`POST /v1/consents`) with the access the bank's consent
//!   model takes: bank-offered (empty lists), `availableAccounts` (then, once authorised, a
//!   dedicated consent for every account listed, authorised in turn), or dedicated (the
//!   customer's IBANs; bank-offered when none was given). One-time access asks for
//!   `recurringIndicator: false` and `frequencyPerDay: 1`. The bank's answer decides the
//!   step: a `scaRedirect` link is a redirect (back to finX's return addresses, sent as
//!   `TPP-Redirect-URI` and `TPP-Nok-Redirect-URI`); a `startAuthorisation…` link is a login
//!   form (PSU-ID and PIN), since embedded and decoupled banks want the PSU's credentials to
//!   start the authorisation; an `scaOAuth` link is refused (not supported yet).
//! - `answer` carries the login into `POST …/authorisations` (`PSU-ID`,
//!   `psuData.password`); then, as the bank's answer says: a method choice
//!   (`scaMethods`, `selectAuthenticationMethod`), a TAN with the challenge
//!   (`challengeData`: text, image, flicker `data`), or a decoupled wait polled on
//!   `scaStatus`. A return from the redirect, or a poll, reads `scaStatus`. `finalised` reads
//!   the consent (`GET /v1/consents/{id}`) and ends the dialog with it.
//! - The session handle holds the bank, the consent id and where the dialog stands (the next
//!   link), never a credential; stores seal it.
//!
//! ## Data
//! `GET /v1/accounts`; balances, choosing the booked balance among `closingBooked`,
//! `interimBooked`, `openingBooked` (in that order) and the available one among
//! `interimAvailable`, `expected`, `forwardAvailable`, `closingAvailable`,
//! `openingAvailable`; transactions with `bookingStatus=both` (again with `booked` when the
//! bank refuses `both`), from `dateFrom` to `dateTo`, following `_links.next` to the end. A
//! transaction without `transactionId` gets an id derived from its own fields (dates,
//! amount, counterparty, references, remittance), numbered among identical ones, so a
//! re-fetch yields the same ids.
//!
//! ## Errors
//! `tppMessages` codes map to [`BankError`]: `PSU_CREDENTIALS_INVALID` to wrong credentials
//! (or a wrong TAN at the TAN step), `SERVICE_BLOCKED` to locked, `CONSENT_EXPIRED` to an expired
//! consent, `CONSENT_INVALID` and `CONSENT_UNKNOWN` to a revoked one, `ACCESS_EXCEEDED` or 429 to
//! [`BankError::RateLimited`] with `Retry-After`, 5xx and transport errors to unavailable.
//! A bank's own error text is logged (at WARN), never passed on.
//!
//! ## Headers
//! `X-Request-ID` (a fresh UUID) on every call; `PSU-IP-Address` and `PSU-User-Agent` when
//! the end user is present (the consent's creation, and the data the flow reads while the
//! user waits); none on unattended syncs; `Consent-ID` on every data call.

mod session;
pub mod signing;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use finx_domain::Date;
use finx_domain::bank::{AccountDetails, Balance, Institution, TransactionDetails};
use finx_domain::flow::BankSession;
use finx_domain::ids::InstitutionId;
use finx_domain::registry::{ConsentModel, RegisteredBank};
use finx_domain::sca::{BankStep, Consent, LoginField, StepAnswer};
use finx_ports::{
    BankConnector, BankError, BankRegistry, BankReply, ConsentRequest, Presence, PsuContext,
    ReturnTo,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use thiserror::Error;
use url::Url;

use base64::Engine as _;
use sha2::Digest as _;

use crate::session::{Session, Stage};

/// How the connector reaches banks. Its `Debug` hides the keys.
#[derive(Clone)]
pub struct Xs2aConfig {
    /// The longest one call may take.
    pub timeout: Duration,
    /// The operator's QWAC (certificate chain and key, PEM), for mutual TLS.
    pub qwac_pem: Option<Vec<u8>>,
    /// Extra trusted roots (PEM), e.g. a test authority.
    pub extra_roots_pem: Vec<Vec<u8>>,
    /// How long a decoupled approval waits between polls.
    pub poll_after_seconds: u16,
    /// The operator's QSealC (certificate and PKCS#8 key, PEM), to sign requests to the
    /// banks that require it.
    pub qseal_pem: Option<Vec<u8>>,
    /// finX's client id at banks' OAuth servers (the TPP's registration id, e.g. its
    /// `PSDDE-BAFIN-…` number).
    pub oauth_client_id: String,
}

impl std::fmt::Debug for Xs2aConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Xs2aConfig")
            .field("timeout", &self.timeout)
            .field("qwac", &self.qwac_pem.as_ref().map(|_| "[redacted]"))
            .field("qseal", &self.qseal_pem.as_ref().map(|_| "[redacted]"))
            .field("extra_roots", &self.extra_roots_pem.len())
            .field("oauth_client_id", &self.oauth_client_id)
            .finish_non_exhaustive()
    }
}

impl Default for Xs2aConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(20),
            qwac_pem: None,
            extra_roots_pem: Vec::new(),
            poll_after_seconds: 2,
            qseal_pem: None,
            oauth_client_id: "finx".into(),
        }
    }
}

/// The connector could not be built.
#[derive(Debug, Error)]
pub enum Xs2aSetupError {
    /// The QWAC or a root certificate does not parse.
    #[error("certificate: {0}")]
    Certificate(String),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(String),
}

/// The XS2A connector. See the [crate documentation](crate).
pub struct Xs2aConnector {
    http: reqwest::Client,
    registry: Arc<dyn BankRegistry>,
    config: Xs2aConfig,
    sealer: Option<signing::Sealer>,
}

impl std::fmt::Debug for Xs2aConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Xs2aConnector")
            .field("timeout", &self.config.timeout)
            .field("qwac", &self.config.qwac_pem.is_some())
            .finish_non_exhaustive()
    }
}

/// A bank answered something the connector cannot use.
#[derive(Debug, Error)]
#[error("the bank's answer is not usable: {0}")]
struct BadAnswer(&'static str);

fn bad(why: &'static str) -> BankError {
    BankError::Unexpected(Box::new(BadAnswer(why)))
}

/// What an XS2A call brought back.
struct Answer {
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Xs2aConnector {
    /// A connector for the banks of `registry`.
    ///
    /// # Errors
    /// When the QWAC or a root does not parse, or the client cannot be built.
    pub fn new(
        registry: Arc<dyn BankRegistry>,
        config: Xs2aConfig,
    ) -> Result<Self, Xs2aSetupError> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("finX/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &config.qwac_pem {
            let identity = reqwest::Identity::from_pem(pem)
                .map_err(|e| Xs2aSetupError::Certificate(e.to_string()))?;
            builder = builder.identity(identity);
        }
        for pem in &config.extra_roots_pem {
            let root = reqwest::Certificate::from_pem(pem)
                .map_err(|e| Xs2aSetupError::Certificate(e.to_string()))?;
            builder = builder.add_root_certificate(root);
        }
        let http = builder
            .build()
            .map_err(|e| Xs2aSetupError::Client(e.to_string()))?;
        let sealer = config
            .qseal_pem
            .as_deref()
            .map(signing::Sealer::from_pem)
            .transpose()
            .map_err(Xs2aSetupError::Certificate)?;
        Ok(Self {
            http,
            registry,
            config,
            sealer,
        })
    }

    async fn bank(&self, id: &InstitutionId) -> Result<RegisteredBank, BankError> {
        self.registry
            .find_bank(id)
            .await
            .map_err(|e| BankError::Unexpected(Box::new(e)))?
            .ok_or(BankError::UnknownInstitution)
    }

    /// `path` (absolute, or a link the bank gave, relative to its host) under `bank`'s URL.
    fn url(bank: &RegisteredBank, path: &str) -> Result<Url, BankError> {
        let joined = if path.starts_with("http://") || path.starts_with("https://") {
            Url::parse(path).map_err(|_| bad("a link that is not a URL"))?
        } else if path.starts_with('/') && !path.starts_with("/v1/") {
            // A host-relative link ("//host" or "/\\host" would leave the host: checked below).
            bank.url.join(path).map_err(|_| bad("a malformed link"))?
        } else {
            let base = bank.url.as_str().trim_end_matches('/');
            Url::parse(&format!("{base}/{}", path.trim_start_matches('/')))
                .map_err(|_| bad("a malformed link"))?
        };
        // A link to another host would carry the consent, the PIN or a TAN elsewhere.
        if joined.origin() != bank.url.origin() {
            return Err(bad("a link to another host"));
        }
        Ok(joined)
    }

    /// One XS2A call. Errors keep their XS2A meaning; `at_tan` says a
    /// `PSU_CREDENTIALS_INVALID` is a wrong TAN.
    async fn call(
        &self,
        bank: &RegisteredBank,
        method: Method,
        url: Url,
        headers: &[(&str, String)],
        body: Option<Value>,
        at_tan: bool,
    ) -> Result<Answer, BankError> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut req = self
            .http
            .request(method.clone(), url.clone())
            .header("X-Request-ID", &request_id)
            .header("Accept", "application/json");
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let bytes = match &body {
            Some(b) => serde_json::to_vec(b).map_err(|_| bad("a body that does not serialise"))?,
            None => Vec::new(),
        };
        if bank.quirks.signing_required {
            let sealer = self.sealer.as_ref().ok_or_else(|| {
                BankError::Unavailable(format!(
                    "{} requires signed requests, and no QSealC is configured",
                    bank.name
                ))
            })?;
            let mut sent: Vec<(&str, String)> = headers.to_vec();
            sent.push(("X-Request-ID", request_id.clone()));
            let signed = sealer.headers(&bytes, &sent).map_err(|e| {
                tracing::error!(bank = %bank.id, error = %e, "cannot sign the request");
                bad("the request could not be signed")
            })?;
            for (k, v) in signed {
                req = req.header(k, v);
            }
        }
        if body.is_some() {
            req = req.header("Content-Type", "application/json").body(bytes);
        }
        let res = req.send().await.map_err(|e| {
            // The error's text names the URL, which names the consent: only its kind is logged.
            let kind = if e.is_timeout() {
                "timeout"
            } else if e.is_connect() {
                "connect"
            } else {
                "request"
            };
            tracing::warn!(bank = %bank.id, %method, kind, "XS2A call failed");
            BankError::Unavailable(format!("{} cannot be reached", bank.name))
        })?;
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res
            .bytes()
            .await
            .map_err(|_| BankError::Unavailable(format!("{} broke off its answer", bank.name)))?;
        if status.is_success() {
            let body = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).map_err(|_| bad("a body that is not JSON"))?
            };
            return Ok(Answer { headers, body });
        }
        let codes = wire::error_codes(&bytes);
        tracing::warn!(
            bank = %bank.id, %method, operation = %operation(&url), status = status.as_u16(),
            codes = ?codes, request_id, text = %wire::error_text(&bytes),
            "XS2A error"
        );
        Err(map_error(status, &codes, &headers, at_tan, &bank.name))
    }

    /// Creates a consent for `access` and says what the bank asks first.
    async fn create_consent(
        &self,
        bank: &RegisteredBank,
        access: Value,
        request: &ConsentRequest,
        return_to: &ReturnTo,
        listing: bool,
    ) -> Result<BankReply, BankError> {
        let body = json!({
            "access": access,
            "recurringIndicator": request.recurring,
            "validUntil": request.valid_until.format("%Y-%m-%d").to_string(),
            "frequencyPerDay": request.frequency_per_day.max(1),
            "combinedServiceIndicator": false,
        });
        let mut headers = vec![
            ("TPP-Redirect-URI", return_to.ok.to_string()),
            ("TPP-Nok-Redirect-URI", return_to.nok.to_string()),
        ];
        // Redirect and OAuth banks answer with their own pages at once; the others with a link
        // to start the authorisation with the PSU's credentials.
        let redirect_first = matches!(
            bank.sca_approaches.first(),
            Some(
                finx_domain::registry::ScaApproach::Redirect
                    | finx_domain::registry::ScaApproach::OAuth
            )
        );
        headers.push((
            "TPP-Explicit-Authorisation-Preferred",
            (!redirect_first).to_string(),
        ));
        headers.extend(psu_headers(&request.psu));
        if let Some(first) = bank.sca_approaches.first() {
            let redirect = matches!(
                first,
                finx_domain::registry::ScaApproach::Redirect
                    | finx_domain::registry::ScaApproach::OAuth
            );
            headers.push(("TPP-Redirect-Preferred", redirect.to_string()));
        }
        let url = Self::url(bank, "/v1/consents")?;
        let answer = self
            .call(bank, Method::POST, url, &headers, Some(body), false)
            .await?;
        let consent_id = answer
            .body
            .get("consentId")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty() && c.len() <= 512)
            .ok_or_else(|| bad("a consent without id"))?
            .to_owned();
        let approach = answer
            .headers
            .get("aspsp-sca-approach")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_uppercase();
        let mut session = Session {
            bank: bank.id.to_string(),
            consent: consent_id,
            stage: Stage::Login,
            next: None,
            redirect: None,
            listing,
            request: wire::Terms::of(request),
            oauth: None,
            access_token: None,
            password_at_start: true,
        };
        let start = match wire::consent_next(&answer.body) {
            wire::ConsentNext::Redirect { url: to, status } => {
                let url = Self::url_any(&to)?;
                session.stage = Stage::Redirect;
                session.redirect = Some(url.to_string());
                session.next = status;
                return Ok(BankReply::Next {
                    session: session.seal(),
                    step: BankStep::Redirect { url },
                });
            }
            wire::ConsentNext::OAuth(server) => {
                return self.oauth_start(bank, session, &server, return_to).await;
            }
            wire::ConsentNext::Start {
                link,
                with_password,
            } => {
                session.password_at_start = with_password || bank.quirks.password_at_start;
                link.or_else(|| {
                    bank.quirks.password_at_start.then(|| {
                        format!(
                            "/v1/consents/{}/authorisations",
                            wire::segment(&session.consent)
                        )
                    })
                })
                .ok_or_else(|| bad("a consent with no way to authorise it"))?
            }
        };
        tracing::debug!(bank = %bank.id, approach, "consent created; authorisation starts");
        session.next = Some(start);
        Ok(BankReply::Next {
            session: session.seal(),
            step: BankStep::Login {
                fields: vec![
                    LoginField {
                        id: "user".into(),
                        label: "Anmeldename".into(),
                        secret: false,
                    },
                    LoginField {
                        id: "pin".into(),
                        label: "PIN".into(),
                        secret: true,
                    },
                ],
            },
        })
    }

    /// OAuth (`scaOAuth`): reads the bank's OAuth server metadata, and sends the user to its
    /// authorization endpoint (authorization code with PKCE S256, `scope=AIS:<consentId>`,
    /// finX's return address as `redirect_uri` and finX's state as `state`).
    async fn oauth_start(
        &self,
        bank: &RegisteredBank,
        mut session: Session,
        server: &str,
        return_to: &ReturnTo,
    ) -> Result<BankReply, BankError> {
        let metadata_url = Self::url_any(server)?;
        let res = self.http.get(metadata_url).send().await.map_err(|e| {
            tracing::warn!(bank = %bank.id, error = %e, "OAuth metadata unreachable");
            BankError::Unavailable(format!("{} cannot be reached", bank.name))
        })?;
        if !res.status().is_success() {
            return Err(BankError::Unavailable(format!(
                "{}'s OAuth server refuses",
                bank.name
            )));
        }
        let metadata: Value = res
            .json()
            .await
            .map_err(|_| bad("OAuth metadata that is not JSON"))?;
        let endpoint = |k: &str| {
            metadata
                .get(k)
                .and_then(Value::as_str)
                .ok_or_else(|| bad("OAuth metadata without its endpoints"))
                .and_then(Self::url_any)
        };
        let (mut authorize, token) = (
            endpoint("authorization_endpoint")?,
            endpoint("token_endpoint")?,
        );
        let mut raw = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw)
            .map_err(|_| bad("no randomness for PKCE"))?;
        let verifier = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()));
        let state = return_to
            .ok
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        authorize
            .query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.config.oauth_client_id)
            .append_pair("redirect_uri", return_to.ok.as_str())
            .append_pair("scope", &format!("AIS:{}", session.consent))
            .append_pair("state", &state)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        session.stage = Stage::OAuth;
        session.next = None;
        session.oauth = Some(session::OAuth {
            token_endpoint: token.to_string(),
            verifier,
            redirect_uri: return_to.ok.to_string(),
        });
        Ok(BankReply::Next {
            session: session.seal(),
            step: BankStep::Redirect { url: authorize },
        })
    }

    /// Exchanges the OAuth code for the bank's token, then reads the consent.
    async fn oauth_finish(
        &self,
        bank: &RegisteredBank,
        mut session: Session,
        code: &str,
        return_to: &ReturnTo,
    ) -> Result<BankReply, BankError> {
        let pending = session.oauth.take().ok_or(BankError::SessionExpired)?;
        let url = Self::url_any(&pending.token_endpoint)?;
        let res = self
            .http
            .post(url)
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", pending.redirect_uri.as_str()),
                ("client_id", self.config.oauth_client_id.as_str()),
                ("code_verifier", pending.verifier.as_str()),
            ])
            .send()
            .await
            .map_err(|_| BankError::Unavailable(format!("{} cannot be reached", bank.name)))?;
        if !res.status().is_success() {
            tracing::warn!(bank = %bank.id, status = res.status().as_u16(), "OAuth code refused");
            return Err(BankError::Rejected);
        }
        let body: Value = res
            .json()
            .await
            .map_err(|_| bad("a token answer that is not JSON"))?;
        let token = body
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty() && t.len() <= 4096)
            .ok_or_else(|| bad("a token answer without a token"))?;
        session.access_token = Some(token.to_owned());
        self.finish(bank, session, return_to).await
    }

    /// A decoupled wait with the bank's message, polled at the configured pace.
    fn decoupled(&self, prompt: Option<String>) -> BankStep {
        BankStep::Decoupled {
            prompt,
            poll_after_seconds: self.config.poll_after_seconds.clamp(1, 60),
        }
    }

    /// A redirect target: any https page (or http on loopback, for sandboxes).
    fn url_any(href: &str) -> Result<Url, BankError> {
        let url = Url::parse(href).map_err(|_| bad("a redirect that is not a URL"))?;
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        match url.scheme() {
            "https" => Ok(url),
            "http" if loopback => Ok(url),
            _ => Err(bad("a bank page or endpoint that is not https")),
        }
    }

    /// What the bank's authorisation answer asks next, or the end.
    async fn next_step(
        &self,
        bank: &RegisteredBank,
        mut session: Session,
        body: &Value,
        return_to: &ReturnTo,
    ) -> Result<BankReply, BankError> {
        let here = session.next.clone();
        match wire::authorisation_next(body) {
            wire::AuthorisationNext::Finalised => self.finish(bank, session, return_to).await,
            wire::AuthorisationNext::Failed => Err(BankError::Rejected),
            wire::AuthorisationNext::Redirect { url, status } => {
                let url = Self::url_any(&url)?;
                session.stage = Stage::Redirect;
                session.redirect = Some(url.to_string());
                session.next = status.or(here);
                if session.next.is_none() {
                    return Err(bad("a redirect with no status to check"));
                }
                Ok(BankReply::Next {
                    session: session.seal(),
                    step: BankStep::Redirect { url },
                })
            }
            wire::AuthorisationNext::Methods { methods, link } => {
                if methods.is_empty() {
                    return Err(bad("a method choice without methods"));
                }
                session.stage = Stage::Method;
                session.next = link.or(here);
                Ok(BankReply::Next {
                    session: session.seal(),
                    step: BankStep::ChooseMethod { methods },
                })
            }
            wire::AuthorisationNext::Tan { challenge, link } => {
                session.stage = Stage::Tan;
                session.next = link.or(here);
                Ok(BankReply::Next {
                    session: session.seal(),
                    step: BankStep::Tan { challenge },
                })
            }
            wire::AuthorisationNext::Decoupled { prompt, link } => {
                session.stage = Stage::Decoupled;
                session.next = link.or(here);
                if session.next.is_none() {
                    return Err(bad("an authorisation with no status to poll"));
                }
                Ok(BankReply::Next {
                    session: session.seal(),
                    step: self.decoupled(prompt),
                })
            }
        }
    }

    /// The authorisation is finalised: read the consent, or, after an `availableAccounts`
    /// consent, make the dedicated consent for every account it lists.
    async fn finish(
        &self,
        bank: &RegisteredBank,
        mut session: Session,
        return_to: &ReturnTo,
    ) -> Result<BankReply, BankError> {
        let consent_url = Self::url(
            bank,
            &format!("/v1/consents/{}", wire::segment(&session.consent)),
        )?;
        let answer = self
            .call(
                bank,
                Method::GET,
                consent_url,
                &session.bearer(),
                None,
                false,
            )
            .await?;
        let status = answer
            .body
            .get("consentStatus")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if status != "valid" {
            return Err(BankError::Rejected);
        }
        if session.listing {
            let accounts = self.list(bank, &session, &Presence::Unattended).await?;
            let refs: Vec<Value> = accounts
                .iter()
                .filter_map(|a| a.iban.as_ref().map(|i| json!({ "iban": i.to_string() })))
                .collect();
            if refs.is_empty() {
                return Err(BankError::Unavailable(format!(
                    "{} lists no account",
                    bank.name
                )));
            }
            let access = json!({ "accounts": refs, "balances": refs, "transactions": refs });
            let request = session.request.to_request();
            return self
                .create_consent(bank, access, &request, return_to, false)
                .await;
        }
        let body = &answer.body;
        let consent = Consent {
            id: session.consent.clone(),
            status: finx_domain::sca::ConsentStatus::Valid,
            valid_until: body
                .get("validUntil")
                .and_then(Value::as_str)
                .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                .unwrap_or_else(|| session.request.valid_until()),
            frequency_per_day: body
                .get("frequencyPerDay")
                .and_then(Value::as_u64)
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n > 0)
                .unwrap_or(1),
            recurring: body
                .get("recurringIndicator")
                .and_then(Value::as_bool)
                .unwrap_or(session.request.recurring),
            accounts: Vec::new(),
        };
        session.stage = Stage::Done;
        session.next = None;
        session.redirect = None;
        Ok(BankReply::Done {
            session: session.seal(),
            consent,
        })
    }

    /// The accounts of a session's consent.
    async fn list(
        &self,
        bank: &RegisteredBank,
        session: &Session,
        psu: &Presence,
    ) -> Result<Vec<AccountDetails>, BankError> {
        let url = Self::url(bank, "/v1/accounts")?;
        let answer = self
            .call(
                bank,
                Method::GET,
                url,
                &session.data_headers(psu),
                None,
                false,
            )
            .await?;
        let list = answer
            .body
            .get("accounts")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("an account list without accounts"))?;
        Ok(list.iter().filter_map(|a| wire::account(a, bank)).collect())
    }

    async fn open(&self, session: &BankSession) -> Result<(Session, RegisteredBank), BankError> {
        let s = Session::open(session).ok_or(BankError::SessionExpired)?;
        let id = InstitutionId::parse(&s.bank).map_err(|_| BankError::SessionExpired)?;
        let bank = self.bank(&id).await?;
        Ok((s, bank))
    }

    async fn data_session(
        &self,
        session: &BankSession,
    ) -> Result<(Session, RegisteredBank), BankError> {
        let (s, bank) = self.open(session).await?;
        if s.stage != Stage::Done {
            return Err(BankError::SessionExpired);
        }
        Ok((s, bank))
    }
}

/// The path of an XS2A call with its ids replaced (`/v1/consents/{id}/…`): what may be
/// logged, since a consent id reads data.
fn operation(url: &Url) -> String {
    let mut out = Vec::new();
    let mut after_v1 = false;
    let mut prev = "";
    for seg in url.path_segments().into_iter().flatten() {
        if seg == "v1" {
            after_v1 = true;
            out.clear();
        }
        if after_v1 {
            out.push(
                if matches!(
                    prev,
                    "consents" | "authorisations" | "accounts" | "transactions"
                ) && !matches!(
                    seg,
                    "status" | "authorisations" | "balances" | "transactions"
                ) {
                    "{id}"
                } else {
                    seg
                },
            );
        }
        prev = seg;
    }
    format!("/{}", out.join("/"))
}

/// An XS2A error as a finX bank error.
fn map_error(
    status: StatusCode,
    codes: &[String],
    headers: &reqwest::header::HeaderMap,
    at_tan: bool,
    bank: &str,
) -> BankError {
    let has = |c: &str| codes.iter().any(|x| x == c);
    if status == StatusCode::TOO_MANY_REQUESTS || has("ACCESS_EXCEEDED") {
        let retry_after = headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        return BankError::RateLimited { retry_after };
    }
    if has("PSU_CREDENTIALS_INVALID") {
        return if at_tan {
            BankError::InvalidTan
        } else {
            BankError::InvalidCredentials
        };
    }
    if has("SERVICE_BLOCKED") {
        return BankError::Locked;
    }
    if has("CERTIFICATE_INVALID")
        || has("CERTIFICATE_EXPIRED")
        || has("CERTIFICATE_BLOCKED")
        || has("SIGNATURE_INVALID")
        || has("SIGNATURE_MISSING")
    {
        // The operator's certificates or signature: nothing the end user can change.
        return BankError::Unavailable(format!("{bank} refuses finX's certificate or signature"));
    }
    if has("CONSENT_EXPIRED") {
        return BankError::ConsentExpired;
    }
    if has("CONSENT_INVALID") || has("CONSENT_UNKNOWN") {
        return BankError::ConsentRevoked;
    }
    if status.is_server_error() || has("SERVICE_INVALID") || status == StatusCode::REQUEST_TIMEOUT {
        return BankError::Unavailable(format!("{bank} refuses service now"));
    }
    BankError::Unexpected(Box::new(BadAnswer("the bank refused the request")))
}

#[async_trait]
impl BankConnector for Xs2aConnector {
    async fn institutions(&self) -> Result<Vec<Institution>, BankError> {
        Ok(self
            .registry
            .search_banks("", u32::MAX)
            .await
            .map_err(|e| BankError::Unexpected(Box::new(e)))?
            .iter()
            .map(RegisteredBank::institution)
            .collect())
    }

    async fn search_institutions(&self, query: &str) -> Result<Vec<Institution>, BankError> {
        Ok(self
            .registry
            .search_banks(query, 50)
            .await
            .map_err(|e| BankError::Unexpected(Box::new(e)))?
            .iter()
            .map(RegisteredBank::institution)
            .collect())
    }

    async fn catalog(
        &self,
        query: &str,
        country: Option<String>,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<Institution>, BankError> {
        Ok(self
            .registry
            .catalog_banks(query, country, offset, limit)
            .await
            .map_err(|e| BankError::Unexpected(Box::new(e)))?
            .iter()
            .map(RegisteredBank::institution)
            .collect())
    }

    async fn institution(&self, id: &InstitutionId) -> Result<Option<Institution>, BankError> {
        Ok(self
            .registry
            .find_bank(id)
            .await
            .map_err(|e| BankError::Unexpected(Box::new(e)))?
            .map(|b| b.institution()))
    }

    async fn resolve_bank_code(
        &self,
        country: &str,
        bank_code: &str,
    ) -> Result<Option<Institution>, BankError> {
        Ok(self
            .registry
            .bank_by_code(country, bank_code)
            .await
            .map_err(|e| BankError::Unexpected(Box::new(e)))?
            .map(|b| b.institution()))
    }

    async fn begin(
        &self,
        institution: &InstitutionId,
        consent: &ConsentRequest,
        return_to: &ReturnTo,
    ) -> Result<BankReply, BankError> {
        let bank = self.bank(institution).await?;
        let empty = json!({ "accounts": [], "balances": [], "transactions": [] });
        let (access, listing) = match bank.consent_model {
            ConsentModel::BankOffered => (empty, false),
            ConsentModel::AvailableAccounts => {
                (json!({ "availableAccounts": "allAccounts" }), true)
            }
            ConsentModel::Dedicated if !consent.ibans.is_empty() => {
                let refs: Vec<Value> = consent.ibans.iter().map(|i| json!({ "iban": i })).collect();
                (
                    json!({ "accounts": refs, "balances": refs, "transactions": refs }),
                    false,
                )
            }
            ConsentModel::Dedicated => (empty, false),
        };
        self.create_consent(&bank, access, consent, return_to, listing)
            .await
    }

    async fn answer(
        &self,
        institution: &InstitutionId,
        session: &BankSession,
        answer: &StepAnswer,
        return_to: &ReturnTo,
    ) -> Result<BankReply, BankError> {
        let (s, bank) = self.open(session).await?;
        if bank.id != *institution {
            return Err(BankError::SessionExpired);
        }
        let next = match s.stage {
            Stage::OAuth => String::from("/v1/consents"),
            _ => s.next.clone().ok_or(BankError::SessionExpired)?,
        };
        let url = Self::url(&bank, &next)?;
        match (&s.stage, answer) {
            (Stage::Login, StepAnswer::Login(values)) => {
                let value = |id: &str| {
                    values
                        .iter()
                        .find(|(k, _)| k == id)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                let headers = [("PSU-ID", value("user"))];
                let password = json!({ "psuData": { "password": value("pin") } });
                if s.password_at_start {
                    let a = self
                        .call(&bank, Method::POST, url, &headers, Some(password), false)
                        .await?;
                    return self.next_step(&bank, s, &a.body, return_to).await;
                }
                // The PSU's id first; the password only where the bank asks for it.
                let a = self
                    .call(&bank, Method::POST, url, &headers, Some(json!({})), false)
                    .await?;
                let Some(update) = wire::link(&a.body, "updatePsuAuthentication")
                    .or_else(|| wire::link(&a.body, "startAuthorisationWithPsuAuthentication"))
                else {
                    return self.next_step(&bank, s, &a.body, return_to).await;
                };
                let url = Self::url(&bank, &update)?;
                let a = self
                    .call(&bank, Method::PUT, url, &headers, Some(password), false)
                    .await?;
                self.next_step(&bank, s, &a.body, return_to).await
            }
            (Stage::Method, StepAnswer::Method(id)) => {
                let body = json!({ "authenticationMethodId": id });
                let a = self
                    .call(&bank, Method::PUT, url, &[], Some(body), false)
                    .await?;
                self.next_step(&bank, s, &a.body, return_to).await
            }
            (Stage::Tan, StepAnswer::Tan(tan)) => {
                let body = json!({ "scaAuthenticationData": tan });
                let a = self
                    .call(&bank, Method::PUT, url, &[], Some(body), true)
                    .await?;
                self.next_step(&bank, s, &a.body, return_to).await
            }
            (Stage::Redirect, StepAnswer::Returned { ok }) => {
                let a = self.call(&bank, Method::GET, url, &[], None, false).await?;
                match a.body.get("scaStatus").and_then(Value::as_str) {
                    Some("finalised" | "exempted") => self.finish(&bank, s, return_to).await,
                    Some("failed") if *ok => Err(BankError::Rejected),
                    Some("failed") => Err(BankError::CancelledByUser),
                    // Back by the failure address, nothing decided: the user left the bank.
                    _ if !*ok => Err(BankError::CancelledByUser),
                    _ => {
                        // Back before finishing at the bank: the same trip again.
                        let to = s.redirect.clone().ok_or(BankError::SessionExpired)?;
                        let url = Self::url_any(&to)?;
                        Ok(BankReply::Next {
                            session: s.seal(),
                            step: BankStep::Redirect { url },
                        })
                    }
                }
            }
            (Stage::OAuth, StepAnswer::Authorized { code }) => {
                self.oauth_finish(&bank, s, code, return_to).await
            }
            // Back from the bank's OAuth server without a code: cancelled or refused there.
            (Stage::OAuth, StepAnswer::Returned { .. }) => Err(BankError::CancelledByUser),
            (Stage::Decoupled, StepAnswer::Poll) => {
                let a = self.call(&bank, Method::GET, url, &[], None, false).await?;
                match a.body.get("scaStatus").and_then(Value::as_str) {
                    Some("finalised" | "exempted") => self.finish(&bank, s, return_to).await,
                    Some("failed") => Err(BankError::Rejected),
                    _ => Ok(BankReply::Next {
                        session: s.seal(),
                        step: self.decoupled(wire::psu_message(&a.body)),
                    }),
                }
            }
            _ => Err(BankError::SessionExpired),
        }
    }

    async fn end_consent(&self, session: &BankSession) -> Result<(), BankError> {
        let (s, bank) = self.open(session).await?;
        let url = Self::url(
            &bank,
            &format!("/v1/consents/{}", wire::segment(&s.consent)),
        )?;
        match self
            .call(&bank, Method::DELETE, url, &s.bearer(), None, false)
            .await
        {
            // Gone already: expired, revoked or unknown.
            Ok(_)
            | Err(
                BankError::SessionExpired | BankError::ConsentExpired | BankError::ConsentRevoked,
            ) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn accounts(
        &self,
        session: &BankSession,
        psu: &Presence,
    ) -> Result<Vec<AccountDetails>, BankError> {
        let (s, bank) = self.data_session(session).await?;
        self.list(&bank, &s, psu).await
    }

    async fn balances(
        &self,
        session: &BankSession,
        account: &str,
        psu: &Presence,
    ) -> Result<Vec<Balance>, BankError> {
        let (s, bank) = self.data_session(session).await?;
        let url = Self::url(
            &bank,
            &format!("/v1/accounts/{}/balances", wire::segment(account)),
        )?;
        let a = self
            .call(&bank, Method::GET, url, &s.data_headers(psu), None, false)
            .await?;
        Ok(wire::balances(&a.body))
    }

    async fn transactions(
        &self,
        session: &BankSession,
        account: &str,
        from: Date,
        to: Date,
        psu: &Presence,
    ) -> Result<Vec<TransactionDetails>, BankError> {
        let (s, bank) = self.data_session(session).await?;
        let consent = s.data_headers(psu);
        let mut out = Vec::new();
        let mut status = "both";
        let first = |status: &str| {
            format!(
                "/v1/accounts/{}/transactions?dateFrom={}&dateTo={}&bookingStatus={status}",
                wire::segment(account),
                from.format("%Y-%m-%d"),
                to.format("%Y-%m-%d")
            )
        };
        let mut next = Some(first(status));
        let mut pages = 0;
        while let Some(path) = next.take() {
            pages += 1;
            if pages > 1_000 {
                return Err(bad("more than 1000 pages of transactions"));
            }
            let url = Self::url(&bank, &path)?;
            let a = match self
                .call(&bank, Method::GET, url, &consent, None, false)
                .await
            {
                Ok(a) => a,
                // A bank that offers only booked transactions.
                Err(BankError::Unexpected(_)) if pages == 1 && status == "both" => {
                    status = "booked";
                    next = Some(first(status));
                    pages = 0;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let report = a
                .body
                .get("transactions")
                .ok_or_else(|| bad("no transactions"))?;
            out.extend(wire::transactions(report, true));
            out.extend(wire::transactions(report, false));
            next = report
                .get("_links")
                .and_then(|l| l.get("next"))
                .and_then(|n| n.get("href"))
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        wire::number_derived_ids(&mut out);
        Ok(out)
    }
}

/// `PSU-IP-Address` and `PSU-User-Agent` of the end user, for a call they make while
/// present (unattended calls carry none: the bank counts those against `frequencyPerDay`).
pub(crate) fn psu_headers(psu: &PsuContext) -> Vec<(&'static str, String)> {
    let mut h = Vec::new();
    if let Some(ip) = psu.ip {
        h.push(("PSU-IP-Address", ip.to_string()));
    }
    if let Some(ua) = &psu.user_agent {
        h.push(("PSU-User-Agent", ua.clone()));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(retry: Option<&str>) -> reqwest::header::HeaderMap {
        let mut h = reqwest::header::HeaderMap::new();
        if let Some(r) = retry {
            h.insert("retry-after", r.parse().expect("header"));
        }
        h
    }

    fn codes(body: &str) -> Vec<String> {
        wire::error_codes(body.as_bytes())
    }

    #[test]
    fn links_never_leave_the_banks_host_and_pages_are_https() {
        let bank = RegisteredBank::from_draft(finx_domain::registry::BankDraft {
            name: "B".into(),
            bank_code: Some("10010010".into()),
            url: "https://xs2a.bank.example/psd2".into(),
            ..Default::default()
        })
        .expect("bank");
        let ok = |p: &str| Xs2aConnector::url(&bank, p).map(|u| u.to_string());
        assert_eq!(
            ok("/v1/consents/c1").expect("base-relative"),
            "https://xs2a.bank.example/psd2/v1/consents/c1"
        );
        assert_eq!(
            ok("/psd2/v1/consents/c1").expect("host-relative"),
            "https://xs2a.bank.example/psd2/v1/consents/c1"
        );
        for evil in [
            "//evil.example/a",
            "/\\evil.example/a",
            "https://evil.example/v1/consents",
            "http://xs2a.bank.example/psd2/v1/consents",
        ] {
            assert!(ok(evil).is_err(), "{evil}");
        }
        assert!(Xs2aConnector::url_any("http://bank.example/login").is_err());
        assert!(Xs2aConnector::url_any("http://127.0.0.1:8081/login").is_ok());
        assert!(Xs2aConnector::url_any("javascript:alert(1)").is_err());
        assert_eq!(
            operation(
                &Url::parse("https://b.example/psd2/v1/consents/secret/authorisations/a1")
                    .expect("url")
            ),
            "/v1/consents/{id}/authorisations/{id}"
        );
    }

    #[test]
    fn xs2a_errors_keep_their_meaning() {
        let tpp = |c: &str| {
            codes(&format!(
                r#"{{"tppMessages":[{{"category":"ERROR","code":"{c}"}}]}}"#
            ))
        };
        // 429 with Retry-After, or ACCESS_EXCEEDED in any status: rate limited.
        match map_error(
            StatusCode::TOO_MANY_REQUESTS,
            &tpp("ACCESS_EXCEEDED"),
            &headers(Some("120")),
            false,
            "B",
        ) {
            BankError::RateLimited { retry_after } => {
                assert_eq!(retry_after, Some(Duration::from_secs(120)));
            }
            other => panic!("{other:?}"),
        }
        // The document's own 429 example is a bare array: still understood.
        let bare = codes(r#"[{"category":"ERROR","code":"ACCESS_EXCEEDED"}]"#);
        assert!(matches!(
            map_error(StatusCode::BAD_REQUEST, &bare, &headers(None), false, "B"),
            BankError::RateLimited { retry_after: None }
        ));
        let h = headers(None);
        assert!(matches!(
            map_error(
                StatusCode::UNAUTHORIZED,
                &tpp("PSU_CREDENTIALS_INVALID"),
                &h,
                false,
                "B"
            ),
            BankError::InvalidCredentials
        ));
        assert!(matches!(
            map_error(
                StatusCode::UNAUTHORIZED,
                &tpp("PSU_CREDENTIALS_INVALID"),
                &h,
                true,
                "B"
            ),
            BankError::InvalidTan
        ));
        assert!(matches!(
            map_error(
                StatusCode::UNAUTHORIZED,
                &tpp("SERVICE_BLOCKED"),
                &h,
                false,
                "B"
            ),
            BankError::Locked
        ));
        assert!(matches!(
            map_error(
                StatusCode::UNAUTHORIZED,
                &tpp("CONSENT_EXPIRED"),
                &h,
                false,
                "B"
            ),
            BankError::ConsentExpired
        ));
        for c in ["CONSENT_INVALID", "CONSENT_UNKNOWN"] {
            assert!(matches!(
                map_error(StatusCode::UNAUTHORIZED, &tpp(c), &h, false, "B"),
                BankError::ConsentRevoked
            ));
        }
        assert!(matches!(
            map_error(StatusCode::SERVICE_UNAVAILABLE, &[], &h, false, "B"),
            BankError::Unavailable(_)
        ));
        // problem+json: `code` and `additionalErrors`.
        let problem =
            codes(r#"{"type":"x","code":"CONSENT_EXPIRED","additionalErrors":[{"code":"X"}]}"#);
        assert!(problem.contains(&"CONSENT_EXPIRED".to_owned()));
        assert!(matches!(
            map_error(StatusCode::BAD_REQUEST, &codes("not json"), &h, false, "B"),
            BankError::Unexpected(_)
        ));
    }

    #[test]
    fn transactions_without_ids_get_stable_ones_numbered_among_twins() {
        let report = serde_json::json!({ "booked": [
            { "transactionAmount": { "currency": "EUR", "amount": "-3.50" }, "bookingDate": "2026-03-02",
              "creditorName": "Bäckerei", "remittanceInformationUnstructured": "Kaffee" },
            { "transactionAmount": { "currency": "EUR", "amount": "-3.50" }, "bookingDate": "2026-03-02",
              "creditorName": "Bäckerei", "remittanceInformationUnstructured": "Kaffee" },
            { "transactionAmount": { "currency": "EUR", "amount": "-3.5" }, "bookingDate": "2026-03-03",
              "creditorName": "Bäckerei", "remittanceInformationUnstructured": "Kaffee" },
            { "transactionId": "t-1", "transactionAmount": { "currency": "EUR", "amount": "12.345" },
              "bookingDate": "2026-03-03", "debtorName": "Max", "bankTransactionCode": "PMNT-RCDT-ESCT" },
        ]});
        let mut first = wire::transactions(&report, true);
        wire::number_derived_ids(&mut first);
        let mut again = wire::transactions(&report, true);
        wire::number_derived_ids(&mut again);
        let ids: Vec<&str> = first.iter().map(|t| t.external_id.as_str()).collect();
        assert_eq!(
            ids,
            again
                .iter()
                .map(|t| t.external_id.as_str())
                .collect::<Vec<_>>(),
            "stable"
        );
        assert_eq!(ids[1], format!("{}-2", ids[0]), "twins numbered");
        assert_ne!(ids[0], ids[2], "another day, another id");
        assert_eq!(ids[3], "t-1");
        assert_eq!(
            first[3].amount.amount().to_string(),
            "12.345",
            "three decimals kept"
        );
        assert_eq!(
            first[3].counterparty.name.as_deref(),
            Some("Max"),
            "a credit's other side is the debtor"
        );
        assert_eq!(
            first[3].transaction_type,
            finx_domain::bank::TransactionType::Transfer
        );
    }
}
