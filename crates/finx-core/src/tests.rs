//! Unit tests of the use cases in isolation, with every port mocked.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use chrono::{TimeDelta, TimeZone};
use finx_domain::Timestamp;
use finx_domain::bank::{AccountDetails, AccountType, Institution, LoginFields};
use finx_domain::flow::{BankSession, FailureReason, Flow, FlowEvent, FlowParams, FlowStatus};
use finx_domain::ids::{AccessId, ClientId, FlowId, GrantId, InstitutionId};
use finx_domain::money::Currency;
use finx_domain::sca::{
    BankStep, Challenge, Consent, ConsentStatus, LoginField, ScaState, StepAnswer,
};
use finx_domain::scope::Scope;
use finx_domain::secret::{ClientSecret, TokenHash, TokenHasher};
use finx_domain::token::{
    AccessTokenRecord, CodeRecord, Grant, Lifetimes, RefreshTokenRecord, RotateError,
};
use finx_domain::values::{Language, RedirectUri, SyncPeriod};
use finx_ports::{
    BankCredentials, BankError, BankReply, Client, MockAccessStore, MockBankConnector,
    MockBankDataStore, MockClientRegistry, MockFlowStore, MockGrantStore, MockSecretGenerator,
    RotateFailure, StoreError,
};

use crate::{CoreError, Finx, OnetimeAccessRequest, Ports, Settings};

const KEY: [u8; 32] = [7; 32];

fn t0() -> Timestamp {
    chrono::Utc
        .with_ymd_and_hms(2026, 5, 4, 10, 0, 0)
        .single()
        .expect("valid")
}

struct Mocks {
    clients: MockClientRegistry,
    flows: MockFlowStore,
    grants: MockGrantStore,
    data: MockBankDataStore,
    accesses: MockAccessStore,
    webhooks: finx_ports::MockWebhookStore,
    bank: MockBankConnector,
    /// The clock; a mock standing at `t0()` unless a test sets one.
    clock: Arc<dyn finx_ports::Clock>,
}

/// A clock a test moves by hand.
struct MovingClock(std::sync::Mutex<Timestamp>);

impl MovingClock {
    fn at(t: Timestamp) -> Self {
        Self(std::sync::Mutex::new(t))
    }

    fn advance(&self, by: TimeDelta) {
        *self.0.lock().expect("lock") += by;
    }
}

impl finx_ports::Clock for MovingClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().expect("lock")
    }
}

impl Mocks {
    fn new() -> Self {
        Self {
            clients: MockClientRegistry::new(),
            flows: MockFlowStore::new(),
            grants: MockGrantStore::new(),
            data: MockBankDataStore::new(),
            accesses: MockAccessStore::new(),
            webhooks: finx_ports::MockWebhookStore::new(),
            bank: MockBankConnector::new(),
            clock: Arc::new(MovingClock::at(t0())),
        }
    }

    fn build(self) -> Finx {
        let mut random = MockSecretGenerator::new();
        let n = Arc::new(AtomicU8::new(1));
        let m = n.clone();
        random
            .expect_bytes32()
            .returning(move || [n.fetch_add(1, Ordering::Relaxed); 32]);
        random
            .expect_bytes16()
            .returning(move || [m.fetch_add(1, Ordering::Relaxed); 16]);
        let ports = Ports {
            clients: Arc::new(self.clients),
            flows: Arc::new(self.flows),
            grants: Arc::new(self.grants),
            data: Arc::new(self.data),
            accesses: Arc::new(self.accesses),
            bank: Arc::new(self.bank),
            clock: self.clock,
            random: Arc::new(random),
            timer: Arc::new(NeverTimer),
            webhooks: Arc::new(self.webhooks),
            sender: Arc::new(finx_ports::MockWebhookSender::new()),
            bus: Arc::new(OneInstance),
            telemetry: Arc::new(finx_ports::NoTelemetry),
        };
        Finx::new(
            ports,
            Settings {
                lifetimes: Lifetimes::default(),
                ..Settings::with_hash_key(KEY.to_vec())
            },
        )
        .expect("key")
    }
}

/// A timer whose deadlines never come: the mocked bank answers at once.
/// A bus for one instance: nothing to tell, nothing to hear.
struct OneInstance;

#[async_trait::async_trait]
impl finx_ports::InvalidationBus for OneInstance {
    fn shared(&self) -> bool {
        false
    }

    async fn publish(&self, _: &finx_ports::Invalidation) -> Result<(), finx_ports::StoreError> {
        Ok(())
    }

    async fn next(&self) -> finx_ports::Heard {
        std::future::pending().await
    }
}

struct NeverTimer;

#[async_trait::async_trait]
impl finx_ports::Timer for NeverTimer {
    async fn sleep(&self, _: std::time::Duration) {
        std::future::pending::<()>().await;
    }
}

