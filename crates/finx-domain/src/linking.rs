//! Pending to booked (issue 14, first part): which transaction a bank reports is one finX
//! already keeps under another bank id.
//!
//! Banks report a card payment as pending, then book it, often under a new id, with a
//! changed amount (a tip, the hotel's extras, a currency conversion) and a changed date.
//! Some also change the id of a booked transaction between two fetches. finX keeps **one**
//! `transaction_id` for such a transaction and reports it as modified.
//!
//! [`link`] decides, for one sync of one account, from what finX keeps in the sync's window
//! and what the bank reported:
//! 1. A reported transaction with the bank id of a kept one *is* that one.
//! 2. Of the kept ones the bank no longer reports and the reported ones finX does not know:
//!    - a kept **pending** one and a reported one (booked, or pending under a new id) are one
//!      when they have the same direction and currency, and
//!      - both carry an end-to-end reference: the references are equal (then amounts and
//!        dates may differ as they like), or
//!      - otherwise the same counterparty (IBAN when both have one, else the name, ignoring
//!        case, spaces and punctuation, one containing the other; with no counterparty on
//!        either side, the same remittance text), the reported amount within
//!        [`TOLERANCE_RATIO`] of the pending one or [`TOLERANCE_MINOR`] (5.00), whichever is
//!        more, and the reported date from [`DAYS_BEFORE`] days before to [`DAYS_AFTER`]
//!        days after the pending one;
//!    - a kept **booked** one and a reported booked one are one when everything but the bank
//!      id is equal (an id the bank changed).
//! 3. Candidates are paired greedily: end-to-end matches first, then the smallest amount
//!    difference, then the smallest date difference, then the kept id; each side once.
//!
//! A kept pending transaction that is neither reported nor paired is gone (reversed, or
//! booked beyond recognition): the store removes it.

use rust_decimal::Decimal;

use std::collections::{HashMap, HashSet};

use crate::Date;
use crate::bank::{Counterparty, Transaction, TransactionDetails};
use crate::ids::{AccountId, TransactionId};

/// The largest relative change of amount from pending to booked: 25 %.
pub const TOLERANCE_RATIO: Decimal = Decimal::from_parts(25, 0, 0, false, 2);
/// The largest absolute change of amount always accepted: 5.00.
pub const TOLERANCE_MINOR: Decimal = Decimal::from_parts(500, 0, 0, false, 2);
/// How many days before the pending date a booking may be dated.
pub const DAYS_BEFORE: i64 = 3;
/// How many days after the pending date a booking may be dated.
pub const DAYS_AFTER: i64 = 10;

/// A transaction finX keeps: its id and what the bank last said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// finX's id.
    pub id: TransactionId,
    /// The bank's description, with the bank id it had.
    pub details: TransactionDetails,
}

