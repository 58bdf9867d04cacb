//! `ClientRegistry` on SQL.

use async_trait::async_trait;
use finx_domain::ids::ClientId;
use finx_domain::scope::Scope;
use finx_domain::secret::TokenHash;
use finx_domain::values::RedirectUri;
use finx_ports::{Client, ClientRegistry, PreviousSecret, StoreError};

use crate::codec::{from_json, instant, json, micros, parse};
use crate::{SqlStore, corrupt, db, on_pool};

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
        row.map(ClientRow::into_client).transpose()
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
        rows.into_iter().map(ClientRow::into_client).collect()
    }

    async fn delete_client(&self, id: &ClientId) -> Result<bool, StoreError> {
        let deleted = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM clients WHERE id = $1")
                .bind(id.as_str())
                .execute(pool)
                .await
                .map_err(db)?
                .rows_affected()
        });
        Ok(deleted == 1)
    }
}
