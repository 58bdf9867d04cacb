//! What the finX API returns, typed. Amounts are exact decimals.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A widget link (step 1). Its `Debug` hides the link token.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Link {
    /// Where to send the end user (full page or iframe).
    pub location: String,
    /// The flow id.
    pub id: String,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let page = self.location.split('?').next().unwrap_or_default();
        f.debug_struct("Link")
            .field("location", &format!("{page}?token=[redacted]"))
            .field("id", &self.id)
            .finish()
    }
}

/// Tokens from `/auth/token`. The `Debug` output hides the secrets.
#[derive(Clone, Deserialize)]
#[non_exhaustive]
pub struct Tokens {
    /// The bearer token.
    pub access_token: String,
    /// Seconds it lives.
    pub expires_in: i64,
    /// Space-separated scope.
    pub scope: String,
    /// `Bearer`.
    pub token_type: String,
    /// The new refresh token; the one sent before no longer works.
    pub refresh_token: Option<String>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("access_token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// What kind of account (finX's closed set; a value a newer server adds reads as
/// [`AccountType::Other`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[non_exhaustive]
pub enum AccountType {
    /// `Giro account`.
    #[serde(rename = "Giro account")]
    Giro,
    /// `Savings account`.
    #[serde(rename = "Savings account")]
    Savings,
    /// `Credit card`.
    #[serde(rename = "Credit card")]
    CreditCard,
    /// `Loan account`.
    #[serde(rename = "Loan account")]
    Loan,
    /// `Depot`.
    #[serde(rename = "Depot")]
    Depot,
    /// `Unknown`: the bank did not say.
    #[serde(rename = "Unknown")]
    Unknown,
    /// A type this SDK does not know yet.
    #[serde(other)]
    Other,
}

/// What kind of transaction (finX's closed set; a value a newer server adds reads as
/// [`TransactionType::Other`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[non_exhaustive]
pub enum TransactionType {
    /// `Transfer`.
    #[serde(rename = "Transfer")]
    Transfer,
    /// `Standing order`.
    #[serde(rename = "Standing order")]
    StandingOrder,
    /// `Direct debit`.
    #[serde(rename = "Direct debit")]
    DirectDebit,
    /// `Salary or rent`.
    #[serde(rename = "Salary or rent")]
    SalaryOrRent,
    /// `Electronic cash`: a card payment.
    #[serde(rename = "Electronic cash")]
    ElectronicCash,
    /// `ATM`: cash.
    #[serde(rename = "ATM")]
    Atm,
    /// `Charges or interest`.
    #[serde(rename = "Charges or interest")]
    ChargesOrInterest,
    /// `Unknown`: the bank did not say.
    #[serde(rename = "Unknown")]
    Unknown,
    /// A type this SDK does not know yet.
    #[serde(other)]
    Other,
}

impl AccountType {
    /// finX's name for it (`Other` for one this SDK does not know).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Giro => "Giro account",
            Self::Savings => "Savings account",
            Self::CreditCard => "Credit card",
            Self::Loan => "Loan account",
            Self::Depot => "Depot",
            Self::Unknown => "Unknown",
            Self::Other => "Other",
        }
    }
}

impl fmt::Display for AccountType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl TransactionType {
    /// finX's name for it (`Other` for one this SDK does not know).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transfer => "Transfer",
            Self::StandingOrder => "Standing order",
            Self::DirectDebit => "Direct debit",
            Self::SalaryOrRent => "Salary or rent",
            Self::ElectronicCash => "Electronic cash",
            Self::Atm => "ATM",
            Self::ChargesOrInterest => "Charges or interest",
            Self::Unknown => "Unknown",
            Self::Other => "Other",
        }
    }
}

impl fmt::Display for TransactionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A balance.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Balance {
    /// Amount in major units.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub balance: Decimal,
    /// ISO 4217 currency.
    pub currency: String,
    /// The date it refers to.
    pub balance_date: NaiveDate,
    /// `booked` or `available`.
    pub status: String,
}

/// How the last sync of an account went.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct AccountStatus {
    /// Last attempt.
    pub synced_at: DateTime<Utc>,
    /// Last success.
    pub succeeded_at: Option<DateTime<Utc>>,
    /// Message of a failed attempt.
    pub message: Option<String>,
}

