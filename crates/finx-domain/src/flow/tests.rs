use chrono::{TimeDelta, TimeZone};
use proptest::prelude::*;

use super::*;
use crate::money::Currency;
use crate::reference::Iban;
use crate::sca::{Challenge, ConsentStatus, LoginField};

fn t0() -> Timestamp {
    chrono::Utc
        .with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
        .single()
        .expect("valid")
}

fn account(id: &str, t: AccountType) -> AccountDetails {
    AccountDetails {
        external_id: id.into(),
        iban: Iban::from_german("90094815", "2881").ok(),
        account_number: Some("2881".into()),
        bank_code: Some("90094815".into()),
        bic: None,
        bank_name: "Bank".into(),
        currency: Currency::EUR,
        account_type: t,
        name: id.into(),
        owner: "Erika Mustermann".into(),
        is_jointly_managed: false,
        card_last4: None,
    }
}

fn params(multi: bool, types: Vec<AccountType>) -> FlowParams {
    FlowParams {
        redirect_uri: RedirectUri::parse("https://app.example/cb?x=1").expect("uri"),
        state: State::parse("st-1").ok(),
        language: Language::De,
        accounts: vec![],
        account_types: types,
        allow_multi_selection: multi,
        sync_period: SyncPeriod::default(),
        provider_id: None,
        scope: Scope::FULL,
        ongoing: None,
        verification: None,
    }
}

fn flow(multi: bool) -> Flow {
    Flow::new(
        FlowId::from_random([1; 16]),
        ClientId::parse("c").expect("id"),
        params(multi, vec![]),
        t0(),
        TimeDelta::hours(1),
        None,
    )
}

fn bank() -> InstitutionId {
    InstitutionId::parse("sandbox").expect("id")
}

fn session() -> BankSession {
    BankSession::new("s".into())
}

