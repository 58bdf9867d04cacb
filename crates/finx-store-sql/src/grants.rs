//! `GrantStore` on SQL.
//!
//! Redemption and rotation read the credential and its grant, apply the domain's rule
//! (`check_redeem`, `check_rotate`), then mark the credential used with
//! `UPDATE … WHERE hash = $h AND used_at IS NULL`. Only one caller can see that statement
//! affect a row; a caller that sees none lost a race, which is reuse, and revokes the grant.
//! The new tokens are inserted in the same transaction, so a crash leaves either everything
//! or nothing.

use async_trait::async_trait;
use finx_domain::Timestamp;
use finx_domain::ids::{AccessId, AccountId, ClientId, FlowId, GrantId};
use finx_domain::scope::Scope;
use finx_domain::secret::TokenHash;
use finx_domain::token::{
    AccessTokenRecord, CodeRecord, Grant, IssuedTokens, RedeemError, RefreshTokenRecord,
    RotateError, check_redeem, check_rotate,
};
use finx_domain::values::RedirectUri;
use finx_domain::webhook::{Event, EventData, RevokeReason};
use finx_ports::{GrantStore, PurgeReport, RedeemFailure, RotateFailure, StoreError};

use crate::clients::hash;
use crate::codec::{from_json, instant, json, micros, opt_instant, parse};
use crate::webhooks::enqueue_in;
use crate::{Backend, SqlStore, WritePool, db, on_pool};

#[derive(sqlx::FromRow)]
struct GrantRow {
    g_id: String,
    g_client_id: String,
    g_flow_id: String,
    g_access_id: String,
    g_account_ids: String,
    g_scope: String,
    g_redirect_uri: String,
    g_created_at: i64,
    g_expires_at: i64,
    g_revoked_at: Option<i64>,
    g_language: String,
    g_verification: Option<String>,
}

const GRANT_COLUMNS: &str = "g.id AS g_id, g.client_id AS g_client_id, g.flow_id AS g_flow_id, \
     g.access_id AS g_access_id, g.account_ids AS g_account_ids, g.scope AS g_scope, \
     g.redirect_uri AS g_redirect_uri, g.created_at AS g_created_at, g.expires_at AS g_expires_at, \
     g.revoked_at AS g_revoked_at, g.language AS g_language, g.verification AS g_verification";

impl GrantRow {
    fn into_grant(self) -> Result<Grant, StoreError> {
        let accounts: Vec<String> = from_json(&self.g_account_ids, "grant accounts")?;
        Ok(Grant {
            id: parse(GrantId::parse(&self.g_id), "grant id")?,
            client_id: parse(ClientId::parse(&self.g_client_id), "client id")?,
            flow_id: parse(FlowId::parse(&self.g_flow_id), "flow id")?,
            access_id: parse(AccessId::parse(&self.g_access_id), "access id")?,
            account_ids: accounts
                .iter()
                .map(|a| parse(AccountId::parse(a), "account id"))
                .collect::<Result<_, _>>()?,
            scope: parse(Scope::parse(&self.g_scope), "scope")?,
            redirect_uri: parse(RedirectUri::parse(&self.g_redirect_uri), "redirect URI")?,
            created_at: instant(self.g_created_at)?,
            expires_at: instant(self.g_expires_at)?,
            revoked_at: opt_instant(self.g_revoked_at)?,
            language: finx_domain::values::Language::from_tag(&self.g_language),
            verification: self
                .g_verification
                .map(|v| {
                    from_json::<crate::codec::VerificationDoc>(&v, "grant verification")?
                        .into_domain()
                })
                .transpose()?,
        })
    }
}

/// A credential row (code, access or refresh token) with its grant.
#[derive(sqlx::FromRow)]
struct CredentialRow {
    t_hash: Vec<u8>,
    t_issued_at: i64,
    t_expires_at: i64,
    /// `used_at` for codes and refresh tokens, `revoked_at` for access tokens.
    t_closed_at: Option<i64>,
    t_scope: Option<String>,
    #[sqlx(flatten)]
    grant: GrantRow,
}

fn select_code() -> String {
    format!(
        "SELECT c.hash AS t_hash, c.issued_at AS t_issued_at, c.expires_at AS t_expires_at, \
         c.used_at AS t_closed_at, CAST(NULL AS TEXT) AS t_scope, {GRANT_COLUMNS} \
         FROM codes c JOIN grants g ON g.id = c.grant_id WHERE c.hash = $1"
    )
}

