//! What goes over the wire: request bodies (strict: unknown fields are errors) and
//! responses in finX's names. Amounts are JSON numbers written from exact decimals.

use finx_domain::bank::{Account, Balance, BalanceStatus, Transaction};
use finx_domain::enrich::Categorized;
use finx_domain::values::Language;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An account the customer already knows.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountRef {
    /// IBAN, national account number or card number.
    pub id: String,
}

/// `POST /onetime/access`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OnetimeAccessBody {
    /// Where the end user is sent back; must be registered for the client.
    #[schema(pattern = r"^https?://")]
    pub redirect_uri: String,
    /// Echoed back on the redirect (1–1024 characters).
    pub state: Option<String>,
    /// `de` (default) or `en`.
    pub language: Option<String>,
    /// Known accounts; an IBAN preselects its bank.
    pub accounts: Option<Vec<AccountRef>>,
    /// Only offer these account types, e.g. `Giro account`.
    pub account_types: Option<Vec<String>>,
    /// Default true.
    pub allow_multi_selection: Option<bool>,
    /// Days of history, 1–730, default 90.
    pub sync_period: Option<i64>,
    /// A bank to preselect.
    pub provider_id: Option<String>,
    /// A narrower scope than the client's, e.g. `accounts=ro transactions=ro`.
    pub scope: Option<String>,
}

/// The answer to `POST /onetime/access`.
#[derive(Debug, Serialize, ToSchema)]
pub struct OnetimeAccessResponse {
    /// The widget link, with its signed token.
    pub location: String,
    /// The flow id.
    pub id: String,
}

/// `POST /auth/token` (JSON or form).
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    /// `authorization_code` or `refresh_token`.
    #[schema(value_type = String, required = true)]
    pub grant_type: Option<String>,
    /// The code (authorization_code).
    pub code: Option<String>,
    /// The flow's redirect URI (authorization_code).
    pub redirect_uri: Option<String>,
    /// The refresh token (refresh_token).
    pub refresh_token: Option<String>,
    /// A narrower scope (refresh_token).
    pub scope: Option<String>,
    /// Client id, when not sent with HTTP Basic.
    pub client_id: Option<String>,
    /// Client secret, when not sent with HTTP Basic.
    pub client_secret: Option<String>,
}

/// `POST /auth/revoke` (JSON or form).
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    /// The token to revoke.
    #[schema(value_type = String, required = true, min_length = 1)]
    pub token: Option<String>,
    /// `access_token` or `refresh_token` (a hint only).
    pub token_type_hint: Option<String>,
    /// Client id, when not sent with HTTP Basic.
    pub client_id: Option<String>,
    /// Client secret, when not sent with HTTP Basic.
    pub client_secret: Option<String>,
}

/// The answer of `POST /auth/token`.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// The bearer token.
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: i64,
    /// Space-separated scope.
    pub scope: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// The new refresh token (with `offline`); the one sent before stops working.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Seconds until the refresh token expires: 90 days from its issue, never past the
    /// grant's end (180 days for an ongoing grant). A one-time grant ends with its retention
    /// window (1 hour), so it gets no refresh token that could outlive its data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token_expires_in: Option<i64>,
}

/// A balance.
#[derive(Debug, Serialize, ToSchema)]
pub struct BalanceDto {
    /// Amount in major units.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    // An exact decimal on the wire (a JSON number with every digit kept): "decimal" tells
    // client generators not to read it into a float.
    #[schema(value_type = f64, format = "decimal")]
    pub balance: Decimal,
    /// ISO 4217 currency.
    pub currency: String,
    /// The date it refers to.
    #[schema(value_type = String, format = Date)]
    pub balance_date: String,
    /// `booked` or `available`.
    pub status: &'static str,
}

