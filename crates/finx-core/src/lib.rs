//! The finX application core: the use cases of the one-time access flow, the token endpoint
//! and the data API, written against the ports only.
//!
//! [`Finx`] holds the ports and the settings. Adapters call its methods: the HTTP adapter for
//! the customer API and the widget, the server binary for administration.

mod access;
mod cache;
mod clients;
mod data;
mod error;
mod ongoing;
mod tokens;
mod uploads;
mod verify;
mod webhooks;
mod widget;

use std::sync::Arc;
use std::time::Duration;

use finx_domain::Timestamp;
use finx_domain::schedule::SyncPolicy;
use finx_domain::secret::{HashKeys, MalformedSecret};
use finx_domain::token::Lifetimes;
use finx_ports::{
    AccessStore, BankConnector, BankDataStore, ClientRegistry, Clock, FlowStore, GrantStore,
    InvalidationBus, SecretGenerator, Telemetry, Timer, WebhookSender, WebhookStore,
};

pub use access::{OnetimeAccessRequest, OngoingAccessRequest};
pub use cache::ReadVersion;
pub use clients::{
    ClientDeletion, ClientUpdate, MAX_CATEGORY_RULES, MAX_SECRET_OVERLAP, NewClient,
    RegisteredClient,
};
pub use data::{Authorization, FEED_MAX_COUNT, FeedPage};
pub use error::CoreError;
pub use finx_domain::webhook::UrlPolicy;
pub use ongoing::AccessView;
pub use tokens::TokenResponse;
pub use uploads::AcceptedUpload;
pub use verify::{AccountVerificationRequest, VerificationResult};
pub use webhooks::{MAX_ENDPOINTS, WEBHOOK_LOG_MAX};
pub use widget::{LoginStep, WidgetView};

/// The adapters the core runs on.
#[derive(Clone)]
pub struct Ports {
    /// Registered customers.
    pub clients: Arc<dyn ClientRegistry>,
    /// Flows.
    pub flows: Arc<dyn FlowStore>,
    /// Grants and tokens.
    pub grants: Arc<dyn GrantStore>,
    /// Bank data.
    pub data: Arc<dyn BankDataStore>,
    /// Ongoing accesses and their sync jobs.
    pub accesses: Arc<dyn AccessStore>,
    /// The way to the banks.
    pub bank: Arc<dyn BankConnector>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Randomness.
    pub random: Arc<dyn SecretGenerator>,
    /// Waiting, for deadlines.
    pub timer: Arc<dyn Timer>,
    /// Webhook endpoints, the event outbox and deliveries.
    pub webhooks: Arc<dyn WebhookStore>,
    /// The way out to customers' webhook endpoints.
    pub sender: Arc<dyn WebhookSender>,
    /// How the instances on one database tell each other what their writes changed.
    pub bus: Arc<dyn InvalidationBus>,
    /// What operators see counted (metrics).
    pub telemetry: Arc<dyn Telemetry>,
}

