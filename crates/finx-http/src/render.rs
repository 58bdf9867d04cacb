//! Transactions rendered once: the JSON of a transaction is kept, bounded in size, and
//! used again for as long as the store returns that transaction unchanged.
//!
//! A page of 100 transactions is about 60 kB of JSON; building it field by field (the wire
//! values, escaping every string, formatting decimals and times) was most of what a page
//! cost once the data was at hand (profiled with perf: `format_escaped_str`, the map
//! serialisation and the wire values' allocations). The cache holds each transaction's
//! JSON next to the transaction it was made from, and gives it back only when the store's
//! current value is equal in every field: nothing deleted or changed is ever served from it.
//! What it holds is bounded in bytes and evicted by use (S3-FIFO, `quick_cache`).

use std::sync::Arc;

use axum::body::Bytes;
use finx_domain::bank::Transaction;
use finx_domain::enrich::Categorized;
use finx_domain::ids::TransactionId;
use finx_domain::values::Language;

use crate::wire::TransactionDto;

/// The default bound of the cache: 32 MiB of rendered JSON.
pub const DEFAULT_CACHE_BYTES: u64 = 32 << 20;

#[derive(Clone)]
struct Weight;

impl quick_cache::Weighter<TransactionId, Arc<Entry>> for Weight {
    fn weight(&self, _key: &TransactionId, entry: &Arc<Entry>) -> u64 {
        // The JSON and roughly as much again for the transaction kept beside it.
        (entry.json.len() as u64).saturating_mul(2).max(1)
    }
}

struct Entry {
    of: Transaction,
    category: Option<Categorized>,
    language: Language,
    json: Bytes,
}

/// The rendered JSON of transactions, shared by every request of an instance.
#[derive(Clone)]
pub struct Renderer {
    cache: Option<Arc<quick_cache::sync::Cache<TransactionId, Arc<Entry>, Weight>>>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("entries", &self.cache.as_ref().map(|c| c.len()))
            .finish()
    }
}

impl Renderer {
    /// A renderer keeping up to `bytes` of rendered JSON (0: none, every transaction is
    /// rendered anew).
    #[must_use]
    pub fn new(bytes: u64) -> Self {
        let cache = (bytes > 0).then(|| {
            // A transaction's JSON is about 600 bytes.
            let items = usize::try_from(bytes / 1_200).unwrap_or(usize::MAX).max(16);
            Arc::new(quick_cache::sync::Cache::with_weighter(
                items, bytes, Weight,
            ))
        });
        Self { cache }
    }

    /// The JSON of one transaction with its category in `language`, as [`TransactionDto`]
    /// serialises it.
    #[must_use]
    pub fn one(
        &self,
        t: &Transaction,
        category: Option<&Categorized>,
        language: Language,
    ) -> Bytes {
        let Some(cache) = &self.cache else {
            return Self::render(t, category, language);
        };
        if let Some(e) = cache.get(&t.id) {
            if e.of == *t && e.category.as_ref() == category && e.language == language {
                return e.json.clone();
            }
        }
        let json = Self::render(t, category, language);
        cache.insert(
            t.id.clone(),
            Arc::new(Entry {
                of: t.clone(),
                category: category.copied(),
                language,
                json: json.clone(),
            }),
        );
        json
    }

