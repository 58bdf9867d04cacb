//! The XS2A connector against the sandbox bank's XS2A server, over loopback HTTP: every SCA
//! approach and consent model, the data, the error mapping, and whole flows through finX's
//! widget forms.

use std::sync::Arc;
use std::time::Duration;

use finx_bank_sandbox::{BankPage, SandboxBank, SandboxConfig};
use finx_bank_xs2a::{Xs2aConfig, Xs2aConnector};
use finx_domain::ids::InstitutionId;
use finx_domain::registry::{BankDraft, RegisteredBank};
use finx_domain::sca::{BankStep, StepAnswer};
use finx_ports::{
    BankConnector, BankError, BankRegistry, BankReply, ConsentRequest, Presence, PsuContext,
    ReturnTo,
};
use finx_tests::fixtures::{App, Served, TestClock, t0, walk_widget};

/// The sandbox bank's XS2A server on a loopback port, and a registry pointing at it.
struct Bank {
    base: url::Url,
    sandbox: Arc<SandboxBank>,
    clock: Arc<TestClock>,
    registry: Arc<finx_store_memory::MemoryStore>,
    /// Every XS2A request the bank saw.
    seen: Arc<std::sync::Mutex<Vec<Seen>>>,
}

/// A request the bank saw: method, path, and its `PSU-IP-Address`, if any.
type Seen = (String, String, Option<String>);

impl Bank {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = url::Url::parse(&format!("http://{}/", listener.local_addr().expect("addr")))
            .expect("url");
        let clock = Arc::new(TestClock::at(t0()));
        let sandbox = Arc::new(SandboxBank::new(
            SandboxConfig {
                public_url: base.clone(),
                slow_delay: Duration::from_millis(10),
                ..SandboxConfig::default()
            },
            clock.clone(),
        ));
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        let app = finx_bank_sandbox::xs2a::router(sandbox.clone())
            .layer(axum::middleware::from_fn(
                move |req: axum::extract::Request, next: axum::middleware::Next| {
                    let record = record.clone();
                    async move {
                        let ip = req
                            .headers()
                            .get("psu-ip-address")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        record.lock().expect("lock").push((
                            req.method().to_string(),
                            req.uri().path().to_owned(),
                            ip,
                        ));
                        next.run(req).await
                    }
                },
            ))
            .merge(finx_bank_sandbox::web::router(sandbox.clone()));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let registry = Arc::new(finx_store_memory::MemoryStore::new());
        let bank = Self {
            base,
            sandbox,
            clock,
            registry,
            seen,
        };
        bank.register("bank-offered").await;
        let oauth = RegisteredBank::from_draft(BankDraft {
            id: Some("sandbox-oauth".into()),
            name: "Sparkasse Musterstadt (Sandbox, OAuth)".into(),
            bank_code: Some("90094816".into()),
            url: bank
                .base
                .join("sandbox/xs2a-oauth/90094816")
                .expect("url")
                .to_string(),
            sca_approaches: vec!["OAUTH".into()],
            ..BankDraft::default()
        })
        .expect("valid");
        bank.registry
            .upsert_banks(&[oauth])
            .await
            .expect("registry");
        bank
    }

    /// Registers the three sandbox banks with `model`.
    async fn register(&self, model: &str) {
        let banks: Vec<RegisteredBank> = ["90094815", "90094816", "90094817"]
            .into_iter()
            .map(|code| {
                RegisteredBank::from_draft(BankDraft {
                    id: Some(format!("sandbox-{code}")),
                    name: format!("Sandbox {code}"),
                    bic: None,
                    bank_code: Some(code.into()),
                    url: self
                        .base
                        .join(&format!("sandbox/xs2a/{code}"))
                        .expect("url")
                        .to_string(),
                    consent_model: Some(model.into()),
                    ..BankDraft::default()
                })
                .expect("valid")
            })
            .collect();
        self.registry.upsert_banks(&banks).await.expect("registry");
    }

    fn connector(&self) -> Xs2aConnector {
        Xs2aConnector::new(self.registry.clone(), Xs2aConfig::default()).expect("connector")
    }
}

fn request() -> ConsentRequest {
    ConsentRequest {
        psu: PsuContext {
            ip: Some("198.51.100.7".parse().expect("ip")),
            user_agent: Some("test".into()),
        },
        ibans: Vec::new(),
        recurring: false,
        valid_until: t0().date_naive() + chrono::TimeDelta::days(1),
        frequency_per_day: 1,
    }
}

