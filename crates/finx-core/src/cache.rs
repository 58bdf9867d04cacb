//! Read caches that never serve what a write made stale.
//!
//! Two reads dominate an API server's day: checking a bearer token and serving a page of
//! transactions that has not changed since the customer's last poll. Both go to the
//! database otherwise (on SQLite: a hop to its worker thread per statement), so the core
//! keeps validated tokens, and gives the HTTP adapter a [`ReadVersion`] to keep rendered
//! pages under.
//!
//! Coherence, not expiry, keeps them right:
//! - Every write of this instance that can change a cached read goes through the store
//!   ports wrapped here, which count it in [`Coherence`] once it is committed: per account
//!   (4,096 counters, an account counting in one) for bank data, and one global counter for
//!   whatever revokes or deletes grants and tokens. A cached entry carries the counters it
//!   was read under (taken before the read), and serves only while they are unchanged.
//! - The same writes are published on the [`InvalidationBus`], and
//!   [`Finx::run_invalidation_listener`] counts what other instances publish. While a shared
//!   bus is not connected nothing is served from the caches, and a lost connection counts
//!   as a change of everything.
//! - Every entry also ends after the time-to-live (`Settings::read_cache`, 1 s by default):
//!   the bound for writers that publish nothing, such as the administration commands run
//!   as another process against a SQLite file.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use finx_domain::Timestamp;
use finx_domain::access::{Access, Claim, SyncJob, UserId};
use finx_domain::bank::{Account, Transaction, TransactionDetails};
use finx_domain::ids::{AccessId, AccountId, ClientId, GrantId, SyncId, TransactionId};
use finx_domain::query::ResolvedQuery;
use finx_domain::secret::TokenHash;
use finx_domain::token::{AccessTokenRecord, CodeRecord, Grant, IssuedTokens, RefreshTokenRecord};
use finx_ports::{
    AccessStore, BankDataStore, FeedRead, GrantStore, Heard, Invalidation, InvalidationBus,
    JobOutcome, PurgeReport, RedeemFailure, RotateFailure, StoreError, SyncReport,
};

/// How many per-account counters there are.
const BUCKETS: usize = 4096;

/// How many validated access tokens an instance keeps.
const TOKENS: usize = 100_000;

/// The counters a read was made under, and when: a cached read serves while
/// [`Finx::serves`](crate::Finx::serves) says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadVersion {
    epoch: u64,
    at: Timestamp,
}

/// A validated access token.
struct TokenEntry {
    record: AccessTokenRecord,
    grant: Grant,
    version: ReadVersion,
}

/// A client as read.
struct ClientEntry {
    client: finx_ports::Client,
    version: ReadVersion,
}

/// How many clients an instance keeps.
const CLIENTS: usize = 10_000;

/// The write counters of one instance, its token and client caches, and its bus.
pub(crate) struct Coherence {
    ttl: chrono::TimeDelta,
    global: AtomicU64,
    buckets: Box<[AtomicU64]>,
    hasher: std::hash::RandomState,
    /// Whether what other instances publish is being heard.
    hearing: AtomicBool,
    bus: Arc<dyn InvalidationBus>,
    clock: Arc<dyn finx_ports::Clock>,
    tokens: Option<quick_cache::sync::Cache<TokenHash, Arc<TokenEntry>>>,
    clients: Option<quick_cache::sync::Cache<ClientId, Arc<ClientEntry>>>,
}

