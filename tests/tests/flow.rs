//! The whole guide, in process: create a link, walk the widget steps against the sandbox
//! bank, exchange the code, read the data; and every way that can go wrong.

use chrono::TimeDelta;
use finx_core::{CoreError, LoginStep, OnetimeAccessRequest};
use finx_domain::flow::{FailureReason, FlowError, FlowStatus};
use finx_domain::ids::FlowId;
use finx_domain::query::{RawTransactionQuery, TransactionQuery};
use finx_ports::{BankCredentials, Clock};
use finx_tests::fixtures::{App, REDIRECT};
use url::Url;

const GUIDE_IBAN: &str = "DE82900948150000002881";

fn creds(user: &str, secret: &str) -> BankCredentials {
    BankCredentials {
        user: user.into(),
        secret: secret.into(),
    }
}

fn request() -> OnetimeAccessRequest {
    OnetimeAccessRequest {
        redirect_uri: REDIRECT.into(),
        state: Some("7fe78733".into()),
        ..Default::default()
    }
}

fn query_of(url: &Url, key: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// Walks a flow from a fresh link to the redirect, with `demo`/`demo` and TAN 123456.
async fn walk(app: &App, req: OnetimeAccessRequest) -> Url {
    let flow = app
        .finx
        .create_onetime_access(&app.client, req)
        .await
        .expect("create");
    if flow.status == FlowStatus::Created {
        app.finx
            .select_bank(flow.id, "sandbox-90094815")
            .await
            .expect("select");
    }
    assert_eq!(
        app.finx
            .submit_credentials(flow.id, &creds("demo", "demo"))
            .await
            .expect("login"),
        LoginStep::ScaRequired
    );
    app.finx
        .choose_method(flow.id, "push")
        .await
        .expect("method");
    let flow = app.finx.submit_tan(flow.id, "123456").await.expect("tan");
    let chosen = flow
        .preselected()
        .into_iter()
        .map(|a| a.external_id.clone())
        .collect();
    app.finx
        .choose_accounts(flow.id, chosen)
        .await
        .expect("choose");
    app.finx.complete(flow.id).await.expect("complete")
}

#[tokio::test]
async fn the_guide_flow_walks_all_three_steps_in_process() {
    let app = App::new().await;
    // Step 1: the link, with the IBAN of the guide: the bank is preselected.
    let req = OnetimeAccessRequest {
        accounts: vec![GUIDE_IBAN.into()],
        sync_period: Some(90),
        ..request()
    };
    let flow = app
        .finx
        .create_onetime_access(&app.client, req)
        .await
        .expect("create");
    assert!(
        matches!(&flow.status, FlowStatus::BankSelected { institution } if institution.as_str() == "sandbox-90094815")
    );
    assert_eq!(
        app.finx
            .submit_credentials(flow.id, &creds("demo", "demo"))
            .await
            .expect("login"),
        LoginStep::ScaRequired
    );
    app.finx
        .choose_method(flow.id, "push")
        .await
        .expect("method");
    let view = app.finx.widget_view(flow.id).await.expect("view");
    assert!(
        matches!(view.flow.asked(), Some(finx_domain::sca::BankStep::Tan { challenge }) if challenge.method == "pushTAN")
    );
    let f = app.finx.submit_tan(flow.id, "123456").await.expect("tan");
    let pre: Vec<_> = f
        .preselected()
        .into_iter()
        .map(|a| a.iban.as_ref().map(|i| i.to_string()))
        .collect();
    assert_eq!(
        pre,
        vec![Some(GUIDE_IBAN.to_owned())],
        "only the account named by IBAN is preselected"
    );
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
    assert!(url.as_str().starts_with(REDIRECT));
    assert_eq!(query_of(&url, "state").as_deref(), Some("7fe78733"));
    assert_eq!(query_of(&url, "success").as_deref(), Some("true"));
    assert_eq!(query_of(&url, "flow_id"), Some(flow.id.to_string()));

    // Step 2: the code for tokens.
    let code = query_of(&url, "code").expect("code");
    let tokens = app
        .finx
        .exchange_code(&app.client, &code, REDIRECT)
        .await
        .expect("exchange");
    assert_eq!(tokens.expires_in, 3600);
    assert_eq!(
        tokens.scope.to_string(),
        "accounts=ro balance=ro transactions=ro offline"
    );
    let refresh = tokens
        .refresh_token
        .expect("offline grants a refresh token");

    // Step 3: the data.
    let auth = app
        .finx
        .authorize(tokens.access_token.expose())
        .await
        .expect("bearer");
    let accounts = app.finx.list_accounts(&auth).await.expect("accounts");
    assert_eq!(accounts.len(), 1);
    assert_eq!(
        accounts[0]
            .details
            .iban
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some(GUIDE_IBAN)
    );
    assert!(accounts[0].balance.is_some());
    let booked = app
        .finx
        .list_transactions(&auth, TransactionQuery::default())
        .await
        .expect("transactions");
    assert!(
        booked.len() > 30,
        "90 days of a giro account: {}",
        booked.len()
    );
    assert!(booked.iter().all(|t| t.details.booked));
    assert!(
        booked
            .windows(2)
            .all(|w| (w[0].details.booked_on, &w[0].id) >= (w[1].details.booked_on, &w[1].id)),
        "newest first"
    );
    let oldest = booked.last().expect("some").details.booked_on;
    assert!(
        oldest >= app.clock.now().date_naive() - TimeDelta::days(89),
        "no more than sync_period days: {oldest}"
    );
    let with_pending = TransactionQuery::parse(RawTransactionQuery {
        include_pending: Some("true"),
        ..Default::default()
    })
    .expect("q");
    let all = app
        .finx
        .list_transactions(&auth, with_pending)
        .await
        .expect("transactions");
    assert!(
        all.len() > booked.len(),
        "the sandbox reports pending card payments"
    );
    let page = TransactionQuery::parse(RawTransactionQuery {
        count: Some("10"),
        offset: Some("5"),
        sort: Some("asc"),
        ..Default::default()
    })
    .expect("q");
    let page = app.finx.list_transactions(&auth, page).await.expect("page");
    assert_eq!(page.len(), 10);
    let one = app
        .finx
        .get_transaction(&auth, page[0].id.as_str())
        .await
        .expect("one");
    assert_eq!(one, page[0]);
    let balance = app
        .finx
        .get_balance(&auth, accounts[0].id.as_str())
        .await
        .expect("balance");
    assert_eq!(balance.amount.currency().as_str(), "EUR");

    // And the refresh rotates.
    let next = app
        .finx
        .refresh(&app.client, refresh.expose(), None)
        .await
        .expect("refresh");
    assert!(next.refresh_token.is_some());
    assert!(app.finx.authorize(next.access_token.expose()).await.is_ok());
}

#[tokio::test]
async fn without_an_iban_the_user_searches_and_picks_a_bank() {
    let app = App::new().await;
    let flow = app
        .finx
        .create_onetime_access(&app.client, request())
        .await
        .expect("create");
    assert_eq!(flow.status, FlowStatus::Created);
    let hits = app
        .finx
        .search_institutions("90094817")
        .await
        .expect("search");
    assert_eq!(hits.len(), 1);
    assert!(
        app.finx
            .search_institutions("no such bank")
            .await
            .expect("search")
            .is_empty()
    );
    assert!(
        app.finx
            .select_bank(flow.id, "sandbox-00000000")
            .await
            .is_err(),
        "unknown banks are refused"
    );
    app.finx
        .select_bank(flow.id, hits[0].id.as_str())
        .await
        .expect("select");
    assert_eq!(
        app.finx
            .submit_credentials(flow.id, &creds("demo", "demo"))
            .await
            .expect("login"),
        LoginStep::ScaRequired
    );
}

#[tokio::test]
async fn an_unknown_bank_code_falls_back_to_bank_selection() {
    let app = App::new().await;
    // A valid IBAN at a bank the sandbox does not know.
    let req = OnetimeAccessRequest {
        accounts: vec!["DE89370400440532013000".into()],
        ..request()
    };
    let flow = app
        .finx
        .create_onetime_access(&app.client, req)
        .await
        .expect("create");
    assert_eq!(flow.status, FlowStatus::Created);
}

#[tokio::test]
async fn cancelling_sends_the_user_back_with_cancel_and_state() {
    let app = App::new().await;
    let flow = app
        .finx
        .create_onetime_access(&app.client, request())
        .await
        .expect("create");
    app.finx
        .select_bank(flow.id, "sandbox-90094815")
        .await
        .expect("select");
    let url = app.finx.cancel(flow.id).await.expect("cancel");
    assert_eq!(
        url.query(),
        Some(
            format!(
                "success=false&cancel=true&state=7fe78733&flow_id={}",
                flow.id
            )
            .as_str()
        )
    );
    let again = app
        .finx
        .submit_credentials(flow.id, &creds("demo", "demo"))
        .await;
    assert!(
        matches!(
            again,
            Err(CoreError::Flow(FlowError::Finished("cancelled")))
        ),
        "{again:?}"
    );
}

#[tokio::test]
async fn a_wrong_password_can_be_retried_and_three_fail_the_flow() {
    let app = App::new().await;
    let flow = app
        .finx
        .create_onetime_access(&app.client, request())
        .await
        .expect("create");
    app.finx
        .select_bank(flow.id, "sandbox-90094815")
        .await
        .expect("select");
    let r = app
        .finx
        .submit_credentials(flow.id, &creds("demo", "wrong"))
        .await;
    assert!(
        matches!(r, Err(CoreError::CredentialsInvalid { attempts_left: 2 })),
        "{r:?}"
    );
    assert_eq!(
        app.finx
            .submit_credentials(flow.id, &creds("demo", "demo"))
            .await
            .expect("login"),
        LoginStep::ScaRequired
    );

    let flow = app
        .finx
        .create_onetime_access(&app.client, request())
        .await
        .expect("create");
    app.finx
        .select_bank(flow.id, "sandbox-90094815")
        .await
        .expect("select");
    for left in [2, 1] {
        let r = app
            .finx
            .submit_credentials(flow.id, &creds("demo", "wrong"))
            .await;
        assert!(
            matches!(r, Err(CoreError::CredentialsInvalid { attempts_left }) if attempts_left == left),
            "{r:?}"
        );
    }
    let r = app
        .finx
        .submit_credentials(flow.id, &creds("demo", "wrong"))
        .await;
    assert!(
        matches!(r, Err(CoreError::FlowFailed(FailureReason::LoginFailed))),
        "{r:?}"
    );
    let url = app.finx.failure_redirect(flow.id).await.expect("redirect");
    assert_eq!(query_of(&url, "success").as_deref(), Some("false"));
    assert_eq!(query_of(&url, "error").as_deref(), Some("login_failed"));
    assert_eq!(query_of(&url, "cancel"), None);
}

#[tokio::test]
async fn a_wrong_tan_can_be_retried() {
    let app = App::new().await;
    let flow = app
        .finx
        .create_onetime_access(&app.client, request())
        .await
        .expect("create");
    app.finx
        .select_bank(flow.id, "sandbox-90094815")
        .await
        .expect("select");
    app.finx
        .submit_credentials(flow.id, &creds("demo", "demo"))
        .await
        .expect("login");
    app.finx
        .choose_method(flow.id, "push")
        .await
        .expect("method");
    let r = app.finx.submit_tan(flow.id, "000000").await;
    assert!(
        matches!(r, Err(CoreError::TanInvalid { attempts_left: 2 })),
        "{r:?}"
    );
    let f = app
        .finx
        .submit_tan(flow.id, "123456")
        .await
        .expect("right TAN");
    assert!(matches!(f.status, FlowStatus::ScaPassed { .. }));
}

#[tokio::test]
async fn three_wrong_tans_fail_with_sca_failed() {
    let app = App::new().await;
    let flow = app
        .finx
        .create_onetime_access(&app.client, request())
        .await
        .expect("create");
    app.finx
        .select_bank(flow.id, "sandbox-90094815")
        .await
        .expect("select");
    app.finx
        .submit_credentials(flow.id, &creds("demo", "demo"))
        .await
        .expect("login");
    app.finx
        .choose_method(flow.id, "push")
        .await
        .expect("method");
    for _ in 0..2 {
        assert!(matches!(
            app.finx.submit_tan(flow.id, "1").await,
            Err(CoreError::TanInvalid { .. })
        ));
    }
    assert!(matches!(
        app.finx.submit_tan(flow.id, "1").await,
        Err(CoreError::FlowFailed(FailureReason::ScaFailed))
    ));
    let url = app.finx.failure_redirect(flow.id).await.expect("redirect");
    assert_eq!(query_of(&url, "error").as_deref(), Some("sca_failed"));
}

#[tokio::test]
async fn bank_side_failures_end_the_flow_with_their_reason() {
    let app = App::new().await;
    for (user, reason) in [
        ("locked", FailureReason::AccountLocked),
        ("unavailable", FailureReason::BankUnavailable),
    ] {
        let flow = app
            .finx
            .create_onetime_access(&app.client, request())
            .await
            .expect("create");
        app.finx
            .select_bank(flow.id, "sandbox-90094815")
            .await
            .expect("select");
        let r = app
            .finx
            .submit_credentials(flow.id, &creds(user, "demo"))
            .await;
        assert!(
            matches!(r, Err(CoreError::FlowFailed(got)) if got == reason),
            "{user}: {r:?}"
        );
        let url = app.finx.failure_redirect(flow.id).await.expect("redirect");
        assert_eq!(query_of(&url, "error").as_deref(), Some(reason.code()));
    }
}

#[tokio::test]
async fn a_bank_without_sca_goes_straight_to_the_accounts() {
    let app = App::new().await;
    let flow = app
        .finx
        .create_onetime_access(&app.client, request())
        .await
        .expect("create");
    app.finx
        .select_bank(flow.id, "sandbox-90094817")
        .await
        .expect("select");
    let step = app
        .finx
        .submit_credentials(flow.id, &creds("nosca", "demo"))
        .await
        .expect("login");
    assert_eq!(step, LoginStep::AccountsOffered);
}

#[tokio::test]
async fn an_expired_link_refuses_every_step_and_reports_link_expired() {
    let app = App::new().await;
    let flow = app
        .finx
        .create_onetime_access(&app.client, request())
        .await
        .expect("create");
    app.clock.advance(TimeDelta::minutes(60));
    let r = app.finx.select_bank(flow.id, "sandbox-90094815").await;
    assert!(
        matches!(r, Err(CoreError::Flow(FlowError::Expired))),
        "{r:?}"
    );
    assert_eq!(
        app.finx
            .widget_view(flow.id)
            .await
            .expect("view")
            .flow
            .status,
        FlowStatus::Expired
    );
    let url = app.finx.failure_redirect(flow.id).await.expect("redirect");
    assert_eq!(query_of(&url, "error").as_deref(), Some("link_expired"));
}

#[tokio::test]
async fn an_unknown_flow_is_not_found() {
    let app = App::new().await;
    let r = app.finx.widget_view(FlowId::from_random([0; 16])).await;
    assert!(matches!(r, Err(CoreError::NotFound("flow"))), "{r:?}");
}

#[tokio::test]
async fn a_flow_completes_once() {
    let app = App::new().await;
    let flow = app
        .finx
        .create_onetime_access(&app.client, request())
        .await
        .expect("create");
    walk_to_chosen(&app, flow.id).await;
    app.finx.complete(flow.id).await.expect("first");
    let second = app.finx.complete(flow.id).await;
    assert!(
        matches!(
            second,
            Err(CoreError::Flow(FlowError::Finished("completed")))
        ),
        "{second:?}"
    );
}

async fn walk_to_chosen(app: &App, id: FlowId) {
    app.finx
        .select_bank(id, "sandbox-90094815")
        .await
        .expect("select");
    app.finx
        .submit_credentials(id, &creds("demo", "demo"))
        .await
        .expect("login");
    app.finx.choose_method(id, "push").await.expect("method");
    let f = app.finx.submit_tan(id, "123456").await.expect("tan");
    let chosen = f
        .preselected()
        .into_iter()
        .map(|a| a.external_id.clone())
        .collect();
    app.finx.choose_accounts(id, chosen).await.expect("choose");
}

#[tokio::test]
async fn a_replayed_code_revokes_every_token_of_its_grant() {
    let app = App::new().await;
    let url = walk(&app, request()).await;
    let code = query_of(&url, "code").expect("code");
    let first = app
        .finx
        .exchange_code(&app.client, &code, REDIRECT)
        .await
        .expect("first exchange");
    assert!(
        app.finx
            .authorize(first.access_token.expose())
            .await
            .is_ok()
    );
    let replay = app.finx.exchange_code(&app.client, &code, REDIRECT).await;
    assert!(
        matches!(replay, Err(CoreError::InvalidGrant(_))),
        "{replay:?}"
    );
    assert!(matches!(
        app.finx.authorize(first.access_token.expose()).await,
        Err(CoreError::InvalidToken)
    ));
    let refresh = first.refresh_token.expect("refresh");
    assert!(matches!(
        app.finx.refresh(&app.client, refresh.expose(), None).await,
        Err(CoreError::InvalidGrant(_))
    ));
}

#[tokio::test]
async fn a_reused_refresh_token_revokes_the_grant() {
    let app = App::new().await;
    let url = walk(&app, request()).await;
    let code = query_of(&url, "code").expect("code");
    let t1 = app
        .finx
        .exchange_code(&app.client, &code, REDIRECT)
        .await
        .expect("exchange");
    let r1 = t1.refresh_token.expect("refresh");
    let t2 = app
        .finx
        .refresh(&app.client, r1.expose(), None)
        .await
        .expect("rotate");
    let r2 = t2.refresh_token.expect("refresh");
    let reuse = app.finx.refresh(&app.client, r1.expose(), None).await;
    assert!(
        matches!(reuse, Err(CoreError::InvalidGrant(m)) if m.contains("revoked")),
        "{reuse:?}"
    );
    assert!(
        matches!(
            app.finx.refresh(&app.client, r2.expose(), None).await,
            Err(CoreError::InvalidGrant(_))
        ),
        "the newest dies too"
    );
    assert!(matches!(
        app.finx.authorize(t2.access_token.expose()).await,
        Err(CoreError::InvalidToken)
    ));
}

#[tokio::test]
async fn codes_and_access_tokens_expire_after_one_hour_and_refresh_tokens_keep_access() {
    let app = App::new().await;
    let url = walk(&app, request()).await;
    let code = query_of(&url, "code").expect("code");
    app.clock.advance(TimeDelta::minutes(59));
    let t = app
        .finx
        .exchange_code(&app.client, &code, REDIRECT)
        .await
        .expect("in time");
    app.clock.advance(TimeDelta::minutes(60));
    assert!(matches!(
        app.finx.authorize(t.access_token.expose()).await,
        Err(CoreError::InvalidToken)
    ));
    app.clock.advance(TimeDelta::days(89));
    let t = app
        .finx
        .refresh(
            &app.client,
            t.refresh_token.expect("refresh").expose(),
            None,
        )
        .await
        .expect("within 90 days");
    assert!(app.finx.authorize(t.access_token.expose()).await.is_ok());
    app.clock.advance(TimeDelta::days(90));
    let late = app
        .finx
        .refresh(
            &app.client,
            t.refresh_token.expect("refresh").expose(),
            None,
        )
        .await;
    assert!(
        matches!(late, Err(CoreError::InvalidGrant(m)) if m.contains("expired")),
        "{late:?}"
    );

    let app = App::new().await;
    let url = walk(&app, request()).await;
    app.clock.advance(TimeDelta::minutes(60));
    let late = app
        .finx
        .exchange_code(
            &app.client,
            &query_of(&url, "code").expect("code"),
            REDIRECT,
        )
        .await;
    assert!(
        matches!(late, Err(CoreError::InvalidGrant(m)) if m.contains("expired")),
        "{late:?}"
    );
}

#[tokio::test]
async fn another_client_cannot_use_the_code_or_the_tokens() {
    let app = App::new().await;
    let other = app
        .finx
        .register_client(finx_core::NewClient {
            id: Some("other-app".into()),
            name: "Other".into(),
            redirect_uris: vec![REDIRECT.into()],
            scope: None,
            secret: None,
        })
        .await
        .expect("register");
    let url = walk(&app, request()).await;
    let code = query_of(&url, "code").expect("code");
    assert!(matches!(
        app.finx.exchange_code(&other.client, &code, REDIRECT).await,
        Err(CoreError::InvalidGrant(_))
    ));
    let t = app
        .finx
        .exchange_code(&app.client, &code, REDIRECT)
        .await
        .expect("the right client still can");
    let r = t.refresh_token.expect("refresh");
    assert!(matches!(
        app.finx.refresh(&other.client, r.expose(), None).await,
        Err(CoreError::InvalidGrant(_))
    ));
    assert!(matches!(
        app.finx.revoke(&other.client, r.expose()).await,
        Err(CoreError::UnauthorizedClient)
    ));
    app.finx
        .revoke(&app.client, r.expose())
        .await
        .expect("revoke");
    assert!(
        matches!(
            app.finx.authorize(t.access_token.expose()).await,
            Err(CoreError::InvalidToken)
        ),
        "revoking the refresh token revokes the grant"
    );
    app.finx
        .revoke(&app.client, "fxr_unknown")
        .await
        .expect("unknown tokens are fine (RFC 7009)");
}

#[tokio::test]
async fn client_authentication_checks_the_secret() {
    let app = App::new().await;
    assert!(
        app.finx
            .authenticate_client("demo-app", app.secret.expose())
            .await
            .is_ok()
    );
    assert!(matches!(
        app.finx.authenticate_client("demo-app", "fxs_wrong").await,
        Err(CoreError::InvalidClient)
    ));
}

#[tokio::test]
async fn a_narrow_scope_limits_what_the_token_reads() {
    let app = App::new().await;
    let url = walk(
        &app,
        OnetimeAccessRequest {
            scope: Some("accounts=ro".into()),
            ..request()
        },
    )
    .await;
    let t = app
        .finx
        .exchange_code(
            &app.client,
            &query_of(&url, "code").expect("code"),
            REDIRECT,
        )
        .await
        .expect("exchange");
    assert!(t.refresh_token.is_none(), "no offline, no refresh token");
    let auth = app
        .finx
        .authorize(t.access_token.expose())
        .await
        .expect("bearer");
    let accounts = app.finx.list_accounts(&auth).await.expect("accounts");
    assert_eq!(
        accounts.len(),
        3,
        "giro, savings and card were all preselected and chosen"
    );
    assert!(
        accounts.iter().all(|a| a.balance.is_none()),
        "no balance=ro, no balance"
    );
    assert!(matches!(
        app.finx.get_balance(&auth, accounts[0].id.as_str()).await,
        Err(CoreError::InsufficientScope(
            finx_domain::scope::ScopeItem::Balance
        ))
    ));
    assert!(matches!(
        app.finx
            .list_transactions(&auth, TransactionQuery::default())
            .await,
        Err(CoreError::InsufficientScope(_))
    ));
}
