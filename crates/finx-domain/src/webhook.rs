//! Webhooks: the events finX tells customers about, their endpoints, the delivery schedule,
//! and signing per the [Standard Webhooks](https://www.standardwebhooks.com/) specification.
//!
//! Payloads hold ids and counts, never bank data. Every event has an id that stays the same
//! across retries (`webhook-id`), so a receiver can drop the duplicates that at-least-once
//! delivery brings.

use std::fmt;
use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::TimeDelta;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::access::{SyncCounts, SyncFailure, UserId};
use crate::ids::{AccessId, ClientId, EndpointId, EventId, FlowId, SyncId};
use crate::{Date, Timestamp};

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventData {
    /// A flow ended with a grant: the customer may exchange its code.
    FlowCompleted {
        /// The flow (the `id` of `POST /onetime/access` or `/ongoing/access`).
        flow_id: FlowId,
        /// The access it created or renewed.
        access_id: AccessId,
        /// The end user, for an ongoing access.
        user_id: Option<UserId>,
    },
    /// A flow ended without a grant.
    FlowFailed {
        /// The flow.
        flow_id: FlowId,
        /// Why: a failure code of the widget (`login_failed`, `sca_rejected`, …) or
        /// `cancelled`.
        reason: &'static str,
    },
    /// A sync of an ongoing access succeeded.
    AccessSynced {
        /// The access.
        access_id: AccessId,
        /// The end user.
        user_id: UserId,
        /// The sync.
        sync_id: SyncId,
        /// What changed (filled in by the store that wrote the sync).
        counts: SyncCounts,
    },
    /// A sync of an ongoing access failed.
    AccessSyncFailed {
        /// The access.
        access_id: AccessId,
        /// The end user.
        user_id: UserId,
        /// The sync.
        sync_id: SyncId,
        /// Why.
        error: SyncFailure,
    },
    /// An access's consent comes close to its end: time to renew it.
    ConsentExpiring {
        /// The access.
        access_id: AccessId,
        /// The end user.
        user_id: UserId,
        /// The consent's last day.
        valid_until: Date,
    },
    /// An access's consent is over (expired, or revoked at the bank): syncs stopped.
    ConsentExpired {
        /// The access.
        access_id: AccessId,
        /// The end user.
        user_id: UserId,
        /// The consent's last day.
        valid_until: Date,
        /// `consent_expired` or `consent_revoked`.
        reason: SyncFailure,
    },
    /// A grant was revoked: its tokens no longer work.
    GrantRevoked {
        /// The flow that produced it.
        flow_id: FlowId,
        /// Its access.
        access_id: AccessId,
        /// Why.
        reason: RevokeReason,
    },
}

/// Why a grant was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeReason {
    /// The customer revoked it (`POST /auth/revoke`, or it deleted the access).
    Revoked,
    /// A used code or refresh token was presented again: the family is taken as stolen.
    TokenReuse,
    /// The flow ended another way after the grant was made (cancelled meanwhile).
    FlowEnded,
}

impl RevokeReason {
    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Revoked => "revoked",
            Self::TokenReuse => "token_reuse",
            Self::FlowEnded => "flow_ended",
        }
    }
}

/// Every event type, by wire name.
pub const EVENT_TYPES: [&str; 7] = [
    "flow.completed",
    "flow.failed",
    "access.synced",
    "access.sync_failed",
    "access.consent_expiring",
    "access.consent_expired",
    "grant.revoked",
];

/// One event for one customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Its id (`webhook-id`).
    pub id: EventId,
    /// The customer told.
    pub client_id: ClientId,
    /// When it happened.
    pub at: Timestamp,
    /// What happened.
    pub data: EventData,
}

