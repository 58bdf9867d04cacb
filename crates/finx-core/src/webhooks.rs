//! Webhooks: a customer's endpoints, and the delivery of the events the other use cases
//! write to the outbox (signed per Standard Webhooks, retried with backoff for 24 hours,
//! the endpoint disabled when it failed for all of them).

use std::time::Instant;

use finx_domain::ids::{ClientId, EndpointId, EventId};
use finx_domain::webhook::{
    Attempt, AttemptOutcome, Delivery, Endpoint, Event, EventData, WebhookSecret, WebhookUrl,
    after_failure,
};

use crate::error::invalid;
use crate::{CoreError, Finx};

/// How many webhook endpoints one client may have.
pub const MAX_ENDPOINTS: usize = 10;

/// How many attempts `webhook_log` shows at most.
pub const WEBHOOK_LOG_MAX: u32 = 1000;

impl Finx {
    /// A new event for `client`, now.
    pub(crate) fn event(&self, client: &ClientId, data: EventData) -> Event {
        Event {
            id: EventId::from_random(self.ports.random.bytes16()),
            client_id: client.clone(),
            at: self.now(),
            data,
        }
    }

    async fn known_client(&self, client: &str) -> Result<ClientId, CoreError> {
        let id = ClientId::parse(client).map_err(|e| invalid("client_id", e))?;
        self.ports
            .clients
            .find_client(&id)
            .await?
            .ok_or(CoreError::NotFound("client"))?;
        Ok(id)
    }

    async fn clients_endpoint(&self, client: &str, id: &str) -> Result<Endpoint, CoreError> {
        let client = self.known_client(client).await?;
        let id = EndpointId::parse(id).map_err(|_| CoreError::NotFound("webhook endpoint"))?;
        self.ports
            .webhooks
            .find_endpoint(id)
            .await?
            .filter(|e| e.client_id == client)
            .ok_or(CoreError::NotFound("webhook endpoint"))
    }

    /// Registers a webhook endpoint for a client. The answer holds the signing secret: show
    /// it once; finX keeps it sealed.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] for an unknown client, [`CoreError::Invalid`] for a URL the
    /// policy refuses (https only; http to loopback in sandbox mode only; no private
    /// addresses in production) or past [`MAX_ENDPOINTS`].
    pub async fn add_webhook(&self, client: &str, url: &str) -> Result<Endpoint, CoreError> {
        let client_id = self.known_client(client).await?;
        let url = WebhookUrl::parse(url, self.webhooks.policy).map_err(|e| invalid("url", e))?;
        // Each event goes to every endpoint: a bound keeps one client from multiplying
        // finX's requests to someone else's host.
        if self.ports.webhooks.list_endpoints(&client_id).await?.len() >= MAX_ENDPOINTS {
            return Err(invalid(
                "url",
                format!("a client has at most {MAX_ENDPOINTS} webhook endpoints"),
            ));
        }
        let endpoint = Endpoint {
            id: EndpointId::from_random(self.ports.random.bytes16()),
            client_id,
            url,
            secret: WebhookSecret::from_random(self.ports.random.bytes32()),
            previous: None,
            created_at: self.now(),
            disabled_at: None,
            last_success_at: None,
        };
        self.ports.webhooks.insert_endpoint(&endpoint).await?;
        Ok(endpoint)
    }

    /// A client's endpoints.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] for an unknown client.
    pub async fn list_webhooks(&self, client: &str) -> Result<Vec<Endpoint>, CoreError> {
        let client = self.known_client(client).await?;
        Ok(self.ports.webhooks.list_endpoints(&client).await?)
    }

    /// Removes an endpoint with its pending deliveries and log.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] when the client has no such endpoint.
    pub async fn remove_webhook(&self, client: &str, id: &str) -> Result<(), CoreError> {
        let e = self.clients_endpoint(client, id).await?;
        self.ports.webhooks.delete_endpoint(e.id).await?;
        Ok(())
    }

    /// Gives an endpoint a new secret; the old one keeps signing (a second signature in
    /// `webhook-signature`) for the overlap, so receivers can switch without losing any.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] when the client has no such endpoint.
    pub async fn rotate_webhook_secret(
        &self,
        client: &str,
        id: &str,
    ) -> Result<Endpoint, CoreError> {
        let e = self.clients_endpoint(client, id).await?;
        self.ports
            .webhooks
            .rotate_endpoint_secret(
                e.id,
                &WebhookSecret::from_random(self.ports.random.bytes32()),
                self.now() + self.webhooks.secret_overlap,
            )
            .await?
            .ok_or(CoreError::NotFound("webhook endpoint"))
    }

