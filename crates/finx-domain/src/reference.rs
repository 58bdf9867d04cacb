//! Account references a customer may pass in `accounts`: IBAN, national account number or
//! card PAN.

use std::fmt;

use iban::IbanLike as _;

use thiserror::Error;

/// Why an account reference was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReferenceError {
    /// Not a well-formed IBAN (characters, country length or mod-97 check).
    #[error("invalid IBAN: {0}")]
    Iban(&'static str),
    /// Looks like a card number but fails the Luhn check.
    #[error("invalid card number (Luhn check failed)")]
    Pan,
    /// Neither IBAN, account number nor card number.
    #[error("not an IBAN, account number or card number")]
    Unrecognised,
}

/// A checksum-validated IBAN in electronic format (no spaces, upper case).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Iban(iban::Iban);

impl Iban {
    /// Parses an IBAN, accepting the print format with spaces and lower case.
    ///
    /// # Errors
    /// [`ReferenceError::Iban`] naming the rule that failed.
    pub fn parse(raw: &str) -> Result<Self, ReferenceError> {
        use iban::{ParseBaseIbanError, ParseIbanError};
        let s: String = raw
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if !s.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(ReferenceError::Iban("only letters and digits are allowed"));
        }
        // The ISO 13616 registry's rules, as `iban_validate` keeps them: the country, its
        // length and BBAN format, and the mod-97 check.
        s.parse::<iban::Iban>().map(Self).map_err(|e| {
            ReferenceError::Iban(match e {
                ParseIbanError::InvalidBaseIban {
                    source: ParseBaseIbanError::InvalidChecksum,
                } => "check digits do not match",
                ParseIbanError::InvalidBaseIban { .. } => {
                    "must be a country code, two check digits and up to 30 letters or digits"
                }
                ParseIbanError::UnknownCountry(_) => "unknown country",
                ParseIbanError::InvalidBban(_) => "wrong length or format for its country",
            })
        })
    }

    /// The IBAN in electronic format.
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.0.electronic_str()
    }

    /// The ISO country code.
    #[must_use]
    pub fn country(&self) -> &str {
        self.0.country_code()
    }

    /// The national bank code (the German BLZ, for example), when the country's layout is
    /// known.
    #[must_use]
    pub fn bank_code(&self) -> Option<&str> {
        self.0.bank_identifier()
    }

    /// The national account number, for German IBANs (the last ten digits, leading zeros
    /// stripped).
    #[must_use]
    pub fn german_account_number(&self) -> Option<&str> {
        if self.country() != "DE" {
            return None;
        }
        let n = self.as_str()[12..].trim_start_matches('0');
        Some(if n.is_empty() { "0" } else { n })
    }

    /// Builds the IBAN of a German account from its bank code and account number.
    ///
    /// # Errors
    /// [`ReferenceError::Iban`] when the bank code is not eight digits or the account number
    /// not one to ten digits.
    pub fn from_german(bank_code: &str, account_number: &str) -> Result<Self, ReferenceError> {
        if bank_code.len() != 8 || !bank_code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ReferenceError::Iban("bank code must be eight digits"));
        }
        if account_number.is_empty()
            || account_number.len() > 10
            || !account_number.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(ReferenceError::Iban(
                "account number must be one to ten digits",
            ));
        }
        let bban = format!("{bank_code}{account_number:0>10}");
        let check = 98 - mod97(bban.chars().chain("DE00".chars()));
        Self::parse(&format!("DE{check:02}{bban}"))
    }
}

impl fmt::Debug for Iban {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Iban({})", self.as_str())
    }
}

impl fmt::Display for Iban {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// ISO 7064 mod 97-10 over alphanumerics, letters counting as 10..=35: to make the check
/// digits of a German IBAN built from its parts (`iban_validate` checks, it does not make).
fn mod97(chars: impl Iterator<Item = char>) -> u32 {
    let mut acc: u32 = 0;
    for c in chars {
        let v = c.to_digit(36).unwrap_or(0);
        acc = if v >= 10 {
            (acc * 100 + v) % 97
        } else {
            (acc * 10 + v) % 97
        };
    }
    acc
}

/// A payment card number (PAN), Luhn-checked. Its `Debug` shows only the last four digits.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Pan(String);

impl Pan {
    /// Parses a card number of 12 to 19 digits, spaces and dashes allowed.
    ///
    /// # Errors
    /// [`ReferenceError::Pan`] when the Luhn check fails or the length is wrong.
    pub fn parse(raw: &str) -> Result<Self, ReferenceError> {
        let digits: String = raw.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        if !(12..=19).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ReferenceError::Pan);
        }
        let sum: u32 = digits
            .bytes()
            .rev()
            .enumerate()
            .map(|(i, b)| {
                let d = u32::from(b - b'0');
                if i % 2 == 1 {
                    if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
                } else {
                    d
                }
            })
            .sum();
        if sum % 10 != 0 {
            return Err(ReferenceError::Pan);
        }
        Ok(Self(digits))
    }

    /// The digits.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last four digits.
    #[must_use]
    pub fn last4(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }
}

