//! `ClientRegistry` on SQL.

use async_trait::async_trait;
use finx_domain::enrich::{CustomerRule, NewCustomerRule};
use finx_domain::ids::ClientId;
use finx_domain::scope::Scope;
use finx_domain::secret::TokenHash;
use finx_domain::values::RedirectUri;
use finx_ports::{Client, ClientRegistry, PreviousSecret, StoreError};

use crate::codec::{from_json, instant, json, micros, parse};
use crate::{SqlStore, WritePool, corrupt, db, on_pool};

#[derive(sqlx::FromRow)]
struct RuleRow {
    client_id: String,
    id: String,
    category: String,
    name_contains: Option<String>,
    purpose_contains: Option<String>,
    creditor_id: Option<String>,
    iban: Option<String>,
    min_amount: Option<String>,
    max_amount: Option<String>,
}

impl RuleRow {
    fn into_rule(self) -> Result<CustomerRule, StoreError> {
        let amount = |a: Option<String>| {
            a.map(|a| {
                a.parse::<rust_decimal::Decimal>()
                    .map_err(|_| corrupt("rule amount"))
            })
            .transpose()
        };
        CustomerRule::new(
            self.id,
            NewCustomerRule {
                category: self.category,
                name_contains: self.name_contains,
                purpose_contains: self.purpose_contains,
                creditor_id: self.creditor_id,
                iban: self.iban,
                min_amount: amount(self.min_amount)?,
                max_amount: amount(self.max_amount)?,
            },
        )
        .map_err(|_| corrupt("category rule"))
    }
}

const RULE_COLUMNS: &str = "client_id, id, category, name_contains, purpose_contains, creditor_id, iban, \
     min_amount, max_amount";

#[derive(sqlx::FromRow)]
struct ClientRow {
    id: String,
    name: String,
    secret_hash: Vec<u8>,
    redirect_uris: String,
    scope: String,
    created_at: i64,
    secret_key_id: String,
    previous_secret_hash: Option<Vec<u8>>,
    previous_secret_key_id: Option<String>,
    previous_secret_until: Option<i64>,
    disabled_at: Option<i64>,
}

impl ClientRow {
    fn into_client(self) -> Result<Client, StoreError> {
        let uris: Vec<String> = from_json(&self.redirect_uris, "redirect URIs")?;
        Ok(Client {
            id: parse(ClientId::parse(&self.id), "client id")?,
            name: self.name,
            secret_hash: hash(&self.secret_hash)?,
            redirect_uris: uris
                .iter()
                .map(|u| parse(RedirectUri::parse(u), "redirect URI"))
                .collect::<Result<_, _>>()?,
            scope: parse(Scope::parse(&self.scope), "scope")?,
            created_at: instant(self.created_at)?,
            secret_key_id: self.secret_key_id,
            previous_secret: match (self.previous_secret_hash, self.previous_secret_until) {
                (Some(h), Some(until)) => Some(PreviousSecret {
                    hash: hash(&h)?,
                    key_id: self.previous_secret_key_id.unwrap_or_default(),
                    until: instant(until)?,
                }),
                _ => None,
            },
            disabled_at: self.disabled_at.map(instant).transpose()?,
            category_rules: Vec::new(),
        })
    }
}

/// A 32-byte hash column read back.
pub(crate) fn hash(bytes: &[u8]) -> Result<TokenHash, StoreError> {
    let arr: [u8; 32] = bytes.try_into().map_err(|_| corrupt("hash"))?;
    Ok(TokenHash::from_bytes(arr))
}

const SELECT: &str = "SELECT id, name, secret_hash, redirect_uris, scope, created_at, \
     secret_key_id, previous_secret_hash, previous_secret_key_id, previous_secret_until, \
     disabled_at FROM clients";

