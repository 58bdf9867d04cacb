//! `AccessStore` in memory: accesses and jobs behind one lock, taken after the grants' lock
//! and before the bank data's, so every multi-part change is one step.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::TimeDelta;
use finx_domain::Timestamp;
use finx_domain::access::{Access, Claim, JobStatus, SyncJob, UserId};
use finx_domain::ids::{AccessId, ClientId, SyncId};
use finx_ports::{AccessStore, JobOutcome, StoreError, SyncReport};

use crate::{MemoryStore, lock, write};

/// The accesses and their jobs.
#[derive(Debug, Default)]
pub(crate) struct Accesses {
    accesses: HashMap<AccessId, Access>,
    jobs: HashMap<SyncId, SyncJob>,
}

impl Accesses {
    fn check_version(&self, access: &Access, expected: u64) -> Result<(), StoreError> {
        match self.accesses.get(&access.id) {
            Some(a) if a.version == expected => Ok(()),
            Some(_) => Err(StoreError::Conflict("access changed meanwhile")),
            None => Err(StoreError::Conflict("access gone")),
        }
    }

    fn add_job(&mut self, job: SyncJob) -> Result<(), StoreError> {
        if self.jobs.contains_key(&job.id) {
            return Err(StoreError::Conflict("job exists"));
        }
        self.jobs.insert(job.id, job);
        Ok(())
    }

    fn holds(&self, claim: Claim) -> bool {
        self.jobs
            .get(&claim.job)
            .is_some_and(|j| j.status == JobStatus::Running && j.attempt == claim.attempt)
    }
}

#[async_trait]
impl AccessStore for MemoryStore {
    async fn insert_access(&self, access: &Access, first: &SyncJob) -> Result<(), StoreError> {
        let mut a = lock(&self.accesses);
        if a.accesses.contains_key(&access.id) || a.jobs.contains_key(&first.id) {
            return Err(StoreError::Conflict("access exists"));
        }
        a.accesses.insert(access.id.clone(), access.clone());
        a.jobs.insert(first.id, first.clone());
        Ok(())
    }

    async fn find_access(&self, id: &AccessId) -> Result<Option<Access>, StoreError> {
        Ok(lock(&self.accesses).accesses.get(id).cloned())
    }

    async fn client_accesses(&self, client: &ClientId) -> Result<Vec<Access>, StoreError> {
        Ok(lock(&self.accesses)
            .accesses
            .values()
            .filter(|x| x.client_id == *client)
            .cloned()
            .collect())
    }

    async fn list_accesses(
        &self,
        client: &ClientId,
        user: &UserId,
    ) -> Result<Vec<Access>, StoreError> {
        let a = lock(&self.accesses);
        let mut found: Vec<Access> = a
            .accesses
            .values()
            .filter(|x| x.client_id == *client && x.user_id == *user)
            .cloned()
            .collect();
        found.sort_by(|x, y| (x.created_at, &x.id).cmp(&(y.created_at, &y.id)));
        Ok(found)
    }

    async fn update_access(
        &self,
        access: &Access,
        expected_version: u64,
        job: Option<SyncJob>,
    ) -> Result<(), StoreError> {
        let mut a = lock(&self.accesses);
        a.check_version(access, expected_version)?;
        if let Some(j) = job {
            a.add_job(j)?;
        }
        a.accesses.insert(access.id.clone(), access.clone());
        Ok(())
    }

    async fn delete_access_record(
        &self,
        id: &AccessId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut g = lock(&self.grants);
        let mut a = lock(&self.accesses);
        let mut data = write(&self.data);
        let mut revoked = Vec::new();
        for f in g.families.values_mut() {
            if f.grant.access_id == *id {
                if !f.grant.is_revoked() {
                    revoked.push(f.grant.clone());
                }
                f.revoke(now);
            }
        }
        for grant in &revoked {
            self.revoked(grant, now, finx_domain::webhook::RevokeReason::Revoked);
        }
        data.delete_access(id);
        a.jobs.retain(|_, j| j.access_id != *id);
        Ok(a.accesses.remove(id).is_some())
    }

    async fn find_job(&self, id: SyncId) -> Result<Option<SyncJob>, StoreError> {
        Ok(lock(&self.accesses).jobs.get(&id).cloned())
    }

    async fn pending_jobs(&self, access: &AccessId) -> Result<Vec<SyncJob>, StoreError> {
        let a = lock(&self.accesses);
        let mut jobs: Vec<SyncJob> = a
            .jobs
            .values()
            .filter(|j| j.access_id == *access && !j.status.is_final())
            .cloned()
            .collect();
        jobs.sort_by_key(|j| (j.run_at, j.id));
        Ok(jobs)
    }

