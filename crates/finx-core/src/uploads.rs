//! Transaction uploads: accounts and transactions a customer sends for enrichment without a
//! bank login. They are stored like a one-time access's data, under a grant of their own
//! with one-time retention, and read through `/rest/*` with the access tokens
//! [`Finx::upload_status`] hands out.

use finx_domain::Timestamp;
use finx_domain::bank::{Account, AccountDetails, AccountType, Balance, BalanceStatus, SyncStatus};
use finx_domain::ids::{ClientId, FlowId, GrantId, UploadId};
use finx_domain::scope::{Scope, ScopeItem};
use finx_domain::secret::AuthorizationCode;
use finx_domain::token::{CodeRecord, Grant};
use finx_domain::upload::{self, RawUpload, Upload, UploadStatus, UploadedAccount};
use finx_domain::values::{Language, RedirectUri};
use finx_ports::Client;

use crate::{CoreError, Finx, TokenResponse};

/// What an upload's grant may read.
const UPLOAD_SCOPE: [ScopeItem; 3] = [
    ScopeItem::Accounts,
    ScopeItem::Balance,
    ScopeItem::Transactions,
];

/// The redirect URI an upload's grant records. It has no flow and its code is never shown,
/// so no exchange ever compares against it; `.invalid` names nothing (RFC 2606).
const NO_REDIRECT: &str = "https://uploads.finx.invalid/";

/// An accepted upload, to be written by [`Finx::process_upload`].
#[derive(Debug)]
pub struct AcceptedUpload {
    /// Its record, `QUEUED`.
    pub upload: Upload,
    accounts: Vec<UploadedAccount>,
    language: Language,
}

impl Finx {
    /// Checks an upload and records it as queued. Nothing is stored when it is refused.
    ///
    /// # Errors
    /// [`CoreError::InvalidUpload`] naming the first wrong field; a store failure.
    pub async fn accept_upload(
        &self,
        client: &Client,
        raw: &RawUpload,
        language: Language,
    ) -> Result<AcceptedUpload, CoreError> {
        let accounts = upload::check(raw)?;
        let now = self.now();
        let record = Upload {
            id: UploadId::from_random(self.ports.random.bytes16()),
            client_id: client.id.clone(),
            status: UploadStatus::Queued,
            created_at: now,
            started_at: None,
            ended_at: None,
            expires_at: now + self.onetime_retention,
            grant_id: None,
            error: None,
        };
        self.ports.grants.insert_upload(&record).await?;
        Ok(AcceptedUpload {
            upload: record,
            accounts,
            language,
        })
    }

    /// Writes an accepted upload's accounts and transactions under a grant of its own, and
    /// records it `COMPLETED` (or `FAILED`). The client's scope bounds what the grant reads.
    ///
    /// # Errors
    /// When even the record cannot be updated; the upload then reads as failed once its
    /// processing deadline passes.
    pub async fn process_upload(
        &self,
        accepted: AcceptedUpload,
        client_scope: Scope,
    ) -> Result<Upload, CoreError> {
        let AcceptedUpload {
            upload: mut record,
            accounts,
            language,
        } = accepted;
        let now = self.now();
        record.status = UploadStatus::Running;
        record.started_at = Some(now);
        self.ports.grants.update_upload(&record).await?;
        match self
            .write_upload(&record, &accounts, language, client_scope, now)
            .await
        {
            Ok(grant) => {
                record.status = UploadStatus::Completed;
                record.grant_id = Some(grant);
            }
            Err(e) => {
                record.status = UploadStatus::Failed;
                record.error = Some((
                    upload::INTERNAL_CODE,
                    format!("the upload could not be stored ({e}); send it again"),
                ));
            }
        }
        record.ended_at = Some(self.now());
        self.ports.grants.update_upload(&record).await?;
        Ok(record)
    }

