use async_trait::async_trait;
use finx_domain::Timestamp;
use finx_domain::access::{Access, Claim, JobStatus, SyncFailure, SyncJob, UserId};
use finx_domain::bank::{Account, Transaction, TransactionDetails};
use finx_domain::flow::Flow;
use finx_domain::ids::{
    AccessId, AccountId, ClientId, FlowId, GrantId, SyncId, TransactionId, UploadId,
};
use finx_domain::query::ResolvedQuery;
use finx_domain::registry::RegisteredBank;
use finx_domain::scope::Scope;
use finx_domain::secret::TokenHash;
use finx_domain::token::{AccessTokenRecord, CodeRecord, Grant, IssuedTokens, RefreshTokenRecord};
use finx_domain::upload::Upload;
use finx_domain::values::RedirectUri;

use crate::error::{RedeemFailure, RotateFailure, StoreError};

/// A registered customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Its id.
    pub id: ClientId,
    /// Display name.
    pub name: String,
    /// Keyed hash of its secret; the secret itself is never stored.
    pub secret_hash: TokenHash,
    /// Where its end users may be sent back.
    pub redirect_uris: Vec<RedirectUri>,
    /// The most its grants may read.
    pub scope: Scope,
    /// Registration time.
    pub created_at: Timestamp,
    /// The id of the hash key `secret_hash` was made under (empty: not recorded, from
    /// before key ids).
    pub secret_key_id: String,
    /// The secret before the last rotation, accepted too until its end.
    pub previous_secret: Option<PreviousSecret>,
    /// Since when it is disabled: it cannot authenticate, and its tokens read nothing.
    pub disabled_at: Option<Timestamp>,
    /// Its own categorisation rules, in the order they apply (read with the client; written
    /// only through [`ClientRegistry::add_category_rule`] and
    /// [`ClientRegistry::delete_category_rule`]).
    pub category_rules: Vec<finx_domain::enrich::CustomerRule>,
}

/// A client secret replaced by a rotation, still accepted for an overlap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousSecret {
    /// Its keyed hash.
    pub hash: TokenHash,
    /// The id of the hash key it was hashed under.
    pub key_id: String,
    /// When it stops being accepted.
    pub until: Timestamp,
}

/// The registered customers.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait ClientRegistry: Send + Sync {
    /// Registers a client. MUST fail with [`StoreError::Conflict`] when the id is taken, and
    /// leave the existing client unchanged.
    async fn insert_client(&self, client: &Client) -> Result<(), StoreError>;

    /// One client; `None` when unknown.
    async fn find_client(&self, id: &ClientId) -> Result<Option<Client>, StoreError>;

    /// Replaces the stored client with `client`'s id by `client` (its `created_at`
    /// excepted); returns whether it existed. MUST be atomic.
    async fn update_client(&self, client: &Client) -> Result<bool, StoreError>;

    /// Every client, ordered by id.
    async fn list_clients(&self) -> Result<Vec<Client>, StoreError>;

    /// Deletes a client's record with its categorisation rules; returns whether it existed.
    /// Its grants, accesses and webhook endpoints are the caller's to end first.
    async fn delete_client(&self, id: &ClientId) -> Result<bool, StoreError>;

    /// Appends a categorisation rule to a client's, after every rule it has. MUST fail with
    /// [`StoreError::Conflict`] when the client has `limit` rules already or one with the
    /// same id, and change nothing then; returns whether the client exists. MUST be atomic.
    async fn add_category_rule(
        &self,
        client: &ClientId,
        rule: &finx_domain::enrich::CustomerRule,
        limit: usize,
    ) -> Result<bool, StoreError>;

    /// Deletes one of a client's categorisation rules; returns whether it existed.
    async fn delete_category_rule(&self, client: &ClientId, rule: &str)
    -> Result<bool, StoreError>;
}

/// The one-time access flows.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait FlowStore: Send + Sync {
    /// Stores a new flow. MUST fail with [`StoreError::Conflict`] when the id exists.
    async fn insert_flow(&self, flow: &Flow) -> Result<(), StoreError>;

    /// One flow; `None` when unknown.
    async fn find_flow(&self, id: FlowId) -> Result<Option<Flow>, StoreError>;

    /// Replaces a flow if and only if the stored one has version `expected_version`.
    /// MUST be atomic (a compare-and-swap): of two updates from the same version exactly one
    /// wins, and the other gets [`StoreError::Conflict`] and changes nothing. `events` (the
    /// flow's end, when this update ends it) are written in the same atomic step, as
    /// [`WebhookStore`](crate::WebhookStore) says.
    async fn update_flow(
        &self,
        flow: &Flow,
        expected_version: u64,
        events: &[finx_domain::webhook::Event],
    ) -> Result<(), StoreError>;

    /// The flows in `Syncing` whose fetch started before `started_before` (stale: the
    /// instance fetching died). Any order.
    async fn stale_syncing_flows(&self, started_before: Timestamp)
    -> Result<Vec<Flow>, StoreError>;

    /// Deletes flows whose link expired before `before`, whatever their status; returns how
    /// many. Live flows hold bank sessions, so they MUST NOT outlive their link for long.
    async fn purge_flows(&self, before: Timestamp) -> Result<u64, StoreError>;
}

