//! The Rust SDK for finX: what a customer's backend uses to get its end users' bank data.
//!
//! ```no_run
//! # async fn run() -> Result<(), finx_client::Error> {
//! use finx_client::{FinxClient, OnetimeAccess, Callback, MemoryTokenStore};
//! let finx = FinxClient::new("http://127.0.0.1:8080", "finx-demo", "fxs_demo-secret-for-the-sandbox")?;
//! // 1. A widget link; send the user there.
//! let link = finx.create_onetime_access(&OnetimeAccess {
//!     redirect_uri: "http://127.0.0.1:8080/demo/callback".into(),
//!     state: Some("user-42".into()),
//!     ..Default::default()
//! }).await?;
//! // 2. The user comes back; check the state and exchange the code.
//! # let callback_url = "";
//! if let Callback::Success { code, .. } = finx.parse_callback(callback_url, Some("user-42"))? {
//!     let tokens = finx.exchange_code(&code, "http://127.0.0.1:8080/demo/callback").await?;
//!     // 3. Keep the tokens in a store; the connection refreshes them as needed.
//!     let store = std::sync::Arc::new(MemoryTokenStore::default());
//!     let conn = finx.connect("user-42", store, &tokens).await?;
//!     let accounts = conn.accounts().await?;
//! }
//! # Ok(()) }
//! ```
//!
//! A [`Connection`] keeps one end user's tokens in a [`TokenStore`]: it refreshes the access
//! token shortly before it expires, retries once on a 401 after refreshing, and stores the
//! new refresh token before it returns (the old one stops working at once). Concurrent calls
//! share one refresh, and the store's compare-and-swap with a short refresh lease keeps two
//! workers, even in two processes, from ever presenting the same refresh token twice.

mod connection;
mod error;
mod model;
mod query;
#[cfg(feature = "sql")]
mod sql;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use url::Url;

pub use connection::{Connection, MemoryTokenStore, StoredTokens, TokenStore};
pub use error::Error;
pub use model::{
    Account, AccountStatus, AccountType, AccountVerification, Balance, Callback, Category, Change,
    FeedPage, Link, OnetimeAccess, Removed, Tokens, Transaction, TransactionType, Upload,
    UploadAccount, UploadFailure, UploadState, UploadTransaction, Verification, VerificationMatch,
    VerificationProvided, VerifiedAccount,
};
pub use query::{Bound, Sort, TransactionQuery};
#[cfg(feature = "sql")]
pub use sql::SqlTokenStore;
pub use webhook::{DEFAULT_TOLERANCE, WebhookError, WebhookEvent, WebhookVerifier};

/// A clock, so that tests (and simulations) can move time.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// A hook called on every refresh a connection makes (for metrics).
pub type RefreshHook = Arc<dyn Fn() + Send + Sync>;

/// Settings of a [`FinxClient`].
#[derive(Clone)]
pub struct ClientConfig {
    /// Per-request timeout.
    pub timeout: Duration,
    /// Retries on 429 and 503 (honouring `Retry-After`, at most 30 s each), for every call
    /// but the token endpoint: a code or refresh token is never sent twice.
    pub max_retries: u32,
    /// First backoff when the server gives no `Retry-After`; doubles each retry.
    pub backoff: Duration,
    /// Refresh this long before the access token expires.
    pub refresh_skew: Duration,
    /// How long a refresh lease holds before another worker may take over. MUST exceed
    /// `timeout` by at least 10 s (checked): a refresh ends well inside its lease.
    pub refresh_lease: Duration,
    /// The time.
    pub clock: Clock,
    /// Called on every refresh.
    pub on_refresh: Option<RefreshHook>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_retries: 3,
            backoff: Duration::from_millis(200),
            refresh_skew: Duration::from_secs(60),
            refresh_lease: Duration::from_secs(60),
            clock: Arc::new(Utc::now),
            on_refresh: None,
        }
    }
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .finish_non_exhaustive()
    }
}

/// The `User-Agent` the SDK sends unless told otherwise.
pub const DEFAULT_USER_AGENT: &str = concat!("finx-client/", env!("CARGO_PKG_VERSION"));

