//! Scopes: what a grant may read, as a space-separated string.

use std::fmt;

use thiserror::Error;

/// A scope string could not be read, or asked for more than allowed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScopeError {
    /// An item is not one we know.
    #[error("unknown scope item: {0}")]
    Unknown(String),
    /// The request asks for more than the client or the grant allows.
    #[error("requested scope exceeds the allowed scope")]
    Widening,
}

/// One permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScopeItem {
    /// `accounts=ro`: read accounts.
    Accounts,
    /// `balance=ro`: read balances.
    Balance,
    /// `transactions=ro`: read transactions.
    Transactions,
    /// `offline`: receive a refresh token.
    Offline,
}

impl ScopeItem {
    const ALL: [Self; 4] = [
        Self::Accounts,
        Self::Balance,
        Self::Transactions,
        Self::Offline,
    ];

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accounts => "accounts=ro",
            Self::Balance => "balance=ro",
            Self::Transactions => "transactions=ro",
            Self::Offline => "offline",
        }
    }
}

/// A set of [`ScopeItem`]s.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scope(u8);

impl Scope {
    /// Everything: `accounts=ro balance=ro transactions=ro offline`.
    pub const FULL: Self = Self(0b1111);

    /// Parses a space-separated scope string. Repeated items count once. The empty string is
    /// the empty scope.
    ///
    /// # Errors
    /// [`ScopeError::Unknown`] for an item we do not know.
    pub fn parse(raw: &str) -> Result<Self, ScopeError> {
        let mut bits = 0;
        for word in raw.split_ascii_whitespace() {
            let item = ScopeItem::ALL
                .into_iter()
                .find(|i| i.as_str() == word)
                .ok_or_else(|| ScopeError::Unknown(word.chars().take(64).collect()))?;
            bits |= item.bit();
        }
        Ok(Self(bits))
    }

    /// The scope of these items.
    #[must_use]
    pub fn of(items: &[ScopeItem]) -> Self {
        Self(items.iter().fold(0, |bits, i| bits | i.bit()))
    }

    /// The items in both.
    #[must_use]
    pub fn and(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// Whether `item` is granted.
    #[must_use]
    pub fn contains(self, item: ScopeItem) -> bool {
        self.0 & item.bit() != 0
    }

    /// Whether every item of `self` is in `other`.
    #[must_use]
    pub fn is_subset_of(self, other: Self) -> bool {
        self.0 & !other.0 == 0
    }

    /// The scope to grant when `requested` is asked for under `allowed`: `allowed` itself when
    /// nothing is requested, `requested` when it narrows.
    ///
    /// # Errors
    /// [`ScopeError::Widening`] when `requested` asks for anything `allowed` lacks.
    pub fn narrow(allowed: Self, requested: Option<Self>) -> Result<Self, ScopeError> {
        match requested {
            None => Ok(allowed),
            Some(r) if r.is_subset_of(allowed) => Ok(r),
            Some(_) => Err(ScopeError::Widening),
        }
    }

    /// The items, in canonical order.
    pub fn items(self) -> impl Iterator<Item = ScopeItem> {
        ScopeItem::ALL
            .into_iter()
            .filter(move |i| self.contains(*i))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<_> = self.items().map(ScopeItem::as_str).collect();
        f.write_str(&words.join(" "))
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scope({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_in_canonical_order() {
        let s = Scope::parse("offline  transactions=ro accounts=ro balance=ro").expect("valid");
        assert_eq!(s, Scope::FULL);
        assert_eq!(
            s.to_string(),
            "accounts=ro balance=ro transactions=ro offline"
        );
        assert!(Scope::parse("accounts=rw").is_err());
    }

    #[test]
    fn a_request_may_narrow_but_never_widen() {
        let allowed = Scope::parse("accounts=ro transactions=ro").expect("valid");
        let narrower = Scope::parse("accounts=ro").expect("valid");
        assert_eq!(Scope::narrow(allowed, Some(narrower)), Ok(narrower));
        assert_eq!(Scope::narrow(allowed, None), Ok(allowed));
        assert_eq!(
            Scope::narrow(allowed, Some(Scope::FULL)),
            Err(ScopeError::Widening)
        );
    }
}