impl BalanceDto {
    /// The wire form of a balance.
    #[must_use]
    pub fn of(b: &Balance) -> Self {
        Self {
            balance: b.amount.amount(),
            currency: b.amount.currency().as_str().to_owned(),
            balance_date: b.date.to_string(),
            status: match b.status {
                BalanceStatus::Booked => crate::openapi::BALANCE_STATUSES[0],
                BalanceStatus::Available => crate::openapi::BALANCE_STATUSES[1],
            },
        }
    }
}

/// How the last sync of an account went.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountStatusDto {
    /// Last attempt (RFC 3339).
    pub synced_at: String,
    /// Last success (RFC 3339).
    pub succeeded_at: Option<String>,
    /// Message of a failed attempt.
    pub message: Option<String>,
}

/// An account.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountDto {
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
    /// The balance; absent without `balance=ro`.
    pub balance: Option<BalanceDto>,
    /// `Giro account`, `Savings account`, `Credit card`, `Loan account`, `Depot`, `Unknown`.
    #[serde(rename = "type")]
    pub account_type: &'static str,
    /// The bank's name for the account.
    pub name: String,
    /// Account holder.
    pub owner: String,
    /// Held by several people.
    pub is_jointly_managed: bool,
    /// Sync status.
    pub status: AccountStatusDto,
}

pub(crate) fn rfc3339(t: finx_domain::Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl AccountDto {
    /// The wire form of an account.
    #[must_use]
    pub fn of(a: &Account) -> Self {
        let d = &a.details;
        Self {
            account_id: a.id.to_string(),
            access_id: a.access_id.to_string(),
            account_number: d.account_number.clone(),
            bank_code: d.bank_code.clone(),
            iban: d.iban.as_ref().map(ToString::to_string),
            bic: d.bic.clone(),
            bank_name: d.bank_name.clone(),
            currency: d.currency.as_str().to_owned(),
            balance: a.balance.as_ref().map(BalanceDto::of),
            account_type: d.account_type.as_str(),
            name: d.name.clone(),
            owner: d.owner.clone(),
            is_jointly_managed: d.is_jointly_managed,
            status: AccountStatusDto {
                synced_at: rfc3339(a.status.synced_at),
                succeeded_at: a.status.succeeded_at.map(rfc3339),
                message: a.status.message.clone(),
            },
        }
    }
}

/// `GET /rest/accounts`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountList {
    /// The accounts the end user consented to.
    pub accounts: Vec<AccountDto>,
}

/// A category of finX's tree (docs/categories.md).
#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryDto {
    /// Its stable id, e.g. `food` or `food.groceries`.
    #[schema(value_type = String, example = "food.groceries")]
    pub id: &'static str,
    /// Its name in the grant's language.
    #[schema(value_type = String, example = "Lebensmittel")]
    pub name: &'static str,
}

/// A transaction.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransactionDto {
    /// `T…`.
    pub transaction_id: String,
    /// Its account.
    pub account_id: String,
    /// Amount in major units; negative for debits.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    // An exact decimal on the wire (a JSON number with every digit kept): "decimal" tells
    // client generators not to read it into a float.
    #[schema(value_type = f64, format = "decimal")]
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
    /// Booking date (expected, while pending).
    #[schema(value_type = String, format = Date)]
    pub booked_at: String,
    /// Value date.
    #[schema(value_type = String, format = Date)]
    pub settled_at: String,
    /// False while pending.
    pub booked: bool,
    /// The bank's booking text.
    pub booking_text: Option<String>,
    /// `Transfer`, `Standing order`, `Direct debit`, `Salary or rent`, `Electronic cash`,
    /// `ATM`, `Charges or interest`, `Unknown`.
    #[serde(rename = "type")]
    pub transaction_type: &'static str,
    /// SEPA creditor id.
    pub creditor_id: Option<String>,
    /// SEPA mandate reference.
    pub mandate_reference: Option<String>,
    /// SEPA end-to-end reference.
    pub end_to_end_reference: Option<String>,
    /// SEPA purpose code.
    pub sepa_purpose_code: Option<String>,
    /// ISO 20022 bank transaction code (`DOMAIN-FAMILY-SUBFAMILY`), when the bank gives one.
    pub bank_transaction_code: Option<String>,
    /// A card payment's merchant category code (4 digits), when the bank gives one.
    pub mcc: Option<String>,
    /// Its category, the top level first and the leaf last; empty when no rule knows one.
    pub categories: Vec<CategoryDto>,
    /// What decided the category: `customer_rule`, `purpose_code`,
    /// `bank_transaction_code`, `creditor`, `mcc`, `counterparty`, `own_account` or
    /// `keyword`; null without a category.
    #[schema(value_type = Option<String>)]
    pub category_source: Option<&'static str>,
    /// When finX first saw it (RFC 3339).
    pub created_at: String,
    /// When finX last saw it change (RFC 3339).
    pub modified_at: String,
}