fn hasher() -> TokenHasher {
    TokenHasher::new(&KEY).expect("key")
}

fn client(id: &str) -> Client {
    Client {
        id: ClientId::parse(id).expect("id"),
        name: "App".into(),
        secret_hash: hasher().hash(&ClientSecret::from_presented("fxs_right").expect("secret")),
        redirect_uris: vec![RedirectUri::parse("https://app.example/cb").expect("uri")],
        scope: Scope::FULL,
        created_at: t0(),
        secret_key_id: hasher().key_id(),
        previous_secret: None,
        disabled_at: None,
        category_rules: Vec::new(),
    }
}

fn grant(client_id: &str) -> Grant {
    Grant {
        id: GrantId::from_random([9; 16]),
        client_id: ClientId::parse(client_id).expect("id"),
        flow_id: FlowId::from_random([8; 16]),
        access_id: AccessId::derive(&["x"]),
        account_ids: vec![],
        scope: Scope::FULL,
        redirect_uri: RedirectUri::parse("https://app.example/cb").expect("uri"),
        created_at: t0(),
        expires_at: t0() + TimeDelta::days(180),
        revoked_at: None,
        language: finx_domain::values::Language::De,
        verification: None,
    }
}

fn code_record(g: &Grant) -> CodeRecord {
    CodeRecord {
        hash: TokenHash::from_bytes([1; 32]),
        grant_id: g.id,
        issued_at: t0(),
        expires_at: t0() + TimeDelta::hours(1),
        used_at: None,
    }
}

fn flow(status: FlowStatus) -> Flow {
    let params = FlowParams {
        redirect_uri: RedirectUri::parse("https://app.example/cb").expect("uri"),
        state: None,
        language: Language::De,
        accounts: vec![],
        account_types: vec![],
        allow_multi_selection: true,
        sync_period: SyncPeriod::default(),
        provider_id: None,
        scope: Scope::FULL,
        ongoing: None,
        verification: None,
    };
    let mut f = Flow::new(
        FlowId::from_random([5; 16]),
        ClientId::parse("app").expect("id"),
        params,
        t0(),
        TimeDelta::hours(1),
        None,
    );
    f.status = status;
    f
}

fn sandbox() -> InstitutionId {
    InstitutionId::parse("sandbox-90094815").expect("id")
}

/// A flow whose bank asked for its two-field login form, after `tries` login tries.
fn at_login(tries: u8) -> Flow {
    let mut f = flow(FlowStatus::BankSelected {
        institution: sandbox(),
    });
    f.login_attempts = tries;
    f.apply(
        FlowEvent::BankAsked {
            session: BankSession::new("s0".into()),
            step: login_step(),
            return_check: None,
        },
        t0(),
    )
    .expect("asked");
    f
}

fn login_step() -> BankStep {
    BankStep::Login {
        fields: vec![
            LoginField {
                id: "user".into(),
                label: "Name".into(),
                secret: false,
            },
            LoginField {
                id: "pin".into(),
                label: "PIN".into(),
                secret: true,
            },
        ],
    }
}

fn consent() -> Consent {
    Consent {
        id: "c1".into(),
        status: ConsentStatus::Valid,
        valid_until: t0().date_naive(),
        frequency_per_day: 1,
        recurring: false,
        accounts: vec![],
    }
}

fn creds(secret: &str) -> BankCredentials {
    BankCredentials {
        user: "demo".into(),
        secret: secret.into(),
    }
}

/// Makes the mocked flow store keep one flow and apply updates as a compare-and-swap,
/// so that steps which save and re-read see their own writes.
fn stateful_flow(m: &mut Mocks, flow: Flow) -> Arc<std::sync::Mutex<Flow>> {
    let cell = Arc::new(std::sync::Mutex::new(flow));
    let read = cell.clone();
    m.flows
        .expect_find_flow()
        .returning(move |_| Ok(Some(read.lock().expect("lock").clone())));
    let write = cell.clone();
    m.flows.expect_update_flow().returning(move |f, v, _| {
        let mut stored = write.lock().expect("lock");
        if stored.version != v {
            return Err(StoreError::Conflict("changed"));
        }
        *stored = f.clone();
        Ok(())
    });
    cell
}

#[tokio::test]
async fn a_client_secret_is_checked_against_its_keyed_hash() {
    let mut m = Mocks::new();
    m.clients
        .expect_find_client()
        .returning(|id| Ok((id.as_str() == "app").then(|| client("app"))));
    let finx = m.build();
    assert!(finx.authenticate_client("app", "fxs_right").await.is_ok());
    assert!(matches!(
        finx.authenticate_client("app", "fxs_wrong").await,
        Err(CoreError::InvalidClient)
    ));
    assert!(matches!(
        finx.authenticate_client("nobody", "fxs_right").await,
        Err(CoreError::InvalidClient)
    ));
    assert!(matches!(
        finx.authenticate_client("bad id", "x").await,
        Err(CoreError::InvalidClient)
    ));
}

