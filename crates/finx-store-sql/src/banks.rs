//! `BankRegistry` on SQL.

use async_trait::async_trait;
use finx_domain::ids::InstitutionId;
use finx_domain::registry::{BankDraft, RegisteredBank};
use finx_ports::{BankRegistry, StoreError};

use crate::{SqlStore, WritePool, corrupt, db, on_pool};

#[derive(sqlx::FromRow)]
struct BankRow {
    id: String,
    name: String,
    bic: Option<String>,
    bank_code: Option<String>,
    country: String,
    url: String,
    sca_approaches: String,
    consent_model: String,
    quirks: String,
}

impl BankRow {
    /// Read back through the same checks as any registry entry.
    fn into_bank(self) -> Result<RegisteredBank, StoreError> {
        let split = |s: &str| -> Vec<String> {
            s.split(',')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let bank = RegisteredBank::from_draft(BankDraft {
            id: Some(self.id.clone()),
            name: self.name,
            bic: self.bic,
            bank_code: self.bank_code,
            country: Some(self.country),
            url: self.url,
            sca_approaches: split(&self.sca_approaches),
            consent_model: Some(self.consent_model),
            quirks: split(&self.quirks),
        })
        .map_err(|_| corrupt("bank"))?;
        if bank.id.as_str() != self.id {
            return Err(corrupt("bank id"));
        }
        Ok(bank)
    }
}

const SELECT: &str = "SELECT id, name, bic, bank_code, country, url, sca_approaches, \
                      consent_model, quirks FROM banks";

/// `query` as a LIKE pattern that matches it literally anywhere, with `\` as the escape.
fn contains_pattern(query: &str) -> String {
    let mut p = String::with_capacity(query.len() + 2);
    p.push('%');
    for c in query.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

#[async_trait]
impl BankRegistry for SqlStore {
    async fn upsert_banks(&self, banks: &[RegisteredBank]) -> Result<u64, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write(self).await.map_err(db)?;
            for b in banks {
                let approaches: Vec<&str> = b.sca_approaches.iter().map(|a| a.as_xs2a()).collect();
                sqlx::query(
                    "INSERT INTO banks (id, name, name_folded, bic, bank_code, country, url, \
                     sca_approaches, consent_model, quirks) VALUES ($1, $2, $3, $4, $5, $6, $7, \
                     $8, $9, $10) ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
                     name_folded = excluded.name_folded, bic = excluded.bic, \
                     bank_code = excluded.bank_code, country = excluded.country, \
                     url = excluded.url, sca_approaches = excluded.sca_approaches, \
                     consent_model = excluded.consent_model, quirks = excluded.quirks",
                )
                .bind(b.id.as_str())
                .bind(&b.name)
                .bind(b.name.to_ascii_lowercase())
                .bind(&b.bic)
                .bind(&b.bank_code)
                .bind(&b.country)
                .bind(b.url.as_str())
                .bind(approaches.join(","))
                .bind(b.consent_model.as_str())
                .bind(b.quirks.names().join(","))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            }
            tx.commit().await.map_err(db)?;
        });
        Ok(banks.len() as u64)
    }

    async fn find_bank(&self, id: &InstitutionId) -> Result<Option<RegisteredBank>, StoreError> {
        let row: Option<BankRow> = on_pool!(self, |pool| {
            sqlx::query_as(&format!("{SELECT} WHERE id = $1"))
                .bind(id.as_str())
                .fetch_optional(pool)
                .await
                .map_err(db)?
        });
        row.map(BankRow::into_bank).transpose()
    }

    async fn search_banks(
        &self,
        query: &str,
        limit: u32,
    ) -> Result<Vec<RegisteredBank>, StoreError> {
        self.catalog_banks(query, None, 0, limit).await
    }

    async fn catalog_banks(
        &self,
        query: &str,
        country: Option<String>,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<RegisteredBank>, StoreError> {
        let q = query.trim();
        let mut conditions = Vec::new();
        let mut n = 0;
        let mut param = || {
            n += 1;
            format!("${n}")
        };
        if !q.is_empty() {
            conditions.push(format!(
                "(name_folded LIKE {} ESCAPE '\\' OR bic = {} OR bank_code = {})",
                param(),
                param(),
                param()
            ));
        }
        if country.is_some() {
            conditions.push(format!("country = {}", param()));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "{SELECT}{filter} ORDER BY name, id LIMIT {} OFFSET {}",
            param(),
            param()
        );
        let rows: Vec<BankRow> = on_pool!(self, |pool| {
            let mut query = sqlx::query_as(&sql);
            if !q.is_empty() {
                query = query
                    .bind(contains_pattern(&q.to_ascii_lowercase()))
                    .bind(q.to_ascii_uppercase())
                    .bind(q.to_owned());
            }
            if let Some(c) = &country {
                query = query.bind(c.trim().to_ascii_uppercase());
            }
            query
                .bind(i64::from(limit))
                .bind(i64::from(offset))
                .fetch_all(pool)
                .await
                .map_err(db)?
        });
        rows.into_iter().map(BankRow::into_bank).collect()
    }

    async fn bank_by_code(
        &self,
        country: &str,
        bank_code: &str,
    ) -> Result<Option<RegisteredBank>, StoreError> {
        let row: Option<BankRow> = on_pool!(self, |pool| {
            sqlx::query_as(&format!(
                "{SELECT} WHERE country = $1 AND bank_code = $2 ORDER BY id LIMIT 1"
            ))
            .bind(country)
            .bind(bank_code)
            .fetch_optional(pool)
            .await
            .map_err(db)?
        });
        row.map(BankRow::into_bank).transpose()
    }

    async fn count_banks(&self) -> Result<u64, StoreError> {
        let n: i64 = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM banks")
                .fetch_one(pool)
                .await
                .map_err(db)?
        });
        u64::try_from(n).map_err(|_| corrupt("count"))
    }
}

#[cfg(test)]
mod tests {
    use super::contains_pattern;

    #[test]
    fn like_wildcards_are_taken_literally() {
        assert_eq!(contains_pattern("a%b_c\\"), "%a\\%b\\_c\\\\%");
    }
}