/// A client for one finX server and one customer (client id and secret).
#[derive(Clone)]
pub struct FinxClient {
    http: reqwest::Client,
    base: Url,
    client_id: String,
    client_secret: String,
    config: ClientConfig,
    user_agent: reqwest::header::HeaderValue,
}

/// Builds a [`FinxClient`]: its settings, the application's own `reqwest::Client` (its
/// proxy, TLS roots, connection pool) and a `User-Agent`.
#[must_use]
pub struct ClientBuilder {
    base_url: String,
    client_id: String,
    client_secret: String,
    config: ClientConfig,
    http: Option<reqwest::Client>,
    user_agent: Option<String>,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("base_url", &self.base_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("user_agent", &self.user_agent)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// The settings (default: [`ClientConfig::default`]).
    pub fn config(mut self, config: ClientConfig) -> Self {
        self.config = config;
        self
    }

    /// The HTTP client to send with; without one the SDK makes its own (rustls, with the
    /// `rustls` feature). The per-request timeout of the settings applies either way.
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// The `User-Agent` header of every request (default [`DEFAULT_USER_AGENT`]): name your
    /// application, so that finX's operators can tell its requests apart.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// The client.
    ///
    /// # Errors
    /// [`Error::Config`] when the base URL is not absolute, the user agent is not a valid
    /// header value, or `refresh_lease` does not exceed `timeout` by 10 s.
    pub fn build(self) -> Result<FinxClient, Error> {
        let config = self.config;
        if config.refresh_lease < config.timeout + Duration::from_secs(10) {
            return Err(Error::Config(
                "refresh_lease must exceed timeout by at least 10 s".into(),
            ));
        }
        let mut base =
            Url::parse(&self.base_url).map_err(|e| Error::Config(format!("base URL: {e}")))?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let user_agent = reqwest::header::HeaderValue::from_str(
            self.user_agent.as_deref().unwrap_or(DEFAULT_USER_AGENT),
        )
        .map_err(|_| Error::Config("user agent: not a valid header value".into()))?;
        let http = match self.http {
            Some(http) => http,
            None => reqwest::Client::builder().timeout(config.timeout).build()?,
        };
        Ok(FinxClient {
            http,
            base,
            client_id: self.client_id,
            client_secret: self.client_secret,
            config,
            user_agent,
        })
    }
}

impl std::fmt::Debug for FinxClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FinxClient")
            .field("base", &self.base.as_str())
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl FinxClient {
    /// A client with default settings.
    ///
    /// # Errors
    /// [`Error::Config`] when `base_url` is not an absolute URL.
    pub fn new(base_url: &str, client_id: &str, client_secret: &str) -> Result<Self, Error> {
        Self::builder(base_url, client_id, client_secret).build()
    }

    /// A client with settings.
    ///
    /// # Errors
    /// [`Error::Config`] when `base_url` is not an absolute URL.
    pub fn with_config(
        base_url: &str,
        client_id: &str,
        client_secret: &str,
        config: ClientConfig,
    ) -> Result<Self, Error> {
        Self::builder(base_url, client_id, client_secret)
            .config(config)
            .build()
    }

    /// A builder, for the application's own `reqwest::Client` or `User-Agent`.
    pub fn builder(base_url: &str, client_id: &str, client_secret: &str) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.to_owned(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            config: ClientConfig::default(),
            http: None,
            user_agent: None,
        }
    }

