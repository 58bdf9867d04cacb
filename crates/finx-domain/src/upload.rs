//! Transaction uploads (`POST /uploads`): accounts and their transactions that a customer
//! sends for enrichment, without a bank login. Everything is checked before anything is
//! stored, and an error names the field by its path (`accounts[0].transactions[3].amount`).

use rust_decimal::Decimal;

use crate::Date;
use crate::bank::{Counterparty, TransactionDetails, TransactionType};
use crate::money::{Currency, Money};
use crate::reference::Iban;

/// The most accounts one upload holds.
pub const MAX_ACCOUNTS: usize = 20;
/// The most transactions one upload holds, over all its accounts.
pub const MAX_TRANSACTIONS: usize = 10_000;

/// An upload as it arrives: every field as sent (the HTTP adapter reads JSON into this).
#[derive(Debug, Clone, Default)]
pub struct RawUpload {
    /// The accounts.
    pub accounts: Vec<RawAccount>,
}

/// An account as sent.
#[derive(Debug, Clone, Default)]
pub struct RawAccount {
    /// IBAN (required).
    pub iban: Option<String>,
    /// BIC.
    pub bic: Option<String>,
    /// Account holder.
    pub owner: Option<String>,
    /// Balance, as the decimal text sent.
    pub balance: Option<String>,
    /// Balance date, `YYYY-MM-DD`.
    pub balance_date: Option<String>,
    /// ISO 4217 currency (default EUR).
    pub currency: Option<String>,
    /// Its transactions.
    pub transactions: Vec<RawTransaction>,
}

/// A transaction as sent.
#[derive(Debug, Clone, Default)]
pub struct RawTransaction {
    /// Counterparty IBAN (required).
    pub iban: Option<String>,
    /// Counterparty BIC.
    pub bic: Option<String>,
    /// Amount (required), negative for debits, as the decimal text sent.
    pub amount: Option<String>,
    /// ISO 4217 currency (default: the account's).
    pub currency: Option<String>,
    /// Counterparty name.
    pub name: Option<String>,
    /// Purpose (required; may be empty).
    pub purpose: Option<String>,
    /// Booking text.
    pub booking_text: Option<String>,
    /// SEPA creditor id.
    pub creditor_id: Option<String>,
    /// SEPA mandate reference.
    pub mandate_reference: Option<String>,
    /// SEPA end-to-end reference.
    pub end_to_end_reference: Option<String>,
    /// SEPA purpose code.
    pub sepa_purpose_code: Option<String>,
    /// Booking date (required), `YYYY-MM-DD`.
    pub booked_at: Option<String>,
    /// Value date, `YYYY-MM-DD` (default: the booking date).
    pub settled_at: Option<String>,
}

/// A checked account with its transactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedAccount {
    /// IBAN.
    pub iban: Iban,
    /// BIC.
    pub bic: Option<String>,
    /// Account holder.
    pub owner: Option<String>,
    /// Balance and its date.
    pub balance: Option<(Money, Date)>,
    /// Currency.
    pub currency: Currency,
    /// Its transactions, in the order sent.
    pub transactions: Vec<TransactionDetails>,
}

/// Where an upload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadStatus {
    /// Accepted, not started.
    Queued,
    /// Being written.
    Running,
    /// Written: its data reads through the upload's grant.
    Completed,
    /// It failed; nothing of it is readable.
    Failed,
}

impl UploadStatus {
    /// Every status, in wire order.
    pub const ALL: [Self; 4] = [Self::Queued, Self::Running, Self::Completed, Self::Failed];

    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::Running => "RUNNING",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
        }
    }

    /// Parses a wire name.
    #[must_use]
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// How long an upload may stay unfinished: one not finished by then was interrupted (its
/// instance stopped) and reads as failed.
pub const PROCESSING_DEADLINE_SECONDS: i64 = 600;

/// The finX error code of an upload that failed after it was accepted (interrupted, or not
/// stored): finX's internal error. Sending it again is safe.
pub const INTERNAL_CODE: u32 = 30_000;

/// A transaction upload's record. Its data lives under its grant, with one-time retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// Its id.
    pub id: crate::ids::UploadId,
    /// The customer that sent it.
    pub client_id: crate::ids::ClientId,
    /// Where it is.
    pub status: UploadStatus,
    /// When it was accepted.
    pub created_at: crate::Timestamp,
    /// When writing began.
    pub started_at: Option<crate::Timestamp>,
    /// When it completed or failed.
    pub ended_at: Option<crate::Timestamp>,
    /// When its record (and data) is deleted: one-time retention from acceptance.
    pub expires_at: crate::Timestamp,
    /// The grant its data reads through, once completed.
    pub grant_id: Option<crate::ids::GrantId>,
    /// Why it failed: a finX error code and a description.
    pub error: Option<(u32, String)>,
}

