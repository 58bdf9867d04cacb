//! What an attacker or a buggy customer might try: guessing passwords in parallel,
//! reading another grant's data, racing a cancel against the data fetch.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use finx_core::{CoreError, OnetimeAccessRequest};
use finx_domain::bank::Account;
use finx_domain::flow::{FailureReason, FlowError, FlowStatus};
use finx_domain::query::{RawTransactionQuery, TransactionQuery};
use finx_ports::BankCredentials;
use finx_tests::fixtures::{App, CountingBank, REDIRECT};

fn creds(user: &str, secret: &str) -> BankCredentials {
    BankCredentials {
        user: user.into(),
        secret: secret.into(),
    }
}

fn request() -> OnetimeAccessRequest {
    OnetimeAccessRequest {
        redirect_uri: REDIRECT.into(),
        ..Default::default()
    }
}

async fn counting_app() -> (App, Arc<CountingBank>) {
    let counter = std::sync::Mutex::new(None);
    let app = App::with(Duration::from_millis(10), |bank| {
        let c = Arc::new(CountingBank::new(bank));
        *counter.lock().expect("lock") = Some(c.clone());
        c
    })
    .await;
    let c = counter.lock().expect("lock").take().expect("wrapped");
    (app, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_password_guesses_reach_the_bank_at_most_three_times() {
    let (app, bank) = counting_app().await;
    let flow = app
        .finx
        .create_onetime_access(&app.client, request())
        .await
        .expect("create");
    app.finx
        .select_bank(flow.id, "sandbox-90094815")
        .await
        .expect("select");
    let mut tasks = Vec::new();
    for i in 0..20 {
        let finx = app.finx.clone();
        tasks.push(tokio::spawn(async move {
            finx.submit_credentials(flow.id, &creds("demo", &format!("guess{i}")))
                .await
        }));
    }
    for t in tasks {
        assert!(t.await.expect("join").is_err(), "every guess is wrong");
    }
    assert!(
        bank.logins.load(Ordering::SeqCst) <= 3,
        "{} logins reached the bank",
        bank.logins.load(Ordering::SeqCst)
    );
    // One answer is with the bank at a time (the others were refused as out of turn), so
    // the parallel burst may have used fewer than three tries; guessing on, the flow fails
    // after exactly three in all.
    for i in 0..5 {
        let r = app
            .finx
            .submit_credentials(flow.id, &creds("demo", &format!("again{i}")))
            .await;
        if matches!(r, Err(CoreError::FlowFailed(_)) | Err(CoreError::Flow(_))) {
            let v = app.finx.widget_view(flow.id).await.expect("view");
            if v.flow.status.is_terminal() {
                break;
            }
        }
    }
    assert_eq!(bank.logins.load(Ordering::SeqCst), 3, "three tries in all");
    let view = app.finx.widget_view(flow.id).await.expect("view");
    assert_eq!(
        view.flow.status,
        FlowStatus::Failed {
            reason: FailureReason::LoginFailed
        }
    );
}

#[tokio::test]
async fn picking_the_bank_again_gives_no_new_tries() {
    let (app, bank) = counting_app().await;
    let flow = app
        .finx
        .create_onetime_access(&app.client, request())
        .await
        .expect("create");
    app.finx
        .select_bank(flow.id, "sandbox-90094815")
        .await
        .expect("select");
    for _ in 0..2 {
        assert!(
            app.finx
                .submit_credentials(flow.id, &creds("demo", "wrong"))
                .await
                .is_err()
        );
        app.finx
            .select_bank(flow.id, "sandbox-90094817")
            .await
            .expect("reselect");
    }
    let third = app
        .finx
        .submit_credentials(flow.id, &creds("demo", "wrong"))
        .await;
    assert!(
        matches!(
            third,
            Err(CoreError::FlowFailed(FailureReason::LoginFailed))
        ),
        "{third:?}"
    );
    assert_eq!(bank.logins.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_tan_guesses_reach_the_bank_at_most_three_times() {
    let (app, bank) = counting_app().await;
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
    let mut tasks = Vec::new();
    for i in 0..20 {
        let finx = app.finx.clone();
        tasks.push(tokio::spawn(async move {
            finx.submit_tan(flow.id, &format!("{:06}", i + 1)).await
        }));
    }
    for t in tasks {
        assert!(t.await.expect("join").is_err());
    }
    assert!(
        bank.tans.load(Ordering::SeqCst) <= 3,
        "{} TANs reached the bank",
        bank.tans.load(Ordering::SeqCst)
    );
}

/// A grant at `bank` and what its access token allows.
async fn grant(app: &App, bank: &str) -> finx_core::Authorization {
    let t = app.nosca_tokens(bank).await;
    app.finx
        .authorize(t.access_token.expose())
        .await
        .expect("bearer")
}

#[tokio::test]
async fn one_grant_never_sees_another_grants_data() {
    let app = App::new().await;
    let a = grant(&app, "sandbox-90094815").await;
    let b = grant(&app, "sandbox-90094816").await;
    let a_account = a.account_ids[0].clone();
    let a_txs = app
        .finx
        .list_transactions(&a, TransactionQuery::default())
        .await
        .expect("a's transactions");
    let a_tx = a_txs.first().expect("some").id.clone();

    assert!(matches!(
        app.finx.get_account(&b, a_account.as_str()).await,
        Err(CoreError::NotFound("account"))
    ));
    assert!(matches!(
        app.finx.get_balance(&b, a_account.as_str()).await,
        Err(CoreError::NotFound("account"))
    ));
    assert!(matches!(
        app.finx.get_transaction(&b, a_tx.as_str()).await,
        Err(CoreError::NotFound("transaction"))
    ));
    let named = TransactionQuery::parse(RawTransactionQuery {
        accounts: Some(a_account.as_str()),
        ..Default::default()
    })
    .expect("q");
    assert!(matches!(
        app.finx.list_transactions(&b, named).await,
        Err(CoreError::NotFound("account"))
    ));
    let since = TransactionQuery::parse(RawTransactionQuery {
        since: Some(a_tx.as_str()),
        ..Default::default()
    })
    .expect("q");
    assert!(matches!(
        app.finx.list_transactions(&b, since).await,
        Err(CoreError::NotFound("transaction"))
    ));
    let b_txs = app
        .finx
        .list_transactions(&b, TransactionQuery::default())
        .await
        .expect("b's transactions");
    assert!(!b_txs.is_empty());
    assert!(b_txs.iter().all(|t| b.account_ids.contains(&t.account_id)));
    let b_accounts = app.finx.list_accounts(&b).await.expect("accounts");
    assert_eq!(b_accounts.len(), 1);
    assert_ne!(b_accounts[0].id, a_account);
}

#[tokio::test]
async fn a_repeated_account_does_not_repeat_its_transactions() {
    let app = App::new().await;
    let a = grant(&app, "sandbox-90094815").await;
    let id = a.account_ids[0].as_str().to_owned();
    let twice = format!("{id},{id}");
    let q = TransactionQuery::parse(RawTransactionQuery {
        accounts: Some(&twice),
        ..Default::default()
    })
    .expect("q");
    let got = app
        .finx
        .list_transactions(&a, q)
        .await
        .expect("transactions");
    let all = app
        .finx
        .list_transactions(&a, TransactionQuery::default())
        .await
        .expect("transactions");
    assert_eq!(got, all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelling_during_the_data_fetch_leaves_no_grant_and_no_data() {
    let app = App::with(Duration::from_millis(2000), |bank| bank).await;
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
        .submit_credentials(flow.id, &creds("slow", "demo"))
        .await
        .expect("login (slow)");
    app.finx
        .choose_method(flow.id, "push")
        .await
        .expect("method");
    app.finx.submit_tan(flow.id, "123456").await.expect("tan");
    app.finx
        .choose_accounts(flow.id, vec!["giro".into()])
        .await
        .expect("choose");
    let finx = app.finx.clone();
    let completing = tokio::spawn(async move { finx.complete(flow.id).await });
    // The slow user's transactions take 2 s; cancel while they are fetched.
    let deadline = std::time::Instant::now() + Duration::from_millis(1500);
    while !matches!(
        app.finx
            .widget_view(flow.id)
            .await
            .expect("view")
            .flow
            .status,
        FlowStatus::Syncing { .. }
    ) {
        assert!(
            std::time::Instant::now() < deadline,
            "the fetch did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.finx
        .cancel(flow.id)
        .await
        .expect("cancel during the fetch");
    let done = completing.await.expect("join");
    assert!(
        matches!(done, Err(CoreError::Flow(FlowError::Finished("cancelled")))),
        "{done:?}"
    );
    let access = finx_core::Finx::access_of(flow.id);
    let account = Account::id_for(&access, "giro");
    assert!(
        app.store
            .find_accounts(std::slice::from_ref(&account))
            .await
            .expect("find")
            .is_empty(),
        "the fetched account is deleted"
    );
    let q = finx_tests::fixtures::everything(vec![account], 1000);
    assert!(
        app.store
            .query_transactions(&q)
            .await
            .expect("query")
            .is_empty(),
        "its transactions too"
    );
    // A second completion does nothing either.
    assert!(app.finx.complete(flow.id).await.is_err());
}

#[tokio::test]
async fn the_redirect_uri_may_be_spelled_differently_but_must_be_the_same_url() {
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
        .submit_credentials(flow.id, &creds("nosca", "demo"))
        .await
        .expect("login");
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
    let other = app
        .finx
        .exchange_code(&app.client, &code, "https://app.example/callback/other")
        .await;
    assert!(
        matches!(other, Err(CoreError::InvalidGrant(_))),
        "{other:?}"
    );
    let same = app
        .finx
        .exchange_code(&app.client, &code, "HTTPS://App.Example:443/callback")
        .await;
    assert!(same.is_ok(), "{same:?}");
}
