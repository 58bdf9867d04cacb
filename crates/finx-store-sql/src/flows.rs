//! `FlowStore` on SQL: a row per flow, the details in a JSON document, updates as a
//! compare-and-swap on `version`.

use async_trait::async_trait;
use finx_domain::Timestamp;
use finx_domain::flow::{Flow, FlowStatus};
use finx_domain::ids::FlowId;
use finx_domain::webhook::Event;
use finx_ports::{FlowStore, StoreError};

use crate::codec::{FlowDoc, from_json, json, micros};
use crate::seal::DataKey;
use crate::webhooks::enqueue_in;
use crate::{SqlStore, WritePool, corrupt, db, on_pool};

#[derive(sqlx::FromRow)]
struct FlowRow {
    id: String,
    client_id: String,
    version: i64,
    created_at: i64,
    expires_at: i64,
    document: String,
}

impl FlowRow {
    fn into_flow(self, key: &DataKey) -> Result<Flow, StoreError> {
        let doc: FlowDoc = from_json(&self.document, "flow document")?;
        doc.into_flow(
            key,
            &self.id,
            &self.client_id,
            self.version,
            self.created_at,
            self.expires_at,
        )
    }
}

fn version(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| corrupt("flow version"))
}

#[async_trait]
impl FlowStore for SqlStore {
    async fn insert_flow(&self, flow: &Flow) -> Result<(), StoreError> {
        let doc = json(&FlowDoc::of(flow, &self.data_key)?)?;
        let v = version(flow.version)?;
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO flows (id, client_id, version, status, created_at, expires_at, document) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(flow.id.to_string())
            .bind(flow.client_id.as_str())
            .bind(v)
            .bind(flow.status.name())
            .bind(micros(flow.created_at))
            .bind(micros(flow.expires_at))
            .bind(&doc)
            .execute(pool)
            .await
            .map_err(db)?;
        });
        Ok(())
    }

    async fn find_flow(&self, id: FlowId) -> Result<Option<Flow>, StoreError> {
        let row: Option<FlowRow> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT id, client_id, version, created_at, expires_at, document FROM flows WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(pool)
                .await
                .map_err(db)?
        });
        row.map(|r| r.into_flow(&self.data_key)).transpose()
    }

    async fn update_flow(
        &self,
        flow: &Flow,
        expected_version: u64,
        events: &[Event],
    ) -> Result<(), StoreError> {
        let doc = json(&FlowDoc::of(flow, &self.data_key)?)?;
        let (v, expected) = (version(flow.version)?, version(expected_version)?);
        // One statement, conditional on the version: of two updates from the same version,
        // the database lets exactly one match. With events, they join it in a transaction.
        let sql = "UPDATE flows SET version = $1, status = $2, expires_at = $3, document = $4 \
                   WHERE id = $5 AND version = $6";
        let updated = on_pool!(self, |pool| {
            let query = sqlx::query(sql)
                .bind(v)
                .bind(flow.status.name())
                .bind(micros(flow.expires_at))
                .bind(&doc)
                .bind(flow.id.to_string())
                .bind(expected);
            if events.is_empty() {
                query.execute(pool).await.map_err(db)?.rows_affected()
            } else {
                let mut tx = pool.begin_write(self).await.map_err(db)?;
                let n = query.execute(&mut *tx).await.map_err(db)?.rows_affected();
                if n == 1 {
                    enqueue_in!(tx, events);
                    tx.commit().await.map_err(db)?;
                }
                n
            }
        });
        if updated == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict(
                "flow was changed concurrently or does not exist",
            ))
        }
    }

    async fn stale_syncing_flows(
        &self,
        started_before: Timestamp,
    ) -> Result<Vec<Flow>, StoreError> {
        let rows: Vec<FlowRow> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT id, client_id, version, created_at, expires_at, document FROM flows WHERE status = $1")
                .bind("syncing")
                .fetch_all(pool)
                .await
                .map_err(db)?
        });
        let mut stale = Vec::new();
        for r in rows {
            // A row that does not read back (another data key, say) is skipped, not allowed
            // to stop the job for every other flow; the purge removes it at link expiry.
            let Ok(flow) = r.into_flow(&self.data_key) else {
                continue;
            };
            if matches!(flow.status, FlowStatus::Syncing { started_at, .. } if started_at < started_before)
            {
                stale.push(flow);
            }
        }
        Ok(stale)
    }

    async fn purge_flows(&self, before: Timestamp) -> Result<u64, StoreError> {
        Ok(on_pool!(self, |pool| {
            sqlx::query("DELETE FROM flows WHERE expires_at <= $1")
                .bind(micros(before))
                .execute(pool)
                .await
                .map_err(db)?
                .rows_affected()
        }))
    }
}