impl Upload {
    /// The access (bank connection) its accounts are stored under.
    #[must_use]
    pub fn access_id(&self) -> crate::ids::AccessId {
        crate::ids::AccessId::derive(&["upload", &self.id.to_string()])
    }

    /// The record as the customer sees it at `now`: one unfinished past
    /// [`PROCESSING_DEADLINE_SECONDS`] was interrupted, and reads as failed.
    #[must_use]
    pub fn at(&self, now: crate::Timestamp) -> Self {
        let unfinished = matches!(self.status, UploadStatus::Queued | UploadStatus::Running);
        let deadline = self.created_at + chrono::TimeDelta::seconds(PROCESSING_DEADLINE_SECONDS);
        if unfinished && now >= deadline {
            Self {
                status: UploadStatus::Failed,
                ended_at: Some(deadline),
                error: Some((
                    INTERNAL_CODE,
                    "processing was interrupted; send the upload again".into(),
                )),
                ..self.clone()
            }
        } else {
            self.clone()
        }
    }
}

/// Why an upload is refused: the field by its path, and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct UploadError {
    /// The field, e.g. `accounts[0].transactions[3].amount`.
    pub field: String,
    /// Why.
    pub reason: String,
}

fn err(field: String, reason: impl Into<String>) -> UploadError {
    UploadError {
        field,
        reason: reason.into(),
    }
}

/// Text fields: trimmed, at most `max` characters, no control characters.
fn text(field: &str, v: Option<&String>, max: usize) -> Result<Option<String>, UploadError> {
    let Some(v) = v else {
        return Ok(None);
    };
    if v.chars().count() > max {
        return Err(err(field.into(), format!("at most {max} characters")));
    }
    if v.chars().any(|c| c.is_control() && c != '\n') {
        return Err(err(field.into(), "no control characters"));
    }
    let t = v.trim();
    Ok((!t.is_empty()).then(|| t.to_owned()))
}

fn date(field: &str, v: &str) -> Result<Date, UploadError> {
    let shaped = v.len() == 10
        && v.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    Date::parse_from_str(v, "%Y-%m-%d")
        .ok()
        .filter(|_| shaped)
        .filter(|d| *d >= crate::query::earliest_date() && *d <= crate::query::latest_date())
        .ok_or_else(|| err(field.into(), "must be a date YYYY-MM-DD"))
}

/// An amount in `currency`: at most the currency's decimals, and no exponent.
fn amount(field: &str, v: &str, currency: Currency) -> Result<Money, UploadError> {
    let digits = currency.minor_units().unwrap_or(2);
    let well_formed = !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
        && v.len() <= 24;
    let d: Decimal = v
        .parse()
        .ok()
        .filter(|_| well_formed)
        .ok_or_else(|| err(field.into(), "must be a decimal number, e.g. -12.34"))?;
    if d.scale() > u32::from(digits) {
        return Err(err(
            field.into(),
            format!("at most {digits} decimals in {}", currency.as_str()),
        ));
    }
    Ok(Money::new(d, currency))
}

fn currency_of(
    field: &str,
    v: Option<&String>,
    default: Currency,
) -> Result<Currency, UploadError> {
    v.map_or(Ok(default), |c| {
        Currency::parse(c).map_err(|e| err(field.into(), e.0))
    })
}

