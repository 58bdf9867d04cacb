//! The finX transaction query: `accounts`, `count`, `offset`, `sort`, `since`, `until`,
//! `since_type`, `include_pending` and `filter`, parsed once and applied the same way by
//! every store.

use std::cmp::Ordering;

use rust_decimal::Decimal;
use thiserror::Error;

use crate::Date;
use crate::bank::Transaction;
use crate::ids::{AccountId, TransactionId};

/// A query parameter was not valid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {reason}")]
pub struct QueryError {
    /// The parameter's name.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

fn err(field: &'static str, reason: impl Into<String>) -> QueryError {
    QueryError {
        field,
        reason: reason.into(),
    }
}

/// Sort order by booking date, then id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    /// Newest first (the default).
    #[default]
    Desc,
    /// Oldest first.
    Asc,
}

/// Which date `since`/`until` dates compare against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SinceType {
    /// The booking date (the default).
    #[default]
    Booked,
    /// When finX first saw the transaction.
    Created,
    /// When finX last saw it change.
    Modified,
}

/// A `since` or `until` bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    /// A date, inclusive.
    Date(Date),
    /// A transaction, exclusive: everything after (`since`) or before (`until`) it in
    /// booking order.
    Transaction(TransactionId),
}

/// A `filter=key:value` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxFilter {
    /// Purpose contains the text (case-insensitive).
    Purpose(String),
    /// Counterparty name contains the text (case-insensitive).
    Person(String),
    /// Amount equals the value exactly.
    Amount(Decimal),
}

/// The raw parameters, as strings straight off the wire.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawTransactionQuery<'a> {
    /// `accounts`: comma-separated account ids.
    pub accounts: Option<&'a str>,
    /// `count`.
    pub count: Option<&'a str>,
    /// `offset`.
    pub offset: Option<&'a str>,
    /// `sort`.
    pub sort: Option<&'a str>,
    /// `since`.
    pub since: Option<&'a str>,
    /// `until`.
    pub until: Option<&'a str>,
    /// `since_type`.
    pub since_type: Option<&'a str>,
    /// `include_pending`.
    pub include_pending: Option<&'a str>,
    /// `filter`.
    pub filter: Option<&'a str>,
}

/// A valid transaction query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionQuery {
    /// Restrict to these accounts (all of the grant's when `None`).
    pub accounts: Option<Vec<AccountId>>,
    /// Page size, `1..=1000`, default 1000.
    pub count: u32,
    /// Items to skip.
    pub offset: u32,
    /// Order.
    pub sort: SortOrder,
    /// Lower bound.
    pub since: Option<Bound>,
    /// Upper bound.
    pub until: Option<Bound>,
    /// What date bounds compare against.
    pub since_type: SinceType,
    /// Include pending transactions (default false).
    pub include_pending: bool,
    /// Extra condition.
    pub filter: Option<TxFilter>,
}

impl Default for TransactionQuery {
    fn default() -> Self {
        Self {
            accounts: None,
            count: Self::MAX_COUNT,
            offset: 0,
            sort: SortOrder::Desc,
            since: None,
            until: None,
            since_type: SinceType::Booked,
            include_pending: false,
            filter: None,
        }
    }
}

fn parse_bound(field: &'static str, raw: &str) -> Result<Bound, QueryError> {
    if raw.starts_with(TransactionId::PREFIX) {
        return TransactionId::parse(raw)
            .map(Bound::Transaction)
            .map_err(|e| err(field, e.to_string()));
    }
    // RFC 3339 full-date: four-digit year, no sign (chrono's %Y would take -262143 too).
    let shaped = raw.len() == 10
        && raw.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    let date = Date::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .filter(|_| shaped)
        .ok_or_else(|| err(field, "must be a date (YYYY-MM-DD) or a transaction id"))?;
    if date > latest_date() {
        return Err(err(field, "must be a date up to 9999-12-31"));
    }
    // Any earlier date means the same as the earliest (no transaction is older), so it is
    // read as that: every RFC 3339 date up to 9999-12-31 is a valid bound.
    Ok(Bound::Date(date.max(earliest_date())))
}

/// The earliest date a query accepts. Bounding dates when parsing keeps every later
/// computation on them (a day later, midnight in microseconds) far from chrono's limits.
#[must_use]
pub fn earliest_date() -> Date {
    Date::from_ymd_opt(1900, 1, 1).unwrap_or(Date::MIN)
}