fn login_step() -> BankStep {
    BankStep::Login {
        fields: vec![
            LoginField {
                id: "user".into(),
                label: "Anmeldename".into(),
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

fn credentials() -> StepAnswer {
    StepAnswer::Login(vec![
        ("user".into(), "demo".into()),
        ("pin".into(), "x".into()),
    ])
}

fn tan_step() -> BankStep {
    BankStep::Tan {
        challenge: Challenge {
            method: "pushTAN".into(),
            prompt: None,
            image_png: None,
            flicker: None,
            max_length: Some(6),
        },
    }
}

fn asked(step: BankStep) -> FlowEvent {
    FlowEvent::BankAsked {
        session: session(),
        step,
        return_check: None,
    }
}

fn consent() -> Consent {
    Consent {
        id: "c-1".into(),
        status: ConsentStatus::Valid,
        valid_until: chrono::NaiveDate::from_ymd_opt(2026, 5, 30).expect("date"),
        frequency_per_day: 4,
        recurring: false,
        accounts: vec![],
    }
}

fn passed(accounts: Vec<AccountDetails>) -> FlowEvent {
    FlowEvent::ScaPassed {
        session: session(),
        consent: consent(),
        accounts,
    }
}

fn accounts() -> Vec<AccountDetails> {
    vec![
        account("giro", AccountType::Giro),
        account("save", AccountType::Savings),
    ]
}

/// Bank chosen, login form answered; the bank's answer is next.
fn logged_in(f: &mut Flow, now: Timestamp) {
    f.apply(FlowEvent::BankSelected(bank()), now)
        .expect("select");
    f.apply(asked(login_step()), now).expect("login form");
    f.apply(FlowEvent::Answered(credentials()), now)
        .expect("answer");
}

#[test]
fn the_happy_path_reaches_completed() {
    let now = t0();
    let mut f = flow(true);
    logged_in(&mut f, now);
    f.apply(asked(tan_step()), now).expect("TAN asked");
    f.apply(FlowEvent::Answered(StepAnswer::Tan("123456".into())), now)
        .expect("tan try");
    f.apply(passed(accounts()), now).expect("sca");
    assert_eq!(f.preselected().len(), 2);
    f.apply(FlowEvent::AccountsChosen(vec!["giro".into()]), now)
        .expect("choose");
    let gid = GrantId::from_random([3; 16]);
    assert!(
        f.apply(FlowEvent::Completed(gid, KeptCode(code())), now)
            .is_err(),
        "completion needs the sync to have started"
    );
    f.apply(FlowEvent::SyncStarted, now).expect("sync");
    assert!(
        f.apply(FlowEvent::SyncStarted, now).is_err(),
        "the data is fetched once"
    );
    f.apply(FlowEvent::Completed(gid, KeptCode(code())), now)
        .expect("complete");
    assert_eq!(
        f.status,
        FlowStatus::Completed {
            grant_id: gid,
            code: Some(KeptCode(code()))
        }
    );
    assert_eq!(f.version, 9);
    assert_eq!((f.login_attempts, f.tan_attempts), (1, 1));
}

#[test]
fn three_login_tries_then_a_rejection_fail_the_flow() {
    let now = t0();
    let mut f = flow(true);
    logged_in(&mut f, now);
    for _ in 0..2 {
        f.apply(FlowEvent::BankRejected(StepFailure::WrongCredentials), now)
            .expect("rejected");
        assert_eq!(f.asked(), Some(&login_step()), "the login form again");
        f.apply(FlowEvent::Answered(credentials()), now)
            .expect("again");
    }
    f.apply(FlowEvent::BankRejected(StepFailure::WrongCredentials), now)
        .expect("rejected");
    assert_eq!(
        f.status,
        FlowStatus::Failed {
            reason: FailureReason::LoginFailed
        }
    );
    assert_eq!(
        f.apply(FlowEvent::BankSelected(bank()), now),
        Err(FlowError::Finished("failed"))
    );
}

#[test]
fn tries_are_counted_when_they_start_and_never_reset() {
    let now = t0();
    let mut f = flow(true);
    logged_in(&mut f, now);
    f.apply(FlowEvent::BankRejected(StepFailure::WrongCredentials), now)
        .expect("rejected");
    f.apply(FlowEvent::Answered(credentials()), now)
        .expect("second");
    assert_eq!(f.login_attempts, 2, "counted before the bank answers");
    f.apply(FlowEvent::BankRejected(StepFailure::WrongCredentials), now)
        .expect("rejected");
    // Picking the bank again (or another) does not give tries back.
    f.apply(
        FlowEvent::BankSelected(InstitutionId::parse("other").expect("id")),
        now,
    )
    .expect("reselect");
    f.apply(asked(login_step()), now).expect("login form");
    f.apply(FlowEvent::Answered(credentials()), now)
        .expect("third");
    assert_eq!(f.login_attempts, 3);
    f.apply(FlowEvent::BankRejected(StepFailure::WrongCredentials), now)
        .expect("rejected");
    assert_eq!(
        f.status,
        FlowStatus::Failed {
            reason: FailureReason::LoginFailed
        },
        "three tries per flow, across banks"
    );
    // A rejection of nothing is not a transition.
    let mut fresh = flow(true);
    fresh
        .apply(FlowEvent::BankSelected(bank()), now)
        .expect("select");
    fresh.apply(asked(login_step()), now).expect("asked");
    assert!(matches!(
        fresh.apply(FlowEvent::BankRejected(StepFailure::WrongCredentials), now),
        Err(FlowError::Sca(ScaError::OutOfOrder { .. }))
    ));
}

#[test]
fn three_wrong_tans_fail_the_flow() {
    let now = t0();
    let mut f = flow(true);
    logged_in(&mut f, now);
    f.apply(asked(tan_step()), now).expect("TAN asked");
    for _ in 0..3 {
        f.apply(FlowEvent::Answered(StepAnswer::Tan("1".into())), now)
            .expect("tan try");
        f.apply(FlowEvent::BankRejected(StepFailure::WrongTan), now)
            .expect("tan");
    }
    assert_eq!(
        f.status,
        FlowStatus::Failed {
            reason: FailureReason::ScaFailed
        }
    );
}

#[test]
fn a_redirect_return_uses_its_check_up_and_a_cancel_at_the_bank_cancels() {
    let now = t0();
    let mut f = flow(true);
    f.apply(FlowEvent::BankSelected(bank()), now)
        .expect("select");
    let check = crate::secret::TokenHash::from_bytes([7; 32]);
    f.apply(
        FlowEvent::BankAsked {
            session: session(),
            step: BankStep::Redirect {
                url: Url::parse("https://bank.example/sca").expect("url"),
            },
            return_check: Some(check),
        },
        now,
    )
    .expect("redirect");
    assert!(matches!(
        f.status,
        FlowStatus::AtBank {
            return_check: Some(_),
            ..
        }
    ));
    f.apply(FlowEvent::Answered(StepAnswer::Returned { ok: false }), now)
        .expect("back");
    assert!(matches!(
        f.status,
        FlowStatus::AtBank {
            return_check: None,
            ..
        }
    ));
    assert!(
        f.apply(FlowEvent::Answered(StepAnswer::Returned { ok: true }), now)
            .is_err(),
        "a second return is out of order"
    );
    f.apply(FlowEvent::BankRejected(StepFailure::CancelledAtBank), now)
        .expect("cancelled");
    assert_eq!(f.status, FlowStatus::Cancelled);
}

#[test]
fn a_consent_naming_accounts_limits_the_offer() {
    let now = t0();
    let mut f = flow(true);
    logged_in(&mut f, now);
    let mut c = consent();
    c.accounts = vec!["save".into()];
    f.apply(
        FlowEvent::ScaPassed {
            session: session(),
            consent: c,
            accounts: accounts(),
        },
        now,
    )
    .expect("done");
    let FlowStatus::ScaPassed { offered, .. } = &f.status else {
        panic!("{:?}", f.status)
    };
    assert_eq!(offered.len(), 1);
    assert_eq!(offered[0].external_id, "save");
}

#[test]
fn an_expired_link_refuses_every_step() {
    let mut f = flow(true);
    let late = t0() + TimeDelta::hours(1);
    assert_eq!(
        f.apply(FlowEvent::BankSelected(bank()), late),
        Err(FlowError::Expired)
    );
    assert_eq!(f.status, FlowStatus::Expired);
    assert_eq!(
        f.apply(FlowEvent::Cancelled, late),
        Err(FlowError::Finished("expired"))
    );
}

#[test]
fn illegal_transitions_are_errors_and_change_nothing() {
    let now = t0();
    let mut f = flow(true);
    let before = f.clone();
    let e = f.apply(FlowEvent::BankRejected(StepFailure::WrongTan), now);
    assert_eq!(
        e,
        Err(FlowError::IllegalTransition {
            event: "a rejection from the bank",
            status: "created"
        })
    );
    assert_eq!(f, before);
    assert!(
        f.apply(
            FlowEvent::Completed(GrantId::from_random([0; 16]), KeptCode(code())),
            now
        )
        .is_err()
    );
    assert_eq!(f, before);
}

#[test]
fn single_selection_takes_one_account_and_only_offered_ones() {
    let now = t0();
    let mut f = flow(false);
    logged_in(&mut f, now);
    f.apply(passed(accounts()), now).expect("no sca needed");
    assert_eq!(f.preselected().len(), 1);
    let two = FlowEvent::AccountsChosen(vec!["giro".into(), "save".into()]);
    assert!(matches!(
        f.apply(two, now),
        Err(FlowError::InvalidSelection(_))
    ));
    assert!(matches!(
        f.apply(FlowEvent::AccountsChosen(vec!["other".into()]), now),
        Err(FlowError::InvalidSelection(_))
    ));
    assert!(matches!(
        f.apply(FlowEvent::AccountsChosen(vec![]), now),
        Err(FlowError::InvalidSelection(_))
    ));
    f.apply(FlowEvent::AccountsChosen(vec!["save".into()]), now)
        .expect("one");
}

#[test]
fn account_types_filter_what_is_offered() {
    let now = t0();
    let mut f = flow(true);
    f.params.account_types = vec![AccountType::CreditCard];
    logged_in(&mut f, now);
    f.apply(passed(accounts()), now).expect("sca");
    assert_eq!(
        f.status,
        FlowStatus::Failed {
            reason: FailureReason::NoAccounts
        }
    );
}

#[test]
fn named_accounts_are_preselected() {
    let now = t0();
    let mut f = flow(true);
    let mut other = account("other", AccountType::Giro);
    other.iban = Iban::from_german("90094815", "2882").ok();
    other.account_number = Some("2882".into());
    f.params.accounts = vec![AccountReference::parse("DE55900948150000002882").expect("iban")];
    logged_in(&mut f, now);
    f.apply(passed(vec![account("giro", AccountType::Giro), other]), now)
        .expect("sca");
    let pre: Vec<_> = f
        .preselected()
        .into_iter()
        .map(|a| a.external_id.as_str())
        .collect();
    assert_eq!(pre, ["other"]);
}

#[test]
fn callback_urls_carry_the_outcome() {
    let f = flow(true);
    let code = AuthorizationCode::from_presented("fxc_abc").expect("code");
    let ok = callback_url(&f.params, f.id, &Outcome::Success(code));
    assert_eq!(
        ok.as_str(),
        format!(
            "https://app.example/cb?x=1&code=fxc_abc&state=st-1&success=true&flow_id={}",
            f.id
        )
    );
    let cancel = callback_url(&f.params, f.id, &Outcome::Cancelled);
    assert_eq!(
        cancel.query(),
        Some(format!("x=1&success=false&cancel=true&state=st-1&flow_id={}", f.id).as_str())
    );
    let failed = callback_url(&f.params, f.id, &Outcome::Failed(FailureReason::ScaFailed));
    assert!(
        failed
            .as_str()
            .contains("success=false&state=st-1&error=sca_failed")
    );
}

fn event() -> impl Strategy<Value = FlowEvent> {
    let ids = proptest::collection::vec(
        prop_oneof![
            Just("giro".to_owned()),
            Just("save".to_owned()),
            Just("card".to_owned())
        ],
        0..3,
    );
    prop_oneof![
        Just(FlowEvent::BankSelected(bank())),
        Just(asked(login_step())),
        Just(asked(tan_step())),
        Just(FlowEvent::Answered(credentials())),
        Just(FlowEvent::Answered(StepAnswer::Tan("1".into()))),
        Just(FlowEvent::Answered(StepAnswer::Poll)),
        Just(FlowEvent::BankRejected(StepFailure::WrongCredentials)),
        Just(FlowEvent::BankRejected(StepFailure::WrongTan)),
        Just(FlowEvent::BankRejected(StepFailure::CancelledAtBank)),
        Just(passed(accounts())),
        Just(passed(vec![])),
        ids.prop_map(FlowEvent::AccountsChosen),
        Just(FlowEvent::SyncStarted),
        Just(FlowEvent::Completed(
            GrantId::from_random([9; 16]),
            KeptCode(code())
        )),
        Just(FlowEvent::Cancelled),
        Just(FlowEvent::Failed(FailureReason::BankUnavailable)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Whatever the events and their timing, the flow never reaches an illegal state.
    #[test]
    fn no_sequence_of_events_reaches_an_illegal_state(
        multi in any::<bool>(),
        steps in proptest::collection::vec((event(), 0i64..20), 0..30),
    ) {
        let mut f = flow(multi);
        let mut now = t0();
        for (ev, minutes) in steps {
            now += TimeDelta::minutes(minutes);
            let before = f.clone();
            let result = f.apply(ev.clone(), now);
            // Terminal states are absorbing.
            if before.status.is_terminal() {
                prop_assert_eq!(&f, &before);
                prop_assert!(result.is_err());
            }
            // Nothing is live past the expiry.
            if now >= f.expires_at {
                prop_assert!(f.status.is_terminal());
            }
            match &result {
                Ok(()) => prop_assert_eq!(f.version, before.version + 1),
                Err(FlowError::Expired) => prop_assert_eq!(&f.status, &FlowStatus::Expired),
                Err(_) => prop_assert_eq!(&f, &before),
            }
            // Completion only follows the sync, which only follows account selection.
            if matches!(f.status, FlowStatus::Completed { .. }) && !before.status.is_terminal() {
                let was_syncing = matches!(before.status, FlowStatus::Syncing { .. });
                prop_assert!(was_syncing);
            }
            if matches!(f.status, FlowStatus::Syncing { .. }) && result.is_ok() {
                let was_chosen = matches!(before.status, FlowStatus::AccountsChosen { .. });
                prop_assert!(was_chosen);
            }
            // Tries only grow, never past the limit, and only through answers.
            prop_assert!(f.login_attempts <= MAX_ATTEMPTS && f.tan_attempts <= MAX_ATTEMPTS);
            prop_assert!(f.login_attempts >= before.login_attempts && f.tan_attempts >= before.tan_attempts);
            if f.login_attempts > before.login_attempts {
                prop_assert_eq!(&ev, &FlowEvent::Answered(credentials()));
            }
            if f.tan_attempts > before.tan_attempts {
                prop_assert!(matches!(ev, FlowEvent::Answered(StepAnswer::Tan(_))));
            }
            // A password is never sent to the bank more than MAX_ATTEMPTS times.
            if ev == FlowEvent::Answered(credentials()) && before.login_attempts >= MAX_ATTEMPTS {
                prop_assert!(result.is_err());
            }
            // Accounts are only on offer after every step the bank asked was answered.
            if matches!(f.status, FlowStatus::ScaPassed { .. }) && result.is_ok() {
                let answered = matches!(
                    &before.status,
                    FlowStatus::AtBank { dialog, .. } if matches!(dialog.state(), ScaState::Answered(_))
                );
                prop_assert!(answered);
            }
            match &f.status {
                FlowStatus::ScaPassed { offered, .. } => prop_assert!(!offered.is_empty()),
                FlowStatus::AccountsChosen { chosen, .. } | FlowStatus::Syncing { chosen, .. } => {
                    prop_assert!(!chosen.is_empty());
                    prop_assert!(multi || chosen.len() == 1);
                }
                _ => {}
            }
        }
    }
}

fn code() -> crate::secret::AuthorizationCode {
    crate::secret::AuthorizationCode::from_random([5; 32])
}

#[test]
fn a_flow_belongs_to_the_first_browser_that_opens_it() {
    let mut f = flow(false);
    let first = crate::secret::TokenHash::from_bytes([1; 32]);
    let other = crate::secret::TokenHash::from_bytes([2; 32]);
    assert_eq!(f.bind_browser(first), Ok(true));
    let v = f.version;
    assert_eq!(f.bind_browser(first), Ok(false), "the same browser again");
    assert_eq!(f.version, v);
    assert_eq!(f.bind_browser(other), Err(FlowError::OtherBrowser));
    assert_eq!(f.browser, Some(first));
}
