//! The Rust SDK against a real finX server over loopback.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::TimeDelta;
use finx_client::{
    Callback, Change, ClientConfig, Error, FinxClient, MemoryTokenStore, OnetimeAccess,
    SqlTokenStore, TokenStore, TransactionQuery,
};
use finx_domain::ids::FlowId;
use finx_ports::{BankCredentials, Clock as _};
use finx_tests::fixtures::{App, DEMO_SECRET, REDIRECT, Served};
use futures::TryStreamExt as _;

struct Setup {
    served: Served,
    refreshes: Arc<AtomicUsize>,
}

impl Setup {
    async fn new() -> Self {
        Self {
            served: Served::start(App::new().await).await,
            refreshes: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// An SDK client on the server's clock, counting refreshes.
    fn client(&self) -> FinxClient {
        self.client_with(TimeDelta::zero(), std::time::Duration::ZERO)
    }

    /// An SDK client whose clock runs `ahead` of the server's, counting refreshes and
    /// holding each refresh's lease `pause` longer, as a slow network would.
    fn client_with(&self, ahead: TimeDelta, pause: std::time::Duration) -> FinxClient {
        let clock = self.served.app.clock.clone();
        let count = self.refreshes.clone();
        let config = ClientConfig {
            clock: Arc::new(move || clock.now() + ahead),
            on_refresh: Some(Arc::new(move || {
                count.fetch_add(1, Ordering::SeqCst);
                if !pause.is_zero() {
                    std::thread::sleep(pause);
                }
            })),
            ..ClientConfig::default()
        };
        FinxClient::with_config(self.served.base.as_str(), "demo-app", DEMO_SECRET, config)
            .expect("client")
    }

    /// Steps 1 and 2: a link from the SDK, the widget through the core, the callback parsed.
    async fn code(&self, finx: &FinxClient) -> String {
        let link = finx
            .create_onetime_access(&OnetimeAccess {
                redirect_uri: REDIRECT.into(),
                state: Some("user-7".into()),
                accounts: vec!["DE82900948150000002881".into()],
                ..Default::default()
            })
            .await
            .expect("link");
        assert!(link.location.contains("/widget?token="));
        let flow = FlowId::parse(&link.id).expect("flow id");
        let core = &self.served.app.finx;
        core.submit_credentials(
            flow,
            &BankCredentials {
                user: "demo".into(),
                secret: "demo".into(),
            },
        )
        .await
        .expect("login");
        core.choose_method(flow, "push").await.expect("method");
        let f = core.submit_tan(flow, "123456").await.expect("tan");
        core.choose_accounts(
            flow,
            f.preselected()
                .into_iter()
                .map(|a| a.external_id.clone())
                .collect(),
        )
        .await
        .expect("choose");
        let url = core.complete(flow).await.expect("complete");
        match finx
            .parse_callback(url.as_str(), Some("user-7"))
            .expect("callback")
        {
            Callback::Success { code, flow_id } => {
                assert_eq!(flow_id.as_deref(), Some(link.id.as_str()));
                code
            }
            other => panic!("expected success, got {other:?}"),
        }
    }

    fn advance(&self, by: TimeDelta) {
        self.served.app.clock.advance(by);
    }
}

#[tokio::test]
async fn the_guide_through_the_sdk_pages_through_every_transaction() {
    let s = Setup::new().await;
    let finx = s.client();
    let code = s.code(&finx).await;
    let tokens = finx.exchange_code(&code, REDIRECT).await.expect("exchange");
    assert!(
        !format!("{tokens:?}").contains(&tokens.access_token),
        "tokens are redacted in Debug"
    );
    let conn = finx
        .connect("user-7", Arc::new(MemoryTokenStore::default()), &tokens)
        .await
        .expect("connect");
    let accounts = conn.accounts().await.expect("accounts");
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].iban.as_deref(), Some("DE82900948150000002881"));
    let balance = conn
        .balance(&accounts[0].account_id)
        .await
        .expect("balance");
    assert_eq!(balance.currency, "EUR");
    let everything = conn
        .transactions(&TransactionQuery::new().include_pending(true))
        .await
        .expect("one big page");
    let paged: Vec<_> = conn
        .all_transactions(TransactionQuery::new().include_pending(true).count(7))
        .try_collect()
        .await
        .expect("pages");
    assert!(everything.len() > 20, "{}", everything.len());
    // The SDK reads the categories: the top level first, the leaf after, with what decided.
    let categorised = everything
        .iter()
        .find(|t| t.categories.len() == 2)
        .expect("a categorised transaction");
    assert!(
        categorised.categories[1]
            .id
            .starts_with(&format!("{}.", categorised.categories[0].id))
    );
    assert!(categorised.category_source.is_some());
    assert_eq!(
        paged, everything,
        "keyset paging returns every transaction once, in order"
    );
    let asc: Vec<_> = conn
        .all_transactions(
            TransactionQuery::new()
                .sort(finx_client::Sort::Asc)
                .count(9),
        )
        .try_collect()
        .await
        .expect("pages");
    let mut booked: Vec<_> = everything.iter().filter(|t| t.booked).cloned().collect();
    booked.reverse();
    assert_eq!(asc, booked);
    let one = conn
        .transactions(&TransactionQuery::new().count(1).filter("purpose", "miete"))
        .await
        .expect("filter");
    assert!(one.iter().all(|t| {
        t.purpose
            .as_deref()
            .is_some_and(|p| p.to_lowercase().contains("miete"))
    }));
}

