use finx_domain::bank::{Account, Balance, Transaction};
use finx_domain::enrich::{Categorized, Facts};
use finx_domain::ids::{AccessId, AccountId, ClientId, GrantId, TransactionId};
use finx_domain::query::{Bound, ResolvedBound, ResolvedQuery, TransactionQuery};
use finx_domain::scope::{Scope, ScopeItem};
use finx_domain::secret::AccessToken;
use finx_domain::token::access_token_usable;

use crate::error::invalid;
use crate::{CoreError, Finx};

/// One page of the transactions feed (`GET /rest/transactions/sync`).
#[derive(Debug, Clone)]
pub struct FeedPage {
    /// Transactions new to the reader.
    pub added: Vec<Transaction>,
    /// Transactions the reader has, as they are now.
    pub modified: Vec<Transaction>,
    /// Transactions the reader has that are gone.
    pub removed: Vec<TransactionId>,
    /// Where to go on from.
    pub next_cursor: String,
    /// Whether more changes follow right away.
    pub has_more: bool,
}

/// The most changes one feed page holds.
pub const FEED_MAX_COUNT: u32 = 500;

/// What a valid bearer token allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The grant.
    pub grant_id: GrantId,
    /// The customer.
    pub client_id: ClientId,
    /// The bank connection.
    pub access_id: AccessId,
    /// The accounts it sees.
    pub account_ids: Vec<AccountId>,
    /// What it may read.
    pub scope: Scope,
    /// The language finX names things in for it (its flow's).
    pub language: finx_domain::values::Language,
}

impl Authorization {
    pub(crate) fn require(&self, item: ScopeItem) -> Result<(), CoreError> {
        if self.scope.contains(item) {
            Ok(())
        } else {
            Err(CoreError::InsufficientScope(item))
        }
    }

    /// The accounts a transactions query reads, once the token may read them.
    pub(crate) fn readable<'a>(
        &'a self,
        query: &'a TransactionQuery,
    ) -> Result<&'a [AccountId], CoreError> {
        self.require(ScopeItem::Transactions)?;
        match &query.accounts {
            Some(ids) => {
                for id in ids {
                    self.require_account(id)?;
                }
                Ok(ids)
            }
            None => Ok(&self.account_ids),
        }
    }

    fn require_account(&self, id: &AccountId) -> Result<(), CoreError> {
        if self.account_ids.contains(id) {
            Ok(())
        } else {
            Err(CoreError::NotFound("account"))
        }
    }

    /// Hides the balance when the token may not read balances.
    fn shape(&self, mut account: Account) -> Account {
        if !self.scope.contains(ScopeItem::Balance) {
            account.balance = None;
        }
        account
    }
}

impl Finx {
    /// Checks a bearer access token.
    ///
    /// # Errors
    /// [`CoreError::InvalidToken`] when it is malformed, unknown, expired or revoked.
    pub async fn authorize(&self, bearer: &str) -> Result<Authorization, CoreError> {
        let token = AccessToken::from_presented(bearer).map_err(|_| CoreError::InvalidToken)?;
        let now = self.now();
        let mut found = None;
        // Under the current hash key first; a token issued before a key rotation is stored
        // under a previous key.
        for hash in self.hasher.candidates(&token) {
            if let Some(hit) = self.coherence.token(&hash, now) {
                found = Some(hit);
                break;
            }
            let version = self.coherence.version([], now);
            if let Some((record, grant)) = self.ports.grants.find_access_token(&hash).await? {
                if let Some(version) = version {
                    self.coherence
                        .keep_token(hash, record.clone(), grant.clone(), version);
                }
                found = Some((record, grant));
                break;
            }
        }
        let (record, grant) = found.ok_or(CoreError::InvalidToken)?;
        if !access_token_usable(&record, &grant, now)
            || !self.client_enabled(&grant.client_id).await?
        {
            return Err(CoreError::InvalidToken);
        }
        Ok(Authorization {
            grant_id: grant.id,
            client_id: grant.client_id,
            access_id: grant.access_id,
            account_ids: grant.account_ids,
            scope: record.scope,
            language: grant.language,
        })
    }

    /// The accounts the end user consented to (step 3 of the guide).
    ///
    /// # Errors
    /// [`CoreError::InsufficientScope`] without `accounts=ro`.
    pub async fn list_accounts(&self, auth: &Authorization) -> Result<Vec<Account>, CoreError> {
        auth.require(ScopeItem::Accounts)?;
        let accounts = self.ports.data.find_accounts(&auth.account_ids).await?;
        Ok(accounts.into_iter().map(|a| auth.shape(a)).collect())
    }

