//! `BankDataStore` on SQL.

use std::collections::HashSet;

use async_trait::async_trait;
use finx_domain::bank::{
    Account, AccountDetails, AccountType, Balance, BalanceStatus, Counterparty, SyncStatus,
    Transaction, TransactionDetails, TransactionType,
};
use finx_domain::ids::{AccessId, AccountId, TransactionId};
use finx_domain::money::{Currency, Money};
use finx_domain::query::{ResolvedBound, ResolvedQuery, SinceType, SortOrder, TxFilter};
use finx_domain::reference::Iban;
use finx_domain::{Date, Timestamp};
use finx_ports::{BankDataStore, Change, Changed, FeedRead, StoreError, SyncReport};

use crate::codec::{filter_minor, from_minor, instant, micros, opt_instant, parse, to_minor};
use crate::{SqlStore, WritePool, corrupt, db, on_pool};

#[derive(sqlx::FromRow)]
struct AccountRow {
    id: String,
    access_id: String,
    external_id: String,
    iban: Option<String>,
    account_number: Option<String>,
    bank_code: Option<String>,
    bic: Option<String>,
    bank_name: String,
    currency: String,
    account_type: String,
    name: String,
    owner: String,
    is_jointly_managed: bool,
    card_last4: Option<String>,
    balance_minor: Option<i64>,
    balance_scale: Option<i64>,
    balance_currency: Option<String>,
    balance_date: Option<Date>,
    balance_status: Option<String>,
    synced_at: i64,
    succeeded_at: Option<i64>,
    status_message: Option<String>,
}

const ACCOUNT_COLUMNS: &str = "id, access_id, external_id, iban, account_number, bank_code, bic, bank_name, currency, \
     account_type, name, owner, is_jointly_managed, card_last4, balance_minor, balance_scale, balance_currency, \
     balance_date, balance_status, synced_at, succeeded_at, status_message";

fn iban(raw: Option<&str>) -> Result<Option<Iban>, StoreError> {
    raw.map(Iban::parse)
        .transpose()
        .map_err(|_| corrupt("IBAN"))
}

fn balance_status(s: BalanceStatus) -> &'static str {
    match s {
        BalanceStatus::Booked => "booked",
        BalanceStatus::Available => "available",
    }
}

impl AccountRow {
    fn into_account(self) -> Result<Account, StoreError> {
        let balance = match (
            self.balance_minor,
            self.balance_scale,
            self.balance_currency,
            self.balance_date,
            self.balance_status,
        ) {
            (Some(minor), Some(scale), Some(currency), Some(date), Some(status)) => Some(Balance {
                amount: Money::new(
                    from_minor(minor, scale)?,
                    parse(Currency::parse(&currency), "currency")?,
                ),
                date,
                status: match status.as_str() {
                    "booked" => BalanceStatus::Booked,
                    "available" => BalanceStatus::Available,
                    _ => return Err(corrupt("balance status")),
                },
            }),
            (None, None, None, None, None) => None,
            _ => return Err(corrupt("balance")),
        };
        Ok(Account {
            id: parse(AccountId::parse(&self.id), "account id")?,
            access_id: parse(AccessId::parse(&self.access_id), "access id")?,
            details: AccountDetails {
                external_id: self.external_id,
                iban: iban(self.iban.as_deref())?,
                account_number: self.account_number,
                bank_code: self.bank_code,
                bic: self.bic,
                bank_name: self.bank_name,
                currency: parse(Currency::parse(&self.currency), "currency")?,
                account_type: AccountType::parse(&self.account_type)
                    .ok_or_else(|| corrupt("account type"))?,
                name: self.name,
                owner: self.owner,
                is_jointly_managed: self.is_jointly_managed,
                card_last4: self.card_last4,
            },
            balance,
            status: SyncStatus {
                synced_at: instant(self.synced_at)?,
                succeeded_at: opt_instant(self.succeeded_at)?,
                message: self.status_message,
            },
        })
    }
}

#[derive(sqlx::FromRow)]
struct TransactionRow {
    id: String,
    account_id: String,
    external_id: String,
    amount_minor: i64,
    amount_scale: i64,
    currency: String,
    cp_name: Option<String>,
    cp_iban: Option<String>,
    cp_bic: Option<String>,
    cp_account_number: Option<String>,
    cp_bank_code: Option<String>,
    purpose: Option<String>,
    booked_on: Date,
    value_date: Date,
    booked: bool,
    booking_text: Option<String>,
    transaction_type: String,
    creditor_id: Option<String>,
    mandate_reference: Option<String>,
    end_to_end_reference: Option<String>,
    sepa_purpose_code: Option<String>,
    bank_transaction_code: Option<String>,
    mcc: Option<String>,
    created_at: i64,
    modified_at: i64,
}