/// The latest date a query accepts.
#[must_use]
pub fn latest_date() -> Date {
    Date::from_ymd_opt(9999, 12, 31).unwrap_or(Date::MAX)
}

fn parse_bool(field: &'static str, raw: &str) -> Result<bool, QueryError> {
    match raw {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(err(field, "must be true or false")),
    }
}

impl TransactionQuery {
    /// The largest page.
    pub const MAX_COUNT: u32 = 1000;

    /// Parses the raw parameters, reporting the first invalid one.
    ///
    /// # Errors
    /// [`QueryError`] naming the parameter and the reason.
    pub fn parse(raw: RawTransactionQuery<'_>) -> Result<Self, QueryError> {
        let mut q = Self::default();
        if let Some(a) = raw.accounts {
            let ids = a
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| AccountId::parse(s).map_err(|e| err("accounts", e.to_string())))
                .collect::<Result<Vec<_>, _>>()?;
            if ids.is_empty() {
                return Err(err("accounts", "must name at least one account id"));
            }
            // Each account once, in the order first named: a repeated id must not repeat
            // its transactions.
            let mut unique: Vec<AccountId> = Vec::with_capacity(ids.len());
            for id in ids {
                if !unique.contains(&id) {
                    unique.push(id);
                }
            }
            let ids = unique;
            if ids.len() > 100 {
                return Err(err("accounts", "at most 100 account ids"));
            }
            q.accounts = Some(ids);
        }
        if let Some(c) = raw.count {
            q.count = c
                .parse::<u32>()
                .ok()
                .filter(|c| (1..=Self::MAX_COUNT).contains(c))
                .ok_or_else(|| {
                    err(
                        "count",
                        format!("must be an integer from 1 to {}", Self::MAX_COUNT),
                    )
                })?;
        }
        if let Some(o) = raw.offset {
            q.offset = o
                .parse()
                .map_err(|_| err("offset", "must be a non-negative integer"))?;
        }
        if let Some(s) = raw.sort {
            q.sort = match s {
                "desc" => SortOrder::Desc,
                "asc" => SortOrder::Asc,
                _ => return Err(err("sort", "must be asc or desc")),
            };
        }
        q.since = raw.since.map(|s| parse_bound("since", s)).transpose()?;
        q.until = raw.until.map(|s| parse_bound("until", s)).transpose()?;
        if let Some(t) = raw.since_type {
            q.since_type = match t {
                "booked" => SinceType::Booked,
                "created" => SinceType::Created,
                "modified" => SinceType::Modified,
                _ => return Err(err("since_type", "must be booked, created or modified")),
            };
        }
        if let Some(p) = raw.include_pending {
            q.include_pending = parse_bool("include_pending", p)?;
        }
        if let Some(f) = raw.filter {
            let (key, value) = f
                .split_once(':')
                .ok_or_else(|| err("filter", "must be key:value"))?;
            if value.is_empty() || value.chars().count() > 256 {
                return Err(err("filter", "value must be 1 to 256 characters"));
            }
            q.filter = Some(match key {
                "purpose" => TxFilter::Purpose(value.to_lowercase()),
                "person" => TxFilter::Person(value.to_lowercase()),
                "amount" => TxFilter::Amount(
                    value
                        .parse()
                        .map_err(|_| err("filter", "amount must be a decimal number"))?,
                ),
                _ => return Err(err("filter", "key must be purpose, person or amount")),
            });
        }
        Ok(q)
    }
}

/// A query whose transaction-id bounds have been looked up, ready to apply. Stores get this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedQuery {
    /// The accounts to read, already limited to what the grant may see.
    pub accounts: Vec<AccountId>,
    /// Page size.
    pub count: u32,
    /// Items to skip.
    pub offset: u32,
    /// Order.
    pub sort: SortOrder,
    /// Lower bound.
    pub since: Option<ResolvedBound>,
    /// Upper bound.
    pub until: Option<ResolvedBound>,
    /// What date bounds compare against.
    pub since_type: SinceType,
    /// Include pending transactions.
    pub include_pending: bool,
    /// Extra condition.
    pub filter: Option<TxFilter>,
}

