use async_trait::async_trait;
use finx_domain::Timestamp;
use finx_domain::bank::{Account, Transaction, TransactionDetails};
use finx_domain::flow::Flow;
use finx_domain::ids::{AccessId, AccountId, ClientId, FlowId, GrantId, TransactionId};
use finx_domain::query::ResolvedQuery;
use finx_domain::registry::RegisteredBank;
use finx_domain::scope::Scope;
use finx_domain::secret::TokenHash;
use finx_domain::token::{AccessTokenRecord, CodeRecord, Grant, IssuedTokens, RefreshTokenRecord};
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

    /// Every client, ordered by id.
    async fn list_clients(&self) -> Result<Vec<Client>, StoreError>;
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
    /// wins, and the other gets [`StoreError::Conflict`] and changes nothing.
    async fn update_flow(&self, flow: &Flow, expected_version: u64) -> Result<(), StoreError>;

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
}

/// Grants and every credential issued from them, kept by keyed hash only.
///
/// Bank data lives no longer than the grants that justify it: wherever this trait revokes
/// a grant, it MUST delete, in the same atomic step, the bank data of the grant's access
/// (every account with that `access_id`, and their transactions) unless another live grant
/// ([`Grant::is_live`]) holds the same access. The type implementing it MUST therefore also
/// be the [`BankDataStore`] that holds that data.
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

    /// Revokes a grant and so every token issued from it, and in the same atomic step
    /// deletes its bank data unless another grant live at `now` holds the same access.
    /// MUST be idempotent, keeping the first revocation time; unknown ids are not an error.
    async fn revoke_grant(&self, id: GrantId, now: Timestamp) -> Result<(), StoreError>;

    /// Revokes one access token. Returns whether a live token was revoked.
    async fn revoke_access_token(
        &self,
        token: &TokenHash,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// The cleanup job, at `now`. MUST delete:
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

    /// Stores what the bank reported for one account. For each item, MUST insert it under
    /// [`Transaction::id_for`] or update it in place, keeping `created_at` and setting
    /// `modified_at` to `now` only when its details changed; MUST delete the account's pending
    /// transactions not in `transactions`. MUST be atomic.
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