impl Event {
    /// The wire type, e.g. `access.synced`.
    #[must_use]
    pub fn event_type(&self) -> &'static str {
        match self.data {
            EventData::FlowCompleted { .. } => EVENT_TYPES[0],
            EventData::FlowFailed { .. } => EVENT_TYPES[1],
            EventData::AccessSynced { .. } => EVENT_TYPES[2],
            EventData::AccessSyncFailed { .. } => EVENT_TYPES[3],
            EventData::ConsentExpiring { .. } => EVENT_TYPES[4],
            EventData::ConsentExpired { .. } => EVENT_TYPES[5],
            EventData::GrantRevoked { .. } => EVENT_TYPES[6],
        }
    }

    /// The event with a sync's counts, when it is `access.synced` (a store fills them in
    /// the transaction that wrote the sync).
    #[must_use]
    pub fn with_counts(mut self, written: SyncCounts) -> Self {
        if let EventData::AccessSynced { counts, .. } = &mut self.data {
            *counts = written;
        }
        self
    }

    /// The id of the `grant.revoked` event of a grant: one per grant, so a store can make it
    /// where it revokes, and two revocations racing give one event.
    #[must_use]
    pub fn revocation_id(grant: crate::ids::GrantId) -> EventId {
        Self::id_for("grant.revoked", grant.as_uuid().as_bytes())
    }

    /// An event id derived from what it is about: for events that happen once per thing
    /// (a flow's end, a grant's revocation), so writing one twice keeps one.
    #[must_use]
    pub fn id_for(tag: &str, key: &[u8]) -> EventId {
        use sha2::Digest as _;
        let d = Sha256::new()
            .chain_update(tag.as_bytes())
            .chain_update([0])
            .chain_update(key)
            .finalize();
        let mut b = [0u8; 16];
        b.copy_from_slice(&d[..16]);
        EventId::from_random(b)
    }
}

/// An event as stored for delivery: its body is fixed when it is written, so every retry
/// sends the same bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its id (`webhook-id`).
    pub id: EventId,
    /// The customer.
    pub client_id: ClientId,
    /// The wire type.
    pub event_type: String,
    /// The JSON body.
    pub body: String,
    /// When it happened.
    pub created_at: Timestamp,
}

/// A webhook signing secret (`whsec_` and the base64 of 32 random bytes), shown to the
/// customer once and sealed at rest. `Debug` is redacted; compare with
/// [`ct_eq`](Self::ct_eq).
pub struct WebhookSecret(Vec<u8>);

impl WebhookSecret {
    /// What every webhook secret starts with.
    pub const PREFIX: &'static str = "whsec_";

    /// A fresh secret from 32 random bytes.
    #[must_use]
    pub fn from_random(bytes: [u8; 32]) -> Self {
        Self(bytes.to_vec())
    }

    /// The key bytes, as a store reads them back.
    #[must_use]
    pub fn from_key(key: Vec<u8>) -> Self {
        Self(key)
    }

    /// Reads the shown form.
    ///
    /// # Errors
    /// When it is not `whsec_` and base64 of 24 to 64 bytes.
    pub fn parse(raw: &str) -> Result<Self, WebhookError> {
        let b64 = raw.strip_prefix(Self::PREFIX).unwrap_or(raw);
        let key = STANDARD
            .decode(b64)
            .map_err(|_| WebhookError::Secret("not base64"))?;
        if !(24..=64).contains(&key.len()) {
            return Err(WebhookError::Secret("24 to 64 bytes"));
        }
        Ok(Self(key))
    }

    /// The shown form, for the one answer that hands it out.
    #[must_use]
    pub fn expose(&self) -> String {
        format!("{}{}", Self::PREFIX, STANDARD.encode(&self.0))
    }

    /// The key bytes, to seal or to sign with.
    #[must_use]
    pub fn key(&self) -> &[u8] {
        &self.0
    }

    /// Compares two secrets in constant time.
    #[must_use]
    pub fn ct_eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    /// The `v1,` signature of one message: base64 of HMAC-SHA256 over
    /// `{id}.{timestamp}.{body}`.
    #[must_use]
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body.as_bytes());
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