/// What a purge removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Grants removed (past their absolute end, or dead with their code expired unused).
    pub grants: u64,
    /// Bank accounts removed, with their transactions, because no live grant holds them.
    pub accounts: u64,
    /// Codes removed.
    pub codes: u64,
    /// Access tokens removed.
    pub access_tokens: u64,
    /// Refresh tokens removed.
    pub refresh_tokens: u64,
    /// Flows removed.
    pub flows: u64,
    /// Ongoing accesses ended and removed because no live grant holds them.
    pub accesses: u64,
    /// Webhook log entries and finished events removed after their retention.
    pub webhooks: u64,
    /// Upload records removed after their retention.
    pub uploads: u64,
}

/// Grants and every credential issued from them, kept by keyed hash only.
///
/// Bank data lives no longer than the grants that justify it: wherever this trait revokes
/// a grant, it MUST delete, in the same atomic step, the bank data of the grant's access
/// (every account with that `access_id`, and their transactions) unless another live grant
/// ([`Grant::is_live`]) holds the same access. The type implementing it MUST therefore also
/// be the [`BankDataStore`] that holds that data.
///
/// Wherever it revokes a grant that was not revoked yet, it MUST also write, in the same
/// atomic step, the `grant.revoked` event with id
/// [`Event::revocation_id`](finx_domain::webhook::Event::revocation_id) (reason
/// `token_reuse` for a replayed code or refresh token), as
/// [`WebhookStore`](crate::WebhookStore) says: so it is the `WebhookStore` too.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait GrantStore: Send + Sync {
    /// Stores a new grant with its code. MUST fail with [`StoreError::Conflict`] when the
    /// grant id or the code hash exists.
    async fn insert_grant(&self, grant: &Grant, code: &CodeRecord) -> Result<(), StoreError>;

    /// The code with this hash and its grant; `None` when unknown. Used codes MUST still be
    /// found (replay detection).
    async fn find_code(&self, code: &TokenHash) -> Result<Option<(CodeRecord, Grant)>, StoreError>;

    /// Redeems a code and stores `tokens`, per [`check_redeem`](finx_domain::token::check_redeem).
    /// MUST be atomic: of any number of concurrent calls for one code, across processes,
    /// exactly one succeeds. A call on a used code MUST revoke the grant (deleting its bank
    /// data as the trait says) and fail with `AlreadyUsed { grant_id }`. Returns the grant.
    async fn redeem_code(
        &self,
        code: &TokenHash,
        now: Timestamp,
        tokens: &IssuedTokens,
    ) -> Result<Grant, RedeemFailure>;

    /// The refresh token with this hash and its grant; `None` when unknown. Used tokens MUST
    /// be found until purged (reuse detection).
    async fn find_refresh_token(
        &self,
        token: &TokenHash,
    ) -> Result<Option<(RefreshTokenRecord, Grant)>, StoreError>;

    /// Marks a refresh token used and stores `tokens`, per
    /// [`check_rotate`](finx_domain::token::check_rotate). MUST be atomic: of any number of
    /// concurrent calls for one token, across processes, exactly one succeeds. A call on a
    /// used token MUST revoke the grant (deleting its bank data as the trait says) and fail
    /// with `Reused { grant_id }`. Returns the grant.
    async fn rotate_refresh_token(
        &self,
        old: &TokenHash,
        now: Timestamp,
        tokens: &IssuedTokens,
    ) -> Result<Grant, RotateFailure>;

    /// The access token with this hash and its grant; `None` when unknown.
    async fn find_access_token(
        &self,
        token: &TokenHash,
    ) -> Result<Option<(AccessTokenRecord, Grant)>, StoreError>;

    /// One grant; `None` when unknown.
    async fn find_grant(&self, id: GrantId) -> Result<Option<Grant>, StoreError>;

    /// The ids of a client's grants that are not revoked (expired ones included), in any
    /// order.
    async fn client_grants(&self, client: &ClientId) -> Result<Vec<GrantId>, StoreError>;

    /// Revokes a grant and so every token issued from it, and in the same atomic step
    /// deletes its bank data unless another grant live at `now` holds the same access.
    /// MUST be idempotent, keeping the first revocation time; unknown ids are not an error.
    async fn revoke_grant(
        &self,
        id: GrantId,
        now: Timestamp,
        reason: finx_domain::webhook::RevokeReason,
    ) -> Result<(), StoreError>;

    /// Revokes one access token. Returns whether a live token was revoked.
    async fn revoke_access_token(
        &self,
        token: &TokenHash,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Adds an access token to its grant, if the grant is live at `now`; returns whether it
    /// did. MUST be atomic with the check: no token is added to a grant revoked meanwhile.
    /// MUST fail with [`StoreError::Conflict`] when the hash is taken.
    async fn add_access_token(
        &self,
        token: &AccessTokenRecord,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Stores a new upload record. MUST fail with [`StoreError::Conflict`] when the id
    /// exists.
    async fn insert_upload(&self, upload: &Upload) -> Result<(), StoreError>;

    /// One upload record; `None` when unknown.
    async fn find_upload(&self, id: UploadId) -> Result<Option<Upload>, StoreError>;

    /// Replaces the upload record with `upload`'s id (its `client_id` and `created_at`
    /// excepted); returns whether it existed.
    async fn update_upload(&self, upload: &Upload) -> Result<bool, StoreError>;

    /// The cleanup job, at `now`. MUST delete:
    /// - upload records whose `expires_at` is not after `now`;
    /// - codes and tokens whose expiry is not after `now` (used refresh tokens MUST NOT be
    ///   deleted before they expire: reuse detection depends on them);
    /// - grants whose absolute end is not after `now`, with every credential;
    /// - grants whose code expired unused and that hold no token;
    /// - the bank data of every access that no grant live at `now` holds, among accounts
    ///   last synced before `orphaned_before` (data of a flow that failed or died half-way,
    ///   or whose grants are all gone; the cut-off spares a flow still fetching).
    async fn purge(
        &self,
        now: Timestamp,
        orphaned_before: Timestamp,
    ) -> Result<PurgeReport, StoreError>;
}

/// What a sync changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// New transactions.
    pub inserted: u64,
    /// Transactions whose details changed.
    pub updated: u64,
    /// Pending transactions that the bank no longer reports (booked under another id, or
    /// dropped).
    pub removed: u64,
}

