//! Categorisation by rules, most reliable first (docs/categories.md):
//!
//! 1. the customer's own rules (they win over every built-in one);
//! 2. the SEPA purpose code (`SALA`, `RENT`, …);
//! 3. the bank transaction code (ISO 20022 `DOMAIN-FAMILY-SUBFAMILY`);
//! 4. the creditor id of a known creditor;
//! 5. the card's merchant category code (MCC);
//! 6. the curated list of counterparties and their spellings on statements, looking through
//!    payment services (PayPal, …) to the merchant named in the purpose;
//! 7. a transfer between the account holder's own accounts;
//! 8. words of the bank's booking text and of the purpose.
//!
//! The built-in tables are data (`data/enrich/*.toml`), embedded at build time. Texts are
//! compared normalised: upper case, umlauts and ß spelled out (`Ä` as `AE`, `ß` as `SS`),
//! accents dropped, anything but letters and digits a word break, so `REWE SAGT DANKE.` and
//! `Rewe sagt danke` are the same words. A pattern matches whole words only.

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, MatchKind};
use rust_decimal::Decimal;
use serde::Deserialize;

use super::category::{self, Category};

/// What categorisation reads of a transaction.
#[derive(Debug, Clone, Copy, Default)]
pub struct Facts<'a> {
    /// Amount, negative for debits.
    pub amount: Decimal,
    /// The counterparty's name.
    pub name: Option<&'a str>,
    /// Remittance information.
    pub purpose: Option<&'a str>,
    /// The bank's booking text.
    pub booking_text: Option<&'a str>,
    /// SEPA creditor id.
    pub creditor_id: Option<&'a str>,
    /// SEPA mandate reference.
    pub mandate_reference: Option<&'a str>,
    /// SEPA purpose code.
    pub sepa_purpose_code: Option<&'a str>,
    /// ISO 20022 bank transaction code.
    pub bank_transaction_code: Option<&'a str>,
    /// Merchant category code.
    pub mcc: Option<&'a str>,
    /// Whether the counterparty account is one of the account holder's own.
    pub own_account: bool,
}

/// What decided a transaction's category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// One of the customer's rules.
    CustomerRule,
    /// The SEPA purpose code.
    PurposeCode,
    /// The bank transaction code.
    BankTransactionCode,
    /// The creditor id of a known creditor.
    Creditor,
    /// The merchant category code.
    Mcc,
    /// A known counterparty.
    Counterparty,
    /// A transfer between the account holder's own accounts.
    OwnAccount,
    /// Words of the booking text or the purpose.
    Keyword,
}

impl Source {
    /// Every source, most reliable first.
    pub const ALL: [Self; 8] = [
        Self::CustomerRule,
        Self::PurposeCode,
        Self::BankTransactionCode,
        Self::Creditor,
        Self::Mcc,
        Self::Counterparty,
        Self::OwnAccount,
        Self::Keyword,
    ];

    /// The wire name (`category_source`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CustomerRule => "customer_rule",
            Self::PurposeCode => "purpose_code",
            Self::BankTransactionCode => "bank_transaction_code",
            Self::Creditor => "creditor",
            Self::Mcc => "mcc",
            Self::Counterparty => "counterparty",
            Self::OwnAccount => "own_account",
            Self::Keyword => "keyword",
        }
    }
}

/// A transaction's category and what decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Categorized {
    /// The category (a leaf, or a top level when only that is known).
    pub category: &'static Category,
    /// What decided.
    pub source: Source,
}

