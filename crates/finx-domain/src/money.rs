//! Money: an exact decimal amount and an ISO 4217 currency. Never floating point.

use std::fmt;

use rust_decimal::Decimal;
use thiserror::Error;

/// A currency code was not three upper-case letters of a known currency.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("not an ISO 4217 currency code: {0}")]
pub struct CurrencyError(pub String);

/// ISO 4217 codes we accept: the active codes that a European bank account may be held in.
const KNOWN: &[&str] = &[
    "AED", "AUD", "BGN", "BRL", "CAD", "CHF", "CNY", "CZK", "DKK", "EUR", "GBP", "HKD", "HUF",
    "ILS", "INR", "ISK", "JPY", "KRW", "MXN", "NOK", "NZD", "PLN", "RON", "RSD", "SEK", "SGD",
    "TRY", "UAH", "USD", "ZAR",
];

/// An ISO 4217 currency code.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    /// The euro.
    pub const EUR: Self = Self(*b"EUR");

    /// Parses a known ISO 4217 code, case-sensitively upper case.
    ///
    /// # Errors
    /// [`CurrencyError`] for anything else.
    pub fn parse(raw: &str) -> Result<Self, CurrencyError> {
        let known = KNOWN
            .iter()
            .find(|c| **c == raw)
            .ok_or_else(|| CurrencyError(raw.chars().take(8).collect()))?;
        let b = known.as_bytes();
        Ok(Self([b[0], b[1], b[2]]))
    }

    /// The code.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // The bytes are copied from a KNOWN entry, which is ASCII.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
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
    }

    #[test]
    fn money_keeps_exact_decimals() {
        let m = Money::new(dec!(0.1) + dec!(0.2), Currency::EUR);
        assert_eq!(m.amount(), dec!(0.3));
        assert_eq!(m.to_string(), "0.3 EUR");
    }
}