/// Accounts, balances and transactions fetched from banks.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait BankDataStore: Send + Sync {
    /// Inserts or replaces an account (by id), with its balance and sync status.
    async fn upsert_account(&self, account: &Account) -> Result<(), StoreError>;

    /// Stores what the bank reported for one account. For each item, MUST write it under the
    /// id [`finx_domain::linking::link`] gives it among the account's transactions (a pending
    /// one booked under a new bank id keeps its id), else under [`Transaction::id_for`],
    /// updating in place, keeping `created_at` and setting `modified_at` to `now` only when
    /// its details changed; MUST delete the account's pending transactions that no item
    /// took. MUST be atomic.
    async fn sync_transactions(
        &self,
        account: &AccountId,
        transactions: &[TransactionDetails],
        now: Timestamp,
    ) -> Result<SyncReport, StoreError>;

    /// Inserts or updates one batch of what the bank reported for an account, like
    /// [`sync_transactions`](Self::sync_transactions) but deleting nothing. MUST be atomic
    /// per call; a long fetch is written in several calls.
    async fn upsert_transactions(
        &self,
        account: &AccountId,
        transactions: &[TransactionDetails],
        now: Timestamp,
    ) -> Result<SyncReport, StoreError>;

    /// Deletes the account's pending transactions whose ids are not in `keep` (the bank no
    /// longer reports them); returns how many. MUST be atomic.
    async fn drop_pending_except(
        &self,
        account: &AccountId,
        keep: &[TransactionId],
    ) -> Result<u64, StoreError>;

    /// The accounts with these ids that exist, in the order given.
    async fn find_accounts(&self, ids: &[AccountId]) -> Result<Vec<Account>, StoreError>;

    /// Transactions per [`ResolvedQuery::apply`]: the same filter, order and page.
    async fn query_transactions(
        &self,
        query: &ResolvedQuery,
    ) -> Result<Vec<Transaction>, StoreError>;

    /// One transaction; `None` when unknown.
    async fn find_transaction(&self, id: &TransactionId)
    -> Result<Option<Transaction>, StoreError>;

    /// Deletes every account of the bank connection `access_id` and their transactions;
    /// returns how many accounts. MUST be atomic; unknown ids are not an error.
    async fn delete_access(&self, access_id: &AccessId) -> Result<u64, StoreError>;

    /// The changes to these accounts' transactions numbered above `after`, in number order,
    /// at most `limit`: each transaction as it is now (numbered by its last change) and each
    /// removal (one per time it was removed). Every write that changes a transaction, and
    /// every removal, MUST take the next number of its access's sequence, and numbers MUST
    /// become visible in order (a reader never sees a number while a smaller one of the
    /// same access is still to come). Everything it answers MUST come from one snapshot:
    /// the page, the highest number of these accounts' changes, and whether a transaction
    /// first written with a number in `moved.0..=moved.1` (exclusive start) changed again,
    /// or was removed, with a number above `moved.2`.
    async fn changes(
        &self,
        accounts: &[AccountId],
        after: i64,
        limit: u32,
        moved: Option<(i64, i64, i64)>,
    ) -> Result<FeedRead, StoreError>;
}