impl TransactionDto {
    /// The wire form of a transaction with its category, named in `language`.
    #[must_use]
    pub fn of(t: &Transaction, category: Option<&Categorized>, language: Language) -> Self {
        let d = &t.details;
        let cp = &d.counterparty;
        Self {
            transaction_id: t.id.to_string(),
            account_id: t.account_id.to_string(),
            amount: d.amount.amount(),
            currency: d.amount.currency().as_str().to_owned(),
            name: cp.name.clone(),
            iban: cp.iban.as_ref().map(ToString::to_string),
            bic: cp.bic.clone(),
            account_number: cp.account_number.clone(),
            bank_code: cp.bank_code.clone(),
            purpose: d.purpose.clone(),
            booked_at: d.booked_on.to_string(),
            settled_at: d.value_date.to_string(),
            booked: d.booked,
            booking_text: d.booking_text.clone(),
            transaction_type: d.transaction_type.as_str(),
            creditor_id: d.creditor_id.clone(),
            mandate_reference: d.mandate_reference.clone(),
            end_to_end_reference: d.end_to_end_reference.clone(),
            sepa_purpose_code: d.sepa_purpose_code.clone(),
            bank_transaction_code: d.bank_transaction_code.clone(),
            mcc: d.mcc.clone(),
            categories: category
                .map(|c| {
                    c.category
                        .path()
                        .into_iter()
                        .map(|k| CategoryDto {
                            id: k.id,
                            name: k.name(language),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            category_source: category.map(|c| c.source.as_str()),
            created_at: rfc3339(t.created_at),
            modified_at: rfc3339(t.modified_at),
        }
    }
}

/// `GET /rest/transactions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransactionList {
    /// One page, in the order asked for.
    pub transactions: Vec<TransactionDto>,
}

/// The finX error shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// finX code (1000–1999 client, 10000–19999 user, 20000–29999 bank, 30000–39999
    /// general, 40000–49999 connectivity).
    pub code: u32,
    /// `client`, `user`, `bank`, `general` or `connectivity`.
    pub group: String,
    /// What went wrong.
    pub description: String,
    /// Details, e.g. `{"field": ["reason"]}`.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl ErrorDetail {
    /// A finX error with no details.
    #[must_use]
    pub fn new(code: u32, description: String) -> Self {
        Self {
            code,
            group: crate::error::group(code).to_owned(),
            description,
            data: serde_json::json!({}),
        }
    }
}

/// The OAuth error shape (RFC 6749 §5.2).
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`, `invalid_scope`, `server_error`, `temporarily_unavailable`.
    pub error: String,
    /// What went wrong.
    pub error_description: String,
}

/// `GET /healthz` and `GET /readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
}

/// Token bodies carry secrets: their `Debug` names the fields present, never their values.
macro_rules! redacted_debug {
    ($($t:ty),*) => {$(
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($t), "([redacted])"))
            }
        }
    )*};
}
redacted_debug!(TokenBody, RevokeBody, TokenResponse);