impl Clone for WebhookSecret {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(whsec_[redacted])")
    }
}

impl PartialEq for WebhookSecret {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other)
    }
}

impl Eq for WebhookSecret {}

/// A webhook problem a caller can fix.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WebhookError {
    /// The URL may not receive webhooks.
    #[error("webhook url: {0}")]
    Url(&'static str),
    /// A secret is not one finX issues.
    #[error("webhook secret: {0}")]
    Secret(&'static str),
}

/// Where webhooks may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UrlPolicy {
    /// Sandbox mode: `http` and loopback addresses are allowed (a customer's test receiver
    /// on the same machine). Off in production, where only `https` to public addresses
    /// is.
    pub sandbox: bool,
}

impl UrlPolicy {
    /// Whether a webhook may be sent to `ip` (checked on every address a name resolves to,
    /// when it is sent: a name that once pointed outside may point inside later).
    #[must_use]
    pub fn allows_ip(self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => match embedded_v4(v6) {
                Embedded::V4(v4) => IpAddr::V4(v4),
                Embedded::Refused => return false,
                Embedded::None => ip,
            },
            v4 @ IpAddr::V4(_) => v4,
        };
        if ip.is_loopback() {
            return self.sandbox;
        }
        is_public(ip)
    }
}

/// What an IPv6 address says of IPv4.
enum Embedded {
    /// It stands for this IPv4 address (mapped, or NAT64's well-known prefix), which
    /// decides.
    V4(std::net::Ipv4Addr),
    /// A transition form whose IPv4 side cannot be told or trusted (6to4, Teredo,
    /// IPv4-compatible, NAT64's local-use prefix): refused.
    Refused,
    /// A plain IPv6 address.
    None,
}

fn embedded_v4(v6: std::net::Ipv6Addr) -> Embedded {
    let seg = v6.segments();
    let last32 = std::net::Ipv4Addr::new(
        (seg[6] >> 8) as u8,
        (seg[6] & 0xff) as u8,
        (seg[7] >> 8) as u8,
        (seg[7] & 0xff) as u8,
    );
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Embedded::V4(v4);
    }
    match seg {
        // NAT64 well-known prefix 64:ff9b::/96: the IPv4 address in the last 32 bits.
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Embedded::V4(last32),
        // NAT64 local-use 64:ff9b:1::/48, 6to4 2002::/16, Teredo 2001::/32.
        [0x64, 0xff9b, 1, ..] | [0x2002, ..] | [0x2001, 0, ..] => Embedded::Refused,
        // IPv4-compatible ::a.b.c.d (deprecated), but not :: and ::1.
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 || lo > 1 => Embedded::Refused,
        _ => Embedded::None,
    }
}

/// Whether an address is publicly routable: not private, loopback, link-local, shared,
/// documentation, benchmarking, multicast, broadcast or unspecified.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared (CGNAT)
                || (a == 198 && (b == 18 || b == 19)) // benchmarking
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link local
                || (first & 0xffc0) == 0xfec0 // site local (deprecated)
                || v6.segments()[..4] == [0x100, 0, 0, 0] // discard-only
                || first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
        }
    }
}

/// A URL webhooks may be sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(url::Url);

