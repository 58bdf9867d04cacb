//! Shared fixtures: a settable clock, sample records.

use std::sync::Mutex;

use chrono::{TimeDelta, TimeZone};
use finx_domain::Timestamp;
use finx_domain::bank::{
    Account, AccountDetails, AccountType, Balance, BalanceStatus, Counterparty, SyncStatus,
    TransactionDetails, TransactionType,
};
use finx_domain::ids::{AccessId, ClientId, FlowId, GrantId};
use finx_domain::money::{Currency, Money};
use finx_domain::reference::Iban;
use finx_domain::scope::Scope;
use finx_domain::secret::TokenHash;
use finx_domain::token::{
    AccessTokenRecord, CodeRecord, Grant, IssuedTokens, Lifetimes, RefreshTokenRecord,
};
use finx_domain::values::RedirectUri;
use finx_ports::Clock;
use rust_decimal::Decimal;

/// A clock that stands still until moved.
#[derive(Debug)]
pub struct TestClock(Mutex<Timestamp>);

impl TestClock {
    /// A clock at `at`.
    #[must_use]
    pub fn at(at: Timestamp) -> Self {
        Self(Mutex::new(at))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: TimeDelta) {
        let mut t = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *t += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A fixed instant all fixtures start from.
#[must_use]
pub fn t0() -> Timestamp {
    chrono::Utc
        .with_ymd_and_hms(2026, 6, 15, 9, 30, 0)
        .single()
        .unwrap_or_default()
}

/// A hash unique per `n` and `salt`.
#[must_use]
pub fn hash(salt: u8, n: u32) -> TokenHash {
    let mut b = [salt; 32];
    b[..4].copy_from_slice(&n.to_be_bytes());
    TokenHash::from_bytes(b)
}

/// A unique id source so one store instance can serve many checks.
#[must_use]
pub fn unique16(salt: u8, n: u32) -> [u8; 16] {
    let mut b = [salt; 16];
    b[..4].copy_from_slice(&n.to_be_bytes());
    b
}

/// A grant with its code (hash `hash(1, n)`), issued at `now`.
#[must_use]
pub fn grant_with_code(n: u32, now: Timestamp) -> (Grant, CodeRecord) {
    let grant = Grant {
        id: GrantId::from_random(unique16(2, n)),
        client_id: ClientId::parse("conformance-client").unwrap_or_else(|_| unreachable!()),
        flow_id: FlowId::from_random(unique16(3, n)),
        access_id: AccessId::derive(&["conformance", &n.to_string()]),
        account_ids: vec![Account::id_for(
            &AccessId::derive(&["c"]),
            &format!("acct-{n}"),
        )],
        scope: Scope::FULL,
        redirect_uri: RedirectUri::parse("https://app.example/cb?tenant=ü")
            .unwrap_or_else(|_| unreachable!()),
        created_at: now,
        expires_at: now + Lifetimes::default().grant,
        revoked_at: None,
        language: finx_domain::values::Language::De,
        verification: None,
    };
    let code = CodeRecord {
        hash: hash(1, n),
        grant_id: grant.id,
        issued_at: now,
        expires_at: now + Lifetimes::default().code,
        used_at: None,
    };
    (grant, code)
}

/// Tokens for grant `g`: access `hash(4, n)`, refresh `hash(5, n)`.
#[must_use]
pub fn tokens(g: &Grant, n: u32, now: Timestamp) -> IssuedTokens {
    let l = Lifetimes::default();
    IssuedTokens {
        access: AccessTokenRecord {
            hash: hash(4, n),
            grant_id: g.id,
            issued_at: now,
            expires_at: now + l.access,
            scope: g.scope,
            revoked_at: None,
        },
        refresh: Some(RefreshTokenRecord {
            hash: hash(5, n),
            grant_id: g.id,
            issued_at: now,
            expires_at: now + l.refresh,
            used_at: None,
        }),
    }
}

/// An account with every field set, unicode included.
#[must_use]
pub fn account(access: &AccessId, external: &str, now: Timestamp) -> Account {
    let details = AccountDetails {
        external_id: external.into(),
        iban: Iban::from_german("90094815", "2881").ok(),
        account_number: Some("2881".into()),
        bank_code: Some("90094815".into()),
        bic: Some("FINXDEB1XXX".into()),
        bank_name: "Bänk Ümlaut & Söhne".into(),
        currency: Currency::EUR,
        account_type: AccountType::Giro,
        name: "Girokonto 🏦".into(),
        owner: "Jürgen Groß".into(),
        is_jointly_managed: true,
        card_last4: Some("1234".into()),
    };
    Account {
        id: Account::id_for(access, external),
        access_id: access.clone(),
        details,
        balance: Some(Balance {
            amount: Money::new(Decimal::new(1_234_567_890_123_499, 2), Currency::EUR),
            date: now.date_naive(),
            status: BalanceStatus::Available,
        }),
        status: SyncStatus {
            synced_at: now,
            succeeded_at: None,
            message: Some("Bank sagt: später".into()),
        },
    }
}

/// A transaction with every field set; `n` varies the date, amount and ids.
#[must_use]
pub fn transaction(n: u32, booked: bool, start: Timestamp) -> TransactionDetails {
    let day = start.date_naive() - TimeDelta::days(i64::from(n % 40));
    let amounts = [
        Decimal::new(-1, 2),
        Decimal::new(1_234_567_890_123_499, 2),
        Decimal::new(-4_250, 2),
        Decimal::new(300_000, 2),
    ];
    TransactionDetails {
        external_id: format!("{}-{n}", if booked { "b" } else { "p" }),
        amount: Money::new(amounts[(n % 4) as usize], Currency::EUR),
        counterparty: Counterparty {
            name: Some(format!("Bäckerei Größe №{n} — 日本")),
            iban: Iban::from_german("90094816", &format!("{}", 1000 + n)).ok(),
            bic: Some("SPMUDEM1XXX".into()),
            account_number: Some(format!("{}", 1000 + n)),
            bank_code: Some("90094816".into()),
        },
        purpose: Some(format!(
            "EREF+E{n} MREF+M-{n} CRED+DE98ZZZ09999999999 SVWZ+Brötchen 🥐 {n}"
        )),
        booked_on: day,
        value_date: day + TimeDelta::days(1),
        booked,
        booking_text: Some("SEPA-LASTSCHRIFT".into()),
        transaction_type: if n % 2 == 0 {
            TransactionType::DirectDebit
        } else {
            TransactionType::ElectronicCash
        },
        creditor_id: Some("DE98ZZZ09999999999".into()),
        mandate_reference: Some(format!("M-{n}")),
        end_to_end_reference: Some(format!("E{n}")),
        sepa_purpose_code: (n % 3 == 0).then(|| "SALA".into()),
        bank_transaction_code: (n % 2 == 0).then(|| "PMNT-RCDT-ESCT".into()),
        mcc: (n % 5 == 0).then(|| "5411".into()),
    }
}

/// The core wired to real in-process adapters: memory store, sandbox bank, OS randomness
/// and a [`TestClock`].
pub struct App {
    /// The use cases.
    pub finx: finx_core::Finx,
    /// The clock everything reads (the sandbox bank included).
    pub clock: std::sync::Arc<TestClock>,
    /// The store.
    pub store: std::sync::Arc<dyn crate::conformance::Store>,
    /// The demo client.
    pub client: finx_ports::Client,
    /// Its secret.
    pub secret: finx_domain::secret::ClientSecret,
    /// The sandbox bank behind the connector (its pages are served by [`Served`]).
    pub sandbox: std::sync::Arc<finx_bank_sandbox::SandboxBank>,
    /// The address [`Served`] serves this app on: bound up front, since the sandbox's
    /// redirect pages and finX's return route must be known to the bank and the core.
    pub base: url::Url,
    listener: std::sync::Mutex<Option<std::net::TcpListener>>,
}

/// The demo client's secret.
pub const DEMO_SECRET: &str = "fxs_test-secret-0123456789";

/// The redirect URI the demo client registers.
pub const REDIRECT: &str = "https://app.example/callback";

impl App {
    /// A fresh app at [`t0`] with one registered client, `demo-app`.
    ///
    /// # Panics
    /// When the wiring fails, which is a bug in the test setup.
    pub async fn new() -> Self {
        Self::with(std::time::Duration::from_millis(10), |bank| bank).await
    }

    /// A fresh app like [`App::new`], on `store`.
    ///
    /// # Panics
    /// When the wiring fails.
    pub async fn on(store: std::sync::Arc<dyn crate::conformance::Store>) -> Self {
        Self::build(
            store,
            std::time::Duration::from_millis(10),
            |bank| bank,
            |_| {},
        )
        .await
    }

    /// A fresh app like [`App::new`] on `store`, with its core's settings changed by `tune`
    /// (sync policy, retention, ...).
    ///
    /// # Panics
    /// When the wiring fails.
    pub async fn tuned(
        store: std::sync::Arc<dyn crate::conformance::Store>,
        tune: impl FnOnce(&mut finx_core::Settings),
    ) -> Self {
        Self::build(
            store,
            std::time::Duration::from_millis(10),
            |bank| bank,
            tune,
        )
        .await
    }

    /// A fresh app whose sandbox's slow user waits `slow_delay`, with the bank wrapped by
    /// `wrap` (to count or delay calls).
    ///
    /// # Panics
    /// When the wiring fails, which is a bug in the test setup.
    pub async fn with(
        slow_delay: std::time::Duration,
        wrap: impl FnOnce(
            std::sync::Arc<dyn finx_ports::BankConnector>,
        ) -> std::sync::Arc<dyn finx_ports::BankConnector>,
    ) -> Self {
        Self::build(
            std::sync::Arc::new(finx_store_memory::MemoryStore::new()),
            slow_delay,
            wrap,
            |_| {},
        )
        .await
    }

    async fn build(
        store: std::sync::Arc<dyn crate::conformance::Store>,
        slow_delay: std::time::Duration,
        wrap: impl FnOnce(
            std::sync::Arc<dyn finx_ports::BankConnector>,
        ) -> std::sync::Arc<dyn finx_ports::BankConnector>,
        tune: impl FnOnce(&mut finx_core::Settings),
    ) -> Self {
        use std::sync::Arc;
        let clock = Arc::new(TestClock::at(t0()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let base = url::Url::parse(&format!(
            "http://{}/",
            listener.local_addr().expect("address")
        ))
        .expect("url");

        let sandbox = Arc::new(finx_bank_sandbox::SandboxBank::new(
            finx_bank_sandbox::SandboxConfig {
                slow_delay,
                public_url: base.clone(),
                ..Default::default()
            },
            clock.clone(),
        ));
        let bank: Arc<dyn finx_ports::BankConnector> = sandbox.clone();
        let ports = finx_core::Ports {
            clients: store.clone(),
            flows: store.clone(),
            grants: store.clone(),
            data: store.clone(),
            accesses: store.clone(),
            bank: wrap(bank),
            clock: clock.clone(),
            random: Arc::new(finx_system::OsRandom),
            timer: Arc::new(finx_system::TokioTimer),
            bus: store.clone(),
            telemetry: Arc::new(finx_ports::NoTelemetry),
            webhooks: store.clone(),
            sender: Arc::new(
                finx_webhooks::HttpSender::new(
                    finx_domain::webhook::UrlPolicy { sandbox: true },
                    std::time::Duration::from_millis(500),
                )
                .expect("webhook sender"),
            ),
        };
        let mut settings = finx_core::Settings {
            lifetimes: Lifetimes::default(),
            hash_key: b"test-hash-key-0123456789abcdef!!".to_vec(),
            bank_timeout: std::time::Duration::from_secs(2),
            return_url: base.join("widget/callback").expect("url"),
            // The token rules are tested over a grant's whole life: one-time data here is
            // kept as long as a grant lives. `App::with_settings` tests the retention.
            onetime_retention: std::time::Duration::from_secs(180 * 86_400),
            webhooks: finx_core::WebhookSettings {
                policy: finx_domain::webhook::UrlPolicy { sandbox: true },
                ..finx_core::WebhookSettings::default()
            },
            ..finx_core::Settings::with_hash_key(Vec::new())
        };
        tune(&mut settings);
        let finx = finx_core::Finx::new(ports, settings).expect("valid key");
        // Other instances' writes on a shared database, heard as the server hears them.
        let listening = finx.clone();
        tokio::spawn(async move { listening.run_invalidation_listener().await });
        // A fixed secret, so an app reopened on the same database finds its client again.
        let secret =
            finx_domain::secret::ClientSecret::from_presented(DEMO_SECRET).expect("valid secret");
        let registered = finx
            .register_client(finx_core::NewClient {
                id: Some("demo-app".into()),
                name: "Demo App".into(),
                redirect_uris: vec![REDIRECT.into()],
                scope: None,
                secret: Some(secret.clone()),
            })
            .await;
        let client = match registered {
            Ok(r) => r.client,
            Err(finx_core::CoreError::Store(finx_ports::StoreError::Conflict(_))) => finx
                .authenticate_client("demo-app", DEMO_SECRET)
                .await
                .expect("the existing demo client"),
            Err(e) => panic!("register: {e:?}"),
        };
        Self {
            finx,
            clock,
            store,
            client,
            secret,
            sandbox,
            base,
            listener: std::sync::Mutex::new(Some(listener)),
        }
    }

    /// The listener bound for this app, once.
    fn take_listener(&self) -> Option<std::net::TcpListener> {
        self.listener
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// Faults a [`CountingBank`] puts in front of the real bank.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Login answers never get a reply.
    pub hang_logins: bool,
    /// The transaction fetch with this number (0 is the first) fails as unavailable.
    pub fail_transactions_call: Option<usize>,
}

/// A bank connector that counts login answers, TAN answers and transaction fetches, then
/// hands them on, with the [`Faults`] it was given.
pub struct CountingBank {
    inner: std::sync::Arc<dyn finx_ports::BankConnector>,
    faults: Faults,
    /// Login answers given to the bank so far.
    pub logins: std::sync::atomic::AtomicUsize,
    /// TAN answers given to the bank so far.
    pub tans: std::sync::atomic::AtomicUsize,
    /// `transactions` calls so far.
    pub fetches: std::sync::atomic::AtomicUsize,
}

impl CountingBank {
    /// Wraps `inner`.
    #[must_use]
    pub fn new(inner: std::sync::Arc<dyn finx_ports::BankConnector>) -> Self {
        Self::faulty(inner, Faults::default())
    }

    /// Wraps `inner`, with `faults`.
    #[must_use]
    pub fn faulty(inner: std::sync::Arc<dyn finx_ports::BankConnector>, faults: Faults) -> Self {
        Self {
            inner,
            faults,
            logins: 0.into(),
            tans: 0.into(),
            fetches: 0.into(),
        }
    }
}

#[async_trait::async_trait]
impl finx_ports::BankConnector for CountingBank {
    async fn institutions(
        &self,
    ) -> Result<Vec<finx_domain::bank::Institution>, finx_ports::BankError> {
        self.inner.institutions().await
    }

    async fn begin(
        &self,
        institution: &finx_domain::ids::InstitutionId,
        consent: &finx_ports::ConsentRequest,
        return_to: &finx_ports::ReturnTo,
    ) -> Result<finx_ports::BankReply, finx_ports::BankError> {
        self.inner.begin(institution, consent, return_to).await
    }

    async fn answer(
        &self,
        institution: &finx_domain::ids::InstitutionId,
        session: &finx_domain::flow::BankSession,
        answer: &finx_domain::sca::StepAnswer,
        return_to: &finx_ports::ReturnTo,
    ) -> Result<finx_ports::BankReply, finx_ports::BankError> {
        match answer {
            finx_domain::sca::StepAnswer::Login(_) => {
                self.logins
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if self.faults.hang_logins {
                    return std::future::pending().await;
                }
            }
            finx_domain::sca::StepAnswer::Tan(_) => {
                self.tans.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            _ => {}
        }
        self.inner
            .answer(institution, session, answer, return_to)
            .await
    }

    async fn end_consent(
        &self,
        session: &finx_domain::flow::BankSession,
    ) -> Result<(), finx_ports::BankError> {
        self.inner.end_consent(session).await
    }

    async fn accounts(
        &self,
        session: &finx_domain::flow::BankSession,
        psu: &finx_ports::Presence,
    ) -> Result<Vec<AccountDetails>, finx_ports::BankError> {
        self.inner.accounts(session, psu).await
    }

    async fn balances(
        &self,
        session: &finx_domain::flow::BankSession,
        account: &str,
        psu: &finx_ports::Presence,
    ) -> Result<Vec<Balance>, finx_ports::BankError> {
        self.inner.balances(session, account, psu).await
    }

    async fn transactions(
        &self,
        session: &finx_domain::flow::BankSession,
        account: &str,
        from: finx_domain::Date,
        to: finx_domain::Date,
        psu: &finx_ports::Presence,
    ) -> Result<Vec<TransactionDetails>, finx_ports::BankError> {
        let n = self
            .fetches
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.faults.fail_transactions_call == Some(n) {
            return Err(finx_ports::BankError::Unavailable(
                "scripted failure".into(),
            ));
        }
        self.inner
            .transactions(session, account, from, to, psu)
            .await
    }
}

/// A client that acts as one browser: its own cookies, redirects read, not followed.
///
/// # Panics
/// When the client cannot be built.
#[must_use]
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .expect("client")
}

/// Every transaction of `accounts`, pending ones included, newest first: the first `count`.
#[must_use]
pub fn everything(
    accounts: Vec<finx_domain::ids::AccountId>,
    count: u32,
) -> finx_domain::query::ResolvedQuery {
    finx_domain::query::ResolvedQuery {
        accounts,
        count,
        offset: 0,
        sort: finx_domain::query::SortOrder::Desc,
        since: None,
        until: None,
        since_type: finx_domain::query::SinceType::Booked,
        include_pending: true,
        filter: None,
    }
}

/// The `code` of the redirect a completed flow sends the end user back with.
///
/// # Panics
/// When it carries none.
#[must_use]
pub fn code_of(back: &url::Url) -> String {
    back.query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no code in {back}"))
}

/// The `token` query parameter of a widget link.
///
/// # Panics
/// When `location` is not a widget link.
#[must_use]
pub fn token_of(location: &str) -> String {
    url::Url::parse(location)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .expect("token")
}

/// The hidden CSRF field of a widget page.
///
/// # Panics
/// When the page has none.
#[must_use]
pub fn csrf_of(html: &str) -> String {
    let at =
        html.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().expect("value").to_owned()
}

/// The key test servers sign widget links with.
pub const LINK_KEY: &[u8] = b"test-link-key-0123456789abcdef-0123";

/// An [`App`] served over HTTP on a loopback port, by the real router.
pub struct Served {
    /// `http://127.0.0.1:PORT/`.
    pub base: url::Url,
    /// The app behind it.
    pub app: App,
    /// A client for it.
    pub http: reqwest::Client,
}

impl Served {
    /// Serves `app` on a free loopback port until the test ends.
    ///
    /// # Panics
    /// When no port can be bound.
    pub async fn start(app: App) -> Self {
        Self::start_with(app, finx_http::limit::RateLimits::default()).await
    }

    /// Like [`Served::start`], with these rate limits.
    ///
    /// # Panics
    /// When no port can be bound.
    pub async fn start_with(app: App, limits: finx_http::limit::RateLimits) -> Self {
        Self::start_full(app, limits, finx_http::ServerTimeouts::default()).await
    }

    /// Like [`Served::start_with`], with these server time limits.
    ///
    /// # Panics
    /// When no port can be bound.
    pub async fn start_full(
        app: App,
        limits: finx_http::limit::RateLimits,
        timeouts: finx_http::ServerTimeouts,
    ) -> Self {
        Self::start_configured(app, limits, timeouts, Vec::new()).await
    }

    /// Like [`Served::start_with`], believing `X-Forwarded-For` from these networks.
    ///
    /// # Panics
    /// When no port can be bound.
    pub async fn start_behind_proxy(
        app: App,
        limits: finx_http::limit::RateLimits,
        trusted_proxies: Vec<ipnet::IpNet>,
    ) -> Self {
        Self::start_configured(
            app,
            limits,
            finx_http::ServerTimeouts::default(),
            trusted_proxies,
        )
        .await
    }

    async fn start_configured(
        app: App,
        limits: finx_http::limit::RateLimits,
        timeouts: finx_http::ServerTimeouts,
        trusted_proxies: Vec<ipnet::IpNet>,
    ) -> Self {
        let listener = app.take_listener().expect("an app is served once");
        listener.set_nonblocking(true).expect("non-blocking");
        let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
        let base = app.base.clone();
        let config = finx_http::HttpConfig {
            public_url: base.clone(),
            link_key: finx_http::LinkKey::new(LINK_KEY.to_vec()),
            demo_client: Some(finx_http::DemoClient {
                id: "demo-app".to_owned(),
                secret: DEMO_SECRET.to_owned(),
            }),
            limits,
            trusted_proxies,
            completion_budget: std::time::Duration::from_secs(300),
            render_cache_bytes: finx_http::render::DEFAULT_CACHE_BYTES,
        };
        let router = finx_http::router_with(
            finx_http::AppState::new(app.finx.clone(), config),
            finx_bank_sandbox::web::router(app.sandbox.clone()),
        );
        tokio::spawn(finx_http::serve(
            listener,
            router,
            std::future::pending(),
            std::time::Duration::from_secs(1),
            timeouts,
        ));
        Self {
            base,
            app,
            http: browser(),
        }
    }

    /// The absolute URL of `path`.
    ///
    /// # Panics
    /// When `path` is not a valid relative URL.
    #[must_use]
    pub fn url(&self, path: &str) -> url::Url {
        self.base.join(path.trim_start_matches('/')).expect("path")
    }
}

/// Walks the widget at `location` through its plain forms, as a browser without
/// JavaScript would (bank, login `user`/`demo`, pushTAN, TAN, or the redirect bank's own
/// pages and back, or a decoupled approval polled for up to a minute, all preselected
/// accounts, fetch), and returns where it sends the user back to. A decoupled approval
/// comes on the bank's clock: an app on a [`TestClock`] must move it meanwhile.
///
/// # Panics
/// When a page is not what the flow expects.
pub async fn walk_widget(
    _http: &reqwest::Client,
    location: &str,
    bank: &str,
    user: &str,
) -> url::Url {
    // The last step answers with a redirect to read, not to follow.
    let http = &browser();
    let page_url = url::Url::parse(location).expect("location");
    let origin = page_url.origin().ascii_serialization();
    let token = page_url
        .query_pairs()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .expect("token");
    let page = http
        .get(location)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    let at =
        page.find("name=\"csrf\" value=\"").expect("csrf field") + "name=\"csrf\" value=\"".len();
    let csrf = page[at..].split('"').next().expect("csrf").to_owned();
    let post = |path: &str, extra: Vec<(&str, String)>| {
        let mut form = vec![("token", token.clone()), ("csrf", csrf.clone())];
        form.extend(extra);
        http.post(format!("{origin}{path}")).form(&form).send()
    };
    if page.contains("bank-choice") {
        post("/widget/bank", vec![("institution", bank.to_owned())])
            .await
            .expect("bank");
    }
    // The bank leads: answer whatever it asks until the accounts are on offer.
    let mut page = String::new();
    for _ in 0..60 {
        page = page_text(http, location).await;
        if page.contains("name=\"account\"") {
            break;
        } else if page.contains("id=\"login\"") {
            post(
                "/widget/login",
                vec![("f_user", user.to_owned()), ("f_pin", "demo".to_owned())],
            )
            .await
            .expect("login");
        } else if page.contains("id=\"choose-method\"") {
            post("/widget/method", vec![("method", "push".to_owned())])
                .await
                .expect("method");
        } else if page.contains("id=\"tan\"") {
            post("/widget/tan", vec![("tan", "123456".to_owned())])
                .await
                .expect("tan");
        } else if page.contains("id=\"to-bank\"") {
            at_the_bank(http, &bank_link_of(&page), user).await;
        } else if page.contains("id=\"decoupled-text\"") {
            // The bank app decides on the bank's clock; the page polls at the bank's pace.
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            let poll = format!(
                "{origin}/widget/poll?token={}",
                form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
            );
            http.get(poll).send().await.expect("poll");
        } else {
            panic!("a widget page walk_widget cannot answer: {page}");
        }
    }
    let accounts: Vec<(&str, String)> = page
        .split("name=\"account\"")
        .skip(1)
        .filter(|chunk| {
            chunk
                .split('>')
                .next()
                .is_some_and(|tag| tag.contains("checked"))
        })
        .filter_map(|chunk| {
            chunk
                .split("value=\"")
                .nth(1)?
                .split('"')
                .next()
                .map(|v| ("account", v.to_owned()))
        })
        .collect();
    assert!(!accounts.is_empty(), "accounts offered: {page}");
    post("/widget/accounts", accounts).await.expect("accounts");
    let res = post("/widget/sync", vec![]).await.expect("sync");
    let page = res
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("to the page that waits")
        .to_owned();
    assert!(page.starts_with("/widget?"), "{page}");
    // The server fetches the data on its own; the page reloads until it sends us back.
    for _ in 0..600 {
        let res = http
            .get(format!("{origin}{page}"))
            .send()
            .await
            .expect("page");
        if let Some(back) = res.headers().get("location").and_then(|v| v.to_str().ok()) {
            return url::Url::parse(back).expect("callback URL");
        }
        let html = res.text().await.expect("html");
        assert!(
            html.contains("http-equiv=\"refresh\""),
            "the waiting page reloads itself: {html}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the data fetch did not end");
}

/// An HTML attribute's text as the browser reads it (the widget's templates escape `/` and
/// `&`).
#[must_use]
pub fn unescape(attribute: &str) -> String {
    attribute.replace("&#x2f;", "/").replace("&amp;", "&")
}

/// The body of a GET of `url` in `http`.
///
/// # Panics
/// When the request fails.
pub async fn page_text(http: &reqwest::Client, url: &str) -> String {
    http.get(url)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html")
}

/// The address of the widget's "continue at your bank" link on `html`.
///
/// # Panics
/// When the page has no such link.
#[must_use]
pub fn bank_link_of(html: &str) -> String {
    let at = html.find("id=\"to-bank\"").expect("a link to the bank");
    html[..at]
        .rsplit("href=\"")
        .next()
        .and_then(|h| h.split('"').next())
        .map(unescape)
        .expect("href")
}

/// At the redirect bank's page `bank_url`: logs in as `user` with PIN `demo` and confirms
/// with the TAN (unless the bank sends the user back at once); returns the address the bank
/// sends the browser back to, not followed.
///
/// # Panics
/// When the bank's pages are not what the sandbox serves.
pub async fn approve_at_bank(http: &reqwest::Client, bank_url: &str, user: &str) -> String {
    // An OAuth bank's authorization endpoint first sends the browser on to its pages.
    let mut bank_url = url::Url::parse(bank_url).expect("bank URL");
    for _ in 0..3 {
        let res = http.get(bank_url.clone()).send().await.expect("bank page");
        let Some(next) = res
            .status()
            .is_redirection()
            .then(|| {
                res.headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            })
            .flatten()
        else {
            break;
        };
        bank_url = bank_url.join(&next).expect("location");
    }
    let bank_url = bank_url.as_str();
    let page = page_text(http, bank_url).await;
    assert!(page.contains("bank-login"), "the bank's login page: {page}");
    let mut res = http
        .post(bank_url)
        .form(&[("action", "login"), ("user", user), ("pin", "demo")])
        .send()
        .await
        .expect("bank login");
    if res.status().is_success() {
        let page = res.text().await.expect("html");
        assert!(page.contains("bank-tan"), "the bank's TAN page: {page}");
        res = http
            .post(bank_url)
            .form(&[("action", "tan"), ("tan", "123456")])
            .send()
            .await
            .expect("bank TAN");
    }
    assert!(
        res.status().is_redirection(),
        "back to finX: {}",
        res.status()
    );
    res.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("location")
        .to_owned()
}

/// [`approve_at_bank`], then the bank's redirect back to finX's return route followed,
/// which leads to the widget page.
///
/// # Panics
/// When the bank's pages are not what the sandbox serves.
pub async fn at_the_bank(http: &reqwest::Client, bank_url: &str, user: &str) {
    let back = approve_at_bank(http, bank_url, user).await;
    assert!(back.contains("/widget/callback?"), "{back}");
    let res = http.get(&back).send().await.expect("return");
    assert!(
        res.status().is_redirection(),
        "the return route leads to the widget: {}",
        res.status()
    );
}

impl App {
    /// Takes a flow whose bank is chosen through whatever the sandbox bank asks, as `user`
    /// with PIN `demo` and TAN `123456`, until the accounts are on offer: the login form, the
    /// pushTAN, the redirect bank's pages (driven directly) and back through the return
    /// address the bank was given, or the decoupled bank's app (the clock moved for the
    /// poll).
    ///
    /// # Panics
    /// When a step fails.
    pub async fn through_bank(&self, flow: FlowId, user: &str) -> finx_domain::flow::Flow {
        use finx_domain::sca::{BankStep, StepAnswer};
        let mut f = self.finx.open_at_bank(flow).await.expect("at the bank");
        for _ in 0..8 {
            let Some(step) = f.asked().cloned() else {
                return f;
            };
            f = match step {
                BankStep::Login { .. } => {
                    let answer = StepAnswer::Login(vec![
                        ("user".into(), user.into()),
                        ("pin".into(), "demo".into()),
                    ]);
                    self.finx.submit_step(flow, answer).await.expect("login")
                }
                BankStep::ChooseMethod { .. } => {
                    self.finx.choose_method(flow, "push").await.expect("method")
                }
                BankStep::Tan { .. } => self.finx.submit_tan(flow, "123456").await.expect("tan"),
                BankStep::Redirect { url } => {
                    let id = url
                        .path_segments()
                        .and_then(|mut s| s.next_back())
                        .expect("id");
                    let mut page = self.sandbox.bank_login(id, user, "demo").await;
                    if let finx_bank_sandbox::BankPage::Tan { .. } = page {
                        page = self.sandbox.bank_tan(id, "123456");
                    }
                    let finx_bank_sandbox::BankPage::Back(back) = page else {
                        panic!("the bank sends the user back: {page:?}");
                    };
                    let state = back
                        .query_pairs()
                        .find(|(k, _)| k == "state")
                        .map(|(_, v)| v.into_owned())
                        .expect("state");
                    let (id, nonce) = finx_core::Finx::return_state(&state).expect("ours");
                    assert_eq!(id, flow);
                    self.finx
                        .return_from_bank(flow, &nonce, true, None)
                        .await
                        .expect("return")
                }
                BankStep::Decoupled {
                    poll_after_seconds, ..
                } => {
                    for a in self.sandbox.waiting_approvals() {
                        let _ = self.sandbox.decide(&a.id, true, "123456");
                    }
                    self.clock
                        .advance(TimeDelta::seconds(i64::from(poll_after_seconds)));
                    self.finx.poll_bank(flow).await.expect("poll")
                }
            };
        }
        panic!("the bank asked too many steps");
    }

    /// Walks a flow at `bank` with the `nosca` login (no SCA), chooses the giro account,
    /// and exchanges the code: the tokens a customer holds after the guide's step 2.
    ///
    /// # Panics
    /// When a step fails, which the calling test does not expect.
    pub async fn nosca_tokens(&self, bank: &str) -> finx_core::TokenResponse {
        let req = finx_core::OnetimeAccessRequest {
            redirect_uri: REDIRECT.into(),
            ..Default::default()
        };
        let flow = self
            .finx
            .create_onetime_access(&self.client, req)
            .await
            .expect("create");
        self.finx.select_bank(flow.id, bank).await.expect("select");
        self.through_bank(flow.id, "nosca").await;
        self.finx
            .choose_accounts(flow.id, vec!["giro".into()])
            .await
            .expect("choose");
        let url = self.finx.complete(flow.id).await.expect("complete");
        let code = code_of(&url);
        self.finx
            .exchange_code(&self.client, &code, REDIRECT)
            .await
            .expect("exchange")
    }
}

/// Connects an ongoing access of the sandbox login `login` for the end user `user_id` over
/// HTTP (the link, the widget, the code exchange) and returns the token answer.
///
/// # Panics
/// When a step fails.
pub async fn connect_ongoing(s: &Served, login: &str, user_id: &str) -> serde_json::Value {
    let link: serde_json::Value = s
        .http
        .post(s.url("/ongoing/access"))
        .basic_auth("demo-app", Some(DEMO_SECRET))
        .json(&serde_json::json!({
            "redirect_uri": REDIRECT, "user_id": user_id, "provider_id": "sandbox-90094815"
        }))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let back = walk_widget(
        &s.http,
        link["location"].as_str().expect("location"),
        "sandbox-90094815",
        login,
    )
    .await;
    let code = code_of(&back);
    let tokens: serde_json::Value = s
        .http
        .post(s.url("/auth/token"))
        .basic_auth("demo-app", Some(DEMO_SECRET))
        .json(&serde_json::json!({
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT
        }))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert!(tokens["access_token"].is_string(), "{tokens}");
    tokens
}