    /// A request with the SDK's timeout and `User-Agent`.
    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.http
            .request(method, url)
            .timeout(self.config.timeout)
            .header(reqwest::header::USER_AGENT, self.user_agent.clone())
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        (self.config.clock)()
    }

    fn url(&self, path: &str) -> Result<Url, Error> {
        self.base
            .join(path)
            .map_err(|e| Error::Config(e.to_string()))
    }

    /// Sends a request, retrying on 429/503 with backoff and `Retry-After`.
    async fn send(&self, build: impl Fn() -> RequestBuilder) -> Result<Response, Error> {
        let mut wait = self.config.backoff;
        for attempt in 0..=self.config.max_retries {
            let res = build().send().await?;
            let retryable = matches!(
                res.status(),
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            );
            if !retryable || attempt == self.config.max_retries {
                return Ok(res);
            }
            let delay = retry_after(res.headers())
                .unwrap_or(wait)
                .min(Duration::from_secs(30));
            tracing::debug!(status = %res.status(), ?delay, "finX asked to retry");
            tokio::time::sleep(delay).await;
            wait = wait.saturating_mul(2);
        }
        Err(Error::Decode("retry loop ended".into()))
    }

    async fn json<T: DeserializeOwned>(res: Response) -> Result<T, Error> {
        let status = res.status();
        let request_id = res
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = res.bytes().await?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| Error::Decode(e.to_string()));
        }
        Err(decode_error(status, &body, request_id))
    }

    /// Step 1: a widget link for one end user.
    ///
    /// # Errors
    /// [`Error::Api`] with the field named for bad input; [`Error::Api`] 401 for bad client
    /// credentials.
    pub async fn create_onetime_access(&self, req: &OnetimeAccess) -> Result<Link, Error> {
        self.client_post("onetime/access", req).await
    }

    /// POSTs `body` as JSON under the client's own credentials and reads the answer.
    async fn client_post<B: serde::Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, Error> {
        let url = self.url(path)?;
        let res = self
            .send(|| {
                self.client_auth(self.request(Method::POST, url.clone()))
                    .json(body)
            })
            .await?;
        Self::json(res).await
    }

    /// Account verification, step 1: a widget link in which the end user connects one
    /// account. Exchange the code as usual, then read
    /// [`account_verification`](Self::account_verification) with the token.
    ///
    /// # Errors
    /// [`Error::Api`] with the field named for bad input.
    pub async fn create_account_verification(
        &self,
        req: &AccountVerification,
    ) -> Result<Link, Error> {
        self.client_post("onetime/account-verification", req).await
    }

    /// The result of account verification `id` (the link's `id`), with its grant's token.
    ///
    /// # Errors
    /// [`Error::Api`] 404 when the token is not that verification's.
    pub async fn account_verification(
        &self,
        access_token: &str,
        id: &str,
    ) -> Result<Verification, Error> {
        self.get(
            access_token,
            &format!("rest/account-verifications/{}", segment(id)),
            &[],
        )
        .await
    }

    /// Uploads accounts and transactions for enrichment. The whole upload is checked
    /// first; it is then written in the background ([`wait_for_upload`](Self::wait_for_upload)).
    ///
    /// # Errors
    /// [`Error::Api`] 400 naming the wrong field; nothing is stored then.
    pub async fn upload(&self, upload: &Upload) -> Result<UploadState, Error> {
        self.client_post("uploads", upload).await
    }

    /// An upload's state; once completed, with a new access token for its data.
    ///
    /// # Errors
    /// [`Error::Api`] 404 for an unknown upload or one past its retention.
    pub async fn upload_state(&self, id: &str) -> Result<UploadState, Error> {
        let url = self.url(&format!("uploads/{}", segment(id)))?;
        let res = self
            .send(|| self.client_auth(self.request(Method::GET, url.clone())))
            .await?;
        Self::json(res).await
    }

    /// Polls an upload until it completed or failed, at most for `timeout`, starting at
    /// the configured backoff and doubling up to a second between polls.
    ///
    /// # Errors
    /// [`Error::Timeout`] when it is still pending at the end; as
    /// [`upload_state`](Self::upload_state).
    pub async fn wait_for_upload(&self, id: &str, timeout: Duration) -> Result<UploadState, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut wait = self.config.backoff.max(Duration::from_millis(10));
        loop {
            let state = self.upload_state(id).await?;
            if !state.is_pending() {
                return Ok(state);
            }
            if tokio::time::Instant::now() + wait > deadline {
                return Err(Error::Timeout);
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(1));
        }
    }

    /// Reads the URL the end user came back to, and checks that its `state` is
    /// `expected_state` (pass what you sent in step 1).
    ///
    /// # Errors
    /// [`Error::StateMismatch`] when the state differs; [`Error::Callback`] when the URL does
    /// not look like a finX callback.
    pub fn parse_callback(
        &self,
        callback_url: &str,
        expected_state: Option<&str>,
    ) -> Result<Callback, Error> {
        let url = Url::parse(callback_url).map_err(|e| Error::Callback(e.to_string()))?;
        let get = |k: &str| {
            url.query_pairs()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.into_owned())
        };
        if get("state").as_deref() != expected_state {
            return Err(Error::StateMismatch);
        }
        let flow_id = get("flow_id");
        match get("success").as_deref() {
            Some("true") => {
                let code =
                    get("code").ok_or_else(|| Error::Callback("success without a code".into()))?;
                Ok(Callback::Success { code, flow_id })
            }
            Some("false") if get("cancel").as_deref() == Some("true") => {
                Ok(Callback::Cancelled { flow_id })
            }
            Some("false") => Ok(Callback::Failed {
                error: get("error"),
                flow_id,
            }),
            _ => Err(Error::Callback("no success parameter".into())),
        }
    }

    /// HTTP Basic with both parts form-encoded first (RFC 6749 §2.3.1).
    fn client_auth(&self, req: RequestBuilder) -> RequestBuilder {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        req.basic_auth(enc(&self.client_id), Some(enc(&self.client_secret)))
    }

    /// A refresh sent exactly once: retrying a refresh whose answer was lost would present
    /// the same token twice.
    pub(crate) async fn refresh_once(&self, refresh_token: &str) -> Result<Tokens, Error> {
        let url = self.url("auth/token")?;
        let req = self.client_auth(self.request(Method::POST, url)).form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ]);
        Self::json(req.send().await?).await
    }

    /// A token request, sent exactly once whatever the answer: a code or refresh token is
    /// never presented twice by the SDK, since a second presentation after the server
    /// committed (a 503 from a proxy, say) counts as reuse and revokes the grant. A 429 or
    /// 503 comes back as an error, for the caller to decide.
    async fn token_request(&self, form: &[(&str, &str)]) -> Result<Tokens, Error> {
        let url = self.url("auth/token")?;
        let req = self.client_auth(self.request(Method::POST, url)).form(form);
        Self::json(req.send().await?).await
    }

    /// Step 2: exchanges the code (one hour, once) for tokens.
    ///
    /// # Errors
    /// [`Error::InvalidGrant`] for an unknown, used or expired code.
    pub async fn exchange_code(&self, code: &str, redirect_uri: &str) -> Result<Tokens, Error> {
        self.token_request(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
        ])
        .await
    }

    /// Rotates a refresh token. The one passed in stops working: store the new one before
    /// anything else (a [`Connection`] does this for you).
    ///
    /// # Errors
    /// [`Error::InvalidGrant`] when the refresh token is unknown, expired or was already
    /// used (then the whole grant is revoked).
    pub async fn refresh(&self, refresh_token: &str, scope: Option<&str>) -> Result<Tokens, Error> {
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        self.token_request(&form).await
    }

    /// Revokes a token (a refresh token revokes the whole grant).
    ///
    /// # Errors
    /// When the server refuses (e.g. the token is another client's).
    pub async fn revoke(&self, token: &str) -> Result<(), Error> {
        let url = self.url("auth/revoke")?;
        let res = self
            .send(|| {
                self.client_auth(self.request(Method::POST, url.clone()))
                    .form(&[("token", token)])
            })
            .await?;
        if res.status().is_success() {
            return Ok(());
        }
        let status = res.status();
        let request_id = res
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Err(decode_error(status, &res.bytes().await?, request_id))
    }

    async fn get<T: DeserializeOwned>(
        &self,
        access_token: &str,
        path: &str,
        query: &[(&'static str, String)],
    ) -> Result<T, Error> {
        let url = self.url(path)?;
        let res = self
            .send(|| {
                self.request(Method::GET, url.clone())
                    .bearer_auth(access_token)
                    .query(query)
            })
            .await?;
        Self::json(res).await
    }

    /// The accounts of a grant.
    ///
    /// # Errors
    /// [`Error::Api`] (401 for an expired token, 403 without `accounts=ro`).
    pub async fn accounts(&self, access_token: &str) -> Result<Vec<Account>, Error> {
        Ok(self
            .get::<model::AccountList>(access_token, "rest/accounts", &[])
            .await?
            .accounts)
    }

    /// One account.
    ///
    /// # Errors
    /// [`Error::Api`] 404 when the grant does not see it.
    pub async fn account(&self, access_token: &str, id: &str) -> Result<Account, Error> {
        self.get(access_token, &format!("rest/accounts/{}", segment(id)), &[])
            .await
    }

    /// One account's balance.
    ///
    /// # Errors
    /// [`Error::Api`] (403 without `balance=ro`).
    pub async fn balance(&self, access_token: &str, id: &str) -> Result<Balance, Error> {
        self.get(
            access_token,
            &format!("rest/accounts/{}/balance", segment(id)),
            &[],
        )
        .await
    }

    /// One page of transactions.
    ///
    /// # Errors
    /// [`Error::Api`] naming a bad parameter.
    pub async fn transactions(
        &self,
        access_token: &str,
        query: &TransactionQuery,
    ) -> Result<Vec<Transaction>, Error> {
        Ok(self
            .get::<model::TransactionList>(access_token, "rest/transactions", &query.pairs())
            .await?
            .transactions)
    }

    /// One page of the transactions feed from `cursor` (from the beginning when `None`),
    /// at most `count` changes (1 to 500).
    ///
    /// # Errors
    /// [`Error::Api`] 409 with code 1023 when a sync changed a transaction of the current
    /// pass: restart from `data.restart_cursor`.
    pub async fn transactions_sync(
        &self,
        access_token: &str,
        cursor: Option<&str>,
        count: u32,
    ) -> Result<FeedPage, Error> {
        let mut query = vec![("count", count.to_string())];
        if let Some(c) = cursor {
            query.push(("cursor", c.to_owned()));
        }
        self.get(access_token, "rest/transactions/sync", &query)
            .await
    }

    /// One transaction.
    ///
    /// # Errors
    /// [`Error::Api`] 404 when the grant does not see it.
    pub async fn transaction(&self, access_token: &str, id: &str) -> Result<Transaction, Error> {
        self.get(
            access_token,
            &format!("rest/transactions/{}", segment(id)),
            &[],
        )
        .await
    }

    /// A connection for one end user: stores `tokens` under `key` (replacing what was there)
    /// and manages them from then on.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn connect(
        &self,
        key: &str,
        store: Arc<dyn TokenStore>,
        tokens: &Tokens,
    ) -> Result<Connection, Error> {
        let conn = Connection::new(self.clone(), key, store);
        conn.replace(tokens).await?;
        Ok(conn)
    }

    /// A connection for tokens already in `store` under `key` (e.g. after a restart).
    #[must_use]
    pub fn connection(&self, key: &str, store: Arc<dyn TokenStore>) -> Connection {
        Connection::new(self.clone(), key, store)
    }
}

fn segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

fn decode_error(status: StatusCode, body: &[u8], request_id: Option<String>) -> Error {
    let v: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => return Error::Decode(format!("HTTP {status} with a body that is not JSON")),
    };
    if let Some(error) = v["error"].as_str() {
        let description = v["error_description"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if error == "invalid_grant" {
            return Error::InvalidGrant {
                description,
                request_id,
            };
        }
        return Error::OAuth {
            status: status.as_u16(),
            error: error.to_owned(),
            description,
            request_id,
        };
    }
    let e = &v["error"];
    Error::Api {
        status: status.as_u16(),
        code: e["code"]
            .as_u64()
            .and_then(|c| u32::try_from(c).ok())
            .unwrap_or_default(),
        group: e["group"].as_str().unwrap_or_default().to_owned(),
        description: e["description"].as_str().unwrap_or_default().to_owned(),
        data: e["data"].clone(),
        request_id,
    }
}