#[async_trait]
impl ClientRegistry for SqlStore {
    async fn insert_client(&self, client: &Client) -> Result<(), StoreError> {
        let uris: Vec<&str> = client
            .redirect_uris
            .iter()
            .map(RedirectUri::as_str)
            .collect();
        let uris = json(&uris)?;
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO clients (id, name, secret_hash, redirect_uris, scope, created_at, \
                 secret_key_id, previous_secret_hash, previous_secret_key_id, \
                 previous_secret_until, disabled_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(client.id.as_str())
            .bind(&client.name)
            .bind(client.secret_hash.as_bytes().as_slice())
            .bind(&uris)
            .bind(client.scope.to_string())
            .bind(micros(client.created_at))
            .bind(&client.secret_key_id)
            .bind(
                client
                    .previous_secret
                    .as_ref()
                    .map(|p| p.hash.as_bytes().to_vec()),
            )
            .bind(client.previous_secret.as_ref().map(|p| p.key_id.clone()))
            .bind(client.previous_secret.as_ref().map(|p| micros(p.until)))
            .bind(client.disabled_at.map(micros))
            .execute(pool)
            .await
            .map_err(db)?;
        });
        Ok(())
    }

    async fn find_client(&self, id: &ClientId) -> Result<Option<Client>, StoreError> {
        let row: Option<ClientRow> = on_pool!(self, |pool| {
            sqlx::query_as(&format!("{SELECT} WHERE id = $1"))
                .bind(id.as_str())
                .fetch_optional(pool)
                .await
                .map_err(db)?
        });
        let Some(mut client) = row.map(ClientRow::into_client).transpose()? else {
            return Ok(None);
        };
        let rules: Vec<RuleRow> = on_pool!(self, |pool| {
            sqlx::query_as(&format!(
                "SELECT {RULE_COLUMNS} FROM category_rules WHERE client_id = $1 ORDER BY position"
            ))
            .bind(id.as_str())
            .fetch_all(pool)
            .await
            .map_err(db)?
        });
        client.category_rules = rules
            .into_iter()
            .map(RuleRow::into_rule)
            .collect::<Result<_, _>>()?;
        Ok(Some(client))
    }

    async fn update_client(&self, client: &Client) -> Result<bool, StoreError> {
        let uris: Vec<&str> = client
            .redirect_uris
            .iter()
            .map(RedirectUri::as_str)
            .collect();
        let uris = json(&uris)?;
        let changed =
            on_pool!(self, |pool| {
                sqlx::query(
                "UPDATE clients SET name = $2, secret_hash = $3, redirect_uris = $4, scope = $5, \
                 secret_key_id = $6, previous_secret_hash = $7, previous_secret_key_id = $8, \
                 previous_secret_until = $9, disabled_at = $10 WHERE id = $1",
            )
            .bind(client.id.as_str())
            .bind(&client.name)
            .bind(client.secret_hash.as_bytes().as_slice())
            .bind(&uris)
            .bind(client.scope.to_string())
            .bind(&client.secret_key_id)
            .bind(client.previous_secret.as_ref().map(|p| p.hash.as_bytes().to_vec()))
            .bind(client.previous_secret.as_ref().map(|p| p.key_id.clone()))
            .bind(client.previous_secret.as_ref().map(|p| micros(p.until)))
            .bind(client.disabled_at.map(micros))
            .execute(pool)
            .await
            .map_err(db)?
            .rows_affected()
            });
        Ok(changed == 1)
    }

    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        let rows: Vec<ClientRow> = on_pool!(self, |pool| sqlx::query_as(&format!(
            "{SELECT} ORDER BY id"
        ))
        .fetch_all(pool)
        .await
        .map_err(db)?);
        let mut clients: Vec<Client> = rows
            .into_iter()
            .map(ClientRow::into_client)
            .collect::<Result<_, _>>()?;
        let rules: Vec<RuleRow> = on_pool!(self, |pool| {
            sqlx::query_as(&format!(
                "SELECT {RULE_COLUMNS} FROM category_rules ORDER BY client_id, position"
            ))
            .fetch_all(pool)
            .await
            .map_err(db)?
        });
        for r in rules {
            if let Some(c) = clients.iter_mut().find(|c| c.id.as_str() == r.client_id) {
                c.category_rules.push(r.into_rule()?);
            }
        }
        Ok(clients)
    }

    async fn delete_client(&self, id: &ClientId) -> Result<bool, StoreError> {
        let deleted = on_pool!(self, |pool| {
            let mut tx = pool.begin_write(self).await.map_err(db)?;
            sqlx::query("DELETE FROM category_rules WHERE client_id = $1")
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            let n = sqlx::query("DELETE FROM clients WHERE id = $1")
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .rows_affected();
            tx.commit().await.map_err(db)?;
            n
        });
        Ok(deleted == 1)
    }

    async fn add_category_rule(
        &self,
        client: &ClientId,
        rule: &CustomerRule,
        limit: usize,
    ) -> Result<bool, StoreError> {
        // PostgreSQL: the client's row, locked, serialises the adds of one client (SQLite's
        // writer serialises every write).
        let lock = if self.kind() == "postgres" {
            " FOR UPDATE"
        } else {
            ""
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write(self).await.map_err(db)?;
            let exists: Option<(String,)> =
                sqlx::query_as(&format!("SELECT id FROM clients WHERE id = $1{lock}"))
                    .bind(client.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?;
            if exists.is_none() {
                tx.rollback().await.map_err(db)?;
                return Ok(false);
            }
            let (count, last): (i64, Option<i64>) = sqlx::query_as(
                "SELECT COUNT(*), MAX(position) FROM category_rules WHERE client_id = $1",
            )
            .bind(client.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            if count >= limit {
                tx.rollback().await.map_err(db)?;
                return Err(StoreError::Conflict(
                    "the client has the most rules it may have",
                ));
            }
            sqlx::query(
                "INSERT INTO category_rules (client_id, id, position, category, name_contains, \
                 purpose_contains, creditor_id, iban, min_amount, max_amount) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(client.as_str())
            .bind(&rule.id)
            .bind(last.unwrap_or(0) + 1)
            .bind(rule.category.id)
            .bind(&rule.name_contains)
            .bind(&rule.purpose_contains)
            .bind(&rule.creditor_id)
            .bind(&rule.iban)
            .bind(rule.min_amount.map(|a| a.to_string()))
            .bind(rule.max_amount.map(|a| a.to_string()))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            tx.commit().await.map_err(db)?;
        });
        Ok(true)
    }

    async fn delete_category_rule(
        &self,
        client: &ClientId,
        rule: &str,
    ) -> Result<bool, StoreError> {
        let deleted = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM category_rules WHERE client_id = $1 AND id = $2")
                .bind(client.as_str())
                .bind(rule)
                .execute(pool)
                .await
                .map_err(db)?
                .rows_affected()
        });
        Ok(deleted == 1)
    }
}
