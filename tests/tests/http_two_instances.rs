//! Two finX servers on one PostgreSQL database, as behind a load balancer: whatever one
//! issues the other honours, and a refresh race across both has exactly one winner.

use std::sync::Arc;

use finx_domain::ids::FlowId;
use finx_ports::BankCredentials;
use finx_store_sql::SqlStore;
use finx_tests::fixtures::{App, DEMO_SECRET, REDIRECT, Served};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn instance(db: &str) -> Served {
    let store = Arc::new(SqlStore::connect(db).await.expect("connect"));
    Served::start(App::on(store).await).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn two_instances_share_tokens_and_a_refresh_race_has_one_winner() {
    let db = finx_tests::pg::fresh_database().await;
    let a = instance(&db).await;
    let b = instance(&db).await;

    // The link is made on A, the widget runs on B, the code is exchanged on A.
    let created: Value = a
        .http
        .post(a.url("/onetime/access"))
        .basic_auth("demo-app", Some(DEMO_SECRET))
        .json(
            &json!({ "redirect_uri": REDIRECT, "accounts": [{ "id": "DE82900948150000002881" }] }),
        )
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let flow = FlowId::parse(created["id"].as_str().expect("id")).expect("flow id");
    let core = &b.app.finx;
    core.submit_credentials(
        flow,
        &BankCredentials {
            user: "demo".into(),
            secret: "demo".into(),
        },
    )
    .await
    .expect("login on B");
    core.choose_method(flow, "push").await.expect("method");
    let f = core.submit_tan(flow, "123456").await.expect("TAN on B");
    core.choose_accounts(
        flow,
        f.preselected()
            .into_iter()
            .map(|x| x.external_id.clone())
            .collect(),
    )
    .await
    .expect("choose");
    let url = core.complete(flow).await.expect("complete on B");
    let code = url
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let t: Value = a
        .http
        .post(a.url("/auth/token"))
        .basic_auth("demo-app", Some(DEMO_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let access = t["access_token"].as_str().expect("access");
    let res = b
        .http
        .get(b.url("/rest/accounts"))
        .bearer_auth(access)
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::OK, "a token from A works on B");

    // 32 refreshes on each instance at once, all with the same refresh token.
    let refresh = t["refresh_token"].as_str().expect("refresh").to_owned();
    let barrier = Arc::new(tokio::sync::Barrier::new(64));
    let mut tasks = Vec::new();
    for i in 0..64 {
        let (http, url) = if i % 2 == 0 {
            (a.http.clone(), a.url("/auth/token"))
        } else {
            (b.http.clone(), b.url("/auth/token"))
        };
        let (refresh, barrier) = (refresh.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            http.post(url)
                .basic_auth("demo-app", Some(DEMO_SECRET))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh.as_str()),
                ])
                .send()
                .await
                .map(|r| r.status())
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.expect("join").expect("response") {
            StatusCode::OK => ok += 1,
            StatusCode::BAD_REQUEST => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(ok, 1, "exactly one refresh wins across both instances");
}
