//! The generated data: determinism, realism, pending items, balances and the big account.

use std::collections::HashSet;

use finx_bank_sandbox::SandboxBank;
use finx_domain::Date;
use finx_domain::bank::{BalanceStatus, TransactionDetails, TransactionType};
use finx_domain::flow::BankSession;
use finx_domain::reference::Iban;
use finx_ports::{BankConnector, Presence};
use rust_decimal::Decimal;

use crate::support::{FINX, day, days_from_today, login, sandbox, today};

async fn fetch(
    bank: &SandboxBank,
    session: &BankSession,
    account: &str,
    from: Date,
    to: Date,
) -> Vec<TransactionDetails> {
    bank.transactions(session, account, from, to, &Presence::Unattended)
        .await
        .expect("transactions")
}

fn cents(tx: &TransactionDetails) -> i64 {
    let amount = tx.amount.amount() * Decimal::ONE_HUNDRED;
    i64::try_from(amount).expect("whole cents")
}

fn sum(transactions: &[TransactionDetails], pick: impl Fn(&TransactionDetails) -> bool) -> i64 {
    transactions.iter().filter(|t| pick(t)).map(cents).sum()
}

/// A SEPA creditor identifier with correct ISO 7064 mod 97-10 check digits.
fn is_valid_creditor_id(id: &str) -> bool {
    let (Some(country), Some(check), Some(business), Some(national)) =
        (id.get(..2), id.get(2..4), id.get(4..7), id.get(7..))
    else {
        return false;
    };
    if country != "DE"
        || business != "ZZZ"
        || national.len() != 11
        || !check.bytes().all(|b| b.is_ascii_digit())
    {
        return false;
    }
    let rearranged = format!("{national}{country}{check}");
    let remainder = rearranged
        .chars()
        .fold(0u32, |acc, c| match c.to_digit(36) {
            Some(v) if v >= 10 => (acc * 100 + v) % 97,
            Some(v) => (acc * 10 + v) % 97,
            None => 99,
        });
    remainder == 1
}

#[tokio::test]
async fn overlapping_windows_agree_on_the_days_they_share() {
    let (bank, _) = sandbox(42);
    let session = login(&bank, FINX, "demo").await;
    for account in ["giro", "savings", "card"] {
        let early = fetch(
            &bank,
            &session,
            account,
            days_from_today(-120),
            days_from_today(-20),
        )
        .await;
        let late = fetch(&bank, &session, account, days_from_today(-60), today()).await;
        let shared = |t: &&TransactionDetails| {
            t.booked_on >= days_from_today(-60) && t.booked_on <= days_from_today(-20)
        };
        let a: Vec<&TransactionDetails> = early.iter().filter(shared).collect();
        let b: Vec<&TransactionDetails> = late.iter().filter(shared).collect();
        assert!(!a.is_empty(), "{account}");
        assert_eq!(a, b, "{account}");
        let single_day = fetch(
            &bank,
            &session,
            account,
            days_from_today(-30),
            days_from_today(-30),
        )
        .await;
        assert!(single_day.iter().all(|t| late.contains(t)));
    }
}

#[tokio::test]
async fn the_same_seed_gives_the_same_data_and_another_seed_other_data() {
    let (first, _) = sandbox(42);
    let (second, _) = sandbox(42);
    let (other, _) = sandbox(7);
    let from = days_from_today(-90);
    let a = fetch(
        &first,
        &login(&first, FINX, "demo").await,
        "giro",
        from,
        today(),
    )
    .await;
    let b = fetch(
        &second,
        &login(&second, FINX, "demo").await,
        "giro",
        from,
        today(),
    )
    .await;
    let c = fetch(
        &other,
        &login(&other, FINX, "demo").await,
        "giro",
        from,
        today(),
    )
    .await;
    assert_eq!(a, b);
    assert_ne!(a, c);
    // The same household at another bank is another household.
    let d = fetch(
        &first,
        &login(&first, "sandbox-90094816", "demo").await,
        "giro",
        from,
        today(),
    )
    .await;
    assert_ne!(a, d);
}