fn return_to() -> ReturnTo {
    ReturnTo {
        ok: url::Url::parse("http://finx.test/widget/callback?state=s&ok=1").expect("url"),
        nok: url::Url::parse("http://finx.test/widget/callback?state=s&ok=0").expect("url"),
    }
}

fn inst(code: &str) -> InstitutionId {
    InstitutionId::parse(&format!("sandbox-{code}")).expect("id")
}

fn login(user: &str) -> StepAnswer {
    StepAnswer::Login(vec![
        ("user".into(), user.into()),
        ("pin".into(), "demo".into()),
    ])
}

fn next(r: BankReply) -> (finx_domain::flow::BankSession, BankStep) {
    match r {
        BankReply::Next { session, step } => (session, step),
        BankReply::Done { .. } => panic!("more steps expected"),
    }
}

#[tokio::test]
async fn embedded_with_a_method_choice_photo_challenge_and_a_wrong_then_right_tan() {
    let bank = Bank::start().await;
    let c = bank.connector();
    let i = inst("90094815");
    let (s, step) = next(c.begin(&i, &request(), &return_to()).await.expect("begin"));
    assert!(matches!(step, BankStep::Login { .. }), "{step:?}");
    assert!(matches!(
        c.answer(
            &i,
            &s,
            &StepAnswer::Login(vec![
                ("user".into(), "demo".into()),
                ("pin".into(), "x".into())
            ]),
            &return_to()
        )
        .await,
        Err(BankError::InvalidCredentials)
    ));
    let (s, step) = next(
        c.answer(&i, &s, &login("demo"), &return_to())
            .await
            .expect("login"),
    );
    let BankStep::ChooseMethod { methods } = &step else {
        panic!("{step:?}")
    };
    assert_eq!(methods.len(), 3);
    let (s, step) = next(
        c.answer(&i, &s, &StepAnswer::Method("photo".into()), &return_to())
            .await
            .expect("method"),
    );
    let BankStep::Tan { challenge } = &step else {
        panic!("{step:?}")
    };
    assert!(
        challenge
            .image_png
            .as_ref()
            .is_some_and(|p| p.starts_with(b"\x89PNG"))
    );
    assert_eq!(challenge.max_length, Some(6));
    assert!(matches!(
        c.answer(&i, &s, &StepAnswer::Tan("000000".into()), &return_to())
            .await,
        Err(BankError::InvalidTan)
    ));
    let BankReply::Done { session, consent } = c
        .answer(&i, &s, &StepAnswer::Tan("123456".into()), &return_to())
        .await
        .expect("tan")
    else {
        panic!("done")
    };
    assert_eq!(consent.frequency_per_day, 1);
    assert!(!consent.recurring);
    let accounts = c
        .accounts(&session, &Presence::Unattended)
        .await
        .expect("accounts");
    assert_eq!(accounts.len(), 3);
    let giro = accounts
        .iter()
        .find(|a| a.external_id == "giro")
        .expect("giro");
    assert_eq!(
        giro.iban.as_ref().map(ToString::to_string).as_deref(),
        Some("DE82900948150000002881")
    );
    assert_eq!(giro.bank_code.as_deref(), Some("90094815"));
    let balances = c
        .balances(&session, "giro", &Presence::Unattended)
        .await
        .expect("balances");
    assert_eq!(balances.len(), 2);
    // More than one page: the connector follows `_links.next` to the end.
    let from = t0().date_naive() - chrono::TimeDelta::days(365);
    let to = t0().date_naive();
    let over_http = c
        .transactions(&session, "giro", from, to, &Presence::Unattended)
        .await
        .expect("txs");
    assert!(
        over_http.len() > finx_bank_sandbox::xs2a::PAGE_SIZE,
        "{}",
        over_http.len()
    );
    // Every field finX serves survives the trip.
    let mut direct = direct_transactions(&bank, "90094815", from, to).await;
    let mut over_http = over_http;
    over_http.sort_by(|a, b| a.external_id.cmp(&b.external_id));
    direct.sort_by(|a, b| a.external_id.cmp(&b.external_id));
    assert_eq!(over_http.len(), direct.len());
    for (a, b) in over_http.iter().zip(&direct) {
        assert_eq!(a.external_id, b.external_id);
        assert_eq!(a.amount, b.amount);
        assert_eq!(a.booked_on, b.booked_on);
        assert_eq!(a.value_date, b.value_date);
        assert_eq!(a.booked, b.booked);
        assert_eq!(
            a.counterparty.name, b.counterparty.name,
            "{}",
            a.external_id
        );
        assert_eq!(a.counterparty.iban, b.counterparty.iban);
        assert_eq!(a.purpose, b.purpose);
        assert_eq!(a.creditor_id, b.creditor_id);
        assert_eq!(a.mandate_reference, b.mandate_reference);
        assert_eq!(a.end_to_end_reference, b.end_to_end_reference);
        assert_eq!(a.sepa_purpose_code, b.sepa_purpose_code);
        assert_eq!(a.bank_transaction_code, b.bank_transaction_code);
        assert!(a.bank_transaction_code.is_some(), "{}", a.external_id);
        assert_eq!(a.mcc, b.mcc);
        assert_eq!(a.booking_text, b.booking_text);
        assert_eq!(a.transaction_type, b.transaction_type, "{}", a.external_id);
    }
}