/// For each reported transaction, the id of the kept one it is, when it is one.
#[must_use]
pub fn link(kept: &[Kept], reported: &[TransactionDetails]) -> Vec<Option<TransactionId>> {
    let mut out: Vec<Option<TransactionId>> = vec![None; reported.len()];
    let mut used = vec![false; kept.len()];
    // 1. The same bank id (the first kept one with it).
    let mut by_bank_id: HashMap<&str, usize> = HashMap::with_capacity(kept.len());
    for (k, t) in kept.iter().enumerate() {
        by_bank_id
            .entry(t.details.external_id.as_str())
            .or_insert(k);
    }
    for (i, r) in reported.iter().enumerate() {
        if let Some(&k) = by_bank_id.get(r.external_id.as_str()) {
            out[i] = Some(kept[k].id.clone());
            used[k] = true;
        }
    }
    // 2. Candidates among what is left on both sides: every kept pending one (a handful),
    //    and the kept booked ones of the same day and amount (a booked one matches only
    //    when everything but its bank id is equal). Linear in the history, not quadratic.
    let pending: Vec<usize> = (0..kept.len())
        .filter(|&k| !used[k] && !kept[k].details.booked)
        .collect();
    let mut booked: HashMap<(Date, Decimal), Vec<usize>> = HashMap::new();
    for (k, t) in kept.iter().enumerate() {
        if !used[k] && t.details.booked {
            booked
                .entry((t.details.booked_on, t.details.amount.amount()))
                .or_default()
                .push(k);
        }
    }
    let mut candidates: Vec<(u8, Decimal, i64, usize, usize)> = Vec::new();
    for (i, r) in reported.iter().enumerate() {
        if out[i].is_some() {
            continue;
        }
        let same_day = booked
            .get(&(r.booked_on, r.amount.amount()))
            .map_or(&[][..], Vec::as_slice);
        for &k in pending.iter().chain(same_day) {
            let p = &kept[k].details;
            let m = if p.booked {
                same_booked(p, r).then_some(0)
            } else {
                pending_match(p, r)
            };
            if let Some(strength) = m {
                let diff = (r.amount.amount() - p.amount.amount()).abs();
                let days = (r.booked_on - p.booked_on).num_days().abs();
                candidates.push((strength, diff, days, k, i));
            }
        }
    }
    // 3. Strongest and closest first, each side once.
    candidates.sort_by(|a, b| {
        (a.0, a.1, a.2)
            .cmp(&(b.0, b.1, b.2))
            .then_with(|| kept[a.3].id.cmp(&kept[b.3].id))
            .then(a.4.cmp(&b.4))
    });
    for (_, _, _, k, i) in candidates {
        if used[k] || out[i].is_some() {
            continue;
        }
        used[k] = true;
        out[i] = Some(kept[k].id.clone());
    }
    out
}

/// The finX id of every reported transaction of `account`: the kept one's it [`link`]s to,
/// else its own ([`Transaction::id_for`]), and when that one is taken (by a kept
/// transaction now under another bank id, or by another reported one) a fresh id derived
/// from it. No two reported transactions get the same id.
#[must_use]
pub fn assign(
    account: &AccountId,
    kept: &[Kept],
    reported: &[TransactionDetails],
) -> Vec<TransactionId> {
    let links = link(kept, reported);
    let mut taken: HashSet<TransactionId> = links.iter().flatten().cloned().collect();
    // Kept ids not linked here still belong to their transactions.
    taken.extend(kept.iter().map(|k| k.id.clone()));
    let mut out = Vec::with_capacity(reported.len());
    for (r, l) in reported.iter().zip(links) {
        let id = match l {
            Some(id) => id,
            None => {
                let mut id = Transaction::id_for(account, &r.external_id);
                let mut n = 1u32;
                while taken.contains(&id) {
                    n += 1;
                    id = TransactionId::derive(&[account.as_str(), &r.external_id, &n.to_string()]);
                }
                taken.insert(id.clone());
                id
            }
        };
        out.push(id);
    }
    out
}

/// Whether a reported transaction is the kept pending one `p`: `Some(0)` by end-to-end
/// reference, `Some(1)` by counterparty, amount and date, `None` otherwise.
fn pending_match(p: &TransactionDetails, r: &TransactionDetails) -> Option<u8> {
    let (pa, ra) = (p.amount.amount(), r.amount.amount());
    if p.amount.currency() != r.amount.currency() || pa.is_sign_negative() != ra.is_sign_negative()
    {
        return None;
    }
    if let (Some(a), Some(b)) = (reference(p), reference(r)) {
        return (a == b).then_some(0);
    }
    if !same_party(p, r) {
        return None;
    }
    let limit = (pa.abs() * TOLERANCE_RATIO).max(TOLERANCE_MINOR);
    let days = (r.booked_on - p.booked_on).num_days();
    ((ra - pa).abs() <= limit && (-DAYS_BEFORE..=DAYS_AFTER).contains(&days)).then_some(1)
}

/// A booked transaction the bank reports under a new id: everything else equal.
fn same_booked(p: &TransactionDetails, r: &TransactionDetails) -> bool {
    r.booked
        && TransactionDetails {
            external_id: r.external_id.clone(),
            ..p.clone()
        } == *r
}

