//! PostgreSQL goes away under load: the API answers 503 in the finX shape (never 500, never
//! a hang), /readyz fails, and everything recovers without a restart when it returns.

use std::sync::Arc;
use std::time::{Duration, Instant};

use finx_store_sql::{SqlOptions, SqlStore};
use finx_tests::fixtures::{App, Served};
use reqwest::StatusCode;
use serde_json::Value;

async fn access_token(s: &Served) -> String {
    s.app
        .nosca_tokens("sandbox-90094815")
        .await
        .access_token
        .expose()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_postgres_gives_503s_and_the_service_recovers_by_itself() {
    // A cluster of its own: stopping a shared one would disturb other tests.
    let cluster = tokio::task::spawn_blocking(finx_pgtest::PgCluster::start)
        .await
        .expect("join")
        .expect("cluster");
    let options = SqlOptions {
        acquire_timeout: Duration::from_secs(2),
        ..SqlOptions::default()
    };
    let store = Arc::new(
        SqlStore::connect_with(&cluster.url("postgres"), &options)
            .await
            .expect("connect"),
    );
    let s = Served::start(App::on(store).await).await;
    let token = access_token(&s).await;
    let accounts = |token: String| {
        let (http, url) = (s.http.clone(), s.url("/rest/accounts"));
        async move {
            let started = Instant::now();
            let res = http
                .get(url)
                .bearer_auth(token)
                .timeout(Duration::from_secs(15))
                .send()
                .await
                .expect("an answer, not a hang");
            let status = res.status();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            (status, body, started.elapsed())
        }
    };
    assert_eq!(accounts(token.clone()).await.0, StatusCode::OK);

    tokio::task::block_in_place(|| cluster.stop_server()).expect("stop PostgreSQL");
    let load: Vec<_> = (0..16)
        .map(|_| tokio::spawn(accounts(token.clone())))
        .collect();
    for l in load {
        let (status, body, took) = l.await.expect("join");
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"]["code"], 30001, "{body}");
        assert!(took < Duration::from_secs(10), "answered in {took:?}");
    }
    let res = s.http.get(s.url("/readyz")).send().await.expect("send");
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(
        s.http
            .get(s.url("/healthz"))
            .send()
            .await
            .expect("send")
            .status(),
        StatusCode::OK,
        "alive, just not ready"
    );

    tokio::task::block_in_place(|| cluster.start_again()).expect("start PostgreSQL again");
    let deadline = Instant::now() + Duration::from_secs(30);
    while s
        .http
        .get(s.url("/readyz"))
        .send()
        .await
        .expect("send")
        .status()
        != StatusCode::OK
    {
        assert!(
            Instant::now() < deadline,
            "not ready again after PostgreSQL came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, body, _) = accounts(token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