/// The sandbox's transactions, in process.
async fn direct_transactions(
    bank: &Bank,
    code: &str,
    from: finx_domain::Date,
    to: finx_domain::Date,
) -> Vec<finx_domain::bank::TransactionDetails> {
    let s = &bank.sandbox;
    let i = inst(code);
    let (session, _) = next(s.begin(&i, &request(), &return_to()).await.expect("begin"));
    let reply = s
        .answer(&i, &session, &login("nosca"), &return_to())
        .await
        .expect("nosca");
    let BankReply::Done { session, .. } = reply else {
        panic!("nosca")
    };
    let all = s
        .transactions(&session, "giro", from, to, &Presence::Unattended)
        .await
        .expect("txs");
    let (mut booked, pending): (Vec<_>, Vec<_>) = all.into_iter().partition(|t| t.booked);
    booked.extend(pending);
    booked
}

#[tokio::test]
async fn redirect_to_the_banks_pages_then_the_status_decides() {
    let bank = Bank::start().await;
    let c = bank.connector();
    let i = inst("90094816");
    let (s, step) = next(c.begin(&i, &request(), &return_to()).await.expect("begin"));
    let BankStep::Redirect { url } = &step else {
        panic!("{step:?}")
    };
    assert!(url.as_str().starts_with(bank.base.as_str()), "{url}");
    let id = url
        .path_segments()
        .and_then(|mut p| p.next_back())
        .expect("id")
        .to_owned();
    // Back before finishing: the same trip again.
    let (s, again) = next(
        c.answer(&i, &s, &StepAnswer::Returned { ok: true }, &return_to())
            .await
            .expect("pending"),
    );
    assert_eq!(again, step);
    assert!(matches!(
        bank.sandbox.bank_login(&id, "demo", "demo").await,
        BankPage::Tan { .. }
    ));
    let BankPage::Back(back) = bank.sandbox.bank_tan(&id, "123456") else {
        panic!("approved")
    };
    assert_eq!(back, return_to().ok, "TPP-Redirect-URI");
    let BankReply::Done { session, .. } = c
        .answer(&i, &s, &StepAnswer::Returned { ok: true }, &return_to())
        .await
        .expect("status")
    else {
        panic!("done")
    };
    assert_eq!(
        c.accounts(&session, &Presence::Unattended)
            .await
            .expect("accounts")
            .len(),
        3
    );

    // A cancel at the bank comes back by the nok route and reads as a cancel.
    let (s, step) = next(c.begin(&i, &request(), &return_to()).await.expect("begin"));
    let BankStep::Redirect { url } = &step else {
        panic!("{step:?}")
    };
    let id = url
        .path_segments()
        .and_then(|mut p| p.next_back())
        .expect("id")
        .to_owned();
    let BankPage::Back(back) = bank.sandbox.bank_cancel(&id) else {
        panic!("back")
    };
    assert_eq!(back, return_to().nok, "TPP-Nok-Redirect-URI");
    assert!(matches!(
        c.answer(&i, &s, &StepAnswer::Returned { ok: false }, &return_to())
            .await,
        Err(BankError::CancelledByUser)
    ));
}