/// A rule table that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("categorisation rules: {0}")]
pub struct RuleError(pub String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodesFile {
    #[serde(default)]
    purpose: HashMap<String, String>,
    #[serde(default)]
    bank_transaction_code: HashMap<String, String>,
    #[serde(default)]
    mcc: HashMap<String, String>,
    #[serde(default)]
    creditor: HashMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CounterpartiesFile {
    #[serde(default)]
    counterparty: Vec<CounterpartyEntry>,
    #[serde(default)]
    payment_services: Option<PaymentServices>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CounterpartyEntry {
    category: String,
    names: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PaymentServices {
    names: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeywordsFile {
    #[serde(default)]
    keyword: Vec<KeywordEntry>,
    #[serde(default)]
    booking_text: Vec<KeywordEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeywordEntry {
    category: String,
    words: Vec<String>,
}

/// Whole-word patterns over normalised text, each naming a category; the leftmost longest
/// match wins.
struct Words {
    automaton: Option<AhoCorasick>,
    categories: Vec<&'static Category>,
}

impl Words {
    fn new(entries: Vec<(String, &'static Category)>) -> Result<Self, RuleError> {
        let mut patterns = Vec::with_capacity(entries.len());
        let mut categories = Vec::with_capacity(entries.len());
        let mut seen: HashMap<String, &'static str> = HashMap::new();
        for (pattern, category) in entries {
            let normal = normalize(&pattern);
            if normal.trim().is_empty() {
                return Err(RuleError(format!("an empty pattern for {}", category.id)));
            }
            if let Some(other) = seen.insert(normal.clone(), category.id) {
                if other != category.id {
                    return Err(RuleError(format!(
                        "{pattern:?} names both {other} and {}",
                        category.id
                    )));
                }
                continue;
            }
            patterns.push(normal);
            categories.push(category);
        }
        let automaton = if patterns.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(&patterns)
                    .map_err(|e| RuleError(e.to_string()))?,
            )
        };
        Ok(Self {
            automaton,
            categories,
        })
    }

    /// The category of the first (leftmost, then longest) pattern in `normal`.
    fn find(&self, normal: &str) -> Option<&'static Category> {
        let m = self.automaton.as_ref()?.find(normal)?;
        self.categories.get(m.pattern().as_usize()).copied()
    }

    fn matches(&self, normal: &str) -> bool {
        self.find(normal).is_some()
    }
}

/// The built-in rules.
pub struct Rules {
    purpose: HashMap<String, &'static Category>,
    bank_codes: HashMap<String, &'static Category>,
    mcc: Vec<(u16, u16, &'static Category)>,
    creditors: HashMap<String, &'static Category>,
    counterparties: Words,
    payment_services: Words,
    booking_texts: Words,
    keywords: Words,
}

impl std::fmt::Debug for Rules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rules")
            .field("purpose_codes", &self.purpose.len())
            .field("bank_transaction_codes", &self.bank_codes.len())
            .field("mcc_ranges", &self.mcc.len())
            .field("creditors", &self.creditors.len())
            .field(
                "counterparty_patterns",
                &self.counterparties.categories.len(),
            )
            .field("keywords", &self.keywords.categories.len())
            .finish()
    }
}

fn category_of(id: &str) -> Result<&'static Category, RuleError> {
    category::find(id).ok_or_else(|| RuleError(format!("no category {id:?}")))
}

impl Rules {
    /// The rules finX ships (`data/enrich/`).
    ///
    /// # Errors
    /// [`RuleError`] when a table does not parse or names an unknown category; the tests
    /// read them, so a release never does.
    pub fn builtin() -> Result<Self, RuleError> {
        Self::from_toml(
            include_str!("../../data/enrich/codes.toml"),
            include_str!("../../data/enrich/counterparties.toml"),
            include_str!("../../data/enrich/keywords.toml"),
        )
    }

    /// Rules from the three tables' TOML texts.
    ///
    /// # Errors
    /// [`RuleError`] for a table that does not parse, an unknown category, a malformed
    /// code or MCC range, or one pattern under two categories.
    pub fn from_toml(codes: &str, counterparties: &str, keywords: &str) -> Result<Self, RuleError> {
        let codes: CodesFile =
            toml::from_str(codes).map_err(|e| RuleError(format!("codes: {e}")))?;
        let parties: CounterpartiesFile = toml::from_str(counterparties)
            .map_err(|e| RuleError(format!("counterparties: {e}")))?;
        let words: KeywordsFile =
            toml::from_str(keywords).map_err(|e| RuleError(format!("keywords: {e}")))?;
        let table = |map: HashMap<String, String>| {
            map.into_iter()
                .map(|(k, v)| Ok((k.trim().to_ascii_uppercase(), category_of(&v)?)))
                .collect::<Result<HashMap<_, _>, RuleError>>()
        };
        let mut mcc = Vec::new();
        for (range, id) in codes.mcc {
            let (lo, hi) = range.split_once('-').unwrap_or((&range, &range));
            let parse = |s: &str| {
                s.trim()
                    .parse::<u16>()
                    .ok()
                    .filter(|n| *n <= 9999)
                    .ok_or_else(|| RuleError(format!("MCC {range:?}")))
            };
            let (lo, hi) = (parse(lo)?, parse(hi)?);
            if lo > hi {
                return Err(RuleError(format!("MCC range {range:?}")));
            }
            mcc.push((lo, hi, category_of(&id)?));
        }
        // Narrow ranges first, so a single code inside a wide range wins.
        mcc.sort_by_key(|(lo, hi, _)| (hi - lo, *lo));
        let listed = |entries: Vec<KeywordEntry>| {
            let mut out = Vec::new();
            for e in entries {
                let c = category_of(&e.category)?;
                out.extend(e.words.into_iter().map(|w| (w, c)));
            }
            Words::new(out)
        };
        let mut names = Vec::new();
        for e in parties.counterparty {
            let c = category_of(&e.category)?;
            names.extend(e.names.into_iter().map(|n| (n, c)));
        }
        // Payment services name no category of their own: any one stands in for them.
        let services = parties
            .payment_services
            .map(|p| p.names)
            .unwrap_or_default()
            .into_iter()
            .map(|n| (n, &category::TREE[0]))
            .collect();
        Ok(Self {
            purpose: table(codes.purpose)?,
            bank_codes: table(codes.bank_transaction_code)?,
            mcc,
            creditors: table(codes.creditor)?,
            counterparties: Words::new(names)?,
            payment_services: Words::new(services)?,
            booking_texts: listed(words.booking_text)?,
            keywords: listed(words.keyword)?,
        })
    }

    /// The category of a transaction by the built-in rules, or `None` when no rule knows it.
    #[must_use]
    pub fn categorize(&self, f: &Facts<'_>) -> Option<Categorized> {
        let credit = f.amount > Decimal::ZERO;
        let found = |category: &'static Category, source: Source| {
            fits(category, credit).then_some(Categorized { category, source })
        };
        if let Some(c) = f
            .sepa_purpose_code
            .and_then(|p| self.purpose.get(&p.trim().to_ascii_uppercase()))
            .and_then(|c| found(c, Source::PurposeCode))
        {
            return Some(c);
        }
        if let Some(c) = f
            .bank_transaction_code
            .and_then(|code| self.bank_code(code))
            .and_then(|c| found(c, Source::BankTransactionCode))
        {
            return Some(c);
        }
        if let Some(c) = f
            .creditor_id
            .and_then(|id| self.creditors.get(&id.trim().to_ascii_uppercase()))
            .and_then(|c| found(c, Source::Creditor))
        {
            return Some(c);
        }
        if let Some(c) = f
            .mcc
            .and_then(|m| m.trim().parse::<u16>().ok())
            .and_then(|m| {
                self.mcc
                    .iter()
                    .find(|(lo, hi, _)| (*lo..=*hi).contains(&m))
                    .map(|(_, _, c)| *c)
            })
            .and_then(|c| merchant(c, credit, Source::Mcc))
        {
            return Some(c);
        }
        if let Some(c) = self.counterparty(f, credit) {
            return Some(c);
        }
        if f.own_account {
            return category::find("transfers.own_accounts").map(|category| Categorized {
                category,
                source: Source::OwnAccount,
            });
        }
        let by_words = |words: &Words, text: Option<&str>| {
            text.map(normalize)
                .and_then(|t| words.find(&t))
                .and_then(|c| found(c, Source::Keyword))
        };
        by_words(&self.booking_texts, f.booking_text)
            .or_else(|| by_words(&self.keywords, f.purpose))
    }

    /// A bank transaction code's category: the whole code, else its family.
    fn bank_code(&self, code: &str) -> Option<&'static Category> {
        let code = code.trim().to_ascii_uppercase();
        self.bank_codes.get(&code).copied().or_else(|| {
            let family: Vec<&str> = code.splitn(3, '-').take(2).collect();
            (family.len() == 2)
                .then(|| self.bank_codes.get(&family.join("-")).copied())
                .flatten()
        })
    }

    /// A known counterparty: by name; through a payment service, or when the bank gives no
    /// name, or for a card payment whose name is the card scheme's, by the purpose.
    fn counterparty(&self, f: &Facts<'_>, credit: bool) -> Option<Categorized> {
        let name = f.name.map(normalize);
        let purpose = f.purpose.map(normalize);
        let through = name
            .as_deref()
            .is_none_or(|n| n.trim().is_empty() || self.payment_services.matches(n));
        let card = f
            .booking_text
            .map(normalize)
            .is_some_and(|b| b.contains(" KARTENZAHLUNG ") || b.contains(" KARTE "))
            || f.bank_transaction_code
                .is_some_and(|c| c.trim().to_ascii_uppercase().starts_with("PMNT-CCRD"));
        let by_name = name
            .as_deref()
            .filter(|_| !through)
            .and_then(|n| self.counterparties.find(n));
        let by_purpose = || {
            (through || card)
                .then_some(purpose.as_deref())
                .flatten()
                .and_then(|p| self.counterparties.find(p))
        };
        by_name
            .or_else(by_purpose)
            .and_then(|c| merchant(c, credit, Source::Counterparty))
    }
}

