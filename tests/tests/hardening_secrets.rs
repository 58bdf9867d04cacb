//! After real flows, the database holds no raw token, code or client secret: only hashes.

use std::sync::Arc;

use finx_core::OnetimeAccessRequest;
use finx_ports::BankCredentials;
use finx_store_sql::SqlStore;
use finx_tests::fixtures::{App, DEMO_SECRET, REDIRECT};
use sqlx::Connection as _;

/// Runs a flow, exchanges, refreshes twice and revokes: every secret the server handed out.
async fn secrets_of_a_busy_grant(app: &App) -> Vec<String> {
    let req = OnetimeAccessRequest {
        redirect_uri: REDIRECT.into(),
        accounts: vec!["DE82900948150000002881".into()],
        ..Default::default()
    };
    let flow = app
        .finx
        .create_onetime_access(&app.client, req)
        .await
        .expect("create");
    app.finx
        .submit_credentials(
            flow.id,
            &BankCredentials {
                user: "demo".into(),
                secret: "demo".into(),
            },
        )
        .await
        .expect("login");
    app.finx
        .choose_method(flow.id, "push")
        .await
        .expect("method");
    app.finx.submit_tan(flow.id, "123456").await.expect("tan");
    app.finx
        .choose_accounts(flow.id, vec!["giro".into()])
        .await
        .expect("choose");
    let url = app.finx.complete(flow.id).await.expect("complete");
    let code = url
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let mut secrets = vec![code.clone(), DEMO_SECRET.to_owned()];
    let t = app
        .finx
        .exchange_code(&app.client, &code, REDIRECT)
        .await
        .expect("exchange");
    secrets.push(t.access_token.expose().to_owned());
    let mut refresh = t.refresh_token.expect("refresh").expose().to_owned();
    for _ in 0..2 {
        secrets.push(refresh.clone());
        let next = app
            .finx
            .refresh(&app.client, &refresh, None)
            .await
            .expect("refresh");
        secrets.push(next.access_token.expose().to_owned());
        refresh = next.refresh_token.expect("refresh").expose().to_owned();
    }
    secrets.push(refresh.clone());
    // Revoking the last access token alone keeps the grant, and so its bank data, for the
    // dump to hold (revoking the grant deletes the data).
    let last_access = secrets
        .iter()
        .rev()
        .find(|s| s.starts_with("fxa_"))
        .cloned()
        .expect("an access token");
    app.finx
        .revoke(&app.client, &last_access)
        .await
        .expect("revoke");
    // A webhook endpoint, its secret rotated: both secrets are sealed at rest.
    let endpoint = app
        .finx
        .add_webhook("demo-app", "https://hooks.example.com/finx")
        .await
        .expect("webhook");
    secrets.push(endpoint.secret.expose());
    let rotated = app
        .finx
        .rotate_webhook_secret("demo-app", &endpoint.id.to_string())
        .await
        .expect("rotate");
    secrets.push(rotated.secret.expose());
    secrets
}

fn assert_absent(dump: &[u8], secrets: &[String], what: &str) {
    assert!(
        dump.len() > 10_000,
        "{what}: the dump holds the data ({} bytes)",
        dump.len()
    );
    // The search finds what is there: the rent's purpose is plain data.
    let known = b"Miete Wohnung";
    assert!(
        dump.windows(known.len()).any(|w| w == known),
        "{what}: the search would find plain text"
    );
    for s in secrets {
        // The random part alone, so a prefix-stripped copy would be found too.
        let body = s.split_once('_').map_or(s.as_str(), |(_, b)| b);
        assert!(
            !dump.windows(body.len()).any(|w| w == body.as_bytes()),
            "{what} contains a raw secret ({}…)",
            &s[..8.min(s.len())]
        );
    }
}

#[tokio::test]
async fn a_sqlite_file_holds_no_raw_secret() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("dir");
    let path = dir.path().join("finx.db");
    let store = Arc::new(
        SqlStore::connect(&format!("sqlite://{}", path.display()))
            .await
            .expect("open"),
    );
    let app = App::on(store.clone()).await;
    let secrets = secrets_of_a_busy_grant(&app).await;
    drop(app);
    store.close().await;
    let mut dump = std::fs::read(&path).expect("database file");
    for side in ["finx.db-wal", "finx.db-shm"] {
        dump.extend(std::fs::read(dir.path().join(side)).unwrap_or_default());
    }
    assert_absent(&dump, &secrets, "the SQLite file");
}

#[tokio::test]
async fn a_postgres_dump_holds_no_raw_secret() {
    let url = finx_tests::pg::fresh_database().await;
    let store = Arc::new(SqlStore::connect(&url).await.expect("open"));
    let app = App::on(store).await;
    let secrets = secrets_of_a_busy_grant(&app).await;
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_all(&mut conn)
    .await
    .expect("tables");
    assert!(tables.len() >= 9, "{tables:?}");
    let mut dump = Vec::new();
    for (t,) in tables {
        let rows: Vec<(String,)> =
            sqlx::query_as(&format!("SELECT row_to_json(x)::text FROM \"{t}\" x"))
                .fetch_all(&mut conn)
                .await
                .expect("rows");
        for (r,) in rows {
            dump.extend(r.into_bytes());
        }
    }
    assert_absent(&dump, &secrets, "the PostgreSQL dump");
}
