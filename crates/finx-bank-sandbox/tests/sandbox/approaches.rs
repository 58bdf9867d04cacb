//! Every SCA approach of the sandbox banks: embedded with a method choice at 90094815,
//! redirect to the bank's own pages at 90094816, decoupled approval in the bank app at
//! 90094817.

use finx_bank_sandbox::{AppError, BankPage};
use finx_domain::sca::{BankStep, ScaMethodKind, StepAnswer};
use finx_ports::{BankConnector, BankError, BankReply, Presence};

use crate::support::{
    FINX, answer, authorisation_of, begin, credentials, days_from_today, done, login, next,
    sandbox, start,
};

const REDIRECT: &str = "sandbox-90094816";
const DECOUPLED: &str = "sandbox-90094817";

#[tokio::test]
async fn the_embedded_bank_offers_three_methods_with_text_flicker_and_png_challenges() {
    let (bank, _) = sandbox(42);
    for (method, kind) in [
        ("push", ScaMethodKind::Push),
        ("chip", ScaMethodKind::Chip),
        ("photo", ScaMethodKind::Photo),
    ] {
        let (session, step) = next(start(&bank, FINX, "demo", "demo").await.expect("login"));
        let BankStep::ChooseMethod { methods } = &step else {
            panic!("{step:?}");
        };
        assert!(methods.iter().any(|m| m.id == method && m.kind == kind));
        let (session, step) = next(
            answer(&bank, FINX, &session, StepAnswer::Method(method.into()))
                .await
                .expect("method"),
        );
        let BankStep::Tan { challenge } = step else {
            panic!("a TAN step");
        };
        match kind {
            ScaMethodKind::Photo => {
                let png = challenge.image_png.expect("an image");
                assert_eq!(&png[1..4], b"PNG", "a PNG");
            }
            ScaMethodKind::Chip => {
                assert!(challenge.flicker.is_some_and(|f| !f.is_empty()));
            }
            _ => assert!(challenge.image_png.is_none() && challenge.flicker.is_none()),
        }
        // Wrong, then right.
        assert!(matches!(
            answer(&bank, FINX, &session, StepAnswer::Tan("999999".into())).await,
            Err(BankError::InvalidTan)
        ));
        let session = done(
            answer(&bank, FINX, &session, StepAnswer::Tan("123456".into()))
                .await
                .expect("TAN"),
        );
        assert_eq!(
            bank.accounts(&session, &Presence::Unattended)
                .await
                .expect("accounts")
                .len(),
            3
        );
    }
}

#[tokio::test]
async fn answers_out_of_turn_are_refused_and_nosca_is_done_after_the_login() {
    let (bank, _) = sandbox(42);
    let (session, _) = begin(&bank, FINX).await;
    assert!(matches!(
        answer(&bank, FINX, &session, StepAnswer::Tan("123456".into())).await,
        Err(BankError::SessionExpired)
    ));
    assert!(
        matches!(
            answer(&bank, REDIRECT, &session, credentials("demo", "demo")).await,
            Err(BankError::SessionExpired)
        ),
        "a session of another bank"
    );
    let reply = start(&bank, FINX, "nosca", "demo").await.expect("nosca");
    let BankReply::Done { consent, .. } = reply else {
        panic!("nosca needs no SCA");
    };
    assert_eq!(consent.valid_until, days_from_today(1));
    assert!(!consent.recurring);
}

#[tokio::test]
async fn the_redirect_bank_sends_the_user_to_its_pages_and_back() {
    let (bank, _) = sandbox(42);
    let (session, step) = begin(&bank, REDIRECT).await;
    let BankStep::Redirect { url } = &step else {
        panic!("{step:?}");
    };
    assert!(
        url.as_str()
            .starts_with("http://127.0.0.1:8080/sandbox-bank/authorise/")
    );
    let id = authorisation_of(&step);
    // Back without finishing: the bank asks for the same trip again.
    let (session, again) = next(
        answer(&bank, REDIRECT, &session, StepAnswer::Returned { ok: true })
            .await
            .expect("still pending"),
    );
    assert_eq!(again, step);
    // A wrong PIN on the bank's page stays there.
    assert!(matches!(
        bank.bank_login(&id, "demo", "wrong").await,
        BankPage::Login { error: Some(_), .. }
    ));
    assert!(matches!(
        bank.bank_login(&id, "demo", "demo").await,
        BankPage::Tan { .. }
    ));
    assert!(matches!(
        bank.bank_tan(&id, "1"),
        BankPage::Tan { error: Some(_), .. }
    ));
    let BankPage::Back(to) = bank.bank_tan(&id, "123456") else {
        panic!("approved");
    };
    assert!(to.as_str().ends_with("ok=1"), "{to}");
    // The route taken is a hint: the bank's record decides, once.
    let session = done(
        answer(
            &bank,
            REDIRECT,
            &session,
            StepAnswer::Returned { ok: false },
        )
        .await
        .expect("approved at the bank"),
    );
    assert!(
        !bank
            .accounts(&session, &Presence::Unattended)
            .await
            .expect("accounts")
            .is_empty()
    );
    assert!(matches!(bank.bank_page(&id), BankPage::Unknown));
}