/// An end-to-end reference worth comparing (SEPA's placeholder is not one).
fn reference(t: &TransactionDetails) -> Option<&str> {
    t.end_to_end_reference
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty() && !r.eq_ignore_ascii_case("NOTPROVIDED"))
}

/// Letters and digits only, lower case: "DB Vertrieb GmbH" and "DB VERTRIEB GMBH/" agree.
fn fold(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

fn same_party(p: &TransactionDetails, r: &TransactionDetails) -> bool {
    let (a, b): (&Counterparty, &Counterparty) = (&p.counterparty, &r.counterparty);
    if let (Some(x), Some(y)) = (&a.iban, &b.iban) {
        return x == y;
    }
    match (a.name.as_deref().map(fold), b.name.as_deref().map(fold)) {
        (Some(x), Some(y)) if !x.is_empty() && !y.is_empty() => {
            x == y || x.contains(&y) || y.contains(&x)
        }
        (None, None) => {
            let (x, y) = (
                p.purpose.as_deref().map(fold).unwrap_or_default(),
                r.purpose.as_deref().map(fold).unwrap_or_default(),
            );
            !x.is_empty() && x == y
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use proptest::prelude::*;

    use super::*;
    use crate::bank::TransactionType;
    use crate::money::{Currency, Money};

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, d).expect("date")
    }

    fn tx(id: &str, cents: i64, d: u32, booked: bool, name: &str) -> TransactionDetails {
        TransactionDetails {
            external_id: id.into(),
            amount: Money::new(Decimal::new(cents, 2), Currency::EUR),
            counterparty: Counterparty {
                name: Some(name.into()),
                ..Counterparty::default()
            },
            purpose: Some(format!("{name} Kartenzahlung")),
            booked_on: day(d),
            value_date: day(d),
            booked,
            booking_text: Some("KARTENZAHLUNG".into()),
            transaction_type: TransactionType::ElectronicCash,
            creditor_id: None,
            mandate_reference: None,
            end_to_end_reference: None,
            sepa_purpose_code: None,
            bank_transaction_code: None,
            mcc: None,
        }
    }

    fn kept(id: &str, t: TransactionDetails) -> Kept {
        Kept {
            id: TransactionId::derive(&[id]),
            details: t,
        }
    }

    #[test]
    fn a_pending_payment_booked_with_a_tip_under_a_new_id_keeps_its_id() {
        let k = vec![kept("T1", tx("p-1", -4_250, 10, false, "Trattoria Roma"))];
        let r = vec![tx("b-1", -4_800, 11, true, "TRATTORIA ROMA")];
        assert_eq!(link(&k, &r), vec![Some(k[0].id.clone())]);
    }

    #[test]
    fn too_different_an_amount_date_party_or_direction_is_another_transaction() {
        let p = tx("p-1", -4_000, 10, false, "Cafe");
        let k = vec![kept("T1", p.clone())];
        for other in [
            tx("b-1", -6_000, 10, true, "Cafe"),   // +50 %
            tx("b-1", -4_000, 25, true, "Cafe"),   // 15 days later
            tx("b-1", -4_000, 6, true, "Cafe"),    // 4 days earlier
            tx("b-1", -4_000, 10, true, "Bakery"), // another party
            tx("b-1", 4_000, 10, true, "Cafe"),    // a credit
        ] {
            assert_eq!(
                link(&k, std::slice::from_ref(&other)),
                vec![None],
                "{other:?}"
            );
        }
        // Small amounts may change by up to 5.00 whatever the ratio.
        let small = vec![kept("T2", tx("p-2", -300, 10, false, "Kiosk"))];
        assert!(link(&small, &[tx("b-2", -750, 10, true, "Kiosk")])[0].is_some());
    }

    #[test]
    fn end_to_end_references_decide_when_both_have_one() {
        let mut p = tx("p-1", -10_000, 10, false, "Hotel Adler");
        p.end_to_end_reference = Some("E2E-1".into());
        let mut same = tx("b-1", -19_000, 12, true, "Hotel Adler GmbH");
        same.end_to_end_reference = Some("E2E-1".into());
        let mut other = tx("b-2", -10_000, 10, true, "Hotel Adler");
        other.end_to_end_reference = Some("E2E-2".into());
        let k = vec![kept("T1", p)];
        assert_eq!(
            link(&k, &[other.clone(), same.clone()]),
            vec![None, Some(k[0].id.clone())]
        );
        let mut placeholder = same;
        placeholder.end_to_end_reference = Some("NOTPROVIDED".into());
        assert_eq!(
            link(&k, &[placeholder]),
            vec![None],
            "+90 % without a usable reference"
        );
    }

    #[test]
    fn two_similar_payments_pair_by_the_closest_amount_each_once() {
        let k = vec![
            kept("T1", tx("p-1", -1_000, 10, false, "Bakery")),
            kept("T2", tx("p-2", -1_200, 10, false, "Bakery")),
        ];
        let r = vec![
            tx("b-2", -1_200, 11, true, "Bakery"),
            tx("b-1", -1_000, 11, true, "Bakery"),
            tx("b-3", -1_100, 11, true, "Bakery"),
        ];
        let l = link(&k, &r);
        assert_eq!(l[0], Some(k[1].id.clone()));
        assert_eq!(l[1], Some(k[0].id.clone()));
        assert_eq!(l[2], None, "a third payment is new");
    }

    #[test]
    fn a_booked_transaction_under_a_changed_bank_id_keeps_its_id() {
        let b = tx("b-1", -2_500, 10, true, "Stadtwerke");
        let k = vec![kept("T1", b.clone())];
        let moved = TransactionDetails {
            external_id: "b-1-new".into(),
            ..b.clone()
        };
        assert_eq!(link(&k, &[moved]), vec![Some(k[0].id.clone())]);
        let changed = TransactionDetails {
            external_id: "b-2".into(),
            amount: Money::new(Decimal::new(-2_600, 2), Currency::EUR),
            ..b
        };
        assert_eq!(
            link(&k, &[changed]),
            vec![None],
            "booked amounts do not move"
        );
    }

    #[test]
    fn a_bank_id_reported_again_after_it_was_linked_away_gets_a_fresh_id() {
        let account = AccountId::derive(&["acc"]);
        // X was made for pending p-1 and now holds its booking b-1.
        let x = Transaction::id_for(&account, "p-1");
        let k = vec![Kept {
            id: x.clone(),
            details: tx("b-1", -4_800, 11, true, "Trattoria"),
        }];
        // The bank lists the booking and, for a while, the pending one too.
        let r = vec![
            tx("b-1", -4_800, 11, true, "Trattoria"),
            tx("p-1", -4_250, 10, false, "Trattoria"),
        ];
        let ids = assign(&account, &k, &r);
        assert_eq!(ids[0], x);
        assert_ne!(ids[1], x, "never two transactions under one id");
        assert_eq!(assign(&account, &k, &r), ids, "stable from sync to sync");
    }

    /// The rules written the plain way (every reported one against every kept one): the
    /// model `link`'s indexed version must agree with.
    fn link_model(kept: &[Kept], reported: &[TransactionDetails]) -> Vec<Option<TransactionId>> {
        let mut out: Vec<Option<TransactionId>> = vec![None; reported.len()];
        let mut used = vec![false; kept.len()];
        for (i, r) in reported.iter().enumerate() {
            if let Some(k) = kept
                .iter()
                .position(|k| k.details.external_id == r.external_id)
            {
                out[i] = Some(kept[k].id.clone());
                used[k] = true;
            }
        }
        let mut candidates = Vec::new();
        for (i, r) in reported.iter().enumerate() {
            for (k, p) in kept.iter().enumerate() {
                if out[i].is_some() || used[k] {
                    continue;
                }
                let p = &p.details;
                let m = if p.booked {
                    same_booked(p, r).then_some(0)
                } else {
                    pending_match(p, r)
                };
                if let Some(strength) = m {
                    let diff = (r.amount.amount() - p.amount.amount()).abs();
                    let days = (r.booked_on - p.booked_on).num_days().abs();
                    candidates.push((strength, diff, days, k, i));
                }
            }
        }
        candidates.sort_by(|a, b| {
            (a.0, a.1, a.2)
                .cmp(&(b.0, b.1, b.2))
                .then_with(|| kept[a.3].id.cmp(&kept[b.3].id))
                .then(a.4.cmp(&b.4))
        });
        for (_, _, _, k, i) in candidates {
            if !used[k] && out[i].is_none() {
                used[k] = true;
                out[i] = Some(kept[k].id.clone());
            }
        }
        out
    }

    proptest! {
        /// The indexed `link` decides exactly as the plain model, booked look-alikes under
        /// new bank ids included.
        #[test]
        fn link_agrees_with_the_plain_model(
            ks in prop::collection::vec((-300i64..300, 1u32..6, any::<bool>(), 0usize..2), 0..14),
            rs in prop::collection::vec((-300i64..300, 1u32..6, any::<bool>(), 0usize..2, 0usize..20), 0..14),
        ) {
            let names = ["A", "B"];
            let kept_list: Vec<Kept> = ks.iter().enumerate().map(|(n, (c, d, b, p))| {
                kept(&format!("K{n}"), tx(&format!("k{n}"), *c, *d, *b, names[*p]))
            }).collect();
            let reported: Vec<TransactionDetails> = rs.iter().enumerate().map(|(n, (c, d, b, p, same))| {
                let id = if *same < kept_list.len() { format!("k{same}") } else { format!("r{n}") };
                // Some reported ones are a kept one exactly, under a new bank id.
                match kept_list.get(same.saturating_sub(10)) {
                    Some(k) if *same >= 10 && *b => TransactionDetails { external_id: id, ..k.details.clone() },
                    _ => tx(&id, *c, *d, *b, names[*p]),
                }
            }).collect();
            prop_assert_eq!(link(&kept_list, &reported), link_model(&kept_list, &reported));
        }

        /// Whatever is kept and reported: no kept id is given twice, a reported bank id that
        /// is kept keeps its own id, and pairing never crosses directions.
        #[test]
        fn each_kept_id_is_given_at_most_once(
            ks in prop::collection::vec((-5_000i64..5_000, 1u32..28, any::<bool>(), 0usize..3), 0..12),
            rs in prop::collection::vec((-5_000i64..5_000, 1u32..28, any::<bool>(), 0usize..3, 0usize..16), 0..12),
        ) {
            let names = ["A", "B", "C"];
            let kept_list: Vec<Kept> = ks.iter().enumerate().map(|(n, (c, d, b, p))| {
                kept(&format!("K{n}"), tx(&format!("k{n}"), *c, *d, *b, names[*p]))
            }).collect();
            let reported: Vec<TransactionDetails> = rs.iter().enumerate().map(|(n, (c, d, b, p, same))| {
                // Some reported ones carry a kept bank id.
                let id = if *same < kept_list.len() { format!("k{same}") } else { format!("r{n}") };
                tx(&id, *c, *d, *b, names[*p])
            }).collect();
            let l = link(&kept_list, &reported);
            let given: Vec<&TransactionId> = l.iter().flatten().collect();
            let unique: std::collections::HashSet<&TransactionId> = given.iter().copied().collect();
            // Two reported transactions may carry one kept bank id (a buggy bank); beyond
            // that, every kept id goes to one reported transaction.
            for (i, r) in reported.iter().enumerate() {
                if let Some(k) = kept_list.iter().find(|k| k.details.external_id == r.external_id) {
                    prop_assert_eq!(l[i].as_ref(), Some(&k.id));
                } else if let Some(id) = &l[i] {
                    let k = kept_list.iter().find(|k| &k.id == id).expect("a kept id");
                    prop_assert_eq!(k.details.amount.amount().is_sign_negative(), r.amount.amount().is_sign_negative());
                    prop_assert!(!reported.iter().any(|o| o.external_id == k.details.external_id), "only vanished ones pair");
                    prop_assert_eq!(given.iter().filter(|g| **g == id).count(), 1);
                }
            }
            prop_assert!(unique.len() <= kept_list.len());
        }
    }
}
