use std::time::Duration;

use async_trait::async_trait;
use finx_domain::Timestamp;
use finx_domain::access::UserId;
use finx_domain::ids::{ClientId, EndpointId};
use finx_domain::webhook::{
    Attempt, AttemptOutcome, Delivery, DeliveryClaim, Endpoint, Event, EventData, StoredEvent,
};

use crate::error::StoreError;

/// Webhook endpoints, the outbox of events and their deliveries.
///
/// Events enter the outbox in the same atomic step as the change they report: through
/// [`FlowStore::update_flow`](crate::FlowStore::update_flow),
/// [`AccessStore::finish_job`](crate::AccessStore::finish_job) (`JobOutcome::events`), and
/// wherever a store revokes a grant. Writing an event MUST create, in that step, one pending
/// delivery, due at once, for each enabled endpoint of the event's client (none when it has
/// none: then nothing is kept).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Registers an endpoint. MUST fail with [`StoreError::Conflict`] when the id exists.
    async fn insert_endpoint(&self, endpoint: &Endpoint) -> Result<(), StoreError>;

    /// One endpoint; `None` when unknown.
    async fn find_endpoint(&self, id: EndpointId) -> Result<Option<Endpoint>, StoreError>;

    /// A client's endpoints, oldest first.
    async fn list_endpoints(&self, client: &ClientId) -> Result<Vec<Endpoint>, StoreError>;

    /// Rotates an endpoint's secret in one atomic step: the current secret becomes the
    /// previous one, signing too until `previous_until`, and `fresh` the current one.
    /// Returns the endpoint as stored after, `None` when it does not exist.
    async fn rotate_endpoint_secret(
        &self,
        id: EndpointId,
        fresh: &finx_domain::webhook::WebhookSecret,
        previous_until: Timestamp,
    ) -> Result<Option<Endpoint>, StoreError>;

    /// Enables an endpoint (clears `disabled_at`, nothing else); returns it as stored after,
    /// `None` when it does not exist.
    async fn enable_endpoint(&self, id: EndpointId) -> Result<Option<Endpoint>, StoreError>;

    /// Deletes an endpoint with its deliveries and log (the endpoint first, as the trait's
    /// lock order says); returns whether it existed.
    async fn delete_endpoint(&self, id: EndpointId) -> Result<bool, StoreError>;

    /// Writes events outside any other change (each with its deliveries, as the trait
    /// says). Returns how many deliveries were created.
    async fn enqueue_events(&self, events: &[Event]) -> Result<u64, StoreError>;

    /// Claims at most `limit` pending deliveries due at `now` whose endpoint is enabled,
    /// earliest first, skipping those another runner holds under a lease that has not run
    /// out: each claimed one gets its attempt count raised by one and `lease_until`. Across
    /// processes, one delivery attempt MUST be claimed by one runner only.
    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// Ends a claimed attempt, in one atomic step: appends `attempt` to the endpoint's log,
    /// and marks the delivery delivered, due again, or failed; on `GiveUp { disable: true }`
    /// disables the endpoint, unless it accepted a delivery since the event was made (checked
    /// on the stored endpoint, not the claimed copy), and then fails its other pending
    /// deliveries; on `Delivered` records the endpoint's last success (never moving it
    /// back). MUST change nothing and return `false` when the claim is no longer the
    /// delivery's latest attempt or it is no longer pending. On a database with row locks
    /// it MUST lock the endpoint before its deliveries, as every other writer does, so two
    /// runners finishing deliveries of one endpoint never deadlock.
    async fn finish_delivery(
        &self,
        claim: DeliveryClaim,
        attempt: &Attempt,
        outcome: AttemptOutcome,
    ) -> Result<bool, StoreError>;

    /// The latest `limit` attempts of an endpoint, newest first.
    async fn delivery_log(
        &self,
        endpoint: EndpointId,
        limit: u32,
    ) -> Result<Vec<Attempt>, StoreError>;

    /// Deletes log entries from before `before`, and events from before `before` that have
    /// no pending delivery left (with their deliveries). Returns how many records went.
    async fn purge_webhooks(&self, before: Timestamp) -> Result<u64, StoreError>;
}

/// What a webhook POST came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendFailure {
    /// No answer within the timeout.
    Timeout,
    /// The address is not one webhooks may go to (SSRF rules), or the name did not resolve.
    Refused(String),
    /// The connection failed.
    Connect(String),
}

impl std::fmt::Display for SendFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Timeout => f.write_str("timeout"),
            Self::Refused(why) => write!(f, "refused: {why}"),
            Self::Connect(why) => write!(f, "connection failed: {why}"),
        }
    }
}