/// A transaction with its feed numbers.
#[derive(sqlx::FromRow)]
struct FeedRow {
    #[sqlx(flatten)]
    row: TransactionRow,
    seq: i64,
    created_seq: i64,
}

/// A transaction row as one element of a page aggregated to JSON by the database
/// ([`page_json_sql`]): the columns of [`TRANSACTION_COLUMNS`], in order. A page then
/// crosses from the database to the store as one value, not row by row (with SQLite, sqlx
/// hands every row from its worker thread to the caller: most of a page's cost).
#[derive(serde::Deserialize)]
struct JsonTransactionRow(
    String,
    String,
    String,
    i64,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
    JsonBool,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    i64,
    Option<String>,
    Option<String>,
);

/// A boolean as PostgreSQL's JSON writes it (`true`) or SQLite's (`1`).
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum JsonBool {
    Bool(bool),
    Int(i64),
}

impl JsonTransactionRow {
    fn into_row(self) -> Result<TransactionRow, StoreError> {
        let date = |s: &str| s.parse::<Date>().map_err(|_| corrupt("transaction date"));
        Ok(TransactionRow {
            id: self.0,
            account_id: self.1,
            external_id: self.2,
            amount_minor: self.3,
            amount_scale: self.4,
            currency: self.5,
            cp_name: self.6,
            cp_iban: self.7,
            cp_bic: self.8,
            cp_account_number: self.9,
            cp_bank_code: self.10,
            purpose: self.11,
            booked_on: date(&self.12)?,
            value_date: date(&self.13)?,
            booked: match self.14 {
                JsonBool::Bool(b) => b,
                JsonBool::Int(i) => i != 0,
            },
            booking_text: self.15,
            transaction_type: self.16,
            creditor_id: self.17,
            mandate_reference: self.18,
            end_to_end_reference: self.19,
            sepa_purpose_code: self.20,
            created_at: self.21,
            modified_at: self.22,
            bank_transaction_code: self.23,
            mcc: self.24,
        })
    }
}

/// The order of a transaction page (`booked_on`, then `id`).
fn page_order(sort: SortOrder) -> &'static str {
    match sort {
        SortOrder::Desc => "booked_on DESC, id DESC",
        SortOrder::Asc => "booked_on ASC, id ASC",
    }
}

/// What goes before and after the page query (which selects [`TRANSACTION_COLUMNS`]) to
/// aggregate it into one JSON array of arrays in `order`.
fn page_json_sql(postgres: bool, order: &str) -> (String, &'static str) {
    let cols = TRANSACTION_COLUMNS;
    if postgres {
        (
            format!(
                "SELECT COALESCE(json_agg(json_build_array({cols}) ORDER BY {order}), '[]'::json)::text FROM ("
            ),
            ") page",
        )
    } else {
        (
            format!("SELECT json_group_array(json_array({cols}) ORDER BY {order}) FROM ("),
            ") page",
        )
    }
}

const TRANSACTION_COLUMNS: &str = "id, account_id, external_id, amount_minor, amount_scale, currency, cp_name, cp_iban, \
     cp_bic, cp_account_number, cp_bank_code, purpose, booked_on, value_date, booked, booking_text, transaction_type, \
     creditor_id, mandate_reference, end_to_end_reference, sepa_purpose_code, created_at, modified_at, \
     bank_transaction_code, mcc";

impl TransactionRow {
    fn into_transaction(self) -> Result<Transaction, StoreError> {
        Ok(Transaction {
            id: parse(TransactionId::parse(&self.id), "transaction id")?,
            account_id: parse(AccountId::parse(&self.account_id), "account id")?,
            details: TransactionDetails {
                external_id: self.external_id,
                amount: Money::new(
                    from_minor(self.amount_minor, self.amount_scale)?,
                    parse(Currency::parse(&self.currency), "currency")?,
                ),
                counterparty: Counterparty {
                    name: self.cp_name,
                    iban: iban(self.cp_iban.as_deref())?,
                    bic: self.cp_bic,
                    account_number: self.cp_account_number,
                    bank_code: self.cp_bank_code,
                },
                purpose: self.purpose,
                booked_on: self.booked_on,
                value_date: self.value_date,
                booked: self.booked,
                booking_text: self.booking_text,
                transaction_type: TransactionType::parse(&self.transaction_type)
                    .ok_or_else(|| corrupt("transaction type"))?,
                creditor_id: self.creditor_id,
                mandate_reference: self.mandate_reference,
                end_to_end_reference: self.end_to_end_reference,
                sepa_purpose_code: self.sepa_purpose_code,
                bank_transaction_code: self.bank_transaction_code,
                mcc: self.mcc,
            },
            created_at: instant(self.created_at)?,
            modified_at: instant(self.modified_at)?,
        })
    }
}