fn select_refresh() -> String {
    format!(
        "SELECT r.hash AS t_hash, r.issued_at AS t_issued_at, r.expires_at AS t_expires_at, \
         r.used_at AS t_closed_at, CAST(NULL AS TEXT) AS t_scope, {GRANT_COLUMNS} \
         FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id WHERE r.hash = $1"
    )
}

fn select_access() -> String {
    format!(
        "SELECT a.hash AS t_hash, a.issued_at AS t_issued_at, a.expires_at AS t_expires_at, \
         a.revoked_at AS t_closed_at, a.scope AS t_scope, {GRANT_COLUMNS} \
         FROM access_tokens a JOIN grants g ON g.id = a.grant_id WHERE a.hash = $1"
    )
}

impl CredentialRow {
    fn code(self) -> Result<(CodeRecord, Grant), StoreError> {
        let grant = self.grant.into_grant()?;
        let code = CodeRecord {
            hash: hash(&self.t_hash)?,
            grant_id: grant.id,
            issued_at: instant(self.t_issued_at)?,
            expires_at: instant(self.t_expires_at)?,
            used_at: opt_instant(self.t_closed_at)?,
        };
        Ok((code, grant))
    }

    fn refresh(self) -> Result<(RefreshTokenRecord, Grant), StoreError> {
        let grant = self.grant.into_grant()?;
        let token = RefreshTokenRecord {
            hash: hash(&self.t_hash)?,
            grant_id: grant.id,
            issued_at: instant(self.t_issued_at)?,
            expires_at: instant(self.t_expires_at)?,
            used_at: opt_instant(self.t_closed_at)?,
        };
        Ok((token, grant))
    }

    fn access(self) -> Result<(AccessTokenRecord, Grant), StoreError> {
        let grant = self.grant.into_grant()?;
        let token = AccessTokenRecord {
            hash: hash(&self.t_hash)?,
            grant_id: grant.id,
            issued_at: instant(self.t_issued_at)?,
            expires_at: instant(self.t_expires_at)?,
            scope: parse(
                Scope::parse(self.t_scope.as_deref().unwrap_or_default()),
                "scope",
            )?,
            revoked_at: opt_instant(self.t_closed_at)?,
        };
        Ok((token, grant))
    }
}

fn bytes(h: &TokenHash) -> &[u8] {
    h.as_bytes().as_slice()
}

const INSERT_ACCESS: &str = "INSERT INTO access_tokens (hash, grant_id, issued_at, expires_at, scope, revoked_at) VALUES ($1, $2, $3, $4, $5, $6)";
/// PostgreSQL's rotation when nothing is wrong, in one statement (one round trip instead of
/// five): the old token is marked used only if it is unused and unexpired and its grant is
/// live (every condition of `check_rotate`), and the new tokens are inserted for the grant
/// whose row comes back. No row back means some condition failed: the transaction of
/// [`GrantStore::rotate_refresh_token`] then decides what failed, as it always did. Two
/// concurrent rotations of one token serialise on its row and only one finds it unused.
#[cfg(feature = "postgres")]
fn rotate_pg() -> String {
    format!(
        "WITH used AS ( \
           UPDATE refresh_tokens r SET used_at = $1 FROM grants g \
           WHERE r.hash = $2 AND r.used_at IS NULL AND r.expires_at > $1 \
             AND g.id = r.grant_id AND g.revoked_at IS NULL AND g.expires_at > $1 \
             AND g.id = $3 \
           RETURNING r.grant_id), \
         a AS ( \
           INSERT INTO access_tokens (hash, grant_id, issued_at, expires_at, scope, revoked_at) \
           SELECT $4, grant_id, $5, $6, $7, NULL FROM used), \
         n AS ( \
           INSERT INTO refresh_tokens (hash, grant_id, issued_at, expires_at, used_at) \
           SELECT $8, grant_id, $9, $10, NULL FROM used) \
         SELECT {GRANT_COLUMNS} FROM grants g JOIN used u ON g.id = u.grant_id"
    )
}

