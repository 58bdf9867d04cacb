//! The sandbox's bookkeeping: which transactions happen on which day, and the balances that
//! follow from them.
//!
//! Every transaction is a pure function of (seed, bank, data profile, account, date): each day
//! is generated on its own from random streams keyed by exactly those, so any two windows
//! agree on the days they share, and two instances with the same seed agree on everything.
//! Only the *view* depends on today: card payments of today and yesterday are reported as
//! pending.
//!
//! Balances are kept plausible without drifting: the giro account is topped up from or swept
//! into the savings account on its last business day of every month so that it closes the
//! month at a balance chosen for that month; the credit card is settled monthly from the giro
//! account. Each balance is therefore a checkpoint (a month end) plus the transactions since,
//! and it reconciles exactly with the transactions reported.

use chrono::{Datelike, NaiveDate, Weekday};
use finx_domain::Date;
use finx_domain::bank::{Counterparty, TransactionDetails, TransactionType};
use finx_domain::money::{Currency, Money};
use finx_domain::reference::Iban;
use rust_decimal::Decimal;

use crate::calendar::{
    dates, is_business_day, is_due, last_business_day, month_end, month_start, previous_month,
    quarter, shift,
};
use crate::catalog::{AccountKind, Bank, CARD_LAST4, CARD_NAME, HOLDER, Profile};
use crate::rng::Rng;
use crate::sepa::{creditor_id, german_iban};
use crate::tables::{
    CARD_MERCHANTS, CREDITORS, CUSTOMERS, Category, Creditor, EMPLOYER, FRIEND_REASONS, FRIENDS,
    GIRO_MERCHANTS, LANDLORD, Merchant, OTHER_BANKS, Party, SMALL_MERCHANTS,
};

/// How many days of history the sandbox reports, today included.
pub(crate) const HISTORY_DAYS: i64 = 730;

/// How many days the `moving` login's bank day starts behind the real one; it catches up
/// one day per sync.
pub(crate) const MOVING_LAG_DAYS: i64 = 60;

/// How many transactions the `bigdata` giro account has in any [`HISTORY_DAYS`] days.
pub(crate) const BIGDATA_TRANSACTIONS: i64 = 10_000;

/// The day of the month the credit card is settled (next business day when needed).
const SETTLEMENT_DAY: u32 = 20;

/// The day the savings account's opening balance refers to.
const SAVINGS_ANCHOR: (i32, u32, u32) = (2024, 1, 1);

/// Euro cents as an amount with exactly two decimals.
pub(crate) fn euros(cents: i64) -> Decimal {
    Decimal::new(cents, 2)
}

/// Euro cents in German notation, "1.234,50".
fn german(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    let whole = (abs / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push('.');
        }
        grouped.push(c);
    }
    format!("{sign}{grouped},{:02}", abs % 100)
}

/// "03/2026".
fn month_label(date: Date) -> String {
    format!("{:02}/{}", date.month(), date.year())
}

/// One transaction as it finally books.
pub(crate) struct Entry {
    /// Final amount in cents, negative for debits.
    cents: i64,
    /// For card payments: the amount reported while pending (on its day and the next).
    pending_cents: Option<i64>,
    /// Days from booking to value date.
    value_days: i64,
    name: Option<String>,
    iban: Option<Iban>,
    bic: Option<&'static str>,
    purpose: String,
    booking_text: &'static str,
    kind: TransactionType,
    creditor_id: Option<String>,
    mandate: Option<String>,
    e2e: Option<String>,
    purpose_code: Option<&'static str>,
    /// Reported while pending, then reversed: it never books (its final amount is 0).
    reversed: bool,
}

impl Entry {
    fn new(cents: i64, kind: TransactionType, booking_text: &'static str, purpose: String) -> Self {
        Self {
            cents,
            pending_cents: None,
            value_days: 0,
            name: None,
            iban: None,
            bic: None,
            purpose,
            booking_text,
            kind,
            creditor_id: None,
            mandate: None,
            e2e: None,
            purpose_code: None,
            reversed: false,
        }
    }

    fn with_party(mut self, party: &Party) -> Self {
        self.name = Some(party.name.to_owned());
        self.iban = german_iban(party.bank_code, party.account);
        self.bic = Some(party.bic);
        self
    }

