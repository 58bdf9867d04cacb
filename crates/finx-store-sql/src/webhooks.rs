//! `WebhookStore` on SQL. An event is written by [`enqueue_in!`] inside the transaction of
//! the change it reports, with one delivery row per enabled endpoint of its client (nothing
//! when the client has none). Deliveries are claimed like sync jobs: one `UPDATE …
//! RETURNING` over the due rows, on PostgreSQL with `FOR UPDATE SKIP LOCKED`; `attempt` is
//! the fence a finishing runner must still hold.

use async_trait::async_trait;
use finx_domain::Timestamp;
use finx_domain::ids::{ClientId, EndpointId, EventId};
use finx_domain::webhook::{
    Attempt, AttemptOutcome, Delivery, DeliveryClaim, DeliveryStatus, Endpoint, Event, StoredEvent,
    WebhookSecret, WebhookUrl,
};
use finx_ports::{StoreError, WebhookStore};

use crate::codec::{instant, micros, opt_instant, parse};
use crate::seal::DataKey;
use crate::{SqlStore, WritePool, corrupt, db, on_pool};

/// Writes events on a transaction, each with its deliveries (see the module docs). An event
/// id already written is skipped. Evaluates to the number of deliveries created.
macro_rules! enqueue_in {
    ($tx:expr, $events:expr) => {{
        let events: &[finx_domain::webhook::Event] = $events;
        let mut created: u64 = 0;
        for e in events {
            let stored = finx_ports::stored_event(e);
            let inserted = sqlx::query(
                "INSERT INTO webhook_events (id, client_id, event_type, body, created_at) \
                 SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM webhook_endpoints \
                 WHERE client_id = $2 AND disabled_at IS NULL) ON CONFLICT (id) DO NOTHING",
            )
            .bind(stored.id.to_string())
            .bind(stored.client_id.as_str())
            .bind(&stored.event_type)
            .bind(&stored.body)
            .bind($crate::codec::micros(stored.created_at))
            .execute(&mut *$tx)
            .await
            .map_err($crate::db)?
            .rows_affected();
            if inserted == 1 {
                created += sqlx::query(
                    "INSERT INTO webhook_deliveries (event_id, endpoint_id, status, attempt, \
                     next_at, lease_until) SELECT $1, id, 'pending', 0, $2, NULL FROM \
                     webhook_endpoints WHERE client_id = $3 AND disabled_at IS NULL",
                )
                .bind(stored.id.to_string())
                .bind($crate::codec::micros(stored.created_at))
                .bind(stored.client_id.as_str())
                .execute(&mut *$tx)
                .await
                .map_err($crate::db)?
                .rows_affected();
            }
        }
        created
    }};
}
pub(crate) use enqueue_in;

#[derive(sqlx::FromRow)]
struct EndpointRow {
    id: String,
    client_id: String,
    url: String,
    secret: String,
    previous_secret: Option<String>,
    previous_until: Option<i64>,
    created_at: i64,
    disabled_at: Option<i64>,
    last_success_at: Option<i64>,
}

const ENDPOINT_COLUMNS: &str = "id, client_id, url, secret, previous_secret, previous_until, \
                                created_at, disabled_at, last_success_at";

fn open_secret(key: &DataKey, sealed: &str, id: &str) -> Result<WebhookSecret, StoreError> {
    parse(
        WebhookSecret::parse(&key.open(sealed, id)?),
        "webhook secret",
    )
}