/// `POST /ongoing/access`: the fields of `/onetime/access`, the end user, and optionally an
/// access to renew.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OngoingAccessBody {
    /// Where the end user is sent back; must be registered for the client.
    #[schema(pattern = r"^https?://")]
    pub redirect_uri: String,
    /// The customer's id for its end user (1–255 characters); one user may connect several
    /// banks.
    pub user_id: String,
    /// An access of this user to renew with a new consent (`X…`): the widget opens at its
    /// bank, and the same access, accounts and transaction ids continue.
    pub access_id: Option<String>,
    /// Echoed back on the redirect (1–1024 characters).
    pub state: Option<String>,
    /// `de` (default) or `en`.
    pub language: Option<String>,
    /// Known accounts; an IBAN preselects its bank.
    pub accounts: Option<Vec<AccountRef>>,
    /// Only offer these account types, e.g. `Giro account`.
    pub account_types: Option<Vec<String>>,
    /// Default true.
    pub allow_multi_selection: Option<bool>,
    /// Days of history the first fetch takes, 1–730, default 90.
    pub sync_period: Option<i64>,
    /// A bank to preselect.
    pub provider_id: Option<String>,
    /// A narrower scope than the client's.
    pub scope: Option<String>,
}

impl OngoingAccessBody {
    /// The fields it shares with `/onetime/access`, the user and the access to renew. (Its
    /// own struct rather than a flattened one: serde's `flatten` would let unknown fields
    /// pass.)
    #[must_use]
    pub fn into_parts(self) -> (OnetimeAccessBody, String, Option<String>) {
        (
            OnetimeAccessBody {
                redirect_uri: self.redirect_uri,
                state: self.state,
                language: self.language,
                accounts: self.accounts,
                account_types: self.account_types,
                allow_multi_selection: self.allow_multi_selection,
                sync_period: self.sync_period,
                provider_id: self.provider_id,
                scope: self.scope,
            },
            self.user_id,
            self.access_id,
        )
    }
}

/// A finX error code with its stable name.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorRef {
    /// The finX code, e.g. 10020 (consent expired), 10021 (consent revoked), 20001 (the bank
    /// asked to wait), 40000 (bank unreachable), 20000 (bank error).
    pub code: u32,
    /// The stable name, e.g. `consent_expired`.
    pub name: &'static str,
}

impl ErrorRef {
    fn of(f: finx_domain::access::SyncFailure) -> Self {
        Self {
            code: crate::error::sync_failure_code(f),
            name: f.as_str(),
        }
    }
}

/// The consent an access runs on.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentDto {
    /// The last day it may be used (`YYYY-MM-DD`).
    pub valid_until: String,
    /// Unattended accesses a day it allows.
    pub frequency_per_day: u16,
}

/// An ongoing access: a bank connection finX keeps fresh.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessDto {
    /// `X…`.
    pub access_id: String,
    /// The customer's end user.
    pub user_id: String,
    /// The bank (`provider_id`).
    pub provider_id: String,
    /// `valid`, `expiring` (within 7 days of `valid_until`), `expired` or `revoked`.
    #[schema(example = "valid")]
    pub status: &'static str,
    /// The consent.
    pub consent: ConsentDto,
    /// The accounts' ids.
    pub accounts: Vec<String>,
    /// The last successful sync (RFC 3339).
    pub last_synced_at: Option<String>,
    /// The next planned sync (RFC 3339); none once the consent is over.
    pub next_sync_at: Option<String>,
    /// Unattended syncs left today (UTC), manual ones included.
    pub syncs_left_today: u16,
    /// Why the last sync failed, if it did.
    pub last_error: Option<ErrorRef>,
    /// Created (RFC 3339).
    pub created_at: String,
}

