//! Webhook endpoints, the outbox and deliveries, in memory.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use finx_domain::Timestamp;
use finx_domain::ids::{ClientId, EndpointId, EventId};
use finx_domain::webhook::{
    Attempt, AttemptOutcome, Delivery, DeliveryClaim, DeliveryStatus, Endpoint, Event, StoredEvent,
    WebhookSecret,
};
use finx_ports::{StoreError, WebhookStore};

use crate::{MemoryStore, lock};

#[derive(Debug, Clone)]
struct Row {
    attempt: u32,
    status: DeliveryStatus,
    next_at: Timestamp,
    lease_until: Option<Timestamp>,
}

/// The webhook tables.
#[derive(Debug, Default)]
pub(crate) struct Webhooks {
    endpoints: BTreeMap<EndpointId, Endpoint>,
    events: HashMap<EventId, StoredEvent>,
    deliveries: BTreeMap<(EventId, EndpointId), Row>,
    log: Vec<Attempt>,
}

impl Webhooks {
    /// Writes events with one pending delivery per enabled endpoint of their client;
    /// returns how many deliveries. An event already written is not written again.
    pub(crate) fn enqueue(&mut self, events: &[Event]) -> u64 {
        let mut n = 0;
        for e in events {
            if self.events.contains_key(&e.id) {
                continue;
            }
            let targets: Vec<EndpointId> = self
                .endpoints
                .values()
                .filter(|p| p.client_id == e.client_id && p.disabled_at.is_none())
                .map(|p| p.id)
                .collect();
            if targets.is_empty() {
                continue;
            }
            self.events.insert(e.id, finx_ports::stored_event(e));
            for t in targets {
                self.deliveries.insert(
                    (e.id, t),
                    Row {
                        attempt: 0,
                        status: DeliveryStatus::Pending,
                        next_at: e.at,
                        lease_until: None,
                    },
                );
                n += 1;
            }
        }
        n
    }
}

#[async_trait]
impl WebhookStore for MemoryStore {
    async fn insert_endpoint(&self, endpoint: &Endpoint) -> Result<(), StoreError> {
        let mut w = lock(&self.webhooks);
        if w.endpoints.contains_key(&endpoint.id) {
            return Err(StoreError::Conflict("endpoint id exists"));
        }
        w.endpoints.insert(endpoint.id, endpoint.clone());
        Ok(())
    }

    async fn find_endpoint(&self, id: EndpointId) -> Result<Option<Endpoint>, StoreError> {
        Ok(lock(&self.webhooks).endpoints.get(&id).cloned())
    }

    async fn list_endpoints(&self, client: &ClientId) -> Result<Vec<Endpoint>, StoreError> {
        let mut out: Vec<Endpoint> = lock(&self.webhooks)
            .endpoints
            .values()
            .filter(|e| e.client_id == *client)
            .cloned()
            .collect();
        out.sort_by_key(|e| (e.created_at, e.id));
        Ok(out)
    }

    async fn rotate_endpoint_secret(
        &self,
        id: EndpointId,
        fresh: &WebhookSecret,
        previous_until: Timestamp,
    ) -> Result<Option<Endpoint>, StoreError> {
        let mut w = lock(&self.webhooks);
        Ok(w.endpoints.get_mut(&id).map(|e| {
            let old = std::mem::replace(&mut e.secret, fresh.clone());
            e.previous = Some((old, previous_until));
            e.clone()
        }))
    }

    async fn enable_endpoint(&self, id: EndpointId) -> Result<Option<Endpoint>, StoreError> {
        let mut w = lock(&self.webhooks);
        Ok(w.endpoints.get_mut(&id).map(|e| {
            e.disabled_at = None;
            e.clone()
        }))
    }

    async fn delete_endpoint(&self, id: EndpointId) -> Result<bool, StoreError> {
        let mut w = lock(&self.webhooks);
        w.deliveries.retain(|(_, p), _| *p != id);
        w.log.retain(|a| a.endpoint_id != id);
        Ok(w.endpoints.remove(&id).is_some())
    }