#[tokio::test]
async fn a_90_day_giro_window_looks_like_a_german_current_account() {
    let (bank, _) = sandbox(42);
    let session = login(&bank, FINX, "demo").await;
    let from = days_from_today(-89);
    let txs = fetch(&bank, &session, "giro", from, today()).await;

    let salaries: Vec<_> = txs
        .iter()
        .filter(|t| t.transaction_type == TransactionType::SalaryOrRent)
        .collect();
    assert_eq!(salaries.len(), 3);
    for s in &salaries {
        assert!((280_000..=340_000).contains(&cents(s)));
        assert_eq!(s.counterparty.name.as_deref(), Some("Musterfirma GmbH"));
        assert_eq!(s.sepa_purpose_code.as_deref(), Some("SALA"));
        assert!(
            s.purpose
                .as_deref()
                .is_some_and(|p| p.starts_with("LOHN/GEHALT "))
        );
    }
    let rents: Vec<_> = txs
        .iter()
        .filter(|t| t.counterparty.name.as_deref() == Some("Hausverwaltung Schmidt GmbH"))
        .collect();
    assert_eq!(rents.len(), 3);
    for r in &rents {
        assert_eq!(cents(r), -95_000);
        assert_eq!(r.transaction_type, TransactionType::StandingOrder);
        assert_eq!(r.purpose.as_deref(), Some("Miete Wohnung 3.OG links"));
    }

    let debits: Vec<_> = txs
        .iter()
        .filter(|t| t.transaction_type == TransactionType::DirectDebit)
        .collect();
    assert!(debits.len() >= 15, "{} direct debits", debits.len());
    for t in &debits {
        let ci = t.creditor_id.as_deref().expect("creditor id");
        assert!(is_valid_creditor_id(ci), "{ci}");
        let mandate = t.mandate_reference.as_deref().expect("mandate reference");
        let e2e = t
            .end_to_end_reference
            .as_deref()
            .expect("end-to-end reference");
        let purpose = t.purpose.as_deref().expect("purpose");
        assert!(
            purpose.starts_with(&format!("EREF+{e2e} MREF+{mandate} CRED+{ci} SVWZ+")),
            "{purpose}"
        );
        assert!(matches!(
            t.booking_text.as_deref(),
            Some("FOLGELASTSCHRIFT" | "SEPA-LASTSCHRIFT")
        ));
        assert!(t.counterparty.iban.is_some());
        assert!(cents(t) < 0);
    }
    let electricity: Vec<_> = debits
        .iter()
        .filter(|t| t.counterparty.name.as_deref() == Some("Stadtwerke Musterstadt GmbH"))
        .collect();
    assert_eq!(electricity.len(), 3);
    assert!(electricity.iter().all(|t| cents(t) == -8_400));
    // One mandate per creditor, a new end-to-end reference every month.
    let mandates: HashSet<_> = electricity
        .iter()
        .map(|t| t.mandate_reference.clone())
        .collect();
    let e2es: HashSet<_> = electricity
        .iter()
        .map(|t| t.end_to_end_reference.clone())
        .collect();
    assert_eq!((mandates.len(), e2es.len()), (1, 3));

    let card_payments = txs
        .iter()
        .filter(|t| t.transaction_type == TransactionType::ElectronicCash)
        .count();
    // 2 to 5 a week, plus the bakery every day.
    assert!(
        (24 + 90..=66 + 91).contains(&card_payments),
        "{card_payments} card payments in 13 weeks"
    );
    let cash: Vec<_> = txs
        .iter()
        .filter(|t| t.transaction_type == TransactionType::Atm)
        .collect();
    assert!(cash.len() >= 2);
    assert!(
        cash.iter()
            .all(|t| [-5_000, -10_000, -20_000].contains(&cents(t)))
    );
    assert_eq!(
        txs.iter().filter(|t| t.transaction_type == TransactionType::ChargesOrInterest && cents(t) == -490).count(),
        3
    );
    assert_eq!(
        txs.iter()
            .filter(|t| cents(t) == -20_000 && t.transaction_type == TransactionType::StandingOrder)
            .count(),
        3
    );

    let accounts = bank
        .accounts(&session, &Presence::Unattended)
        .await
        .expect("accounts");
    let mut ibans = 0;
    for iban in accounts
        .iter()
        .filter_map(|a| a.iban.as_ref())
        .chain(txs.iter().filter_map(|t| t.counterparty.iban.as_ref()))
    {
        assert!(Iban::parse(iban.as_str()).is_ok(), "{iban}");
        ibans += 1;
    }
    assert!(ibans > 20);

    let mut ids = HashSet::new();
    for t in &txs {
        assert!(t.amount.amount().scale() <= 2, "{}", t.amount);
        assert_eq!(t.amount.currency().as_str(), "EUR");
        assert!(t.booked_on >= from && t.booked_on <= today());
        assert!(t.value_date >= t.booked_on);
        assert!(
            ids.insert(t.external_id.clone()),
            "duplicate id {}",
            t.external_id
        );
        let prefix = if t.booked { "b-" } else { "p-" };
        assert!(
            t.external_id
                .starts_with(&format!("{prefix}{}-", t.booked_on)),
            "{}",
            t.external_id
        );
    }
    assert!(
        txs.windows(2).all(|w| w[0].booked_on >= w[1].booked_on),
        "newest first"
    );
    let pending: Vec<_> = txs.iter().filter(|t| !t.booked).collect();
    assert!(!pending.is_empty(), "some card payments are still pending");
    for p in pending {
        assert!(p.booked_on >= days_from_today(-1));
        assert_eq!(p.transaction_type, TransactionType::ElectronicCash);
    }
}

