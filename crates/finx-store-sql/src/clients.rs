//! `ClientRegistry` on SQL.

use async_trait::async_trait;
use finx_domain::ids::ClientId;
use finx_domain::scope::Scope;
use finx_domain::secret::TokenHash;
use finx_domain::values::RedirectUri;
use finx_ports::{Client, ClientRegistry, StoreError};

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
        })
    }
}

/// A 32-byte hash column read back.
pub(crate) fn hash(bytes: &[u8]) -> Result<TokenHash, StoreError> {
    let arr: [u8; 32] = bytes.try_into().map_err(|_| corrupt("hash"))?;
    Ok(TokenHash::from_bytes(arr))
}

const SELECT: &str = "SELECT id, name, secret_hash, redirect_uris, scope, created_at FROM clients";

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
                "INSERT INTO clients (id, name, secret_hash, redirect_uris, scope, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(client.id.as_str())
            .bind(&client.name)
            .bind(client.secret_hash.as_bytes().as_slice())
            .bind(&uris)
            .bind(client.scope.to_string())
            .bind(micros(client.created_at))
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
        let changed = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE clients SET name = $2, secret_hash = $3, redirect_uris = $4, scope = $5 \
                 WHERE id = $1",
            )
            .bind(client.id.as_str())
            .bind(&client.name)
            .bind(client.secret_hash.as_bytes().as_slice())
            .bind(&uris)
            .bind(client.scope.to_string())
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
}