#[tokio::test]
async fn at_the_redirect_bank_cancel_lock_and_three_wrong_pins_keep_their_meaning() {
    let (bank, _) = sandbox(42);
    for (user, pin, expected) in [
        ("redirect-cancel", "demo", "cancelled"),
        ("locked", "demo", "locked"),
        ("unavailable", "demo", "unavailable"),
        ("demo", "wrong", "rejected"),
    ] {
        let (session, step) = begin(&bank, REDIRECT).await;
        let id = authorisation_of(&step);
        let mut page = bank.bank_login(&id, user, pin).await;
        for _ in 0..2 {
            if matches!(page, BankPage::Login { .. }) {
                page = bank.bank_login(&id, user, pin).await;
            }
        }
        let BankPage::Back(to) = page else {
            panic!("{user}: {page:?}");
        };
        assert!(to.as_str().ends_with("ok=0"), "{user}: {to}");
        let result = answer(&bank, REDIRECT, &session, StepAnswer::Returned { ok: true }).await;
        let got = match result {
            Err(BankError::CancelledByUser) => "cancelled",
            Err(BankError::Locked) => "locked",
            Err(BankError::Unavailable(_)) => "unavailable",
            Err(BankError::Rejected) => "rejected",
            other => panic!("{user}: {other:?}"),
        };
        assert_eq!(got, expected);
    }
    // The cancel button.
    let (session, step) = begin(&bank, REDIRECT).await;
    let id = authorisation_of(&step);
    assert!(matches!(bank.bank_cancel(&id), BankPage::Back(_)));
    assert!(matches!(
        answer(
            &bank,
            REDIRECT,
            &session,
            StepAnswer::Returned { ok: false }
        )
        .await,
        Err(BankError::CancelledByUser)
    ));
    // An outcome is handed over once.
    assert!(matches!(
        answer(
            &bank,
            REDIRECT,
            &session,
            StepAnswer::Returned { ok: false }
        )
        .await,
        Err(BankError::AuthorisationExpired)
    ));
}

#[tokio::test]
async fn the_decoupled_bank_waits_for_the_app_or_decides_by_itself_after_its_delay() {
    let (bank, clock) = sandbox(42);
    let (session, step) = next(
        start(&bank, DECOUPLED, "demo", "demo")
            .await
            .expect("login"),
    );
    assert!(matches!(
        step,
        BankStep::Decoupled {
            poll_after_seconds: 2,
            ..
        }
    ));
    let (session, step) = next(
        answer(&bank, DECOUPLED, &session, StepAnswer::Poll)
            .await
            .expect("still waiting"),
    );
    assert!(matches!(step, BankStep::Decoupled { .. }));
    // Three seconds later the demo user's app approves by itself.
    clock.advance(chrono::TimeDelta::seconds(3));
    let session = done(
        answer(&bank, DECOUPLED, &session, StepAnswer::Poll)
            .await
            .expect("approved"),
    );
    assert!(bank.accounts(&session, &Presence::Unattended).await.is_ok());

    let (session, _) = next(
        start(&bank, DECOUPLED, "decoupled-reject", "demo")
            .await
            .expect("login"),
    );
    clock.advance(chrono::TimeDelta::seconds(3));
    assert!(matches!(
        answer(&bank, DECOUPLED, &session, StepAnswer::Poll).await,
        Err(BankError::Rejected)
    ));
}

#[tokio::test]
async fn in_the_bank_app_an_approval_needs_the_tan_and_a_decline_rejects() {
    let (bank, _) = sandbox(42);
    let (first, _) = next(
        start(&bank, DECOUPLED, "demo", "demo")
            .await
            .expect("login"),
    );
    let waiting = bank.waiting_approvals();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].user, "demo");
    assert_eq!(
        bank.decide(&waiting[0].id, true, "1"),
        Err(AppError::WrongTan)
    );
    assert_eq!(bank.decide(&waiting[0].id, true, "123456"), Ok(()));
    assert_eq!(
        bank.decide(&waiting[0].id, true, "123456"),
        Err(AppError::Unknown)
    );
    assert!(matches!(
        answer(&bank, DECOUPLED, &first, StepAnswer::Poll).await,
        Ok(BankReply::Done { .. })
    ));

    let (second, _) = next(
        start(&bank, DECOUPLED, "demo", "demo")
            .await
            .expect("login"),
    );
    let id = bank.waiting_approvals()[0].id.clone();
    assert_eq!(bank.decide(&id, false, ""), Ok(()));
    assert!(matches!(
        answer(&bank, DECOUPLED, &second, StepAnswer::Poll).await,
        Err(BankError::Rejected)
    ));
    // Logins fail at the decoupled bank as anywhere.
    assert!(matches!(
        start(&bank, DECOUPLED, "locked", "demo").await,
        Err(BankError::Locked)
    ));
    assert!(matches!(
        start(&bank, DECOUPLED, "demo", "wrong").await,
        Err(BankError::InvalidCredentials)
    ));
}

#[tokio::test]
async fn every_bank_lets_demo_in_with_the_sandbox_tan() {
    let (bank, _) = sandbox(42);
    for institution in [FINX, REDIRECT, DECOUPLED] {
        let session = login(&bank, institution, "demo").await;
        assert_eq!(
            bank.accounts(&session, &Presence::Unattended)
                .await
                .expect("accounts")
                .len(),
            3
        );
        let nosca = login(&bank, institution, "nosca").await;
        assert_eq!(
            bank.accounts(&nosca, &Presence::Unattended)
                .await
                .expect("accounts")
                .len(),
            3
        );
    }
}