/// Webhook settings.
#[derive(Debug, Clone, Copy)]
pub struct WebhookSettings {
    /// Where endpoints may point.
    pub policy: finx_domain::webhook::UrlPolicy,
    /// How long a rotated-out secret keeps signing (24 hours).
    pub secret_overlap: Duration,
    /// How long delivery logs and delivered events are kept (30 days).
    pub log_retention: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            policy: finx_domain::webhook::UrlPolicy::default(),
            secret_overlap: Duration::from_secs(24 * 3600),
            log_retention: Duration::from_secs(30 * 86_400),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct WebhookConfig {
    policy: finx_domain::webhook::UrlPolicy,
    secret_overlap: chrono::TimeDelta,
    log_retention: chrono::TimeDelta,
}

/// How many transactions one store write takes when a fetch brings many: each batch is its
/// own transaction, so a long history never holds the store's writer for long.
pub const SYNC_BATCH: usize = 500;

/// Settings of the core.
#[derive(Clone)]
pub struct Settings {
    /// Lifetimes of links, codes and tokens.
    pub lifetimes: Lifetimes,
    /// The key of the keyed hash under which every secret is stored (at least 16 bytes;
    /// 32 random bytes recommended). New hashes are made under it.
    pub hash_key: Vec<u8>,
    /// The hash keys it replaced, newest first: what was hashed under them is still
    /// recognised (tokens until they expire; a client secret is hashed again under the
    /// current key the next time it is presented). Rotating keeps everybody logged in.
    pub previous_hash_keys: Vec<Vec<u8>>,
    /// The longest any one bank call may take; a bank that does not answer by then is
    /// unavailable (default 30 s).
    pub bank_timeout: Duration,
    /// finX's return route for banks that send the end user to their own pages (the
    /// widget's `/widget/callback` at the public address).
    pub return_url: url::Url,
    /// How often and how far back ongoing accesses are synced.
    pub sync: SyncPolicy,
    /// For tests: scheduled syncs every this long instead of at the day's slots (the daily
    /// allowance still holds).
    pub sync_interval: Option<Duration>,
    /// How long a runner holds a claimed sync before another may take it over (5 min).
    pub sync_lease: Duration,
    /// How long one-time data and its grant are kept after the flow (1 hour).
    pub onetime_retention: Duration,
    /// How long a recurring consent is asked for (90 days).
    pub consent_days: u16,
    /// Webhooks.
    pub webhooks: WebhookSettings,
    /// How long a validated access token or a page of transactions may be served from
    /// memory at most (1 s; zero turns the read caches off). Writes of this instance, and
    /// of others on a shared [`InvalidationBus`], end the entries they make stale at once;
    /// this bounds what writers that publish nothing (another process on a SQLite file)
    /// can leave stale.
    pub read_cache: Duration,
}

impl Settings {
    /// The defaults with this hash key.
    #[must_use]
    pub fn with_hash_key(hash_key: Vec<u8>) -> Self {
        Self {
            lifetimes: Lifetimes::default(),
            hash_key,
            previous_hash_keys: Vec::new(),
            bank_timeout: Duration::from_secs(30),
            return_url: url::Url::parse("http://localhost/widget/callback")
                .unwrap_or_else(|_| unreachable!("a valid literal")),
            sync: SyncPolicy::default(),
            sync_interval: None,
            sync_lease: Duration::from_secs(300),
            onetime_retention: Duration::from_secs(3600),
            consent_days: 90,
            webhooks: WebhookSettings::default(),
            read_cache: Duration::from_secs(1),
        }
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("lifetimes", &self.lifetimes)
            .field("hash_key", &"[redacted]")
            .field("previous_hash_keys", &self.previous_hash_keys.len())
            .field("bank_timeout", &self.bank_timeout)
            .field("return_url", &self.return_url.as_str())
            .field("sync", &self.sync)
            .field("sync_interval", &self.sync_interval)
            .field("sync_lease", &self.sync_lease)
            .field("onetime_retention", &self.onetime_retention)
            .field("consent_days", &self.consent_days)
            .field("webhooks", &self.webhooks)
            .field("read_cache", &self.read_cache)
            .finish()
    }
}

/// Counts one job (`kind`) running on this instance for as long as it lives, even when the
/// job's future is dropped half-way (a shutdown).
pub(crate) struct Running<'a> {
    telemetry: &'a dyn Telemetry,
    kind: &'static str,
}

impl<'a> Running<'a> {
    pub(crate) fn new(telemetry: &'a dyn Telemetry, kind: &'static str) -> Self {
        telemetry.job_running(kind, 1);
        Self { telemetry, kind }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.telemetry.job_running(self.kind, -1);
    }
}

/// A duration as a time delta, saturating.
fn delta(d: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX)
}