/// A bound with any transaction id replaced by its position in booking order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolvedBound {
    /// A date, inclusive, compared per `since_type`.
    Date(Date),
    /// A position `(booking date, id)`, exclusive.
    After(Date, TransactionId),
}

/// The booking order of transactions: by booking date, then id.
#[must_use]
pub fn booking_order(a: &Transaction, b: &Transaction) -> Ordering {
    (a.details.booked_on, &a.id).cmp(&(b.details.booked_on, &b.id))
}

impl ResolvedQuery {
    fn date_of(&self, t: &Transaction) -> Date {
        match self.since_type {
            SinceType::Booked => t.details.booked_on,
            SinceType::Created => t.created_at.date_naive(),
            SinceType::Modified => t.modified_at.date_naive(),
        }
    }

    /// Whether `t` passes every condition except paging.
    #[must_use]
    pub fn matches(&self, t: &Transaction) -> bool {
        if !self.accounts.contains(&t.account_id) || (!self.include_pending && !t.details.booked) {
            return false;
        }
        let key = (t.details.booked_on, &t.id);
        let since_ok = match &self.since {
            None => true,
            Some(ResolvedBound::Date(d)) => self.date_of(t) >= *d,
            Some(ResolvedBound::After(d, id)) => key > (*d, id),
        };
        let until_ok = match &self.until {
            None => true,
            Some(ResolvedBound::Date(d)) => self.date_of(t) <= *d,
            Some(ResolvedBound::After(d, id)) => key < (*d, id),
        };
        since_ok && until_ok && self.filter.as_ref().is_none_or(|f| filter_matches(f, t))
    }

    /// Compares two transactions in this query's order.
    #[must_use]
    pub fn order(&self, a: &Transaction, b: &Transaction) -> Ordering {
        match self.sort {
            SortOrder::Asc => booking_order(a, b),
            SortOrder::Desc => booking_order(b, a),
        }
    }

    /// Applies the query to an unordered collection: the reference semantics every store
    /// must reproduce.
    pub fn apply<'a>(&self, all: impl IntoIterator<Item = &'a Transaction>) -> Vec<Transaction> {
        let mut hits: Vec<&Transaction> = all.into_iter().filter(|t| self.matches(t)).collect();
        hits.sort_by(|a, b| self.order(a, b));
        hits.into_iter()
            .skip(self.offset as usize)
            .take(self.count as usize)
            .cloned()
            .collect()
    }
}

