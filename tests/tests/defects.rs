//! Regression tests for the defects of the hardening review (issue 10): each test failed
//! before its fix. The defect's number is in the test's name.

use std::sync::Arc;

use finx_store_sql::SqlStore;
use finx_tests::fixtures::{App, Served};

async fn sqlite_app() -> App {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir")
        .keep();
    let url = format!("sqlite://{}", dir.join("finx.db").display());
    App::on(Arc::new(SqlStore::connect(&url).await.expect("SQLite"))).await
}

/// Defect 7: a date past chrono's range answered 500 (an overflow panic) on the SQL stores.
#[tokio::test]
async fn d7_dates_at_and_past_the_limits_are_refused_with_400_not_a_panic() {
    let app = sqlite_app().await;
    let tokens = app.nosca_tokens("sandbox-90094815").await;
    let bearer = tokens.access_token.expose().to_owned();
    let served = Served::start(app).await;
    for query in [
        "since_type=created&until=%2B262142-12-31",
        "since_type=modified&until=%2B262142-12-31",
        "since_type=created&since=-262143-01-01",
        "until=%2B262142-12-31",
        "since_type=created&until=10000-01-01",
    ] {
        let mut url = served.url("/rest/transactions");
        url.set_query(Some(query));
        let res = served
            .http
            .get(url)
            .bearer_auth(&bearer)
            .send()
            .await
            .expect("send");
        let status = res.status().as_u16();
        let body: serde_json::Value = res.json().await.expect("json");
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], 1000, "{query}: {body}");
        assert!(body["error"]["data"]["until"].is_array() || body["error"]["data"]["since"].is_array(), "{query}: {body}");
    }
    // The last date in range still works, in every since_type.
    for query in [
        "since_type=created&until=9999-12-31",
        "since_type=modified&since=1900-01-01&until=9999-12-31",
    ] {
        let mut url = served.url("/rest/transactions");
        url.set_query(Some(query));
        let res = served
            .http
            .get(url)
            .bearer_auth(&bearer)
            .send()
            .await
            .expect("send");
        assert_eq!(res.status().as_u16(), 200, "{query}");
    }
}

/// Defect 9: with `provider_id` set, the end user could still pick another bank.
#[tokio::test]
async fn d9_a_bank_fixed_by_provider_id_cannot_be_swapped() {
    use finx_domain::flow::FlowStatus;
    let app = App::new().await;
    let req = finx_core::OnetimeAccessRequest {
        redirect_uri: finx_tests::fixtures::REDIRECT.into(),
        provider_id: Some("sandbox-90094816".into()),
        ..Default::default()
    };
    let flow = app
        .finx
        .create_onetime_access(&app.client, req)
        .await
        .expect("create");
    let err = app
        .finx
        .select_bank(flow.id, "sandbox-90094815")
        .await
        .expect_err("another bank is refused");
    assert!(
        matches!(err, finx_core::CoreError::Invalid { field: "institution", .. }),
        "{err:?}"
    );
    let view = app.finx.widget_view(flow.id).await.expect("view");
    assert!(
        matches!(&view.flow.status, FlowStatus::BankSelected { institution } if institution.as_str() == "sandbox-90094816"),
        "{:?}",
        view.flow.status
    );
    // The fixed bank itself may be picked again.
    app.finx
        .select_bank(flow.id, "sandbox-90094816")
        .await
        .expect("the same bank");
}

/// Defect 1: `POST /auth/revoke` left the grant's accounts and transactions behind.
#[tokio::test]
async fn d1_revoking_over_http_deletes_the_grants_bank_data() {
    for app in [App::new().await, sqlite_app().await] {
        let tokens = app.nosca_tokens("sandbox-90094815").await;
        let auth = app
            .finx
            .authorize(tokens.access_token.expose())
            .await
            .expect("authorized");
        let ids = auth.account_ids.clone();
        assert!(!app.store.find_accounts(&ids).await.expect("find").is_empty());
        let refresh = tokens.refresh_token.expect("offline").expose().to_owned();
        let served = Served::start(app).await;
        let res = served
            .http
            .post(served.url("/auth/revoke"))
            .basic_auth("demo-app", Some(finx_tests::fixtures::DEMO_SECRET))
            .form(&[("token", refresh.as_str())])
            .send()
            .await
            .expect("revoke");
        assert_eq!(res.status().as_u16(), 200);
        assert!(
            served
                .app
                .store
                .find_accounts(&ids)
                .await
                .expect("find")
                .is_empty(),
            "the accounts went with the grant"
        );
        let page = finx_domain::query::ResolvedQuery {
            accounts: ids.clone(),
            count: 100,
            offset: 0,
            sort: finx_domain::query::SortOrder::Desc,
            since: None,
            until: None,
            since_type: finx_domain::query::SinceType::Booked,
            include_pending: true,
            filter: None,
        };
        assert!(
            served
                .app
                .store
                .query_transactions(&page)
                .await
                .expect("query")
                .is_empty(),
            "and their transactions"
        );
    }
}

