//! Running finX like a product (issue 16): client administration and key rotation, on the
//! server binary with SQLite, a standalone sandbox bank and the widget walked over HTTP,
//! and in the core on the memory store for what a deletion must leave behind.

use std::process::Stdio;
use std::time::{Duration, Instant};

use finx_tests::fixtures::{App, DEMO_SECRET, Served, connect_ongoing};
use finx_tests::process::{Process, free_port, sandbox_bank, wait_up};
use serde_json::{Value, json};

const DEMO: &str = "finx-demo";
const SECRET: &str = "fxs_demo-secret-for-the-sandbox";
const CALLBACK: &str = "http://127.0.0.1/callback";
const BANK: &str = "sandbox-90094815";

const HASH_A: &str = "hash-key-A-0123456789abcdefghijklmnop";
const HASH_B: &str = "hash-key-B-0123456789abcdefghijklmnop";
const LINK_A: &str = "link-key-A-0123456789abcdefghijklmnop";
const LINK_B: &str = "link-key-B-0123456789abcdefghijklmnop";

fn cli(db: &str, keys: &[&str], args: &[&str]) -> std::process::Output {
    finx_tests::process::server_command()
        .args(["--database-url", db])
        .args(keys)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run finx-server")
}

fn cli_ok(db: &str, keys: &[&str], args: &[&str]) -> String {
    let out = cli(db, keys, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

async fn api(db: &str, port: u16, bank: u16, keys: &[&str]) -> Process {
    let child = finx_tests::process::server_command()
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            db,
            "--sandbox-bank-url",
            &format!("http://127.0.0.1:{bank}/"),
        ])
        .args(keys)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start finx-server");
    wait_up(&format!("http://127.0.0.1:{port}/readyz")).await;
    Process(child)
}