impl Coherence {
    /// Caches whose entries live at most `ttl` (zero: no caching at all).
    pub(crate) fn new(
        ttl: chrono::TimeDelta,
        bus: Arc<dyn InvalidationBus>,
        clock: Arc<dyn finx_ports::Clock>,
    ) -> Self {
        let on = ttl > chrono::TimeDelta::zero();
        Self {
            ttl,
            global: AtomicU64::new(0),
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            hasher: std::hash::RandomState::new(),
            hearing: AtomicBool::new(!bus.shared()),
            bus,
            clock,
            tokens: on.then(|| quick_cache::sync::Cache::new(TOKENS)),
            clients: on.then(|| quick_cache::sync::Cache::new(CLIENTS)),
        }
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn on(&self) -> bool {
        self.ttl > chrono::TimeDelta::zero() && self.hearing.load(Ordering::Acquire)
    }

    fn bucket(&self, account: &AccountId) -> &AtomicU64 {
        let i = usize::try_from(self.hasher.hash_one(account.as_str()) % BUCKETS as u64)
            .unwrap_or_default();
        &self.buckets[i]
    }

    /// The version of reads of these accounts at `now`; `None` while caching is off.
    pub(crate) fn version<'a>(
        &self,
        accounts: impl IntoIterator<Item = &'a AccountId>,
        now: Timestamp,
    ) -> Option<ReadVersion> {
        if !self.on() {
            return None;
        }
        let mut epoch = self.global.load(Ordering::Acquire);
        for a in accounts {
            epoch = epoch.wrapping_add(self.bucket(a).load(Ordering::Acquire));
        }
        Some(ReadVersion { epoch, at: now })
    }

    /// Whether a read made at `cached` still stands at `current` (of the same accounts).
    pub(crate) fn serves(&self, cached: &ReadVersion, current: &ReadVersion) -> bool {
        cached.epoch == current.epoch
            && current.at >= cached.at
            && current.at - cached.at < self.ttl
    }

    /// A cached token with its grant, if it still stands at `now`.
    pub(crate) fn token(
        &self,
        hash: &TokenHash,
        now: Timestamp,
    ) -> Option<(AccessTokenRecord, Grant)> {
        let cache = self.tokens.as_ref()?;
        let current = self.version([], now)?;
        let hit = cache.get(hash)?;
        self.serves(&hit.version, &current)
            .then(|| (hit.record.clone(), hit.grant.clone()))
    }

    /// Keeps a token read under `version`.
    pub(crate) fn keep_token(
        &self,
        hash: TokenHash,
        record: AccessTokenRecord,
        grant: Grant,
        version: ReadVersion,
    ) {
        if let Some(cache) = &self.tokens {
            cache.insert(
                hash,
                Arc::new(TokenEntry {
                    record,
                    grant,
                    version,
                }),
            );
        }
    }

    /// A cached client, if it still stands at `now`.
    pub(crate) fn client(&self, id: &ClientId, now: Timestamp) -> Option<finx_ports::Client> {
        let cache = self.clients.as_ref()?;
        let current = self.version([], now)?;
        let hit = cache.get(id)?;
        self.serves(&hit.version, &current)
            .then(|| hit.client.clone())
    }

    /// Keeps a client read under `version`.
    pub(crate) fn keep_client(&self, client: finx_ports::Client, version: ReadVersion) {
        if let Some(cache) = &self.clients {
            cache.insert(client.id.clone(), Arc::new(ClientEntry { client, version }));
        }
    }

    /// Counts a change heard or made here.
    fn count(&self, what: &Invalidation) {
        match what {
            Invalidation::Everything => {
                self.global.fetch_add(1, Ordering::AcqRel);
            }
            Invalidation::Accounts(ids) => {
                for id in ids {
                    self.bucket(id).fetch_add(1, Ordering::AcqRel);
                }
            }
        }
    }

    /// Counts a committed write of this instance and tells the others.
    async fn changed(&self, what: Invalidation) {
        if matches!(&what, Invalidation::Accounts(ids) if ids.is_empty()) {
            return;
        }
        self.count(&what);
        if self.bus.shared() {
            // Best effort: the write stands; what the others miss ends with their TTL.
            let _ = self.bus.publish(&what).await;
        }
    }