/// SQLite's rotation when nothing is wrong: the same conditions in one multi-statement
/// text, run by sqlx's worker thread in one hop inside the `BEGIN IMMEDIATE` transaction
/// (three hops in all instead of six). SQLite has no data-modifying CTE, so each insert
/// runs only if the statement before it changed a row (`changes()`), and the grant comes
/// back only if the last one did.
#[cfg(feature = "sqlite")]
fn rotate_sqlite() -> String {
    format!(
        "UPDATE refresh_tokens SET used_at = $1 \
           WHERE hash = $2 AND used_at IS NULL AND expires_at > $1 AND grant_id = $3 \
             AND EXISTS (SELECT 1 FROM grants g WHERE g.id = $3 \
                         AND g.revoked_at IS NULL AND g.expires_at > $1); \
         INSERT INTO access_tokens (hash, grant_id, issued_at, expires_at, scope, revoked_at) \
           SELECT $4, $3, $5, $6, $7, NULL WHERE changes() = 1; \
         INSERT INTO refresh_tokens (hash, grant_id, issued_at, expires_at, used_at) \
           SELECT $8, $3, $9, $10, NULL WHERE changes() = 1; \
         SELECT {GRANT_COLUMNS} FROM grants g WHERE g.id = $3 AND changes() = 1"
    )
}

const INSERT_REFRESH: &str = "INSERT INTO refresh_tokens (hash, grant_id, issued_at, expires_at, used_at) VALUES ($1, $2, $3, $4, $5)";
const REVOKE_GRANT: &str = "UPDATE grants SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL";

/// Whether a grant live at `$2` holds the access `$1`.
const ACCESS_HELD: &str = "EXISTS (SELECT 1 FROM grants h WHERE h.access_id = $1 AND h.revoked_at IS NULL AND h.expires_at > $2)";

/// Revokes grant `$grant` at `$now` and, in the same transaction, deletes the bank data of
/// its access unless a live grant still holds it.
macro_rules! revoke_with_data {
    ($tx:expr, $grant:expr, $now:expr, $reason:expr) => {{
        let grant: &Grant = $grant;
        let at: Timestamp = $now;
        let now: i64 = micros(at);
        let revoked = sqlx::query(REVOKE_GRANT)
            .bind(now)
            .bind(grant.id.to_string())
            .execute(&mut *$tx)
            .await
            .map_err(db)?
            .rows_affected();
        if revoked == 1 {
            enqueue_in!($tx, &[revocation_event(grant, at, $reason)]);
        }
        sqlx::query(&format!(
            "DELETE FROM transactions WHERE account_id IN (SELECT id FROM accounts WHERE access_id = $1) \
             AND NOT {ACCESS_HELD}"
        ))
        .bind(grant.access_id.as_str())
        .bind(now)
        .execute(&mut *$tx)
        .await
        .map_err(db)?;
        sqlx::query(&format!(
            "DELETE FROM accounts WHERE access_id = $1 AND NOT {ACCESS_HELD}"
        ))
        .bind(grant.access_id.as_str())
        .bind(now)
        .execute(&mut *$tx)
        .await
        .map_err(db)?;
    }};
}

/// The `grant.revoked` event of a grant.
pub(crate) fn revocation_event(grant: &Grant, now: Timestamp, reason: RevokeReason) -> Event {
    Event {
        id: Event::revocation_id(grant.id),
        client_id: grant.client_id.clone(),
        at: now,
        data: EventData::GrantRevoked {
            flow_id: grant.flow_id,
            access_id: grant.access_id.clone(),
            reason,
        },
    }
}

/// Inserts issued tokens on the given executor (a transaction).
macro_rules! insert_tokens {
    ($tx:expr, $tokens:expr) => {{
        let t: &IssuedTokens = $tokens;
        sqlx::query(INSERT_ACCESS)
            .bind(bytes(&t.access.hash))
            .bind(t.access.grant_id.to_string())
            .bind(micros(t.access.issued_at))
            .bind(micros(t.access.expires_at))
            .bind(t.access.scope.to_string())
            .bind(t.access.revoked_at.map(micros))
            .execute(&mut *$tx)
            .await
            .map_err(db)?;
        if let Some(r) = &t.refresh {
            sqlx::query(INSERT_REFRESH)
                .bind(bytes(&r.hash))
                .bind(r.grant_id.to_string())
                .bind(micros(r.issued_at))
                .bind(micros(r.expires_at))
                .bind(r.used_at.map(micros))
                .execute(&mut *$tx)
                .await
                .map_err(db)?;
        }
    }};
}