#[tokio::test]
async fn the_savings_account_and_the_credit_card_have_their_own_stories() {
    let (bank, _) = sandbox(42);
    let session = login(&bank, FINX, "demo").await;
    // October to today (20 March 2026): six months, one quarter end.
    let from = day(2025, 10, 1);
    let savings = fetch(&bank, &session, "savings", from, today()).await;
    assert_eq!(
        savings
            .iter()
            .filter(|t| cents(t) == 20_000 && t.purpose.as_deref() == Some("Sparrate Tagesgeld"))
            .count(),
        6
    );
    let interest: Vec<_> = savings
        .iter()
        .filter(|t| t.transaction_type == TransactionType::ChargesOrInterest)
        .collect();
    assert_eq!(interest.len(), 1, "interest for Q4 only");
    assert_eq!(interest[0].booked_on, day(2025, 12, 31));
    assert!(cents(interest[0]) > 0);

    let card = fetch(&bank, &session, "card", from, today()).await;
    let settlements: Vec<_> = card
        .iter()
        .filter(|t| {
            t.purpose
                .as_deref()
                .is_some_and(|p| p.starts_with("Ausgleich Kreditkartenabrechnung"))
        })
        .collect();
    assert_eq!(settlements.len(), 6);
    assert!(settlements.iter().all(|t| cents(t) > 0));
    assert!(card.iter().any(|t| {
        t.purpose
            .as_deref()
            .is_some_and(|p| p.contains("Originalbetrag"))
    }));
    assert!(card.iter().any(|t| {
        t.purpose
            .as_deref()
            .is_some_and(|p| p.starts_with("Auslandseinsatzentgelt"))
    }));
    assert!(
        card.iter()
            .filter(|t| t.transaction_type == TransactionType::ElectronicCash)
            .all(|t| cents(t) < 0)
    );
    // Whatever the settlement pays on the card comes off the giro account the same day.
    let giro = fetch(&bank, &session, "giro", from, today()).await;
    for s in settlements {
        assert!(
            giro.iter()
                .any(|g| g.booked_on == s.booked_on && cents(g) == -cents(s))
        );
    }
}

#[tokio::test]
async fn pending_card_payments_book_later_under_a_new_id_and_restaurants_add_the_tip() {
    let (bank, clock) = sandbox(42);
    let session = login(&bank, FINX, "demo").await;
    let (mut seen, mut changed) = (0, 0);
    for offset in 0..45 {
        let now = day(2026, 1, 1) + chrono::Duration::days(offset);
        for account in ["giro", "card"] {
            clock.set(now);
            let before = fetch(
                &bank,
                &session,
                account,
                now - chrono::Duration::days(1),
                now,
            )
            .await;
            clock.set(now + chrono::Duration::days(4));
            let after = fetch(
                &bank,
                &session,
                account,
                now - chrono::Duration::days(1),
                now,
            )
            .await;
            assert!(after.iter().all(|t| t.booked));
            for p in before.iter().filter(|t| !t.booked) {
                seen += 1;
                let rest = p.external_id.strip_prefix("p-").expect("pending id");
                let booked = after
                    .iter()
                    .find(|t| t.external_id == format!("b-{rest}"))
                    .expect("it books");
                assert!(!after.iter().any(|t| t.external_id == p.external_id));
                assert_eq!(
                    (&booked.counterparty, booked.booked_on),
                    (&p.counterparty, p.booked_on)
                );
                if booked.amount != p.amount {
                    changed += 1;
                    // Tips and hotel extras only ever make it dearer.
                    assert!(cents(booked) < cents(p));
                }
            }
        }
    }
    assert!(seen > 10, "{seen} pending payments seen");
    assert!(
        changed > 0 && changed < seen,
        "{changed} of {seen} changed their amount"
    );
}

#[tokio::test]
async fn bigdata_has_exactly_10_000_transactions_over_its_full_history() {
    let (bank, _) = sandbox(42);
    let session = login(&bank, FINX, "bigdata").await;
    let all = fetch(&bank, &session, "giro", days_from_today(-729), today()).await;
    assert_eq!(all.len(), 10_000);
    let earlier = fetch(
        &bank,
        &session,
        "giro",
        days_from_today(-3_000),
        days_from_today(30),
    )
    .await;
    assert_eq!(earlier.len(), 10_000, "history ends 730 days back");
    let ids: HashSet<_> = all.iter().map(|t| t.external_id.as_str()).collect();
    assert_eq!(ids.len(), 10_000);
    assert!(all.iter().all(|t| t.amount.amount().scale() <= 2));
    let quarter = fetch(&bank, &session, "giro", days_from_today(-89), today()).await;
    let booked = quarter.iter().filter(|t| t.booked).count();
    assert!(
        (1_200..=1_260).contains(&booked),
        "{booked} booked in 90 days"
    );
    assert_eq!(
        quarter
            .iter()
            .filter(|t| t.transaction_type == TransactionType::SalaryOrRent)
            .count(),
        3
    );
}