    /// Counts what other instances publish, until the bus ends (never, on a shared bus).
    pub(crate) async fn listen(&self) {
        if !self.bus.shared() {
            return;
        }
        loop {
            match self.bus.next().await {
                Heard::Published(what) => self.count(&what),
                Heard::Connected => {
                    self.count(&Invalidation::Everything);
                    self.hearing.store(true, Ordering::Release);
                }
                Heard::Lost => {
                    self.hearing.store(false, Ordering::Release);
                    self.count(&Invalidation::Everything);
                }
            }
        }
    }
}

fn accounts_of(ids: impl IntoIterator<Item = AccountId>) -> Invalidation {
    Invalidation::Accounts(ids.into_iter().collect())
}

/// The client registry, counting every change to a client (a new one changes no read).
pub(crate) struct CoherentClients {
    pub(crate) inner: Arc<dyn finx_ports::ClientRegistry>,
    pub(crate) coherence: Arc<Coherence>,
}

#[async_trait]
impl finx_ports::ClientRegistry for CoherentClients {
    async fn insert_client(&self, client: &finx_ports::Client) -> Result<(), StoreError> {
        self.inner.insert_client(client).await
    }

    async fn find_client(&self, id: &ClientId) -> Result<Option<finx_ports::Client>, StoreError> {
        let now = self.coherence.now();
        if let Some(hit) = self.coherence.client(id, now) {
            return Ok(Some(hit));
        }
        let version = self.coherence.version([], now);
        let found = self.inner.find_client(id).await?;
        if let (Some(client), Some(version)) = (&found, version) {
            self.coherence.keep_client(client.clone(), version);
        }
        Ok(found)
    }

    async fn update_client(&self, client: &finx_ports::Client) -> Result<bool, StoreError> {
        let r = self.inner.update_client(client).await;
        self.coherence.changed(Invalidation::Everything).await;
        r
    }

    async fn list_clients(&self) -> Result<Vec<finx_ports::Client>, StoreError> {
        self.inner.list_clients().await
    }

    async fn delete_client(&self, id: &ClientId) -> Result<bool, StoreError> {
        let r = self.inner.delete_client(id).await;
        self.coherence.changed(Invalidation::Everything).await;
        r
    }

    async fn add_category_rule(
        &self,
        client: &ClientId,
        rule: &finx_domain::enrich::CustomerRule,
        limit: usize,
    ) -> Result<bool, StoreError> {
        let r = self.inner.add_category_rule(client, rule, limit).await;
        self.coherence.changed(Invalidation::Everything).await;
        r
    }

    async fn delete_category_rule(
        &self,
        client: &ClientId,
        rule: &str,
    ) -> Result<bool, StoreError> {
        let r = self.inner.delete_category_rule(client, rule).await;
        self.coherence.changed(Invalidation::Everything).await;
        r
    }
}

/// The grant store, counting what revokes.
pub(crate) struct CoherentGrants {
    pub(crate) inner: Arc<dyn GrantStore>,
    pub(crate) coherence: Arc<Coherence>,
}

#[async_trait]
impl GrantStore for CoherentGrants {
    async fn insert_grant(&self, grant: &Grant, code: &CodeRecord) -> Result<(), StoreError> {
        self.inner.insert_grant(grant, code).await
    }

    async fn find_code(&self, code: &TokenHash) -> Result<Option<(CodeRecord, Grant)>, StoreError> {
        self.inner.find_code(code).await
    }

    async fn redeem_code(
        &self,
        code: &TokenHash,
        now: Timestamp,
        tokens: &IssuedTokens,
    ) -> Result<Grant, RedeemFailure> {
        let r = self.inner.redeem_code(code, now, tokens).await;
        if r.is_err() {
            // A replayed code revokes its grant.
            self.coherence.changed(Invalidation::Everything).await;
        }
        r
    }

    async fn find_refresh_token(
        &self,
        token: &TokenHash,
    ) -> Result<Option<(RefreshTokenRecord, Grant)>, StoreError> {
        self.inner.find_refresh_token(token).await
    }