#[tokio::test]
async fn decoupled_polls_the_sca_status_until_the_app_decides() {
    let bank = Bank::start().await;
    let c = bank.connector();
    let i = inst("90094817");
    let (s, _) = next(c.begin(&i, &request(), &return_to()).await.expect("begin"));
    let (s, step) = next(
        c.answer(&i, &s, &login("demo"), &return_to())
            .await
            .expect("login"),
    );
    assert!(matches!(step, BankStep::Decoupled { .. }), "{step:?}");
    let (s, step) = next(
        c.answer(&i, &s, &StepAnswer::Poll, &return_to())
            .await
            .expect("poll"),
    );
    assert!(matches!(step, BankStep::Decoupled { .. }));
    bank.clock.advance(chrono::TimeDelta::seconds(3));
    let reply = c
        .answer(&i, &s, &StepAnswer::Poll, &return_to())
        .await
        .expect("approved");
    assert!(matches!(reply, BankReply::Done { .. }));

    let (s, _) = next(c.begin(&i, &request(), &return_to()).await.expect("begin"));
    let (s, _) = next(
        c.answer(&i, &s, &login("decoupled-reject"), &return_to())
            .await
            .expect("login"),
    );
    bank.clock.advance(chrono::TimeDelta::seconds(3));
    assert!(matches!(
        c.answer(&i, &s, &StepAnswer::Poll, &return_to()).await,
        Err(BankError::Rejected)
    ));
    let (s, _) = next(c.begin(&i, &request(), &return_to()).await.expect("begin"));
    assert!(matches!(
        c.answer(&i, &s, &login("locked"), &return_to()).await,
        Err(BankError::Locked)
    ));
}

#[tokio::test]
async fn available_accounts_then_a_dedicated_consent_for_every_listed_account() {
    let bank = Bank::start().await;
    bank.register("available-accounts").await;
    let c = bank.connector();
    let i = inst("90094815");
    let mut reply = c.begin(&i, &request(), &return_to()).await.expect("begin");
    let mut logins = 0;
    let mut tans = 0;
    let session = loop {
        let (s, step) = match reply {
            BankReply::Done { session, .. } => break session,
            BankReply::Next { session, step } => (session, step),
        };
        let answer = match step {
            BankStep::Login { .. } => {
                logins += 1;
                login("demo")
            }
            BankStep::ChooseMethod { .. } => StepAnswer::Method("push".into()),
            BankStep::Tan { .. } => {
                tans += 1;
                StepAnswer::Tan("123456".into())
            }
            other => panic!("{other:?}"),
        };
        reply = c
            .answer(&i, &s, &answer, &return_to())
            .await
            .expect("answer");
    };
    assert_eq!((logins, tans), (2, 2), "two consents, each authorised");
    // The dedicated consent covers the accounts with an IBAN (the card has none).
    let accounts = c
        .accounts(&session, &Presence::Unattended)
        .await
        .expect("accounts");
    assert_eq!(accounts.len(), 2);
    assert!(
        c.balances(&session, "giro", &Presence::Unattended)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn dedicated_consents_name_the_customers_ibans() {
    let bank = Bank::start().await;
    bank.register("dedicated").await;
    let c = bank.connector();
    let i = inst("90094815");
    let mut req = request();
    req.ibans = vec!["DE82900948150000002881".into()];
    let (s, _) = next(c.begin(&i, &req, &return_to()).await.expect("begin"));
    let (s, _) = next(
        c.answer(&i, &s, &login("demo"), &return_to())
            .await
            .expect("login"),
    );
    let (s, _) = next(
        c.answer(&i, &s, &StepAnswer::Method("push".into()), &return_to())
            .await
            .expect("method"),
    );
    let BankReply::Done { session, .. } = c
        .answer(&i, &s, &StepAnswer::Tan("123456".into()), &return_to())
        .await
        .expect("tan")
    else {
        panic!("done")
    };
    let accounts = c
        .accounts(&session, &Presence::Unattended)
        .await
        .expect("accounts");
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].external_id, "giro");
    assert!(matches!(
        c.balances(&session, "savings", &Presence::Unattended).await,
        Err(BankError::Unexpected(_))
    ));
}