#[tokio::test]
async fn balances_are_plausible_and_stable_during_a_day() {
    let (bank, _) = sandbox(42);
    for institution in ["sandbox-90094815", "sandbox-90094816", "sandbox-90094817"] {
        let session = login(&bank, institution, "demo").await;
        let mut booked = Vec::new();
        for account in ["giro", "savings", "card"] {
            let balances = bank
                .balances(&session, account, &Presence::Unattended)
                .await
                .expect("balances");
            assert_eq!(
                balances,
                bank.balances(&session, account, &Presence::Unattended)
                    .await
                    .expect("balances")
            );
            assert_eq!(balances.len(), 2);
            assert_eq!(balances[0].status, BalanceStatus::Booked);
            assert_eq!(balances[1].status, BalanceStatus::Available);
            assert!(
                balances
                    .iter()
                    .all(|b| b.date == today() && b.amount.amount().scale() <= 2)
            );
            let recent = fetch(&bank, &session, account, days_from_today(-1), today()).await;
            let pending = sum(&recent, |t| !t.booked);
            let available =
                i64::try_from(balances[1].amount.amount() * Decimal::ONE_HUNDRED).expect("cents");
            let booked_cents =
                i64::try_from(balances[0].amount.amount() * Decimal::ONE_HUNDRED).expect("cents");
            if account == "card" {
                assert!(
                    available - booked_cents - pending >= 200_000,
                    "a card limit of at least 2 000 euros"
                );
            } else {
                assert_eq!(available, booked_cents + pending);
            }
            booked.push(booked_cents);
        }
        let [giro, savings, card] = booked[..] else {
            panic!("three balances")
        };
        assert!(
            (50_000..=1_000_000).contains(&giro),
            "{institution} giro {giro}"
        );
        assert!(
            (100_000..=5_000_000).contains(&savings),
            "{institution} savings {savings}"
        );
        assert!((-400_000..0).contains(&card), "{institution} card {card}");
    }
}

#[tokio::test]
async fn balances_reconcile_with_the_transactions_as_the_clock_moves() {
    let (bank, clock) = sandbox(42);
    let session = login(&bank, FINX, "demo").await;
    let big = login(&bank, FINX, "bigdata").await;
    let mut checks = vec![];
    for offset in 0..40 {
        let t1 = day(2026, 1, 25) + chrono::Duration::days(offset);
        checks.push((t1, t1 + chrono::Duration::days(1)));
    }
    checks.push((day(2025, 12, 10), day(2026, 3, 20)));
    for (t1, t2) in checks {
        for (session, account) in [
            (&session, "giro"),
            (&session, "savings"),
            (&session, "card"),
            (&big, "giro"),
        ] {
            let start = t1 - chrono::Duration::days(1);
            clock.set(t1);
            let b1 = bank
                .balances(session, account, &Presence::Unattended)
                .await
                .expect("balances")[0]
                .amount
                .amount();
            let seen1 = sum(&fetch(&bank, session, account, start, t1).await, |t| {
                t.booked
            });
            clock.set(t2);
            let b2 = bank
                .balances(session, account, &Presence::Unattended)
                .await
                .expect("balances")[0]
                .amount
                .amount();
            let seen2 = sum(&fetch(&bank, session, account, start, t2).await, |t| {
                t.booked
            });
            let moved = i64::try_from((b2 - b1) * Decimal::ONE_HUNDRED).expect("cents");
            assert_eq!(moved, seen2 - seen1, "{account} from {t1} to {t2}");
        }
    }
}

#[tokio::test]
async fn windows_are_cut_at_today_and_empty_when_reversed() {
    let (bank, _) = sandbox(42);
    let session = login(&bank, FINX, "demo").await;
    let future = fetch(
        &bank,
        &session,
        "giro",
        days_from_today(-10),
        days_from_today(60),
    )
    .await;
    assert!(!future.is_empty());
    assert!(future.iter().all(|t| t.booked_on <= today()));
    assert!(
        fetch(&bank, &session, "giro", today(), days_from_today(-1))
            .await
            .is_empty()
    );
    assert!(
        fetch(
            &bank,
            &session,
            "giro",
            days_from_today(5),
            days_from_today(9)
        )
        .await
        .is_empty()
    );
    let ancient = fetch(
        &bank,
        &session,
        "giro",
        day(1990, 1, 1),
        days_from_today(-700),
    )
    .await;
    assert!(!ancient.is_empty());
    assert!(ancient.iter().all(|t| t.booked_on >= days_from_today(-729)));
}