impl EndpointRow {
    fn into_endpoint(self, key: &DataKey) -> Result<Endpoint, StoreError> {
        let previous = match (self.previous_secret, self.previous_until) {
            (Some(s), Some(until)) => Some((open_secret(key, &s, &self.id)?, instant(until)?)),
            _ => None,
        };
        Ok(Endpoint {
            secret: open_secret(key, &self.secret, &self.id)?,
            id: parse(EndpointId::parse(&self.id), "endpoint id")?,
            client_id: parse(ClientId::parse(&self.client_id), "client id")?,
            url: parse(WebhookUrl::from_stored(&self.url), "webhook url")?,
            previous,
            created_at: instant(self.created_at)?,
            disabled_at: opt_instant(self.disabled_at)?,
            last_success_at: opt_instant(self.last_success_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: String,
    client_id: String,
    event_type: String,
    body: String,
    created_at: i64,
}

impl EventRow {
    fn into_event(self) -> Result<StoredEvent, StoreError> {
        Ok(StoredEvent {
            id: parse(EventId::parse(&self.id), "event id")?,
            client_id: parse(ClientId::parse(&self.client_id), "client id")?,
            event_type: self.event_type,
            body: self.body,
            created_at: instant(self.created_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ClaimRow {
    event_id: String,
    endpoint_id: String,
    attempt: i64,
    status: String,
    next_at: i64,
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    endpoint_id: String,
    event_id: String,
    event_type: String,
    attempt: i64,
    at: i64,
    status: Option<i64>,
    error: Option<String>,
    millis: i64,
}

impl AttemptRow {
    fn into_attempt(self) -> Result<Attempt, StoreError> {
        Ok(Attempt {
            event_id: parse(EventId::parse(&self.event_id), "event id")?,
            event_type: self.event_type,
            endpoint_id: parse(EndpointId::parse(&self.endpoint_id), "endpoint id")?,
            attempt: parse(u32::try_from(self.attempt), "attempt")?,
            at: instant(self.at)?,
            status: self
                .status
                .map(|s| parse(u16::try_from(s), "status"))
                .transpose()?,
            error: self.error,
            millis: parse(u32::try_from(self.millis), "millis")?,
        })
    }
}

impl SqlStore {
    fn endpoint_binds(
        &self,
        e: &Endpoint,
    ) -> Result<(String, Option<String>, Option<i64>), StoreError> {
        let id = e.id.to_string();
        let secret = self.data_key.seal(&e.secret.expose(), &id)?;
        let (prev, until) = match &e.previous {
            Some((s, until)) => (
                Some(self.data_key.seal(&s.expose(), &id)?),
                Some(micros(*until)),
            ),
            None => (None, None),
        };
        Ok((secret, prev, until))
    }
}

#[async_trait]
impl WebhookStore for SqlStore {
    async fn insert_endpoint(&self, endpoint: &Endpoint) -> Result<(), StoreError> {
        let (secret, prev, until) = self.endpoint_binds(endpoint)?;
        on_pool!(self, |pool| {
            sqlx::query(&format!(
                "INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            ))
            .bind(endpoint.id.to_string())
            .bind(endpoint.client_id.as_str())
            .bind(endpoint.url.as_str())
            .bind(secret)
            .bind(prev)
            .bind(until)
            .bind(micros(endpoint.created_at))
            .bind(endpoint.disabled_at.map(micros))
            .bind(endpoint.last_success_at.map(micros))
            .execute(pool)
            .await
            .map_err(db)?;
        });
        Ok(())
    }

    async fn find_endpoint(&self, id: EndpointId) -> Result<Option<Endpoint>, StoreError> {
        let row: Option<EndpointRow> = on_pool!(self, |pool| {
            sqlx::query_as(&format!(
                "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1"
            ))
            .bind(id.to_string())
            .fetch_optional(pool)
            .await
            .map_err(db)?
        });
        row.map(|r| r.into_endpoint(&self.data_key)).transpose()
    }

    async fn list_endpoints(&self, client: &ClientId) -> Result<Vec<Endpoint>, StoreError> {
        let rows: Vec<EndpointRow> = on_pool!(self, |pool| {
            sqlx::query_as(&format!(
                "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE client_id = $1 \
                 ORDER BY created_at, id"
            ))
            .bind(client.as_str())
            .fetch_all(pool)
            .await
            .map_err(db)?
        });
        rows.into_iter()
            .map(|r| r.into_endpoint(&self.data_key))
            .collect()
    }

    async fn rotate_endpoint_secret(
        &self,
        id: EndpointId,
        fresh: &WebhookSecret,
        previous_until: Timestamp,
    ) -> Result<Option<Endpoint>, StoreError> {
        let key = id.to_string();
        let sealed = self.data_key.seal(&fresh.expose(), &key)?;
        // One statement: the stored secret (sealed under the same endpoint id) becomes the
        // previous one, whatever a concurrent rotation left there.
        let row: Option<EndpointRow> = on_pool!(self, |pool| {
            sqlx::query_as(&format!(
                "UPDATE webhook_endpoints SET previous_secret = secret, previous_until = $1, \
                 secret = $2 WHERE id = $3 RETURNING {ENDPOINT_COLUMNS}"
            ))
            .bind(micros(previous_until))
            .bind(sealed)
            .bind(&key)
            .fetch_optional(pool)
            .await
            .map_err(db)?
        });
        row.map(|r| r.into_endpoint(&self.data_key)).transpose()
    }

    async fn enable_endpoint(&self, id: EndpointId) -> Result<Option<Endpoint>, StoreError> {
        let row: Option<EndpointRow> = on_pool!(self, |pool| {
            sqlx::query_as(&format!(
                "UPDATE webhook_endpoints SET disabled_at = NULL WHERE id = $1 \
                 RETURNING {ENDPOINT_COLUMNS}"
            ))
            .bind(id.to_string())
            .fetch_optional(pool)
            .await
            .map_err(db)?
        });
        row.map(|r| r.into_endpoint(&self.data_key)).transpose()
    }

    async fn delete_endpoint(&self, id: EndpointId) -> Result<bool, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write(self).await.map_err(db)?;
            // The endpoint first: every writer locks it before its deliveries.
            let n = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1")
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .rows_affected();
            for table in ["webhook_deliveries", "webhook_attempts"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE endpoint_id = $1"))
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            }
            tx.commit().await.map_err(db)?;
            Ok(n == 1)
        })
    }

    async fn enqueue_events(&self, events: &[Event]) -> Result<u64, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write(self).await.map_err(db)?;
            let n = enqueue_in!(tx, events);
            tx.commit().await.map_err(db)?;
            Ok(n)
        })
    }

    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let lock = match self.kind() {
            "postgres" => " FOR UPDATE OF d SKIP LOCKED",
            _ => "",
        };
        let sql = format!(
            "UPDATE webhook_deliveries SET attempt = attempt + 1, lease_until = $2 \
             WHERE (event_id, endpoint_id) IN (SELECT d.event_id, d.endpoint_id \
             FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
             WHERE d.status = 'pending' AND d.next_at <= $1 AND (d.lease_until IS NULL OR \
             d.lease_until <= $1) AND e.disabled_at IS NULL ORDER BY d.next_at LIMIT $3{lock}) \
             RETURNING event_id, endpoint_id, attempt, status, next_at"
        );
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write(self).await.map_err(db)?;
            let rows: Vec<ClaimRow> = sqlx::query_as(&sql)
                .bind(micros(now))
                .bind(micros(lease_until))
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let event: Option<EventRow> = sqlx::query_as(
                    "SELECT id, client_id, event_type, body, created_at FROM webhook_events \
                     WHERE id = $1",
                )
                .bind(&r.event_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
                let endpoint: Option<EndpointRow> = sqlx::query_as(&format!(
                    "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1"
                ))
                .bind(&r.endpoint_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
                let read = (|| {
                    Ok::<_, StoreError>(Delivery {
                        event: event.ok_or_else(|| corrupt("event"))?.into_event()?,
                        endpoint: endpoint
                            .ok_or_else(|| corrupt("endpoint"))?
                            .into_endpoint(&self.data_key)?,
                        attempt: parse(u32::try_from(r.attempt), "attempt")?,
                        status: DeliveryStatus::parse(&r.status)
                            .ok_or_else(|| corrupt("delivery status"))?,
                        next_at: instant(r.next_at)?,
                    })
                })();
                match read {
                    Ok(d) => out.push(d),
                    // One unreadable row (a secret sealed under another key, say) must not
                    // hold up every other delivery: it fails, and the rest go on.
                    Err(_) => {
                        sqlx::query(
                            "UPDATE webhook_deliveries SET status = 'failed', lease_until = NULL \
                             WHERE event_id = $1 AND endpoint_id = $2",
                        )
                        .bind(&r.event_id)
                        .bind(&r.endpoint_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                    }
                }
            }
            tx.commit().await.map_err(db)?;
            out.sort_by_key(|d| d.next_at);
            Ok(out)
        })
    }

    async fn finish_delivery(
        &self,
        claim: DeliveryClaim,
        attempt: &Attempt,
        outcome: AttemptOutcome,
    ) -> Result<bool, StoreError> {
        let (status, next_at) = match outcome {
            AttemptOutcome::Delivered => (DeliveryStatus::Delivered, None),
            AttemptOutcome::Retry(at) => (DeliveryStatus::Pending, Some(micros(at))),
            AttemptOutcome::GiveUp { .. } => (DeliveryStatus::Failed, None),
        };
        let endpoint = claim.endpoint.to_string();
        let lock_endpoint = match self.kind() {
            "postgres" => "SELECT id FROM webhook_endpoints WHERE id = $1 FOR UPDATE",
            _ => "SELECT id FROM webhook_endpoints WHERE id = $1",
        };
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write(self).await.map_err(db)?;
            // The endpoint before the delivery, as every writer: no deadlock between two
            // runners finishing deliveries of one endpoint.
            sqlx::query(lock_endpoint)
                .bind(&endpoint)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            let held = sqlx::query(
                "UPDATE webhook_deliveries SET status = $1, next_at = COALESCE($2, next_at), \
                 lease_until = NULL WHERE event_id = $3 AND endpoint_id = $4 AND attempt = $5 \
                 AND status = 'pending'",
            )
            .bind(status.as_str())
            .bind(next_at)
            .bind(claim.event.to_string())
            .bind(&endpoint)
            .bind(i64::from(claim.attempt))
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
            if held != 1 {
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO webhook_attempts (endpoint_id, event_id, event_type, attempt, at, \
                 status, error, millis) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&endpoint)
            .bind(attempt.event_id.to_string())
            .bind(&attempt.event_type)
            .bind(i64::from(attempt.attempt))
            .bind(micros(attempt.at))
            .bind(attempt.status.map(i64::from))
            .bind(attempt.error.as_deref())
            .bind(i64::from(attempt.millis))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            match outcome {
                AttemptOutcome::Delivered => {
                    sqlx::query(
                        "UPDATE webhook_endpoints SET last_success_at = $1 WHERE id = $2 \
                         AND (last_success_at IS NULL OR last_success_at < $1)",
                    )
                    .bind(micros(attempt.at))
                    .bind(&endpoint)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                }
                AttemptOutcome::GiveUp { disable: true } => {
                    // Only if nothing reached it since the event, as stored now.
                    let disabled = sqlx::query(
                        "UPDATE webhook_endpoints SET disabled_at = $1 WHERE id = $2 \
                         AND disabled_at IS NULL AND (last_success_at IS NULL OR \
                         last_success_at < (SELECT created_at FROM webhook_events WHERE id = $3))",
                    )
                    .bind(micros(attempt.at))
                    .bind(&endpoint)
                    .bind(claim.event.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?
                    .rows_affected();
                    if disabled == 0 {
                        tx.commit().await.map_err(db)?;
                        return Ok(true);
                    }
                    sqlx::query(
                        "UPDATE webhook_deliveries SET status = 'failed', lease_until = NULL \
                         WHERE endpoint_id = $1 AND status = 'pending'",
                    )
                    .bind(&endpoint)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                }
                _ => {}
            }
            tx.commit().await.map_err(db)?;
            Ok(true)
        })
    }

    async fn delivery_log(
        &self,
        endpoint: EndpointId,
        limit: u32,
    ) -> Result<Vec<Attempt>, StoreError> {
        let rows: Vec<AttemptRow> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT endpoint_id, event_id, event_type, attempt, at, status, error, millis \
                 FROM webhook_attempts WHERE endpoint_id = $1 ORDER BY at DESC, attempt DESC \
                 LIMIT $2",
            )
            .bind(endpoint.to_string())
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(db)?
        });
        rows.into_iter().map(AttemptRow::into_attempt).collect()
    }

    async fn purge_webhooks(&self, before: Timestamp) -> Result<u64, StoreError> {
        let before = micros(before);
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write(self).await.map_err(db)?;
            let mut n = sqlx::query("DELETE FROM webhook_attempts WHERE at < $1")
                .bind(before)
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .rows_affected();
            let old = "SELECT id FROM webhook_events v WHERE v.created_at < $1 AND NOT EXISTS \
                       (SELECT 1 FROM webhook_deliveries p WHERE p.event_id = v.id AND \
                       p.status = 'pending')";
            sqlx::query(&format!(
                "DELETE FROM webhook_deliveries WHERE event_id IN ({old})"
            ))
            .bind(before)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            n += sqlx::query(&format!("DELETE FROM webhook_events WHERE id IN ({old})"))
                .bind(before)
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .rows_affected();
            tx.commit().await.map_err(db)?;
            Ok(n)
        })
    }
}