/// The way out to customers' webhook endpoints.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait WebhookSender: Send + Sync {
    /// POSTs `body` (JSON) with `headers` to `url` and returns the HTTP status. MUST NOT
    /// follow redirects, MUST give up after its timeout, and MUST refuse (before connecting)
    /// any address the policy it was built with does not allow, whatever the name resolves
    /// to.
    async fn post(
        &self,
        url: &url::Url,
        headers: &[(&'static str, String)],
        body: &str,
    ) -> Result<u16, SendFailure>;

    /// The longest one POST may take.
    fn timeout(&self) -> Duration;
}

/// The stored form of an event: its body fixed as `{"type", "timestamp", "data"}` (the
/// Standard Webhooks shape), ids and counts only, so every retry sends the same bytes.
/// Stores call it where they write the outbox.
#[must_use]
pub fn stored_event(event: &Event) -> StoredEvent {
    StoredEvent {
        id: event.id,
        client_id: event.client_id.clone(),
        event_type: event.event_type().to_owned(),
        body: body(event),
        created_at: event.at,
    }
}

fn body(event: &Event) -> String {
    use serde_json::json;
    let data = match &event.data {
        EventData::FlowCompleted {
            flow_id,
            access_id,
            user_id,
        } => json!({
            "flow_id": flow_id.to_string(),
            "access_id": access_id.as_str(),
            "user_id": user_id.as_ref().map(UserId::as_str),
        }),
        EventData::FlowFailed { flow_id, reason } => {
            json!({"flow_id": flow_id.to_string(), "reason": reason})
        }
        EventData::AccessSynced {
            access_id,
            user_id,
            sync_id,
            counts,
        } => json!({
            "access_id": access_id.as_str(),
            "user_id": user_id.as_str(),
            "sync_id": sync_id.to_string(),
            "added": counts.added,
            "modified": counts.modified,
            "removed": counts.removed,
        }),
        EventData::AccessSyncFailed {
            access_id,
            user_id,
            sync_id,
            error,
        } => json!({
            "access_id": access_id.as_str(),
            "user_id": user_id.as_str(),
            "sync_id": sync_id.to_string(),
            "error": {"code": error.code(), "name": error.as_str()},
        }),
        EventData::ConsentExpiring {
            access_id,
            user_id,
            valid_until,
        } => json!({
            "access_id": access_id.as_str(),
            "user_id": user_id.as_str(),
            "valid_until": valid_until.to_string(),
        }),
        EventData::ConsentExpired {
            access_id,
            user_id,
            valid_until,
            reason,
        } => json!({
            "access_id": access_id.as_str(),
            "user_id": user_id.as_str(),
            "valid_until": valid_until.to_string(),
            "error": {"code": reason.code(), "name": reason.as_str()},
        }),
        EventData::GrantRevoked {
            flow_id,
            access_id,
            reason,
        } => json!({
            "flow_id": flow_id.to_string(),
            "access_id": access_id.as_str(),
            "reason": reason.as_str(),
        }),
    };
    json!({
        "type": event.event_type(),
        "timestamp": event.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use finx_domain::access::{SyncCounts, UserId};
    use finx_domain::ids::{AccessId, ClientId, EventId, SyncId};
    use finx_domain::webhook::{Event, EventData};
    use serde_json::Value;

    #[test]
    fn bodies_hold_ids_and_counts() {
        let at = chrono::Utc
            .with_ymd_and_hms(2026, 3, 10, 12, 0, 0)
            .single()
            .expect("valid");
        let e = Event {
            id: EventId::from_random([3; 16]),
            client_id: ClientId::parse("c").expect("id"),
            at,
            data: EventData::AccessSynced {
                access_id: AccessId::parse("Xabc").expect("id"),
                user_id: UserId::parse("u-\"1\"").expect("user"),
                sync_id: SyncId::from_random([4; 16]),
                counts: SyncCounts::default(),
            },
        }
        .with_counts(SyncCounts {
            added: 3,
            modified: 1,
            removed: 0,
        });
        let stored = super::stored_event(&e);
        assert_eq!(stored.event_type, "access.synced");
        let v: Value = serde_json::from_str(&stored.body).expect("json");
        assert_eq!(v["type"], "access.synced");
        assert_eq!(v["data"]["added"], 3);
        assert_eq!(v["data"]["modified"], 1);
        assert_eq!(v["data"]["user_id"], "u-\"1\"");
        assert_eq!(v["timestamp"], "2026-03-10T12:00:00.000Z");
    }
}