impl SqlStore {
    /// The rotation when nothing is wrong, in as few round trips as the database allows
    /// ([`rotate_pg`], [`rotate_sqlite`]): the grant when it rotated; `None` when some
    /// condition failed and nothing was written, for the full transaction to say which.
    async fn rotate_fast(
        &self,
        old: &TokenHash,
        now: Timestamp,
        tokens: &IssuedTokens,
    ) -> Result<Option<Grant>, StoreError> {
        let grant_id = tokens.access.grant_id;
        let Some(refresh) = tokens.refresh.as_ref().filter(|r| {
            r.used_at.is_none() && r.grant_id == grant_id && tokens.access.revoked_at.is_none()
        }) else {
            return Ok(None);
        };
        macro_rules! bound {
            ($sql:expr) => {
                sqlx::query_as::<_, GrantRow>($sql)
                    .bind(micros(now))
                    .bind(bytes(old))
                    .bind(grant_id.to_string())
                    .bind(bytes(&tokens.access.hash))
                    .bind(micros(tokens.access.issued_at))
                    .bind(micros(tokens.access.expires_at))
                    .bind(tokens.access.scope.to_string())
                    .bind(bytes(&refresh.hash))
                    .bind(micros(refresh.issued_at))
                    .bind(micros(refresh.expires_at))
            };
        }
        let row = match &self.backend {
            #[cfg(feature = "postgres")]
            Backend::Postgres(pool) => bound!(&rotate_pg())
                .fetch_optional(pool)
                .await
                .map_err(db)?,
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(pool) => {
                let mut tx = pool.begin_write(self).await.map_err(db)?;
                match bound!(&rotate_sqlite()).fetch_optional(&mut *tx).await {
                    Ok(Some(row)) => {
                        tx.commit().await.map_err(db)?;
                        Some(row)
                    }
                    Ok(None) => {
                        tx.rollback().await.map_err(db)?;
                        None
                    }
                    Err(e) => {
                        let _ = tx.rollback().await;
                        return Err(db(e));
                    }
                }
            }
            #[allow(unreachable_patterns)]
            _ => unreachable!("a database this build left out has no value"),
        };
        row.map(GrantRow::into_grant).transpose()
    }

    /// Refreshes the query planner's statistics (`ANALYZE`), as after any bulk load: until
    /// then PostgreSQL plans a page of a freshly imported history as if the account held a
    /// few rows (a bitmap scan and a sort of all of them instead of the index's order).
    ///
    /// # Errors
    /// When the store fails.
    pub async fn analyze(&self) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            sqlx::query("ANALYZE").execute(pool).await.map_err(db)?;
        });
        Ok(())
    }

    /// Bulk load of grants already redeemed (benchmarks, migrations from another system):
    /// each grant with its used code and its tokens, as [`GrantStore::insert_grant`] then
    /// [`GrantStore::redeem_code`] would leave them, up to 500 rows per statement and one
    /// transaction per call, without their checks.
    ///
    /// # Errors
    /// When the store fails (an id or hash that exists fails the whole call).
    pub async fn import_grants(
        &self,
        grants: &[(Grant, CodeRecord, IssuedTokens)],
    ) -> Result<(), StoreError> {
        let mut accounts = Vec::with_capacity(grants.len());
        for (g, _, _) in grants {
            let ids: Vec<&str> = g.account_ids.iter().map(AccountId::as_str).collect();
            accounts.push(json(&ids)?);
        }
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write(self).await.map_err(db)?;
            for (chunk, accounts) in grants.chunks(500).zip(accounts.chunks(500)) {
                let mut b = sqlx::QueryBuilder::new(
                    "INSERT INTO grants (id, client_id, flow_id, access_id, account_ids, scope, redirect_uri, created_at, revoked_at, expires_at, language) ",
                );
                b.push_values(chunk.iter().zip(accounts), |mut r, ((g, _, _), a)| {
                    r.push_bind(g.id.to_string())
                        .push_bind(g.client_id.as_str().to_owned())
                        .push_bind(g.flow_id.to_string())
                        .push_bind(g.access_id.as_str().to_owned())
                        .push_bind(a.clone())
                        .push_bind(g.scope.to_string())
                        .push_bind(g.redirect_uri.as_str().to_owned())
                        .push_bind(micros(g.created_at))
                        .push_bind(g.revoked_at.map(micros))
                        .push_bind(micros(g.expires_at))
                        .push_bind(g.language.code());
                });
                b.build().execute(&mut *tx).await.map_err(db)?;
                let mut b = sqlx::QueryBuilder::new(
                    "INSERT INTO codes (hash, grant_id, issued_at, expires_at, used_at) ",
                );
                b.push_values(chunk, |mut r, (_, c, _)| {
                    r.push_bind(bytes(&c.hash).to_vec())
                        .push_bind(c.grant_id.to_string())
                        .push_bind(micros(c.issued_at))
                        .push_bind(micros(c.expires_at))
                        .push_bind(Some(micros(c.issued_at)));
                });
                b.build().execute(&mut *tx).await.map_err(db)?;
                let mut b = sqlx::QueryBuilder::new(
                    "INSERT INTO access_tokens (hash, grant_id, issued_at, expires_at, scope, revoked_at) ",
                );
                b.push_values(chunk, |mut r, (_, _, t)| {
                    r.push_bind(bytes(&t.access.hash).to_vec())
                        .push_bind(t.access.grant_id.to_string())
                        .push_bind(micros(t.access.issued_at))
                        .push_bind(micros(t.access.expires_at))
                        .push_bind(t.access.scope.to_string())
                        .push_bind(t.access.revoked_at.map(micros));
                });
                b.build().execute(&mut *tx).await.map_err(db)?;
                let refresh: Vec<&RefreshTokenRecord> = chunk
                    .iter()
                    .filter_map(|(_, _, t)| t.refresh.as_ref())
                    .collect();
                if !refresh.is_empty() {
                    let mut b = sqlx::QueryBuilder::new(
                        "INSERT INTO refresh_tokens (hash, grant_id, issued_at, expires_at, used_at) ",
                    );
                    b.push_values(refresh, |mut r, t| {
                        r.push_bind(bytes(&t.hash).to_vec())
                            .push_bind(t.grant_id.to_string())
                            .push_bind(micros(t.issued_at))
                            .push_bind(micros(t.expires_at))
                            .push_bind(t.used_at.map(micros));
                    });
                    b.build().execute(&mut *tx).await.map_err(db)?;
                }
            }
            tx.commit().await.map_err(db)?;
        });
        Ok(())
    }
}