fn filter_matches(f: &TxFilter, t: &Transaction) -> bool {
    match f {
        TxFilter::Purpose(p) => t
            .details
            .purpose
            .as_deref()
            .is_some_and(|s| s.to_lowercase().contains(p)),
        TxFilter::Person(p) => t
            .details
            .counterparty
            .name
            .as_deref()
            .is_some_and(|s| s.to_lowercase().contains(p)),
        TxFilter::Amount(a) => t.details.amount.amount() == *a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_reference() {
        let q = TransactionQuery::parse(RawTransactionQuery::default()).expect("valid");
        assert_eq!(q.count, 1000);
        assert_eq!(q.offset, 0);
        assert_eq!(q.sort, SortOrder::Desc);
        assert!(!q.include_pending);
    }

    #[test]
    fn every_bad_parameter_is_named() {
        let cases: [(RawTransactionQuery<'_>, &str); 9] = [
            (
                RawTransactionQuery {
                    count: Some("0"),
                    ..Default::default()
                },
                "count",
            ),
            (
                RawTransactionQuery {
                    count: Some("1001"),
                    ..Default::default()
                },
                "count",
            ),
            (
                RawTransactionQuery {
                    offset: Some("-1"),
                    ..Default::default()
                },
                "offset",
            ),
            (
                RawTransactionQuery {
                    sort: Some("up"),
                    ..Default::default()
                },
                "sort",
            ),
            (
                RawTransactionQuery {
                    since: Some("2026-13-01"),
                    ..Default::default()
                },
                "since",
            ),
            (
                RawTransactionQuery {
                    until: Some("yesterday"),
                    ..Default::default()
                },
                "until",
            ),
            (
                RawTransactionQuery {
                    include_pending: Some("yes"),
                    ..Default::default()
                },
                "include_pending",
            ),
            (
                RawTransactionQuery {
                    accounts: Some("B12"),
                    ..Default::default()
                },
                "accounts",
            ),
            (
                RawTransactionQuery {
                    filter: Some("colour:red"),
                    ..Default::default()
                },
                "filter",
            ),
        ];
        for (raw, field) in cases {
            assert_eq!(
                TransactionQuery::parse(raw).map_err(|e| e.field),
                Err(field)
            );
        }
    }

    #[test]
    fn dates_before_1900_read_as_1900_and_malformed_years_are_refused() {
        let q = TransactionQuery::parse(RawTransactionQuery {
            since: Some("0502-02-03"),
            ..Default::default()
        })
        .expect("valid");
        assert_eq!(q.since, Some(Bound::Date(earliest_date())));
        for bad in [
            "-262143-01-01",
            "+2026-01-01",
            "10000-01-01",
            "2026-1-01",
            "2026-02-30",
        ] {
            assert!(
                TransactionQuery::parse(RawTransactionQuery {
                    until: Some(bad),
                    ..Default::default()
                })
                .is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn bounds_are_dates_or_transaction_ids() {
        let q = TransactionQuery::parse(RawTransactionQuery {
            since: Some("2026-01-31"),
            until: Some("T0123abc"),
            filter: Some("amount:-12.30"),
            ..Default::default()
        })
        .expect("valid");
        assert!(matches!(q.since, Some(Bound::Date(_))));
        assert!(matches!(q.until, Some(Bound::Transaction(_))));
        assert_eq!(q.filter, Some(TxFilter::Amount(Decimal::new(-1230, 2))));
    }

    mod apply {
        use chrono::{NaiveDate, TimeZone};

        use super::super::*;
        use crate::bank::{Counterparty, TransactionDetails, TransactionType};
        use crate::money::{Currency, Money};

        fn day(d: u32) -> Date {
            NaiveDate::from_ymd_opt(2026, 3, d).unwrap_or_default()
        }

        fn tx(
            id: &str,
            account: &AccountId,
            booked_on: u32,
            booked: bool,
            cents: i64,
            purpose: &str,
            who: &str,
        ) -> Transaction {
            let at = chrono::Utc
                .with_ymd_and_hms(2026, 3, booked_on, 12, 0, 0)
                .single()
                .unwrap_or_default();
            Transaction {
                id: TransactionId::parse(id).unwrap_or_else(|_| TransactionId::derive(&[id])),
                account_id: account.clone(),
                details: TransactionDetails {
                    external_id: id.into(),
                    amount: Money::new(Decimal::new(cents, 2), Currency::EUR),
                    counterparty: Counterparty {
                        name: Some(who.into()),
                        ..Default::default()
                    },
                    purpose: Some(purpose.into()),
                    booked_on: day(booked_on),
                    value_date: day(booked_on),
                    booked,
                    booking_text: None,
                    transaction_type: TransactionType::Transfer,
                    creditor_id: None,
                    mandate_reference: None,
                    end_to_end_reference: None,
                    sepa_purpose_code: None,
                    bank_transaction_code: None,
                    mcc: None,
                },
                created_at: at,
                modified_at: at + chrono::TimeDelta::days(1),
            }
        }

        struct Set {
            a: AccountId,
            b: AccountId,
            all: Vec<Transaction>,
        }

        fn set() -> Set {
            let a = AccountId::derive(&["a"]);
            let b = AccountId::derive(&["b"]);
            let all = vec![
                tx("T01", &a, 1, true, -1000, "Miete März", "Vermieter"),
                tx("T02", &a, 2, true, 250000, "Gehalt", "Arbeitgeber"),
                tx(
                    "T03",
                    &a,
                    2,
                    true,
                    -499,
                    "GRÖẞE Brötchen",
                    "Bäckerei Müller",
                ),
                tx("T04", &b, 3, true, -1230, "Strom", "Stadtwerke"),
                tx("T05", &a, 4, false, -4500, "Tankstelle", "Aral"),
                tx("T06", &a, 5, true, -1230, "Kino", "Cinestar"),
            ];
            Set { a, b, all }
        }

        fn ids(v: &[Transaction]) -> Vec<&str> {
            v.iter().map(|t| t.id.as_str()).collect()
        }

        fn q(s: &Set) -> ResolvedQuery {
            ResolvedQuery {
                accounts: vec![s.a.clone(), s.b.clone()],
                count: 1000,
                offset: 0,
                sort: SortOrder::Desc,
                since: None,
                until: None,
                since_type: SinceType::Booked,
                include_pending: false,
                filter: None,
            }
        }

        #[test]
        fn booked_only_newest_first_with_ids_breaking_ties() {
            let s = set();
            assert_eq!(
                ids(&q(&s).apply(&s.all)),
                ["T06", "T04", "T03", "T02", "T01"]
            );
            let asc = ResolvedQuery {
                sort: SortOrder::Asc,
                include_pending: true,
                ..q(&s)
            };
            assert_eq!(
                ids(&asc.apply(&s.all)),
                ["T01", "T02", "T03", "T04", "T05", "T06"]
            );
        }

        #[test]
        fn only_the_named_accounts_are_read() {
            let s = set();
            let only_b = ResolvedQuery {
                accounts: vec![s.b.clone()],
                ..q(&s)
            };
            assert_eq!(ids(&only_b.apply(&s.all)), ["T04"]);
            let none = ResolvedQuery {
                accounts: vec![],
                ..q(&s)
            };
            assert!(none.apply(&s.all).is_empty());
        }

        #[test]
        fn paging_applies_after_sorting() {
            let s = set();
            let page = ResolvedQuery {
                count: 2,
                offset: 1,
                ..q(&s)
            };
            assert_eq!(ids(&page.apply(&s.all)), ["T04", "T03"]);
            let past = ResolvedQuery {
                count: 2,
                offset: 10,
                ..q(&s)
            };
            assert!(past.apply(&s.all).is_empty());
        }

        #[test]
        fn date_bounds_are_inclusive_and_transaction_bounds_exclusive() {
            let s = set();
            let dates = ResolvedQuery {
                since: Some(ResolvedBound::Date(day(2))),
                until: Some(ResolvedBound::Date(day(3))),
                ..q(&s)
            };
            assert_eq!(ids(&dates.apply(&s.all)), ["T04", "T03", "T02"]);
            let t02 = TransactionId::parse("T02").unwrap_or_else(|_| unreachable!());
            let after = ResolvedQuery {
                since: Some(ResolvedBound::After(day(2), t02.clone())),
                ..q(&s)
            };
            assert_eq!(ids(&after.apply(&s.all)), ["T06", "T04", "T03"]);
            let before = ResolvedQuery {
                until: Some(ResolvedBound::After(day(2), t02)),
                ..q(&s)
            };
            assert_eq!(ids(&before.apply(&s.all)), ["T01"]);
        }

        #[test]
        fn since_type_picks_the_date_compared() {
            let s = set();
            // modified_at is a day after booking: modified since the 5th means booked the 4th on.
            let modified = ResolvedQuery {
                since_type: SinceType::Modified,
                since: Some(ResolvedBound::Date(day(5))),
                include_pending: true,
                ..q(&s)
            };
            assert_eq!(ids(&modified.apply(&s.all)), ["T06", "T05"]);
            let created = ResolvedQuery {
                since_type: SinceType::Created,
                until: Some(ResolvedBound::Date(day(1))),
                ..q(&s)
            };
            assert_eq!(ids(&created.apply(&s.all)), ["T01"]);
        }

        #[test]
        fn filters_are_case_insensitive_and_amounts_exact() {
            let s = set();
            let purpose = ResolvedQuery {
                filter: Some(TxFilter::Purpose("größe".into())),
                ..q(&s)
            };
            assert_eq!(ids(&purpose.apply(&s.all)), ["T03"]);
            let person = ResolvedQuery {
                filter: Some(TxFilter::Person("müller".into())),
                ..q(&s)
            };
            assert_eq!(ids(&person.apply(&s.all)), ["T03"]);
            let amount = ResolvedQuery {
                filter: Some(TxFilter::Amount(Decimal::new(-123, 1))),
                ..q(&s)
            };
            assert_eq!(ids(&amount.apply(&s.all)), ["T06", "T04"]);
        }

        #[test]
        fn repeated_accounts_are_read_once() {
            let raw = RawTransactionQuery {
                accounts: Some("Aab,Acd,Aab"),
                ..Default::default()
            };
            let parsed = TransactionQuery::parse(raw).unwrap_or_default();
            let names: Vec<_> = parsed
                .accounts
                .unwrap_or_default()
                .iter()
                .map(|a| a.as_str().to_owned())
                .collect();
            assert_eq!(names, ["Aab", "Acd"]);
        }
    }
}