    async fn enqueue_events(&self, events: &[Event]) -> Result<u64, StoreError> {
        Ok(lock(&self.webhooks).enqueue(events))
    }

    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut w = lock(&self.webhooks);
        let w = &mut *w;
        let mut due: Vec<(Timestamp, (EventId, EndpointId))> = w
            .deliveries
            .iter()
            .filter(|((_, p), r)| {
                r.status == DeliveryStatus::Pending
                    && r.next_at <= now
                    && r.lease_until.is_none_or(|l| l <= now)
                    && w.endpoints.get(p).is_some_and(|e| e.disabled_at.is_none())
            })
            .map(|(k, r)| (r.next_at, *k))
            .collect();
        due.sort();
        due.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let mut out = Vec::with_capacity(due.len());
        for (_, key) in due {
            let (Some(row), Some(event), Some(endpoint)) = (
                w.deliveries.get_mut(&key),
                w.events.get(&key.0),
                w.endpoints.get(&key.1),
            ) else {
                continue;
            };
            row.attempt += 1;
            row.lease_until = Some(lease_until);
            out.push(Delivery {
                event: event.clone(),
                endpoint: endpoint.clone(),
                attempt: row.attempt,
                status: row.status,
                next_at: row.next_at,
            });
        }
        Ok(out)
    }

    async fn finish_delivery(
        &self,
        claim: DeliveryClaim,
        attempt: &Attempt,
        outcome: AttemptOutcome,
    ) -> Result<bool, StoreError> {
        let mut w = lock(&self.webhooks);
        let key = (claim.event, claim.endpoint);
        match w.deliveries.get_mut(&key) {
            Some(r) if r.attempt == claim.attempt && r.status == DeliveryStatus::Pending => {
                r.lease_until = None;
                match outcome {
                    AttemptOutcome::Delivered => r.status = DeliveryStatus::Delivered,
                    AttemptOutcome::Retry(at) => r.next_at = at,
                    AttemptOutcome::GiveUp { .. } => r.status = DeliveryStatus::Failed,
                }
            }
            _ => return Ok(false),
        }
        w.log.push(attempt.clone());
        let created = w.events.get(&claim.event).map(|e| e.created_at);
        match outcome {
            AttemptOutcome::Delivered => {
                if let Some(e) = w.endpoints.get_mut(&claim.endpoint) {
                    e.last_success_at = e.last_success_at.max(Some(attempt.at));
                }
            }
            AttemptOutcome::GiveUp { disable: true } => {
                let disabled = match w.endpoints.get_mut(&claim.endpoint) {
                    Some(e)
                        if e.disabled_at.is_none()
                            && e.last_success_at.is_none_or(|t| Some(t) < created) =>
                    {
                        e.disabled_at = Some(attempt.at);
                        true
                    }
                    _ => false,
                };
                if disabled {
                    for ((_, p), r) in &mut w.deliveries {
                        if *p == claim.endpoint && r.status == DeliveryStatus::Pending {
                            r.status = DeliveryStatus::Failed;
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(true)
    }

    async fn delivery_log(
        &self,
        endpoint: EndpointId,
        limit: u32,
    ) -> Result<Vec<Attempt>, StoreError> {
        Ok(lock(&self.webhooks)
            .log
            .iter()
            .rev()
            .filter(|a| a.endpoint_id == endpoint)
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .cloned()
            .collect())
    }

    async fn purge_webhooks(&self, before: Timestamp) -> Result<u64, StoreError> {
        let mut w = lock(&self.webhooks);
        let w = &mut *w;
        let logs = w.log.len();
        w.log.retain(|a| a.at >= before);
        let old: Vec<EventId> = w
            .events
            .values()
            .filter(|e| e.created_at < before)
            .filter(|e| {
                !w.deliveries
                    .iter()
                    .any(|((ev, _), r)| *ev == e.id && r.status == DeliveryStatus::Pending)
            })
            .map(|e| e.id)
            .collect();
        for id in &old {
            w.events.remove(id);
        }
        w.deliveries.retain(|(ev, _), _| !old.contains(ev));
        Ok((logs - w.log.len() + old.len()) as u64)
    }
}