#[async_trait]
impl GrantStore for SqlStore {
    async fn insert_grant(&self, grant: &Grant, code: &CodeRecord) -> Result<(), StoreError> {
        let accounts: Vec<&str> = grant.account_ids.iter().map(AccountId::as_str).collect();
        let accounts = json(&accounts)?;
        let verification = grant
            .verification
            .as_ref()
            .map(|v| json(&crate::codec::VerificationDoc::of(v)))
            .transpose()?;
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write(self).await.map_err(db)?;
            sqlx::query(
                "INSERT INTO grants (id, client_id, flow_id, access_id, account_ids, scope, redirect_uri, created_at, revoked_at, expires_at, language, verification) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(grant.id.to_string())
            .bind(grant.client_id.as_str())
            .bind(grant.flow_id.to_string())
            .bind(grant.access_id.as_str())
            .bind(&accounts)
            .bind(grant.scope.to_string())
            .bind(grant.redirect_uri.as_str())
            .bind(micros(grant.created_at))
            .bind(grant.revoked_at.map(micros))
            .bind(micros(grant.expires_at))
            .bind(grant.language.code())
            .bind(&verification)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            sqlx::query("INSERT INTO codes (hash, grant_id, issued_at, expires_at, used_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(bytes(&code.hash))
                .bind(code.grant_id.to_string())
                .bind(micros(code.issued_at))
                .bind(micros(code.expires_at))
                .bind(code.used_at.map(micros))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
        });
        Ok(())
    }

    async fn find_code(&self, code: &TokenHash) -> Result<Option<(CodeRecord, Grant)>, StoreError> {
        let row: Option<CredentialRow> = on_pool!(self, |pool| sqlx::query_as(&select_code())
            .bind(bytes(code))
            .fetch_optional(pool)
            .await
            .map_err(db)?);
        row.map(CredentialRow::code).transpose()
    }

