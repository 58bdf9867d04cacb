//! The guide's flow end to end on each SQL store, the refresh race through the core, and
//! durability: what one store instance wrote, a new instance on the same database finds.

use std::sync::Arc;

use finx_core::{CoreError, OnetimeAccessRequest};
use finx_domain::query::TransactionQuery;
use finx_ports::BankCredentials;
use finx_store_sql::SqlStore;
use finx_tests::conformance::Store;
use finx_tests::fixtures::{App, REDIRECT};

async fn sqlite_url() -> String {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir")
        .keep();
    format!("sqlite://{}", dir.join("data").join("finx.db").display())
}

async fn open(url: &str) -> Arc<SqlStore> {
    Arc::new(SqlStore::connect(url).await.expect("open"))
}

/// Walks the flow to the code and exchanges it: (access token, refresh token).
async fn tokens(app: &App) -> (String, String) {
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
    let f = app.finx.submit_tan(flow.id, "123456").await.expect("tan");
    let chosen = f
        .preselected()
        .into_iter()
        .map(|a| a.external_id.clone())
        .collect();
    app.finx
        .choose_accounts(flow.id, chosen)
        .await
        .expect("choose");
    let url = app.finx.complete(flow.id).await.expect("complete");
    let code = url
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let t = app
        .finx
        .exchange_code(&app.client, &code, REDIRECT)
        .await
        .expect("exchange");
    (
        t.access_token.expose().to_owned(),
        t.refresh_token.expect("refresh").expose().to_owned(),
    )
}

async fn guide_flow(store: Arc<dyn Store>) {
    let app = App::on(store).await;
    let (access, refresh) = tokens(&app).await;
    let auth = app.finx.authorize(&access).await.expect("bearer");
    let accounts = app.finx.list_accounts(&auth).await.expect("accounts");
    assert_eq!(accounts.len(), 1);
    let txs = app
        .finx
        .list_transactions(&auth, TransactionQuery::default())
        .await
        .expect("transactions");
    assert!(txs.len() > 30, "{}", txs.len());
    let next = app
        .finx
        .refresh(&app.client, &refresh, None)
        .await
        .expect("refresh");
    let reuse = app.finx.refresh(&app.client, &refresh, None).await;
    assert!(
        matches!(reuse, Err(CoreError::InvalidGrant(_))),
        "{reuse:?}"
    );
    assert!(matches!(
        app.finx.authorize(next.access_token.expose()).await,
        Err(CoreError::InvalidToken)
    ));
}

async fn refresh_race(store: Arc<dyn Store>) {
    let app = App::on(store).await;
    let (_, refresh) = tokens(&app).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(64));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (finx, client, refresh, barrier) = (
            app.finx.clone(),
            app.client.clone(),
            refresh.clone(),
            barrier.clone(),
        );
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            finx.refresh(&client, &refresh, None).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.expect("join") {
            Ok(_) => wins += 1,
            Err(CoreError::InvalidGrant(_)) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(wins, 1, "exactly one refresh wins");
}

async fn durability(url: &str) {
    let store = open(url).await;
    let app = App::on(store.clone()).await;
    let (access, refresh) = tokens(&app).await;
    let auth = app.finx.authorize(&access).await.expect("bearer");
    let before = app
        .finx
        .list_transactions(&auth, TransactionQuery::default())
        .await
        .expect("transactions");
    let accounts_before = app.finx.list_accounts(&auth).await.expect("accounts");
    drop(app);
    store.close().await;
    drop(store);

    let reopened = App::on(open(url).await).await;
    let auth = reopened
        .finx
        .authorize(&access)
        .await
        .expect("the access token survives");
    assert_eq!(
        reopened.finx.list_accounts(&auth).await.expect("accounts"),
        accounts_before
    );
    assert_eq!(
        reopened
            .finx
            .list_transactions(&auth, TransactionQuery::default())
            .await
            .expect("transactions"),
        before
    );
    reopened
        .finx
        .refresh(&reopened.client, &refresh, None)
        .await
        .expect("the refresh token survives");
}

#[tokio::test]
async fn the_guide_flow_runs_on_sqlite() {
    guide_flow(open(&sqlite_url().await).await).await;
}

#[tokio::test]
async fn the_guide_flow_runs_on_postgres() {
    guide_flow(open(&finx_tests::pg::fresh_database().await).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn sixty_four_concurrent_refreshes_have_one_winner_on_sqlite() {
    refresh_race(open(&sqlite_url().await).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn sixty_four_concurrent_refreshes_have_one_winner_on_postgres() {
    refresh_race(open(&finx_tests::pg::fresh_database().await).await).await;
}

#[tokio::test]
async fn a_reopened_sqlite_file_holds_everything() {
    durability(&sqlite_url().await).await;
}

#[tokio::test]
async fn a_reconnected_postgres_database_holds_everything() {
    durability(&finx_tests::pg::fresh_database().await).await;
}

#[tokio::test]
async fn the_sqlite_file_and_its_directory_are_created_on_first_start() {
    let url = sqlite_url().await;
    let path = url.trim_start_matches("sqlite://").to_owned();
    assert!(!std::path::Path::new(&path).exists());
    let store = open(&url).await;
    assert!(std::path::Path::new(&path).exists());
    assert_eq!(store.kind(), "sqlite");
    store.ping().await.expect("ping");
}

#[tokio::test]
async fn an_unsupported_database_url_is_refused_clearly() {
    let e = SqlStore::connect("mysql://localhost/finx")
        .await
        .expect_err("refused");
    assert!(e.to_string().contains("sqlite://"), "{e}");
}
