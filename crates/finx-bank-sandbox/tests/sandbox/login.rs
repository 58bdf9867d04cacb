//! Login scenarios, sessions and the bank list.

use std::time::Instant;

use finx_bank_sandbox::{SANDBOX_PIN, SANDBOX_TAN, SandboxBank, SandboxConfig};
use finx_domain::bank::AccountType;
use finx_domain::flow::BankSession;
use finx_domain::reference::Iban;
use finx_domain::sca::{BankStep, StepAnswer};
use finx_ports::{BankConnector, BankError, BankReply, Presence};

use crate::support::{
    FINX, answer, consent, days_from_today, done, institution, login, next, return_to, sandbox,
    start, today,
};

/// A TAN for `session` at the embedded bank: the authorised session, or the error.
async fn submit_sca(
    bank: &SandboxBank,
    session: &BankSession,
    tan: &str,
) -> Result<BankSession, BankError> {
    answer(bank, FINX, session, StepAnswer::Tan(tan.to_owned()))
        .await
        .map(done)
}

/// `demo` logged in at the embedded bank, pushTAN chosen: the session waiting for the TAN.
async fn pending_session(bank: &SandboxBank) -> BankSession {
    let (session, step) = next(
        start(bank, FINX, "demo", "demo")
            .await
            .expect("demo logs in"),
    );
    let BankStep::ChooseMethod { methods } = step else {
        panic!("demo chooses a method: {step:?}");
    };
    let names: Vec<&str> = methods.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["pushTAN", "chipTAN optisch", "photoTAN"]);
    let (session, step) = next(
        answer(bank, FINX, &session, StepAnswer::Method("push".into()))
            .await
            .expect("method"),
    );
    let BankStep::Tan { challenge } = step else {
        panic!("a TAN step: {step:?}");
    };
    assert_eq!(challenge.method, "pushTAN");
    assert!(
        challenge
            .prompt
            .as_deref()
            .is_some_and(|p| p.contains("123456"))
    );
    session
}

#[tokio::test]
async fn demo_needs_sca_and_the_sandbox_tan_authorizes_the_session() {
    let (bank, _) = sandbox(42);
    let pending = pending_session(&bank).await;
    assert!(matches!(
        bank.accounts(&pending, &Presence::Unattended).await,
        Err(BankError::SessionExpired)
    ));
    let session = submit_sca(&bank, &pending, SANDBOX_TAN)
        .await
        .expect("TAN accepted");
    assert_ne!(session, pending);
    let accounts = bank
        .accounts(&session, &Presence::Unattended)
        .await
        .expect("accounts");
    assert_eq!(accounts.len(), 3);
    assert_eq!(SANDBOX_PIN, "demo");
}

#[tokio::test]
async fn a_wrong_tan_is_invalid_and_the_same_session_can_try_again() {
    let (bank, _) = sandbox(42);
    let pending = pending_session(&bank).await;
    for wrong in ["000000", "12345", "", "1234567", " 654321 "] {
        assert!(
            matches!(
                submit_sca(&bank, &pending, wrong).await,
                Err(BankError::InvalidTan)
            ),
            "{wrong:?}"
        );
    }
    let session = submit_sca(&bank, &pending, "123456")
        .await
        .expect("the right TAN still works");
    assert!(bank.accounts(&session, &Presence::Unattended).await.is_ok());
}

#[tokio::test]
async fn a_tan_for_a_session_that_needs_none_is_refused() {
    let (bank, _) = sandbox(42);
    let session = login(&bank, FINX, "nosca").await;
    assert!(matches!(
        submit_sca(&bank, &session, "123456").await,
        Err(BankError::SessionExpired)
    ));
}

