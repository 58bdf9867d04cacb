//! Scheduled syncs shared by finX instances on one PostgreSQL database (issue 13): 200
//! ongoing accesses of the sandbox's `moving` login, the scheduler sped up to one sync a
//! second per access, and one instance killed with `kill -9` while it holds syncs. Every
//! sync ends exactly once: none is lost, the ones the dead instance held are taken over once
//! their lease ends, no access is synced more than its daily allowance, and no transaction
//! is written twice.
//!
//! Also the shutdown of one instance on SQLite: a running sync finishes within the grace
//! period, or goes back to the queue.
//!
//! Real parts only: three `finx-server` processes (one standalone sandbox bank, two API
//! instances reaching it through the XS2A connector), PostgreSQL from `finx-pgtest`, the
//! widget walked over HTTP.

use finx_tests::process::{Process, sandbox_bank, wait_up};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde_json::{Value, json};
use sqlx::Connection as _;

const SECRET: &str = "fxs_demo-secret-for-the-sandbox";
const REDIRECT: &str = "http://127.0.0.1/callback";
const ACCESSES: usize = 200;
const LEASE_SECONDS: u64 = 5;

async fn instance(db: &str, port: u16, bank: u16) -> Process {
    instance_with(db, port, bank, &[]).await
}

async fn instance_with(db: &str, port: u16, bank: u16, extra: &[&str]) -> Process {
    let child = finx_tests::process::server_command()
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            db,
            "--sandbox-bank-url",
            &format!("http://127.0.0.1:{bank}/"),
            "--sync-interval",
            "1",
            "--sync-lease-seconds",
            &LEASE_SECONDS.to_string(),
            "--sync-concurrency",
            "8",
        ])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start finx-server");
    wait_up(&format!("http://127.0.0.1:{port}/readyz")).await;
    Process(child)
}

/// One ongoing access of the `moving` login, through the widget on `base`.
async fn connect(base: &str, n: usize) {
    connect_as(base, n, "moving").await;
}

