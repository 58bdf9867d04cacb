//! Money: an exact decimal amount and an ISO 4217 currency. Never floating point.

use std::fmt;

use rust_decimal::Decimal;
use thiserror::Error;

/// A currency code was not three upper-case letters of a known currency.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("not an ISO 4217 currency code: {0}")]
pub struct CurrencyError(pub String);

/// An ISO 4217 currency: every active code of the standard that has a minor unit, as the
/// `iso_currency` crate keeps them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency(iso_currency::Currency);

impl Currency {
    /// The euro.
    pub const EUR: Self = Self(iso_currency::Currency::EUR);

    /// Parses an ISO 4217 code, case-sensitively upper case.
    ///
    /// # Errors
    /// [`CurrencyError`] for anything else.
    pub fn parse(raw: &str) -> Result<Self, CurrencyError> {
        let bad = || CurrencyError(raw.chars().take(8).collect());
        if raw.len() != 3 || !raw.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(bad());
        }
        // Units without a minor unit are no currency an account is held in: gold and other
        // metals, SDRs, bond units, and XXX, which XS2A uses for multi-currency accounts.
        iso_currency::Currency::from_code(raw)
            .filter(|c| c.exponent().is_some())
            .map(Self)
            .ok_or_else(bad)
    }

    /// The code.
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.0.code()
    }

    /// How many decimal places its minor unit has (2 for the euro, 0 for the yen, 3 for the
    /// Kuwaiti dinar). Always `Some` for a parsed currency.
    #[must_use]
    pub fn minor_units(&self) -> Option<u16> {
        self.0.exponent()
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount of money. Negative amounts are debits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    amount: Decimal,
    currency: Currency,
}

impl Money {
    /// Pairs an amount with its currency.
    #[must_use]
    pub fn new(amount: Decimal, currency: Currency) -> Self {
        Self { amount, currency }
    }

    /// The amount in major units.
    #[must_use]
    pub fn amount(&self) -> Decimal {
        self.amount
    }

    /// The currency.
    #[must_use]
    pub fn currency(&self) -> Currency {
        self.currency
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    #[test]
    fn currencies_are_known_iso_codes() {
        assert_eq!(Currency::parse("EUR"), Ok(Currency::EUR));
        assert!(Currency::parse("eur").is_err());
        assert!(Currency::parse("EURO").is_err());
        assert!(Currency::parse("XYZ").is_err());
        assert!(Currency::parse("XXX").is_err(), "no currency");
        assert!(Currency::parse("XAU").is_err(), "gold");
        assert_eq!(Currency::parse("JPY").map(|c| c.minor_units()), Ok(Some(0)));
        assert_eq!(Currency::parse("KWD").map(|c| c.minor_units()), Ok(Some(3)));
    }

    #[test]
    fn money_keeps_exact_decimals() {
        let m = Money::new(dec!(0.1) + dec!(0.2), Currency::EUR);
        assert_eq!(m.amount(), dec!(0.3));
        assert_eq!(m.to_string(), "0.3 EUR");
    }
}