impl WebhookUrl {
    /// Checks a URL under `policy`: `https` (or `http` to a loopback host in sandbox mode),
    /// no credentials, no fragment, at most 2,048 characters, and an address literal must
    /// be one [`UrlPolicy::allows_ip`] allows.
    ///
    /// # Errors
    /// [`WebhookError::Url`] saying what is wrong.
    pub fn parse(raw: &str, policy: UrlPolicy) -> Result<Self, WebhookError> {
        if raw.len() > 2048 {
            return Err(WebhookError::Url("longer than 2048 characters"));
        }
        let url = url::Url::parse(raw).map_err(|_| WebhookError::Url("not an absolute URL"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(WebhookError::Url("credentials in the URL are not allowed"));
        }
        if url.fragment().is_some() {
            return Err(WebhookError::Url("a fragment is not allowed"));
        }
        let loopback = match url.host() {
            None => return Err(WebhookError::Url("no host")),
            Some(url::Host::Domain(d)) => {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                d == "localhost" || d.ends_with(".localhost")
            }
            Some(url::Host::Ipv4(ip)) => {
                if !policy.allows_ip(IpAddr::V4(ip)) {
                    return Err(WebhookError::Url("a private or reserved address"));
                }
                ip.is_loopback()
            }
            Some(url::Host::Ipv6(ip)) => {
                if !policy.allows_ip(IpAddr::V6(ip)) {
                    return Err(WebhookError::Url("a private or reserved address"));
                }
                ip.is_loopback()
            }
        };
        if loopback && !policy.sandbox {
            return Err(WebhookError::Url(
                "loopback is allowed in sandbox mode only",
            ));
        }
        match url.scheme() {
            "https" => {}
            "http" if policy.sandbox && loopback => {}
            "http" => {
                return Err(WebhookError::Url(
                    "https is required (http only to loopback in sandbox mode)",
                ));
            }
            _ => return Err(WebhookError::Url("the scheme must be https")),
        }
        Ok(Self(url))
    }

    /// Reads back a URL a store kept (checked when it was registered).
    ///
    /// # Errors
    /// When it is not a URL.
    pub fn from_stored(raw: &str) -> Result<Self, WebhookError> {
        url::Url::parse(raw)
            .map(Self)
            .map_err(|_| WebhookError::Url("not an absolute URL"))
    }

    /// The URL.
    #[must_use]
    pub fn as_url(&self) -> &url::Url {
        &self.0
    }

    /// The URL as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// A customer's webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Its id.
    pub id: EndpointId,
    /// The customer.
    pub client_id: ClientId,
    /// Where events go.
    pub url: WebhookUrl,
    /// The signing secret.
    pub secret: WebhookSecret,
    /// The secret before the last rotation and until when it still signs too.
    pub previous: Option<(WebhookSecret, Timestamp)>,
    /// Registered.
    pub created_at: Timestamp,
    /// When it was disabled for failing, if it was (no deliveries until enabled again).
    pub disabled_at: Option<Timestamp>,
    /// The last delivery it accepted.
    pub last_success_at: Option<Timestamp>,
}

impl Endpoint {
    /// The secrets a delivery at `now` is signed with: the current one, and the previous one
    /// during its overlap.
    #[must_use]
    pub fn signing_secrets(&self, now: Timestamp) -> Vec<&WebhookSecret> {
        let mut out = vec![&self.secret];
        if let Some((old, until)) = &self.previous
            && now < *until
        {
            out.push(old);
        }
        out
    }