/// One ongoing access of `user`, through the widget on `base`.
async fn connect_as(base: &str, n: usize, user: &str) {
    let http = reqwest::Client::new();
    let link: Value = http
        .post(format!("{base}/ongoing/access"))
        .basic_auth("finx-demo", Some(SECRET))
        .json(&json!({ "redirect_uri": REDIRECT, "user_id": format!("user-{n}"), "provider_id": "sandbox-90094815" }))
        .send()
        .await
        .expect("link")
        .json()
        .await
        .expect("json");
    let back = finx_tests::fixtures::walk_widget(
        &http,
        link["location"].as_str().expect("location"),
        "sandbox-90094815",
        user,
    )
    .await;
    assert!(back.query_pairs().any(|(k, _)| k == "code"), "{back}");
    // The code is exchanged so that a live grant holds the access.
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let res = http
        .post(format!("{base}/auth/token"))
        .basic_auth("finx-demo", Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .expect("exchange");
    assert!(res.status().is_success());
}

async fn count(db: &mut sqlx::PgConnection, sql: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sql)
        .fetch_one(&mut *db)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_run_every_sync_exactly_once_through_a_kill_9() {
    let db = finx_tests::pg::fresh_database().await;
    let mut conn = sqlx::PgConnection::connect(&db).await.expect("connect");
    let bank_port = finx_tests::process::free_port();
    let _bank = sandbox_bank(bank_port).await;
    let (port_a, port_b) = (
        finx_tests::process::free_port(),
        finx_tests::process::free_port(),
    );
    let mut a = instance(&db, port_a, bank_port).await;
    let base_a = format!("http://127.0.0.1:{port_a}");

    // 200 accesses, connected through A while A alone runs the syncs.
    let started = Instant::now();
    futures::stream::iter(0..ACCESSES)
        .map(|n| connect(&base_a, n))
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    let connected = started.elapsed();
    assert_eq!(
        count(&mut conn, "SELECT count(*) FROM accesses").await,
        ACCESSES as i64
    );

    // kill -9 A while it holds syncs (those still `running` once it is dead).
    let mut held: Vec<String> = Vec::new();
    for _ in 0..20 {
        let deadline = Instant::now() + Duration::from_secs(10);
        while count(
            &mut conn,
            "SELECT count(*) FROM sync_jobs WHERE status = 'running'",
        )
        .await
            == 0
        {
            assert!(Instant::now() < deadline, "A never held a sync");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        a.0.kill().expect("kill -9");
        a.0.wait().expect("reaped");
        held = sqlx::query_as::<_, (String,)>("SELECT id FROM sync_jobs WHERE status = 'running'")
            .fetch_all(&mut conn)
            .await
            .expect("running")
            .into_iter()
            .map(|(id,)| id)
            .collect();
        if !held.is_empty() {
            break;
        }
        // Every sync it held had ended in the instant before the kill: again.
        a = instance(&db, port_a, bank_port).await;
    }
    assert!(!held.is_empty(), "A was killed while holding syncs");

    let before_kill = count(
        &mut conn,
        "SELECT count(*) FROM sync_jobs WHERE status = 'succeeded'",
    )
    .await;
    // Two instances from now on: B, and A restarted.
    let takeover = Instant::now();
    let _b = instance(&db, port_b, bank_port).await;
    let _a = instance(&db, port_a, bank_port).await;

    // Until every access has spent its day: nothing running, every job still queued waits
    // for a later day.
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let busy = count(
            &mut conn,
            "SELECT count(*) FROM sync_jobs WHERE status = 'running' \
             OR (status = 'queued' AND run_at < (extract(epoch from date_trunc('day', now() at time zone 'utc') + interval '1 day') * 1000000)::bigint)",
        )
        .await;
        if busy == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{busy} syncs still due or running"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let drained = takeover.elapsed();

    // None lost: every sync A held was taken over once its lease ended. It succeeded, or,
    // when the dead attempt had taken its access's last sync of the day (the bank may have
    // seen it), it waits in the queue for tomorrow with the day spent.
    let tomorrow = "(extract(epoch from date_trunc('day', now() at time zone 'utc') + interval '1 day') * 1000000)::bigint";
    for id in &held {
        let (status, attempt, waits, document): (String, i64, bool, String) =
            sqlx::query_as(&format!(
                "SELECT j.status, j.attempt, j.run_at >= {tomorrow}, a.document FROM sync_jobs j \
             JOIN accesses a ON a.id = j.access_id WHERE j.id = $1"
            ))
            .bind(id)
            .fetch_one(&mut conn)
            .await
            .expect("job");
        assert!(attempt >= 2, "sync {id} was taken over ({attempt})");
        if status != "succeeded" {
            let doc: Value = serde_json::from_str(&document).expect("access document");
            assert_eq!(status, "queued", "sync {id} held by the dead instance");
            assert!(waits, "sync {id} waits for tomorrow");
            assert_eq!(
                doc["ledger_used"], 4,
                "sync {id}: its access's day is spent"
            );
        }
    }
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) FROM sync_jobs WHERE status = 'failed'"
        )
        .await,
        0,
        "no sync failed"
    );
    // Exactly once, within the allowance: per access at most four unattended syncs a
    // day, each scheduled sync ended once (one row, one outcome), and one successor each.
    let per_access: Vec<(String, i64)> = sqlx::query_as(
        "SELECT access_id, count(*) FROM sync_jobs WHERE status = 'succeeded' GROUP BY access_id",
    )
    .fetch_all(&mut conn)
    .await
    .expect("per access");
    assert_eq!(per_access.len(), ACCESSES, "every access synced");
    let total: i64 = per_access.iter().map(|(_, n)| n).sum();
    for (access, n) in &per_access {
        assert!(
            (3..=4).contains(n),
            "access {access}: {n} syncs (4 a day; one fewer when a dead instance's attempt counted)"
        );
    }
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) FROM (SELECT access_id FROM sync_jobs WHERE status = 'queued' GROUP BY access_id HAVING count(*) = 1) q"
        )
        .await,
        ACCESSES as i64,
        "each access has exactly one next sync planned"
    );
    // No transaction twice: the bank's ids are unique per account.
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) FROM (SELECT account_id, external_id FROM transactions GROUP BY account_id, external_id HAVING count(*) > 1) d"
        )
        .await,
        0
    );
    eprintln!(
        "figures: {ACCESSES} accesses connected in {:.1} s (8 widget walks at a time) while A ran \
         {before_kill} syncs; killed A holding {} syncs; then two instances ran the other {} \
         in {:.1} s (lease {LEASE_SECONDS} s, one sync a second per access, 8 at a time per \
         instance); {total} syncs in all",
        connected.as_secs_f64(),
        held.len(),
        total - before_kill,
        drained.as_secs_f64()
    );
}