#[tokio::test]
async fn sessions_not_made_by_the_connector_or_not_authorised_read_nothing() {
    let bank = Bank::start().await;
    let c = bank.connector();
    let i = inst("90094815");
    let (s, _) = next(c.begin(&i, &request(), &return_to()).await.expect("begin"));
    assert!(matches!(
        c.accounts(&s, &Presence::Unattended).await,
        Err(BankError::SessionExpired)
    ));
    let forged = finx_domain::flow::BankSession::new("xs2a.e30".into());
    assert!(matches!(
        c.accounts(&forged, &Presence::Unattended).await,
        Err(BankError::SessionExpired)
    ));
    assert!(
        matches!(
            c.answer(&inst("90094816"), &s, &login("demo"), &return_to())
                .await,
            Err(BankError::SessionExpired)
        ),
        "a session of another bank"
    );
    assert!(matches!(
        c.begin(
            &InstitutionId::parse("de-1").expect("id"),
            &request(),
            &return_to()
        )
        .await,
        Err(BankError::UnknownInstitution)
    ));
}

/// A whole finX flow over HTTP through the widget's forms, with the XS2A connector between
/// finX and the bank: embedded and redirect.
#[tokio::test]
async fn whole_flows_through_the_widget_go_through_the_connector() {
    let bank = Bank::start().await;
    let connector: Arc<dyn BankConnector> = Arc::new(bank.connector());
    let app = App::with(Duration::from_millis(10), move |_| connector).await;
    let served = Served::start(app).await;
    for (code, user) in [
        ("90094815", "demo"),
        ("90094816", "demo"),
        ("90094815", "nosca"),
    ] {
        let v: serde_json::Value = served
            .http
            .post(served.url("/onetime/access"))
            .basic_auth("demo-app", Some(finx_tests::fixtures::DEMO_SECRET))
            .json(&serde_json::json!({
                "redirect_uri": finx_tests::fixtures::REDIRECT,
                "provider_id": format!("sandbox-{code}"),
            }))
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        let location = v["location"].as_str().expect("location");
        let back = walk_widget(&served.http, location, &format!("sandbox-{code}"), user).await;
        assert!(
            back.query_pairs().any(|(k, _)| k == "code"),
            "{code} {user}: {back}"
        );
    }
    // The user waited on the widget through every read of these flows: the bank saw their
    // address on each, so none counts against the consent's unattended accesses.
    let seen = bank.seen.lock().expect("lock").clone();
    let reads: Vec<&Seen> = seen
        .iter()
        .filter(|(m, p, _)| m == "GET" && p.contains("/v1/accounts"))
        .collect();
    assert!(
        reads.len() >= 9,
        "accounts, balances, transactions: {reads:?}"
    );
    assert!(
        reads
            .iter()
            .all(|(_, _, ip)| ip.as_deref() == Some("127.0.0.1")),
        "{reads:?}"
    );
}

/// Follows the bank's redirects from `url` (no cookies needed) and returns where it ends.
async fn follow(url: &url::Url) -> url::Url {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let res = http.get(url.clone()).send().await.expect("authorize");
    assert!(res.status().is_redirection(), "{}", res.status());
    let to = res.headers()["location"].to_str().expect("ascii");
    url.join(to).expect("url")
}

#[tokio::test]
async fn oauth_authorises_with_a_code_exchanged_once_with_pkce() {
    let bank = Bank::start().await;
    let c = bank.connector();
    let i = InstitutionId::parse("sandbox-oauth").expect("id");
    let (s, step) = next(c.begin(&i, &request(), &return_to()).await.expect("begin"));
    let BankStep::Redirect { url } = &step else {
        panic!("{step:?}")
    };
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["redirect_uri"], return_to().ok.as_str());
    assert_eq!(q["state"], "s", "finX's own state");
    assert!(q["scope"].starts_with("AIS:"));
    // The authorization endpoint sends the user on to the bank's pages.
    let page = follow(url).await;
    let id = page
        .path_segments()
        .and_then(|mut p| p.next_back())
        .expect("id")
        .to_owned();
    assert!(matches!(
        bank.sandbox.bank_login(&id, "demo", "demo").await,
        BankPage::Tan { .. }
    ));
    let BankPage::Back(back) = bank.sandbox.bank_tan(&id, "123456") else {
        panic!("approved")
    };
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code");
    let answer = StepAnswer::Authorized { code: code.clone() };
    let BankReply::Done { session, .. } = c
        .answer(&i, &s, &answer, &return_to())
        .await
        .expect("token")
    else {
        panic!("done")
    };
    assert_eq!(
        c.accounts(&session, &Presence::Unattended)
            .await
            .expect("accounts with the token")
            .len(),
        3
    );
    // The code is single-use, and a made-up one is refused.
    assert!(matches!(
        c.answer(&i, &s, &answer, &return_to()).await,
        Err(BankError::Rejected)
    ));
    let forged = StepAnswer::Authorized {
        code: "made-up".into(),
    };
    assert!(matches!(
        c.answer(&i, &s, &forged, &return_to()).await,
        Err(BankError::Rejected)
    ));

    // Cancelled at the bank: back without a code.
    let (s, step) = next(c.begin(&i, &request(), &return_to()).await.expect("begin"));
    let BankStep::Redirect { url } = &step else {
        panic!("{step:?}")
    };
    let page = follow(url).await;
    let id = page
        .path_segments()
        .and_then(|mut p| p.next_back())
        .expect("id")
        .to_owned();
    let BankPage::Back(back) = bank.sandbox.bank_cancel(&id) else {
        panic!("back")
    };
    assert!(
        back.query_pairs()
            .any(|(k, v)| k == "error" && v == "access_denied")
    );
    assert!(matches!(
        c.answer(&i, &s, &StepAnswer::Returned { ok: true }, &return_to())
            .await,
        Err(BankError::CancelledByUser)
    ));
}