    /// The `webhook-signature` header of one message at `now`: one `v1,` signature per
    /// signing secret, space-separated.
    #[must_use]
    pub fn signature(&self, now: Timestamp, msg_id: &str, timestamp: i64, body: &str) -> String {
        self.signing_secrets(now)
            .into_iter()
            .map(|s| s.sign(msg_id, timestamp, body))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Replaces the secret; the old one keeps signing for `overlap`.
    pub fn rotate(&mut self, fresh: WebhookSecret, now: Timestamp, overlap: TimeDelta) {
        let old = std::mem::replace(&mut self.secret, fresh);
        self.previous = Some((old, now + overlap));
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Given up: 24 hours of attempts failed, or the endpoint was disabled or removed.
    Failed,
}

impl DeliveryStatus {
    /// The stored name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// Reads a stored name.
    #[must_use]
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// One event on its way to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The event.
    pub event: StoredEvent,
    /// The endpoint, as it stood when claimed.
    pub endpoint: Endpoint,
    /// Attempts so far, this one included once claimed (the claim's fence).
    pub attempt: u32,
    /// Its state.
    pub status: DeliveryStatus,
    /// When it is due.
    pub next_at: Timestamp,
}

/// A claimed delivery: only the runner holding this attempt may finish it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeliveryClaim {
    /// The event.
    pub event: EventId,
    /// The endpoint.
    pub endpoint: EndpointId,
    /// The attempt claimed.
    pub attempt: u32,
}

impl Delivery {
    /// Its claim.
    #[must_use]
    pub fn claim(&self) -> DeliveryClaim {
        DeliveryClaim {
            event: self.event.id,
            endpoint: self.endpoint.id,
            attempt: self.attempt,
        }
    }
}

/// One attempt, as the delivery log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The event.
    pub event_id: EventId,
    /// Its type.
    pub event_type: String,
    /// The endpoint.
    pub endpoint_id: EndpointId,
    /// Which attempt (1 is the first).
    pub attempt: u32,
    /// When it was sent.
    pub at: Timestamp,
    /// The HTTP status answered, if any.
    pub status: Option<u16>,
    /// What went wrong, if it did (timeout, refused address, connection error, status).
    pub error: Option<String>,
    /// How long it took, in milliseconds.
    pub millis: u32,
}

/// What follows an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Delivered.
    Delivered,
    /// Try again at this time.
    Retry(Timestamp),
    /// Give up; and disable the endpoint when nothing reached it since the event.
    GiveUp {
        /// Whether to disable the endpoint.
        disable: bool,
    },
}

/// How long deliveries are tried: 24 hours from the event.
pub const DELIVERY_WINDOW: TimeDelta = TimeDelta::hours(24);

/// The wait after failed attempt `attempt` (1 is the first): 5 s × 4^(attempt−1), capped at
/// 4 hours, times a jitter in [0.75, 1.25) from `jitter` (a uniform `u32`): at most 5 hours.
#[must_use]
pub fn backoff(attempt: u32, jitter: u32) -> TimeDelta {
    let base = 5_i64.saturating_mul(4_i64.saturating_pow(attempt.saturating_sub(1).min(20)));
    let base = base.min(4 * 3600);
    // 0.75 + jitter / 2^33 in [0.75, 1.25)
    let millis = base * 750 + (base * 500 * i64::from(jitter)) / (1_i64 << 32);
    TimeDelta::milliseconds(millis)
}

