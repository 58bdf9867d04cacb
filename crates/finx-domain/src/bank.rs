//! Banks, accounts, balances and transactions, as finX keeps them.

use crate::ids::{AccessId, AccountId, InstitutionId, TransactionId};
use crate::money::{Currency, Money};
use crate::reference::Iban;
use crate::{Date, Timestamp};

/// A bank a connector can reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Institution {
    /// The connector's id for it.
    pub id: InstitutionId,
    /// Display name.
    pub name: String,
    /// BIC, when known.
    pub bic: Option<String>,
    /// National bank code (German BLZ), when known.
    pub bank_code: Option<String>,
    /// ISO country code.
    pub country: String,
    /// What its login form asks for, e.g. "Anmeldename" / "PIN".
    pub login_fields: LoginFields,
}

/// The labels of a bank's login form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginFields {
    /// The user name field's label.
    pub user_label: String,
    /// The password field's label.
    pub secret_label: String,
}

impl Institution {
    /// Whether `query` (case-insensitive) occurs in its name, or equals its BIC (or BIC's first
    /// eight characters) or bank code.
    #[must_use]
    pub fn matches(&self, query: &str) -> bool {
        let q = query.trim().to_lowercase();
        if q.is_empty() {
            return true;
        }
        let compact: String = q.chars().filter(|c| !c.is_whitespace()).collect();
        self.name.to_lowercase().contains(&q)
            || self.bank_code.as_deref().is_some_and(|c| c == compact)
            || self.bic.as_deref().is_some_and(|b| {
                let b = b.to_lowercase();
                b == compact || b.get(..8).is_some_and(|p| p == compact)
            })
    }
}

/// The kind of an account, with the finX wire names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccountType {
    /// `Giro account`.
    Giro,
    /// `Savings account`.
    Savings,
    /// `Credit card`.
    CreditCard,
    /// `Loan account`.
    Loan,
    /// `Depot`.
    Depot,
    /// `Unknown`.
    Unknown,
}

impl AccountType {
    /// Every variant, in declaration order (for documenting the closed set).
    pub const ALL: [Self; 6] = [
        Self::Giro,
        Self::Savings,
        Self::CreditCard,
        Self::Loan,
        Self::Depot,
        Self::Unknown,
    ];

    /// The finX name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Giro => "Giro account",
            Self::Savings => "Savings account",
            Self::CreditCard => "Credit card",
            Self::Loan => "Loan account",
            Self::Depot => "Depot",
            Self::Unknown => "Unknown",
        }
    }

    /// Reads a finX name (case-insensitive).
    #[must_use]
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(raw.trim()))
    }
}

/// An account as the bank describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountDetails {
    /// The bank's (or connector's) stable id for the account.
    pub external_id: String,
    /// IBAN, when the account has one.
    pub iban: Option<Iban>,
    /// National account number.
    pub account_number: Option<String>,
    /// National bank code.
    pub bank_code: Option<String>,
    /// BIC.
    pub bic: Option<String>,
    /// The bank's name.
    pub bank_name: String,
    /// Account currency.
    pub currency: Currency,
    /// Kind of account.
    pub account_type: AccountType,
    /// The bank's name for the account (product name).
    pub name: String,
    /// Account holder.
    pub owner: String,
    /// Whether several people hold it.
    pub is_jointly_managed: bool,
    /// Last four digits of the card, for card accounts.
    pub card_last4: Option<String>,
}

/// Whether a balance is booked or includes pending items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BalanceStatus {
    /// Booked balance.
    Booked,
    /// Available balance (booked plus pending, plus any credit line).
    Available,
}

/// An account balance at a date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    /// The balance.
    pub amount: Money,
    /// The date it refers to.
    pub date: Date,
    /// Which balance it is.
    pub status: BalanceStatus,
}

/// How the last sync of an account went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncStatus {
    /// Last attempt.
    pub synced_at: Timestamp,
    /// Last success.
    pub succeeded_at: Option<Timestamp>,
    /// A message when the last attempt failed.
    pub message: Option<String>,
}

/// An account as finX keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// finX id, derived from the connection and the bank's id, stable across syncs.
    pub id: AccountId,
    /// The bank connection.
    pub access_id: AccessId,
    /// What the bank says.
    pub details: AccountDetails,
    /// The latest balance.
    pub balance: Option<Balance>,
    /// Sync status.
    pub status: SyncStatus,
}

impl Account {
    /// The finX id of the bank account `external_id` under connection `access_id`.
    #[must_use]
    pub fn id_for(access_id: &AccessId, external_id: &str) -> AccountId {
        AccountId::derive(&[access_id.as_str(), external_id])
    }
}