/// An account.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Account {
    /// `A…`.
    pub account_id: String,
    /// The bank connection, `X…`.
    pub access_id: String,
    /// National account number.
    pub account_number: Option<String>,
    /// National bank code.
    pub bank_code: Option<String>,
    /// IBAN.
    pub iban: Option<String>,
    /// BIC.
    pub bic: Option<String>,
    /// The bank's name.
    pub bank_name: String,
    /// ISO 4217 currency.
    pub currency: String,
    /// The balance (with `balance=ro`).
    pub balance: Option<Balance>,
    /// What kind of account.
    #[serde(rename = "type")]
    pub account_type: AccountType,
    /// The bank's name for the account.
    pub name: String,
    /// Account holder.
    pub owner: String,
    /// Held by several people.
    pub is_jointly_managed: bool,
    /// Sync status.
    pub status: AccountStatus,
}

/// A transaction.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Transaction {
    /// `T…`.
    pub transaction_id: String,
    /// Its account.
    pub account_id: String,
    /// Amount in major units; negative for debits.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub amount: Decimal,
    /// ISO 4217 currency.
    pub currency: String,
    /// Counterparty name.
    pub name: Option<String>,
    /// Counterparty IBAN.
    pub iban: Option<String>,
    /// Counterparty BIC.
    pub bic: Option<String>,
    /// Counterparty account number.
    pub account_number: Option<String>,
    /// Counterparty bank code.
    pub bank_code: Option<String>,
    /// Remittance information.
    pub purpose: Option<String>,
    /// Booking date.
    pub booked_at: NaiveDate,
    /// Value date.
    pub settled_at: NaiveDate,
    /// False while pending.
    pub booked: bool,
    /// The bank's booking text.
    pub booking_text: Option<String>,
    /// What kind of transaction.
    #[serde(rename = "type")]
    pub transaction_type: TransactionType,
    /// SEPA creditor id.
    pub creditor_id: Option<String>,
    /// SEPA mandate reference.
    pub mandate_reference: Option<String>,
    /// SEPA end-to-end reference.
    pub end_to_end_reference: Option<String>,
    /// SEPA purpose code.
    pub sepa_purpose_code: Option<String>,
    /// Its category, the top level first and the leaf last (ids like `food` and
    /// `food.groceries`, named in the grant's language); empty when finX knows none.
    #[serde(default)]
    pub categories: Vec<Category>,
    /// What decided the category (`counterparty`, `purpose_code`, `keyword`, …).
    #[serde(default)]
    pub category_source: Option<String>,
    /// When finX first saw it.
    pub created_at: DateTime<Utc>,
    /// When finX last saw it change.
    pub modified_at: DateTime<Utc>,
}

/// A category of finX's tree.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Category {
    /// Its stable id, e.g. `food.groceries`.
    pub id: String,
    /// Its name.
    pub name: String,
}

#[derive(Deserialize)]
pub(crate) struct AccountList {
    pub(crate) accounts: Vec<Account>,
}

#[derive(Deserialize)]
pub(crate) struct TransactionList {
    pub(crate) transactions: Vec<Transaction>,
}

/// Step 1's parameters; only `redirect_uri` is required.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OnetimeAccess {
    /// Where the end user comes back (registered for your client).
    pub redirect_uri: String,
    /// Echoed back; use it to find your user again (and check it: see
    /// [`FinxClient::parse_callback`](crate::FinxClient::parse_callback)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// `de` or `en`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Known IBANs, account numbers or card numbers.
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "as_ids")]
    pub accounts: Vec<String>,
    /// Only offer these account types.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub account_types: Vec<String>,
    /// Whether the user may pick several accounts (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_multi_selection: Option<bool>,
    /// Days of history (default 90).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_period: Option<u16>,
    /// A bank to preselect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    /// A narrower scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

fn as_ids<S: serde::Serializer>(ids: &[String], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    #[derive(Serialize)]
    struct Id<'a> {
        id: &'a str,
    }
    let mut seq = s.serialize_seq(Some(ids.len()))?;
    for id in ids {
        seq.serialize_element(&Id { id })?;
    }
    seq.end()
}