    async fn claim_jobs(
        &self,
        now: Timestamp,
        lease: TimeDelta,
        limit: u32,
    ) -> Result<Vec<SyncJob>, StoreError> {
        let mut a = lock(&self.accesses);
        let mut due: Vec<SyncId> = a
            .jobs
            .values()
            .filter(|j| match j.status {
                JobStatus::Queued => j.run_at <= now,
                JobStatus::Running => j.lease_until.is_some_and(|l| l < now),
                _ => false,
            })
            .map(|j| j.id)
            .collect();
        due.sort_by_key(|id| a.jobs.get(id).map(|j| (j.run_at, *id)));
        // Accesses with a sync running under a live lease: none of their jobs is claimed.
        let mut busy: HashSet<AccessId> = a
            .jobs
            .values()
            .filter(|j| j.status == JobStatus::Running && j.lease_until.is_some_and(|l| l >= now))
            .map(|j| j.access_id.clone())
            .collect();
        let mut claimed = Vec::new();
        for id in due {
            if claimed.len() >= limit as usize {
                break;
            }
            let Some(access) = a.jobs.get(&id).map(|j| j.access_id.clone()) else {
                continue;
            };
            if !busy.insert(access) {
                continue;
            }
            if let Some(j) = a.jobs.get_mut(&id) {
                j.status = JobStatus::Running;
                j.attempt += 1;
                j.lease_until = Some(now + lease);
                j.started_at = Some(now);
                claimed.push(j.clone());
            }
        }
        Ok(claimed)
    }

    async fn finish_job(
        &self,
        claim: Claim,
        outcome: &JobOutcome,
        access: &Access,
        expected_version: u64,
        next: Option<SyncJob>,
    ) -> Result<SyncReport, StoreError> {
        let mut a = lock(&self.accesses);
        if !a.holds(claim) {
            return Err(StoreError::Conflict("the claim no longer holds"));
        }
        a.check_version(access, expected_version)?;
        if let Some(n) = &next {
            if a.jobs.contains_key(&n.id) {
                return Err(StoreError::Conflict("job exists"));
            }
        }
        let mut data = write(&self.data);
        let mut report = SyncReport::default();
        for s in &outcome.accounts {
            let id = s.account.id.clone();
            data.accounts.insert(id.clone(), s.account.clone());
            let r = data.reconcile(&id, &s.transactions, s.window_from, outcome.finished_at);
            report.inserted += r.inserted;
            report.updated += r.updated;
            report.removed += r.removed;
        }
        drop(data);
        if let Some(j) = a.jobs.get_mut(&claim.job) {
            j.status = outcome.status;
            j.finished_at = Some(outcome.finished_at);
            j.lease_until = None;
            j.error = outcome.error;
            j.counts = (outcome.status == JobStatus::Succeeded).then_some(
                finx_domain::access::SyncCounts {
                    added: report.inserted,
                    modified: report.updated,
                    removed: report.removed,
                },
            );
        }
        if let Some(n) = next {
            a.jobs.insert(n.id, n);
        }
        a.accesses.insert(access.id.clone(), access.clone());
        let counts = finx_domain::access::SyncCounts {
            added: report.inserted,
            modified: report.updated,
            removed: report.removed,
        };
        let events: Vec<_> = outcome
            .events
            .iter()
            .map(|e| e.clone().with_counts(counts))
            .collect();
        lock(&self.webhooks).enqueue(&events);
        Ok(report)
    }

    async fn extend_lease(&self, claim: Claim, until: Timestamp) -> Result<bool, StoreError> {
        let mut a = lock(&self.accesses);
        if !a.holds(claim) {
            return Ok(false);
        }
        if let Some(j) = a.jobs.get_mut(&claim.job) {
            j.lease_until = Some(until);
        }
        Ok(true)
    }

    async fn requeue_job(&self, claim: Claim, run_at: Timestamp) -> Result<bool, StoreError> {
        let mut a = lock(&self.accesses);
        if !a.holds(claim) {
            return Ok(false);
        }
        if let Some(j) = a.jobs.get_mut(&claim.job) {
            j.status = JobStatus::Queued;
            j.lease_until = None;
            j.run_at = run_at;
        }
        Ok(true)
    }

    async fn access_held(&self, id: &AccessId, now: Timestamp) -> Result<bool, StoreError> {
        let g = lock(&self.grants);
        Ok(g.families
            .values()
            .any(|f| f.grant.access_id == *id && f.grant.is_live(now)))
    }

    async fn orphaned_accesses(
        &self,
        now: Timestamp,
        before: Timestamp,
        limit: u32,
    ) -> Result<Vec<Access>, StoreError> {
        let g = lock(&self.grants);
        let held: HashSet<&AccessId> = g
            .families
            .values()
            .filter(|f| f.grant.is_live(now))
            .map(|f| &f.grant.access_id)
            .collect();
        let a = lock(&self.accesses);
        let mut found: Vec<Access> = a
            .accesses
            .values()
            .filter(|x| x.created_at < before && !held.contains(&x.id))
            .cloned()
            .collect();
        found.sort_by(|x, y| x.id.cmp(&y.id));
        found.truncate(limit as usize);
        Ok(found)
    }
}