    async fn redeem_code(
        &self,
        code: &TokenHash,
        now: Timestamp,
        tokens: &IssuedTokens,
    ) -> Result<Grant, RedeemFailure> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write(self).await.map_err(db)?;
            let row: Option<CredentialRow> = sqlx::query_as(&select_code())
                .bind(bytes(code))
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            let (record, grant) = row.ok_or(RedeemError::NotFound)?.code()?;
            let checked = check_redeem(&record, &grant, now);
            let won = checked.is_ok()
                && sqlx::query("UPDATE codes SET used_at = $1 WHERE hash = $2 AND used_at IS NULL")
                    .bind(micros(now))
                    .bind(bytes(code))
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?
                    .rows_affected()
                    == 1;
            if !won {
                return match checked {
                    // Used before, or by a concurrent caller just now: a replay.
                    Ok(()) | Err(RedeemError::AlreadyUsed { .. }) => {
                        revoke_with_data!(tx, &grant, now, RevokeReason::TokenReuse);
                        tx.commit().await.map_err(db)?;
                        Err(RedeemError::AlreadyUsed { grant_id: grant.id }.into())
                    }
                    Err(e) => Err(e.into()),
                };
            }
            insert_tokens!(tx, tokens);
            tx.commit().await.map_err(db)?;
            Ok(grant)
        })
    }

    async fn find_refresh_token(
        &self,
        token: &TokenHash,
    ) -> Result<Option<(RefreshTokenRecord, Grant)>, StoreError> {
        let row: Option<CredentialRow> = on_pool!(self, |pool| {
            sqlx::query_as(&select_refresh())
                .bind(bytes(token))
                .fetch_optional(pool)
                .await
                .map_err(db)?
        });
        row.map(CredentialRow::refresh).transpose()
    }

    async fn rotate_refresh_token(
        &self,
        old: &TokenHash,
        now: Timestamp,
        tokens: &IssuedTokens,
    ) -> Result<Grant, RotateFailure> {
        if let Some(grant) = self.rotate_fast(old, now, tokens).await? {
            return Ok(grant);
        }
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write(self).await.map_err(db)?;
            let row: Option<CredentialRow> = sqlx::query_as(&select_refresh())
                .bind(bytes(old))
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            let (record, grant) = row.ok_or(RotateError::NotFound)?.refresh()?;
            let checked = check_rotate(&record, &grant, now);
            let won = checked.is_ok()
                && sqlx::query(
                    "UPDATE refresh_tokens SET used_at = $1 WHERE hash = $2 AND used_at IS NULL",
                )
                .bind(micros(now))
                .bind(bytes(old))
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .rows_affected()
                    == 1;
            if !won {
                return match checked {
                    Ok(()) | Err(RotateError::Reused { .. }) => {
                        revoke_with_data!(tx, &grant, now, RevokeReason::TokenReuse);
                        tx.commit().await.map_err(db)?;
                        Err(RotateError::Reused { grant_id: grant.id }.into())
                    }
                    Err(e) => Err(e.into()),
                };
            }
            insert_tokens!(tx, tokens);
            tx.commit().await.map_err(db)?;
            Ok(grant)
        })
    }

    async fn find_access_token(
        &self,
        token: &TokenHash,
    ) -> Result<Option<(AccessTokenRecord, Grant)>, StoreError> {
        let row: Option<CredentialRow> = on_pool!(self, |pool| {
            sqlx::query_as(&select_access())
                .bind(bytes(token))
                .fetch_optional(pool)
                .await
                .map_err(db)?
        });
        row.map(CredentialRow::access).transpose()
    }

    async fn find_grant(&self, id: GrantId) -> Result<Option<Grant>, StoreError> {
        let row: Option<GrantRow> = on_pool!(self, |pool| {
            sqlx::query_as(&format!(
                "SELECT {GRANT_COLUMNS} FROM grants g WHERE g.id = $1"
            ))
            .bind(id.to_string())
            .fetch_optional(pool)
            .await
            .map_err(db)?
        });
        row.map(GrantRow::into_grant).transpose()
    }

    async fn client_grants(&self, client: &ClientId) -> Result<Vec<GrantId>, StoreError> {
        let ids: Vec<String> = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT id FROM grants WHERE client_id = $1 AND revoked_at IS NULL")
                .bind(client.as_str())
                .fetch_all(pool)
                .await
                .map_err(db)?
        });
        ids.iter()
            .map(|id| parse(GrantId::parse(id), "grant id"))
            .collect()
    }

    async fn revoke_grant(
        &self,
        id: GrantId,
        now: Timestamp,
        reason: RevokeReason,
    ) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write(self).await.map_err(db)?;
            let row: Option<GrantRow> = sqlx::query_as(&format!(
                "SELECT {GRANT_COLUMNS} FROM grants g WHERE g.id = $1"
            ))
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
            if let Some(row) = row {
                let grant = row.into_grant()?;
                revoke_with_data!(tx, &grant, now, reason);
            }
            tx.commit().await.map_err(db)?;
        });
        Ok(())
    }

    async fn revoke_access_token(
        &self,
        token: &TokenHash,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write(self).await.map_err(db)?;
            let row: Option<CredentialRow> = sqlx::query_as(&select_access())
                .bind(bytes(token))
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            let Some(row) = row else { return Ok(false) };
            let (record, grant) = row.access()?;
            let revoked = sqlx::query(
                "UPDATE access_tokens SET revoked_at = $1 WHERE hash = $2 AND revoked_at IS NULL",
            )
            .bind(micros(now))
            .bind(bytes(token))
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected()
                == 1;
            tx.commit().await.map_err(db)?;
            Ok(revoked && !grant.is_revoked() && now < record.expires_at)
        })
    }

    async fn add_access_token(
        &self,
        token: &AccessTokenRecord,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.add_access_token_row(token, now).await
    }

    async fn insert_upload(&self, upload: &finx_domain::upload::Upload) -> Result<(), StoreError> {
        self.insert_upload_row(upload).await
    }

    async fn find_upload(
        &self,
        id: finx_domain::ids::UploadId,
    ) -> Result<Option<finx_domain::upload::Upload>, StoreError> {
        self.find_upload_row(id).await
    }

    async fn update_upload(
        &self,
        upload: &finx_domain::upload::Upload,
    ) -> Result<bool, StoreError> {
        self.update_upload_row(upload).await
    }

    async fn purge(
        &self,
        before: Timestamp,
        orphaned_before: Timestamp,
    ) -> Result<PurgeReport, StoreError> {
        let t = micros(before);
        let orphaned = micros(orphaned_before);
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write(self).await.map_err(db)?;
            let access_tokens = sqlx::query("DELETE FROM access_tokens WHERE expires_at <= $1")
                .bind(t)
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .rows_affected();
            // Used refresh tokens go only when they expire themselves: until then a replay
            // must still be recognised as reuse.
            let refresh_tokens = sqlx::query("DELETE FROM refresh_tokens WHERE expires_at <= $1")
                .bind(t)
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .rows_affected();
            // A grant past its absolute end goes with every credential (ON DELETE CASCADE);
            // so does one whose code expired and that holds no token any more: it is dead.
            let grants = sqlx::query(
                "DELETE FROM grants WHERE expires_at <= $1 OR (id IN (SELECT grant_id FROM codes WHERE expires_at <= $1) \
                 AND NOT EXISTS (SELECT 1 FROM access_tokens a WHERE a.grant_id = grants.id) \
                 AND NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.grant_id = grants.id))",
            )
            .bind(t)
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
            // Bank data that no live grant holds, once older than a flow still fetching.
            let orphan = "SELECT o.id FROM accounts o WHERE o.synced_at <= $2 AND NOT EXISTS \
                 (SELECT 1 FROM grants h WHERE h.access_id = o.access_id AND h.revoked_at IS NULL AND h.expires_at > $1)";
            sqlx::query(&format!(
                "DELETE FROM transactions WHERE account_id IN ({orphan})"
            ))
            .bind(t)
            .bind(orphaned)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            let accounts = sqlx::query(&format!("DELETE FROM accounts WHERE id IN ({orphan})"))
                .bind(t)
                .bind(orphaned)
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .rows_affected();
            // The feed's removals and counters of accounts that are gone.
            sqlx::query(
                "DELETE FROM removed_transactions WHERE NOT EXISTS \
                 (SELECT 1 FROM accounts a WHERE a.id = removed_transactions.account_id)",
            )
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            sqlx::query(
                "DELETE FROM access_seqs WHERE NOT EXISTS \
                 (SELECT 1 FROM accounts a WHERE a.access_id = access_seqs.access_id)",
            )
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            let uploads = sqlx::query("DELETE FROM uploads WHERE expires_at <= $1")
                .bind(t)
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .rows_affected();
            tx.commit().await.map_err(db)?;
            Ok(PurgeReport {
                grants,
                accounts,
                codes: grants,
                access_tokens,
                refresh_tokens,
                flows: 0,
                accesses: 0,
                webhooks: 0,
                uploads,
            })
        })
    }
}