/// Whether a category fits the direction of the money: income only comes in; the rest,
/// but transfers, only goes out (a credit from a merchant is a refund, see [`merchant`]).
fn fits(category: &Category, credit: bool) -> bool {
    match category.top().id {
        "income" => credit,
        "transfers" | "cash" | "fees" | "taxes" => true,
        _ => !credit,
    }
}

/// A merchant's category; money coming in from a merchant is a refund.
fn merchant(category: &'static Category, credit: bool, source: Source) -> Option<Categorized> {
    if fits(category, credit) {
        return Some(Categorized { category, source });
    }
    let refund = credit && !matches!(category.top().id, "income");
    refund
        .then(|| category::find("income.refunds"))
        .flatten()
        .map(|category| Categorized { category, source })
}

/// Text as the rules compare it: upper case, umlauts and ß spelled out, accents dropped,
/// every run of other characters one space, with a space before and after (so patterns,
/// normalised alike, match whole words only).
#[must_use]
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push(' ');
    let mut space = true;
    for ch in text.chars() {
        let spelled: Option<&str> = match ch {
            'ä' | 'Ä' => Some("AE"),
            'ö' | 'Ö' => Some("OE"),
            'ü' | 'Ü' => Some("UE"),
            'ß' | 'ẞ' => Some("SS"),
            'à' | 'á' | 'â' | 'ã' | 'å' | 'À' | 'Á' | 'Â' | 'Ã' | 'Å' => Some("A"),
            'ç' | 'Ç' | 'ć' | 'Ć' | 'č' | 'Č' => Some("C"),
            'è' | 'é' | 'ê' | 'ë' | 'È' | 'É' | 'Ê' | 'Ë' | 'ę' | 'Ę' => Some("E"),
            'ì' | 'í' | 'î' | 'ï' | 'Ì' | 'Í' | 'Î' | 'Ï' | 'ı' | 'İ' => Some("I"),
            'ñ' | 'Ñ' | 'ń' | 'Ń' => Some("N"),
            'ò' | 'ó' | 'ô' | 'õ' | 'ø' | 'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ø' => Some("O"),
            'ù' | 'ú' | 'û' | 'Ù' | 'Ú' | 'Û' => Some("U"),
            'ł' | 'Ł' => Some("L"),
            'ś' | 'Ś' | 'š' | 'Š' | 'ş' | 'Ş' => Some("S"),
            'ź' | 'Ź' | 'ż' | 'Ż' | 'ž' | 'Ž' => Some("Z"),
            'ğ' | 'Ğ' => Some("G"),
            _ => None,
        };
        if let Some(s) = spelled {
            out.push_str(s);
            space = false;
        } else if ch.is_ascii_alphanumeric() {
            out.push(ch.to_ascii_uppercase());
            space = false;
        } else if ch == '&' || ch == '+' {
            // Part of names ("1&1", "R+V", "C&A"): kept, a word of its own.
            if !space {
                out.push(' ');
            }
            out.push(ch);
            out.push(' ');
            space = true;
        } else if !space {
            out.push(' ');
            space = true;
        }
    }
    if !space {
        out.push(' ');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules::builtin().expect("the built-in tables read")
    }

    fn facts(amount: i64, name: &str, purpose: &str) -> Facts<'static> {
        Facts {
            amount: Decimal::new(amount, 2),
            name: Some(Box::leak(name.to_owned().into_boxed_str())),
            purpose: Some(Box::leak(purpose.to_owned().into_boxed_str())),
            ..Facts::default()
        }
    }

    #[test]
    fn text_is_compared_as_whole_words_spelled_out() {
        assert_eq!(normalize("REWE sagt Danke."), " REWE SAGT DANKE ");
        assert_eq!(normalize("Bäckerei Weiß"), " BAECKEREI WEISS ");
        assert_eq!(normalize("1&1 Telecom"), " 1 & 1 TELECOM ");
        assert_eq!(normalize("  "), " ");
    }

    #[test]
    fn the_built_in_tables_read_and_name_only_known_categories() {
        let r = rules();
        assert!(!r.purpose.is_empty() && !r.counterparties.categories.is_empty());
    }

    #[test]
    fn the_most_reliable_rule_decides() {
        let r = rules();
        // A purpose code beats the counterparty's name.
        let mut f = facts(250_000, "REWE Markt GmbH", "Gehalt 05/2026");
        f.sepa_purpose_code = Some("SALA");
        let c = r.categorize(&f).expect("known");
        assert_eq!(
            (c.category.id, c.source),
            ("income.salary", Source::PurposeCode)
        );
        // A credit from a merchant is a refund.
        let c = r
            .categorize(&facts(1_999, "REWE Markt GmbH", "Erstattung"))
            .expect("known");
        assert_eq!(c.category.id, "income.refunds");
        // Looking through PayPal to the merchant in the purpose.
        let c = r
            .categorize(&facts(
                -1_099,
                "PayPal (Europe) S.a.r.l. et Cie., S.C.A.",
                "1049381234567 PP.5678.PP . Spotify AB, Ihr Einkauf bei Spotify AB",
            ))
            .expect("known");
        assert_eq!(
            (c.category.id, c.source),
            ("subscriptions.streaming", Source::Counterparty)
        );
        // Own accounts.
        let mut f = facts(-50_000, "Max Mustermann", "Umbuchung");
        f.own_account = true;
        assert_eq!(
            r.categorize(&f).map(|c| (c.category.id, c.source)),
            Some(("transfers.own_accounts", Source::OwnAccount))
        );
        // The booking text decides a withdrawal whose purpose is the machine's.
        let mut f = facts(
            -10_000,
            "Geldautomat finX Sandbox Bank",
            "GA NR00000023 BLZ90094815 12.06/21.11UHR Musterstadt",
        );
        f.booking_text = Some("BARGELDAUSZAHLUNG");
        assert_eq!(
            r.categorize(&f).map(|c| (c.category.id, c.source)),
            Some(("cash.withdrawal", Source::Keyword))
        );
        // Nothing known: no guess.
        assert!(
            r.categorize(&facts(-1_000, "Jonas Becker", "Danke"))
                .is_none()
        );
    }

    /// A floor under the evaluation `cargo xtask bench` reports in full: the rules must not
    /// get worse on the labelled set without a test failing.
    #[test]
    fn the_labelled_set_stays_above_its_floor() {
        let r = rules();
        let (mut labelled, mut covered, mut right) = (0u32, 0u32, 0u32);
        for line in include_str!("../../data/enrich/eval-transactions.jsonl").lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("json line");
            let s = |k: &str| v[k].as_str();
            let Some(expected) = s("expected") else {
                continue;
            };
            let f = Facts {
                amount: s("amount").and_then(|a| a.parse().ok()).expect("amount"),
                name: s("name"),
                purpose: s("purpose"),
                booking_text: s("booking_text"),
                creditor_id: s("creditor_id"),
                mandate_reference: s("mandate_reference"),
                sepa_purpose_code: s("sepa_purpose_code"),
                bank_transaction_code: s("bank_transaction_code"),
                mcc: s("mcc"),
                own_account: v["own_account"].as_bool().unwrap_or(false),
            };
            labelled += 1;
            if let Some(c) = r.categorize(&f) {
                covered += 1;
                if c.category.top().id == expected.split('.').next().unwrap_or(expected) {
                    right += 1;
                }
            }
        }
        assert!(labelled >= 300, "{labelled} labelled lines");
        assert!(
            covered * 100 >= labelled * 85,
            "coverage {covered}/{labelled}"
        );
        assert!(right * 100 >= covered * 95, "precision {right}/{covered}");
    }

    #[test]
    fn bad_tables_are_refused_with_the_reason() {
        let e = Rules::from_toml("[purpose]\nSALA = \"nope\"\n", "", "").expect_err("unknown");
        assert!(e.0.contains("nope"), "{e}");
        let e = Rules::from_toml("[mcc]\n\"9-1\" = \"food\"\n", "", "").expect_err("range");
        assert!(e.0.contains("MCC"), "{e}");
        let twice = "[[counterparty]]\ncategory = \"food\"\nnames = [\"X Y\"]\n[[counterparty]]\ncategory = \"health\"\nnames = [\"x-y\"]\n";
        let e = Rules::from_toml("", twice, "").expect_err("twice");
        assert!(e.0.contains("both"), "{e}");
    }
}
