//! kill -9 during a load of refreshes, then a restart on the same database: nothing is
//! half-written, and every refresh token a client received is still valid or was rotated
//! by a rotation that committed whole.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Connection as _;

const SECRET: &str = "fxs_demo-secret-for-the-sandbox";

struct Server {
    child: Child,
    base: String,
}

/// A failing test must not leave its server running.
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(database_url: &str, port: u16) -> Server {
    let child = finx_tests::process::server_command()
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            // The sandbox bank, reached through the XS2A connector, on a port of its own.
            "--sandbox-listen",
            &format!("127.0.0.1:{}", finx_tests::process::free_port()),
            "--database-url",
            database_url,
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start finx-server");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "the server did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Server { child, base }
}

async fn refresh(http: &reqwest::Client, base: &str, token: &str) -> Result<String, (u16, String)> {
    let res = http
        .post(format!("{base}/auth/token"))
        .basic_auth("finx-demo", Some(SECRET))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| (0, e.to_string()))?;
    let status = res.status().as_u16();
    let body: Value = res.json().await.map_err(|e| (status, e.to_string()))?;
    match body["refresh_token"].as_str() {
        Some(t) if status == 200 => Ok(t.to_owned()),
        _ => Err((status, body.to_string())),
    }
}

/// Ongoing grants (one-time ones end within the hour, without a refresh token) with one
/// refresh token each, through the real widget.
async fn grants(http: &reqwest::Client, base: &str, n: usize) -> Vec<String> {
    let mut tokens = Vec::new();
    for _ in 0..n {
        let redirect = format!("{base}/demo/callback");
        let link: Value = http
            .post(format!("{base}/ongoing/access"))
            .basic_auth("finx-demo", Some(SECRET))
            .json(&serde_json::json!({ "redirect_uri": redirect, "user_id": format!("user-{}", tokens.len()) }))
            .send()
            .await
            .expect("link")
            .json()
            .await
            .expect("json");
        let back = finx_tests::fixtures::walk_widget(
            http,
            link["location"].as_str().expect("location"),
            "sandbox-90094815",
            "nosca",
        )
        .await;
        let code = back
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .expect("code");
        let t: Value = http
            .post(format!("{base}/auth/token"))
            .basic_auth("finx-demo", Some(SECRET))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", redirect.as_str()),
            ])
            .send()
            .await
            .expect("exchange")
            .json()
            .await
            .expect("json");
        tokens.push(t["refresh_token"].as_str().expect("refresh").to_owned());
    }
    tokens
}

/// Every used refresh token has a successor issued in the same instant, in the same grant:
/// no rotation was half-written.
const HALF_WRITTEN: &str = "SELECT count(*) FROM refresh_tokens r WHERE r.used_at IS NOT NULL \
     AND NOT EXISTS (SELECT 1 FROM refresh_tokens n WHERE n.grant_id = r.grant_id AND n.issued_at = r.used_at) \
     AND NOT EXISTS (SELECT 1 FROM grants g WHERE g.id = r.grant_id AND g.revoked_at IS NOT NULL)";

async fn crash_and_recover(database_url: &str) {
    let http = reqwest::Client::new();
    let port = finx_tests::process::free_port();
    let mut server = start(database_url, port).await;
    let tokens = grants(&http, &server.base, 12).await;

    // Twelve clients refresh as fast as they can; each remembers the last token it received.
    let mut workers = Vec::new();
    for t in tokens {
        let (http, base) = (http.clone(), server.base.clone());
        workers.push(tokio::spawn(async move {
            let mut last = t;
            let mut rotations = 0u32;
            loop {
                match refresh(&http, &base, &last).await {
                    Ok(next) => {
                        last = next;
                        rotations += 1;
                    }
                    Err((0, _)) => return (last, rotations),
                    // Throttled before anything happened: same token, a little later.
                    Err((429, _)) => tokio::time::sleep(Duration::from_millis(100)).await,
                    Err((status, body)) => {
                        panic!("a refresh failed before the crash: {status} {body}")
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.child.kill().expect("kill -9");
    let _ = server.child.wait();
    let mut results = Vec::new();
    for w in workers {
        results.push(w.await.expect("join"));
    }
    assert!(
        results.iter().map(|r| r.1).sum::<u32>() > 24,
        "there was load: {:?}",
        results.iter().map(|r| r.1).collect::<Vec<_>>()
    );

    let server = start(database_url, port).await;
    let mut valid = 0;
    for (last, _) in &results {
        match refresh(&http, &server.base, last).await {
            Ok(_) => valid += 1,
            // The rotation committed but its answer died with the server: the token the
            // client holds was correctly rotated, and using it again is reuse.
            Err((400, body)) => assert!(body.contains("already used"), "{body}"),
            Err((status, body)) => panic!("unexpected {status}: {body}"),
        }
    }
    assert!(
        valid >= results.len() / 2,
        "{valid} of {} tokens still valid",
        results.len()
    );
    // Dropping `server` stops it.
    drop(server);
}

async fn half_written(database_url: &str) -> i64 {
    if let Some(path) = database_url.strip_prefix("sqlite://") {
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{path}"))
            .await
            .expect("sqlite");
        sqlx::query_scalar(HALF_WRITTEN)
            .fetch_one(&mut c)
            .await
            .expect("count")
    } else {
        let mut c = sqlx::PgConnection::connect(database_url)
            .await
            .expect("postgres");
        sqlx::query_scalar(HALF_WRITTEN)
            .fetch_one(&mut c)
            .await
            .expect("count")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_server_on_sqlite_loses_no_token() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("dir");
    let url = format!("sqlite://{}", dir.path().join("finx.db").display());
    crash_and_recover(&url).await;
    assert_eq!(half_written(&url).await, 0, "no half-written rotation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_server_on_postgres_loses_no_token() {
    let url = finx_tests::pg::fresh_database().await;
    crash_and_recover(&url).await;
    assert_eq!(half_written(&url).await, 0, "no half-written rotation");
}