    /// Enables an endpoint that was disabled for failing. Deliveries given up stay given
    /// up; new events reach it again.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] when the client has no such endpoint.
    pub async fn enable_webhook(&self, client: &str, id: &str) -> Result<Endpoint, CoreError> {
        let e = self.clients_endpoint(client, id).await?;
        self.ports
            .webhooks
            .enable_endpoint(e.id)
            .await?
            .ok_or(CoreError::NotFound("webhook endpoint"))
    }

    /// An endpoint's latest delivery attempts, newest first.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] when the client has no such endpoint.
    pub async fn webhook_log(
        &self,
        client: &str,
        id: &str,
        limit: u32,
    ) -> Result<Vec<Attempt>, CoreError> {
        let e = self.clients_endpoint(client, id).await?;
        Ok(self
            .ports
            .webhooks
            .delivery_log(e.id, limit.clamp(1, WEBHOOK_LOG_MAX))
            .await?)
    }

    /// Claims at most `limit` due deliveries for this runner, each held for the webhook
    /// lease (longer than one POST may take).
    ///
    /// # Errors
    /// When the store fails.
    pub async fn claim_webhooks(&self, limit: u32) -> Result<Vec<Delivery>, CoreError> {
        let now = self.now();
        let lease = crate::delta(self.ports.sender.timeout()) * 2 + chrono::TimeDelta::seconds(5);
        Ok(self
            .ports
            .webhooks
            .claim_deliveries(now, now + lease, limit)
            .await?)
    }

    /// Sends one claimed delivery, signed with the endpoint's secrets, and records the
    /// attempt: delivered on 2xx, else due again after a backoff with jitter, or given up
    /// 24 hours after the event (disabling the endpoint if it accepted nothing since).
    /// Returns whether it was delivered.
    ///
    /// # Errors
    /// When the store fails; the delivery is then claimed again once its lease ends.
    pub async fn deliver_webhook(&self, d: &Delivery) -> Result<bool, CoreError> {
        let _running = crate::Running::new(self.ports.telemetry.as_ref(), "webhook");
        let result = self.deliver(d).await;
        let outcome = match &result {
            Ok(true) => "delivered",
            Ok(false) => "not_delivered",
            Err(_) => "error",
        };
        self.ports.telemetry.job_ended("webhook", outcome);
        result
    }

    async fn deliver(&self, d: &Delivery) -> Result<bool, CoreError> {
        let now = self.now();
        let msg_id = d.event.id.to_string();
        let timestamp = now.timestamp();
        let headers = [
            ("webhook-id", msg_id.clone()),
            ("webhook-timestamp", timestamp.to_string()),
            (
                "webhook-signature",
                d.endpoint.signature(now, &msg_id, timestamp, &d.event.body),
            ),
            ("content-type", "application/json".to_owned()),
            ("user-agent", "finX-Webhooks/1".to_owned()),
        ];
        let started = Instant::now();
        let sent = self
            .ports
            .sender
            .post(d.endpoint.url.as_url(), &headers, &d.event.body)
            .await;
        let millis = u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
        let at = self.now();
        let (status, error, ok) = match sent {
            Ok(s) if (200..300).contains(&s) => (Some(s), None, true),
            Ok(s) => (Some(s), Some(format!("HTTP {s}")), false),
            Err(e) => (None, Some(e.to_string()), false),
        };
        let outcome = if ok {
            AttemptOutcome::Delivered
        } else {
            let jitter = u32::from_be_bytes(
                self.ports.random.bytes16()[..4]
                    .try_into()
                    .unwrap_or([0; 4]),
            );
            after_failure(
                d.event.created_at,
                d.attempt,
                at,
                jitter,
                d.endpoint.last_success_at,
            )
        };
        let attempt = Attempt {
            event_id: d.event.id,
            event_type: d.event.event_type.clone(),
            endpoint_id: d.endpoint.id,
            attempt: d.attempt,
            at,
            status,
            error,
            millis,
        };
        self.ports
            .webhooks
            .finish_delivery(d.claim(), &attempt, outcome)
            .await?;
        Ok(ok)
    }
}