#[tokio::test]
async fn the_feed_as_a_stream_rebuilds_every_transaction_and_resumes_from_its_checkpoint() {
    let s = Setup::new().await;
    let finx = s.client();
    let code = s.code(&finx).await;
    let tokens = finx.exchange_code(&code, REDIRECT).await.expect("exchange");
    let conn = finx
        .connect("user-7", Arc::new(MemoryTokenStore::default()), &tokens)
        .await
        .expect("connect");
    // Applying the stream's changes rebuilds exactly what /rest/transactions shows.
    let mut replica = std::collections::BTreeMap::new();
    let mut checkpoint = None;
    let changes: Vec<Change> = conn
        .changes_in_pages(None, 7)
        .try_collect()
        .await
        .expect("feed");
    for c in &changes {
        match c {
            Change::Added(t) | Change::Modified(t) => {
                replica.insert(t.transaction_id.clone(), t.clone());
            }
            Change::Removed(id) => {
                replica.remove(id);
            }
            Change::Checkpoint(cursor) => checkpoint = Some(cursor.clone()),
            other => panic!("no sync ran, so no {other:?}"),
        }
    }
    assert!(changes.len() > 14, "several pages of 7: {}", changes.len());
    assert_eq!(
        changes
            .iter()
            .filter(|c| matches!(c, Change::Checkpoint(_)))
            .count(),
        1,
        "one pass, one checkpoint at its end"
    );
    assert!(matches!(changes.last(), Some(Change::Checkpoint(_))));
    assert_eq!(replica, shown(&conn).await);
    // From the last checkpoint, nothing new: one checkpoint and the end.
    let again: Vec<Change> = conn.changes(checkpoint).try_collect().await.expect("feed");
    assert_eq!(again.len(), 1, "{again:?}");
    assert!(matches!(again[0], Change::Checkpoint(_)));
}