/// Defect 1: a grant lives at most its absolute lifetime, however often it is refreshed.
#[tokio::test]
async fn d1_a_grant_ends_after_its_absolute_lifetime_despite_refreshes() {
    let app = App::new().await;
    let tokens = app.nosca_tokens("sandbox-90094815").await;
    let mut refresh = tokens.refresh_token.expect("offline").expose().to_owned();
    for _ in 0..2 {
        app.clock.advance(chrono::TimeDelta::days(80));
        let t = app
            .finx
            .refresh(&app.client, &refresh, None)
            .await
            .expect("refresh within the lifetime");
        refresh = t.refresh_token.expect("rotated").expose().to_owned();
    }
    // Half an hour before day 180: the access token issued now is capped at the end.
    app.clock.advance(chrono::TimeDelta::days(20) - chrono::TimeDelta::minutes(30));
    let t = app
        .finx
        .refresh(&app.client, &refresh, None)
        .await
        .expect("refresh within the lifetime");
    assert!(t.expires_in <= 1800, "capped at the grant's end: {}", t.expires_in);
    refresh = t.refresh_token.expect("rotated").expose().to_owned();
    app.clock.advance(chrono::TimeDelta::hours(1));
    let err = app
        .finx
        .refresh(&app.client, &refresh, None)
        .await
        .expect_err("past the grant's end");
    assert!(matches!(err, finx_core::CoreError::InvalidGrant(_)), "{err:?}");
    let report = app.finx.purge_expired().await.expect("purge");
    assert!(report.grants >= 1 && report.accounts >= 1, "{report:?}");
}

/// Reads the raw JSON document of a flow from the SQLite file, as someone with a copy of
/// the database would.
async fn raw_flow_document(url: &str, flow: finx_domain::ids::FlowId) -> String {
    let pool = sqlx::SqlitePool::connect(url).await.expect("open raw");
    let (doc,): (String,) = sqlx::query_as("SELECT document FROM flows WHERE id = $1")
        .bind(flow.to_string())
        .fetch_one(&pool)
        .await
        .expect("row");
    doc
}

/// Defect 10: a card number was stored whole though only its last four digits are used,
/// and bank session handles sat in clear in the flow document.
#[tokio::test]
async fn d10_no_card_number_or_bank_session_is_stored_in_clear() {
    use finx_domain::flow::FlowStatus;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir")
        .keep();
    let url = format!("sqlite://{}", dir.join("finx.db").display());
    let app = App::on(Arc::new(SqlStore::connect(&url).await.expect("SQLite"))).await;
    let req = finx_core::OnetimeAccessRequest {
        redirect_uri: finx_tests::fixtures::REDIRECT.into(),
        accounts: vec!["4111 1111 1111 1111".into()],
        ..Default::default()
    };
    let flow = app
        .finx
        .create_onetime_access(&app.client, req)
        .await
        .expect("create");
    let doc = raw_flow_document(&url, flow.id).await;
    assert!(!doc.contains("4111111111111111"), "{doc}");
    assert!(doc.contains("card:1111"), "the last four digits are kept: {doc}");

    app.finx
        .select_bank(flow.id, "sandbox-90094815")
        .await
        .expect("select");
    app.finx
        .submit_credentials(
            flow.id,
            &finx_ports::BankCredentials {
                user: "demo".into(),
                secret: "demo".into(),
            },
        )
        .await
        .expect("login");
    let view = app.finx.widget_view(flow.id).await.expect("view");
    let FlowStatus::CredentialsAccepted { session, .. } = &view.flow.status else {
        panic!("{:?}", view.flow.status)
    };
    let handle = session.expose().to_owned();
    assert!(handle.len() > 8);
    let doc = raw_flow_document(&url, flow.id).await;
    assert!(!doc.contains(&handle), "the session handle is encrypted at rest");
    assert!(!doc.contains("demo"), "no login name either: {doc}");

    // Another data key cannot read it: the flow reads as corrupt, not as someone's session.
    let other = finx_store_sql::SqlOptions {
        data_key: finx_store_sql::DataKey::from_secret("another data key, thirty-two chars")
            .expect("key"),
        ..Default::default()
    };
    let foreign = SqlStore::connect_with(&url, &other).await.expect("open");
    assert!(
        finx_ports::FlowStore::find_flow(&foreign, flow.id)
            .await
            .is_err()
    );

    // When the flow ends, the session goes.
    app.finx.submit_tan(flow.id, "123456").await.expect("tan");
    app.finx
        .choose_accounts(flow.id, vec!["giro".into()])
        .await
        .expect("choose");
    app.finx.complete(flow.id).await.expect("complete");
    let doc = raw_flow_document(&url, flow.id).await;
    assert!(!doc.contains("session"), "{doc}");
}
