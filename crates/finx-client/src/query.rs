//! A builder for every finX transaction query parameter.

use chrono::NaiveDate;

/// Order by booking date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Newest first (the server's default).
    #[default]
    Desc,
    /// Oldest first.
    Asc,
}

/// A bound of `since`/`until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    /// A date (inclusive).
    Date(NaiveDate),
    /// A transaction id (exclusive).
    Transaction(String),
}

/// `GET /rest/transactions` parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransactionQuery {
    accounts: Vec<String>,
    count: Option<u32>,
    offset: Option<u32>,
    sort: Option<Sort>,
    since: Option<Bound>,
    until: Option<Bound>,
    since_type: Option<&'static str>,
    include_pending: Option<bool>,
    filter: Option<String>,
}

impl TransactionQuery {
    /// Every transaction the token may read, newest first, in the server's page size.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Only these accounts.
    #[must_use]
    pub fn accounts<I: IntoIterator<Item = S>, S: Into<String>>(mut self, ids: I) -> Self {
        self.accounts = ids.into_iter().map(Into::into).collect();
        self
    }

    /// Page size (1–1000).
    #[must_use]
    pub fn count(mut self, n: u32) -> Self {
        self.count = Some(n);
        self
    }

    /// Items to skip.
    #[must_use]
    pub fn offset(mut self, n: u32) -> Self {
        self.offset = Some(n);
        self
    }

    /// Order.
    #[must_use]
    pub fn sort(mut self, s: Sort) -> Self {
        self.sort = Some(s);
        self
    }

    /// Lower bound.
    #[must_use]
    pub fn since(mut self, b: Bound) -> Self {
        self.since = Some(b);
        self
    }

    /// Upper bound.
    #[must_use]
    pub fn until(mut self, b: Bound) -> Self {
        self.until = Some(b);
        self
    }

    /// Compare date bounds with the creation date instead of the booking date.
    #[must_use]
    pub fn since_created(mut self) -> Self {
        self.since_type = Some("created");
        self
    }

    /// Compare date bounds with the modification date instead of the booking date.
    #[must_use]
    pub fn since_modified(mut self) -> Self {
        self.since_type = Some("modified");
        self
    }

    /// Include pending transactions.
    #[must_use]
    pub fn include_pending(mut self, yes: bool) -> Self {
        self.include_pending = Some(yes);
        self
    }

    /// `filter=key:value` (`purpose`, `person` or `amount`).
    #[must_use]
    pub fn filter(mut self, key: &str, value: &str) -> Self {
        self.filter = Some(format!("{key}:{value}"));
        self
    }

    pub(crate) fn page_size(&self) -> u32 {
        self.count.unwrap_or(1000)
    }

    pub(crate) fn order(&self) -> Sort {
        self.sort.unwrap_or_default()
    }

    /// The next page after `last`, by keyset: robust while new transactions arrive.
    pub(crate) fn after(&self, last: &str) -> Self {
        let mut next = self.clone();
        next.offset = None;
        match self.order() {
            Sort::Desc => next.until = Some(Bound::Transaction(last.to_owned())),
            Sort::Asc => next.since = Some(Bound::Transaction(last.to_owned())),
        }
        next
    }

    /// The query string.
    pub(crate) fn pairs(&self) -> Vec<(&'static str, String)> {
        let bound = |b: &Bound| match b {
            Bound::Date(d) => d.to_string(),
            Bound::Transaction(t) => t.clone(),
        };
        let mut p = Vec::new();
        if !self.accounts.is_empty() {
            p.push(("accounts", self.accounts.join(",")));
        }
        if let Some(c) = self.count {
            p.push(("count", c.to_string()));
        }
        if let Some(o) = self.offset {
            p.push(("offset", o.to_string()));
        }
        if let Some(s) = self.sort {
            p.push((
                "sort",
                if s == Sort::Asc {
                    "asc".into()
                } else {
                    "desc".into()
                },
            ));
        }
        if let Some(b) = &self.since {
            p.push(("since", bound(b)));
        }
        if let Some(b) = &self.until {
            p.push(("until", bound(b)));
        }
        if let Some(t) = self.since_type {
            p.push(("since_type", t.into()));
        }
        if let Some(i) = self.include_pending {
            p.push(("include_pending", i.to_string()));
        }
        if let Some(f) = &self.filter {
            p.push(("filter", f.clone()));
        }
        p
    }
}