/// Why the core cannot be wired.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A hash key is too short.
    #[error(transparent)]
    Key(#[from] MalformedSecret),
    /// The built-in categorisation rules do not read.
    #[error(transparent)]
    Rules(#[from] finx_domain::enrich::RuleError),
}

/// The finX use cases.
#[derive(Clone)]
pub struct Finx {
    ports: Ports,
    hasher: HashKeys,
    lifetimes: Lifetimes,
    bank_timeout: Duration,
    return_url: url::Url,
    sync: SyncPolicy,
    sync_interval: Option<chrono::TimeDelta>,
    sync_lease: chrono::TimeDelta,
    onetime_retention: chrono::TimeDelta,
    consent_days: u16,
    webhooks: WebhookConfig,
    coherence: Arc<cache::Coherence>,
    /// The built-in categorisation rules.
    rules: Arc<finx_domain::enrich::Rules>,
}

impl Finx {
    /// Wires the core.
    ///
    /// # Errors
    /// [`SetupError`] when a hash key is shorter than 16 bytes, or the built-in
    /// categorisation rules do not read (the tests read them, so a release never fails so).
    pub fn new(mut ports: Ports, settings: Settings) -> Result<Self, SetupError> {
        let coherence = Arc::new(cache::Coherence::new(
            delta(settings.read_cache),
            ports.bus.clone(),
            ports.clock.clone(),
        ));
        ports.clients = Arc::new(cache::CoherentClients {
            inner: ports.clients,
            coherence: coherence.clone(),
        });
        ports.grants = Arc::new(cache::CoherentGrants {
            inner: ports.grants,
            coherence: coherence.clone(),
        });
        ports.data = Arc::new(cache::CoherentData {
            inner: ports.data,
            coherence: coherence.clone(),
        });
        ports.accesses = Arc::new(cache::CoherentAccesses {
            inner: ports.accesses,
            coherence: coherence.clone(),
        });
        Ok(Self {
            ports,
            hasher: HashKeys::new(&settings.hash_key, &settings.previous_hash_keys)?,
            rules: Arc::new(finx_domain::enrich::Rules::builtin()?),
            lifetimes: settings.lifetimes,
            bank_timeout: settings.bank_timeout,
            return_url: settings.return_url,
            sync: settings.sync,
            sync_interval: settings
                .sync_interval
                .and_then(|d| chrono::TimeDelta::from_std(d).ok()),
            sync_lease: delta(settings.sync_lease),
            onetime_retention: delta(settings.onetime_retention),
            consent_days: settings.consent_days.max(1),
            webhooks: WebhookConfig {
                policy: settings.webhooks.policy,
                secret_overlap: delta(settings.webhooks.secret_overlap),
                log_retention: delta(settings.webhooks.log_retention),
            },
            coherence,
        })
    }

    /// Hears what other instances' writes changed, for the read caches, until the process
    /// ends. Run it once per instance when the bus is shared (it returns at once when it is
    /// not); until it hears the bus connected, nothing is served from the caches.
    pub async fn run_invalidation_listener(&self) {
        self.coherence.listen().await;
    }

    /// The version a page of transactions for `query` would be read under now; `None`
    /// while the read caches are off. Checks first that the token may read it, as
    /// [`list_transactions`](Self::list_transactions) does: a cached page is never served
    /// to a token that could not read it.
    ///
    /// # Errors
    /// As [`list_transactions`](Self::list_transactions) for scope and accounts.
    pub fn page_version(
        &self,
        auth: &Authorization,
        query: &finx_domain::query::TransactionQuery,
    ) -> Result<Option<ReadVersion>, CoreError> {
        let accounts = auth.readable(query)?;
        Ok(self.coherence.version(accounts, self.now()))
    }

    /// Whether what was read under `cached` may still be served where
    /// [`page_version`](Self::page_version) now answers `current` (for the same token and
    /// query): nothing written since changed it, and it is younger than the time-to-live.
    #[must_use]
    pub fn serves(&self, cached: &ReadVersion, current: &ReadVersion) -> bool {
        self.coherence.serves(cached, current)
    }

    /// The lifetimes in force.
    #[must_use]
    pub fn lifetimes(&self) -> Lifetimes {
        self.lifetimes
    }

    /// Where this instance counts what operators see (adapters record requests there).
    #[must_use]
    pub fn telemetry(&self) -> &Arc<dyn Telemetry> {
        &self.ports.telemetry
    }

    /// The time, from the clock port (adapters use it so that tests can move it).
    #[must_use]
    pub fn now(&self) -> Timestamp {
        self.ports.clock.now()
    }

    /// Whether the store answers: one real round trip, for readiness probes.
    ///
    /// # Errors
    /// The store's error when it does not answer.
    pub async fn ready(&self) -> Result<(), CoreError> {
        let probe = finx_domain::ids::ClientId::parse("readiness-probe")
            .map_err(|e| error::invalid("id", e))?;
        self.ports.clients.find_client(&probe).await?;
        Ok(())
    }

    /// The cleanup job: deletes codes, tokens, grants and flows that have expired, and bank
    /// data that no live grant justifies any more. Used refresh tokens are kept until they
    /// expire, so reuse is still detected. Bank data a flow is still fetching is spared: the
    /// cut-off is one link lifetime back.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn purge_expired(&self) -> Result<finx_ports::PurgeReport, CoreError> {
        let now = self.now();
        let orphaned_before = now - self.lifetimes.flow;
        let mut report = self.ports.grants.purge(now, orphaned_before).await?;
        report.flows = self.ports.flows.purge_flows(now).await?;
        report.accesses = self.end_orphaned_accesses(now, orphaned_before).await?;
        report.webhooks = self
            .ports
            .webhooks
            .purge_webhooks(now - self.webhooks.log_retention)
            .await?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests;