/// What one read of the feed found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedRead {
    /// The page.
    pub changes: Vec<Change>,
    /// The highest number of the accounts' changes (-1 when none).
    pub high: i64,
    /// Whether the asked-about transactions moved.
    pub moved: bool,
}

/// One entry of the transactions feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Its number in the access's sequence.
    pub seq: i64,
    /// The number the transaction was first written with.
    pub created_seq: i64,
    /// The transaction as it is now, or its removal.
    pub what: Changed,
}

/// What a feed entry says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    /// The transaction, as it is now.
    Now(Box<Transaction>),
    /// It is gone.
    Removed(TransactionId),
}

/// The banks finX reaches through their XS2A APIs.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait BankRegistry: Send + Sync {
    /// Inserts the banks, or replaces those whose id exists, all in one step: MUST either
    /// take every one or none. Returns how many were written.
    async fn upsert_banks(&self, banks: &[RegisteredBank]) -> Result<u64, StoreError>;

    /// One bank by id; `None` when unknown.
    async fn find_bank(
        &self,
        id: &finx_domain::ids::InstitutionId,
    ) -> Result<Option<RegisteredBank>, StoreError>;

    /// At most `limit` banks, ordered by name (then id): those whose name contains `query`
    /// ignoring ASCII case, or whose BIC or bank code equals it (BIC ignoring case); every
    /// bank when `query` is empty or blank. MUST treat `%`, `_` and `\\` in `query` as
    /// themselves.
    async fn search_banks(
        &self,
        query: &str,
        limit: u32,
    ) -> Result<Vec<RegisteredBank>, StoreError>;

    /// A page of the catalog: the banks [`search_banks`](Self::search_banks) finds for
    /// `query`, in `country` only when given (ignoring ASCII case), ordered by name (then
    /// id), `offset` of them skipped, at most `limit`.
    async fn catalog_banks(
        &self,
        query: &str,
        country: Option<String>,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<RegisteredBank>, StoreError>;

    /// The bank with this bank code in `country`; `None` when unknown. When several share
    /// it, the first by id.
    async fn bank_by_code(
        &self,
        country: &str,
        bank_code: &str,
    ) -> Result<Option<RegisteredBank>, StoreError>;

    /// How many banks are registered.
    async fn count_banks(&self) -> Result<u64, StoreError>;
}

/// One account's part of a sync: the account as now (balance, sync status) and every
/// transaction the bank reported in the window fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSync {
    /// The account, inserted or replaced by id.
    pub account: Account,
    /// What the bank reported, written as [`BankDataStore::sync_transactions`] does, linked
    /// against the account's transactions in the window only.
    pub transactions: Vec<TransactionDetails>,
    /// The first day fetched: the account's pending transactions from then on that no
    /// reported one took are removed.
    pub window_from: finx_domain::Date,
}

/// How a claimed sync ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutcome {
    /// `Succeeded` or `Failed`.
    pub status: JobStatus,
    /// When.
    pub finished_at: Timestamp,
    /// Why it failed.
    pub error: Option<SyncFailure>,
    /// What to write (empty when it failed).
    pub accounts: Vec<AccountSync>,
    /// The events it makes, written in the same atomic step (an `access.synced` one gets
    /// the counts of what was written, by [`Event::with_counts`](finx_domain::webhook::Event::with_counts)).
    pub events: Vec<finx_domain::webhook::Event>,
}