    /// `[t1,t2,…]`: the JSON array of `txs` with their `categories` (one each, in order),
    /// appended to `out`.
    pub fn array_into(
        &self,
        txs: &[Transaction],
        categories: &[Option<Categorized>],
        language: Language,
        out: &mut Vec<u8>,
    ) {
        out.push(b'[');
        for (i, t) in txs.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let category = categories.get(i).and_then(Option::as_ref);
            out.extend_from_slice(&self.one(t, category, language));
        }
        out.push(b']');
    }

    /// `{"transactions":[…]}`, the body of a transaction list.
    #[must_use]
    pub fn list(
        &self,
        txs: &[Transaction],
        categories: &[Option<Categorized>],
        language: Language,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(24 + txs.len() * 640);
        out.extend_from_slice(b"{\"transactions\":");
        self.array_into(txs, categories, language, &mut out);
        out.push(b'}');
        out
    }

    fn render(t: &Transaction, category: Option<&Categorized>, language: Language) -> Bytes {
        // Serialising a plain struct of strings, numbers and decimals cannot fail.
        Bytes::from(
            serde_json::to_vec(&TransactionDto::of(t, category, language)).unwrap_or_default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use finx_domain::money::{Currency, Money};

    use super::*;
    use crate::wire::TransactionList;

    fn sample(n: u32) -> Transaction {
        use finx_domain::bank::{Counterparty, TransactionDetails, TransactionType};
        use finx_domain::ids::AccountId;
        let at = chrono::DateTime::from_timestamp(1_700_000_000 + i64::from(n), 0).expect("t");
        let account = AccountId::derive(&["Xa", "giro"]);
        let details = TransactionDetails {
            external_id: format!("ext-{n}"),
            amount: Money::new(
                rust_decimal::Decimal::new(-1234 - i64::from(n), 2),
                Currency::EUR,
            ),
            counterparty: Counterparty {
                name: Some(format!("REWE \"Markt\" {n} \u{e4}\n")),
                iban: None,
                bic: None,
                account_number: None,
                bank_code: None,
            },
            purpose: Some("Einkauf\\ 12/2026".into()),
            booked_on: at.date_naive(),
            value_date: at.date_naive(),
            booked: n % 2 == 0,
            booking_text: None,
            transaction_type: TransactionType::DirectDebit,
            creditor_id: None,
            mandate_reference: None,
            end_to_end_reference: None,
            sepa_purpose_code: None,
            bank_transaction_code: None,
            mcc: None,
        };
        Transaction {
            id: Transaction::id_for(&account, &details.external_id),
            account_id: account,
            details,
            created_at: at,
            modified_at: at,
        }
    }

    #[test]
    fn a_list_is_byte_for_byte_what_serde_makes_cached_or_not() {
        let txs: Vec<Transaction> = (0..5).map(sample).collect();
        let groceries = finx_domain::enrich::category::find("food.groceries").expect("leaf");
        let cats: Vec<Option<Categorized>> = (0..5)
            .map(|i| {
                (i % 2 == 0).then_some(Categorized {
                    category: groceries,
                    source: finx_domain::enrich::Source::Counterparty,
                })
            })
            .collect();
        for language in [Language::De, Language::En] {
            let serde = serde_json::to_vec(&TransactionList {
                transactions: txs
                    .iter()
                    .zip(&cats)
                    .map(|(t, c)| TransactionDto::of(t, c.as_ref(), language))
                    .collect(),
            })
            .expect("json");
            let cached = Renderer::new(DEFAULT_CACHE_BYTES);
            assert_eq!(cached.list(&txs, &cats, language), serde, "first, rendered");
            assert_eq!(
                cached.list(&txs, &cats, language),
                serde,
                "then, from the cache"
            );
            assert_eq!(
                Renderer::new(0).list(&txs, &cats, language),
                serde,
                "without a cache"
            );
        }
        assert_eq!(
            Renderer::new(0).list(&[], &[], Language::De),
            br#"{"transactions":[]}"#
        );
        let json: serde_json::Value =
            serde_json::from_slice(&Renderer::new(0).list(&txs, &cats, Language::En))
                .expect("json");
        assert_eq!(
            json["transactions"][0]["categories"],
            serde_json::json!([{"id": "food", "name": "Food"}, {"id": "food.groceries", "name": "Groceries"}])
        );
        assert_eq!(json["transactions"][0]["category_source"], "counterparty");
        assert_eq!(json["transactions"][1]["categories"], serde_json::json!([]));
        assert!(json["transactions"][1]["category_source"].is_null());
    }

    #[test]
    fn a_changed_transaction_category_or_language_is_never_served_from_the_cache() {
        let r = Renderer::new(DEFAULT_CACHE_BYTES);
        let mut t = sample(1);
        let before = r.one(&t, None, Language::De);
        t.details.booked = !t.details.booked;
        t.details.amount = Money::new(rust_decimal::Decimal::new(-99, 0), Currency::EUR);
        let after = r.one(&t, None, Language::De);
        assert_ne!(before, after);
        assert_eq!(
            after,
            Bytes::from(
                serde_json::to_vec(&TransactionDto::of(&t, None, Language::De)).expect("json")
            )
        );
        let c = Categorized {
            category: finx_domain::enrich::category::find("food").expect("top"),
            source: finx_domain::enrich::Source::Keyword,
        };
        let categorised = r.one(&t, Some(&c), Language::De);
        assert_ne!(categorised, after, "a new category");
        assert_ne!(
            r.one(&t, Some(&c), Language::En),
            categorised,
            "another language"
        );
    }
}
