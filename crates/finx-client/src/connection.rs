//! A connection: one end user's tokens, kept in a [`TokenStore`] and refreshed as needed.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use futures::Stream;

use crate::model::{Account, Balance, Change, FeedPage, Tokens, Transaction};
use crate::query::TransactionQuery;
use crate::{Error, FinxClient};

/// One end user's tokens as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredTokens {
    /// The bearer token.
    pub access_token: String,
    /// When it expires.
    pub access_expires_at: DateTime<Utc>,
    /// The refresh token (with `offline`).
    pub refresh_token: Option<String>,
    /// Its scope.
    pub scope: String,
    /// Set while a worker refreshes: others wait until then instead of refreshing too.
    pub refresh_lease_until: Option<DateTime<Utc>>,
    /// The store's version of this record (compare-and-swap).
    pub version: u64,
}

impl fmt::Debug for StoredTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredTokens")
            .field("access_token", &"[redacted]")
            .field("access_expires_at", &self.access_expires_at)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("refresh_lease_until", &self.refresh_lease_until)
            .field("version", &self.version)
            .finish()
    }
}

/// Where a customer keeps its end users' tokens.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// The record under `key`, with its current version.
    async fn load(&self, key: &str) -> Result<Option<StoredTokens>, Error>;

    /// Replaces the record under `key` if and only if its version is `expected` (`None`:
    /// if there is none), giving it version `expected + 1` (or 1). Returns whether it did.
    /// MUST be atomic across every process using the same store: of two swaps from the same
    /// version exactly one succeeds.
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<u64>,
        new: &StoredTokens,
    ) -> Result<bool, Error>;

    /// Deletes the record under `key` (e.g. after the grant was revoked).
    async fn delete(&self, key: &str) -> Result<(), Error>;

    /// Deletes the record under `key` if and only if its version is `expected`. Returns
    /// whether it did. MUST be atomic like [`compare_and_swap`](Self::compare_and_swap).
    async fn compare_and_delete(&self, key: &str, expected: u64) -> Result<bool, Error>;

    /// The time on the store's clock. Refresh leases are set and checked on it, so workers
    /// whose own clocks disagree never hold the same lease. A store shared by several
    /// processes MUST answer one clock for all of them (the database server's); the
    /// default, this process's clock, is right only for a store that one process uses.
    async fn now(&self) -> Result<DateTime<Utc>, Error> {
        Ok(Utc::now())
    }
}

/// Tokens in memory: for one process, and for tests.
#[derive(Debug, Default)]
pub struct MemoryTokenStore {
    records: Mutex<HashMap<String, StoredTokens>>,
}

#[async_trait]
impl TokenStore for MemoryTokenStore {
    async fn load(&self, key: &str) -> Result<Option<StoredTokens>, Error> {
        Ok(self
            .records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned())
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<u64>,
        new: &StoredTokens,
    ) -> Result<bool, Error> {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        if records.get(key).map(|r| r.version) != expected {
            return Ok(false);
        }
        let mut stored = new.clone();
        stored.version = expected.map_or(1, |v| v + 1);
        records.insert(key.to_owned(), stored);
        Ok(true)
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
        Ok(())
    }

    async fn compare_and_delete(&self, key: &str, expected: u64) -> Result<bool, Error> {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        if records.get(key).map(|r| r.version) != Some(expected) {
            return Ok(false);
        }
        records.remove(key);
        Ok(true)
    }
}