#[tokio::test]
async fn an_ended_consent_reads_nothing_and_ending_it_again_is_fine() {
    let bank = Bank::start().await;
    let c = bank.connector();
    let i = inst("90094815");
    let (s, _) = next(c.begin(&i, &request(), &return_to()).await.expect("begin"));
    let BankReply::Done { session, .. } = c
        .answer(&i, &s, &login("nosca"), &return_to())
        .await
        .expect("nosca")
    else {
        panic!("done")
    };
    assert_eq!(
        c.accounts(&session, &Presence::Unattended)
            .await
            .expect("accounts")
            .len(),
        3
    );
    c.end_consent(&session).await.expect("ended at the bank");
    assert!(matches!(
        c.accounts(&session, &Presence::Unattended).await,
        Err(BankError::ConsentRevoked)
    ));
    c.end_consent(&session).await.expect("already gone is fine");
}

#[tokio::test]
async fn only_calls_made_while_the_user_is_present_carry_the_users_address() {
    let bank = Bank::start().await;
    let c = bank.connector();
    let i = inst("90094815");
    let (s, _) = next(c.begin(&i, &request(), &return_to()).await.expect("begin"));
    let BankReply::Done { session, .. } = c
        .answer(&i, &s, &login("nosca"), &return_to())
        .await
        .expect("nosca")
    else {
        panic!("done")
    };
    // While the user waits on the widget, the flow's first read: present.
    let read_all = |presence: Presence| {
        let (c, session) = (&c, &session);
        async move {
            let today = t0().date_naive();
            c.accounts(session, &presence).await.expect("accounts");
            c.balances(session, "giro", &presence)
                .await
                .expect("balances");
            c.transactions(
                session,
                "giro",
                today - chrono::TimeDelta::days(30),
                today,
                &presence,
            )
            .await
            .expect("transactions");
        }
    };
    read_all(Presence::Present(request().psu)).await;
    let attended = bank.seen.lock().expect("lock").len();
    // Later, unattended: the syncs.
    read_all(Presence::Unattended).await;
    let seen = bank.seen.lock().expect("lock").clone();
    let consent = seen
        .iter()
        .find(|(m, p, _)| m == "POST" && p.ends_with("/v1/consents"))
        .expect("a consent was made");
    assert_eq!(
        consent.2.as_deref(),
        Some("198.51.100.7"),
        "the user's address, present"
    );
    let data = |calls: &[Seen]| -> Vec<Seen> {
        calls
            .iter()
            .filter(|(_, p, _)| p.contains("/v1/accounts"))
            .cloned()
            .collect()
    };
    let (with_user, without) = seen.split_at(attended);
    let with_user = data(with_user);
    assert!(with_user.len() >= 3);
    assert!(
        with_user
            .iter()
            .all(|(_, _, ip)| ip.as_deref() == Some("198.51.100.7")),
        "reads while the user waits carry their address: {with_user:?}"
    );
    let without = data(without);
    assert!(without.len() >= 3);
    assert!(
        without.iter().all(|(_, _, ip)| ip.is_none()),
        "unattended calls carry no PSU-IP-Address: {without:?}"
    );
}