impl fmt::Debug for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pan(****{})", self.last4())
    }
}

/// An account the customer already knows, passed to preselect the bank and accounts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AccountReference {
    /// An IBAN; its bank code identifies the bank.
    Iban(Iban),
    /// A national account number (digits, up to 30).
    AccountNumber(String),
    /// A card, by the last four digits of its number: the only part finX uses. The whole
    /// number is checked (Luhn) when parsed and then dropped, so it is never stored.
    CardLast4(String),
}

impl AccountReference {
    /// Classifies and validates a reference: two letters first means IBAN; 12 to 19 digits
    /// passing Luhn means card; otherwise up to 30 digits is an account number.
    ///
    /// # Errors
    /// The error of the kind it looked like, or [`ReferenceError::Unrecognised`].
    pub fn parse(raw: &str) -> Result<Self, ReferenceError> {
        let compact: String = raw.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        if compact.len() >= 2 && compact.as_bytes()[..2].iter().all(u8::is_ascii_alphabetic) {
            return Iban::parse(raw).map(Self::Iban);
        }
        if compact.is_empty() || compact.len() > 30 || !compact.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(ReferenceError::Unrecognised);
        }
        if (12..=19).contains(&compact.len()) {
            if let Ok(pan) = Pan::parse(&compact) {
                return Ok(Self::CardLast4(pan.last4().to_owned()));
            }
        }
        Ok(Self::AccountNumber(compact))
    }

    /// The bank code this reference points at, when it carries one (IBANs only).
    #[must_use]
    pub fn bank_code(&self) -> Option<&str> {
        match self {
            Self::Iban(iban) => iban.bank_code(),
            Self::AccountNumber(_) | Self::CardLast4(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_guide_iban_is_valid_and_names_its_bank() {
        let iban = Iban::parse("DE82 9009 4815 0000 0028 81").expect("valid");
        assert_eq!(iban.as_str(), "DE82900948150000002881");
        assert_eq!(iban.bank_code(), Some("90094815"));
        assert_eq!(iban.german_account_number(), Some("2881"));
    }

    #[test]
    fn bad_ibans_are_rejected() {
        for bad in [
            "DE83900948150000002881",
            "DE8290094815000000288",
            "XX82900948150000002881",
            "DE82-9009",
            "",
            "DE",
        ] {
            assert!(Iban::parse(bad).is_err(), "{bad}");
        }
        assert!(Iban::parse("GB82 WEST 1234 5698 7654 32").is_ok());
        assert!(Iban::parse("AT611904300234573201").is_ok());
    }

    #[test]
    fn german_ibans_are_built_from_bank_code_and_account() {
        let iban = Iban::from_german("90094815", "2881").expect("valid");
        assert_eq!(iban.as_str(), "DE82900948150000002881");
    }

    #[test]
    fn references_are_classified() {
        assert!(matches!(
            AccountReference::parse("DE82900948150000002881"),
            Ok(AccountReference::Iban(_))
        ));
        assert_eq!(
            AccountReference::parse("4111 1111 1111 1111"),
            Ok(AccountReference::CardLast4("1111".into())),
            "only the last four digits are kept"
        );
        assert!(matches!(
            AccountReference::parse("2881"),
            Ok(AccountReference::AccountNumber(_))
        ));
        assert!(AccountReference::parse("hello").is_err());
        assert!(AccountReference::parse("").is_err());
        let pan = Pan::parse("4111111111111111").expect("valid");
        assert_eq!(format!("{pan:?}"), "Pan(****1111)");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn every_german_account_round_trips_and_one_changed_digit_is_caught(
            blz in "[1-9][0-9]{7}", acct in "[0-9]{1,10}", pos in 4usize..22, delta in 1u8..10,
        ) {
            let iban = Iban::from_german(&blz, &acct).expect("valid");
            prop_assert_eq!(iban.bank_code(), Some(blz.as_str()));
            let mut bytes = iban.as_str().as_bytes().to_vec();
            bytes[pos] = b'0' + (bytes[pos] - b'0' + delta) % 10;
            let changed = String::from_utf8(bytes).expect("ascii");
            prop_assert!(Iban::parse(&changed).is_err());
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(s in "\\PC{0,40}") {
            let _ = AccountReference::parse(&s);
        }
    }
}