/// One end user's connection to finX.
#[derive(Clone)]
pub struct Connection {
    client: FinxClient,
    key: String,
    store: Arc<dyn TokenStore>,
    /// Calls on this handle (and its clones) wait on one refresh instead of each making one.
    refreshing: Arc<tokio::sync::Mutex<()>>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Connection {
    pub(crate) fn new(client: FinxClient, key: &str, store: Arc<dyn TokenStore>) -> Self {
        Self {
            client,
            key: key.to_owned(),
            store,
            refreshing: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    fn record(&self, tokens: &Tokens) -> StoredTokens {
        record(&self.client, tokens)
    }

    /// Stores fresh tokens (from a code exchange), replacing what was there.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn replace(&self, tokens: &Tokens) -> Result<(), Error> {
        let new = self.record(tokens);
        loop {
            let current = self.store.load(&self.key).await?.map(|r| r.version);
            if self
                .store
                .compare_and_swap(&self.key, current, &new)
                .await?
            {
                return Ok(());
            }
        }
    }

    fn fresh(&self, r: &StoredTokens) -> bool {
        let skew = TimeDelta::from_std(self.client.config.refresh_skew).unwrap_or_default();
        self.client.now() + skew < r.access_expires_at
    }

    /// A usable access token: the stored one while it is fresh, else a refreshed one.
    ///
    /// # Errors
    /// [`Error::NotConnected`] without stored tokens; [`Error::InvalidGrant`] when the grant
    /// is gone (the record is then deleted).
    pub async fn access_token(&self) -> Result<String, Error> {
        let r = self
            .store
            .load(&self.key)
            .await?
            .ok_or(Error::NotConnected)?;
        if self.fresh(&r) {
            return Ok(r.access_token);
        }
        self.refresh_from(None).await
    }

    /// Refreshes, once for all callers: a caller that waited finds the new token stored and
    /// uses it. `rejected` is an access token the server refused, which forces a refresh even
    /// if it still looks fresh.
    async fn refresh_from(&self, rejected: Option<&str>) -> Result<String, Error> {
        let _one_at_a_time = self.refreshing.lock().await;
        let lease = self.client.config.refresh_lease;
        // Waiting on another worker's lease ends when the lease would have expired anyway.
        let max_waits = u32::try_from(lease.as_millis() / 50)
            .unwrap_or(u32::MAX)
            .saturating_add(40);
        let mut waits = 0u32;
        loop {
            let r = self
                .store
                .load(&self.key)
                .await?
                .ok_or(Error::NotConnected)?;
            let refused = rejected.is_some_and(|t| t == r.access_token);
            if self.fresh(&r) && !refused {
                return Ok(r.access_token);
            }
            // Leases live on the store's clock, which every worker reads alike.
            let now = self.store.now().await?;
            if r.refresh_lease_until.is_some_and(|until| until > now) {
                // Another worker is refreshing; wait for its result.
                waits += 1;
                if waits > max_waits {
                    return Err(Error::Store(
                        "another worker's refresh did not finish within its lease".into(),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            let refresh = r.refresh_token.clone().ok_or_else(|| Error::InvalidGrant {
                description: "no refresh token (the grant lacks offline); connect again".into(),
                request_id: None,
            })?;
            let until = TimeDelta::from_std(lease)
                .ok()
                .and_then(|l| now.checked_add_signed(l));
            let claimed = StoredTokens {
                refresh_lease_until: until,
                ..r.clone()
            };
            if !self
                .store
                .compare_and_swap(&self.key, Some(r.version), &claimed)
                .await?
            {
                continue;
            }
            if let Some(hook) = &self.client.config.on_refresh {
                hook();
            }
            // From here the refresh runs to its end even if our caller goes away: once the
            // server has rotated, only storing the new token keeps the grant.
            let job = tokio::spawn(finish_refresh(
                self.client.clone(),
                self.store.clone(),
                self.key.clone(),
                refresh,
                Claim {
                    version: r.version + 1,
                    previous: StoredTokens {
                        refresh_lease_until: None,
                        ..r
                    },
                },
            ));
            return job.await.map_err(|e| Error::Store(Box::new(e)))?;
        }
    }

    /// Runs `call` with a usable token; on a 401 refreshes once and tries again.
    async fn with_token<T, F, Fut>(&self, call: F) -> Result<T, Error>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let token = self.access_token().await?;
        match call(token.clone()).await {
            Err(e) if e.is_unauthorized() => {
                let token = self.refresh_from(Some(&token)).await?;
                call(token).await
            }
            other => other,
        }
    }

    /// The accounts.
    ///
    /// # Errors
    /// As [`FinxClient::accounts`], after one refresh on 401.
    pub async fn accounts(&self) -> Result<Vec<Account>, Error> {
        self.with_token(|t| async move { self.client.accounts(&t).await })
            .await
    }

    /// One account.
    ///
    /// # Errors
    /// As [`FinxClient::account`].
    pub async fn account(&self, id: &str) -> Result<Account, Error> {
        self.with_token(|t| async move { self.client.account(&t, id).await })
            .await
    }

    /// One account's balance.
    ///
    /// # Errors
    /// As [`FinxClient::balance`].
    pub async fn balance(&self, id: &str) -> Result<Balance, Error> {
        self.with_token(|t| async move { self.client.balance(&t, id).await })
            .await
    }

    /// One page of transactions.
    ///
    /// # Errors
    /// As [`FinxClient::transactions`].
    pub async fn transactions(&self, query: &TransactionQuery) -> Result<Vec<Transaction>, Error> {
        self.with_token(|t| async move { self.client.transactions(&t, query).await })
            .await
    }

    /// Every transaction matching `query`, page by page (keyset paging, so nothing is
    /// skipped or repeated while new transactions arrive).
    pub fn all_transactions(
        &self,
        query: TransactionQuery,
    ) -> impl Stream<Item = Result<Transaction, Error>> + '_ {
        let size = query.page_size() as usize;
        futures::stream::unfold(Some(query), move |next| async move {
            let q = next?;
            match self.transactions(&q).await {
                Err(e) => Some((vec![Err(e)], None)),
                Ok(page) => {
                    let more = (page.len() >= size)
                        .then(|| page.last().map(|t| q.after(&t.transaction_id)))
                        .flatten();
                    Some((page.into_iter().map(Ok).collect(), more))
                }
            }
        })
        .flat_map(futures::stream::iter)
    }

    /// One page of the transactions feed (see [`FinxClient::transactions_sync`]).
    ///
    /// # Errors
    /// As [`FinxClient::transactions_sync`].
    pub async fn transactions_sync(
        &self,
        cursor: Option<&str>,
        count: u32,
    ) -> Result<FeedPage, Error> {
        self.with_token(|t| async move { self.client.transactions_sync(&t, cursor, count).await })
            .await
    }

    /// The feed from `cursor` (a [`Change::Checkpoint`]'s, or `None` for the beginning) as
    /// a stream of changes, page by page. A [`Change::Checkpoint`] closes each pass: commit
    /// what you applied since the previous one and store its cursor. When a sync changes a
    /// transaction in the middle of a pass (finX error 1023), the stream yields
    /// [`Change::Restart`]: roll back what you applied since the last checkpoint; the
    /// stream then reads the pass again from the cursor the server names. A transaction
    /// added and then removed during the pass is not reported removed in the pass read
    /// again (the server tells a reader only about what it had before the pass), so the
    /// rollback is what keeps it from staying. The stream ends when the feed is caught up.
    pub fn changes(
        &self,
        cursor: Option<String>,
    ) -> impl Stream<Item = Result<Change, Error>> + '_ {
        self.changes_in_pages(cursor, 200)
    }

    /// [`changes`](Self::changes) with pages of `page` changes (1 to 500).
    pub fn changes_in_pages(
        &self,
        cursor: Option<String>,
        page: u32,
    ) -> impl Stream<Item = Result<Change, Error>> + '_ {
        const RESTARTS: u8 = 5;
        let page = page.clamp(1, 500);
        // (cursor, restarts so far), or None once caught up.
        futures::stream::unfold(Some((cursor, 0u8)), move |state| async move {
            let (cursor, restarts) = state?;
            match self.transactions_sync(cursor.as_deref(), page).await {
                Ok(page) => {
                    let next = page.next_cursor.clone();
                    let more = page.has_more;
                    let mut items: Vec<Result<Change, Error>> = page
                        .removed
                        .into_iter()
                        .map(|r| Ok(Change::Removed(r.transaction_id)))
                        .collect();
                    items.extend(page.added.into_iter().map(|t| Ok(Change::Added(t))));
                    items.extend(page.modified.into_iter().map(|t| Ok(Change::Modified(t))));
                    if !more {
                        items.push(Ok(Change::Checkpoint(next.clone())));
                    }
                    Some((items, more.then_some((Some(next), restarts))))
                }
                Err(Error::Api {
                    code: 1023, data, ..
                }) if restarts < RESTARTS => {
                    let restart = data
                        .get("restart_cursor")
                        .and_then(serde_json::Value::as_str)
                        .map(str::to_owned);
                    Some((
                        vec![Ok(Change::Restart)],
                        Some((restart.or(cursor), restarts + 1)),
                    ))
                }
                Err(e) => Some((vec![Err(e)], None)),
            }
        })
        .flat_map(futures::stream::iter)
    }

    /// Revokes the grant and forgets the tokens.
    ///
    /// # Errors
    /// When the server or the store fails.
    pub async fn disconnect(&self) -> Result<(), Error> {
        if let Some(r) = self.store.load(&self.key).await? {
            if let Some(refresh) = &r.refresh_token {
                self.client.revoke(refresh).await?;
            }
        }
        self.store.delete(&self.key).await
    }
}

/// What a worker holds while it refreshes: the version its lease gave the record, and the
/// record as it was.
struct Claim {
    version: u64,
    previous: StoredTokens,
}

fn record(client: &FinxClient, tokens: &Tokens) -> StoredTokens {
    let now = client.now();
    let expires = TimeDelta::try_seconds(tokens.expires_in.clamp(0, 365 * 86_400))
        .and_then(|d| now.checked_add_signed(d));
    StoredTokens {
        access_token: tokens.access_token.clone(),
        access_expires_at: expires.unwrap_or(now),
        refresh_token: tokens.refresh_token.clone(),
        scope: tokens.scope.clone(),
        refresh_lease_until: None,
        version: 0,
    }
}

/// Sends the refresh once (never retried: a second send of the same token would be reuse),
/// within the lease, and stores the result before returning.
async fn finish_refresh(
    client: FinxClient,
    store: Arc<dyn TokenStore>,
    key: String,
    refresh: String,
    claim: Claim,
) -> Result<String, Error> {
    let budget = client
        .config
        .refresh_lease
        .saturating_sub(Duration::from_secs(5))
        .max(Duration::from_secs(1));
    match tokio::time::timeout(budget, client.refresh_once(&refresh)).await {
        Ok(Ok(tokens)) => {
            let new = record(&client, &tokens);
            let mut attempt = 0u64;
            loop {
                match store
                    .compare_and_swap(&key, Some(claim.version), &new)
                    .await
                {
                    Ok(true) => return Ok(tokens.access_token),
                    Ok(false) => {
                        // Our lease is no longer the record's version: someone connected anew
                        // meanwhile. Theirs stays; ours is valid for this call only.
                        tracing::warn!(key = %key, "tokens changed during a refresh; keeping the newer ones");
                        return Ok(tokens.access_token);
                    }
                    Err(e) if attempt < 5 => {
                        attempt += 1;
                        tracing::warn!(key = %key, error = %e, "storing refreshed tokens failed; retrying");
                        tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(Err(e @ Error::InvalidGrant { .. })) => {
            // The grant is gone; forget it unless something newer was stored meanwhile.
            store.compare_and_delete(&key, claim.version).await?;
            Err(e)
        }
        Ok(Err(e)) if e.never_reached_the_server() => {
            let _ = store
                .compare_and_swap(&key, Some(claim.version), &claim.previous)
                .await;
            Err(e)
        }
        // The server may have rotated: the lease stays until it expires, so no other worker
        // sends the same token at once.
        Ok(Err(e)) => Err(e),
        Err(_) => Err(Error::Timeout),
    }
}

use futures::StreamExt as _;