impl AccessDto {
    /// The wire form of an access.
    #[must_use]
    pub fn of(v: &finx_core::AccessView) -> Self {
        let a = &v.access;
        Self {
            access_id: a.id.to_string(),
            user_id: a.user_id.as_str().to_owned(),
            provider_id: a.institution.to_string(),
            status: v.status.as_str(),
            consent: ConsentDto {
                valid_until: a.consent.valid_until.format("%Y-%m-%d").to_string(),
                frequency_per_day: a.consent.frequency_per_day,
            },
            accounts: v.account_ids.iter().map(ToString::to_string).collect(),
            last_synced_at: a.synced_at.map(rfc3339),
            next_sync_at: v.next_sync.map(rfc3339),
            syncs_left_today: v.syncs_left,
            last_error: a.last_error.map(ErrorRef::of),
            created_at: rfc3339(a.created_at),
        }
    }
}

/// `GET /rest/accesses`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessList {
    /// The end user's accesses at this customer, oldest first.
    pub accesses: Vec<AccessDto>,
}

/// One sync of an access.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncDto {
    /// The sync.
    pub sync_id: String,
    /// The access.
    pub access_id: String,
    /// `scheduled` or `manual`.
    pub kind: &'static str,
    /// `queued`, `running`, `succeeded` or `failed`.
    pub status: &'static str,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Due (RFC 3339).
    pub run_at: String,
    /// Last started (RFC 3339).
    pub started_at: Option<String>,
    /// Ended (RFC 3339).
    pub finished_at: Option<String>,
    /// Transactions added (succeeded).
    pub added: Option<u64>,
    /// Transactions modified (succeeded).
    pub modified: Option<u64>,
    /// Pending transactions removed (succeeded).
    pub removed: Option<u64>,
    /// Why it failed.
    pub error: Option<ErrorRef>,
}

impl SyncDto {
    /// The wire form of a sync.
    #[must_use]
    pub fn of(j: &finx_domain::access::SyncJob) -> Self {
        Self {
            sync_id: j.id.to_string(),
            access_id: j.access_id.to_string(),
            kind: j.kind.as_str(),
            status: j.status.as_str(),
            created_at: rfc3339(j.created_at),
            run_at: rfc3339(j.run_at),
            started_at: j.started_at.map(rfc3339),
            finished_at: j.finished_at.map(rfc3339),
            added: j.counts.map(|c| c.added),
            modified: j.counts.map(|c| c.modified),
            removed: j.counts.map(|c| c.removed),
            error: j.error.map(ErrorRef::of),
        }
    }
}

/// A transaction that is gone.
#[derive(Debug, Serialize, ToSchema)]
pub struct RemovedDto {
    /// `T…`.
    pub transaction_id: String,
}

/// One page of `GET /rest/transactions/sync`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedDto {
    /// Transactions new to you.
    pub added: Vec<TransactionDto>,
    /// Transactions you have, as they are now (a pending one that booked keeps its id).
    pub modified: Vec<TransactionDto>,
    /// Transactions you have that are gone (a pending one that never booked).
    pub removed: Vec<RemovedDto>,
    /// The cursor to call with next; valid as long as the grant.
    pub next_cursor: String,
    /// Whether more changes follow right away.
    pub has_more: bool,
}

impl FeedDto {
    /// The wire form of a feed page; `categories` holds the category of each of `added`,
    /// then of each of `modified`.
    #[must_use]
    pub fn of(
        p: &finx_core::FeedPage,
        categories: &[Option<Categorized>],
        language: Language,
    ) -> Self {
        let (added, modified) = categories.split_at(p.added.len().min(categories.len()));
        let dto = |(t, c): (&Transaction, &Option<Categorized>)| {
            TransactionDto::of(t, c.as_ref(), language)
        };
        Self {
            added: p.added.iter().zip(added).map(dto).collect(),
            modified: p.modified.iter().zip(modified).map(dto).collect(),
            removed: p
                .removed
                .iter()
                .map(|id| RemovedDto {
                    transaction_id: id.to_string(),
                })
                .collect(),
            next_cursor: p.next_cursor.clone(),
            has_more: p.has_more,
        }
    }
}
