//! Enrichment: categories for transactions, by built-in rules and a customer's own.

pub mod category;
pub mod customer;
pub mod names;
pub mod rules;

pub use category::{Category, TREE};
pub use customer::{CustomerRule, CustomerRuleError, NewCustomerRule};
pub use rules::{Categorized, Facts, RuleError, Rules, Source};