    fn with_account(mut self, name: &str, iban: Option<Iban>, bic: &'static str) -> Self {
        self.name = Some(name.to_owned());
        self.iban = iban;
        self.bic = Some(bic);
        self
    }

    fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    /// Whether it is reported as pending when today is `today` and it books on `date`.
    fn is_pending(&self, date: Date, today: Date) -> bool {
        self.pending_cents.is_some() && date <= today && shift(today, -1).is_some_and(|y| y <= date)
    }

    /// The transaction as reported on `today`.
    fn report(self, date: Date, slot: usize, today: Date) -> TransactionDetails {
        let pending = self.is_pending(date, today);
        let (prefix, cents) = if pending {
            ("p", self.pending_cents.unwrap_or(self.cents))
        } else {
            ("b", self.cents)
        };
        let counterparty = Counterparty {
            name: self.name,
            account_number: self
                .iban
                .as_ref()
                .and_then(Iban::german_account_number)
                .map(str::to_owned),
            bank_code: self
                .iban
                .as_ref()
                .and_then(Iban::bank_code)
                .map(str::to_owned),
            iban: self.iban,
            bic: self.bic.map(str::to_owned),
        };
        TransactionDetails {
            external_id: format!("{prefix}-{date}-{slot}"),
            amount: Money::new(euros(cents), Currency::EUR),
            counterparty,
            purpose: Some(self.purpose),
            booked_on: date,
            value_date: shift(date, self.value_days).unwrap_or(date),
            booked: !pending,
            booking_text: Some(self.booking_text.to_owned()),
            transaction_type: self.kind,
            creditor_id: self.creditor_id,
            mandate_reference: self.mandate,
            end_to_end_reference: self.e2e,
            sepa_purpose_code: self.purpose_code.map(str::to_owned),
            bank_transaction_code: bank_transaction_code(self.kind, cents > 0).map(str::to_owned),
            mcc: None,
        }
    }
}

/// Booked balance and the sum of pending amounts, in cents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Balances {
    /// Booked balance.
    pub(crate) booked: i64,
    /// Sum of pending amounts (negative for pending card payments).
    pub(crate) pending: i64,
}

/// The books of one login's data at one bank.
pub(crate) struct Ledger {
    seed: u64,
    bank: &'static Bank,
    profile: Profile,
}

impl Ledger {
    /// The books of `profile` at `bank` under `seed`.
    pub(crate) fn new(seed: u64, bank: &'static Bank, profile: Profile) -> Self {
        Self {
            seed,
            bank,
            profile,
        }
    }

    /// A random stream for one purpose on one account (and day, when given).
    fn rng(&self, account: AccountKind, date: Option<Date>, label: &str) -> Rng {
        let date = date.map(|d| d.to_string()).unwrap_or_default();
        Rng::keyed(&[
            b"finx-bank-sandbox/v1",
            &self.seed.to_le_bytes(),
            self.bank.code.as_bytes(),
            self.profile.key().as_bytes(),
            account.external_id().as_bytes(),
            date.as_bytes(),
            label.as_bytes(),
        ])
    }

