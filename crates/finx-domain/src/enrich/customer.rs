//! A customer's own categorisation rules: they win over every built-in rule, in the order
//! the customer gave them.

use rust_decimal::Decimal;

use super::category::{self, Category};
use super::rules::{Categorized, Facts, Source, normalize};

/// One rule of a customer: every condition given must hold (at least one is given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerRule {
    /// Its id (`R…`), unique per customer.
    pub id: String,
    /// The category it gives.
    pub category: &'static Category,
    /// Words the counterparty's name contains (whole words, compared normalised).
    pub name_contains: Option<String>,
    /// Words the purpose contains (whole words, compared normalised).
    pub purpose_contains: Option<String>,
    /// The SEPA creditor id, exactly.
    pub creditor_id: Option<String>,
    /// The counterparty's IBAN, exactly (spaces ignored).
    pub iban: Option<String>,
    /// The least amount (inclusive; negative for debits).
    pub min_amount: Option<Decimal>,
    /// The greatest amount (inclusive).
    pub max_amount: Option<Decimal>,
}

/// Why a rule is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CustomerRuleError {
    /// The category is not in the tree.
    #[error("no category {0:?}")]
    UnknownCategory(String),
    /// No condition given: it would match everything.
    #[error("give at least one condition")]
    NoCondition,
    /// A text condition without a letter or digit, or over 200 characters.
    #[error("{0} must hold 1 to 200 characters with a letter or digit")]
    BadText(&'static str),
    /// `min_amount` above `max_amount`.
    #[error("min_amount is above max_amount")]
    EmptyRange,
}

/// The parts of a new rule, as a customer gives them.
#[derive(Debug, Clone, Default)]
pub struct NewCustomerRule {
    /// The category id.
    pub category: String,
    /// See [`CustomerRule::name_contains`].
    pub name_contains: Option<String>,
    /// See [`CustomerRule::purpose_contains`].
    pub purpose_contains: Option<String>,
    /// See [`CustomerRule::creditor_id`].
    pub creditor_id: Option<String>,
    /// See [`CustomerRule::iban`].
    pub iban: Option<String>,
    /// See [`CustomerRule::min_amount`].
    pub min_amount: Option<Decimal>,
    /// See [`CustomerRule::max_amount`].
    pub max_amount: Option<Decimal>,
}

impl CustomerRule {
    /// A rule from its parts, checked.
    ///
    /// # Errors
    /// [`CustomerRuleError`] for an unknown category, no condition, an unusable text or an
    /// empty amount range.
    pub fn new(id: String, new: NewCustomerRule) -> Result<Self, CustomerRuleError> {
        let category = category::find(new.category.trim())
            .ok_or_else(|| CustomerRuleError::UnknownCategory(new.category.clone()))?;
        let text =
            |field: &'static str, v: Option<String>| -> Result<Option<String>, CustomerRuleError> {
                v.map(|t| {
                    let t = t.trim().to_owned();
                    if t.chars().count() > 200 || normalize(&t).trim().is_empty() {
                        Err(CustomerRuleError::BadText(field))
                    } else {
                        Ok(t)
                    }
                })
                .transpose()
            };
        let rule = Self {
            id,
            category,
            name_contains: text("name_contains", new.name_contains)?,
            purpose_contains: text("purpose_contains", new.purpose_contains)?,
            creditor_id: text("creditor_id", new.creditor_id)?.map(|c| c.to_ascii_uppercase()),
            iban: text("iban", new.iban)?.map(|i| {
                i.chars()
                    .filter(|c| !c.is_whitespace())
                    .collect::<String>()
                    .to_ascii_uppercase()
            }),
            min_amount: new.min_amount,
            max_amount: new.max_amount,
        };
        if rule.name_contains.is_none()
            && rule.purpose_contains.is_none()
            && rule.creditor_id.is_none()
            && rule.iban.is_none()
            && rule.min_amount.is_none()
            && rule.max_amount.is_none()
        {
            return Err(CustomerRuleError::NoCondition);
        }
        if let (Some(lo), Some(hi)) = (rule.min_amount, rule.max_amount) {
            if lo > hi {
                return Err(CustomerRuleError::EmptyRange);
            }
        }
        Ok(rule)
    }

    /// Whether it holds for a transaction whose counterparty IBAN is `iban`.
    #[must_use]
    pub fn matches(&self, f: &Facts<'_>, iban: Option<&str>) -> bool {
        let words = |pattern: &Option<String>, text: Option<&str>| {
            pattern.as_ref().is_none_or(|p| {
                let p = normalize(p);
                text.is_some_and(|t| normalize(t).contains(&p))
            })
        };
        words(&self.name_contains, f.name)
            && words(&self.purpose_contains, f.purpose)
            && self.creditor_id.as_ref().is_none_or(|c| {
                f.creditor_id
                    .is_some_and(|x| x.trim().eq_ignore_ascii_case(c))
            })
            && self.iban.as_ref().is_none_or(|i| {
                iban.is_some_and(|x| {
                    x.chars()
                        .filter(|c| !c.is_whitespace())
                        .collect::<String>()
                        .eq_ignore_ascii_case(i)
                })
            })
            && self.min_amount.is_none_or(|lo| f.amount >= lo)
            && self.max_amount.is_none_or(|hi| f.amount <= hi)
    }
}

