use chrono::NaiveDate;
use proptest::prelude::*;

use super::*;

fn login() -> BankStep {
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

fn credentials(pin: &str) -> StepAnswer {
    StepAnswer::Login(vec![
        ("user".into(), "demo".into()),
        ("pin".into(), pin.into()),
    ])
}

fn methods() -> BankStep {
    BankStep::ChooseMethod {
        methods: vec![
            ScaMethod {
                id: "push".into(),
                name: "pushTAN".into(),
                kind: ScaMethodKind::Push,
            },
            ScaMethod {
                id: "photo".into(),
                name: "photoTAN".into(),
                kind: ScaMethodKind::Photo,
            },
        ],
    }
}

fn tan_step() -> BankStep {
    BankStep::Tan {
        challenge: Challenge {
            method: "photoTAN".into(),
            prompt: Some("Scan the code".into()),
            image_png: Some(vec![0x89, b'P', b'N', b'G']),
            flicker: None,
            max_length: Some(6),
        },
    }
}

fn redirect() -> BankStep {
    BankStep::Redirect {
        url: Url::parse("https://bank.example/authorise?id=1").expect("url"),
    }
}

fn decoupled() -> BankStep {
    BankStep::Decoupled {
        prompt: None,
        poll_after_seconds: 2,
    }
}

fn consent() -> Consent {
    Consent {
        id: "c-1".into(),
        status: ConsentStatus::Valid,
        valid_until: NaiveDate::from_ymd_opt(2027, 2, 1).unwrap_or_default(),
        frequency_per_day: 4,
        recurring: true,
        accounts: vec![],
    }
}

#[test]
fn embedded_with_a_method_choice_and_a_wrong_then_right_tan() {
    let mut d = ScaDialog::new();
    d.bank_asks(login()).expect("login");
    d.answer(&credentials("demo")).expect("credentials");
    d.bank_asks(methods()).expect("methods");
    d.answer(&StepAnswer::Method("photo".into()))
        .expect("choice");
    d.bank_asks(tan_step()).expect("tan");
    d.answer(&StepAnswer::Tan("000000".into())).expect("tan");
    assert_eq!(
        d.bank_rejects(StepFailure::WrongTan),
        Ok(Verdict::TryAgain { attempts_left: 2 })
    );
    assert!(matches!(d.state(), ScaState::Asked(BankStep::Tan { .. })));
    d.answer(&StepAnswer::Tan("123456".into())).expect("tan");
    d.bank_done(consent()).expect("done");
    assert_eq!(d.state(), &ScaState::Done(consent()));
    assert_eq!((d.login_tries(), d.tan_tries()), (1, 2));
}

#[test]
fn redirect_decoupled_and_no_sca_each_end_in_a_consent() {
    let mut d = ScaDialog::new();
    d.bank_asks(redirect()).expect("redirect");
    d.answer(&StepAnswer::Returned { ok: true }).expect("back");
    d.bank_done(consent()).expect("done");

    let mut d = ScaDialog::new();
    d.bank_asks(login()).expect("login");
    d.answer(&credentials("demo")).expect("credentials");
    d.bank_asks(decoupled()).expect("decoupled");
    for _ in 0..5 {
        d.answer(&StepAnswer::Poll).expect("poll");
        d.bank_asks(decoupled()).expect("still waiting");
    }
    d.answer(&StepAnswer::Poll).expect("poll");
    d.bank_done(consent()).expect("approved");

    let mut d = ScaDialog::new();
    d.bank_asks(login()).expect("login");
    d.answer(&credentials("demo")).expect("credentials");
    d.bank_done(consent()).expect("no SCA asked");
}

#[test]
fn three_wrong_logins_fail_and_a_fourth_never_reaches_the_bank() {
    let mut d = ScaDialog::new();
    d.bank_asks(login()).expect("login");
    for left in [2, 1] {
        d.answer(&credentials("wrong")).expect("try");
        assert_eq!(
            d.bank_rejects(StepFailure::WrongCredentials),
            Ok(Verdict::TryAgain {
                attempts_left: left
            })
        );
    }
    d.answer(&credentials("wrong")).expect("third try");
    assert_eq!(
        d.bank_rejects(StepFailure::WrongCredentials),
        Ok(Verdict::Failed(FailureReason::LoginFailed))
    );
    assert!(d.answer(&credentials("demo")).is_err());
    assert_eq!(d.login_tries(), 3);
}

#[test]
fn the_bank_cannot_skip_ahead_and_answers_must_fit() {
    let mut d = ScaDialog::new();
    assert!(
        d.bank_done(consent()).is_err(),
        "no consent before any step"
    );
    d.bank_asks(login()).expect("login");
    assert!(d.bank_done(consent()).is_err(), "not before the answer");
    assert!(
        d.bank_asks(methods()).is_err(),
        "not the next step before the answer"
    );
    assert!(d.answer(&StepAnswer::Tan("1".into())).is_err());
    assert!(
        d.answer(&StepAnswer::Login(vec![("user".into(), "demo".into())]))
            .is_err(),
        "every field"
    );
    let before = d.clone();
    assert!(d.answer(&credentials("")).is_err(), "no empty value");
    assert_eq!(d, before, "a refused answer changes nothing");
    d.answer(&credentials("demo")).expect("credentials");
    d.bank_asks(methods()).expect("methods");
    assert!(d.answer(&StepAnswer::Method("sms".into())).is_err());
    d.answer(&StepAnswer::Method("push".into())).expect("push");
    let mut bad = consent();
    bad.status = ConsentStatus::Received;
    assert!(d.bank_done(bad).is_err(), "only a valid consent");
    assert!(
        d.bank_rejects(StepFailure::WrongTan).is_err(),
        "a wrong TAN for a method choice"
    );
}

#[test]
fn malformed_steps_are_refused() {
    let mut d = ScaDialog::new();
    for step in [
        BankStep::Login { fields: vec![] },
        BankStep::ChooseMethod { methods: vec![] },
        BankStep::Decoupled {
            prompt: None,
            poll_after_seconds: 0,
        },
        BankStep::Redirect {
            url: Url::parse("javascript:alert(1)").expect("url"),
        },
        BankStep::Tan {
            challenge: Challenge {
                method: "x".into(),
                prompt: None,
                image_png: Some(vec![0; MAX_CHALLENGE_IMAGE + 1]),
                flicker: None,
                max_length: None,
            },
        },
    ] {
        assert!(
            matches!(d.bank_asks(step), Err(ScaError::MalformedStep(_))),
            "refused"
        );
    }
    assert_eq!(d.state(), &ScaState::Start);
}

#[test]
fn a_cancel_or_a_rejection_at_the_bank_keeps_its_meaning() {
    let mut d = ScaDialog::new();
    d.bank_asks(redirect()).expect("redirect");
    d.answer(&StepAnswer::Returned { ok: false }).expect("back");
    assert_eq!(
        d.bank_rejects(StepFailure::CancelledAtBank),
        Ok(Verdict::Cancelled)
    );
    let mut d = ScaDialog::new();
    d.bank_asks(decoupled()).expect("decoupled");
    d.answer(&StepAnswer::Poll).expect("poll");
    assert_eq!(
        d.bank_rejects(StepFailure::Rejected),
        Ok(Verdict::Failed(FailureReason::ScaRejected))
    );
    let mut d = ScaDialog::new();
    d.bank_asks(decoupled()).expect("decoupled");
    d.answer(&StepAnswer::Poll).expect("poll");
    assert_eq!(
        d.bank_rejects(StepFailure::Expired),
        Ok(Verdict::Failed(FailureReason::ScaExpired))
    );
}

#[test]
fn answers_keep_their_secrets_out_of_debug() {
    let shown = format!(
        "{:?} {:?}",
        credentials("s3cret-pin"),
        StepAnswer::Tan("987654".into())
    );
    assert!(
        !shown.contains("s3cret") && !shown.contains("987654"),
        "{shown}"
    );
    assert!(
        !shown.contains("demo"),
        "login values are all redacted: {shown}"
    );
}

#[derive(Debug, Clone)]
enum Op {
    Ask(u8),
    Answer(u8),
    Reject(u8),
    Done(bool),
}

fn step_of(n: u8) -> BankStep {
    match n % 5 {
        0 => login(),
        1 => methods(),
        2 => tan_step(),
        3 => redirect(),
        _ => decoupled(),
    }
}

fn answer_of(n: u8) -> StepAnswer {
    match n % 8 {
        0 => credentials("demo"),
        1 => credentials("wrong"),
        2 => StepAnswer::Method("push".into()),
        3 => StepAnswer::Method("nope".into()),
        4 => StepAnswer::Tan("123456".into()),
        5 => StepAnswer::Returned { ok: n % 2 == 0 },
        6 => StepAnswer::Poll,
        _ => StepAnswer::Tan(String::new()),
    }
}

fn failure_of(n: u8) -> StepFailure {
    [
        StepFailure::WrongCredentials,
        StepFailure::WrongTan,
        StepFailure::Locked,
        StepFailure::Rejected,
        StepFailure::CancelledAtBank,
        StepFailure::Expired,
        StepFailure::Unavailable,
    ][usize::from(n % 7)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u8>().prop_map(Op::Ask),
        5 => any::<u8>().prop_map(Op::Answer),
        2 => any::<u8>().prop_map(Op::Reject),
        1 => any::<bool>().prop_map(Op::Done),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Over any sequence of events from the bank and the end user: tries never exceed
    /// three, a refused event changes nothing, nothing happens after the end, and a consent
    /// only comes after every step the bank asked was answered.
    #[test]
    fn no_sequence_breaks_the_rules(ops in proptest::collection::vec(op(), 0..60)) {
        let mut d = ScaDialog::new();
        let mut asked = 0u32;
        let mut answered = 0u32;
        for o in ops {
            let before = d.clone();
            let ended = matches!(
                before.state(),
                ScaState::Done(_) | ScaState::Failed(_) | ScaState::Cancelled
            );
            let result = match o {
                Op::Ask(n) => d.bank_asks(step_of(n)).map(|()| None),
                Op::Answer(n) => d.answer(&answer_of(n)).map(|()| None),
                Op::Reject(n) => d.bank_rejects(failure_of(n)).map(Some),
                Op::Done(valid) => {
                    let mut c = consent();
                    if !valid {
                        c.status = ConsentStatus::Rejected;
                    }
                    d.bank_done(c).map(|()| None)
                }
            };
            match &result {
                Err(_) => prop_assert_eq!(&d, &before, "a refused event changes nothing"),
                Ok(verdict) => {
                    prop_assert!(!ended, "nothing happens after the end");
                    match o {
                        Op::Ask(_) => asked += 1,
                        Op::Answer(_) => answered += 1,
                        Op::Reject(_) => {
                            if matches!(verdict, Some(Verdict::TryAgain { .. })) {
                                // The same step is asked again and needs a new answer.
                                asked += 1;
                            }
                        }
                        Op::Done(_) => {
                            prop_assert!(
                                matches!(before.state(), ScaState::Answered(_)),
                                "a consent only after an answer"
                            );
                            prop_assert_eq!(asked, answered, "every step asked was answered");
                        }
                    }
                }
            }
            prop_assert!(d.login_tries() <= MAX_ATTEMPTS && d.tan_tries() <= MAX_ATTEMPTS);
            prop_assert!(answered <= asked);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// However answers and rejections of one secret step interleave, no more than three
    /// tries reach the bank, and the third wrong one ends the dialog.
    #[test]
    fn a_secret_step_takes_three_tries_at_most(
        tan in any::<bool>(),
        ops in proptest::collection::vec(any::<bool>(), 0..40),
    ) {
        let mut d = ScaDialog::new();
        let (step, answer, wrong) = if tan {
            (tan_step(), StepAnswer::Tan("123456".into()), StepFailure::WrongTan)
        } else {
            (login(), credentials("demo"), StepFailure::WrongCredentials)
        };
        if tan {
            d.bank_asks(redirect()).expect("a first step");
            d.answer(&StepAnswer::Returned { ok: true }).expect("back");
        }
        d.bank_asks(step).expect("the secret step");
        let mut reached_bank = 0u8;
        for answer_now in ops {
            if answer_now {
                if d.answer(&answer).is_ok() {
                    reached_bank += 1;
                }
            } else if let Ok(Verdict::Failed(_)) = d.bank_rejects(wrong) {
                prop_assert_eq!(reached_bank, MAX_ATTEMPTS);
            }
            prop_assert!(reached_bank <= MAX_ATTEMPTS);
        }
    }
}