    fn giro_number(&self) -> &'static str {
        match self.profile {
            Profile::Household | Profile::Moving => self.bank.giro_number,
            Profile::BigData => self.bank.bigdata_giro_number,
        }
    }

    fn giro_owner(&self) -> &'static str {
        match self.profile {
            Profile::Household | Profile::Moving => self.bank.giro_owner,
            Profile::BigData => HOLDER,
        }
    }

    fn giro_iban(&self) -> Option<Iban> {
        german_iban(self.bank.code, self.giro_number())
    }

    fn savings_iban(&self) -> Option<Iban> {
        german_iban(self.bank.code, self.bank.savings_number)
    }

    /// The transactions of `account` from `from` to `to` as reported on `today`, newest day
    /// first. `to` is capped at today and `from` at the start of the history.
    pub(crate) fn transactions(
        &self,
        account: AccountKind,
        from: Date,
        to: Date,
        today: Date,
    ) -> Vec<TransactionDetails> {
        let to = to.min(today);
        let from = shift(today, 1 - HISTORY_DAYS).map_or(from, |start| from.max(start));
        if from > to {
            return Vec::new();
        }
        let days: Vec<Date> = dates(from, to).collect();
        let mut out = Vec::new();
        for date in days.into_iter().rev() {
            for (slot, entry) in self.entries(account, date).into_iter().enumerate() {
                // A reversed payment shows only while pending; then it is gone.
                if entry.reversed && !entry.is_pending(date, today) {
                    continue;
                }
                out.push(entry.report(date, slot, today));
            }
        }
        out
    }

    /// The balances of `account` at the end of `today`.
    pub(crate) fn balances(&self, account: AccountKind, today: Date) -> Balances {
        let Some(settled) = shift(today, -2) else {
            return Balances::default();
        };
        // Everything up to `settled` has booked, so a checkpoint there or earlier is exact.
        let checkpoint = match account {
            AccountKind::Giro => self.giro_checkpoint(settled),
            AccountKind::Card => card_checkpoint_date(settled)
                .map(|c| (c, self.card_month_total(c.year(), c.month()))),
            AccountKind::Savings => return self.savings_balances(today),
        };
        let Some((date, cents)) = checkpoint else {
            return Balances::default();
        };
        let mut balances = self.activity(account, date, today);
        balances.booked += cents;
        balances
    }

    /// Booked and pending sums of the transactions after `after` up to `today`.
    fn activity(&self, account: AccountKind, after: Date, today: Date) -> Balances {
        let mut balances = Balances::default();
        let Some(first) = after.succ_opt() else {
            return balances;
        };
        for date in dates(first, today) {
            for entry in self.entries(account, date) {
                if entry.is_pending(date, today) {
                    balances.pending += entry.pending_cents.unwrap_or(entry.cents);
                } else {
                    balances.booked += entry.cents;
                }
            }
        }
        balances
    }

    /// Every transaction of `account` that books on `date`, in final form.
    pub(crate) fn entries(&self, account: AccountKind, date: Date) -> Vec<Entry> {
        match account {
            AccountKind::Giro => {
                let mut entries = self.giro_without_sweep(date);
                if is_month_close(date) {
                    entries.push(self.sweep(date));
                }
                entries
            }
            AccountKind::Savings => self.savings_day(date),
            AccountKind::Card => {
                let mut entries = self.card_purchases(date);
                if self.profile == Profile::Household && is_due(date, SETTLEMENT_DAY) {
                    entries.extend(self.card_settlement_credit(date));
                }
                entries
            }
        }
    }

    // ----- Giro account -------------------------------------------------------------------

    /// The giro account's balance after the month-end sweep of `year`-`month`.
    fn giro_target(&self, year: i32, month: u32) -> i64 {
        let first = NaiveDate::from_ymd_opt(year, month, 1);
        self.rng(AccountKind::Giro, first, "month-end balance")
            .between(420_000, 620_000)
    }

    /// The last month close on or before `date`, and the balance after it.
    fn giro_checkpoint(&self, date: Date) -> Option<(Date, i64)> {
        let close = last_business_day(date.year(), date.month())?;
        let close = if close <= date {
            close
        } else {
            let (y, m) = previous_month(date.year(), date.month());
            last_business_day(y, m)?
        };
        Some((close, self.giro_target(close.year(), close.month())))
    }

    /// The sweep that brings the giro account to its month-end balance on `date`, a month
    /// close: target minus last month's target minus everything booked since last month's
    /// close.
    fn sweep(&self, date: Date) -> Entry {
        let (py, pm) = previous_month(date.year(), date.month());
        let net: i64 = last_business_day(py, pm)
            .and_then(|prev| prev.succ_opt())
            .map(|first| {
                dates(first, date)
                    .flat_map(|d| self.giro_without_sweep(d))
                    .map(|e| e.cents)
                    .sum()
            })
            .unwrap_or(0);
        let cents = self.giro_target(date.year(), date.month()) - self.giro_target(py, pm) - net;
        let purpose = if cents < 0 {
            "Umbuchung auf Tagesgeld"
        } else {
            "Umbuchung vom Tagesgeld"
        };
        Entry::new(
            cents,
            TransactionType::Transfer,
            "UMBUCHUNG",
            purpose.to_owned(),
        )
        .with_account(HOLDER, self.savings_iban(), self.bank.bic)
    }

    /// The giro account's day before the month-end sweep.
    fn giro_without_sweep(&self, date: Date) -> Vec<Entry> {
        let mut entries = self.giro_base(date);
        if self.profile == Profile::BigData {
            let reserved = entries.len() + usize::from(is_month_close(date));
            let fillers = bigdata_count(date).saturating_sub(reserved);
            self.bigdata_fillers(date, fillers, &mut entries);
        }
        entries
    }

    /// The household's giro day: standing orders, direct debits, card payments, cash,
    /// transfers from friends, salary and fees.
    fn giro_base(&self, date: Date) -> Vec<Entry> {
        let mut out = Vec::new();
        if is_due(date, 1) {
            out.push(
                Entry {
                    purpose_code: Some("RENT"),
                    ..Entry::new(
                        -95_000,
                        TransactionType::StandingOrder,
                        "DAUERAUFTRAG",
                        "Miete Wohnung 3.OG links".into(),
                    )
                }
                .with_party(&LANDLORD),
            );
        }
        if is_due(date, 2) {
            out.push(
                Entry::new(
                    -20_000,
                    TransactionType::StandingOrder,
                    "DAUERAUFTRAG",
                    "Sparrate Tagesgeld".into(),
                )
                .with_account(HOLDER, self.savings_iban(), self.bank.bic),
            );
        }
        for creditor in &CREDITORS {
            let in_month = creditor.months.is_empty() || creditor.months.contains(&date.month());
            if in_month && is_due(date, creditor.day) {
                out.push(self.direct_debit(creditor, date));
            }
        }
        if self.profile == Profile::Household && is_due(date, SETTLEMENT_DAY) {
            let (py, pm) = previous_month(date.year(), date.month());
            let total = self.card_month_total(py, pm);
            if total != 0 {
                let statement = month_start(date).and_then(|d| d.pred_opt()).unwrap_or(date);
                let purpose = format!(
                    "{CARD_NAME} ****{CARD_LAST4} Abrechnung {}",
                    month_label(statement)
                );
                out.push(Entry {
                    value_days: 1,
                    ..Entry::new(
                        total,
                        TransactionType::Transfer,
                        "KREDITKARTENABRECHNUNG",
                        purpose,
                    )
                    .named(self.bank.name)
                });
            }
        }
        self.giro_card_payments(date, &mut out);
        self.cash(date, &mut out);
        self.friend_transfer(date, &mut out);
        if is_month_close(date) {
            out.push(self.salary(date));
            if self.bank.monthly_fee_cents > 0 {
                let purpose = format!("Kontoführungsentgelt {}", month_label(date));
                out.push(
                    Entry::new(
                        -self.bank.monthly_fee_cents,
                        TransactionType::ChargesOrInterest,
                        "ENTGELTABSCHLUSS",
                        purpose,
                    )
                    .named(self.bank.name),
                );
            }
        }
        out
    }

    fn direct_debit(&self, creditor: &Creditor, date: Date) -> Entry {
        let ci = creditor_id("DE", creditor.national_id);
        let mandate = format!(
            "{}{}",
            creditor.mandate_prefix,
            self.rng(
                AccountKind::Giro,
                None,
                &format!("mandate {}", creditor.party.name)
            )
            .digits(9)
        );
        let e2e = format!(
            "{}{}{:02}{}",
            creditor.e2e_prefix,
            date.year(),
            date.month(),
            self.rng(
                AccountKind::Giro,
                Some(date),
                &format!("e2e {}", creditor.party.name)
            )
            .digits(8)
        );
        let period = if creditor.quarterly {
            format!("Q{}/{}", quarter(date), date.year())
        } else {
            month_label(date)
        };
        let purpose = format!(
            "EREF+{e2e} MREF+{mandate} CRED+{ci} SVWZ+{} {period}",
            creditor.what
        );
        Entry {
            creditor_id: Some(ci),
            mandate: Some(mandate),
            e2e: Some(e2e),
            purpose_code: creditor.purpose_code,
            ..Entry::new(
                -creditor.cents,
                TransactionType::DirectDebit,
                creditor.booking_text,
                purpose,
            )
        }
        .with_party(&creditor.party)
    }

    fn salary(&self, date: Date) -> Entry {
        let year_start = NaiveDate::from_ymd_opt(date.year(), 1, 1);
        let cents = self
            .rng(AccountKind::Giro, year_start, "salary")
            .between(280_000, 340_000);
        Entry {
            e2e: Some(format!("LOHN{}{:02}PNR004711", date.year(), date.month())),
            purpose_code: Some("SALA"),
            ..Entry::new(
                cents,
                TransactionType::SalaryOrRent,
                "GUTSCHRIFT",
                format!("LOHN/GEHALT {}", month_label(date)),
            )
        }
        .with_party(&EMPLOYER)
    }

    /// Two to five girocard payments a week; shops are closed on Sundays and holidays. On
    /// top, the morning stop at the bakery, every day (German bakeries open on Sundays),
    /// so the last two days always hold pending card payments.
    fn giro_card_payments(&self, date: Date, out: &mut Vec<Entry>) {
        let mut rng = self.rng(AccountKind::Giro, Some(date), "girocard");
        let count = match rng.below(100) {
            0..=59 => 0,
            60..=89 => 1,
            _ => 2,
        };
        let shops_open = is_business_day(date) || date.weekday() == Weekday::Sat;
        for _ in 0..count {
            let merchant = pick_merchant(&mut rng, &GIRO_MERCHANTS, shops_open);
            let (hour, minute) = (
                rng.between(merchant.opens(), merchant.closes()),
                rng.between(0, 59),
            );
            let purpose = format!(
                "{}//{}/{} {date}T{hour:02}:{minute:02} Debitk.1 2029-12",
                merchant.name, merchant.city, merchant.country
            );
            out.push(card_entry(&mut rng, merchant, "KARTENZAHLUNG", purpose).named(merchant.name));
        }
        let bakery = &SMALL_MERCHANTS[0];
        let minute = rng.between(0, 59);
        let purpose = format!(
            "{}//{}/{} {date}T07:{minute:02} Debitk.1 2029-12",
            bakery.name, bakery.city, bakery.country
        );
        let mut entry = card_entry(&mut rng, bakery, "KARTENZAHLUNG", purpose).named(bakery.name);
        if self.profile == Profile::Moving && date.ordinal() % 5 == 0 {
            // The `moving` login's bakery reverses one payment in five days.
            entry.reversed = true;
            entry.cents = 0;
        }
        out.push(entry);
    }

    /// Cash from the bank's own machines, about twice a month.
    fn cash(&self, date: Date, out: &mut Vec<Entry>) {
        let mut rng = self.rng(AccountKind::Giro, Some(date), "atm");
        if !rng.chance(65) {
            return;
        }
        let cents = *rng.pick(&[5_000, 10_000, 10_000, 20_000]);
        let machine = rng.between(1, 40);
        let (hour, minute) = (rng.between(7, 22), rng.between(0, 59));
        let purpose = format!(
            "GA NR{machine:08} BLZ{} {:02}.{:02}/{hour:02}.{minute:02}UHR Musterstadt",
            self.bank.code,
            date.day(),
            date.month()
        );
        out.push(
            Entry::new(-cents, TransactionType::Atm, "BARGELDAUSZAHLUNG", purpose)
                .named(&format!("Geldautomat {}", self.bank.name)),
        );
    }

    /// Now and then a friend pays something back.
    fn friend_transfer(&self, date: Date, out: &mut Vec<Entry>) {
        let mut rng = self.rng(AccountKind::Giro, Some(date), "friend");
        if !rng.chance(40) {
            return;
        }
        let friend = rng.pick(&FRIENDS);
        let (reason, min, max) = *rng.pick(&FRIEND_REASONS);
        let cents = rng.between(min, max);
        out.push(
            Entry::new(
                cents,
                TransactionType::Transfer,
                "GUTSCHRIFT",
                reason.to_owned(),
            )
            .with_party(friend),
        );
    }

    /// The `bigdata` account's extra traffic: small card payments and customers paying
    /// for pottery.
    fn bigdata_fillers(&self, date: Date, count: usize, out: &mut Vec<Entry>) {
        let mut rng = self.rng(AccountKind::Giro, Some(date), "bigdata");
        let shops_open = is_business_day(date) || date.weekday() == Weekday::Sat;
        for _ in 0..count {
            if rng.chance(300) {
                let customer = *rng.pick(&CUSTOMERS);
                let (code, bic) = *rng.pick(&OTHER_BANKS);
                let iban = german_iban(code, &rng.digits(10));
                let cents = rng.between(990, 3990);
                let purpose = format!(
                    "Rechnung RE-{}-{} Keramikwerkstatt Erika",
                    date.year(),
                    rng.digits(5)
                );
                out.push(
                    Entry::new(cents, TransactionType::Transfer, "GUTSCHRIFT", purpose)
                        .with_account(customer, iban, bic),
                );
            } else {
                let merchant = pick_merchant(&mut rng, &SMALL_MERCHANTS, shops_open);
                let (hour, minute) = (
                    rng.between(merchant.opens(), merchant.closes()),
                    rng.between(0, 59),
                );
                let purpose = format!(
                    "{}//{}/{} {date}T{hour:02}:{minute:02} Debitk.1 2029-12",
                    merchant.name, merchant.city, merchant.country
                );
                out.push(
                    card_entry(&mut rng, merchant, "KARTENZAHLUNG", purpose).named(merchant.name),
                );
            }
        }
    }

    // ----- Savings account ----------------------------------------------------------------

    fn savings_day(&self, date: Date) -> Vec<Entry> {
        let mut out = Vec::new();
        let giro = self.giro_iban();
        if is_due(date, 2) {
            out.push(
                Entry::new(
                    20_000,
                    TransactionType::Transfer,
                    "GUTSCHRIFT",
                    "Sparrate Tagesgeld".into(),
                )
                .with_account(self.giro_owner(), giro.clone(), self.bank.bic),
            );
        }
        if date.month() % 3 == 0 && is_month_close(date) {
            let cents = self
                .rng(AccountKind::Savings, Some(date), "interest")
                .between(1_800, 6_400);
            let purpose = format!("Zinsgutschrift Q{}/{}", quarter(date), date.year());
            out.push(
                Entry::new(
                    cents,
                    TransactionType::ChargesOrInterest,
                    "ABSCHLUSS",
                    purpose,
                )
                .named(self.bank.name),
            );
        }
        if is_month_close(date) {
            let sweep = self.sweep(date);
            let purpose = if sweep.cents < 0 {
                "Umbuchung vom Girokonto"
            } else {
                "Umbuchung auf Girokonto"
            };
            out.push(
                Entry::new(
                    -sweep.cents,
                    TransactionType::Transfer,
                    "UMBUCHUNG",
                    purpose.to_owned(),
                )
                .with_account(self.giro_owner(), giro, self.bank.bic),
            );
        }
        out
    }

    fn savings_opening(&self) -> i64 {
        self.rng(AccountKind::Savings, None, "opening balance")
            .between(800_000, 1_500_000)
    }

    /// The savings balance: an opening balance on a fixed day plus (or, before it, minus)
    /// everything since. Savings have no pending items.
    fn savings_balances(&self, today: Date) -> Balances {
        let (y, m, d) = SAVINGS_ANCHOR;
        let Some(anchor) = NaiveDate::from_ymd_opt(y, m, d) else {
            return Balances::default();
        };
        let opening = self.savings_opening();
        if today >= anchor {
            let mut balances = self.activity(AccountKind::Savings, anchor, today);
            balances.booked += opening;
            return balances;
        }
        let later = self.activity(AccountKind::Savings, today, anchor);
        Balances {
            booked: opening - later.booked - later.pending,
            pending: 0,
        }
    }

    // ----- Credit card --------------------------------------------------------------------

    fn card_purchases(&self, date: Date) -> Vec<Entry> {
        let mut out = Vec::new();
        if self.profile != Profile::Household {
            return out;
        }
        let mut rng = self.rng(AccountKind::Card, Some(date), "purchases");
        let count = match rng.below(100) {
            0..=69 => 0,
            70..=95 => 1,
            _ => 2,
        };
        let open = is_business_day(date) || date.weekday() == Weekday::Sat;
        for _ in 0..count {
            let merchant = pick_merchant(&mut rng, &CARD_MERCHANTS, open);
            let mut purpose = format!(
                "{} {} {}",
                merchant.name.to_uppercase(),
                merchant.city.to_uppercase(),
                merchant.country
            );
            let mut entry =
                card_entry(&mut rng, merchant, "KARTENUMSATZ", String::new()).named(merchant.name);
            if let Some((currency, rate)) = merchant.currency {
                // Foreign-currency payments carry the original amount and a 1.75 % fee.
                let original = (-entry.cents * rate + 5_000) / 10_000;
                purpose.push_str(&format!(
                    " Originalbetrag {} {currency} Kurs {}",
                    german(original),
                    german_rate(rate)
                ));
                let fee = |cents: i64| -((-cents * 175 + 5_000) / 10_000);
                let fee_purpose = format!(
                    "Auslandseinsatzentgelt 1,75 % von {} EUR {}",
                    german(-entry.cents),
                    merchant.name.to_uppercase()
                );
                let fee_entry = Entry {
                    pending_cents: entry.pending_cents.map(fee),
                    ..Entry::new(
                        fee(entry.cents),
                        TransactionType::ChargesOrInterest,
                        "ENTGELT",
                        fee_purpose,
                    )
                };
                entry.purpose = purpose;
                out.push(entry);
                out.push(fee_entry);
            } else {
                entry.purpose = purpose;
                out.push(entry);
            }
        }
        out
    }

    /// The sum (negative) of everything charged to the card in `year`-`month`: what the
    /// settlement in the month after pays off.
    fn card_month_total(&self, year: i32, month: u32) -> i64 {
        let (Some(first), Some(last)) = (
            NaiveDate::from_ymd_opt(year, month, 1),
            month_end(year, month),
        ) else {
            return 0;
        };
        dates(first, last)
            .flat_map(|d| self.card_purchases(d))
            .map(|e| e.cents)
            .sum()
    }

    fn card_settlement_credit(&self, date: Date) -> Option<Entry> {
        let (py, pm) = previous_month(date.year(), date.month());
        let total = self.card_month_total(py, pm);
        if total == 0 {
            return None;
        }
        let statement = month_start(date).and_then(|d| d.pred_opt()).unwrap_or(date);
        let purpose = format!(
            "Ausgleich Kreditkartenabrechnung {}",
            month_label(statement)
        );
        Some(
            Entry::new(-total, TransactionType::Transfer, "AUSGLEICH", purpose).with_account(
                self.giro_owner(),
                self.giro_iban(),
                self.bank.bic,
            ),
        )
    }
}

