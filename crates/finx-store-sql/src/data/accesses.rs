//! `AccessStore` on SQL. An access is a row with its details in a JSON document (the bank
//! session sealed under the data key, bound to the access id); updates are a
//! compare-and-swap on `version`. Jobs are rows: a claim is one `UPDATE … RETURNING` over the
//! due rows, on PostgreSQL with `FOR UPDATE SKIP LOCKED` so that instances claim disjoint
//! jobs without waiting on one another; on SQLite the one writer does it. Finishing a job
//! checks the claim (same attempt, still running), replaces the access, writes the bank
//! data and ends the job in one transaction: after a crash either all of it is visible or
//! none.

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::TimeDelta;
use finx_domain::access::{
    Access, Claim, JobKind, JobStatus, SyncCounts, SyncFailure, SyncJob, UserId,
};
use finx_domain::bank::{Account, TransactionDetails};
use finx_domain::flow::BankSession;
use finx_domain::ids::{
    AccessId, AccountId, ClientId, FlowId, GrantId, InstitutionId, SyncId, TransactionId,
};
use finx_domain::schedule::SyncLedger;
use finx_domain::values::SyncPeriod;
use finx_domain::webhook::{Event, EventData, RevokeReason};
use finx_domain::{Date, Timestamp};
use finx_ports::{AccessStore, JobOutcome, StoreError, SyncReport};
use serde::{Deserialize, Serialize};

use crate::codec::{
    AccountDoc, docs, from_json, instant, json, micros, opt_instant, parse, to_minor, undoc,
};
use crate::sca_doc::ConsentDoc;
use crate::seal::DataKey;
use crate::webhooks::enqueue_in;
use crate::{SqlStore, WritePool, corrupt, db, on_pool};

use super::{
    ACCOUNT_COLUMNS, TRANSACTION_COLUMNS, TransactionRow, UPSERT_TRANSACTION, balance_status,
};

/// Everything of an access that has no column of its own.
#[derive(Serialize, Deserialize)]
struct AccessDoc {
    institution: String,
    /// Sealed under the data key, bound to the access id.
    session: String,
    consent: ConsentDoc,
    accounts: Vec<AccountDoc>,
    sync_period: u16,
    ledger_day: String,
    ledger_used: u16,
    not_before: Option<i64>,
    synced_at: Option<i64>,
    last_booked: Option<String>,
    last_error: Option<String>,
}

fn date(text: &str) -> Result<Date, StoreError> {
    Date::parse_from_str(text, "%Y-%m-%d").map_err(|_| corrupt("access date"))
}

impl AccessDoc {
    fn of(a: &Access, key: &DataKey) -> Result<Self, StoreError> {
        Ok(Self {
            institution: a.institution.to_string(),
            session: key.seal(a.session.expose(), a.id.as_str())?,
            consent: ConsentDoc::of(&a.consent),
            accounts: docs(&a.accounts),
            sync_period: a.sync_period.days(),
            ledger_day: a.ledger.day.format("%Y-%m-%d").to_string(),
            ledger_used: a.ledger.used,
            not_before: a.ledger.not_before.map(micros),
            synced_at: a.synced_at.map(micros),
            last_booked: a.last_booked.map(|d| d.format("%Y-%m-%d").to_string()),
            last_error: a.last_error.map(|e| e.as_str().to_owned()),
        })
    }
}

#[derive(sqlx::FromRow)]
struct AccessRow {
    id: String,
    client_id: String,
    user_id: String,
    version: i64,
    created_at: i64,
    document: String,
}

const ACCESS_COLUMNS: &str = "id, client_id, user_id, version, created_at, document";