#[tokio::test]
async fn an_unregistered_redirect_uri_creates_no_flow() {
    let mut m = Mocks::new();
    m.flows.expect_insert_flow().never();
    let finx = m.build();
    let req = OnetimeAccessRequest {
        redirect_uri: "https://evil.example/cb".into(),
        ..Default::default()
    };
    let err = finx
        .create_onetime_access(&client("app"), req)
        .await
        .expect_err("refused");
    assert!(
        matches!(
            err,
            CoreError::Invalid {
                field: "redirect_uri",
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_iban_preselects_its_bank() {
    let mut m = Mocks::new();
    m.bank
        .expect_resolve_bank_code()
        .withf(|c, code| c == "DE" && code == "90094815")
        .returning(|_, _| {
            Ok(Some(Institution {
                id: sandbox(),
                name: "finX Sandbox Bank".into(),
                bic: None,
                bank_code: Some("90094815".into()),
                country: "DE".into(),
                login_fields: LoginFields {
                    user_label: "u".into(),
                    secret_label: "p".into(),
                },
            }))
        });
    m.flows
        .expect_insert_flow()
        .withf(|f| {
            f.status
                == FlowStatus::BankSelected {
                    institution: sandbox(),
                }
        })
        .times(1)
        .returning(|_| Ok(()));
    let finx = m.build();
    let req = OnetimeAccessRequest {
        redirect_uri: "https://app.example/cb".into(),
        accounts: vec!["DE82900948150000002881".into()],
        ..Default::default()
    };
    let flow = finx
        .create_onetime_access(&client("app"), req)
        .await
        .expect("created");
    assert_eq!(flow.expires_at, t0() + TimeDelta::hours(1));
}

#[tokio::test]
async fn a_bad_field_is_named_and_nothing_is_stored() {
    let finx = Mocks::new().build();
    let cases = [
        (
            OnetimeAccessRequest {
                state: Some(String::new()),
                ..Default::default()
            },
            "state",
        ),
        (
            OnetimeAccessRequest {
                sync_period: Some(731),
                ..Default::default()
            },
            "sync_period",
        ),
        (
            OnetimeAccessRequest {
                accounts: vec!["DE00123".into()],
                ..Default::default()
            },
            "accounts",
        ),
        (
            OnetimeAccessRequest {
                account_types: vec!["Piggy bank".into()],
                ..Default::default()
            },
            "account_types",
        ),
    ];
    for (mut req, field) in cases {
        req.redirect_uri = "https://app.example/cb".into();
        let err = finx
            .create_onetime_access(&client("app"), req)
            .await
            .expect_err("refused");
        assert!(
            matches!(err, CoreError::Invalid { field: f, .. } if f == field),
            "{field}: {err:?}"
        );
    }
}

#[tokio::test]
async fn the_third_wrong_password_fails_the_flow() {
    let mut m = Mocks::new();
    m.bank
        .expect_answer()
        .times(1)
        .returning(|_, _, _, _| Err(BankError::InvalidCredentials));
    let stored = stateful_flow(&mut m, at_login(2));
    let finx = m.build();
    let err = finx
        .submit_credentials(FlowId::from_random([5; 16]), &creds("nope"))
        .await
        .expect_err("failed");
    assert!(
        matches!(err, CoreError::FlowFailed(FailureReason::LoginFailed)),
        "{err:?}"
    );
    let stored = stored.lock().expect("lock").clone();
    assert_eq!(
        stored.status,
        FlowStatus::Failed {
            reason: FailureReason::LoginFailed
        }
    );
    assert_eq!(stored.login_attempts, 3);
}

#[tokio::test]
async fn a_wrong_password_with_tries_left_says_how_many() {
    let mut m = Mocks::new();
    m.bank
        .expect_answer()
        .returning(|_, _, _, _| Err(BankError::InvalidCredentials));
    let stored = stateful_flow(&mut m, at_login(0));
    let finx = m.build();
    let err = finx
        .submit_credentials(FlowId::from_random([5; 16]), &creds("nope"))
        .await
        .expect_err("rejected");
    assert!(
        matches!(err, CoreError::CredentialsInvalid { attempts_left: 2 }),
        "{err:?}"
    );
    assert_eq!(stored.lock().expect("lock").login_attempts, 1);
}

#[tokio::test]
async fn used_up_tries_never_reach_the_bank() {
    let mut m = Mocks::new();
    // Three tries are in flight (counted, not yet answered): a fourth must not start.
    m.bank.expect_answer().never();
    stateful_flow(&mut m, at_login(3));
    let finx = m.build();
    let err = finx
        .submit_credentials(FlowId::from_random([5; 16]), &creds("guess"))
        .await
        .expect_err("refused");
    assert!(
        matches!(
            err,
            CoreError::Flow(finx_domain::flow::FlowError::AttemptsExhausted)
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_try_is_counted_before_the_bank_is_asked() {
    let mut m = Mocks::new();
    let stored = stateful_flow(&mut m, at_login(0));
    let seen = stored.clone();
    m.bank.expect_answer().returning(move |_, _, _, _| {
        assert_eq!(
            seen.lock().expect("lock").login_attempts,
            1,
            "the try is saved before the bank call"
        );
        Err(BankError::Unavailable("down".into()))
    });
    let finx = m.build();
    let err = finx
        .submit_credentials(FlowId::from_random([5; 16]), &creds("demo"))
        .await
        .expect_err("failed");
    assert!(
        matches!(err, CoreError::FlowFailed(FailureReason::BankUnavailable)),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_lost_compare_and_swap_answers_busy() {
    let mut m = Mocks::new();
    m.flows
        .expect_find_flow()
        .returning(|_| Ok(Some(flow(FlowStatus::Created))));
    m.bank.expect_institution().returning(|_| {
        Ok(Some(Institution {
            id: sandbox(),
            name: "b".into(),
            bic: None,
            bank_code: None,
            country: "DE".into(),
            login_fields: LoginFields {
                user_label: "u".into(),
                secret_label: "p".into(),
            },
        }))
    });
    m.flows
        .expect_update_flow()
        .returning(|_, _, _| Err(StoreError::Conflict("changed")));
    let finx = m.build();
    let err = finx
        .select_bank(FlowId::from_random([5; 16]), "sandbox-90094815")
        .await
        .expect_err("busy");
    assert!(matches!(err, CoreError::Busy), "{err:?}");
}

#[tokio::test]
async fn a_login_is_refused_before_the_bank_is_asked_when_the_flow_is_finished() {
    let mut m = Mocks::new();
    m.flows
        .expect_find_flow()
        .returning(|_| Ok(Some(flow(FlowStatus::Cancelled))));
    m.bank.expect_begin().never();
    m.bank.expect_answer().never();
    let finx = m.build();
    let err = finx
        .submit_credentials(FlowId::from_random([5; 16]), &creds("demo"))
        .await
        .expect_err("finished");
    assert!(matches!(err, CoreError::Flow(_)), "{err:?}");
}

#[tokio::test]
async fn an_expired_link_is_saved_as_expired_and_refused() {
    let mut m = Mocks::new();
    let mut f = flow(FlowStatus::Created);
    f.expires_at = t0();
    m.flows
        .expect_find_flow()
        .returning(move |_| Ok(Some(f.clone())));
    m.flows
        .expect_update_flow()
        .withf(|f, _, _| f.status == FlowStatus::Expired)
        .times(1)
        .returning(|_, _, _| Ok(()));
    let finx = m.build();
    let err = finx
        .cancel(FlowId::from_random([5; 16]))
        .await
        .expect_err("expired");
    assert!(
        matches!(err, CoreError::Flow(finx_domain::flow::FlowError::Expired)),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_code_of_another_client_is_refused_without_being_redeemed() {
    let mut m = Mocks::new();
    m.grants.expect_find_code().returning(|_| {
        let g = grant("other");
        Ok(Some((code_record(&g), g)))
    });
    m.grants.expect_redeem_code().never();
    let finx = m.build();
    let err = finx
        .exchange_code(&client("app"), "fxc_abc", "https://app.example/cb")
        .await
        .expect_err("refused");
    assert!(matches!(err, CoreError::InvalidGrant(_)), "{err:?}");
}

#[tokio::test]
async fn a_different_redirect_uri_is_refused_without_redeeming() {
    let mut m = Mocks::new();
    m.grants.expect_find_code().returning(|_| {
        let g = grant("app");
        Ok(Some((code_record(&g), g)))
    });
    m.grants.expect_redeem_code().never();
    let finx = m.build();
    let err = finx
        .exchange_code(&client("app"), "fxc_abc", "https://app.example/cb2")
        .await
        .expect_err("refused");
    assert!(matches!(err, CoreError::InvalidGrant(_)), "{err:?}");
}

#[tokio::test]
async fn a_code_exchange_issues_hashed_tokens_with_the_guide_lifetimes() {
    let mut m = Mocks::new();
    let issued = Arc::new(std::sync::Mutex::new(
        None::<finx_domain::token::IssuedTokens>,
    ));
    let sink = issued.clone();
    m.grants.expect_find_code().returning(|_| {
        let g = grant("app");
        Ok(Some((code_record(&g), g)))
    });
    m.grants
        .expect_redeem_code()
        .withf(|_, now, t| {
            t.access.expires_at == *now + TimeDelta::hours(1)
                && t.refresh
                    .as_ref()
                    .is_some_and(|r| r.expires_at == *now + TimeDelta::days(90))
        })
        .times(1)
        .returning(move |_, _, t| {
            *sink.lock().expect("lock") = Some(t.clone());
            Ok(grant("app"))
        });
    let finx = m.build();
    // The customer may send the registered URI in another spelling of the same URL.
    let t = finx
        .exchange_code(&client("app"), "fxc_abc", "HTTPS://APP.example:443/cb")
        .await
        .expect("tokens");
    let stored = issued
        .lock()
        .expect("lock")
        .clone()
        .expect("tokens were stored");
    assert_eq!(
        stored.access.hash,
        hasher().hash(&t.access_token),
        "the store gets the keyed hash of the token handed out"
    );
    let refresh = t.refresh_token.as_ref().expect("refresh");
    assert_eq!(
        stored.refresh.as_ref().map(|r| r.hash),
        Some(hasher().hash(refresh))
    );
    assert_eq!(stored.access.scope, Scope::FULL);
    assert_eq!(t.expires_in, 3600);
    assert_eq!(
        t.scope.to_string(),
        "accounts=ro balance=ro transactions=ro offline"
    );
    assert!(t.access_token.expose().starts_with("fxa_"));
    assert!(
        t.refresh_token
            .as_ref()
            .is_some_and(|r| r.expose().starts_with("fxr_"))
    );
}

#[tokio::test]
async fn a_reused_refresh_token_surfaces_as_invalid_grant() {
    let mut m = Mocks::new();
    m.grants.expect_find_refresh_token().returning(|h| {
        let g = grant("app");
        let r = RefreshTokenRecord {
            hash: *h,
            grant_id: g.id,
            issued_at: t0(),
            expires_at: t0() + TimeDelta::days(90),
            used_at: Some(t0()),
        };
        Ok(Some((r, g)))
    });
    m.grants.expect_rotate_refresh_token().returning(|_, _, _| {
        Err(RotateFailure::Rejected(RotateError::Reused {
            grant_id: grant("app").id,
        }))
    });
    let finx = m.build();
    let err = finx
        .refresh(&client("app"), "fxr_old", None)
        .await
        .expect_err("reused");
    assert!(
        matches!(err, CoreError::InvalidGrant(msg) if msg.contains("revoked")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_refresh_may_narrow_but_not_widen_the_scope() {
    let mut m = Mocks::new();
    m.grants.expect_find_refresh_token().returning(|h| {
        let mut g = grant("app");
        g.scope = Scope::parse("accounts=ro offline").expect("scope");
        let r = RefreshTokenRecord {
            hash: *h,
            grant_id: g.id,
            issued_at: t0(),
            expires_at: t0() + TimeDelta::days(90),
            used_at: None,
        };
        Ok(Some((r, g)))
    });
    m.grants
        .expect_rotate_refresh_token()
        .withf(|_, _, t| t.access.scope == Scope::parse("accounts=ro").expect("scope"))
        .times(1)
        .returning(|_, _, _| Ok(grant("app")));
    let finx = m.build();
    let err = finx
        .refresh(&client("app"), "fxr_x", Some("accounts=ro transactions=ro"))
        .await
        .expect_err("wider");
    assert!(matches!(err, CoreError::InvalidScope(_)), "{err:?}");
    let ok = finx
        .refresh(&client("app"), "fxr_x", Some("accounts=ro"))
        .await
        .expect("narrower");
    assert_eq!(ok.scope.to_string(), "accounts=ro");
    assert!(
        ok.refresh_token.is_some(),
        "the grant keeps offline, so a refresh token is still issued"
    );
}

#[tokio::test]
async fn an_expired_access_token_is_refused() {
    let mut m = Mocks::new();
    m.grants.expect_find_access_token().returning(|h| {
        let g = grant("app");
        let a = AccessTokenRecord {
            hash: *h,
            grant_id: g.id,
            issued_at: t0() - TimeDelta::hours(1),
            expires_at: t0(),
            scope: Scope::FULL,
            revoked_at: None,
        };
        Ok(Some((a, g)))
    });
    let finx = m.build();
    assert!(matches!(
        finx.authorize("fxa_abc").await,
        Err(CoreError::InvalidToken)
    ));
    assert!(matches!(
        finx.authorize("").await,
        Err(CoreError::InvalidToken)
    ));
}

#[tokio::test]
async fn balances_are_hidden_without_the_balance_scope() {
    let mut m = Mocks::new();
    m.data.expect_find_accounts().returning(|ids| {
        Ok(ids
            .iter()
            .map(|id| finx_domain::bank::Account {
                id: id.clone(),
                access_id: AccessId::derive(&["x"]),
                details: details("giro"),
                balance: Some(finx_domain::bank::Balance {
                    amount: finx_domain::money::Money::new(
                        rust_decimal::Decimal::ONE,
                        Currency::EUR,
                    ),
                    date: t0().date_naive(),
                    status: finx_domain::bank::BalanceStatus::Booked,
                }),
                status: finx_domain::bank::SyncStatus {
                    synced_at: t0(),
                    succeeded_at: Some(t0()),
                    message: None,
                },
            })
            .collect())
    });
    let finx = m.build();
    let id = finx_domain::ids::AccountId::derive(&["a"]);
    let auth = crate::Authorization {
        grant_id: GrantId::from_random([1; 16]),
        client_id: ClientId::parse("app").expect("id"),
        access_id: AccessId::derive(&["x"]),
        account_ids: vec![id.clone()],
        scope: Scope::parse("accounts=ro").expect("scope"),
        language: finx_domain::values::Language::De,
    };
    let accounts = finx.list_accounts(&auth).await.expect("accounts");
    assert_eq!(accounts.len(), 1);
    assert!(accounts[0].balance.is_none());
    assert!(matches!(
        finx.get_balance(&auth, id.as_str()).await,
        Err(CoreError::InsufficientScope(_))
    ));
    assert!(matches!(
        finx.list_transactions(&auth, Default::default()).await,
        Err(CoreError::InsufficientScope(_))
    ));
    let other = finx_domain::ids::AccountId::derive(&["b"]);
    assert!(matches!(
        finx.get_account(&auth, other.as_str()).await,
        Err(CoreError::NotFound("account"))
    ));
}

#[tokio::test]
async fn a_tan_step_continues_with_the_session_the_bank_returned() {
    let mut m = Mocks::new();
    let mut f = at_login(0);
    f.apply(
        FlowEvent::Answered(StepAnswer::Login(vec![
            ("user".into(), "demo".into()),
            ("pin".into(), "demo".into()),
        ])),
        t0(),
    )
    .expect("answered");
    f.apply(
        FlowEvent::BankAsked {
            session: BankSession::new("pending".into()),
            step: BankStep::Tan {
                challenge: Challenge {
                    method: "pushTAN".into(),
                    prompt: None,
                    image_png: None,
                    flicker: None,
                    max_length: None,
                },
            },
            return_check: None,
        },
        t0(),
    )
    .expect("tan asked");
    stateful_flow(&mut m, f);
    m.bank
        .expect_answer()
        .withf(|_, s, a, _| s.expose() == "pending" && matches!(a, StepAnswer::Tan(_)))
        .returning(|_, _, _, _| {
            Ok(BankReply::Done {
                session: BankSession::new("authorized".into()),
                consent: consent(),
            })
        });
    m.bank
        .expect_accounts()
        .withf(|s, psu| {
            s.expose() == "authorized" && matches!(psu, finx_ports::Presence::Present(_))
        })
        .returning(|_, _| Ok(vec![details("giro")]));
    let finx = m.build();
    let f = finx
        .submit_tan(FlowId::from_random([5; 16]), "123456")
        .await
        .expect("sca passed");
    assert!(
        matches!(f.status, FlowStatus::ScaPassed { ref session, .. } if session.expose() == "authorized")
    );
}

fn details(external_id: &str) -> AccountDetails {
    AccountDetails {
        external_id: external_id.into(),
        iban: None,
        account_number: None,
        bank_code: None,
        bic: None,
        bank_name: "b".into(),
        currency: Currency::EUR,
        account_type: AccountType::Giro,
        name: "Giro".into(),
        owner: "E".into(),
        is_jointly_managed: false,
        card_last4: None,
    }
}

/// A long history is written in batches of `SYNC_BATCH`, each its own store call, so no
/// write holds the store for the whole fetch; the pending ones the bank no longer reports
/// are dropped once, at the end, keeping every pending one it does report.
#[tokio::test]
async fn a_long_history_is_written_in_batches() {
    let mut m = Mocks::new();
    stateful_flow(
        &mut m,
        flow(FlowStatus::Syncing {
            institution: sandbox(),
            session: BankSession::new("s".into()),
            consent: consent(),
            chosen: vec![details("giro")],
            started_at: t0(),
        }),
    );
    let n = crate::SYNC_BATCH * 4 + 7;
    m.bank.expect_balances().returning(|_, _, _| Ok(vec![]));
    m.bank
        .expect_transactions()
        .returning(move |_, _, _, _, _| {
            Ok((0..n)
                .map(|i| finx_domain::bank::TransactionDetails {
                    external_id: format!("t{i}"),
                    amount: finx_domain::money::Money::new(
                        rust_decimal::Decimal::new(-100, 2),
                        Currency::EUR,
                    ),
                    counterparty: Default::default(),
                    purpose: None,
                    booked_on: t0().date_naive(),
                    value_date: t0().date_naive(),
                    booked: i % 2 == 0,
                    booking_text: None,
                    transaction_type: finx_domain::bank::TransactionType::Transfer,
                    creditor_id: None,
                    mandate_reference: None,
                    end_to_end_reference: None,
                    sepa_purpose_code: None,
                    bank_transaction_code: None,
                    mcc: None,
                })
                .collect())
        });
    m.data.expect_upsert_account().returning(|_| Ok(()));
    m.data
        .expect_sync_transactions()
        .never()
        .returning(|_, _, _| Ok(Default::default()));
    m.data
        .expect_upsert_transactions()
        .times(5)
        .withf(|_, batch, _| batch.len() <= crate::SYNC_BATCH)
        .returning(|_, b, _| {
            Ok(finx_ports::SyncReport {
                inserted: b.len() as u64,
                ..Default::default()
            })
        });
    m.data
        .expect_drop_pending_except()
        .times(1)
        .withf(move |_, keep| keep.len() == n / 2)
        .returning(|_, _| Ok(0));
    m.grants.expect_insert_grant().returning(|_, _| Ok(()));
    let finx = m.build();
    let url = finx
        .run_completion(FlowId::from_random([5; 16]))
        .await
        .expect("completed");
    assert!(url.query_pairs().any(|(k, _)| k == "code"));
}

/// A flow at the redirect bank, waiting for the user's return with `nonce`'s hash.
fn at_redirect(nonce: &finx_domain::secret::ReturnNonce) -> Flow {
    let mut f = flow(FlowStatus::BankSelected {
        institution: sandbox(),
    });
    f.apply(
        FlowEvent::BankAsked {
            session: BankSession::new("r".into()),
            step: BankStep::Redirect {
                url: url::Url::parse("https://bank.example/sca").expect("url"),
            },
            return_check: Some(hasher().hash(nonce)),
        },
        t0(),
    )
    .expect("asked");
    f
}

#[tokio::test]
async fn a_connector_that_answers_out_of_order_fails_the_flow_instead_of_hanging() {
    // `begin` MUST NOT finish at once; a bank that does has skipped every step.
    let mut m = Mocks::new();
    m.bank.expect_begin().returning(|_, _, _| {
        Ok(BankReply::Done {
            session: BankSession::new("x".into()),
            consent: consent(),
        })
    });
    m.bank
        .expect_accounts()
        .returning(|_, _| Ok(vec![details("giro")]));
    let stored = stateful_flow(
        &mut m,
        flow(FlowStatus::BankSelected {
            institution: sandbox(),
        }),
    );
    let finx = m.build();
    let err = finx
        .open_at_bank(FlowId::from_random([5; 16]))
        .await
        .expect_err("refused");
    assert!(
        matches!(err, CoreError::FlowFailed(FailureReason::BankUnavailable)),
        "{err:?}"
    );
    assert_eq!(
        stored.lock().expect("lock").status,
        FlowStatus::Failed {
            reason: FailureReason::BankUnavailable
        }
    );

    // A step that cannot be shown (a poll interval of zero) after a login.
    let mut m = Mocks::new();
    m.bank.expect_answer().returning(|_, _, _, _| {
        Ok(BankReply::Next {
            session: BankSession::new("y".into()),
            step: BankStep::Decoupled {
                prompt: None,
                poll_after_seconds: 0,
            },
        })
    });
    let stored = stateful_flow(&mut m, at_login(0));
    let finx = m.build();
    let err = finx
        .submit_credentials(FlowId::from_random([5; 16]), &creds("demo"))
        .await
        .expect_err("refused");
    assert!(matches!(err, CoreError::FlowFailed(_)), "{err:?}");
    assert!(matches!(
        stored.lock().expect("lock").status,
        FlowStatus::Failed { .. }
    ));
}

#[tokio::test]
async fn a_reply_for_a_bank_the_user_has_left_is_dropped() {
    let mut m = Mocks::new();
    let stored = stateful_flow(&mut m, at_login(0));
    let meanwhile = stored.clone();
    // While the bank answers the login, the user picks another bank in another tab.
    m.bank.expect_answer().returning(move |_, _, _, _| {
        let mut f = meanwhile.lock().expect("lock");
        let other = InstitutionId::parse("sandbox-90094816").expect("id");
        f.apply(FlowEvent::BankSelected(other), t0())
            .expect("reselect");
        Ok(BankReply::Next {
            session: BankSession::new("late".into()),
            step: BankStep::ChooseMethod {
                methods: vec![finx_domain::sca::ScaMethod {
                    id: "push".into(),
                    name: "pushTAN".into(),
                    kind: finx_domain::sca::ScaMethodKind::Push,
                }],
            },
        })
    });
    let finx = m.build();
    let f = finx
        .submit_step(
            FlowId::from_random([5; 16]),
            StepAnswer::Login(vec![
                ("user".into(), "demo".into()),
                ("pin".into(), "demo".into()),
            ]),
        )
        .await
        .expect("the flow as it is now");
    assert!(
        matches!(&f.status, FlowStatus::BankSelected { institution } if institution.as_str() == "sandbox-90094816"),
        "{:?}",
        f.status
    );
    assert_eq!(f.login_attempts, 1, "the try still counts");
}

#[tokio::test]
async fn only_the_awaited_return_resumes_a_redirect_and_only_once() {
    let nonce = finx_domain::secret::ReturnNonce::from_random([8; 32]);
    let mut m = Mocks::new();
    let stored = stateful_flow(&mut m, at_redirect(&nonce));
    m.bank
        .expect_answer()
        .withf(|_, _, a, _| *a == StepAnswer::Returned { ok: true })
        .times(1)
        .returning(|_, _, _, _| {
            Ok(BankReply::Done {
                session: BankSession::new("ok".into()),
                consent: consent(),
            })
        });
    m.bank
        .expect_accounts()
        .returning(|_, _| Ok(vec![details("giro")]));
    let finx = m.build();
    let id = FlowId::from_random([5; 16]);
    let forged = finx_domain::secret::ReturnNonce::from_random([9; 32]);
    for bad in [forged.expose(), "fxn_", "not a nonce at all", ""] {
        assert!(
            matches!(
                finx.return_from_bank(id, bad, true, None).await,
                Err(CoreError::Invalid { field: "state", .. })
            ),
            "{bad}"
        );
    }
    let f = finx
        .return_from_bank(id, nonce.expose(), true, None)
        .await
        .expect("the awaited return");
    assert!(matches!(f.status, FlowStatus::ScaPassed { .. }));
    assert!(matches!(
        finx.return_from_bank(id, nonce.expose(), true, None).await,
        Err(CoreError::Invalid { .. })
    ));
    assert!(matches!(
        stored.lock().expect("lock").status,
        FlowStatus::ScaPassed { .. }
    ));
}

#[tokio::test]
async fn a_decoupled_approval_is_polled_no_sooner_than_the_bank_asked() {
    let mut m = Mocks::new();
    let mut f = flow(FlowStatus::BankSelected {
        institution: sandbox(),
    });
    f.apply(
        FlowEvent::BankAsked {
            session: BankSession::new("d".into()),
            step: BankStep::Decoupled {
                prompt: None,
                poll_after_seconds: 5,
            },
            return_check: None,
        },
        t0(),
    )
    .expect("asked");
    let stored = stateful_flow(&mut m, f);
    let calls = Arc::new(AtomicU8::new(0));
    let counted = calls.clone();
    m.bank.expect_answer().returning(move |_, _, a, _| {
        assert_eq!(*a, StepAnswer::Poll);
        counted.fetch_add(1, Ordering::SeqCst);
        Ok(BankReply::Next {
            session: BankSession::new("d".into()),
            step: BankStep::Decoupled {
                prompt: None,
                poll_after_seconds: 5,
            },
        })
    });
    let clock = Arc::new(MovingClock::at(t0()));
    m.clock = clock.clone();
    let finx = m.build();
    let id = FlowId::from_random([5; 16]);
    finx.poll_bank(id).await.expect("too early");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "not before five seconds");
    clock.advance(TimeDelta::seconds(5));
    finx.poll_bank(id).await.expect("polled");
    finx.poll_bank(id).await.expect("too early again");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let f = stored.lock().expect("lock").clone();
    let FlowStatus::AtBank { dialog, .. } = &f.status else {
        panic!("{:?}", f.status)
    };
    assert!(matches!(
        dialog.state(),
        ScaState::Asked(BankStep::Decoupled { .. })
    ));
}

#[tokio::test]
async fn an_answer_the_bank_never_replied_to_fails_the_flow_after_three_times_the_bank_timeout() {
    let mut m = Mocks::new();
    let mut f = at_login(0);
    f.apply(
        FlowEvent::Answered(StepAnswer::Login(vec![
            ("user".into(), "demo".into()),
            ("pin".into(), "demo".into()),
        ])),
        t0(),
    )
    .expect("answered");
    let stored = stateful_flow(&mut m, f);
    let clock = Arc::new(MovingClock::at(t0()));
    m.clock = clock.clone();
    let finx = m.build();
    let id = FlowId::from_random([5; 16]);
    clock.advance(TimeDelta::seconds(89));
    let f = finx.fail_if_stalled(id).await.expect("read");
    assert!(
        matches!(f.status, FlowStatus::AtBank { .. }),
        "the bank may still answer: {:?}",
        f.status
    );
    clock.advance(TimeDelta::seconds(1));
    let f = finx.fail_if_stalled(id).await.expect("failed");
    assert_eq!(
        f.status,
        FlowStatus::Failed {
            reason: FailureReason::BankUnavailable
        }
    );
    assert_eq!(stored.lock().expect("lock").status, f.status);
}
