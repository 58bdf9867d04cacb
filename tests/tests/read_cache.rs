//! The read caches: a page or token read again comes from memory, and never once a write
//! made it stale. Each test sets the caches' time-to-live to a minute, so that only an
//! invalidation (a write of this instance, or one heard from another) can explain a fresh
//! answer within it.

use std::sync::Arc;
use std::time::Duration;

use finx_domain::ids::AccountId;
use finx_ports::{Invalidation, InvalidationBus};
use finx_store_sql::SqlStore;
use finx_tests::conformance::Store;
use finx_tests::fixtures::{App, DEMO_SECRET, Served, transaction};
use reqwest::StatusCode;
use serde_json::Value;

const A_MINUTE: Duration = Duration::from_secs(60);

async fn served(store: Arc<dyn Store>) -> Served {
    Served::start(App::tuned(store, |s| s.read_cache = A_MINUTE).await).await
}

async fn get(s: &Served, token: &str, path: &str, fresh: bool) -> (StatusCode, String) {
    let mut req = s.http.get(s.url(path)).bearer_auth(token);
    if fresh {
        req = req.header("Cache-Control", "no-cache");
    }
    let r = req.send().await.expect("send");
    (r.status(), r.text().await.expect("body"))
}

async fn first_account(s: &Served, token: &str) -> AccountId {
    let (status, body) = get(s, token, "/rest/accounts", false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    AccountId::parse(v["accounts"][0]["account_id"].as_str().expect("id")).expect("account id")
}

/// Writes a transaction straight into the store: a writer that tells no cache.
async fn write_behind_the_caches(app: &App, account: &AccountId, n: u32) -> String {
    let details = transaction(n, true, finx_ports::Clock::now(app.clock.as_ref()));
    let external = details.external_id.clone();
    app.store
        .upsert_transactions(
            account,
            &[details],
            finx_ports::Clock::now(app.clock.as_ref()),
        )
        .await
        .expect("write");
    finx_domain::bank::Transaction::id_for(account, &external).to_string()
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} within 10 s (the caches' time-to-live is a minute)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_page_comes_from_memory_until_a_write_of_this_instance_no_cache_or_its_time_is_up() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("cache.db").display());
    let s = served(Arc::new(SqlStore::connect(&url).await.expect("open"))).await;
    let tokens = s.app.nosca_tokens("sandbox-90094815").await;
    let token = tokens.access_token.expose().to_owned();
    let account = first_account(&s, &token).await;

    let (status, before) = get(&s, &token, "/rest/transactions", false).await;
    assert_eq!(status, StatusCode::OK, "{before}");
    let id = write_behind_the_caches(&s.app, &account, 7_001).await;

    // The kept page: the write told nobody.
    let (_, again) = get(&s, &token, "/rest/transactions", false).await;
    assert!(again == before, "served from memory");
    assert!(!again.contains(&id));
    // The same page for one account is another page, read afresh.
    let one = format!("/rest/accounts/{account}/transactions");
    assert!(get(&s, &token, &one, false).await.1.contains(&id));
    // Cache-Control: no-cache reads the store, and keeps what it read.
    let (_, fresh) = get(&s, &token, "/rest/transactions", true).await;
    assert!(fresh.contains(&id), "no-cache reads the store");
    assert!(get(&s, &token, "/rest/transactions", false).await.1 == fresh);

    // The time-to-live ends what a silent writer left stale.
    let id2 = write_behind_the_caches(&s.app, &account, 7_002).await;
    assert!(
        !get(&s, &token, "/rest/transactions", false)
            .await
            .1
            .contains(&id2)
    );
    s.app.clock.advance(chrono::TimeDelta::seconds(61));
    assert!(
        get(&s, &token, "/rest/transactions", false)
            .await
            .1
            .contains(&id2)
    );

    // A revocation through this instance ends the kept token and page at once.
    let r = s
        .http
        .post(s.url("/auth/revoke"))
        .basic_auth("demo-app", Some(DEMO_SECRET))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    let (status, body) = get(&s, &token, "/rest/transactions", false).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

#[tokio::test]
async fn a_sync_of_this_instance_ends_the_kept_pages_of_its_accounts() {
    let s = served(Arc::new(finx_store_memory::MemoryStore::new())).await;
    let tokens = finx_tests::fixtures::connect_ongoing(&s, "moving", "u-cache").await;
    let token = tokens["access_token"].as_str().expect("token").to_owned();
    let access: Value =
        serde_json::from_str(&get(&s, &token, "/rest/accesses", false).await.1).expect("json");
    let access = access["accesses"][0]["access_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{access}"))
        .to_owned();

    // A day later the bank has more; a manual sync writes it through the core.
    s.app.clock.advance(chrono::TimeDelta::days(1));
    let refreshed: Value = s
        .http
        .post(s.url("/auth/token"))
        .basic_auth("demo-app", Some(DEMO_SECRET))
        .form(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                tokens["refresh_token"].as_str().expect("refresh"),
            ),
        ])
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let token = refreshed["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let (_, before) = get(&s, &token, "/rest/transactions?count=500", false).await;
    let r = s
        .http
        .post(s.url(&format!("/rest/accesses/{access}/syncs")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let jobs = s.app.finx.claim_syncs(10).await.expect("claim");
    assert!(!jobs.is_empty());
    for j in &jobs {
        s.app.finx.run_sync(j).await.expect("run");
    }
    let (_, after) = get(&s, &token, "/rest/transactions?count=500", false).await;
    let (_, fresh) = get(&s, &token, "/rest/transactions?count=500", true).await;
    assert!(after == fresh, "the kept page ended with the sync's write");
    assert!(after != before, "the sync brought changes");
}

/// The listening connection of the instance that is not `publisher`'s.
async fn terminate_listeners(db: &str) -> u64 {
    let pool = sqlx::PgPool::connect(db).await.expect("connect");
    let rows: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(&pool)
    .await
    .expect("terminate");
    rows.len() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_postgresql_what_one_instance_writes_ends_what_the_other_kept() {
    let db = finx_tests::pg::fresh_database().await;
    let store_a = Arc::new(SqlStore::connect(&db).await.expect("connect"));
    let a = served(store_a.clone()).await;
    let b = served(Arc::new(SqlStore::connect(&db).await.expect("connect"))).await;
    let tokens = a.app.nosca_tokens("sandbox-90094815").await;
    let token = tokens.access_token.expose().to_owned();
    let account = first_account(&b, &token).await;

    // B keeps the page once its listener hears the bus (until then it reads the store).
    let id = write_behind_the_caches(&a.app, &account, 7_101).await;
    wait_for("B keeps the page", async || {
        let (_, first) = get(&b, &token, "/rest/transactions", false).await;
        let id = write_behind_the_caches(&a.app, &account, 7_102).await;
        let (_, second) = get(&b, &token, "/rest/transactions", false).await;
        second == first && !second.contains(&id)
    })
    .await;
    let (_, kept) = get(&b, &token, "/rest/transactions", false).await;
    assert!(kept.contains(&id));

    // A data write published by A ends B's kept page.
    let id = write_behind_the_caches(&a.app, &account, 7_103).await;
    store_a
        .publish(&Invalidation::Accounts(vec![account.clone()]))
        .await
        .expect("publish");
    wait_for("B reads the new transaction", async || {
        get(&b, &token, "/rest/transactions", false)
            .await
            .1
            .contains(&id)
    })
    .await;

    // A listener that lost its connection counts everything as changed.
    let id = write_behind_the_caches(&a.app, &account, 7_104).await;
    assert!(
        !get(&b, &token, "/rest/transactions", false)
            .await
            .1
            .contains(&id)
    );
    assert!(terminate_listeners(&db).await >= 2, "both instances listen");
    wait_for("B reads the store after losing the bus", async || {
        get(&b, &token, "/rest/transactions", false)
            .await
            .1
            .contains(&id)
    })
    .await;

    // A revocation on A ends B's kept token.
    assert_eq!(
        get(&b, &token, "/rest/transactions", false).await.0,
        StatusCode::OK
    );
    let r = a
        .http
        .post(a.url("/auth/revoke"))
        .basic_auth("demo-app", Some(DEMO_SECRET))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    wait_for("B refuses the revoked token", async || {
        get(&b, &token, "/rest/transactions", false).await.0 == StatusCode::UNAUTHORIZED
    })
    .await;
}
