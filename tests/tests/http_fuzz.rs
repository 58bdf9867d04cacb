//! Random bodies, queries and headers at every endpoint: never a 5xx, and every 4xx body is
//! the documented error shape (finX, or RFC 6749 on /auth/*). Run on the memory store and on
//! SQLite, with a live bearer token among the credentials, so queries reach the store.

use finx_tests::fixtures::{App, DEMO_SECRET, REDIRECT, Served};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;

const ENDPOINTS: &[(&str, &str)] = &[
    ("POST", "/onetime/access"),
    ("POST", "/auth/token"),
    ("POST", "/auth/revoke"),
    ("GET", "/rest/accounts"),
    ("GET", "/rest/accounts/{id}"),
    ("GET", "/rest/accounts/{id}/balance"),
    ("GET", "/rest/accounts/{id}/transactions"),
    ("GET", "/rest/transactions"),
    ("GET", "/rest/transactions/{id}"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("DELETE", "/rest/accounts"),
    ("GET", "/nowhere"),
    ("GET", "/widget"),
    ("POST", "/widget/login"),
    ("POST", "/widget/sync"),
    ("POST", "/widget/cancel"),
];

#[derive(Debug, Clone)]
struct Input {
    endpoint: usize,
    segment: String,
    query: String,
    content_type: &'static str,
    auth: u8,
    body: Vec<u8>,
}

fn json_fragment() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        "[a-z0-9 %ä€\\\\\"]{0,12}".prop_map(|s| format!("\"{s}\"")),
        Just(format!("\"{REDIRECT}\"")),
        Just("[{\"id\":\"DE82900948150000002881\"}]".to_owned()),
        Just("1e400".to_owned()),
        Just("{}".to_owned()),
    ];
    let key = prop_oneof![
        Just("redirect_uri"),
        Just("state"),
        Just("language"),
        Just("accounts"),
        Just("sync_period"),
        Just("grant_type"),
        Just("code"),
        Just("refresh_token"),
        Just("scope"),
        Just("token"),
        Just("zzz"),
    ];
    proptest::collection::vec((key, value), 0..5).prop_map(|kv| {
        let fields: Vec<String> = kv
            .into_iter()
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect();
        format!("{{{}}}", fields.join(","))
    })
}

/// Transaction queries with dates at and past every limit (chrono's included), in every
/// `since_type`.
fn transaction_query() -> impl Strategy<Value = String> {
    let date = prop_oneof![
        Just("%2B262142-12-31".to_owned()),
        Just("-262143-01-01".to_owned()),
        Just("9999-12-31".to_owned()),
        Just("0000-01-01".to_owned()),
        Just("1900-01-01".to_owned()),
        Just("2026-02-30".to_owned()),
        (-300_000i32..300_000, 1u32..13, 1u32..32)
            .prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}").replace('+', "%2B")),
        Just("fxt_0000".to_owned()),
    ];
    let since_type = prop_oneof![Just("created"), Just("modified"), Just("booked"), Just("x")];
    (
        since_type,
        proptest::option::of(date.clone()),
        proptest::option::of(date),
        0u8..3,
    )
        .prop_map(|(st, since, until, pending)| {
            let mut q = format!("since_type={st}");
            if let Some(s) = since {
                q.push_str(&format!("&since={s}"));
            }
            if let Some(u) = until {
                q.push_str(&format!("&until={u}"));
            }
            if pending > 0 {
                q.push_str("&include_pending=true&count=5");
            }
            q
        })
}

fn input() -> impl Strategy<Value = Input> {
    let body = prop_oneof![
        json_fragment().prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..200),
        "[a-z_]{1,12}=[a-zA-Z0-9%+&=]{0,30}(&[a-z_]{1,12}=[a-z0-9%]{0,10}){0,4}"
            .prop_map(String::into_bytes),
    ];
    (
        0..ENDPOINTS.len(),
        prop_oneof![
            Just("Aabc".to_owned()),
            Just("Tabc".to_owned()),
            "[A-Za-z0-9%._~-]{1,20}"
        ],
        prop_oneof!["[a-z_=&%0-9A-F+,:.-]{0,60}", transaction_query(),],
        prop_oneof![
            Just("application/json"),
            Just("application/x-www-form-urlencoded"),
            Just("text/plain"),
            Just("")
        ],
        0u8..6,
        body,
    )
        .prop_map(
            |(endpoint, segment, query, content_type, auth, body)| Input {
                endpoint,
                segment,
                query,
                content_type,
                auth,
                body,
            },
        )
}

fn check(status: u16, path: &str, body: &str) -> Result<(), TestCaseError> {
    prop_assert!(status < 500, "{status} on {path}: {body}");
    // Widget pages answer in HTML; the JSON error shapes are the API's.
    if status >= 400 && !path.starts_with("/widget") {
        let v: Value = serde_json::from_str(body)
            .map_err(|e| TestCaseError::fail(format!("{status} {path}: not JSON ({e}): {body}")))?;
        let finx = v["error"]["code"].is_u64()
            && v["error"]["group"].is_string()
            && v["error"]["description"].is_string()
            && v["error"]["data"].is_object();
        let oauth = path.starts_with("/auth/")
            && v["error"].is_string()
            && v["error_description"].is_string();
        prop_assert!(
            finx || oauth,
            "{status} {path}: not the documented shape: {body}"
        );
    }
    Ok(())
}

#[test]
fn random_requests_never_get_a_5xx_and_errors_keep_their_shape_on_memory() {
    fuzz(None);
}

#[test]
fn random_requests_never_get_a_5xx_and_errors_keep_their_shape_on_sqlite() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    fuzz(Some(format!(
        "sqlite://{}",
        dir.path().join("fuzz.db").display()
    )));
}

fn fuzz(sqlite: Option<String>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (served, bearer) = rt.block_on(async {
        let app = match &sqlite {
            None => App::new().await,
            Some(url) => {
                App::on(std::sync::Arc::new(
                    finx_store_sql::SqlStore::connect(url)
                        .await
                        .expect("SQLite"),
                ))
                .await
            }
        };
        // A live token, so queries get past authentication to the store.
        let tokens = app.nosca_tokens("sandbox-90094815").await;
        let bearer = tokens.access_token.expose().to_owned();
        (Served::start(app).await, bearer)
    });
    let mut runner = TestRunner::new(Config {
        cases: 512,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&input(), |i| {
        let (method, template) = ENDPOINTS[i.endpoint];
        let path = template.replace("{id}", &i.segment);
        let mut url = served.url(&path);
        if !i.query.is_empty() {
            url.set_query(Some(&i.query));
        }
        let (status, body) = rt.block_on(async {
            let mut req = served
                .http
                .request(method.parse().unwrap_or(reqwest::Method::GET), url)
                .body(i.body.clone());
            if !i.content_type.is_empty() {
                req = req.header("content-type", i.content_type);
            }
            req = match i.auth {
                0 => req,
                1 => req.basic_auth("demo-app", Some(DEMO_SECRET)),
                2 => req.header("authorization", "Basic %%%"),
                3 => req.bearer_auth("fxa_nonsense"),
                4 => req.header("authorization", "Bearer"),
                _ => req.bearer_auth(&bearer),
            };
            let res = req.send().await.expect("send");
            let status = res.status().as_u16();
            (status, res.text().await.unwrap_or_default())
        });
        check(status, &path, &body)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