    async fn rotate_refresh_token(
        &self,
        old: &TokenHash,
        now: Timestamp,
        tokens: &IssuedTokens,
    ) -> Result<Grant, RotateFailure> {
        let r = self.inner.rotate_refresh_token(old, now, tokens).await;
        if r.is_err() {
            // A reused refresh token revokes its grant.
            self.coherence.changed(Invalidation::Everything).await;
        }
        r
    }

    async fn find_access_token(
        &self,
        token: &TokenHash,
    ) -> Result<Option<(AccessTokenRecord, Grant)>, StoreError> {
        self.inner.find_access_token(token).await
    }

    async fn find_grant(&self, id: GrantId) -> Result<Option<Grant>, StoreError> {
        self.inner.find_grant(id).await
    }

    async fn client_grants(&self, client: &ClientId) -> Result<Vec<GrantId>, StoreError> {
        self.inner.client_grants(client).await
    }

    async fn revoke_grant(
        &self,
        id: GrantId,
        now: Timestamp,
        reason: finx_domain::webhook::RevokeReason,
    ) -> Result<(), StoreError> {
        let r = self.inner.revoke_grant(id, now, reason).await;
        self.coherence.changed(Invalidation::Everything).await;
        r
    }

    async fn revoke_access_token(
        &self,
        token: &TokenHash,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let r = self.inner.revoke_access_token(token, now).await;
        self.coherence.changed(Invalidation::Everything).await;
        r
    }

    async fn add_access_token(
        &self,
        token: &AccessTokenRecord,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.inner.add_access_token(token, now).await
    }

    async fn insert_upload(&self, upload: &finx_domain::upload::Upload) -> Result<(), StoreError> {
        self.inner.insert_upload(upload).await
    }

    async fn find_upload(
        &self,
        id: finx_domain::ids::UploadId,
    ) -> Result<Option<finx_domain::upload::Upload>, StoreError> {
        self.inner.find_upload(id).await
    }

    async fn update_upload(
        &self,
        upload: &finx_domain::upload::Upload,
    ) -> Result<bool, StoreError> {
        self.inner.update_upload(upload).await
    }

    async fn purge(
        &self,
        now: Timestamp,
        orphaned_before: Timestamp,
    ) -> Result<PurgeReport, StoreError> {
        let r = self.inner.purge(now, orphaned_before).await;
        self.coherence.changed(Invalidation::Everything).await;
        r
    }
}

/// The bank data store, counting the accounts written.
pub(crate) struct CoherentData {
    pub(crate) inner: Arc<dyn BankDataStore>,
    pub(crate) coherence: Arc<Coherence>,
}

#[async_trait]
impl BankDataStore for CoherentData {
    async fn upsert_account(&self, account: &Account) -> Result<(), StoreError> {
        let r = self.inner.upsert_account(account).await;
        self.coherence
            .changed(accounts_of([account.id.clone()]))
            .await;
        r
    }

    async fn sync_transactions(
        &self,
        account: &AccountId,
        transactions: &[TransactionDetails],
        now: Timestamp,
    ) -> Result<SyncReport, StoreError> {
        let r = self
            .inner
            .sync_transactions(account, transactions, now)
            .await;
        self.coherence.changed(accounts_of([account.clone()])).await;
        r
    }

    async fn upsert_transactions(
        &self,
        account: &AccountId,
        transactions: &[TransactionDetails],
        now: Timestamp,
    ) -> Result<SyncReport, StoreError> {
        let r = self
            .inner
            .upsert_transactions(account, transactions, now)
            .await;
        self.coherence.changed(accounts_of([account.clone()])).await;
        r
    }

    async fn drop_pending_except(
        &self,
        account: &AccountId,
        keep: &[TransactionId],
    ) -> Result<u64, StoreError> {
        let r = self.inner.drop_pending_except(account, keep).await;
        self.coherence.changed(accounts_of([account.clone()])).await;
        r
    }

    async fn find_accounts(&self, ids: &[AccountId]) -> Result<Vec<Account>, StoreError> {
        self.inner.find_accounts(ids).await
    }