const UPSERT_TRANSACTION: &str = "INSERT INTO transactions (id, account_id, external_id, amount_minor, amount_scale, \
     currency, cp_name, cp_name_lc, cp_iban, cp_bic, cp_account_number, cp_bank_code, purpose, purpose_lc, booked_on, \
     value_date, booked, booking_text, transaction_type, creditor_id, mandate_reference, end_to_end_reference, \
     sepa_purpose_code, created_at, modified_at, seq, created_seq, bank_transaction_code, mcc) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $24, $25, $25, $26, $27) \
     ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, external_id = excluded.external_id, amount_minor = excluded.amount_minor, amount_scale = excluded.amount_scale, \
     currency = excluded.currency, cp_name = excluded.cp_name, cp_name_lc = excluded.cp_name_lc, cp_iban = excluded.cp_iban, \
     cp_bic = excluded.cp_bic, cp_account_number = excluded.cp_account_number, cp_bank_code = excluded.cp_bank_code, \
     purpose = excluded.purpose, purpose_lc = excluded.purpose_lc, booked_on = excluded.booked_on, \
     value_date = excluded.value_date, booked = excluded.booked, booking_text = excluded.booking_text, \
     transaction_type = excluded.transaction_type, creditor_id = excluded.creditor_id, \
     mandate_reference = excluded.mandate_reference, end_to_end_reference = excluded.end_to_end_reference, \
     sepa_purpose_code = excluded.sepa_purpose_code, bank_transaction_code = excluded.bank_transaction_code, \
     mcc = excluded.mcc, modified_at = excluded.modified_at";

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
fn like_contains(needle: &str) -> String {
    let mut p = String::with_capacity(needle.len() + 2);
    p.push('%');
    for c in needle.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// Midnight UTC at the start of `d`, in microseconds.
fn day_start(d: Date) -> i64 {
    micros(d.and_time(chrono::NaiveTime::MIN).and_utc())
}

/// Builds the finX query: the same filter, order and page as `ResolvedQuery::apply`.
macro_rules! transaction_query {
    ($q:expr) => {
        transaction_query!($q, String::new())
    };
    ($q:expr, $head:expr) => {{
        let q: &ResolvedQuery = $q;
        let head: String = $head;
        let mut b = sqlx::QueryBuilder::new(format!(
            "{head}SELECT {TRANSACTION_COLUMNS} FROM transactions WHERE account_id IN ("
        ));
        let mut ids = b.separated(", ");
        for a in q.accounts.iter().collect::<std::collections::BTreeSet<_>>() {
            ids.push_bind(a.as_str().to_owned());
        }
        b.push(")");
        if !q.include_pending {
            b.push(" AND booked = ").push_bind(true);
        }
        let date_column = match q.since_type {
            SinceType::Booked => None,
            SinceType::Created => Some("created_at"),
            SinceType::Modified => Some("modified_at"),
        };
        match &q.since {
            None => {}
            Some(ResolvedBound::Date(d)) => match date_column {
                None => {
                    b.push(" AND booked_on >= ").push_bind(*d);
                }
                Some(col) => {
                    b.push(format!(" AND {col} >= ")).push_bind(day_start(*d));
                }
            },
            Some(ResolvedBound::After(d, id)) => {
                b.push(" AND (booked_on > ").push_bind(*d);
                b.push(" OR (booked_on = ")
                    .push_bind(*d)
                    .push(" AND id > ")
                    .push_bind(id.as_str().to_owned())
                    .push("))");
            }
        }
        match &q.until {
            None => {}
            Some(ResolvedBound::Date(d)) => match date_column {
                None => {
                    b.push(" AND booked_on <= ").push_bind(*d);
                }
                Some(col) => {
                    // Checked: the day after the last date chrono knows has no midnight.
                    match d.succ_opt() {
                        Some(next) => {
                            b.push(format!(" AND {col} < ")).push_bind(day_start(next));
                        }
                        None => {}
                    }
                }
            },
            Some(ResolvedBound::After(d, id)) => {
                b.push(" AND (booked_on < ").push_bind(*d);
                b.push(" OR (booked_on = ")
                    .push_bind(*d)
                    .push(" AND id < ")
                    .push_bind(id.as_str().to_owned())
                    .push("))");
            }
        }
        match &q.filter {
            None => {}
            Some(TxFilter::Purpose(p)) => {
                b.push(" AND purpose_lc LIKE ")
                    .push_bind(like_contains(p))
                    .push(" ESCAPE '\\'");
            }
            Some(TxFilter::Person(p)) => {
                b.push(" AND cp_name_lc LIKE ")
                    .push_bind(like_contains(p))
                    .push(" ESCAPE '\\'");
            }
            Some(TxFilter::Amount(a)) => match filter_minor(*a) {
                Some(m) => {
                    b.push(" AND amount_minor = ").push_bind(m);
                }
                None => {
                    b.push(" AND 1 = 0");
                }
            },
        }
        b.push(" ORDER BY ").push(page_order(q.sort));
        b.push(" LIMIT ")
            .push_bind(i64::from(q.count))
            .push(" OFFSET ")
            .push_bind(i64::from(q.offset));
        b
    }};
}

/// The next number of the sequence of `$account`'s access, in the transaction `$tx` (which
/// then holds that access's counter until it ends, so numbers commit in order).
macro_rules! next_seq {
    ($tx:expr, $account:expr) => {{
        let account: &AccountId = $account;
        let next: Option<(i64,)> = sqlx::query_as(
            "INSERT INTO access_seqs (access_id, seq) SELECT access_id, 1 FROM accounts WHERE id = $1 \
             ON CONFLICT (access_id) DO UPDATE SET seq = access_seqs.seq + 1 RETURNING seq",
        )
        .bind(account.as_str())
        .fetch_optional(&mut *$tx)
        .await
        .map_err(db)?;
        next.map_or(0, |(n,)| n)
    }};
}

/// Inserts or updates each reported transaction under its own id in the transaction `$tx`,
/// keeping `created_at` and touching `modified_at` only when something changed. Yields the
/// report.
macro_rules! upsert_in {
    ($tx:expr, $account:expr, $transactions:expr, $now:expr) => {{
        let account: &AccountId = $account;
        let transactions: &[TransactionDetails] = $transactions;
        let pairs: Vec<(TransactionId, &TransactionDetails)> = transactions
            .iter()
            .map(|d| (Transaction::id_for(account, &d.external_id), d))
            .collect();
        upsert_as_in!($tx, account, &pairs, $now)
    }};
}

/// A sync's write for one account in the transaction `$tx`: the reported transactions
/// linked to those kept from `$from` on (`finx_domain::linking`), each written under the id
/// it links to (or its own), and the kept pending ones from `$from` on that none took
/// deleted. Yields the report.
macro_rules! reconcile_in {
    ($tx:expr, $account:expr, $reported:expr, $from:expr, $now:expr) => {{
        let account: &AccountId = $account;
        let reported: &[TransactionDetails] = $reported;
        let from: Date = $from;
        // The access's counter first: a concurrent writer of the same access waits here, so
        // what is read below is what this one links against.
        sqlx::query(
            "INSERT INTO access_seqs (access_id, seq) SELECT access_id, 0 FROM accounts WHERE id = $1 \
             ON CONFLICT (access_id) DO UPDATE SET seq = access_seqs.seq",
        )
        .bind(account.as_str())
        .execute(&mut *$tx)
        .await
        .map_err(db)?;
        // A pending one may book up to DAYS_AFTER days after its date: look back that far.
        let look_back = from
            .checked_sub_signed(chrono::TimeDelta::days(finx_domain::linking::DAYS_AFTER))
            .unwrap_or(from);
        let rows: Vec<TransactionRow> = sqlx::query_as(&format!(
            "SELECT {TRANSACTION_COLUMNS} FROM transactions WHERE account_id = $1 AND booked_on >= $2"
        ))
        .bind(account.as_str())
        .bind(look_back)
        .fetch_all(&mut *$tx)
        .await
        .map_err(db)?;
        let kept = rows
            .into_iter()
            .map(|r| {
                r.into_transaction().map(|t| finx_domain::linking::Kept {
                    id: t.id,
                    details: t.details,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ids = finx_domain::linking::assign(account, &kept, reported);
        let pairs: Vec<(TransactionId, &TransactionDetails)> =
            ids.into_iter().zip(reported.iter()).collect();
        let mut report = upsert_as_in!($tx, account, &pairs, $now);
        let taken: HashSet<String> = pairs.iter().map(|(id, _)| id.as_str().to_owned()).collect();
        report.removed = drop_pending_from!($tx, account, taken, from);
        report
    }};
}

/// Inserts or updates each `(id, details)` in the transaction `$tx` (the bank id written
/// with it), keeping `created_at` and touching `modified_at` only when something changed.
/// Yields the report.
macro_rules! upsert_as_in {
    ($tx:expr, $account:expr, $pairs:expr, $now:expr) => {{
        let account: &AccountId = $account;
        let pairs: &[(TransactionId, &TransactionDetails)] = $pairs;
        let now: Timestamp = $now;
        let mut report = SyncReport::default();
        for (id, d) in pairs {
            let d: &TransactionDetails = d;
            let existing: Option<TransactionRow> = sqlx::query_as(&format!(
                "SELECT {TRANSACTION_COLUMNS} FROM transactions WHERE id = $1"
            ))
            .bind(id.as_str())
            .fetch_optional(&mut *$tx)
            .await
            .map_err(db)?;
            let existing = existing.map(TransactionRow::into_transaction).transpose()?;
            match &existing {
                Some(t) if t.details == *d => continue,
                Some(_) => report.updated += 1,
                None => report.inserted += 1,
            }
            let seq = next_seq!($tx, account);
            let (minor, scale) = to_minor(d.amount.amount())?;
            let cp = &d.counterparty;
            sqlx::query(UPSERT_TRANSACTION)
                .bind(id.as_str())
                .bind(account.as_str())
                .bind(&d.external_id)
                .bind(minor)
                .bind(scale)
                .bind(d.amount.currency().as_str())
                .bind(&cp.name)
                .bind(cp.name.as_ref().map(|n| n.to_lowercase()))
                .bind(cp.iban.as_ref().map(ToString::to_string))
                .bind(&cp.bic)
                .bind(&cp.account_number)
                .bind(&cp.bank_code)
                .bind(&d.purpose)
                .bind(d.purpose.as_ref().map(|p| p.to_lowercase()))
                .bind(d.booked_on)
                .bind(d.value_date)
                .bind(d.booked)
                .bind(&d.booking_text)
                .bind(d.transaction_type.as_str())
                .bind(&d.creditor_id)
                .bind(&d.mandate_reference)
                .bind(&d.end_to_end_reference)
                .bind(&d.sepa_purpose_code)
                .bind(micros(now))
                .bind(seq)
                .bind(&d.bank_transaction_code)
                .bind(&d.mcc)
                .execute(&mut *$tx)
                .await
                .map_err(db)?;
        }
        report
    }};
}

/// Deletes, in the transaction `$tx`, the account's pending transactions booked on or after
/// `$from` whose ids are not in the set `$keep`. Yields how many.
macro_rules! drop_pending_from {
    ($tx:expr, $account:expr, $keep:expr, $from:expr) => {{
        let account: &AccountId = $account;
        let keep: &HashSet<String> = &$keep;
        let from: Date = $from;
        let pending: Vec<(String,)> = sqlx::query_as(
            "SELECT id FROM transactions WHERE account_id = $1 AND booked = $2 AND booked_on >= $3",
        )
        .bind(account.as_str())
        .bind(false)
        .bind(from)
        .fetch_all(&mut *$tx)
        .await
        .map_err(db)?;
        let mut removed = 0u64;
        for (id,) in pending.into_iter().filter(|(id,)| !keep.contains(id)) {
            let seq = next_seq!($tx, account);
            sqlx::query(
                "INSERT INTO removed_transactions (id, account_id, seq, created_seq) \
                 SELECT id, account_id, $2, created_seq FROM transactions WHERE id = $1",
            )
            .bind(&id)
            .bind(seq)
            .execute(&mut *$tx)
            .await
            .map_err(db)?;
            sqlx::query("DELETE FROM transactions WHERE id = $1")
                .bind(&id)
                .execute(&mut *$tx)
                .await
                .map_err(db)?;
            removed += 1;
        }
        removed
    }};
}

/// Deletes, in the transaction `$tx`, the account's pending transactions whose ids are not
/// in the set `$keep`, whatever their date. Yields how many.
macro_rules! drop_pending_in {
    ($tx:expr, $account:expr, $keep:expr) => {{
        // Before every date either database stores.
        let first = Date::from_ymd_opt(1, 1, 1).unwrap_or_default();
        drop_pending_from!($tx, $account, $keep, first)
    }};
}

/// Inserts or replaces `$account` (by id) on the executor `$exec` (a pool or a transaction).
macro_rules! upsert_account_on {
    ($exec:expr, $account:expr) => {{
        let account: &Account = $account;
        let d = &account.details;
        let balance = account
            .balance
            .as_ref()
            .map(|b| to_minor(b.amount.amount()).map(|m| (m, b)))
            .transpose()?;

            sqlx::query(&format!(
                "INSERT INTO accounts ({ACCOUNT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
                 $14, $15, $16, $17, $18, $19, $20, $21, $22) ON CONFLICT (id) DO UPDATE SET access_id = excluded.access_id, \
                 external_id = excluded.external_id, iban = excluded.iban, account_number = excluded.account_number, \
                 bank_code = excluded.bank_code, bic = excluded.bic, bank_name = excluded.bank_name, \
                 currency = excluded.currency, account_type = excluded.account_type, name = excluded.name, \
                 owner = excluded.owner, is_jointly_managed = excluded.is_jointly_managed, card_last4 = excluded.card_last4, \
                 balance_minor = excluded.balance_minor, balance_scale = excluded.balance_scale, \
                 balance_currency = excluded.balance_currency, balance_date = excluded.balance_date, \
                 balance_status = excluded.balance_status, synced_at = excluded.synced_at, \
                 succeeded_at = excluded.succeeded_at, status_message = excluded.status_message"
            ))
            .bind(account.id.as_str())
            .bind(account.access_id.as_str())
            .bind(&d.external_id)
            .bind(d.iban.as_ref().map(ToString::to_string))
            .bind(&d.account_number)
            .bind(&d.bank_code)
            .bind(&d.bic)
            .bind(&d.bank_name)
            .bind(d.currency.as_str())
            .bind(d.account_type.as_str())
            .bind(&d.name)
            .bind(&d.owner)
            .bind(d.is_jointly_managed)
            .bind(&d.card_last4)
            .bind(balance.map(|((m, _), _)| m))
            .bind(balance.map(|((_, s), _)| s))
            .bind(balance.map(|(_, b)| b.amount.currency().as_str().to_owned()))
            .bind(balance.map(|(_, b)| b.date))
            .bind(balance.map(|(_, b)| balance_status(b.status)))
            .bind(micros(account.status.synced_at))
            .bind(account.status.succeeded_at.map(micros))
            .bind(&account.status.message)
            .execute($exec)
            .await
            .map_err(db)?;
    }};
}

impl SqlStore {
    /// Bulk import for a new account (benchmarks, migrations from another system): inserts in
    /// batches of 500 rows per statement, skipping ids that exist, without the per-row
    /// comparison of [`BankDataStore::sync_transactions`]. Returns how many were inserted.
    ///
    /// # Errors
    /// When the store fails or an amount does not fit.
    pub async fn import_transactions(
        &self,
        account: &AccountId,
        transactions: &[TransactionDetails],
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut inserted = 0;
        for batch in transactions.chunks(500) {
            let mut rows = Vec::with_capacity(batch.len());
            for d in batch {
                let (minor, scale) = to_minor(d.amount.amount())?;
                rows.push((
                    Transaction::id_for(account, &d.external_id),
                    minor,
                    scale,
                    d,
                ));
            }
            let n = i64::try_from(rows.len()).unwrap_or(i64::MAX);
            inserted += on_pool!(self, |pool| {
                let mut tx = pool.begin_write(self).await.map_err(db)?;
                // A block of the access's feed numbers, one per row.
                let end: Option<(i64,)> = sqlx::query_as(
                    "INSERT INTO access_seqs (access_id, seq) SELECT access_id, $2 FROM accounts WHERE id = $1 \
                     ON CONFLICT (access_id) DO UPDATE SET seq = access_seqs.seq + $2 RETURNING seq",
                )
                .bind(account.as_str())
                .bind(n)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
                let first = end.map_or(0, |(e,)| e - n + 1);
                let mut b = sqlx::QueryBuilder::new(
                    "INSERT INTO transactions (id, account_id, external_id, amount_minor, amount_scale, currency, cp_name, \
                     cp_name_lc, cp_iban, cp_bic, cp_account_number, cp_bank_code, purpose, purpose_lc, booked_on, value_date, \
                     booked, booking_text, transaction_type, creditor_id, mandate_reference, end_to_end_reference, \
                     sepa_purpose_code, created_at, modified_at, seq, created_seq, bank_transaction_code, mcc) ",
                );
                b.push_values(
                    rows.iter().enumerate(),
                    |mut r, (i, (id, minor, scale, d))| {
                        let seq = first + i64::try_from(i).unwrap_or(0);
                        let cp = &d.counterparty;
                        r.push_bind(id.as_str().to_owned())
                            .push_bind(account.as_str().to_owned())
                            .push_bind(d.external_id.clone())
                            .push_bind(*minor)
                            .push_bind(*scale)
                            .push_bind(d.amount.currency().as_str().to_owned())
                            .push_bind(cp.name.clone())
                            .push_bind(cp.name.as_ref().map(|n| n.to_lowercase()))
                            .push_bind(cp.iban.as_ref().map(ToString::to_string))
                            .push_bind(cp.bic.clone())
                            .push_bind(cp.account_number.clone())
                            .push_bind(cp.bank_code.clone())
                            .push_bind(d.purpose.clone())
                            .push_bind(d.purpose.as_ref().map(|p| p.to_lowercase()))
                            .push_bind(d.booked_on)
                            .push_bind(d.value_date)
                            .push_bind(d.booked)
                            .push_bind(d.booking_text.clone())
                            .push_bind(d.transaction_type.as_str())
                            .push_bind(d.creditor_id.clone())
                            .push_bind(d.mandate_reference.clone())
                            .push_bind(d.end_to_end_reference.clone())
                            .push_bind(d.sepa_purpose_code.clone())
                            .push_bind(micros(now))
                            .push_bind(micros(now))
                            .push_bind(seq)
                            .push_bind(seq)
                            .push_bind(d.bank_transaction_code.clone())
                            .push_bind(d.mcc.clone());
                    },
                );
                b.push(" ON CONFLICT (id) DO NOTHING");
                let n = b
                    .build()
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?
                    .rows_affected();
                tx.commit().await.map_err(db)?;
                n
            });
        }
        Ok(inserted)
    }
}

#[async_trait]
impl BankDataStore for SqlStore {
    async fn upsert_account(&self, account: &Account) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            upsert_account_on!(pool, account);
        });
        Ok(())
    }

    async fn sync_transactions(
        &self,
        account: &AccountId,
        transactions: &[TransactionDetails],
        now: Timestamp,
    ) -> Result<SyncReport, StoreError> {
        // The whole account is the window.
        let first = Date::from_ymd_opt(1, 1, 1).unwrap_or_default();
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write(self).await.map_err(db)?;
            let report = reconcile_in!(tx, account, transactions, first, now);
            tx.commit().await.map_err(db)?;
            Ok(report)
        })
    }

    async fn upsert_transactions(
        &self,
        account: &AccountId,
        transactions: &[TransactionDetails],
        now: Timestamp,
    ) -> Result<SyncReport, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write(self).await.map_err(db)?;
            let report = upsert_in!(tx, account, transactions, now);
            tx.commit().await.map_err(db)?;
            Ok(report)
        })
    }

    async fn drop_pending_except(
        &self,
        account: &AccountId,
        keep: &[TransactionId],
    ) -> Result<u64, StoreError> {
        let keep: HashSet<String> = keep.iter().map(|t| t.as_str().to_owned()).collect();
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write(self).await.map_err(db)?;
            let removed = drop_pending_in!(tx, account, keep);
            tx.commit().await.map_err(db)?;
            Ok(removed)
        })
    }

    async fn find_accounts(&self, ids: &[AccountId]) -> Result<Vec<Account>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<AccountRow> = on_pool!(self, |pool| {
            let mut b = sqlx::QueryBuilder::new(format!(
                "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id IN ("
            ));
            let mut list = b.separated(", ");
            for id in ids {
                list.push_bind(id.as_str().to_owned());
            }
            b.push(")");
            b.build_query_as().fetch_all(pool).await.map_err(db)?
        });
        let mut found = rows
            .into_iter()
            .map(AccountRow::into_account)
            .collect::<Result<Vec<_>, _>>()?;
        // The order asked for, as the contract says.
        found.sort_by_key(|a| ids.iter().position(|id| *id == a.id));
        Ok(found)
    }

    async fn query_transactions(
        &self,
        query: &ResolvedQuery,
    ) -> Result<Vec<Transaction>, StoreError> {
        if query.accounts.is_empty() {
            return Ok(Vec::new());
        }
        let (head, tail) = page_json_sql(self.kind() == "postgres", page_order(query.sort));
        let (json,): (String,) = on_pool!(self, |pool| {
            let mut b = transaction_query!(query, head);
            b.push(tail);
            b.build_query_as().fetch_one(pool).await.map_err(db)?
        });
        let rows: Vec<JsonTransactionRow> =
            serde_json::from_str(&json).map_err(|_| corrupt("transaction page"))?;
        rows.into_iter()
            .map(|r| r.into_row()?.into_transaction())
            .collect()
    }

    async fn find_transaction(
        &self,
        id: &TransactionId,
    ) -> Result<Option<Transaction>, StoreError> {
        let row: Option<TransactionRow> = on_pool!(self, |pool| {
            sqlx::query_as(&format!(
                "SELECT {TRANSACTION_COLUMNS} FROM transactions WHERE id = $1"
            ))
            .bind(id.as_str())
            .fetch_optional(pool)
            .await
            .map_err(db)?
        });
        row.map(TransactionRow::into_transaction).transpose()
    }

    async fn changes(
        &self,
        accounts: &[AccountId],
        after: i64,
        limit: u32,
        moved: Option<(i64, i64, i64)>,
    ) -> Result<FeedRead, StoreError> {
        if accounts.is_empty() || limit == 0 {
            return Ok(FeedRead {
                changes: Vec::new(),
                high: -1,
                moved: false,
            });
        }
        let ids: Vec<String> = accounts.iter().map(|a| a.as_str().to_owned()).collect();
        let list = |first: usize| {
            (first..first + ids.len())
                .map(|n| format!("${n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let rows_sql = format!(
            "SELECT {TRANSACTION_COLUMNS}, seq, created_seq FROM transactions WHERE account_id IN ({}) \
             AND seq > $1 ORDER BY seq LIMIT $2",
            list(3)
        );
        let gone_sql = format!(
            "SELECT id, seq, created_seq FROM removed_transactions WHERE account_id IN ({}) \
             AND seq > $1 ORDER BY seq LIMIT $2",
            list(3)
        );
        let high_sql = format!(
            "SELECT COALESCE(MAX(seq), -1) FROM (SELECT seq FROM transactions WHERE account_id IN ({l}) \
             UNION ALL SELECT seq FROM removed_transactions WHERE account_id IN ({l})) s",
            l = list(1)
        );
        let moved_sql = format!(
            "SELECT id FROM transactions WHERE account_id IN ({l}) AND seq > $1 AND created_seq > $2 \
             AND created_seq <= $3 UNION ALL SELECT id FROM removed_transactions WHERE account_id IN ({l}) \
             AND seq > $1 AND created_seq > $2 AND created_seq <= $3 LIMIT 1",
            l = list(4)
        );
        let postgres = self.kind() == "postgres";
        // One snapshot for all of it: a change committed between two reads must not let the
        // page skip a number or the restart check miss a move.
        let (rows, gone, high, has_moved): (Vec<FeedRow>, Vec<(String, i64, i64)>, i64, bool) =
            on_pool!(self, |pool| {
                let mut tx = pool.begin().await.map_err(db)?;
                if postgres {
                    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                }
                let has_moved = match moved {
                    Some((from, to, since)) if from < to => {
                        let mut q = sqlx::query(&moved_sql).bind(since).bind(from).bind(to);
                        for id in &ids {
                            q = q.bind(id);
                        }
                        q.fetch_optional(&mut *tx).await.map_err(db)?.is_some()
                    }
                    _ => false,
                };
                let mut q = sqlx::query_as(&rows_sql).bind(after).bind(i64::from(limit));
                for id in &ids {
                    q = q.bind(id);
                }
                let rows = q.fetch_all(&mut *tx).await.map_err(db)?;
                let mut q = sqlx::query_as(&gone_sql).bind(after).bind(i64::from(limit));
                for id in &ids {
                    q = q.bind(id);
                }
                let gone = q.fetch_all(&mut *tx).await.map_err(db)?;
                let mut q = sqlx::query_as::<_, (i64,)>(&high_sql);
                for id in &ids {
                    q = q.bind(id);
                }
                let (high,) = q.fetch_one(&mut *tx).await.map_err(db)?;
                tx.commit().await.map_err(db)?;
                (rows, gone, high, has_moved)
            });
        let mut out = Vec::with_capacity(rows.len() + gone.len());
        for r in rows {
            out.push(Change {
                seq: r.seq,
                created_seq: r.created_seq,
                what: Changed::Now(Box::new(r.row.into_transaction()?)),
            });
        }
        for (id, seq, created_seq) in gone {
            out.push(Change {
                seq,
                created_seq,
                what: Changed::Removed(parse(TransactionId::parse(&id), "transaction id")?),
            });
        }
        out.sort_by_key(|c| c.seq);
        out.truncate(limit as usize);
        Ok(FeedRead {
            changes: out,
            high,
            moved: has_moved,
        })
    }

    async fn delete_access(&self, access_id: &AccessId) -> Result<u64, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write(self).await.map_err(db)?;
            sqlx::query("DELETE FROM transactions WHERE account_id IN (SELECT id FROM accounts WHERE access_id = $1)")
                .bind(access_id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            let n = sqlx::query("DELETE FROM accounts WHERE access_id = $1")
                .bind(access_id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .rows_affected();
            tx.commit().await.map_err(db)?;
            Ok(n)
        })
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;
    use crate::Backend;

    /// The page query of one account walks the `(account_id, booked_on, id)` index in order:
    /// no full scan and no sort step, however long the history.
    #[tokio::test]
    async fn a_page_of_one_account_reads_the_index_in_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("plan.db").display());
        let store = SqlStore::connect(&url).await.expect("open");
        let Backend::Sqlite(pool) = &store.backend else {
            panic!("a SQLite store")
        };
        for sort in [SortOrder::Desc, SortOrder::Asc] {
            let q = ResolvedQuery {
                accounts: vec![AccountId::derive(&["a"])],
                count: 100,
                offset: 0,
                sort,
                since: None,
                until: None,
                since_type: SinceType::Booked,
                include_pending: false,
                filter: None,
            };
            let b: sqlx::QueryBuilder<'_, sqlx::Sqlite> = transaction_query!(&q);
            let sql = format!("EXPLAIN QUERY PLAN {}", b.sql());
            let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(&sql)
                .bind(q.accounts[0].as_str())
                .bind(true)
                .bind(100_i64)
                .bind(0_i64)
                .fetch_all(pool)
                .await
                .expect("explain");
            let plan: Vec<&str> = rows.iter().map(|r| r.3.as_str()).collect();
            assert!(
                plan.iter()
                    .any(|d| d.contains("INDEX transactions_account_booked")),
                "{plan:?}"
            );
            assert!(
                !plan.iter().any(|d| d.contains("TEMP B-TREE")),
                "no sort step: {plan:?}"
            );
        }
    }
}

mod accesses;
