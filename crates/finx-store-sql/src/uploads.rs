//! Upload records and the access tokens an upload's grant hands out, on SQL.

use finx_domain::Timestamp;
use finx_domain::ids::{ClientId, GrantId, UploadId};
use finx_domain::token::AccessTokenRecord;
use finx_domain::upload::{Upload, UploadStatus};
use finx_ports::StoreError;

use crate::codec::{instant, micros, opt_instant, parse};
use crate::{SqlStore, WritePool, corrupt, db, on_pool};

#[derive(sqlx::FromRow)]
struct UploadRow {
    id: String,
    client_id: String,
    status: String,
    created_at: i64,
    started_at: Option<i64>,
    ended_at: Option<i64>,
    expires_at: i64,
    grant_id: Option<String>,
    error_code: Option<i64>,
    error_message: Option<String>,
}

impl UploadRow {
    fn into_upload(self) -> Result<Upload, StoreError> {
        let error = match (self.error_code, self.error_message) {
            (Some(code), Some(message)) => {
                Some((parse(u32::try_from(code), "upload error code")?, message))
            }
            _ => None,
        };
        Ok(Upload {
            id: parse(UploadId::parse(&self.id), "upload id")?,
            client_id: parse(ClientId::parse(&self.client_id), "client id")?,
            status: UploadStatus::parse(&self.status).ok_or_else(|| corrupt("upload status"))?,
            created_at: instant(self.created_at)?,
            started_at: opt_instant(self.started_at)?,
            ended_at: opt_instant(self.ended_at)?,
            expires_at: instant(self.expires_at)?,
            grant_id: self
                .grant_id
                .map(|g| parse(GrantId::parse(&g), "grant id"))
                .transpose()?,
            error,
        })
    }
}

const COLUMNS: &str = "id, client_id, status, created_at, started_at, ended_at, expires_at, \
     grant_id, error_code, error_message";

impl SqlStore {
    pub(crate) async fn insert_upload_row(&self, u: &Upload) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write(self).await.map_err(db)?;
            sqlx::query(&format!(
                "INSERT INTO uploads ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            ))
            .bind(u.id.to_string())
            .bind(u.client_id.as_str())
            .bind(u.status.as_str())
            .bind(micros(u.created_at))
            .bind(u.started_at.map(micros))
            .bind(u.ended_at.map(micros))
            .bind(micros(u.expires_at))
            .bind(u.grant_id.map(|g| g.to_string()))
            .bind(u.error.as_ref().map(|e| i64::from(e.0)))
            .bind(u.error.as_ref().map(|e| e.1.clone()))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            tx.commit().await.map_err(db)?;
        });
        Ok(())
    }

    pub(crate) async fn find_upload_row(&self, id: UploadId) -> Result<Option<Upload>, StoreError> {
        let row: Option<UploadRow> = on_pool!(self, |pool| {
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM uploads WHERE id = $1"))
                .bind(id.to_string())
                .fetch_optional(pool)
                .await
                .map_err(db)?
        });
        row.map(UploadRow::into_upload).transpose()
    }

    pub(crate) async fn update_upload_row(&self, u: &Upload) -> Result<bool, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write(self).await.map_err(db)?;
            let n = sqlx::query(
                "UPDATE uploads SET status = $2, started_at = $3, ended_at = $4, expires_at = $5, \
                 grant_id = $6, error_code = $7, error_message = $8 WHERE id = $1",
            )
            .bind(u.id.to_string())
            .bind(u.status.as_str())
            .bind(u.started_at.map(micros))
            .bind(u.ended_at.map(micros))
            .bind(micros(u.expires_at))
            .bind(u.grant_id.map(|g| g.to_string()))
            .bind(u.error.as_ref().map(|e| i64::from(e.0)))
            .bind(u.error.as_ref().map(|e| e.1.clone()))
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
            tx.commit().await.map_err(db)?;
            Ok(n == 1)
        })
    }

    /// Inserts the token only if its grant is live at `now`, in one statement.
    pub(crate) async fn add_access_token_row(
        &self,
        t: &AccessTokenRecord,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write(self).await.map_err(db)?;
            let n = sqlx::query(
                "INSERT INTO access_tokens (hash, grant_id, issued_at, expires_at, scope, revoked_at) \
                 SELECT $1, id, $3, $4, $5, NULL FROM grants \
                 WHERE id = $2 AND revoked_at IS NULL AND expires_at > $6",
            )
            .bind(t.hash.as_bytes().as_slice())
            .bind(t.grant_id.to_string())
            .bind(micros(t.issued_at))
            .bind(micros(t.expires_at))
            .bind(t.scope.to_string())
            .bind(micros(now))
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
            tx.commit().await.map_err(db)?;
            Ok(n == 1)
        })
    }
}