/// What follows failed attempt `attempt` of an event created at `created`, at `now`: the
/// next try while it falls within [`DELIVERY_WINDOW`] of the event; else give up, and
/// disable the endpoint when it accepted nothing since the event was made (it failed for
/// the whole window).
#[must_use]
pub fn after_failure(
    created: Timestamp,
    attempt: u32,
    now: Timestamp,
    jitter: u32,
    last_success: Option<Timestamp>,
) -> AttemptOutcome {
    let next = now + backoff(attempt, jitter);
    if next <= created + DELIVERY_WINDOW {
        AttemptOutcome::Retry(next)
    } else {
        AttemptOutcome::GiveUp {
            disable: last_success.is_none_or(|t| t < created),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t0() -> Timestamp {
        chrono::Utc
            .with_ymd_and_hms(2026, 3, 10, 12, 0, 0)
            .single()
            .expect("valid")
    }

    #[test]
    fn signatures_match_the_standard_webhooks_test_vector() {
        // The specification's own example (standard-webhooks/spec, "Signature scheme").
        let secret =
            WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_rotated_endpoint_signs_with_both_secrets_during_the_overlap_only() {
        let mut e = Endpoint {
            id: EndpointId::from_random([1; 16]),
            client_id: ClientId::parse("c").expect("id"),
            url: WebhookUrl::parse("https://example.com/hook", UrlPolicy::default()).expect("url"),
            secret: WebhookSecret::from_random([1; 32]),
            previous: None,
            created_at: t0(),
            disabled_at: None,
            last_success_at: None,
        };
        assert_eq!(e.signature(t0(), "m", 1, "{}").split(' ').count(), 1);
        e.rotate(
            WebhookSecret::from_random([2; 32]),
            t0(),
            TimeDelta::hours(24),
        );
        let both = e.signature(t0(), "m", 1, "{}");
        assert_eq!(both.split(' ').count(), 2);
        assert!(both.starts_with(&WebhookSecret::from_random([2; 32]).sign("m", 1, "{}")));
        let later = t0() + TimeDelta::hours(24);
        assert_eq!(e.signature(later, "m", 1, "{}").split(' ').count(), 1);
    }

    #[test]
    fn secrets_redact_their_debug_and_round_trip() {
        let s = WebhookSecret::from_random([7; 32]);
        assert!(!format!("{s:?}").contains(&s.expose()[6..12]));
        assert!(s.expose().starts_with("whsec_"));
        assert_eq!(WebhookSecret::parse(&s.expose()).expect("parse"), s);
        assert!(WebhookSecret::parse("whsec_!!").is_err());
        assert!(WebhookSecret::parse("whsec_AAAA").is_err());
    }

    #[test]
    fn urls_are_https_to_public_hosts_outside_the_sandbox() {
        let prod = UrlPolicy { sandbox: false };
        let sandbox = UrlPolicy { sandbox: true };
        assert!(WebhookUrl::parse("https://hooks.example.com/finx", prod).is_ok());
        for bad in [
            "http://hooks.example.com/finx",
            "ftp://hooks.example.com/",
            "https://user:pw@hooks.example.com/",
            "https://127.0.0.1/",
            "https://localhost/",
            "https://10.0.0.1/",
            "https://192.168.1.1/",
            "https://172.16.0.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/",
            "https://[::1]/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://[::ffff:10.0.0.1]/",
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://[64:ff9b:1::1]/",
            "https://[2002:a00:1::1]/",
            "https://[2001:0:4136:e378::1]/",
            "https://[::10.0.0.1]/",
            "https://[fec0::1]/",
            "https://[100::1]/",
            "https://0.0.0.0/",
            "not a url",
        ] {
            assert!(WebhookUrl::parse(bad, prod).is_err(), "{bad}");
        }
        assert!(
            WebhookUrl::parse("https://[64:ff9b::5db8:d822]/", prod).is_ok(),
            "NAT64 of a public address"
        );
        assert!(WebhookUrl::parse("https://[2606:4700::1111]/", prod).is_ok());
        assert!(WebhookUrl::parse("http://127.0.0.1:8080/hook", sandbox).is_ok());
        assert!(WebhookUrl::parse("http://localhost:8080/hook", sandbox).is_ok());
        assert!(WebhookUrl::parse("http://hooks.example.com/", sandbox).is_err());
        assert!(WebhookUrl::parse("https://10.0.0.1/", sandbox).is_err());
    }

    #[test]
    fn backoff_grows_with_jitter_and_gives_up_after_a_day() {
        assert_eq!(backoff(1, 0), TimeDelta::milliseconds(3750));
        assert!(backoff(1, u32::MAX) < TimeDelta::milliseconds(6250));
        assert!(backoff(2, 0) > backoff(1, u32::MAX));
        assert_eq!(backoff(30, 0), TimeDelta::hours(3));
        let created = t0();
        let mut now = created;
        let mut attempt = 1;
        let mut tries = 1;
        while let AttemptOutcome::Retry(next) =
            after_failure(created, attempt, now, u32::MAX / 2, None)
        {
            assert!(next > now && next <= created + DELIVERY_WINDOW);
            now = next;
            attempt += 1;
            tries += 1;
        }
        assert!((8..=14).contains(&tries), "{tries} tries in a day");
        assert_eq!(
            after_failure(created, attempt, now, 0, None),
            AttemptOutcome::GiveUp { disable: true }
        );
        assert_eq!(
            after_failure(
                created,
                attempt,
                now,
                0,
                Some(created + TimeDelta::hours(1))
            ),
            AttemptOutcome::GiveUp { disable: false }
        );
    }
}