/// The first of `rules` that holds, as a categorisation.
#[must_use]
pub fn first_match(
    rules: &[CustomerRule],
    f: &Facts<'_>,
    iban: Option<&str>,
) -> Option<Categorized> {
    rules
        .iter()
        .find(|r| r.matches(f, iban))
        .map(|r| Categorized {
            category: r.category,
            source: Source::CustomerRule,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(new: NewCustomerRule) -> Result<CustomerRule, CustomerRuleError> {
        CustomerRule::new("R1".into(), new)
    }

    #[test]
    fn a_rule_needs_a_known_category_and_a_condition() {
        assert_eq!(
            rule(NewCustomerRule {
                category: "food".into(),
                ..Default::default()
            }),
            Err(CustomerRuleError::NoCondition)
        );
        assert!(matches!(
            rule(NewCustomerRule {
                category: "nope".into(),
                name_contains: Some("x".into()),
                ..Default::default()
            }),
            Err(CustomerRuleError::UnknownCategory(_))
        ));
        assert_eq!(
            rule(NewCustomerRule {
                category: "food".into(),
                name_contains: Some(" -- ".into()),
                ..Default::default()
            }),
            Err(CustomerRuleError::BadText("name_contains"))
        );
        assert_eq!(
            rule(NewCustomerRule {
                category: "food".into(),
                min_amount: Some(Decimal::ONE),
                max_amount: Some(Decimal::ZERO),
                ..Default::default()
            }),
            Err(CustomerRuleError::EmptyRange)
        );
    }

    #[test]
    fn every_condition_must_hold_and_words_are_whole() {
        let r = rule(NewCustomerRule {
            category: "family.childcare".into(),
            name_contains: Some("Kita Sonnenschein".into()),
            max_amount: Some(Decimal::ZERO),
            ..Default::default()
        })
        .expect("valid");
        let f = |name: &'static str, amount: i64| Facts {
            amount: Decimal::new(amount, 0),
            name: Some(name),
            ..Facts::default()
        };
        assert!(r.matches(&f("KITA SONNENSCHEIN E.V.", -180), None));
        assert!(
            !r.matches(&f("KITA SONNENSCHEIN E.V.", 180), None),
            "a credit"
        );
        assert!(
            !r.matches(&f("Kitas Sonnenscheinchen", -180), None),
            "whole words"
        );
        let c = first_match(&[r], &f("Kita Sonnenschein", -1), None).expect("match");
        assert_eq!(
            (c.category.id, c.source),
            ("family.childcare", Source::CustomerRule)
        );
        let by_iban = rule(NewCustomerRule {
            category: "housing.rent".into(),
            iban: Some("DE89 3704 0044 0532 0130 00".into()),
            ..Default::default()
        })
        .expect("valid");
        assert!(by_iban.matches(&f("Vermieter", -900), Some("DE89370400440532013000")));
        assert!(!by_iban.matches(&f("Vermieter", -900), None));
    }
}