    async fn write_upload(
        &self,
        record: &Upload,
        accounts: &[UploadedAccount],
        language: Language,
        client_scope: Scope,
        now: Timestamp,
    ) -> Result<GrantId, CoreError> {
        let access_id = record.access_id();
        let mut account_ids = Vec::with_capacity(accounts.len());
        for a in accounts {
            let external_id = a.iban.as_str().to_owned();
            let account = Account {
                id: Account::id_for(&access_id, &external_id),
                access_id: access_id.clone(),
                details: AccountDetails {
                    external_id,
                    bank_code: a.iban.bank_code().map(str::to_owned),
                    iban: Some(a.iban.clone()),
                    account_number: None,
                    bic: a.bic.clone(),
                    bank_name: String::new(),
                    currency: a.currency,
                    account_type: AccountType::Unknown,
                    name: String::new(),
                    owner: a.owner.clone().unwrap_or_default(),
                    is_jointly_managed: false,
                    card_last4: None,
                },
                balance: a.balance.as_ref().map(|(amount, date)| Balance {
                    amount: *amount,
                    date: *date,
                    status: BalanceStatus::Booked,
                }),
                status: SyncStatus {
                    synced_at: now,
                    succeeded_at: Some(now),
                    message: None,
                },
            };
            self.ports.data.upsert_account(&account).await?;
            self.write_transactions(&account.id, &a.transactions, now)
                .await?;
            account_ids.push(account.id);
        }
        let grant = Grant {
            id: GrantId::from_random(self.ports.random.bytes16()),
            client_id: record.client_id.clone(),
            // An upload has no flow: its grant carries the upload's id there.
            flow_id: FlowId::from_random(*record.id.as_uuid().as_bytes()),
            access_id,
            account_ids,
            scope: Scope::of(&UPLOAD_SCOPE).and(client_scope),
            redirect_uri: RedirectUri::parse(NO_REDIRECT)
                .map_err(|e| crate::error::invalid("redirect_uri", e))?,
            created_at: now,
            expires_at: record.expires_at,
            revoked_at: None,
            language,
            verification: None,
        };
        // The grant's code is never shown: it is born used, and lives as long as the grant,
        // which the purge then keeps to its end even before any token is handed out.
        let code = AuthorizationCode::from_random(self.ports.random.bytes32());
        let code = CodeRecord {
            hash: self.hasher.hash(&code),
            grant_id: grant.id,
            issued_at: now,
            expires_at: grant.expires_at,
            used_at: Some(now),
        };
        self.ports.grants.insert_grant(&grant, &code).await?;
        Ok(grant.id)
    }

    /// An upload of `client`'s as it stands now, and, once it completed, a new access token
    /// for its data (each call hands out another; each lives an hour at most, and never past
    /// the upload's retention).
    ///
    /// # Errors
    /// [`CoreError::NotFound`] for an unknown upload, another client's, or one whose data is
    /// gone (retention passed, or its grant revoked).
    pub async fn upload_status(
        &self,
        client: &ClientId,
        id: &str,
    ) -> Result<(Upload, Option<TokenResponse>), CoreError> {
        let id = UploadId::parse(id).map_err(|_| CoreError::NotFound("upload"))?;
        let now = self.now();
        let record = self
            .ports
            .grants
            .find_upload(id)
            .await?
            .filter(|u| u.client_id == *client && u.expires_at > now)
            .ok_or(CoreError::NotFound("upload"))?
            .at(now);
        let Some(grant_id) = record
            .grant_id
            .filter(|_| record.status == UploadStatus::Completed)
        else {
            return Ok((record, None));
        };
        let grant = self
            .ports
            .grants
            .find_grant(grant_id)
            .await?
            .filter(|g| g.is_live(now))
            .ok_or(CoreError::NotFound("upload"))?;
        let (response, issued) = self.mint(&grant, grant.scope, now);
        if !self
            .ports
            .grants
            .add_access_token(&issued.access, now)
            .await?
        {
            return Err(CoreError::NotFound("upload"));
        }
        Ok((record, Some(response)))
    }
}