#[tokio::test]
async fn callbacks_for_cancel_failure_and_a_foreign_state_are_told_apart() {
    let s = Setup::new().await;
    let finx = s.client();
    let core = &s.served.app.finx;
    let link = finx
        .create_onetime_access(&OnetimeAccess {
            redirect_uri: REDIRECT.into(),
            state: Some("st".into()),
            ..Default::default()
        })
        .await
        .expect("link");
    let url = core
        .cancel(FlowId::parse(&link.id).expect("id"))
        .await
        .expect("cancel");
    assert_eq!(
        finx.parse_callback(url.as_str(), Some("st"))
            .expect("cancel"),
        Callback::Cancelled {
            flow_id: Some(link.id.clone())
        }
    );
    assert!(matches!(
        finx.parse_callback(url.as_str(), Some("other")),
        Err(Error::StateMismatch)
    ));
    assert!(matches!(
        finx.parse_callback(url.as_str(), None),
        Err(Error::StateMismatch)
    ));
    let failed = format!("{REDIRECT}?success=false&state=st&error=login_failed&flow_id=f");
    assert_eq!(
        finx.parse_callback(&failed, Some("st")).expect("failure"),
        Callback::Failed {
            error: Some("login_failed".into()),
            flow_id: Some("f".into())
        }
    );
    assert!(matches!(
        finx.parse_callback("not a url", None),
        Err(Error::Callback(_))
    ));
    // Bad input comes back with the server's code, field and request id.
    let err = finx
        .create_onetime_access(&OnetimeAccess {
            redirect_uri: "https://evil.example/cb".into(),
            ..Default::default()
        })
        .await
        .expect_err("refused");
    match &err {
        Error::Api {
            status: 400,
            code: 1000,
            data,
            request_id: Some(_),
            ..
        } => assert!(data.get("redirect_uri").is_some()),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_access_token_is_refreshed_before_it_expires_and_the_new_refresh_token_stored() {
    let s = Setup::new().await;
    let finx = s.client();
    let tokens = finx
        .exchange_code(&s.code(&finx).await, REDIRECT)
        .await
        .expect("exchange");
    let store = Arc::new(MemoryTokenStore::default());
    let conn = finx
        .connect("u", store.clone(), &tokens)
        .await
        .expect("connect");
    conn.accounts().await.expect("fresh token");
    assert_eq!(s.refreshes.load(Ordering::SeqCst), 0);
    s.advance(TimeDelta::minutes(59) + TimeDelta::seconds(30));
    conn.accounts()
        .await
        .expect("refreshed shortly before expiry");
    assert_eq!(s.refreshes.load(Ordering::SeqCst), 1);
    let stored = store.load("u").await.expect("load").expect("stored");
    assert_ne!(
        stored.refresh_token, tokens.refresh_token,
        "the new refresh token is stored"
    );
    assert_ne!(stored.access_token, tokens.access_token);
}

#[tokio::test]
async fn a_401_triggers_one_refresh_and_one_retry() {
    let s = Setup::new().await;
    // This client's clock stays behind: it believes its token is fresh when the server does not.
    let finx = FinxClient::new(s.served.base.as_str(), "demo-app", DEMO_SECRET).expect("client");
    let clocked = s.client();
    let tokens = clocked
        .exchange_code(&s.code(&clocked).await, REDIRECT)
        .await
        .expect("exchange");
    let store = Arc::new(MemoryTokenStore::default());
    let conn = finx
        .connect("u", store.clone(), &tokens)
        .await
        .expect("connect");
    s.advance(TimeDelta::minutes(61));
    conn.accounts()
        .await
        .expect("refreshed after the 401 and retried");
    assert_ne!(
        store
            .load("u")
            .await
            .expect("load")
            .expect("stored")
            .access_token,
        tokens.access_token
    );
}

#[tokio::test]
async fn a_reused_refresh_token_is_a_clear_invalid_grant_and_ends_the_connection() {
    let s = Setup::new().await;
    let finx = s.client();
    let tokens = finx
        .exchange_code(&s.code(&finx).await, REDIRECT)
        .await
        .expect("exchange");
    let store = Arc::new(MemoryTokenStore::default());
    let conn = finx
        .connect("u", store.clone(), &tokens)
        .await
        .expect("connect");
    s.advance(TimeDelta::minutes(61));
    conn.accounts().await.expect("rotated");
    // Someone replays the old refresh token: the server revokes the grant.
    let old = tokens.refresh_token.clone().expect("refresh");
    match finx.refresh(&old, None).await {
        Err(Error::InvalidGrant {
            description,
            request_id,
        }) => {
            assert!(description.contains("revoked"), "{description}");
            assert!(request_id.is_some());
        }
        other => panic!("expected invalid_grant, got {other:?}"),
    }
    s.advance(TimeDelta::minutes(61));
    assert!(matches!(
        conn.accounts().await,
        Err(Error::InvalidGrant { .. })
    ));
    assert!(
        store.load("u").await.expect("load").is_none(),
        "the dead grant's tokens are forgotten"
    );
    assert!(matches!(conn.accounts().await, Err(Error::NotConnected)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_concurrent_calls_after_expiry_make_one_refresh() {
    let s = Setup::new().await;
    let finx = s.client();
    let tokens = finx
        .exchange_code(&s.code(&finx).await, REDIRECT)
        .await
        .expect("exchange");
    let conn = finx
        .connect("u", Arc::new(MemoryTokenStore::default()), &tokens)
        .await
        .expect("connect");
    s.advance(TimeDelta::minutes(61));
    let calls: Vec<_> = (0..32)
        .map(|_| {
            let c = conn.clone();
            tokio::spawn(async move { c.accounts().await })
        })
        .collect();
    for c in calls {
        assert_eq!(
            c.await.expect("join").expect("every call succeeds").len(),
            1
        );
    }
    assert_eq!(s.refreshes.load(Ordering::SeqCst), 1, "exactly one refresh");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_sharing_a_sqlite_token_store_never_lose_the_grant() {
    let s = Setup::new().await;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("dir");
    let url = format!("sqlite://{}", dir.path().join("tokens.db").display());
    // Two "processes": separate HTTP pools, separate database pools, one file.
    let (a, b) = (s.client(), s.client());
    let store_a: Arc<dyn TokenStore> =
        Arc::new(SqlTokenStore::connect(&url).await.expect("store a"));
    let store_b: Arc<dyn TokenStore> =
        Arc::new(SqlTokenStore::connect(&url).await.expect("store b"));
    let tokens = a
        .exchange_code(&s.code(&a).await, REDIRECT)
        .await
        .expect("exchange");
    let conn_a = a
        .connect("user-7", store_a, &tokens)
        .await
        .expect("connect");
    let conn_b = b.connection("user-7", store_b);
    for round in 0..4 {
        s.advance(TimeDelta::minutes(61));
        let mut calls = Vec::new();
        for i in 0..16 {
            let c = if i % 2 == 0 {
                conn_a.clone()
            } else {
                conn_b.clone()
            };
            calls.push(tokio::spawn(async move { c.accounts().await }));
        }
        for c in calls {
            let r = c.await.expect("join");
            assert!(r.is_ok(), "round {round}: {r:?}");
        }
    }
    assert_eq!(
        s.refreshes.load(Ordering::SeqCst),
        4,
        "one refresh per expiry across both workers"
    );
}

#[tokio::test]
async fn a_standard_oauth2_client_can_use_the_token_endpoint() {
    use oauth2::{
        AuthUrl, AuthorizationCode, ClientId, ClientSecret, RedirectUrl, RefreshToken,
        TokenResponse, TokenUrl,
    };
    let s = Setup::new().await;
    let finx = s.client();
    let code = s.code(&finx).await;
    let oauth = oauth2::basic::BasicClient::new(ClientId::new("demo-app".into()))
        .set_client_secret(ClientSecret::new(DEMO_SECRET.into()))
        .set_auth_uri(AuthUrl::new(s.served.url("/widget").to_string()).expect("url"))
        .set_token_uri(TokenUrl::new(s.served.url("/auth/token").to_string()).expect("url"))
        .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).expect("url"));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http");
    let token = oauth
        .exchange_code(AuthorizationCode::new(code))
        .request_async(&http)
        .await
        .expect("code exchange");
    assert_eq!(
        token.expires_in(),
        Some(std::time::Duration::from_secs(3600))
    );
    let accounts = finx
        .accounts(token.access_token().secret())
        .await
        .expect("the token works");
    assert_eq!(accounts.len(), 1);
    let refresh = token.refresh_token().expect("refresh token").clone();
    let next = oauth
        .exchange_refresh_token(&RefreshToken::new(refresh.secret().clone()))
        .request_async(&http)
        .await
        .expect("refresh");
    assert_ne!(
        next.refresh_token().map(|r| r.secret().clone()),
        Some(refresh.secret().clone()),
        "rotated"
    );
}

async fn cas_contract(store: Arc<dyn TokenStore>) {
    let record = finx_client::StoredTokens {
        access_token: "fxa_".to_owned() + &"a".repeat(3000),
        access_expires_at: chrono::DateTime::from_timestamp(1_800_000_000, 123_000).expect("time"),
        refresh_token: Some("fxr_ünïcode-and-long-".to_owned() + &"r".repeat(3000)),
        scope: "accounts=ro offline".into(),
        refresh_lease_until: None,
        version: 0,
    };
    assert!(
        store
            .compare_and_swap("k", None, &record)
            .await
            .expect("insert")
    );
    assert!(
        !store
            .compare_and_swap("k", None, &record)
            .await
            .expect("second insert"),
        "the key exists"
    );
    let stored = store.load("k").await.expect("load").expect("stored");
    assert_eq!(
        stored,
        finx_client::StoredTokens {
            version: 1,
            ..record.clone()
        },
        "long tokens round-trip whole"
    );
    let swaps: Vec<_> = (0..32)
        .map(|i| {
            let (store, mut r) = (store.clone(), record.clone());
            r.access_token = format!("fxa_{i}");
            tokio::spawn(async move { store.compare_and_swap("k", Some(1), &r).await })
        })
        .collect();
    let mut wins = 0;
    for s in swaps {
        if s.await.expect("join").expect("swap") {
            wins += 1;
        }
    }
    assert_eq!(wins, 1, "one compare-and-swap wins");
    assert_eq!(
        store
            .load("k")
            .await
            .expect("load")
            .expect("stored")
            .version,
        2
    );
    store.delete("k").await.expect("delete");
    assert!(store.load("k").await.expect("load").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn token_stores_keep_the_compare_and_swap_contract() {
    cas_contract(Arc::new(MemoryTokenStore::default())).await;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("dir");
    cas_contract(Arc::new(
        SqlTokenStore::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
            .await
            .expect("sqlite"),
    ))
    .await;
    cas_contract(Arc::new(
        SqlTokenStore::connect(&finx_tests::pg::fresh_database().await)
            .await
            .expect("postgres"),
    ))
    .await;
}

#[tokio::test]
async fn busy_answers_are_retried_after_the_time_the_server_asks_for() {
    use axum::http::StatusCode;
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/rest/accounts",
        axum::routing::get(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "1")], r#"{"error":{"code":30001,"group":"general","description":"busy","data":{}}}"#)
                } else {
                    (StatusCode::OK, [("retry-after", "0")], r#"{"accounts":[]}"#)
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}/", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let finx = FinxClient::new(&base, "c", "s").expect("client");
    let started = std::time::Instant::now();
    assert!(
        finx.accounts("fxa_x")
            .await
            .expect("third time lucky")
            .is_empty()
    );
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "waited as Retry-After said"
    );
    let impatient = FinxClient::with_config(
        &base,
        "c",
        "s",
        ClientConfig {
            max_retries: 0,
            ..ClientConfig::default()
        },
    )
    .expect("client");
    hits.store(0, Ordering::SeqCst);
    match impatient.accounts("fxa_x").await {
        Err(Error::Api {
            status: 503,
            code: 30001,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_lease_shorter_than_a_request_is_refused_and_secrets_stay_out_of_debug() {
    let bad = ClientConfig {
        refresh_lease: std::time::Duration::from_secs(5),
        ..ClientConfig::default()
    };
    assert!(matches!(
        FinxClient::with_config("http://127.0.0.1:1/", "c", "s", bad),
        Err(Error::Config(_))
    ));
    let cb = Callback::Success {
        code: "fxc_secret-code".into(),
        flow_id: None,
    };
    assert!(!format!("{cb:?}").contains("secret-code"));
}

/// Defect 8: the SDK retried code exchanges and refreshes on 429/503; a retry after the
/// server committed counts as reuse and revokes the grant. The token endpoint is called once.
#[tokio::test]
async fn codes_and_refresh_tokens_are_never_sent_twice_even_when_the_server_says_busy() {
    use axum::http::StatusCode;
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/auth/token",
        axum::routing::post(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [("retry-after", "0")],
                    r#"{"error":"temporarily_unavailable","error_description":"busy"}"#,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}/", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let finx = FinxClient::new(&base, "c", "s").expect("client");
    assert!(finx.exchange_code("fxc_x", REDIRECT).await.is_err());
    assert_eq!(hits.load(Ordering::SeqCst), 1, "the code went out once");
    assert!(finx.refresh("fxr_x", None).await.is_err());
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "the refresh token went out once"
    );
}

/// Defect 8: leases were set and checked on each worker's clock, so a worker whose clock ran
/// ahead took a lease another still held, and both presented the same refresh token. Leases
/// now live on the store's clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_whose_clock_runs_ahead_still_waits_for_anothers_refresh_lease() {
    let s = Setup::new().await;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("dir");
    let url = format!("sqlite://{}", dir.path().join("tokens.db").display());
    let a = s.client_with(TimeDelta::zero(), std::time::Duration::from_millis(600));
    // Five minutes ahead: past the 60-second lease on its own clock.
    let b = s.client_with(TimeDelta::minutes(5), std::time::Duration::ZERO);
    let store_a: Arc<dyn TokenStore> =
        Arc::new(SqlTokenStore::connect(&url).await.expect("store a"));
    let store_b: Arc<dyn TokenStore> =
        Arc::new(SqlTokenStore::connect(&url).await.expect("store b"));
    let tokens = a
        .exchange_code(&s.code(&a).await, REDIRECT)
        .await
        .expect("exchange");
    let conn_a = a
        .connect("user-7", store_a, &tokens)
        .await
        .expect("connect");
    let conn_b = b.connection("user-7", store_b);
    s.advance(TimeDelta::minutes(61));
    let first = tokio::spawn(async move { conn_a.accounts().await });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let second = tokio::spawn(async move { conn_b.accounts().await });
    let (ra, rb) = (first.await.expect("join"), second.await.expect("join"));
    assert!(ra.is_ok(), "{ra:?}");
    assert!(rb.is_ok(), "the grant survives: {rb:?}");
    assert_eq!(s.refreshes.load(Ordering::SeqCst), 1, "one refresh");
}

/// A replica that applies the SDK's stream as the documentation says: changes go into the
/// pass's working copy, a checkpoint commits it, a restart rolls it back.
#[derive(Default)]
struct Replica {
    committed: std::collections::BTreeMap<String, finx_client::Transaction>,
    working: std::collections::BTreeMap<String, finx_client::Transaction>,
    cursor: Option<String>,
    restarts: usize,
}

impl Replica {
    fn apply(&mut self, change: Change) {
        match change {
            Change::Added(t) | Change::Modified(t) => {
                self.working.insert(t.transaction_id.clone(), t);
            }
            Change::Removed(id) => {
                self.working.remove(&id);
            }
            Change::Checkpoint(cursor) => {
                self.committed = self.working.clone();
                self.cursor = Some(cursor);
            }
            Change::Restart => {
                self.working = self.committed.clone();
                self.restarts += 1;
            }
            other => panic!("unknown change {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_feed_stream_rolls_a_pass_back_when_a_sync_changes_it_and_loses_nothing() {
    let s = Setup::new().await;
    let finx = s.client();
    let json = finx_tests::fixtures::connect_ongoing(&s.served, "moving", "sdk-user").await;
    let tokens: finx_client::Tokens = serde_json::from_value(json).expect("tokens");
    let conn = finx
        .connect("sdk-user", Arc::new(MemoryTokenStore::default()), &tokens)
        .await
        .expect("connect");
    let app = &s.served.app;
    let bearer = app
        .finx
        .authorize(&tokens.access_token)
        .await
        .expect("authorize");
    // One bank day per sync, as the runner does it.
    let sync = || async {
        s.advance(TimeDelta::days(1));
        app.finx
            .request_sync(&bearer, bearer.access_id.as_str())
            .await
            .expect("sync asked");
        for j in app.finx.claim_syncs(10).await.expect("claim") {
            app.finx.run_sync(&j).await.expect("run");
        }
    };
    let mut replica = Replica::default();
    {
        // Pages of one: read until a pending payment arrived, mid-pass; then two bank days
        // book or reverse it before the pass is read on.
        let mut stream = Box::pin(conn.changes_in_pages(None, 1));
        let mut synced = false;
        while let Some(change) = stream.try_next().await.expect("feed") {
            if let Change::Added(t) = &change {
                if !t.booked && !synced {
                    synced = true;
                    replica.apply(change);
                    sync().await;
                    sync().await;
                    continue;
                }
            }
            replica.apply(change);
        }
        assert!(synced, "the moving login has pending payments");
    }
    assert_eq!(replica.restarts, 1, "the pass was read again once");
    assert_eq!(
        replica.committed,
        shown(&conn).await,
        "the replica is exactly what is shown"
    );
    // A later sync, read from the checkpoint: changes only, and still exact.
    sync().await;
    let changes: Vec<Change> = conn
        .changes(replica.cursor.clone())
        .try_collect()
        .await
        .expect("feed");
    assert!(changes.len() > 1, "a new bank day brings changes");
    for c in changes {
        replica.apply(c);
    }
    assert_eq!(replica.committed, shown(&conn).await);
}

/// What `/rest/transactions` shows through the SDK, pending ones included, by id.
async fn shown(
    conn: &finx_client::Connection,
) -> std::collections::BTreeMap<String, finx_client::Transaction> {
    conn.all_transactions(TransactionQuery::new().include_pending(true).count(500))
        .try_collect::<Vec<_>>()
        .await
        .expect("pages")
        .into_iter()
        .map(|t| (t.transaction_id.clone(), t))
        .collect()
}

/// The builder: the application's own `reqwest::Client` and `User-Agent` reach the wire,
/// and the SDK's per-request timeout still applies to a client it did not make.
#[tokio::test]
async fn the_builder_takes_the_applications_http_client_and_user_agent() {
    use axum::http::HeaderMap;
    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let record = seen.clone();
    let app = axum::Router::new()
        .route(
            "/rest/accounts",
            axum::routing::get(move |headers: HeaderMap| {
                let record = record.clone();
                async move {
                    let ua = headers
                        .get("user-agent")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    record.lock().expect("lock").push(ua);
                    axum::Json(serde_json::json!({ "accounts": [] }))
                }
            }),
        )
        .route(
            "/rest/transactions",
            axum::routing::get(|| async {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                axum::Json(serde_json::json!({ "transactions": [] }))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}/", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let own = reqwest::Client::builder()
        .user_agent("the-app's-own-agent")
        .build()
        .expect("reqwest");
    let client = FinxClient::builder(&base, "demo-app", DEMO_SECRET)
        .http_client(own.clone())
        .user_agent("budget-app/2.1 (ops@budget.example)")
        .config(ClientConfig {
            timeout: std::time::Duration::from_millis(300),
            refresh_lease: std::time::Duration::from_secs(11),
            max_retries: 0,
            ..ClientConfig::default()
        })
        .build()
        .expect("client");
    assert!(client.accounts("fxa_x").await.expect("accounts").is_empty());
    let err = client
        .transactions("fxa_x", &TransactionQuery::default())
        .await
        .expect_err("the SDK's timeout applies to the application's client");
    assert!(matches!(err, Error::Http(_)), "{err:?}");

    let plain = FinxClient::new(&base, "demo-app", DEMO_SECRET).expect("client");
    assert!(plain.accounts("fxa_x").await.expect("accounts").is_empty());
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(
        seen,
        vec![
            "budget-app/2.1 (ops@budget.example)".to_owned(),
            finx_client::DEFAULT_USER_AGENT.to_owned()
        ]
    );
    assert!(finx_client::DEFAULT_USER_AGENT.starts_with("finx-client/"));
    let debug = format!(
        "{:?}",
        FinxClient::builder(&base, "demo-app", "fxs_secret-that-must-not-show")
    );
    assert!(!debug.contains("must-not-show"), "{debug}");
}

#[tokio::test]
async fn uploads_and_account_verifications_through_the_sdk() {
    use finx_client::{AccountVerification, Upload, UploadAccount, UploadTransaction};
    let s = Setup::new().await;
    let finx = s.client();
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 28).expect("day");
    let mut account = UploadAccount::new("DE02120300000000202051");
    account.balance = Some(rust_decimal::Decimal::new(123_456, 2));
    account.balance_date = Some(day);
    let mut rewe = UploadTransaction::new(
        "DE89370400440532013000",
        rust_decimal::Decimal::new(-4250, 2),
        "REWE SAGT DANKE",
        day,
    );
    rewe.name = Some("REWE Markt GmbH".into());
    account.transactions.push(rewe.clone());
    let mut upload = Upload::default();
    upload.accounts.push(account);
    let queued = finx.upload(&upload).await.expect("upload");
    assert!(queued.is_pending(), "{queued:?}");
    let done = finx
        .wait_for_upload(&queued.id, std::time::Duration::from_secs(10))
        .await
        .expect("done");
    assert_eq!(done.status, "COMPLETED");
    let token = done.access_token.clone().expect("token");
    assert!(!format!("{done:?}").contains(&token), "redacted in Debug");
    let txs = finx
        .transactions(&token, &TransactionQuery::new())
        .await
        .expect("read back");
    assert_eq!(txs.len(), 1);
    assert_eq!(txs[0].amount, rewe.amount, "exact, never a float");
    assert_eq!(txs[0].categories[1].id, "food.groceries");

    // A wrong IBAN checksum is an API error naming the field.
    let mut bad = upload.clone();
    bad.accounts[0].transactions[0].iban = "DE89370400440532013001".into();
    match finx.upload(&bad).await {
        Err(Error::Api {
            status: 400, data, ..
        }) => assert!(
            data["accounts[0].transactions[0].iban"].is_array(),
            "{data}"
        ),
        other => panic!("expected 400: {other:?}"),
    }

    let mut req = AccountVerification::new(REDIRECT, "Erika Mustermann");
    req.account = Some("DE82900948150000002881".into());
    let link = finx
        .create_account_verification(&req)
        .await
        .expect("verification link");
    let back = finx_tests::fixtures::walk_widget(
        &s.served.http,
        &link.location,
        "sandbox-90094815",
        "demo",
    )
    .await;
    let code = finx_tests::fixtures::code_of(&back);
    let tokens = finx.exchange_code(&code, REDIRECT).await.expect("exchange");
    let result = finx
        .account_verification(&tokens.access_token, &link.id)
        .await
        .expect("result");
    assert_eq!(result.matched.name, "MUSTERMANN, ERIKA");
    assert!(result.matched.is_match(), "{result:?}");
    assert_eq!(result.account.account_type, finx_client::AccountType::Giro);
}