    /// One account.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] when the grant does not see it.
    pub async fn get_account(&self, auth: &Authorization, id: &str) -> Result<Account, CoreError> {
        auth.require(ScopeItem::Accounts)?;
        let account = self.account(auth, id).await?;
        Ok(auth.shape(account))
    }

    /// One account's balance.
    ///
    /// # Errors
    /// [`CoreError::InsufficientScope`] without `balance=ro`; [`CoreError::NotFound`].
    pub async fn get_balance(&self, auth: &Authorization, id: &str) -> Result<Balance, CoreError> {
        auth.require(ScopeItem::Balance)?;
        self.account(auth, id)
            .await?
            .balance
            .ok_or(CoreError::NotFound("balance"))
    }

    /// Transactions per the finX query.
    ///
    /// # Errors
    /// [`CoreError::InsufficientScope`] without `transactions=ro`; [`CoreError::NotFound`]
    /// for an account the grant does not see; [`CoreError::Invalid`] for a `since`/`until`
    /// transaction it does not see.
    pub async fn list_transactions(
        &self,
        auth: &Authorization,
        query: TransactionQuery,
    ) -> Result<Vec<Transaction>, CoreError> {
        let accounts = auth.readable(&query)?.to_vec();
        let resolved = ResolvedQuery {
            accounts,
            count: query.count,
            offset: query.offset,
            sort: query.sort,
            since: self.resolve(auth, query.since).await?,
            until: self.resolve(auth, query.until).await?,
            since_type: query.since_type,
            include_pending: query.include_pending,
            filter: query.filter,
        };
        Ok(self.ports.data.query_transactions(&resolved).await?)
    }

    /// One page of the transactions feed: the changes to the grant's accounts after
    /// `cursor` (from the beginning without one), at most `count` (default 100, at most
    /// [`FEED_MAX_COUNT`]), as added, modified and removed, with the cursor to go on from.
    /// Replaying every page in order (within a page: `removed` first, then `added` and
    /// `modified`) gives exactly the transactions
    /// [`list_transactions`](Self::list_transactions) shows with pending ones.
    ///
    /// # Errors
    /// [`CoreError::Invalid`] for a bad cursor or count; [`CoreError::FeedRestart`] when a
    /// transaction of the current pass changed again (restart from the cursor it names);
    /// [`CoreError::InsufficientScope`] without `transactions=ro`.
    pub async fn transactions_feed(
        &self,
        auth: &Authorization,
        cursor: Option<&str>,
        count: Option<u32>,
    ) -> Result<FeedPage, CoreError> {
        use finx_domain::feed::FeedCursor;
        use finx_ports::Changed;
        auth.require(ScopeItem::Transactions)?;
        let count = count.unwrap_or(100);
        if !(1..=FEED_MAX_COUNT).contains(&count) {
            return Err(invalid("count", format!("must be 1 to {FEED_MAX_COUNT}")));
        }
        let cursor = match cursor.filter(|c| !c.is_empty()) {
            None => FeedCursor::start(auth.grant_id),
            Some(raw) => FeedCursor::decode(raw, &auth.grant_id, &self.hasher)
                .map_err(|e| invalid("cursor", e))?,
        };
        // Mid-pass, whether a transaction the reader may have got as added in this pass
        // changed again since the last page: asked in the same snapshot as the page.
        let moved = cursor
            .in_pass()
            .then_some((cursor.base, cursor.after, cursor.high));
        let read = self
            .ports
            .data
            .changes(&auth.account_ids, cursor.after, count + 1, moved)
            .await?;
        if read.moved {
            let restart = FeedCursor {
                after: cursor.base,
                ..cursor
            };
            return Err(CoreError::FeedRestart {
                cursor: restart.encode(&self.hasher),
            });
        }
        let (mut changes, high) = (read.changes, read.high);
        let has_more = changes.len() > count as usize;
        changes.truncate(count as usize);
        let last = changes.last().map_or(cursor.after, |c| c.seq);
        let mut page = FeedPage {
            added: Vec::new(),
            modified: Vec::new(),
            removed: Vec::new(),
            next_cursor: String::new(),
            has_more,
        };
        for c in changes {
            let new_to_reader = c.created_seq > cursor.base;
            match c.what {
                Changed::Now(t) if new_to_reader => page.added.push(*t),
                Changed::Now(t) => page.modified.push(*t),
                // Gone before the reader saw it: nothing to tell.
                Changed::Removed(_) if new_to_reader => {}
                Changed::Removed(id) => page.removed.push(id),
            }
        }
        let next = FeedCursor {
            grant: cursor.grant,
            after: last,
            base: if has_more { cursor.base } else { last },
            high: high.max(last),
        };
        page.next_cursor = next.encode(&self.hasher);
        Ok(page)
    }

