//! Account verification (`POST /onetime/account-verification`): the name a customer asks
//! finX to check against the holder of the account its end user connects
//! (docs/verification.md). The matching itself is [`crate::enrich::names`].

use crate::reference::Iban;
use crate::scope::{Scope, ScopeItem};

/// The longest name a verification takes, in characters.
pub const MAX_NAME: usize = 140;

/// What a customer asked to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// The name the holder should have, as the customer was given it.
    pub name: String,
    /// The account it should be, when the customer knows it.
    pub iban: Option<Iban>,
}

impl Verification {
    /// A verification of `name` (trimmed; 1 to [`MAX_NAME`] characters, at least one
    /// letter, no control characters).
    ///
    /// # Errors
    /// Why the name is refused.
    pub fn new(name: &str, iban: Option<Iban>) -> Result<Self, &'static str> {
        let name = name.trim();
        if name.is_empty() {
            return Err("must not be empty");
        }
        if name.chars().count() > MAX_NAME {
            return Err("at most 140 characters");
        }
        if name.chars().any(char::is_control) {
            return Err("no control characters");
        }
        if !name.chars().any(char::is_alphabetic) {
            return Err("must contain a letter");
        }
        Ok(Self {
            name: name.to_owned(),
            iban,
        })
    }
}

/// What a verification's token may read besides its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readout {
    /// `ACCOUNTS`: the connected account and its balance.
    Accounts,
    /// `TRANSACTIONS`: the account, its balance and its transactions.
    Transactions,
}

impl Readout {
    /// Every readout, in wire order.
    pub const ALL: [Self; 2] = [Self::Accounts, Self::Transactions];

    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accounts => "ACCOUNTS",
            Self::Transactions => "TRANSACTIONS",
        }
    }

    /// Parses a wire name.
    #[must_use]
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == raw)
    }

    /// The scope a verification's grant gets for these readouts: nothing but the result
    /// without any; the data asked for with them. Never a refresh token: a verification is
    /// one-time.
    #[must_use]
    pub fn scope(readout: &[Self]) -> Scope {
        let mut items = Vec::new();
        if !readout.is_empty() {
            items.extend([ScopeItem::Accounts, ScopeItem::Balance]);
        }
        if readout.contains(&Self::Transactions) {
            items.push(ScopeItem::Transactions);
        }
        Scope::of(&items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_checked() {
        assert_eq!(
            Verification::new("  Erika Mustermann ", None).map(|v| v.name),
            Ok("Erika Mustermann".to_owned())
        );
        assert_eq!(Verification::new("   ", None), Err("must not be empty"));
        assert_eq!(
            Verification::new("12345", None),
            Err("must contain a letter")
        );
        assert_eq!(
            Verification::new("Erika\u{0}", None),
            Err("no control characters")
        );
        assert!(Verification::new(&"a".repeat(141), None).is_err());
        assert!(Verification::new(&"ä".repeat(140), None).is_ok());
    }

    #[test]
    fn readouts_widen_the_scope_step_by_step() {
        assert_eq!(Readout::scope(&[]).items().count(), 0);
        let accounts = Readout::scope(&[Readout::Accounts]);
        assert!(accounts.contains(ScopeItem::Accounts) && accounts.contains(ScopeItem::Balance));
        assert!(!accounts.contains(ScopeItem::Transactions));
        let all = Readout::scope(&[Readout::Transactions]);
        assert!(all.contains(ScopeItem::Transactions) && all.contains(ScopeItem::Accounts));
        assert!(!all.contains(ScopeItem::Offline));
        assert_eq!(Readout::parse("TRANSACTIONS"), Some(Readout::Transactions));
        assert_eq!(Readout::parse("transactions"), None);
    }
}