/// A link for an ongoing access of `user`.
async fn link(base: &str, secret: &str, user: &str) -> String {
    let v: Value = reqwest::Client::new()
        .post(format!("{base}/ongoing/access"))
        .basic_auth(DEMO, Some(secret))
        .json(&json!({ "redirect_uri": CALLBACK, "user_id": user, "provider_id": BANK }))
        .send()
        .await
        .expect("link")
        .json()
        .await
        .expect("json");
    v["location"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
        .to_owned()
}

/// Walks a link through the widget and exchanges the code.
async fn tokens(base: &str, location: &str) -> Value {
    let http = reqwest::Client::new();
    let back = finx_tests::fixtures::walk_widget(&http, location, BANK, "demo").await;
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no code: {back}"));
    let v: Value = http
        .post(format!("{base}/auth/token"))
        .basic_auth(DEMO, Some(SECRET))
        .json(
            &json!({ "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK }),
        )
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    assert!(v["refresh_token"].is_string(), "{v}");
    v
}

async fn accounts_status(base: &str, access_token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{base}/rest/accounts"))
        .bearer_auth(access_token)
        .send()
        .await
        .expect("accounts")
        .status()
        .as_u16()
}

async fn refresh(base: &str, secret: &str, refresh_token: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}/auth/token"))
        .basic_auth(DEMO, Some(secret))
        .json(&json!({ "grant_type": "refresh_token", "refresh_token": refresh_token }))
        .send()
        .await
        .expect("refresh");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Whether `secret` authenticates the demo client (creating a link needs it).
async fn authenticates(base: &str, secret: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{base}/ongoing/access"))
        .basic_auth(DEMO, Some(secret))
        .json(&json!({ "redirect_uri": CALLBACK, "user_id": "probe", "provider_id": BANK }))
        .send()
        .await
        .expect("link")
        .status()
        .as_u16()
}

/// Polls until `check` gives `want`: a CLI write to the SQLite file reaches a running server
/// within its read-cache lifetime (1 s by default).
async fn eventually<F, Fut>(what: &str, want: u16, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = check().await;
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {got}, want {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotating_the_hash_and_link_keys_logs_nobody_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("finx.db").display());
    let bank_port = free_port();
    let _bank = sandbox_bank(bank_port).await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let keys_a = ["--hash-key", HASH_A, "--link-key", LINK_A];

    // Before the rotation: a connected user, and a link not yet opened.
    let server = api(&db, port, bank_port, &keys_a).await;
    let before = tokens(&base, &link(&base, SECRET, "anna").await).await;
    let pending_link = link(&base, SECRET, "bert").await;
    let late_link = link(&base, SECRET, "carla").await;
    let listed = cli_ok(&db, &keys_a, &["clients", "list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(DEMO) && l.contains("key=current")),
        "{listed}"
    );
    drop(server);

    // Rotated: new keys, the old ones as previous.
    let rotated = [
        "--hash-key",
        HASH_B,
        "--previous-hash-keys",
        HASH_A,
        "--link-key",
        LINK_B,
        "--previous-link-keys",
        LINK_A,
    ];
    let listed = cli_ok(&db, &rotated, &["clients", "list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(DEMO) && !l.contains("key=current")),
        "before it authenticates, the demo secret is under the previous key: {listed}"
    );
    let server = api(&db, port, bank_port, &rotated).await;
    let old_access = before["access_token"].as_str().expect("access");
    assert_eq!(accounts_status(&base, old_access).await, 200);
    // The link signed under the previous link key opens and completes.
    let after = tokens(&base, &pending_link).await;
    assert_eq!(
        accounts_status(&base, after["access_token"].as_str().expect("access")).await,
        200
    );
    // The refresh token hashed under the previous key rotates into tokens under the new one.
    let (status, refreshed) = refresh(
        &base,
        SECRET,
        before["refresh_token"].as_str().expect("refresh"),
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    let new_access = refreshed["access_token"]
        .as_str()
        .expect("access")
        .to_owned();
    assert_eq!(accounts_status(&base, &new_access).await, 200);
    // The client secret was hashed again under the current key when it authenticated.
    let listed = cli_ok(&db, &rotated, &["clients", "list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(DEMO) && l.contains("key=current")),
        "{listed}"
    );
    drop(server);

    // The previous keys dropped: what they alone recognised stops, nothing else.
    let keys_b = ["--hash-key", HASH_B, "--link-key", LINK_B];
    let server = api(&db, port, bank_port, &keys_b).await;
    assert_eq!(
        accounts_status(&base, old_access).await,
        401,
        "a token only the dropped key hashed"
    );
    assert_eq!(accounts_status(&base, &new_access).await, 200);
    assert_eq!(authenticates(&base, SECRET).await, 200);
    let page = finx_tests::fixtures::browser()
        .get(&late_link)
        .send()
        .await
        .expect("widget");
    assert_eq!(
        page.status().as_u16(),
        400,
        "a link signed by the dropped link key"
    );
    drop(server);

    // Configuration mistakes are refused with a clear message.
    let out = cli(
        &db,
        &["--hash-key", HASH_B, "--previous-hash-keys", HASH_B],
        &["clients", "list"],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("repeats a key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(
        &db,
        &["--previous-link-keys", "short"],
        &["clients", "list"],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("at least 32 characters"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_rotate_secrets_with_an_overlap_and_are_disabled_enabled_and_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("finx.db").display());
    let bank_port = free_port();
    let _bank = sandbox_bank(bank_port).await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _server = api(&db, port, bank_port, &[]).await;
    let connected = tokens(&base, &link(&base, SECRET, "anna").await).await;
    let access = connected["access_token"]
        .as_str()
        .expect("access")
        .to_owned();

    // Rotation with an overlap: both secrets work, then only the newest.
    let out = cli_ok(
        &db,
        &[],
        &[
            "clients",
            "rotate-secret",
            DEMO,
            "--overlap-seconds",
            "3600",
        ],
    );
    let secret_of = |out: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix("client_secret:"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|| panic!("{out}"))
    };
    let second = secret_of(&out);
    assert!(out.contains("the old secret works until"), "{out}");
    assert_eq!(authenticates(&base, SECRET).await, 200);
    eventually("the new secret", 200, || authenticates(&base, &second)).await;
    let shown = cli_ok(&db, &[], &["clients", "show", DEMO]);
    assert!(shown.contains("old_secret:   accepted until"), "{shown}");
    assert!(!shown.contains(&second), "a secret is never shown again");
    // A second rotation without overlap ends both earlier secrets at once.
    let out = cli_ok(
        &db,
        &[],
        &["clients", "rotate-secret", DEMO, "--overlap-seconds", "0"],
    );
    let third = secret_of(&out);
    assert!(out.contains("the old secret no longer works"), "{out}");
    eventually("the first secret", 401, || authenticates(&base, SECRET)).await;
    assert_eq!(authenticates(&base, &second).await, 401);
    assert_eq!(authenticates(&base, &third).await, 200);
    let out = cli(
        &db,
        &[],
        &[
            "clients",
            "rotate-secret",
            DEMO,
            "--overlap-seconds",
            "9999999",
        ],
    );
    assert!(!out.status.success(), "an overlap over 30 days is refused");

    // Disabled: no authentication, and its tokens read nothing; enabled: all back.
    cli_ok(&db, &[], &["clients", "disable", DEMO]);
    eventually("a disabled client's token", 401, || {
        accounts_status(&base, &access)
    })
    .await;
    assert_eq!(authenticates(&base, &third).await, 401);
    let shown = cli_ok(&db, &[], &["clients", "show", DEMO]);
    assert!(shown.contains("state:        disabled since"), "{shown}");
    cli_ok(&db, &[], &["clients", "enable", DEMO]);
    eventually("an enabled client's token", 200, || {
        accounts_status(&base, &access)
    })
    .await;
    assert_eq!(authenticates(&base, &third).await, 200);

    // Deleted: only with --yes; then everything of it is gone.
    let out = cli(&db, &[], &["clients", "delete", DEMO]);
    assert!(!out.status.success(), "deleting needs --yes");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
    let out = cli_ok(&db, &[], &["clients", "delete", DEMO, "--yes"]);
    assert!(out.contains("1 accesses"), "{out}");
    eventually("a deleted client's token", 401, || {
        accounts_status(&base, &access)
    })
    .await;
    eventually("a deleted client's secret", 401, || {
        authenticates(&base, &third)
    })
    .await;
    let out = cli(&db, &[], &["clients", "show", DEMO]);
    assert!(!out.status.success(), "the client is gone");
    for command in ["disable", "enable"] {
        let out = cli(&db, &[], &["clients", command, DEMO]);
        assert!(!out.status.success(), "{command} of a deleted client");
    }
}

/// Deleting a client leaves nothing of it: accesses (with the consent ended at the bank),
/// grants, tokens, bank data, webhook endpoints, the client.
#[tokio::test]
async fn deleting_a_client_leaves_nothing_of_it() {
    let s = Served::start(App::new().await).await;
    let ongoing = connect_ongoing(&s, "demo", "u-1").await;
    let onetime = s.app.nosca_tokens("sandbox-90094815").await;
    let endpoint = s
        .app
        .finx
        .add_webhook("demo-app", "http://127.0.0.1:9/hook")
        .await
        .expect("webhook");
    let access_token = ongoing["access_token"].as_str().expect("token");
    let auth = s
        .app
        .finx
        .authorize(access_token)
        .await
        .expect("authorized");
    let access_id = auth.access_id;
    let accounts = auth.account_ids.clone();
    assert!(!accounts.is_empty());
    let session = s
        .app
        .store
        .find_access(&access_id)
        .await
        .expect("find")
        .expect("the access")
        .session;
    use finx_ports::BankConnector as _;
    let present = finx_ports::Presence::Unattended;
    assert!(s.app.sandbox.accounts(&session, &present).await.is_ok());

    let done = s
        .app
        .finx
        .delete_client(&s.app.client.id)
        .await
        .expect("delete");
    assert_eq!(done.accesses, 1, "{done:?}");
    assert!(done.grants >= 1, "{done:?}");
    assert_eq!(done.webhooks, 1, "{done:?}");
    assert!(
        s.app.sandbox.accounts(&session, &present).await.is_err(),
        "the consent is ended at the bank"
    );
    assert!(s.app.finx.authorize(access_token).await.is_err());
    assert!(
        s.app
            .finx
            .authorize(onetime.access_token.expose())
            .await
            .is_err()
    );
    assert!(
        s.app
            .finx
            .authenticate_client("demo-app", DEMO_SECRET)
            .await
            .is_err()
    );
    assert!(
        s.app
            .store
            .find_access(&access_id)
            .await
            .expect("find")
            .is_none()
    );
    assert!(
        s.app
            .store
            .find_accounts(&accounts)
            .await
            .expect("find")
            .is_empty(),
        "its bank data is deleted"
    );
    assert!(
        s.app
            .store
            .find_endpoint(endpoint.id)
            .await
            .expect("find")
            .is_none()
    );
    assert!(
        s.app
            .store
            .find_client(&s.app.client.id)
            .await
            .expect("find")
            .is_none()
    );
    assert!(
        s.app
            .store
            .client_grants(&s.app.client.id)
            .await
            .expect("grants")
            .is_empty()
    );
    // Unknown now.
    assert!(matches!(
        s.app.finx.delete_client(&s.app.client.id).await,
        Err(finx_core::CoreError::NotFound(_))
    ));
}

/// `clients rules add | list | remove`, and a bad rule refused with its reason.
#[test]
fn clients_rules_are_managed_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("finx.db").display());
    cli_ok(
        &db,
        &[],
        &[
            "clients",
            "create",
            "--id",
            "acme",
            "--name",
            "Acme",
            "--redirect-uri",
            "https://acme.example/cb",
        ],
    );
    let added = cli_ok(
        &db,
        &[],
        &[
            "clients",
            "rules",
            "add",
            "acme",
            "--category",
            "family.childcare",
            "--name-contains",
            "Kita Sonnenschein",
            "--max-amount",
            "-0.01",
        ],
    );
    let id = added.split('\t').next().expect("id").to_owned();
    assert!(id.starts_with('R'), "{added}");
    assert!(added.contains("family.childcare"), "{added}");
    assert!(added.contains("max_amount=-0.01"), "{added}");
    let out = cli(
        &db,
        &[],
        &[
            "clients",
            "rules",
            "add",
            "acme",
            "--category",
            "nope",
            "--iban",
            "DE1",
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("category"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = cli_ok(&db, &[], &["clients", "rules", "list", "acme"]);
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.starts_with(&id));
    cli_ok(&db, &[], &["clients", "rules", "remove", "acme", &id]);
    assert!(cli_ok(&db, &[], &["clients", "rules", "list", "acme"]).is_empty());
    let out = cli(&db, &[], &["clients", "rules", "remove", "acme", &id]);
    assert!(!out.status.success(), "a removed rule is gone");
}