/// A merchant from `table`; on Sundays and holidays (`shops_open` false) one that is open.
fn pick_merchant<'a, const N: usize>(
    rng: &mut Rng,
    table: &'a [Merchant; N],
    shops_open: bool,
) -> &'a Merchant {
    let first = rng.pick(table);
    if shops_open || first.sunday {
        return first;
    }
    let open: Vec<&Merchant> = table.iter().filter(|m| m.sunday).collect();
    let i = usize::try_from(rng.below(open.len() as u64)).unwrap_or(0);
    open.get(i).copied().unwrap_or(first)
}

/// A card payment at `merchant`. Restaurants book with the tip and hotels with the extras
/// that the pending amount did not have yet.
fn card_entry(
    rng: &mut Rng,
    merchant: &Merchant,
    booking_text: &'static str,
    purpose: String,
) -> Entry {
    let base = rng.between(merchant.min, merchant.max);
    let fin = match merchant.category {
        Category::Restaurant => {
            let tip = base * rng.between(5, 12) / 100;
            // Guests round up to whole euros.
            (base + tip + 99) / 100 * 100
        }
        Category::Hotel => base + rng.between(450, 3_800),
        Category::Shop | Category::Online => base,
    };
    Entry {
        pending_cents: Some(-base),
        ..Entry::new(-fin, TransactionType::ElectronicCash, booking_text, purpose)
    }
}

