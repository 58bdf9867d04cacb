//! The in-memory store: every finX storage port over maps behind one lock each.
//!
//! Each operation takes its lock once and does all its checks and writes under it, which is
//! what makes `redeem_code`, `rotate_refresh_token` and `update_flow` atomic. An operation
//! that revokes a grant holds the grants' lock and then the bank data's (always in that
//! order), so revocation and the deletion of the grant's data are one step. Grants are kept
//! as [`GrantFamily`] values, the domain's reference model of the token rules, so this store
//! is also the yardstick the SQL stores are compared against.

mod accesses;
mod webhooks;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};

use async_trait::async_trait;
use finx_domain::bank::{Account, Transaction, TransactionDetails};
use finx_domain::flow::{Flow, FlowStatus};
use finx_domain::ids::{
    AccessId, AccountId, ClientId, FlowId, GrantId, InstitutionId, TransactionId,
};
use finx_domain::query::{ResolvedQuery, SortOrder};
use finx_domain::registry::RegisteredBank;
use finx_domain::secret::TokenHash;
use finx_domain::token::{
    AccessTokenRecord, CodeRecord, Grant, GrantFamily, IssuedTokens, RedeemError,
    RefreshTokenRecord, RotateError,
};
use finx_domain::webhook::{Event, EventData, RevokeReason};
use finx_domain::{Date, Timestamp};
use finx_ports::{
    BankDataStore, BankRegistry, Change, Changed, Client, ClientRegistry, FeedRead, FlowStore,
    GrantStore, PurgeReport, RedeemFailure, RotateFailure, StoreError, SyncReport,
};

/// Every store in memory. Cheap to create; nothing survives a restart.
#[derive(Debug, Default)]
pub struct MemoryStore {
    clients: RwLock<BTreeMap<ClientId, Client>>,
    flows: RwLock<HashMap<FlowId, Flow>>,
    grants: Mutex<Grants>,
    data: RwLock<BankData>,
    banks: RwLock<BTreeMap<InstitutionId, RegisteredBank>>,
    accesses: Mutex<accesses::Accesses>,
    webhooks: Mutex<webhooks::Webhooks>,
    uploads: Mutex<HashMap<finx_domain::ids::UploadId, finx_domain::upload::Upload>>,
}

#[derive(Debug, Default)]
struct Grants {
    families: HashMap<GrantId, GrantFamily>,
    /// Index from any credential hash to its grant.
    by_hash: HashMap<[u8; 32], GrantId>,
}

#[derive(Debug, Default)]
struct BankData {
    accounts: HashMap<AccountId, Account>,
    transactions: HashMap<TransactionId, Transaction>,
    /// Each account's transactions in booking order, so a page is read in order and the
    /// walk stops as soon as the page is full, however long the history.
    by_account: HashMap<AccountId, BTreeSet<(Date, TransactionId)>>,
    /// The feed: each transaction's number and the number it was first written with.
    numbers: HashMap<TransactionId, (i64, i64)>,
    /// The feed's removals, one per time a transaction was removed: id, account, number,
    /// first number.
    removed: Vec<(TransactionId, AccountId, i64, i64)>,
    /// Each access's last number.
    sequences: HashMap<AccessId, i64>,
}

impl BankData {
    fn upsert(
        &mut self,
        account: &AccountId,
        transactions: &[TransactionDetails],
        now: Timestamp,
    ) -> SyncReport {
        let pairs: Vec<(TransactionId, &TransactionDetails)> = transactions
            .iter()
            .map(|d| (Transaction::id_for(account, &d.external_id), d))
            .collect();
        self.upsert_as(account, &pairs, now)
    }