/// The kind of a transaction, with the finX wire names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionType {
    /// `Transfer`.
    Transfer,
    /// `Standing order`.
    StandingOrder,
    /// `Direct debit`.
    DirectDebit,
    /// `Salary or rent`.
    SalaryOrRent,
    /// `Electronic cash` (card payment).
    ElectronicCash,
    /// `ATM`.
    Atm,
    /// `Charges or interest`.
    ChargesOrInterest,
    /// `Unknown`.
    Unknown,
}

impl TransactionType {
    /// Every variant, in declaration order (for documenting the closed set).
    pub const ALL: [Self; 8] = [
        Self::Transfer,
        Self::StandingOrder,
        Self::DirectDebit,
        Self::SalaryOrRent,
        Self::ElectronicCash,
        Self::Atm,
        Self::ChargesOrInterest,
        Self::Unknown,
    ];

    /// The finX name.
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
        }
    }

    /// Reads a finX name (case-insensitive).
    #[must_use]
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(raw.trim()))
    }
}

/// The other side of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Counterparty {
    /// Name.
    pub name: Option<String>,
    /// IBAN.
    pub iban: Option<Iban>,
    /// BIC.
    pub bic: Option<String>,
    /// National account number.
    pub account_number: Option<String>,
    /// National bank code.
    pub bank_code: Option<String>,
}

/// A transaction as the bank describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionDetails {
    /// The connector's stable id for it. A pending transaction that later books may come
    /// back under another id; the pending one is then dropped.
    pub external_id: String,
    /// Amount, negative for debits.
    pub amount: Money,
    /// The other side.
    pub counterparty: Counterparty,
    /// Remittance information.
    pub purpose: Option<String>,
    /// Booking date (expected booking date while pending).
    pub booked_on: Date,
    /// Value date.
    pub value_date: Date,
    /// False while pending.
    pub booked: bool,
    /// The bank's booking text, e.g. "SEPA-LASTSCHRIFT".
    pub booking_text: Option<String>,
    /// Kind.
    pub transaction_type: TransactionType,
    /// SEPA creditor id (direct debits).
    pub creditor_id: Option<String>,
    /// SEPA mandate reference (direct debits).
    pub mandate_reference: Option<String>,
    /// SEPA end-to-end reference.
    pub end_to_end_reference: Option<String>,
    /// SEPA purpose code, e.g. `SALA`.
    pub sepa_purpose_code: Option<String>,
    /// ISO 20022 bank transaction code, `DOMAIN-FAMILY-SUBFAMILY` (XS2A
    /// `bankTransactionCode`), e.g. `PMNT-CCRD-CWDL`.
    pub bank_transaction_code: Option<String>,
    /// A card payment's merchant category code (XS2A `merchantCategoryCode`), 4 digits.
    pub mcc: Option<String>,
}

/// A transaction as finX keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// finX id, derived from the account and the bank's id.
    pub id: TransactionId,
    /// Its account.
    pub account_id: AccountId,
    /// What the bank says.
    pub details: TransactionDetails,
    /// When finX first saw it.
    pub created_at: Timestamp,
    /// When finX last saw it change.
    pub modified_at: Timestamp,
}

impl Transaction {
    /// The finX id of the bank transaction `external_id` on account `account_id`.
    #[must_use]
    pub fn id_for(account_id: &AccountId, external_id: &str) -> TransactionId {
        TransactionId::derive(&[account_id.as_str(), external_id])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn institutions_match_name_bic_and_bank_code() {
        let i = Institution {
            id: InstitutionId::parse("sb").expect("id"),
            name: "finX Sandbox Bank".into(),
            bic: Some("FINXDEB1XXX".into()),
            bank_code: Some("90094815".into()),
            country: "DE".into(),
            login_fields: LoginFields {
                user_label: "u".into(),
                secret_label: "p".into(),
            },
        };
        assert!(i.matches("sandbox"));
        assert!(i.matches("finxdeb1"));
        assert!(i.matches("FINXDEB1XXX"));
        assert!(i.matches("9009 4815"));
        assert!(!i.matches("9009"));
        assert!(!i.matches("sparkasse"));
    }

    #[test]
    fn type_names_round_trip() {
        for t in AccountType::ALL {
            assert_eq!(AccountType::parse(t.as_str()), Some(t));
        }
        for t in TransactionType::ALL {
            assert_eq!(TransactionType::parse(t.as_str()), Some(t));
        }
    }
}