impl AccessRow {
    fn into_access(self, key: &DataKey) -> Result<Access, StoreError> {
        let d: AccessDoc = from_json(&self.document, "access document")?;
        Ok(Access {
            session: BankSession::new(key.open(&d.session, &self.id)?),
            id: parse(AccessId::parse(&self.id), "access id")?,
            client_id: parse(ClientId::parse(&self.client_id), "client id")?,
            user_id: parse(UserId::parse(&self.user_id), "user id")?,
            institution: parse(InstitutionId::parse(&d.institution), "institution id")?,
            consent: d.consent.into_domain()?,
            accounts: undoc(d.accounts)?,
            sync_period: parse(SyncPeriod::new(i64::from(d.sync_period)), "sync period")?,
            ledger: SyncLedger {
                day: date(&d.ledger_day)?,
                used: d.ledger_used,
                not_before: opt_instant(d.not_before)?,
            },
            synced_at: opt_instant(d.synced_at)?,
            last_booked: d.last_booked.as_deref().map(date).transpose()?,
            last_error: d
                .last_error
                .as_deref()
                .map(|e| SyncFailure::parse(e).ok_or_else(|| corrupt("sync failure")))
                .transpose()?,
            created_at: instant(self.created_at)?,
            version: u64::try_from(self.version).map_err(|_| corrupt("access version"))?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: String,
    access_id: String,
    kind: String,
    status: String,
    run_at: i64,
    attempt: i64,
    lease_until: Option<i64>,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    added: Option<i64>,
    modified: Option<i64>,
    removed: Option<i64>,
    error: Option<String>,
}

const JOB_COLUMNS: &str = "id, access_id, kind, status, run_at, attempt, lease_until, created_at, \
                           started_at, finished_at, added, modified, removed, error";

impl JobRow {
    fn into_job(self) -> Result<SyncJob, StoreError> {
        let count = |n: Option<i64>| n.map(|n| u64::try_from(n).unwrap_or(0));
        Ok(SyncJob {
            id: parse(SyncId::parse(&self.id), "sync id")?,
            access_id: parse(AccessId::parse(&self.access_id), "access id")?,
            kind: JobKind::parse(&self.kind).ok_or_else(|| corrupt("job kind"))?,
            status: JobStatus::parse(&self.status).ok_or_else(|| corrupt("job status"))?,
            run_at: instant(self.run_at)?,
            attempt: u32::try_from(self.attempt).map_err(|_| corrupt("job attempt"))?,
            lease_until: opt_instant(self.lease_until)?,
            created_at: instant(self.created_at)?,
            started_at: opt_instant(self.started_at)?,
            finished_at: opt_instant(self.finished_at)?,
            counts: match (count(self.added), count(self.modified), count(self.removed)) {
                (Some(added), Some(modified), Some(removed)) => Some(SyncCounts {
                    added,
                    modified,
                    removed,
                }),
                _ => None,
            },
            error: self
                .error
                .as_deref()
                .map(|e| SyncFailure::parse(e).ok_or_else(|| corrupt("sync failure")))
                .transpose()?,
        })
    }
}

fn version(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| corrupt("access version"))
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Inserts job `$job` on the executor `$exec`.
macro_rules! insert_job {
    ($exec:expr, $job:expr) => {{
        let j: &SyncJob = $job;
        sqlx::query(&format!(
            "INSERT INTO sync_jobs ({JOB_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ))
        .bind(j.id.to_string())
        .bind(j.access_id.as_str())
        .bind(j.kind.as_str())
        .bind(j.status.as_str())
        .bind(micros(j.run_at))
        .bind(i64::from(j.attempt))
        .bind(j.lease_until.map(micros))
        .bind(micros(j.created_at))
        .bind(j.started_at.map(micros))
        .bind(j.finished_at.map(micros))
        .bind(j.counts.map(|c| signed(c.added)))
        .bind(j.counts.map(|c| signed(c.modified)))
        .bind(j.counts.map(|c| signed(c.removed)))
        .bind(j.error.map(|e| e.as_str()))
        .execute($exec)
        .await
        .map_err(db)?;
    }};
}

/// Replaces access `$access` on `$exec` if its version is `$expected`; conflict otherwise.
macro_rules! swap_access {
    ($exec:expr, $store:expr, $access:expr, $expected:expr) => {{
        let a: &Access = $access;
        let doc = json(&AccessDoc::of(a, &$store.data_key)?)?;
        let n = sqlx::query(
            "UPDATE accesses SET version = $1, document = $2 WHERE id = $3 AND version = $4",
        )
        .bind(version(a.version)?)
        .bind(&doc)
        .bind(a.id.as_str())
        .bind(version($expected)?)
        .execute($exec)
        .await
        .map_err(db)?
        .rows_affected();
        if n != 1 {
            return Err(StoreError::Conflict("access changed meanwhile"));
        }
    }};
}

impl SqlStore {
    /// Applies `set` (with `$1` bound to `at`) to a claimed job if the claim still holds
    /// (the same attempt, still running); returns whether it did.
    async fn update_claimed(
        &self,
        claim: Claim,
        set: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE sync_jobs SET {set} WHERE id = $2 AND attempt = $3 AND status = 'running'"
        );
        let n = on_pool!(self, |pool| {
            let mut tx = pool.begin_write(self).await.map_err(db)?;
            let n = sqlx::query(&sql)
                .bind(micros(at))
                .bind(claim.job.to_string())
                .bind(i64::from(claim.attempt))
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .rows_affected();
            tx.commit().await.map_err(db)?;
            n
        });
        Ok(n == 1)
    }
}

#[async_trait]
impl AccessStore for SqlStore {
    async fn insert_access(&self, access: &Access, first: &SyncJob) -> Result<(), StoreError> {
        let doc = json(&AccessDoc::of(access, &self.data_key)?)?;
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write(self).await.map_err(db)?;
            sqlx::query(&format!(
                "INSERT INTO accesses ({ACCESS_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
            ))
            .bind(access.id.as_str())
            .bind(access.client_id.as_str())
            .bind(access.user_id.as_str())
            .bind(version(access.version)?)
            .bind(micros(access.created_at))
            .bind(&doc)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            insert_job!(&mut *tx, first);
            tx.commit().await.map_err(db)?;
        });
        Ok(())
    }

    async fn find_access(&self, id: &AccessId) -> Result<Option<Access>, StoreError> {
        let row: Option<AccessRow> = on_pool!(self, |pool| {
            sqlx::query_as(&format!(
                "SELECT {ACCESS_COLUMNS} FROM accesses WHERE id = $1"
            ))
            .bind(id.as_str())
            .fetch_optional(pool)
            .await
            .map_err(db)?
        });
        row.map(|r| r.into_access(&self.data_key)).transpose()
    }

    async fn client_accesses(&self, client: &ClientId) -> Result<Vec<Access>, StoreError> {
        let rows: Vec<AccessRow> = on_pool!(self, |pool| {
            sqlx::query_as(&format!(
                "SELECT {ACCESS_COLUMNS} FROM accesses WHERE client_id = $1"
            ))
            .bind(client.as_str())
            .fetch_all(pool)
            .await
            .map_err(db)?
        });
        rows.into_iter()
            .map(|r| r.into_access(&self.data_key))
            .collect()
    }

    async fn list_accesses(
        &self,
        client: &ClientId,
        user: &UserId,
    ) -> Result<Vec<Access>, StoreError> {
        let rows: Vec<AccessRow> = on_pool!(self, |pool| {
            sqlx::query_as(&format!(
                "SELECT {ACCESS_COLUMNS} FROM accesses WHERE client_id = $1 AND user_id = $2 \
                 ORDER BY created_at, id"
            ))
            .bind(client.as_str())
            .bind(user.as_str())
            .fetch_all(pool)
            .await
            .map_err(db)?
        });
        rows.into_iter()
            .map(|r| r.into_access(&self.data_key))
            .collect()
    }

    async fn update_access(
        &self,
        access: &Access,
        expected_version: u64,
        job: Option<SyncJob>,
    ) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write(self).await.map_err(db)?;
            swap_access!(&mut *tx, self, access, expected_version);
            if let Some(j) = &job {
                insert_job!(&mut *tx, j);
            }
            tx.commit().await.map_err(db)?;
        });
        Ok(())
    }

    async fn delete_access_record(
        &self,
        id: &AccessId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write(self).await.map_err(db)?;
            // In the order a finishing sync locks (its job, then the access, then the data),
            // so the two never deadlock; the jobs again at the end, for one a sync or a
            // manual request committed while this waited for the access.
            let jobs = "DELETE FROM sync_jobs WHERE access_id = $1";
            sqlx::query(jobs)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            let n = sqlx::query("DELETE FROM accesses WHERE id = $1")
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .rows_affected();
            let revoked: Vec<(String, String, String)> = sqlx::query_as(
                "UPDATE grants SET revoked_at = $1 WHERE access_id = $2 AND revoked_at IS NULL \
                 RETURNING id, client_id, flow_id",
            )
            .bind(micros(now))
            .bind(id.as_str())
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
            let mut events = Vec::with_capacity(revoked.len());
            for (grant, client, flow) in revoked {
                let grant = parse(GrantId::parse(&grant), "grant id")?;
                events.push(Event {
                    id: Event::revocation_id(grant),
                    client_id: parse(ClientId::parse(&client), "client id")?,
                    at: now,
                    data: EventData::GrantRevoked {
                        flow_id: parse(FlowId::parse(&flow), "flow id")?,
                        access_id: id.clone(),
                        reason: RevokeReason::Revoked,
                    },
                });
            }
            enqueue_in!(tx, &events);
            sqlx::query("DELETE FROM transactions WHERE account_id IN (SELECT id FROM accounts WHERE access_id = $1)")
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            sqlx::query("DELETE FROM accounts WHERE access_id = $1")
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            sqlx::query(jobs)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            Ok(n == 1)
        })
    }

    async fn find_job(&self, id: SyncId) -> Result<Option<SyncJob>, StoreError> {
        let row: Option<JobRow> = on_pool!(self, |pool| {
            sqlx::query_as(&format!(
                "SELECT {JOB_COLUMNS} FROM sync_jobs WHERE id = $1"
            ))
            .bind(id.to_string())
            .fetch_optional(pool)
            .await
            .map_err(db)?
        });
        row.map(JobRow::into_job).transpose()
    }

    async fn pending_jobs(&self, access: &AccessId) -> Result<Vec<SyncJob>, StoreError> {
        let rows: Vec<JobRow> = on_pool!(self, |pool| {
            sqlx::query_as(&format!(
                "SELECT {JOB_COLUMNS} FROM sync_jobs WHERE access_id = $1 \
                 AND status IN ('queued', 'running') ORDER BY run_at, id"
            ))
            .bind(access.as_str())
            .fetch_all(pool)
            .await
            .map_err(db)?
        });
        rows.into_iter().map(JobRow::into_job).collect()
    }

    async fn claim_jobs(
        &self,
        now: Timestamp,
        lease: TimeDelta,
        limit: u32,
    ) -> Result<Vec<SyncJob>, StoreError> {
        // Not a job whose access has another sync running under a live lease. The queued
        // and the taken-over branch each walk their index in order and stop at `limit` (one
        // condition with OR made the database scan and sort every due job for each claim:
        // quadratic in a burst of due syncs), then the earliest `limit` of both are claimed.
        let lock = match self.kind() {
            "postgres" => " FOR UPDATE SKIP LOCKED",
            _ => "",
        };
        let free = "NOT EXISTS (SELECT 1 FROM sync_jobs r WHERE r.access_id = j.access_id \
                    AND r.id <> j.id AND r.status = 'running' AND r.lease_until >= $1)";
        let due = format!(
            "SELECT id FROM (\
             SELECT * FROM (SELECT j.id, j.run_at FROM sync_jobs j WHERE j.status = 'queued' \
             AND j.run_at <= $1 AND {free} ORDER BY j.run_at LIMIT $3{lock}) queued \
             UNION ALL \
             SELECT * FROM (SELECT j.id, j.run_at FROM sync_jobs j WHERE j.status = 'running' \
             AND j.lease_until < $1 AND {free} ORDER BY j.run_at LIMIT $3{lock}) taken\
             ) due ORDER BY run_at LIMIT $3"
        );
        let sql = format!(
            "UPDATE sync_jobs SET status = 'running', attempt = attempt + 1, lease_until = $2, \
             started_at = $1 WHERE id IN ({due}) RETURNING {JOB_COLUMNS}"
        );
        let rows: Vec<JobRow> = on_pool!(self, |pool| {
            let mut tx = pool.begin_write(self).await.map_err(db)?;
            let rows = sqlx::query_as(&sql)
                .bind(micros(now))
                .bind(micros(now + lease))
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            rows
        });
        let mut jobs = rows
            .into_iter()
            .map(JobRow::into_job)
            .collect::<Result<Vec<_>, _>>()?;
        jobs.sort_by_key(|j| (j.run_at, j.id));
        Ok(jobs)
    }

    async fn finish_job(
        &self,
        claim: Claim,
        outcome: &JobOutcome,
        access: &Access,
        expected_version: u64,
        next: Option<SyncJob>,
    ) -> Result<SyncReport, StoreError> {
        let now = outcome.finished_at;
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write(self).await.map_err(db)?;
            // Lock the job row and check the claim first: a runner that lost it writes nothing.
            let held = sqlx::query(
                "UPDATE sync_jobs SET lease_until = lease_until WHERE id = $1 AND attempt = $2 \
                 AND status = 'running'",
            )
            .bind(claim.job.to_string())
            .bind(i64::from(claim.attempt))
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
            if held != 1 {
                return Err(StoreError::Conflict("the claim no longer holds"));
            }
            swap_access!(&mut *tx, self, access, expected_version);
            let mut report = SyncReport::default();
            for s in &outcome.accounts {
                upsert_account_on!(&mut *tx, &s.account);
                let id: &AccountId = &s.account.id;
                let txs: &[TransactionDetails] = &s.transactions;
                let r = reconcile_in!(tx, id, txs, s.window_from, now);
                report.inserted += r.inserted;
                report.updated += r.updated;
                report.removed += r.removed;
            }
            let succeeded = outcome.status == JobStatus::Succeeded;
            sqlx::query(
                "UPDATE sync_jobs SET status = $1, finished_at = $2, lease_until = NULL, added = $3, \
                 modified = $4, removed = $5, error = $6 WHERE id = $7",
            )
            .bind(outcome.status.as_str())
            .bind(micros(now))
            .bind(succeeded.then_some(signed(report.inserted)))
            .bind(succeeded.then_some(signed(report.updated)))
            .bind(succeeded.then_some(signed(report.removed)))
            .bind(outcome.error.map(|e| e.as_str()))
            .bind(claim.job.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            if let Some(n) = &next {
                insert_job!(&mut *tx, n);
            }
            let counts = SyncCounts {
                added: report.inserted,
                modified: report.updated,
                removed: report.removed,
            };
            let events: Vec<Event> = outcome
                .events
                .iter()
                .map(|e| e.clone().with_counts(counts))
                .collect();
            enqueue_in!(tx, &events);
            tx.commit().await.map_err(db)?;
            Ok(report)
        })
    }

    async fn extend_lease(&self, claim: Claim, until: Timestamp) -> Result<bool, StoreError> {
        self.update_claimed(claim, "lease_until = $1", until).await
    }

    async fn requeue_job(&self, claim: Claim, run_at: Timestamp) -> Result<bool, StoreError> {
        self.update_claimed(
            claim,
            "status = 'queued', lease_until = NULL, run_at = $1",
            run_at,
        )
        .await
    }

    async fn access_held(&self, id: &AccessId, now: Timestamp) -> Result<bool, StoreError> {
        let found = on_pool!(self, |pool| {
            sqlx::query(
                "SELECT 1 FROM grants WHERE access_id = $1 AND revoked_at IS NULL AND expires_at > $2 LIMIT 1",
            )
            .bind(id.as_str())
            .bind(micros(now))
            .fetch_optional(pool)
            .await
            .map_err(db)?
            .is_some()
        });
        Ok(found)
    }

    async fn orphaned_accesses(
        &self,
        now: Timestamp,
        before: Timestamp,
        limit: u32,
    ) -> Result<Vec<Access>, StoreError> {
        let rows: Vec<AccessRow> = on_pool!(self, |pool| {
            sqlx::query_as(&format!(
                "SELECT {ACCESS_COLUMNS} FROM accesses a WHERE a.created_at < $2 AND NOT EXISTS \
                 (SELECT 1 FROM grants g WHERE g.access_id = a.id AND g.revoked_at IS NULL AND g.expires_at > $1) \
                 ORDER BY a.id LIMIT $3"
            ))
            .bind(micros(now))
            .bind(micros(before))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(db)?
        });
        rows.into_iter()
            .map(|r| r.into_access(&self.data_key))
            .collect()
    }
}