#[tokio::test]
async fn nosca_logs_in_without_sca_and_sees_the_demo_data() {
    let (bank, _) = sandbox(42);
    let outcome = start(&bank, FINX, "nosca", "demo")
        .await
        .expect("nosca logs in");
    let BankReply::Done { session, .. } = outcome else {
        panic!("nosca must not ask for a TAN");
    };
    let demo = login(&bank, FINX, "demo").await;
    assert_eq!(
        bank.accounts(&session, &Presence::Unattended)
            .await
            .expect("accounts"),
        bank.accounts(&demo, &Presence::Unattended)
            .await
            .expect("accounts")
    );
    let from = days_from_today(-30);
    let nosca_tx = bank
        .transactions(&session, "giro", from, today(), &Presence::Unattended)
        .await
        .expect("transactions");
    let demo_tx = bank
        .transactions(&demo, "giro", from, today(), &Presence::Unattended)
        .await
        .expect("transactions");
    assert!(!nosca_tx.is_empty());
    assert_eq!(nosca_tx, demo_tx);
}

#[tokio::test]
async fn locked_and_unavailable_logins_fail_with_their_errors_whatever_the_pin() {
    let (bank, _) = sandbox(42);
    for pin in ["demo", "wrong"] {
        assert!(matches!(
            start(&bank, FINX, "locked", pin).await,
            Err(BankError::Locked)
        ));
        match start(&bank, FINX, "unavailable", pin).await {
            Err(BankError::Unavailable(message)) => assert!(!message.is_empty()),
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn wrong_pins_unknown_users_and_empty_or_over_long_input_are_invalid_credentials() {
    let (bank, _) = sandbox(42);
    let long = "d".repeat(257);
    let cases = [
        ("demo", "wrong"),
        ("demo", "DEMO"),
        ("demo", ""),
        ("nosca", "1234"),
        ("bigdata", "demo "),
        ("mallory", "demo"),
        ("", "demo"),
        ("   ", "demo"),
        (long.as_str(), "demo"),
        ("demo", long.as_str()),
    ];
    for (user, pin) in cases {
        assert!(
            matches!(
                start(&bank, FINX, user, pin).await,
                Err(BankError::InvalidCredentials)
            ),
            "{user:?}/{pin:?}"
        );
    }
    // User names are forgiving about case and surrounding spaces; PINs are not.
    assert!(start(&bank, FINX, " Demo ", "demo").await.is_ok());
}

#[tokio::test]
async fn an_unknown_institution_is_rejected() {
    let (bank, _) = sandbox(42);
    for id in ["sandbox-12345678", "sandbox-", "bank-90094815", "90094815"] {
        let result = bank.begin(&institution(id), &consent(), &return_to()).await;
        assert!(matches!(result, Err(BankError::UnknownInstitution)), "{id}");
    }
}

#[tokio::test]
async fn a_tampered_or_made_up_session_handle_is_expired() {
    let (bank, _) = sandbox(42);
    let session = login(&bank, FINX, "demo").await;
    let handle = session.expose();
    let mut tampered = Vec::new();
    for i in [0, handle.len() / 2, handle.len() - 1] {
        let mut bytes = handle.as_bytes().to_vec();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        tampered.push(String::from_utf8(bytes).expect("ascii"));
    }
    tampered.push(format!("{handle}x"));
    tampered.push(handle.replace('.', ""));
    tampered.push(String::new());
    tampered.push("demo".to_owned());
    for forged in tampered {
        let forged = BankSession::new(forged);
        assert!(matches!(
            bank.accounts(&forged, &Presence::Unattended).await,
            Err(BankError::SessionExpired)
        ));
        assert!(matches!(
            bank.balances(&forged, "giro", &Presence::Unattended).await,
            Err(BankError::SessionExpired)
        ));
        assert!(matches!(
            bank.transactions(
                &forged,
                "giro",
                days_from_today(-5),
                today(),
                &Presence::Unattended
            )
            .await,
            Err(BankError::SessionExpired)
        ));
        assert!(matches!(
            submit_sca(&bank, &forged, "123456").await,
            Err(BankError::SessionExpired)
        ));
    }
}

#[tokio::test]
async fn a_session_pending_sca_cannot_read_data() {
    let (bank, _) = sandbox(42);
    let pending = pending_session(&bank).await;
    assert!(matches!(
        bank.accounts(&pending, &Presence::Unattended).await,
        Err(BankError::SessionExpired)
    ));
    assert!(matches!(
        bank.balances(&pending, "giro", &Presence::Unattended).await,
        Err(BankError::SessionExpired)
    ));
    assert!(matches!(
        bank.transactions(
            &pending,
            "giro",
            days_from_today(-5),
            today(),
            &Presence::Unattended
        )
        .await,
        Err(BankError::SessionExpired)
    ));
}

#[tokio::test]
async fn a_session_from_one_instance_works_on_another_with_the_same_seed_only() {
    let (first, _) = sandbox(42);
    let (second, _) = sandbox(42);
    let (other, _) = sandbox(43);
    let pending = pending_session(&first).await;
    let session = submit_sca(&second, &pending, "123456")
        .await
        .expect("same seed accepts the pending session");
    let accounts = first
        .accounts(&session, &Presence::Unattended)
        .await
        .expect("and the first accepts the authorized one");
    assert_eq!(
        accounts,
        second
            .accounts(&session, &Presence::Unattended)
            .await
            .expect("accounts")
    );
    assert!(matches!(
        submit_sca(&other, &pending, "123456").await,
        Err(BankError::SessionExpired)
    ));
    assert!(matches!(
        other.accounts(&session, &Presence::Unattended).await,
        Err(BankError::SessionExpired)
    ));
}

#[tokio::test]
async fn an_unknown_account_id_is_an_error() {
    let (bank, _) = sandbox(42);
    let session = login(&bank, FINX, "demo").await;
    for account in ["depot", "", "GIRO"] {
        assert!(
            matches!(
                bank.balances(&session, account, &Presence::Unattended)
                    .await,
                Err(BankError::Unexpected(_))
            ),
            "{account}"
        );
        assert!(matches!(
            bank.transactions(
                &session,
                account,
                days_from_today(-5),
                today(),
                &Presence::Unattended
            )
            .await,
            Err(BankError::Unexpected(_))
        ));
    }
    let big = login(&bank, FINX, "bigdata").await;
    assert!(matches!(
        bank.balances(&big, "savings", &Presence::Unattended).await,
        Err(BankError::Unexpected(_))
    ));
}

#[tokio::test]
async fn institutions_are_listed_in_order_and_found_by_code_bic_and_name() {
    let (bank, _) = sandbox(42);
    let institutions = bank.institutions().await.expect("institutions");
    let ids: Vec<&str> = institutions.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(
        ids,
        ["sandbox-90094815", "sandbox-90094816", "sandbox-90094817"]
    );
    for i in &institutions {
        assert_eq!(i.country, "DE");
        let code = i.bank_code.as_deref().expect("bank code");
        assert_eq!(code.len(), 8);
        assert_eq!(i.id.as_str(), format!("sandbox-{code}"));
        assert_eq!(i.bic.as_deref().map(str::len), Some(11));
    }
    assert_eq!(institutions[0].name, "finX Sandbox Bank");
    assert_eq!(institutions[0].bic.as_deref(), Some("FINXDEB1XXX"));
    assert_eq!(institutions[0].login_fields.user_label, "Anmeldename");
    assert_eq!(institutions[0].login_fields.secret_label, "PIN");
    assert_eq!(institutions[1].name, "Sparkasse Musterstadt (Sandbox)");
    assert_eq!(institutions[2].bic.as_deref(), Some("TBDIDEF1XXX"));
    let found = bank
        .resolve_bank_code("DE", "90094816")
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(found.id.as_str(), "sandbox-90094816");
    assert_eq!(
        bank.search_institutions("sparkasse")
            .await
            .expect("search")
            .len(),
        1
    );
    assert_eq!(
        bank.search_institutions("TBDIDEF1")
            .await
            .expect("search")
            .len(),
        1
    );
    assert!(
        bank.institution(&institution("sandbox-1"))
            .await
            .expect("lookup")
            .is_none()
    );
}

#[tokio::test]
async fn the_demo_accounts_are_a_giro_a_savings_account_and_a_credit_card() {
    let (bank, _) = sandbox(42);
    let session = login(&bank, FINX, "demo").await;
    let accounts = bank
        .accounts(&session, &Presence::Unattended)
        .await
        .expect("accounts");
    let ids: Vec<&str> = accounts.iter().map(|a| a.external_id.as_str()).collect();
    assert_eq!(ids, ["giro", "savings", "card"]);
    let giro = &accounts[0];
    assert_eq!(
        giro.iban.as_ref().map(Iban::as_str),
        Some("DE82900948150000002881")
    );
    assert_eq!(giro.account_number.as_deref(), Some("2881"));
    assert_eq!(
        (giro.account_type, giro.name.as_str()),
        (AccountType::Giro, "Girokonto")
    );
    assert_eq!(
        giro.owner, "MUSTERMANN, ERIKA",
        "as this bank writes its holders"
    );
    assert_eq!(accounts[1].owner, "Erika Mustermann");
    assert_eq!(giro.currency.as_str(), "EUR");
    assert_eq!(giro.bank_name, "finX Sandbox Bank");
    assert_eq!(giro.bic.as_deref(), Some("FINXDEB1XXX"));
    assert_eq!(accounts[1].iban, Iban::from_german("90094815", "2882").ok());
    assert_eq!(
        (accounts[1].account_type, accounts[1].name.as_str()),
        (AccountType::Savings, "Tagesgeld")
    );
    let card = &accounts[2];
    assert_eq!(
        (card.account_type, card.name.as_str()),
        (AccountType::CreditCard, "Visa Classic")
    );
    assert_eq!(card.iban, None);
    assert_eq!(card.card_last4.as_deref(), Some("1111"));

    let sparkasse = login(&bank, "sandbox-90094816", "demo").await;
    let accounts = bank
        .accounts(&sparkasse, &Presence::Unattended)
        .await
        .expect("accounts");
    assert!(accounts[0].is_jointly_managed);
    assert_eq!(accounts[0].owner, "Erika und Max Mustermann");
    assert_ne!(accounts[0].account_number.as_deref(), Some("2881"));
    let other = login(&bank, "sandbox-90094817", "demo").await;
    let others = bank
        .accounts(&other, &Presence::Unattended)
        .await
        .expect("accounts");
    assert_ne!(others[0].iban, accounts[0].iban);
    for account in accounts.iter().chain(&others) {
        if let Some(iban) = &account.iban {
            assert!(Iban::parse(iban.as_str()).is_ok());
        }
    }

    let big = login(&bank, FINX, "bigdata").await;
    let accounts = bank
        .accounts(&big, &Presence::Unattended)
        .await
        .expect("accounts");
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].external_id, "giro");
}

#[tokio::test]
async fn the_slow_login_takes_at_least_its_delay_to_log_in_and_to_fetch_transactions() {
    let (bank, _) = sandbox(42);
    let started = Instant::now();
    let outcome = start(&bank, FINX, "slow", "demo")
        .await
        .expect("slow logs in");
    assert!(started.elapsed().as_millis() >= 50);
    assert!(
        matches!(outcome, BankReply::Next { .. }),
        "slow behaves like demo"
    );
    let session = login(&bank, FINX, "slow").await;
    let started = Instant::now();
    let transactions = bank
        .transactions(
            &session,
            "giro",
            days_from_today(-10),
            today(),
            &Presence::Unattended,
        )
        .await
        .expect("transactions");
    assert!(started.elapsed().as_millis() >= 50);
    assert!(!transactions.is_empty());

    let no_delay = SandboxBank::new(
        SandboxConfig {
            slow_delay: std::time::Duration::ZERO,
            ..SandboxConfig::default()
        },
        crate::support::FakeClock::at(today()),
    );
    assert!(start(&no_delay, FINX, "slow", "demo").await.is_ok());
}

#[test]
fn the_default_configuration_is_seed_42_and_three_seconds() {
    let config = SandboxConfig::default();
    assert_eq!(config.seed, 42);
    assert_eq!(config.slow_delay, std::time::Duration::from_secs(3));
    assert_eq!(config.decoupled_delay, std::time::Duration::from_secs(3));
}