/// Checks an upload and turns it into accounts and transactions, or names the first field
/// that is wrong. Nothing partial comes out: all or an error.
///
/// # Errors
/// [`UploadError`] naming the field.
pub fn check(raw: &RawUpload) -> Result<Vec<UploadedAccount>, UploadError> {
    if raw.accounts.is_empty() {
        return Err(err("accounts".into(), "at least one account"));
    }
    if raw.accounts.len() > MAX_ACCOUNTS {
        return Err(err("accounts".into(), format!("at most {MAX_ACCOUNTS}")));
    }
    let total: usize = raw.accounts.iter().map(|a| a.transactions.len()).sum();
    if total > MAX_TRANSACTIONS {
        return Err(err(
            "accounts[].transactions".into(),
            format!("at most {MAX_TRANSACTIONS} transactions in one upload, {total} given"),
        ));
    }
    let mut out = Vec::with_capacity(raw.accounts.len());
    for (i, a) in raw.accounts.iter().enumerate() {
        let at = |f: &str| format!("accounts[{i}].{f}");
        let iban = a
            .iban
            .as_deref()
            .ok_or_else(|| err(at("iban"), "required"))
            .and_then(|v| Iban::parse(v).map_err(|e| err(at("iban"), e.to_string())))?;
        if out.iter().any(|o: &UploadedAccount| o.iban == iban) {
            return Err(err(at("iban"), "the same account twice in one upload"));
        }
        let currency = currency_of(&at("currency"), a.currency.as_ref(), Currency::EUR)?;
        let balance = match (&a.balance, &a.balance_date) {
            (Some(b), Some(d)) => Some((
                amount(&at("balance"), b, currency)?,
                date(&at("balance_date"), d)?,
            )),
            (None, None) => None,
            (Some(_), None) => return Err(err(at("balance_date"), "required with a balance")),
            (None, Some(_)) => return Err(err(at("balance"), "required with a balance_date")),
        };
        let mut transactions = Vec::with_capacity(a.transactions.len());
        for (j, t) in a.transactions.iter().enumerate() {
            let at = |f: &str| format!("accounts[{i}].transactions[{j}].{f}");
            let cp_iban = t
                .iban
                .as_deref()
                .ok_or_else(|| err(at("iban"), "required"))
                .and_then(|v| Iban::parse(v).map_err(|e| err(at("iban"), e.to_string())))?;
            let tx_currency = currency_of(&at("currency"), t.currency.as_ref(), currency)?;
            let money = t
                .amount
                .as_deref()
                .ok_or_else(|| err(at("amount"), "required"))
                .and_then(|v| amount(&at("amount"), v, tx_currency))?;
            let purpose = t
                .purpose
                .as_ref()
                .ok_or_else(|| err(at("purpose"), "required (may be empty)"))?;
            let purpose = text(&at("purpose"), Some(purpose), 1000)?;
            let booked_on = t
                .booked_at
                .as_deref()
                .ok_or_else(|| err(at("booked_at"), "required"))
                .and_then(|v| date(&at("booked_at"), v))?;
            let value_date = t
                .settled_at
                .as_deref()
                .map(|v| date(&at("settled_at"), v))
                .transpose()?
                .unwrap_or(booked_on);
            let sepa_purpose_code =
                text(&at("sepa_purpose_code"), t.sepa_purpose_code.as_ref(), 4)?;
            let credit = money.amount() > Decimal::ZERO;
            let mut details = TransactionDetails {
                external_id: String::new(),
                amount: money,
                counterparty: Counterparty {
                    name: text(&at("name"), t.name.as_ref(), 140)?,
                    bank_code: cp_iban.bank_code().map(str::to_owned),
                    iban: Some(cp_iban),
                    bic: text(&at("bic"), t.bic.as_ref(), 11)?,
                    account_number: None,
                },
                purpose,
                booked_on,
                value_date,
                booked: true,
                booking_text: text(&at("booking_text"), t.booking_text.as_ref(), 140)?,
                transaction_type: if credit {
                    TransactionType::Transfer
                } else {
                    TransactionType::Unknown
                },
                creditor_id: text(&at("creditor_id"), t.creditor_id.as_ref(), 35)?,
                mandate_reference: text(
                    &at("mandate_reference"),
                    t.mandate_reference.as_ref(),
                    35,
                )?,
                end_to_end_reference: text(
                    &at("end_to_end_reference"),
                    t.end_to_end_reference.as_ref(),
                    35,
                )?,
                sepa_purpose_code,
                bank_transaction_code: None,
                mcc: None,
            };
            // Numbered in the order sent: the same upload twice gives the same ids.
            details.external_id = format!("upload-{i}-{j}");
            transactions.push(details);
        }
        out.push(UploadedAccount {
            iban,
            bic: text(&at("bic"), a.bic.as_ref(), 11)?,
            owner: text(&at("owner"), a.owner.as_ref(), 140)?,
            balance,
            currency,
            transactions,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(amount: &str) -> RawTransaction {
        RawTransaction {
            iban: Some("DE89370400440532013000".into()),
            amount: Some(amount.into()),
            purpose: Some(String::new()),
            booked_at: Some("2026-05-12".into()),
            name: Some("REWE Markt GmbH".into()),
            ..RawTransaction::default()
        }
    }

    fn upload(transactions: Vec<RawTransaction>) -> RawUpload {
        RawUpload {
            accounts: vec![RawAccount {
                iban: Some("DE02120300000000202051".into()),
                balance: Some("1234.56".into()),
                balance_date: Some("2026-05-31".into()),
                transactions,
                ..RawAccount::default()
            }],
        }
    }

    #[test]
    fn an_account_given_twice_is_refused() {
        let mut u = upload(vec![tx("-1.00")]);
        u.accounts.push(u.accounts[0].clone());
        let e = check(&u).expect_err("twice");
        assert_eq!(e.field, "accounts[1].iban");
    }

    #[test]
    fn an_unfinished_upload_reads_as_failed_after_its_deadline() {
        let t0 = chrono::DateTime::from_timestamp(1_780_000_000, 0).expect("time");
        let u = Upload {
            id: crate::ids::UploadId::from_random([1; 16]),
            client_id: crate::ids::ClientId::parse("c").expect("id"),
            status: UploadStatus::Running,
            created_at: t0,
            started_at: Some(t0),
            ended_at: None,
            expires_at: t0 + chrono::TimeDelta::hours(1),
            grant_id: None,
            error: None,
        };
        let soon = t0 + chrono::TimeDelta::seconds(PROCESSING_DEADLINE_SECONDS - 1);
        assert_eq!(u.at(soon), u);
        let late = u.at(t0 + chrono::TimeDelta::seconds(PROCESSING_DEADLINE_SECONDS));
        assert_eq!(late.status, UploadStatus::Failed);
        assert_eq!(late.error.map(|e| e.0), Some(INTERNAL_CODE));
        let done = Upload {
            status: UploadStatus::Completed,
            ..u.clone()
        };
        assert_eq!(
            done.at(t0 + chrono::TimeDelta::hours(2)),
            done,
            "finished stays"
        );
        assert_ne!(
            u.access_id(),
            Upload {
                id: crate::ids::UploadId::from_random([2; 16]),
                ..u.clone()
            }
            .access_id()
        );
    }

    #[test]
    fn a_good_upload_becomes_accounts_and_transactions() {
        let out = check(&upload(vec![tx("-12.34"), tx("2500")])).expect("valid");
        assert_eq!(out.len(), 1);
        let t = &out[0].transactions;
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].amount.amount(), Decimal::new(-1234, 2));
        assert_eq!(t[0].purpose, None, "an empty purpose is no purpose");
        assert_eq!(t[0].value_date, t[0].booked_on);
        assert_eq!(t[0].counterparty.bank_code.as_deref(), Some("37040044"));
        assert_ne!(t[0].external_id, t[1].external_id);
        assert_eq!(
            out[0].balance.as_ref().map(|b| b.0.amount()),
            Some(Decimal::new(123_456, 2))
        );
    }

    #[test]
    fn bad_input_names_the_field() {
        let field = |u: RawUpload| check(&u).expect_err("refused").field;
        assert_eq!(field(RawUpload::default()), "accounts");
        let mut bad_iban = upload(vec![tx("1")]);
        bad_iban.accounts[0].iban = Some("DE02120300000000202052".into());
        assert_eq!(field(bad_iban), "accounts[0].iban");
        assert_eq!(
            field(upload(vec![tx("1"), tx("1.234")])),
            "accounts[0].transactions[1].amount",
            "too many decimals"
        );
        for bad in ["1e3", "", "12,50", "NaN", "--1"] {
            assert_eq!(
                field(upload(vec![tx(bad)])),
                "accounts[0].transactions[0].amount",
                "{bad:?}"
            );
        }
        let mut no_purpose = tx("1");
        no_purpose.purpose = None;
        assert_eq!(
            field(upload(vec![no_purpose])),
            "accounts[0].transactions[0].purpose"
        );
        let mut no_date = tx("1");
        no_date.booked_at = Some("2026-02-30".into());
        assert_eq!(
            field(upload(vec![no_date])),
            "accounts[0].transactions[0].booked_at"
        );
        let mut cp = tx("1");
        cp.iban = Some("DE00".into());
        assert_eq!(field(upload(vec![cp])), "accounts[0].transactions[0].iban");
        let many = upload(vec![tx("1"); MAX_TRANSACTIONS + 1]);
        assert_eq!(field(many), "accounts[].transactions");
        let mut control = tx("1");
        control.name = Some("A\u{0}B".into());
        assert_eq!(
            field(upload(vec![control])),
            "accounts[0].transactions[0].name"
        );
    }
}