/// Where the end user came back with. Its `Debug` hides the code.
#[derive(Clone, PartialEq, Eq)]
pub enum Callback {
    /// Success: exchange the code (valid one hour, once).
    Success {
        /// The authorization code.
        code: String,
        /// The flow.
        flow_id: Option<String>,
    },
    /// The user cancelled.
    Cancelled {
        /// The flow.
        flow_id: Option<String>,
    },
    /// The flow failed.
    Failed {
        /// finX's reason, e.g. `login_failed`, `link_expired`.
        error: Option<String>,
        /// The flow.
        flow_id: Option<String>,
    },
}

impl fmt::Debug for Callback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Success { flow_id, .. } => f
                .debug_struct("Success")
                .field("code", &"[redacted]")
                .field("flow_id", flow_id)
                .finish(),
            Self::Cancelled { flow_id } => f
                .debug_struct("Cancelled")
                .field("flow_id", flow_id)
                .finish(),
            Self::Failed { error, flow_id } => f
                .debug_struct("Failed")
                .field("error", error)
                .field("flow_id", flow_id)
                .finish(),
        }
    }
}

/// One page of the transactions feed (`GET /rest/transactions/sync`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct FeedPage {
    /// New transactions.
    pub added: Vec<Transaction>,
    /// Transactions that changed (a pending one booked keeps its id and comes here).
    pub modified: Vec<Transaction>,
    /// Transactions gone (a pending one the bank no longer reports).
    pub removed: Vec<Removed>,
    /// Where the next page starts; store it once the page is applied.
    pub next_cursor: String,
    /// Whether more pages follow now.
    pub has_more: bool,
}

/// A removed transaction.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Removed {
    /// Its id.
    pub transaction_id: String,
}

/// One item of the feed as a stream ([`Connection::changes`](crate::Connection::changes)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// Insert it.
    Added(Transaction),
    /// Replace it.
    Modified(Transaction),
    /// Delete the transaction with this id.
    Removed(String),
    /// The end of a pass: what you applied since the previous checkpoint (or since the
    /// start) makes a consistent copy. Commit it, store this cursor and start from it next
    /// time.
    Checkpoint(String),
    /// A sync changed the data while this pass was read: undo everything applied since the
    /// previous checkpoint (or since the start). The stream goes on from there and sends
    /// that part again as it is now, so nothing is skipped and nothing that is gone stays.
    Restart,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_sets_read_finx_names_and_keep_unknown_values_readable() {
        let t: TransactionType = serde_json::from_str("\"Direct debit\"").expect("known");
        assert_eq!(t, TransactionType::DirectDebit);
        assert_eq!(t.to_string(), "Direct debit");
        let t: TransactionType = serde_json::from_str("\"Crypto swap\"").expect("newer server");
        assert_eq!(t, TransactionType::Other);
        let a: AccountType = serde_json::from_str("\"Savings account\"").expect("known");
        assert_eq!(a, AccountType::Savings);
        let a: AccountType = serde_json::from_str("\"Pension\"").expect("newer server");
        assert_eq!(a, AccountType::Other);
    }
}

/// An account verification (`POST /onetime/account-verification`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AccountVerification {
    /// Where the end user comes back (registered for your client).
    pub redirect_uri: String,
    /// The name the account holder should have.
    pub name: String,
    /// The IBAN it should be: its bank and account are preselected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Echoed back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// `de` or `en`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// What the token reads besides the result: `ACCOUNTS`, `TRANSACTIONS`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub readout: Vec<String>,
}

impl AccountVerification {
    /// A verification of `name`, coming back to `redirect_uri`.
    #[must_use]
    pub fn new(redirect_uri: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            redirect_uri: redirect_uri.into(),
            name: name.into(),
            ..Self::default()
        }
    }
}

/// The result of an account verification.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Verification {
    /// The verification's id.
    pub id: String,
    /// What was asked.
    pub provided: VerificationProvided,
    /// The holder, and how well the name matches.
    pub matched: VerificationMatch,
    /// The account connected.
    pub account: VerifiedAccount,
}

/// What a verification was asked.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct VerificationProvided {
    /// The name given.
    pub name: String,
    /// The IBAN given.
    pub iban: Option<String>,
}

/// The holder's name and how well it matches.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct VerificationMatch {
    /// The holder as the bank reports it.
    pub name: String,
    /// `VERY_HIGH`, `HIGH`, `MEDIUM` or `LOW`.
    pub affinity: String,
}

