//! SEPA identifiers: creditor identifiers and counterparty IBANs.

use finx_domain::reference::Iban;

/// ISO 7064 mod 97-10 over digits and letters (A = 10 … Z = 35).
fn mod97(text: &str) -> u32 {
    text.chars().fold(0, |acc, c| match c.to_digit(36) {
        Some(v) if v >= 10 => (acc * 100 + v) % 97,
        Some(v) => (acc * 10 + v) % 97,
        None => acc,
    })
}

/// A SEPA creditor identifier: country, two check digits, the business code `ZZZ` and the
/// national identifier. The check digits are computed as for an IBAN over the national
/// identifier followed by the country and `00`; the business code is not part of it.
pub(crate) fn creditor_id(country: &str, national: &str) -> String {
    let check = 98 - mod97(&format!("{national}{country}00"));
    format!("{country}{check:02}ZZZ{national}")
}

/// The IBAN of a German account, or `None` if the parts are not digits of the right length.
pub(crate) fn german_iban(bank_code: &str, account_number: &str) -> Option<Iban> {
    Iban::from_german(bank_code, account_number).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creditor_ids_get_the_check_digits_of_the_published_examples() {
        // The Bundesbank's example creditor identifier.
        assert_eq!(creditor_id("DE", "09999999999"), "DE98ZZZ09999999999");
        // Whatever the national part, the identifier passes its own check.
        for national in ["00000482915", "0ABC1234567", "00000000001"] {
            let id = creditor_id("DE", national);
            let check = &id[2..4];
            assert_eq!(mod97(&format!("{national}DE{check}")), 1, "{id}");
            assert_eq!(id.len(), 18);
        }
    }
}