/// Sends SIGTERM and waits for the process to end.
fn terminate(p: &mut Process) {
    let status = Command::new("kill")
        .args(["-TERM", &p.0.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    p.0.wait().expect("ended");
}

async fn job_state(db: &mut sqlx::SqliteConnection) -> (String, i64) {
    sqlx::query_as("SELECT status, attempt FROM sync_jobs ORDER BY created_at LIMIT 1")
        .fetch_one(&mut *db)
        .await
        .expect("job")
}

async fn wait_running(db: &mut sqlx::SqliteConnection) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while job_state(db).await.0 != "running" {
        assert!(Instant::now() < deadline, "no sync started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// At shutdown a running sync may finish within the grace period; one that cannot is
/// handed back to the queue, not lost, and runs after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_a_sync_finish_or_hands_it_back() {
    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite://{}", dir.path().join("finx.db").display());
    let bank_port = finx_tests::process::free_port();
    let _bank = sandbox_bank(bank_port).await;
    let port = finx_tests::process::free_port();
    // The `slow` login: every transaction fetch waits 3 s at the bank, 9 s a sync.
    let mut server = instance(&db, port, bank_port).await;
    connect_as(&format!("http://127.0.0.1:{port}"), 0, "slow").await;
    let mut conn = sqlx::SqliteConnection::connect(&db).await.expect("open");

    // A grace of 20 s: the running sync finishes before the process ends.
    wait_running(&mut conn).await;
    terminate(&mut server);
    let (status, attempt) = job_state(&mut conn).await;
    assert_eq!(
        (status.as_str(), attempt),
        ("succeeded", 1),
        "finished at shutdown"
    );

    // A grace of 1 s: the next running sync goes back to the queue.
    let mut server = instance_with(&db, port, bank_port, &["--shutdown-grace-seconds", "1"]).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let second: String = loop {
        let running: Option<(String,)> =
            sqlx::query_as("SELECT id FROM sync_jobs WHERE status = 'running'")
                .fetch_optional(&mut conn)
                .await
                .expect("running");
        if let Some((id,)) = running {
            break id;
        }
        assert!(Instant::now() < deadline, "no second sync started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    terminate(&mut server);
    let (status, lease): (String, Option<i64>) =
        sqlx::query_as("SELECT status, lease_until FROM sync_jobs WHERE id = $1")
            .bind(&second)
            .fetch_one(&mut conn)
            .await
            .expect("job");
    assert_eq!(status, "queued", "handed back");
    assert_eq!(lease, None);

    // After a restart it runs (a second attempt) and succeeds.
    let _server = instance(&db, port, bank_port).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, attempt): (String, i64) =
            sqlx::query_as("SELECT status, attempt FROM sync_jobs WHERE id = $1")
                .bind(&second)
                .fetch_one(&mut conn)
                .await
                .expect("job");
        if status == "succeeded" {
            assert_eq!(attempt, 2);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the handed-back sync did not run: {status}, attempt {attempt}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