    /// A sync's write for one account: the reported transactions linked to those kept in
    /// the window (`finx_domain::linking`), each written under the id it links to (or its
    /// own), and the kept pending ones in the window that none took gone.
    fn reconcile(
        &mut self,
        account: &AccountId,
        reported: &[TransactionDetails],
        window_from: Date,
        now: Timestamp,
    ) -> SyncReport {
        // A pending one may book up to DAYS_AFTER days after its date: look back that far.
        let look_back = window_from
            .checked_sub_signed(chrono::TimeDelta::days(finx_domain::linking::DAYS_AFTER))
            .unwrap_or(window_from);
        let kept: Vec<finx_domain::linking::Kept> = self
            .by_account
            .get(account)
            .map(|index| {
                index
                    .range(day_start(look_back)..)
                    .filter_map(|(_, id)| self.transactions.get(id))
                    .map(|t| finx_domain::linking::Kept {
                        id: t.id.clone(),
                        details: t.details.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let ids = finx_domain::linking::assign(account, &kept, reported);
        let pairs: Vec<(TransactionId, &TransactionDetails)> =
            ids.into_iter().zip(reported.iter()).collect();
        let mut report = self.upsert_as(account, &pairs, now);
        let taken: HashSet<TransactionId> = pairs.into_iter().map(|(id, _)| id).collect();
        report.removed = self.drop_pending_in_window(account, &taken, window_from);
        report
    }

    fn upsert_as(
        &mut self,
        account: &AccountId,
        transactions: &[(TransactionId, &TransactionDetails)],
        now: Timestamp,
    ) -> SyncReport {
        let mut report = SyncReport::default();
        let access = self.accounts.get(account).map(|a| a.access_id.clone());
        let index = self.by_account.entry(account.clone()).or_default();
        for (id, details) in transactions {
            let (id, details) = (id.clone(), *details);
            let changed = !matches!(self.transactions.get(&id), Some(t) if t.details == *details);
            if changed {
                let seq = next_number(&mut self.sequences, access.as_ref());
                let first = self.numbers.get(&id).map_or(seq, |(_, c)| *c);
                self.numbers.insert(id.clone(), (seq, first));
            }
            match self.transactions.get_mut(&id) {
                Some(t) if t.details == *details => {}
                Some(t) => {
                    index.remove(&(t.details.booked_on, id.clone()));
                    index.insert((details.booked_on, id.clone()));
                    t.details = details.clone();
                    t.modified_at = now;
                    report.updated += 1;
                }
                None => {
                    index.insert((details.booked_on, id.clone()));
                    let t = Transaction {
                        id: id.clone(),
                        account_id: account.clone(),
                        details: details.clone(),
                        created_at: now,
                        modified_at: now,
                    };
                    self.transactions.insert(id, t);
                    report.inserted += 1;
                }
            }
        }
        report
    }

    fn drop_pending_except(&mut self, account: &AccountId, keep: &HashSet<TransactionId>) -> u64 {
        let first = Date::from_ymd_opt(1, 1, 1).unwrap_or_default();
        self.drop_pending_in_window(account, keep, first)
    }

    /// Deletes the account's pending transactions booked on or after `from` whose ids are
    /// not in `keep`; returns how many.
    fn drop_pending_in_window(
        &mut self,
        account: &AccountId,
        keep: &HashSet<TransactionId>,
        from: Date,
    ) -> u64 {
        let Some(index) = self.by_account.get_mut(account) else {
            return 0;
        };
        let stale: Vec<(Date, TransactionId)> = index
            .range(day_start(from)..)
            .filter(|(_, id)| {
                !keep.contains(id) && self.transactions.get(id).is_some_and(|t| !t.details.booked)
            })
            .cloned()
            .collect();
        let access = self.accounts.get(account).map(|a| a.access_id.clone());
        for key in &stale {
            index.remove(key);
            self.transactions.remove(&key.1);
            let seq = next_number(&mut self.sequences, access.as_ref());
            let first = self.numbers.remove(&key.1).map_or(seq, |(_, c)| c);
            self.removed
                .push((key.1.clone(), account.clone(), seq, first));
        }
        stale.len() as u64
    }

    fn delete_access(&mut self, access_id: &AccessId) -> u64 {
        let gone: Vec<AccountId> = self
            .accounts
            .values()
            .filter(|a| a.access_id == *access_id)
            .map(|a| a.id.clone())
            .collect();
        for id in &gone {
            self.accounts.remove(id);
            for (_, t) in self.by_account.remove(id).unwrap_or_default() {
                self.transactions.remove(&t);
                self.numbers.remove(&t);
            }
            self.removed.retain(|(_, a, _, _)| a != id);
        }
        gone.len() as u64
    }
}

/// The first index key of `day`: "T0" sorts before every transaction id ('T' and hex
/// digits), so a range from it starts at that day.
fn day_start(day: Date) -> (Date, TransactionId) {
    // "T0" is a valid id (the prefix and one digit); the fallback is never taken.
    (
        day,
        TransactionId::parse("T0").unwrap_or_else(|_| TransactionId::derive(&[])),
    )
}

/// The next number of `access`'s feed sequence (0 without an access).
fn next_number(sequences: &mut HashMap<AccessId, i64>, access: Option<&AccessId>) -> i64 {
    access.map_or(0, |a| {
        let n = sequences.entry(a.clone()).or_insert(0);
        *n += 1;
        *n
    })
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

/// A poisoned lock means a panic happened while the data was being changed. Every change
/// here is made only after all checks passed, so the data is still consistent: go on.
fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn lock<T>(l: &Mutex<T>) -> MutexGuard<'_, T> {
    l.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl ClientRegistry for MemoryStore {
    async fn insert_client(&self, client: &Client) -> Result<(), StoreError> {
        let mut clients = write(&self.clients);
        if clients.contains_key(&client.id) {
            return Err(StoreError::Conflict("client id exists"));
        }
        // A new client has no rules; they are added one by one.
        clients.insert(
            client.id.clone(),
            Client {
                category_rules: Vec::new(),
                ..client.clone()
            },
        );
        Ok(())
    }

    async fn find_client(&self, id: &ClientId) -> Result<Option<Client>, StoreError> {
        Ok(read(&self.clients).get(id).cloned())
    }

    async fn update_client(&self, client: &Client) -> Result<bool, StoreError> {
        let mut clients = write(&self.clients);
        Ok(match clients.get_mut(&client.id) {
            Some(c) => {
                *c = Client {
                    created_at: c.created_at,
                    category_rules: std::mem::take(&mut c.category_rules),
                    ..client.clone()
                };
                true
            }
            None => false,
        })
    }

    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        Ok(read(&self.clients).values().cloned().collect())
    }

    async fn delete_client(&self, id: &ClientId) -> Result<bool, StoreError> {
        Ok(write(&self.clients).remove(id).is_some())
    }

    async fn add_category_rule(
        &self,
        client: &ClientId,
        rule: &finx_domain::enrich::CustomerRule,
        limit: usize,
    ) -> Result<bool, StoreError> {
        let mut clients = write(&self.clients);
        let Some(c) = clients.get_mut(client) else {
            return Ok(false);
        };
        if c.category_rules.len() >= limit {
            return Err(StoreError::Conflict(
                "the client has the most rules it may have",
            ));
        }
        if c.category_rules.iter().any(|r| r.id == rule.id) {
            return Err(StoreError::Conflict("rule id exists"));
        }
        c.category_rules.push(rule.clone());
        Ok(true)
    }

    async fn delete_category_rule(
        &self,
        client: &ClientId,
        rule: &str,
    ) -> Result<bool, StoreError> {
        let mut clients = write(&self.clients);
        let Some(c) = clients.get_mut(client) else {
            return Ok(false);
        };
        let before = c.category_rules.len();
        c.category_rules.retain(|r| r.id != rule);
        Ok(c.category_rules.len() < before)
    }
}

#[async_trait]
impl FlowStore for MemoryStore {
    async fn insert_flow(&self, flow: &Flow) -> Result<(), StoreError> {
        let mut flows = write(&self.flows);
        if flows.contains_key(&flow.id) {
            return Err(StoreError::Conflict("flow id exists"));
        }
        flows.insert(flow.id, flow.clone());
        Ok(())
    }

    async fn find_flow(&self, id: FlowId) -> Result<Option<Flow>, StoreError> {
        Ok(read(&self.flows).get(&id).cloned())
    }

    async fn update_flow(
        &self,
        flow: &Flow,
        expected_version: u64,
        events: &[Event],
    ) -> Result<(), StoreError> {
        let mut flows = write(&self.flows);
        let stored = flows
            .get_mut(&flow.id)
            .ok_or(StoreError::Conflict("flow does not exist"))?;
        if stored.version != expected_version {
            return Err(StoreError::Conflict("flow was changed concurrently"));
        }
        *stored = flow.clone();
        lock(&self.webhooks).enqueue(events);
        Ok(())
    }

    async fn stale_syncing_flows(
        &self,
        started_before: Timestamp,
    ) -> Result<Vec<Flow>, StoreError> {
        Ok(read(&self.flows)
            .values()
            .filter(|f| {
                matches!(f.status, FlowStatus::Syncing { started_at, .. } if started_at < started_before)
            })
            .cloned()
            .collect())
    }

    async fn purge_flows(&self, before: Timestamp) -> Result<u64, StoreError> {
        let mut flows = write(&self.flows);
        let n = flows.len();
        flows.retain(|_, f| f.expires_at > before);
        Ok((n - flows.len()) as u64)
    }
}

impl Grants {
    /// Whether a grant other than `except` that is live at `now` holds `access`.
    fn access_held(&self, access: &AccessId, except: GrantId, now: Timestamp) -> bool {
        self.families
            .values()
            .any(|f| f.grant.id != except && f.grant.access_id == *access && f.grant.is_live(now))
    }

    /// After grant `id` was revoked: deletes its access's data unless a live grant holds it.
    fn drop_data_of(&self, id: GrantId, data: &mut BankData, now: Timestamp) {
        if let Some(f) = self.families.get(&id) {
            if !self.access_held(&f.grant.access_id, id, now) {
                data.delete_access(&f.grant.access_id);
            }
        }
    }

    fn family_of(&self, hash: &TokenHash) -> Option<&GrantFamily> {
        self.by_hash
            .get(hash.as_bytes())
            .and_then(|g| self.families.get(g))
    }

    fn family_of_mut(&mut self, hash: &TokenHash) -> Option<&mut GrantFamily> {
        let id = self.by_hash.get(hash.as_bytes())?;
        self.families.get_mut(id)
    }

    fn index(&mut self, tokens: &IssuedTokens) {
        self.by_hash
            .insert(*tokens.access.hash.as_bytes(), tokens.access.grant_id);
        if let Some(r) = &tokens.refresh {
            self.by_hash.insert(*r.hash.as_bytes(), r.grant_id);
        }
    }

    fn is_taken(&self, tokens: &IssuedTokens) -> bool {
        self.by_hash.contains_key(tokens.access.hash.as_bytes())
            || tokens
                .refresh
                .as_ref()
                .is_some_and(|r| self.by_hash.contains_key(r.hash.as_bytes()))
    }
}

impl MemoryStore {
    /// Writes a grant's `grant.revoked` event (under the grants' lock, so with the
    /// revocation).
    pub(crate) fn revoked(&self, grant: &Grant, now: Timestamp, reason: RevokeReason) {
        lock(&self.webhooks).enqueue(&[Event {
            id: Event::revocation_id(grant.id),
            client_id: grant.client_id.clone(),
            at: now,
            data: EventData::GrantRevoked {
                flow_id: grant.flow_id,
                access_id: grant.access_id.clone(),
                reason,
            },
        }]);
    }
}

#[async_trait]
impl GrantStore for MemoryStore {
    async fn insert_grant(&self, grant: &Grant, code: &CodeRecord) -> Result<(), StoreError> {
        let mut g = lock(&self.grants);
        if g.families.contains_key(&grant.id) || g.by_hash.contains_key(code.hash.as_bytes()) {
            return Err(StoreError::Conflict("grant or code exists"));
        }
        g.by_hash.insert(*code.hash.as_bytes(), grant.id);
        g.families
            .insert(grant.id, GrantFamily::new(grant.clone(), code.clone()));
        Ok(())
    }

    async fn find_code(&self, code: &TokenHash) -> Result<Option<(CodeRecord, Grant)>, StoreError> {
        let g = lock(&self.grants);
        Ok(g.family_of(code)
            .filter(|f| f.code.hash == *code)
            .map(|f| (f.code.clone(), f.grant.clone())))
    }

    async fn redeem_code(
        &self,
        code: &TokenHash,
        now: Timestamp,
        tokens: &IssuedTokens,
    ) -> Result<Grant, RedeemFailure> {
        let mut g = lock(&self.grants);
        if g.is_taken(tokens) {
            return Err(StoreError::Conflict("token hash exists").into());
        }
        let family = g
            .family_of_mut(code)
            .filter(|f| f.code.hash == *code)
            .ok_or(RedeemError::NotFound)?;
        let was_revoked = family.grant.is_revoked();
        let redeemed = family.redeem_code(now, tokens.clone());
        let grant = family.grant.clone();
        if let Err(RedeemError::AlreadyUsed { grant_id }) = redeemed {
            g.drop_data_of(grant_id, &mut write(&self.data), now);
            if !was_revoked {
                self.revoked(&grant, now, RevokeReason::TokenReuse);
            }
        }
        redeemed?;
        g.index(tokens);
        Ok(grant)
    }

    async fn find_refresh_token(
        &self,
        token: &TokenHash,
    ) -> Result<Option<(RefreshTokenRecord, Grant)>, StoreError> {
        let g = lock(&self.grants);
        Ok(g.family_of(token).and_then(|f| {
            f.refresh_tokens
                .iter()
                .find(|t| t.hash == *token)
                .map(|t| (t.clone(), f.grant.clone()))
        }))
    }

    async fn rotate_refresh_token(
        &self,
        old: &TokenHash,
        now: Timestamp,
        tokens: &IssuedTokens,
    ) -> Result<Grant, RotateFailure> {
        let mut g = lock(&self.grants);
        if g.is_taken(tokens) {
            return Err(StoreError::Conflict("token hash exists").into());
        }
        let family = g.family_of_mut(old).ok_or(RotateError::NotFound)?;
        let was_revoked = family.grant.is_revoked();
        let rotated = family.rotate(old, now, tokens.clone());
        let grant = family.grant.clone();
        if let Err(RotateError::Reused { grant_id }) = rotated {
            g.drop_data_of(grant_id, &mut write(&self.data), now);
            if !was_revoked {
                self.revoked(&grant, now, RevokeReason::TokenReuse);
            }
        }
        rotated?;
        g.index(tokens);
        Ok(grant)
    }

    async fn find_access_token(
        &self,
        token: &TokenHash,
    ) -> Result<Option<(AccessTokenRecord, Grant)>, StoreError> {
        let g = lock(&self.grants);
        Ok(g.family_of(token).and_then(|f| {
            f.access_tokens
                .iter()
                .find(|t| t.hash == *token)
                .map(|t| (t.clone(), f.grant.clone()))
        }))
    }

    async fn find_grant(&self, id: GrantId) -> Result<Option<Grant>, StoreError> {
        Ok(lock(&self.grants)
            .families
            .get(&id)
            .map(|f| f.grant.clone()))
    }

    async fn client_grants(&self, client: &ClientId) -> Result<Vec<GrantId>, StoreError> {
        Ok(lock(&self.grants)
            .families
            .values()
            .filter(|f| f.grant.client_id == *client && f.grant.revoked_at.is_none())
            .map(|f| f.grant.id)
            .collect())
    }

    async fn revoke_grant(
        &self,
        id: GrantId,
        now: Timestamp,
        reason: RevokeReason,
    ) -> Result<(), StoreError> {
        let mut g = lock(&self.grants);
        if let Some(f) = g.families.get_mut(&id) {
            let was_revoked = f.grant.is_revoked();
            f.revoke(now);
            let grant = f.grant.clone();
            g.drop_data_of(id, &mut write(&self.data), now);
            if !was_revoked {
                self.revoked(&grant, now, reason);
            }
        }
        Ok(())
    }

    async fn revoke_access_token(
        &self,
        token: &TokenHash,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut g = lock(&self.grants);
        let Some(family) = g.family_of_mut(token) else {
            return Ok(false);
        };
        let grant_live = !family.grant.is_revoked();
        let Some(t) = family.access_tokens.iter_mut().find(|t| t.hash == *token) else {
            return Ok(false);
        };
        let was_live = grant_live && t.revoked_at.is_none() && now < t.expires_at;
        t.revoked_at.get_or_insert(now);
        Ok(was_live)
    }

    async fn add_access_token(
        &self,
        token: &AccessTokenRecord,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut g = lock(&self.grants);
        if g.by_hash.contains_key(token.hash.as_bytes()) {
            return Err(StoreError::Conflict("token hash exists"));
        }
        let Some(f) = g.families.get_mut(&token.grant_id) else {
            return Ok(false);
        };
        if !f.grant.is_live(now) {
            return Ok(false);
        }
        f.access_tokens.push(token.clone());
        g.by_hash.insert(*token.hash.as_bytes(), token.grant_id);
        Ok(true)
    }

    async fn insert_upload(&self, upload: &finx_domain::upload::Upload) -> Result<(), StoreError> {
        let mut u = lock(&self.uploads);
        if u.contains_key(&upload.id) {
            return Err(StoreError::Conflict("upload exists"));
        }
        u.insert(upload.id, upload.clone());
        Ok(())
    }

    async fn find_upload(
        &self,
        id: finx_domain::ids::UploadId,
    ) -> Result<Option<finx_domain::upload::Upload>, StoreError> {
        Ok(lock(&self.uploads).get(&id).cloned())
    }

    async fn update_upload(
        &self,
        upload: &finx_domain::upload::Upload,
    ) -> Result<bool, StoreError> {
        let mut u = lock(&self.uploads);
        let Some(stored) = u.get_mut(&upload.id) else {
            return Ok(false);
        };
        *stored = finx_domain::upload::Upload {
            client_id: stored.client_id.clone(),
            created_at: stored.created_at,
            ..upload.clone()
        };
        Ok(true)
    }

    async fn purge(
        &self,
        before: Timestamp,
        orphaned_before: Timestamp,
    ) -> Result<PurgeReport, StoreError> {
        let mut report = PurgeReport::default();
        {
            let mut u = lock(&self.uploads);
            let n = u.len();
            u.retain(|_, up| up.expires_at > before);
            report.uploads = (n - u.len()) as u64;
        }
        let mut g = lock(&self.grants);
        let mut dropped: Vec<[u8; 32]> = Vec::new();
        for f in g.families.values_mut() {
            let (a, r) = (f.access_tokens.len(), f.refresh_tokens.len());
            dropped.extend(
                f.access_tokens
                    .iter()
                    .filter(|t| t.expires_at <= before)
                    .map(|t| *t.hash.as_bytes()),
            );
            dropped.extend(
                f.refresh_tokens
                    .iter()
                    .filter(|t| t.expires_at <= before)
                    .map(|t| *t.hash.as_bytes()),
            );
            f.purge(before);
            report.access_tokens += (a - f.access_tokens.len()) as u64;
            report.refresh_tokens += (r - f.refresh_tokens.len()) as u64;
        }
        // A family past its absolute end goes whole. So does one whose code has expired and
        // that holds no token any more: it is dead.
        let dead: Vec<GrantId> = g
            .families
            .values()
            .filter(|f| {
                f.grant.expires_at <= before
                    || (f.code.expires_at <= before
                        && f.access_tokens.is_empty()
                        && f.refresh_tokens.is_empty())
            })
            .map(|f| f.grant.id)
            .collect();
        for id in dead {
            if let Some(f) = g.families.remove(&id) {
                dropped.push(*f.code.hash.as_bytes());
                dropped.extend(f.access_tokens.iter().map(|t| *t.hash.as_bytes()));
                dropped.extend(f.refresh_tokens.iter().map(|t| *t.hash.as_bytes()));
                report.codes += 1;
                report.grants += 1;
            }
        }
        for h in dropped {
            g.by_hash.remove(&h);
        }
        // Bank data no live grant holds, once it is older than a flow still fetching.
        let held: BTreeSet<&AccessId> = g
            .families
            .values()
            .filter(|f| f.grant.is_live(before))
            .map(|f| &f.grant.access_id)
            .collect();
        let mut data = write(&self.data);
        let orphaned: BTreeSet<AccessId> = data
            .accounts
            .values()
            .filter(|a| a.status.synced_at <= orphaned_before && !held.contains(&a.access_id))
            .map(|a| a.access_id.clone())
            .collect();
        for access in &orphaned {
            report.accounts += data.delete_access(access);
        }
        Ok(report)
    }
}

#[async_trait]
impl BankDataStore for MemoryStore {
    async fn upsert_account(&self, account: &Account) -> Result<(), StoreError> {
        write(&self.data)
            .accounts
            .insert(account.id.clone(), account.clone());
        Ok(())
    }

    async fn sync_transactions(
        &self,
        account: &AccountId,
        transactions: &[TransactionDetails],
        now: Timestamp,
    ) -> Result<SyncReport, StoreError> {
        // The whole account is the window.
        let first = Date::from_ymd_opt(1, 1, 1).unwrap_or_default();
        Ok(write(&self.data).reconcile(account, transactions, first, now))
    }

    async fn upsert_transactions(
        &self,
        account: &AccountId,
        transactions: &[TransactionDetails],
        now: Timestamp,
    ) -> Result<SyncReport, StoreError> {
        Ok(write(&self.data).upsert(account, transactions, now))
    }

    async fn drop_pending_except(
        &self,
        account: &AccountId,
        keep: &[TransactionId],
    ) -> Result<u64, StoreError> {
        let keep: HashSet<TransactionId> = keep.iter().cloned().collect();
        Ok(write(&self.data).drop_pending_except(account, &keep))
    }

    async fn find_accounts(&self, ids: &[AccountId]) -> Result<Vec<Account>, StoreError> {
        let data = read(&self.data);
        Ok(ids
            .iter()
            .filter_map(|id| data.accounts.get(id).cloned())
            .collect())
    }

    async fn query_transactions(
        &self,
        query: &ResolvedQuery,
    ) -> Result<Vec<Transaction>, StoreError> {
        let data = read(&self.data);
        // Each account once, even if the query names it twice.
        let accounts: BTreeSet<&AccountId> = query.accounts.iter().collect();
        // The page is among the first offset+count matches of each account in query order:
        // walk each account's index in that order and stop there, then merge.
        let wanted = query.offset as usize + query.count as usize;
        let mut candidates: Vec<&Transaction> = Vec::new();
        for account in accounts {
            let Some(index) = data.by_account.get(account) else {
                continue;
            };
            let ordered: Box<dyn Iterator<Item = &(Date, TransactionId)>> = match query.sort {
                SortOrder::Asc => Box::new(index.iter()),
                SortOrder::Desc => Box::new(index.iter().rev()),
            };
            candidates.extend(
                ordered
                    .filter_map(|(_, id)| data.transactions.get(id))
                    .filter(|t| query.matches(t))
                    .take(wanted),
            );
        }
        Ok(query.apply(candidates))
    }

    async fn find_transaction(
        &self,
        id: &TransactionId,
    ) -> Result<Option<Transaction>, StoreError> {
        Ok(read(&self.data).transactions.get(id).cloned())
    }

    async fn changes(
        &self,
        accounts: &[AccountId],
        after: i64,
        limit: u32,
        moved: Option<(i64, i64, i64)>,
    ) -> Result<FeedRead, StoreError> {
        let data = read(&self.data);
        let mut out: Vec<Change> = Vec::new();
        let mut high = -1;
        let mut has_moved = false;
        let moves = |seq: i64, first: i64| {
            moved.is_some_and(|(from, to, since)| seq > since && first > from && first <= to)
        };
        for account in accounts {
            for (_, id) in data.by_account.get(account).into_iter().flatten() {
                if let (Some(t), Some((seq, first))) =
                    (data.transactions.get(id), data.numbers.get(id))
                {
                    high = high.max(*seq);
                    has_moved |= moves(*seq, *first);
                    if *seq > after {
                        out.push(Change {
                            seq: *seq,
                            created_seq: *first,
                            what: Changed::Now(Box::new(t.clone())),
                        });
                    }
                }
            }
        }
        for (id, account, seq, first) in &data.removed {
            if !accounts.contains(account) {
                continue;
            }
            high = high.max(*seq);
            has_moved |= moves(*seq, *first);
            if *seq > after {
                out.push(Change {
                    seq: *seq,
                    created_seq: *first,
                    what: Changed::Removed(id.clone()),
                });
            }
        }
        out.sort_by_key(|c| c.seq);
        out.truncate(limit as usize);
        Ok(FeedRead {
            changes: out,
            high,
            moved: has_moved,
        })
    }

    async fn delete_access(&self, access_id: &AccessId) -> Result<u64, StoreError> {
        Ok(write(&self.data).delete_access(access_id))
    }
}

#[async_trait]
impl BankRegistry for MemoryStore {
    async fn upsert_banks(&self, banks: &[RegisteredBank]) -> Result<u64, StoreError> {
        let mut map = write(&self.banks);
        for b in banks {
            map.insert(b.id.clone(), b.clone());
        }
        Ok(banks.len() as u64)
    }

    async fn find_bank(&self, id: &InstitutionId) -> Result<Option<RegisteredBank>, StoreError> {
        Ok(read(&self.banks).get(id).cloned())
    }

    async fn search_banks(
        &self,
        query: &str,
        limit: u32,
    ) -> Result<Vec<RegisteredBank>, StoreError> {
        self.catalog_banks(query, None, 0, limit).await
    }

    async fn catalog_banks(
        &self,
        query: &str,
        country: Option<String>,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<RegisteredBank>, StoreError> {
        let q = query.trim().to_ascii_lowercase();
        let mut hits: Vec<RegisteredBank> = read(&self.banks)
            .values()
            .filter(|b| {
                q.is_empty()
                    || b.name.to_ascii_lowercase().contains(&q)
                    || b.bic.as_deref().is_some_and(|c| c.eq_ignore_ascii_case(&q))
                    || b.bank_code.as_deref() == Some(q.as_str())
            })
            .filter(|b| {
                country
                    .as_deref()
                    .is_none_or(|c| b.country.eq_ignore_ascii_case(c.trim()))
            })
            .cloned()
            .collect();
        hits.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        Ok(hits
            .into_iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .collect())
    }

    async fn bank_by_code(
        &self,
        country: &str,
        bank_code: &str,
    ) -> Result<Option<RegisteredBank>, StoreError> {
        Ok(read(&self.banks)
            .values()
            .find(|b| b.country == country && b.bank_code.as_deref() == Some(bank_code))
            .cloned())
    }

    async fn count_banks(&self) -> Result<u64, StoreError> {
        Ok(read(&self.banks).len() as u64)
    }
}

/// One process holds the data: nothing to tell other instances.
#[async_trait]
impl finx_ports::InvalidationBus for MemoryStore {
    fn shared(&self) -> bool {
        false
    }

    async fn publish(&self, _: &finx_ports::Invalidation) -> Result<(), StoreError> {
        Ok(())
    }

    async fn next(&self) -> finx_ports::Heard {
        std::future::pending().await
    }
}