    /// One transaction.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] when the grant does not see it.
    pub async fn get_transaction(
        &self,
        auth: &Authorization,
        id: &str,
    ) -> Result<Transaction, CoreError> {
        auth.require(ScopeItem::Transactions)?;
        let id = TransactionId::parse(id).map_err(|_| CoreError::NotFound("transaction"))?;
        self.visible_transaction(auth, &id)
            .await?
            .ok_or(CoreError::NotFound("transaction"))
    }

    /// The category of each of `txs` (as read by `auth`), by the customer's own rules, then
    /// the built-in ones: `None` where no rule knows one. A transfer to or from another account the grant sees is
    /// one between the holder's own accounts.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn categorize(
        &self,
        auth: &Authorization,
        txs: &[Transaction],
    ) -> Result<Vec<Option<Categorized>>, CoreError> {
        let own: Vec<finx_domain::reference::Iban> =
            if txs.iter().any(|t| t.details.counterparty.iban.is_some()) {
                self.ports
                    .data
                    .find_accounts(&auth.account_ids)
                    .await?
                    .into_iter()
                    .filter_map(|a| a.details.iban)
                    .collect()
            } else {
                Vec::new()
            };
        // The customer's own rules first (kept with the client, so usually from memory).
        let rules = match self.ports.clients.find_client(&auth.client_id).await? {
            Some(c) => c.category_rules,
            None => Vec::new(),
        };
        Ok(txs
            .iter()
            .map(|t| {
                let d = &t.details;
                let facts = Facts {
                    amount: d.amount.amount(),
                    name: d.counterparty.name.as_deref(),
                    purpose: d.purpose.as_deref(),
                    booking_text: d.booking_text.as_deref(),
                    creditor_id: d.creditor_id.as_deref(),
                    mandate_reference: d.mandate_reference.as_deref(),
                    sepa_purpose_code: d.sepa_purpose_code.as_deref(),
                    bank_transaction_code: d.bank_transaction_code.as_deref(),
                    mcc: d.mcc.as_deref(),
                    own_account: d
                        .counterparty
                        .iban
                        .as_ref()
                        .is_some_and(|i| own.contains(i)),
                };
                let iban = d.counterparty.iban.as_ref().map(ToString::to_string);
                finx_domain::enrich::customer::first_match(&rules, &facts, iban.as_deref())
                    .or_else(|| self.rules.categorize(&facts))
            })
            .collect())
    }

    async fn account(&self, auth: &Authorization, id: &str) -> Result<Account, CoreError> {
        let id = AccountId::parse(id).map_err(|_| CoreError::NotFound("account"))?;
        auth.require_account(&id)?;
        let found = self
            .ports
            .data
            .find_accounts(std::slice::from_ref(&id))
            .await?;
        found
            .into_iter()
            .next()
            .ok_or(CoreError::NotFound("account"))
    }

    async fn visible_transaction(
        &self,
        auth: &Authorization,
        id: &TransactionId,
    ) -> Result<Option<Transaction>, CoreError> {
        let t = self.ports.data.find_transaction(id).await?;
        Ok(t.filter(|t| auth.account_ids.contains(&t.account_id)))
    }

    async fn resolve(
        &self,
        auth: &Authorization,
        bound: Option<Bound>,
    ) -> Result<Option<ResolvedBound>, CoreError> {
        Ok(match bound {
            None => None,
            Some(Bound::Date(d)) => Some(ResolvedBound::Date(d)),
            Some(Bound::Transaction(id)) => {
                let t = self
                    .visible_transaction(auth, &id)
                    .await?
                    .ok_or(CoreError::NotFound("transaction"))?;
                Some(ResolvedBound::After(t.details.booked_on, t.id))
            }
        })
    }
}