/// An exchange rate (times 10 000) in German notation, "0,8550".
fn german_rate(rate: i64) -> String {
    format!("{},{:04}", rate / 10_000, rate % 10_000)
}

/// Whether `date` closes its month: the last business day, when salary, fees and the
/// sweep book.
fn is_month_close(date: Date) -> bool {
    last_business_day(date.year(), date.month()) == Some(date)
}

/// The last calendar month end on or before `date`.
fn card_checkpoint_date(date: Date) -> Option<Date> {
    let end = month_end(date.year(), date.month())?;
    if end == date {
        Some(end)
    } else {
        month_start(date)?.pred_opt()
    }
}

/// How many transactions the `bigdata` account has on `date`: 13 or 14, spread so that any
/// [`HISTORY_DAYS`] consecutive days hold exactly [`BIGDATA_TRANSACTIONS`].
fn bigdata_count(date: Date) -> usize {
    let n = i64::from(date.num_days_from_ce()).rem_euclid(HISTORY_DAYS);
    let count =
        (n + 1) * BIGDATA_TRANSACTIONS / HISTORY_DAYS - n * BIGDATA_TRANSACTIONS / HISTORY_DAYS;
    usize::try_from(count).unwrap_or(0)
}

/// The ISO 20022 bank transaction code a bank reports for a kind of transaction.
pub(crate) fn bank_transaction_code(t: TransactionType, credit: bool) -> Option<&'static str> {
    Some(match (t, credit) {
        (TransactionType::DirectDebit, _) => "PMNT-RDDT-ESDD",
        (TransactionType::StandingOrder, _) => "PMNT-ICDT-STDO",
        (TransactionType::SalaryOrRent, true) => "PMNT-RCDT-SALA",
        (TransactionType::SalaryOrRent, false) => "PMNT-ICDT-ESCT",
        (TransactionType::Transfer, true) => "PMNT-RCDT-ESCT",
        (TransactionType::Transfer, false) => "PMNT-ICDT-ESCT",
        (TransactionType::ElectronicCash, _) => "PMNT-CCRD-POSD",
        (TransactionType::Atm, _) => "PMNT-CCRD-CWDL",
        (TransactionType::ChargesOrInterest, true) => "ACMT-MDOP-INTR",
        (TransactionType::ChargesOrInterest, false) => "ACMT-MDOP-CHRG",
        (TransactionType::Unknown, _) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::BANKS;

    fn d(y: i32, m: u32, day: u32) -> Date {
        NaiveDate::from_ymd_opt(y, m, day).expect("valid date")
    }

    #[test]
    fn german_notation_groups_thousands() {
        assert_eq!(german(123_456_789), "1.234.567,89");
        assert_eq!(german(5), "0,05");
        assert_eq!(german(-100_000), "-1.000,00");
        assert_eq!(german_rate(8550), "0,8550");
    }

    #[test]
    fn any_730_days_of_bigdata_counts_sum_to_ten_thousand() {
        for start in [d(2020, 1, 1), d(2024, 2, 29), d(2026, 3, 20)] {
            let end = shift(start, HISTORY_DAYS - 1).expect("date");
            let total: usize = dates(start, end).map(bigdata_count).sum();
            assert_eq!(total, 10_000);
        }
    }

    #[test]
    fn the_giro_account_closes_every_month_at_its_target() {
        let ledger = Ledger::new(42, &BANKS[0], Profile::Household);
        for (y, m) in [(2025, 11), (2025, 12), (2026, 1), (2026, 2)] {
            let (py, pm) = previous_month(y, m);
            let prev = last_business_day(py, pm).expect("date");
            let close = last_business_day(y, m).expect("date");
            let net: i64 = dates(prev.succ_opt().expect("date"), close)
                .flat_map(|day| ledger.entries(AccountKind::Giro, day))
                .map(|e| e.cents)
                .sum();
            assert_eq!(ledger.giro_target(py, pm) + net, ledger.giro_target(y, m));
        }
    }

    #[test]
    fn the_card_settlement_pays_off_the_previous_month_on_both_accounts() {
        let ledger = Ledger::new(42, &BANKS[0], Profile::Household);
        let day = d(2026, 3, 20);
        let owed = ledger.card_month_total(2026, 2);
        assert!(owed < 0);
        let card: Vec<i64> = ledger
            .entries(AccountKind::Card, day)
            .iter()
            .map(|e| e.cents)
            .collect();
        assert!(card.contains(&-owed));
        let giro: Vec<i64> = ledger
            .entries(AccountKind::Giro, day)
            .iter()
            .map(|e| e.cents)
            .collect();
        assert!(giro.contains(&owed));
    }
}