/// Ongoing accesses and their sync jobs.
///
/// The type implementing it MUST also be the [`GrantStore`] and [`BankDataStore`] of the
/// same data: deleting an access revokes the grants that hold it and deletes its bank data,
/// and finishing a sync writes bank data, in one atomic step each.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait AccessStore: Send + Sync {
    /// Stores a new access and its first job, atomically. MUST fail with
    /// [`StoreError::Conflict`] when the access id exists, storing nothing.
    async fn insert_access(&self, access: &Access, first: &SyncJob) -> Result<(), StoreError>;

    /// One access; `None` when unknown.
    async fn find_access(&self, id: &AccessId) -> Result<Option<Access>, StoreError>;

    /// The accesses of one end user of one customer, oldest first (then by id).
    async fn list_accesses(
        &self,
        client: &ClientId,
        user: &UserId,
    ) -> Result<Vec<Access>, StoreError>;

    /// Every access of one customer, of all its end users, in any order.
    async fn client_accesses(&self, client: &ClientId) -> Result<Vec<Access>, StoreError>;

    /// Replaces an access if and only if the stored one has version `expected_version`,
    /// and, when `job` is given, stores that new job in the same atomic step. MUST be a
    /// compare-and-swap: of two updates from the same version exactly one wins, and the
    /// other gets [`StoreError::Conflict`] and changes nothing.
    async fn update_access(
        &self,
        access: &Access,
        expected_version: u64,
        job: Option<SyncJob>,
    ) -> Result<(), StoreError>;

    /// Deletes an access with its jobs, accounts and transactions, and revokes (at `now`)
    /// every grant that holds it, in one atomic step. Returns whether it existed.
    async fn delete_access_record(&self, id: &AccessId, now: Timestamp)
    -> Result<bool, StoreError>;

    /// One job; `None` when unknown.
    async fn find_job(&self, id: SyncId) -> Result<Option<SyncJob>, StoreError>;

    /// The access's jobs still to run (queued or running), earliest `run_at` first (then
    /// by id).
    async fn pending_jobs(&self, access: &AccessId) -> Result<Vec<SyncJob>, StoreError>;

    /// The first of [`pending_jobs`](Self::pending_jobs); `None` if none.
    async fn pending_job(&self, access: &AccessId) -> Result<Option<SyncJob>, StoreError> {
        Ok(self.pending_jobs(access).await?.into_iter().next())
    }

    /// Claims at most `limit` due jobs: queued ones with `run_at` not after `now`, and
    /// running ones whose lease ended before `now` (their runner died). Each claimed job
    /// becomes `Running` with its `attempt` raised by one and a lease until `now + lease`.
    /// MUST be atomic across processes: no two callers ever get the same job with the same
    /// attempt. MUST NOT claim a job whose access has another job running under a live
    /// lease (one sync per access at a time; two callers racing may still each get a job
    /// of one access, which the fenced finish and the access's compare-and-swap absorb).
    /// Earliest `run_at` first.
    async fn claim_jobs(
        &self,
        now: Timestamp,
        lease: chrono::TimeDelta,
        limit: u32,
    ) -> Result<Vec<SyncJob>, StoreError>;

    /// Ends a claimed job, in one atomic step: writes the outcome's accounts and
    /// transactions, replaces the access (a compare-and-swap on `expected_version`), marks
    /// the job ended with its counts, and stores `next` (the next scheduled job) if given.
    /// MUST change nothing and fail with [`StoreError::Conflict`] when the claim is no
    /// longer the job's latest attempt or the job is not running, or when the access's
    /// version differs. Returns what the write changed.
    async fn finish_job(
        &self,
        claim: Claim,
        outcome: &JobOutcome,
        access: &Access,
        expected_version: u64,
        next: Option<SyncJob>,
    ) -> Result<SyncReport, StoreError>;

    /// Extends a claimed job's lease to `until` (the runner's heartbeat while a slow bank
    /// answers), if the claim still holds; returns whether it did.
    async fn extend_lease(&self, claim: Claim, until: Timestamp) -> Result<bool, StoreError>;

    /// Puts a claimed job back in the queue at `run_at` (a runner shutting down, or an
    /// access that may not sync yet), if the claim still holds; returns whether it did.
    async fn requeue_job(&self, claim: Claim, run_at: Timestamp) -> Result<bool, StoreError>;

    /// Whether a grant live at `now` holds the access.
    async fn access_held(&self, id: &AccessId, now: Timestamp) -> Result<bool, StoreError>;

    /// Accesses created before `before` that no grant live at `now` holds: their consents
    /// are to be ended and their records deleted. At most `limit`.
    async fn orphaned_accesses(
        &self,
        now: Timestamp,
        before: Timestamp,
        limit: u32,
    ) -> Result<Vec<Access>, StoreError>;
}