    async fn query_transactions(
        &self,
        query: &ResolvedQuery,
    ) -> Result<Vec<Transaction>, StoreError> {
        self.inner.query_transactions(query).await
    }

    async fn find_transaction(
        &self,
        id: &TransactionId,
    ) -> Result<Option<Transaction>, StoreError> {
        self.inner.find_transaction(id).await
    }

    async fn delete_access(&self, access_id: &AccessId) -> Result<u64, StoreError> {
        let r = self.inner.delete_access(access_id).await;
        self.coherence.changed(Invalidation::Everything).await;
        r
    }

    async fn changes(
        &self,
        accounts: &[AccountId],
        after: i64,
        limit: u32,
        moved: Option<(i64, i64, i64)>,
    ) -> Result<FeedRead, StoreError> {
        self.inner.changes(accounts, after, limit, moved).await
    }
}

/// The access store, counting what syncs write and what deleting an access revokes.
pub(crate) struct CoherentAccesses {
    pub(crate) inner: Arc<dyn AccessStore>,
    pub(crate) coherence: Arc<Coherence>,
}

#[async_trait]
impl AccessStore for CoherentAccesses {
    async fn insert_access(&self, access: &Access, first: &SyncJob) -> Result<(), StoreError> {
        self.inner.insert_access(access, first).await
    }

    async fn find_access(&self, id: &AccessId) -> Result<Option<Access>, StoreError> {
        self.inner.find_access(id).await
    }

    async fn list_accesses(
        &self,
        client: &ClientId,
        user: &UserId,
    ) -> Result<Vec<Access>, StoreError> {
        self.inner.list_accesses(client, user).await
    }

    async fn client_accesses(&self, client: &ClientId) -> Result<Vec<Access>, StoreError> {
        self.inner.client_accesses(client).await
    }

    async fn update_access(
        &self,
        access: &Access,
        expected_version: u64,
        job: Option<SyncJob>,
    ) -> Result<(), StoreError> {
        self.inner
            .update_access(access, expected_version, job)
            .await
    }

    async fn delete_access_record(
        &self,
        id: &AccessId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let r = self.inner.delete_access_record(id, now).await;
        self.coherence.changed(Invalidation::Everything).await;
        r
    }

    async fn find_job(&self, id: SyncId) -> Result<Option<SyncJob>, StoreError> {
        self.inner.find_job(id).await
    }

    async fn pending_jobs(&self, access: &AccessId) -> Result<Vec<SyncJob>, StoreError> {
        self.inner.pending_jobs(access).await
    }

    async fn claim_jobs(
        &self,
        now: Timestamp,
        lease: chrono::TimeDelta,
        limit: u32,
    ) -> Result<Vec<SyncJob>, StoreError> {
        self.inner.claim_jobs(now, lease, limit).await
    }

    async fn finish_job(
        &self,
        claim: Claim,
        outcome: &JobOutcome,
        access: &Access,
        expected_version: u64,
        next: Option<SyncJob>,
    ) -> Result<SyncReport, StoreError> {
        let r = self
            .inner
            .finish_job(claim, outcome, access, expected_version, next)
            .await;
        self.coherence
            .changed(accounts_of(
                outcome.accounts.iter().map(|a| a.account.id.clone()),
            ))
            .await;
        r
    }

    async fn extend_lease(&self, claim: Claim, until: Timestamp) -> Result<bool, StoreError> {
        self.inner.extend_lease(claim, until).await
    }

    async fn requeue_job(&self, claim: Claim, run_at: Timestamp) -> Result<bool, StoreError> {
        self.inner.requeue_job(claim, run_at).await
    }

    async fn access_held(&self, id: &AccessId, now: Timestamp) -> Result<bool, StoreError> {
        self.inner.access_held(id, now).await
    }

    async fn orphaned_accesses(
        &self,
        now: Timestamp,
        before: Timestamp,
        limit: u32,
    ) -> Result<Vec<Access>, StoreError> {
        self.inner.orphaned_accesses(now, before, limit).await
    }
}