impl VerificationMatch {
    /// Whether it counts as a match (`VERY_HIGH` or `HIGH`).
    #[must_use]
    pub fn is_match(&self) -> bool {
        matches!(self.affinity.as_str(), "VERY_HIGH" | "HIGH")
    }
}

/// The account a verification's end user connected.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct VerifiedAccount {
    /// The bank's name for it.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub account_type: AccountType,
    /// Its holders.
    pub owners: Vec<String>,
    /// Its IBAN.
    pub iban: Option<String>,
    /// Its currency.
    pub currency: String,
}

/// A transaction upload (`POST /uploads`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Upload {
    /// The accounts, 1 to 20.
    pub accounts: Vec<UploadAccount>,
    /// The language categories are named in: `de` or `en`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// An uploaded account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct UploadAccount {
    /// Its IBAN.
    pub iban: String,
    /// Its BIC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bic: Option<String>,
    /// Its holder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Its balance, with `balance_date`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::arbitrary_precision_option"
    )]
    pub balance: Option<Decimal>,
    /// The day of the balance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balance_date: Option<NaiveDate>,
    /// ISO 4217 (EUR when left out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Its transactions (10,000 at most in one upload).
    pub transactions: Vec<UploadTransaction>,
}

impl UploadAccount {
    /// An account by its IBAN.
    #[must_use]
    pub fn new(iban: impl Into<String>) -> Self {
        Self {
            iban: iban.into(),
            ..Self::default()
        }
    }
}

/// An uploaded transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct UploadTransaction {
    /// The counterparty's IBAN.
    pub iban: String,
    /// Major units, negative for money going out; sent as an exact JSON number.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub amount: Decimal,
    /// The purpose (may be empty).
    pub purpose: String,
    /// Booking day.
    pub booked_at: NaiveDate,
    /// The counterparty's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The counterparty's BIC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bic: Option<String>,
    /// ISO 4217 (the account's when left out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// The bank's booking text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub booking_text: Option<String>,
    /// SEPA creditor id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creditor_id: Option<String>,
    /// SEPA mandate reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mandate_reference: Option<String>,
    /// SEPA end-to-end reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_to_end_reference: Option<String>,
    /// SEPA purpose code, e.g. `SALA`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sepa_purpose_code: Option<String>,
    /// Value day (the booking day when left out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settled_at: Option<NaiveDate>,
}

impl UploadTransaction {
    /// A transaction with the required fields.
    #[must_use]
    pub fn new(
        iban: impl Into<String>,
        amount: Decimal,
        purpose: impl Into<String>,
        booked_at: NaiveDate,
    ) -> Self {
        Self {
            iban: iban.into(),
            amount,
            purpose: purpose.into(),
            booked_at,
            name: None,
            bic: None,
            currency: None,
            booking_text: None,
            creditor_id: None,
            mandate_reference: None,
            end_to_end_reference: None,
            sepa_purpose_code: None,
            settled_at: None,
        }
    }
}

/// An upload's state. Its `Debug` hides the access token.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct UploadState {
    /// Its id.
    pub id: String,
    /// `QUEUED`, `RUNNING`, `COMPLETED` or `FAILED`.
    pub status: String,
    /// When it was accepted.
    pub created_at: DateTime<Utc>,
    /// When it and its data are deleted.
    pub expires_at: DateTime<Utc>,
    /// Once completed: a bearer token for its data.
    #[serde(default)]
    pub access_token: Option<String>,
    /// Seconds the token lives.
    #[serde(default)]
    pub expires_in: Option<i64>,
    /// Once failed: why.
    #[serde(default)]
    pub error: Option<UploadFailure>,
}

impl UploadState {
    /// Whether it is still being written.
    #[must_use]
    pub fn is_pending(&self) -> bool {
        matches!(self.status.as_str(), "QUEUED" | "RUNNING")
    }
}

impl fmt::Debug for UploadState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadState")
            .field("id", &self.id)
            .field("status", &self.status)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "[redacted]"),
            )
            .field("error", &self.error)
            .finish()
    }
}

/// Why an upload failed: a finX error.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct UploadFailure {
    /// The finX code.
    pub code: u32,
    /// What went wrong.
    pub description: String,
}
