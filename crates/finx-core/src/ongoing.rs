//! Ongoing access: the accesses API, manual and scheduled syncs, and renewal.
//!
//! An ongoing flow ends like a one-time one (data fetched while the user waits, a grant and
//! a code), and also leaves an [`Access`]: the bank session its recurring consent
//! authorises, and the first scheduled [`SyncJob`]. Runners (the server's scheduler, on any
//! number of instances) claim due jobs from the store and run them with
//! [`run_sync`](Finx::run_sync); every unattended sync passes the access's ledger first, so
//! no access is synced more often than its consent and finX's policy allow.

use chrono::TimeDelta;
use finx_domain::Timestamp;
use finx_domain::access::{
    Access, AdmitError, Claim, JobKind, JobStatus, Ongoing, SyncFailure, SyncJob,
};
use finx_domain::bank::{Account, AccountDetails, BalanceStatus, SyncStatus};
use finx_domain::flow::{BankSession, Flow};
use finx_domain::ids::{AccessId, AccountId, SyncId};
use finx_domain::sca::Consent;
use finx_domain::schedule::{AccessStatus, SyncLedger, day_of, start_of};
use finx_ports::{AccountSync, BankError, JobOutcome, Presence, StoreError};

use finx_domain::scope::ScopeItem;

use crate::data::Authorization;
use crate::{CoreError, Finx};

/// An access as the accesses API shows it.
#[derive(Debug, Clone)]
pub struct AccessView {
    /// The access.
    pub access: Access,
    /// Where its consent stands now.
    pub status: AccessStatus,
    /// Its accounts' finX ids.
    pub account_ids: Vec<AccountId>,
    /// When the next scheduled sync is planned, if any.
    pub next_sync: Option<Timestamp>,
    /// Unattended syncs left today.
    pub syncs_left: u16,
}

/// How often a compare-and-swap on an access is retried before giving up as busy.
const SWAP_TRIES: usize = 5;

impl Finx {
    /// The access a flow's data is written under: the one it renews, or a new one derived
    /// from the flow.
    #[must_use]
    pub fn data_access(flow: &Flow) -> AccessId {
        match flow.params.ongoing.as_ref().and_then(|o| o.renews.clone()) {
            Some(id) => id,
            None => Self::access_of(flow.id),
        }
    }

    /// Whether the flow renews an existing access (whose data must survive a failure).
    pub(crate) fn renews(flow: &Flow) -> bool {
        flow.params
            .ongoing
            .as_ref()
            .is_some_and(|o| o.renews.is_some())
    }

    /// After an ongoing flow fetched its data: creates its access with the first scheduled
    /// sync, or renews the access it names (new session and consent, same id), ending the
    /// old consent at the bank.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn keep_access(
        &self,
        flow: &Flow,
        ongoing: &Ongoing,
        access_id: &AccessId,
        session: &BankSession,
        consent: &Consent,
        chosen: &[AccountDetails],
        institution: &finx_domain::ids::InstitutionId,
        last_booked: Option<finx_domain::Date>,
    ) -> Result<(), CoreError> {
        let now = self.now();
        if ongoing.renews.is_some() {
            for _ in 0..SWAP_TRIES {
                let Some(mut access) = self.ports.accesses.find_access(access_id).await? else {
                    return Err(CoreError::NotFound("access"));
                };
                let expected = access.version;
                let old = access.session.clone();
                access.renew(session.clone(), consent.clone(), chosen.to_vec());
                access.sync_succeeded(now, last_booked);
                access.version += 1;
                // The schedule resumes if the ended consent had stopped it.
                let scheduled = self
                    .ports
                    .accesses
                    .pending_jobs(access_id)
                    .await?
                    .iter()
                    .any(|j| j.kind == JobKind::Scheduled);
                let job = if scheduled {
                    None
                } else {
                    access
                        .next_sync(now, &self.sync, self.sync_interval)
                        .map(|t| self.new_job(access_id, JobKind::Scheduled, t, now))
                };
                match self
                    .ports
                    .accesses
                    .update_access(&access, expected, job)
                    .await
                {
                    Ok(()) => {
                        if old != *session {
                            // Best effort: the old consent is replaced; a bank that does not
                            // answer lets it expire on its own.
                            let _ = self
                                .bank_at(
                                    &access.institution,
                                    "end_consent",
                                    self.ports.bank.end_consent(&old),
                                )
                                .await;
                        }
                        return Ok(());
                    }
                    Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            return Err(CoreError::Busy);
        }
        let mut access = Access {
            id: access_id.clone(),
            client_id: flow.client_id.clone(),
            user_id: ongoing.user_id.clone(),
            institution: institution.clone(),
            session: session.clone(),
            consent: consent.clone(),
            accounts: chosen.to_vec(),
            sync_period: flow.params.sync_period,
            ledger: SyncLedger::new(day_of(now)),
            synced_at: None,
            last_booked: None,
            last_error: None,
            created_at: now,
            version: 0,
        };
        access.sync_succeeded(now, last_booked);
        let first = access
            .next_sync(now, &self.sync, self.sync_interval)
            .unwrap_or(now + TimeDelta::days(1));
        let job = self.new_job(access_id, JobKind::Scheduled, first, now);
        self.ports.accesses.insert_access(&access, &job).await?;
        Ok(())
    }

    fn new_job(
        &self,
        access: &AccessId,
        kind: JobKind,
        run_at: Timestamp,
        now: Timestamp,
    ) -> SyncJob {
        SyncJob::queued(
            SyncId::from_random(self.ports.random.bytes16()),
            access.clone(),
            kind,
            run_at,
            now,
        )
    }

    /// The accesses of the token's end user at the token's customer (none for a one-time
    /// grant).
    ///
    /// # Errors
    /// When the store fails.
    pub async fn list_accesses(&self, auth: &Authorization) -> Result<Vec<AccessView>, CoreError> {
        auth.require(ScopeItem::Accounts)?;
        let Some(own) = self.ports.accesses.find_access(&auth.access_id).await? else {
            return Ok(Vec::new());
        };
        let now = self.now();
        let all = self
            .ports
            .accesses
            .list_accesses(&auth.client_id, &own.user_id)
            .await?;
        let mut views = Vec::with_capacity(all.len());
        for a in all {
            views.push(self.view(a, now).await?);
        }
        Ok(views)
    }

    /// One access of the token's end user.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] for any other.
    pub async fn get_access(
        &self,
        auth: &Authorization,
        id: &str,
    ) -> Result<AccessView, CoreError> {
        let access = self.visible_access(auth, id).await?;
        self.view(access, self.now()).await
    }

    async fn view(&self, access: Access, now: Timestamp) -> Result<AccessView, CoreError> {
        let pending = self.ports.accesses.pending_job(&access.id).await?;
        let status = access.status(now, &self.sync);
        Ok(AccessView {
            account_ids: access
                .accounts
                .iter()
                .map(|d| Account::id_for(&access.id, &d.external_id))
                .collect(),
            next_sync: pending.map(|j| j.run_at).filter(|_| status.syncs()),
            syncs_left: access.syncs_left(now, &self.sync),
            status,
            access,
        })
    }

    /// The access `id` if the token's end user at the token's customer holds it.
    async fn visible_access(&self, auth: &Authorization, id: &str) -> Result<Access, CoreError> {
        auth.require(ScopeItem::Accounts)?;
        let id = AccessId::parse(id).map_err(|_| CoreError::NotFound("access"))?;
        let own = self.ports.accesses.find_access(&auth.access_id).await?;
        let access = self.ports.accesses.find_access(&id).await?;
        match (own, access) {
            (Some(own), Some(a)) if a.client_id == auth.client_id && a.user_id == own.user_id => {
                Ok(a)
            }
            _ => Err(CoreError::NotFound("access")),
        }
    }

    /// Deletes an access: ends its consent at the bank, then deletes its data, its jobs and
    /// the record, and revokes every grant that holds it. A bank that cannot be reached does
    /// not keep the data: the consent then lapses at the bank on its own.
    ///
    /// # Errors
    /// [`CoreError::NotFound`]; the store's error.
    pub async fn delete_access(&self, auth: &Authorization, id: &str) -> Result<(), CoreError> {
        let access = self.visible_access(auth, id).await?;
        let _ = self
            .bank_at(
                &access.institution,
                "end_consent",
                self.ports.bank.end_consent(&access.session),
            )
            .await;
        self.ports
            .accesses
            .delete_access_record(&access.id, self.now())
            .await?;
        Ok(())
    }

    /// Asks for a sync now. It counts against the day's allowance; a sync already due or
    /// running is answered instead of a second one.
    ///
    /// # Errors
    /// [`CoreError::TooManySyncs`] when the allowance is spent or the bank asked to wait;
    /// [`CoreError::ConsentOver`] when the consent expired or was revoked;
    /// [`CoreError::NotFound`]; [`CoreError::Busy`].
    pub async fn request_sync(&self, auth: &Authorization, id: &str) -> Result<SyncJob, CoreError> {
        let mut access = self.visible_access(auth, id).await?;
        for _ in 0..SWAP_TRIES {
            let now = self.now();
            if let Some(j) = self.ports.accesses.pending_job(&access.id).await? {
                // A running sync, or a manual one (admitted when asked for), is the
                // answer; a due scheduled one too, unless the day's allowance is spent
                // (it will wait for tomorrow, so the caller hears 1020 now).
                let answers = j.status == JobStatus::Running
                    || j.kind == JobKind::Manual
                    || (j.run_at <= now && access.clone().admit(now, &self.sync).is_ok());
                if answers {
                    return Ok(j);
                }
            }
            let expected = access.version;
            match access.admit(now, &self.sync) {
                Ok(()) => {}
                Err(AdmitError::NotBefore(t)) => {
                    let wait = (t - now).num_seconds().max(1);
                    return Err(CoreError::TooManySyncs {
                        retry_at: t,
                        retry_after: u64::try_from(wait).unwrap_or(1),
                    });
                }
                Err(AdmitError::ConsentOver) => {
                    return Err(CoreError::ConsentOver(access.status(now, &self.sync)));
                }
            }
            access.version += 1;
            let job = self.new_job(&access.id, JobKind::Manual, now, now);
            match self
                .ports
                .accesses
                .update_access(&access, expected, Some(job.clone()))
                .await
            {
                Ok(()) => return Ok(job),
                Err(StoreError::Conflict(_)) => {
                    access = self
                        .ports
                        .accesses
                        .find_access(&access.id)
                        .await?
                        .ok_or(CoreError::NotFound("access"))?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(CoreError::Busy)
    }

    /// One sync of an access the token's end user holds.
    ///
    /// # Errors
    /// [`CoreError::NotFound`].
    pub async fn get_sync(
        &self,
        auth: &Authorization,
        access_id: &str,
        sync_id: &str,
    ) -> Result<SyncJob, CoreError> {
        let access = self.visible_access(auth, access_id).await?;
        let id = SyncId::parse(sync_id).map_err(|_| CoreError::NotFound("sync"))?;
        self.ports
            .accesses
            .find_job(id)
            .await?
            .filter(|j| j.access_id == access.id)
            .ok_or(CoreError::NotFound("sync"))
    }

    /// Claims at most `limit` due syncs for this runner (each held for the sync lease).
    ///
    /// # Errors
    /// When the store fails.
    pub async fn claim_syncs(&self, limit: u32) -> Result<Vec<SyncJob>, CoreError> {
        let now = self.now();
        let claimed = self
            .ports
            .accesses
            .claim_jobs(now, self.sync_lease, limit)
            .await?;
        // One sync per access at a time: a second due job of the same access waits a moment.
        let mut seen = std::collections::HashSet::new();
        let mut run = Vec::with_capacity(claimed.len());
        for job in claimed {
            if seen.insert(job.access_id.clone()) {
                run.push(job);
            } else {
                let claim = Claim {
                    job: job.id,
                    attempt: job.attempt,
                };
                self.ports
                    .accesses
                    .requeue_job(claim, now + TimeDelta::seconds(5))
                    .await?;
            }
        }
        Ok(run)
    }

    /// Hands a claimed sync back to the queue, due now (a runner shutting down).
    ///
    /// # Errors
    /// When the store fails.
    pub async fn hand_back(&self, job: &SyncJob) -> Result<bool, CoreError> {
        let claim = Claim {
            job: job.id,
            attempt: job.attempt,
        };
        Ok(self.ports.accesses.requeue_job(claim, self.now()).await?)
    }

    /// Runs a claimed sync: passes the ledger (scheduled syncs; a manual one was counted when
    /// asked for), fetches balances and transactions from the last booked day minus the
    /// overlap, and writes them, the access and the job's end in one atomic step, with the
    /// next scheduled sync. A scheduled sync that may not run yet goes back to the queue for
    /// then. Returns the job as ended (`None` when it went back, or another runner took it).
    ///
    /// # Errors
    /// When the store fails; the job then stays claimed until its lease ends.
    pub async fn run_sync(&self, job: &SyncJob) -> Result<Option<SyncJob>, CoreError> {
        let claim = Claim {
            job: job.id,
            attempt: job.attempt,
        };
        // The lease is renewed every third of it while the sync runs, so a slow bank does
        // not make another runner take the job over; a runner that dies stops renewing.
        let _running = crate::Running::new(self.ports.telemetry.as_ref(), "sync");
        let work = std::pin::pin!(self.sync_claimed(claim, job));
        let heartbeat = std::pin::pin!(self.heartbeat(claim));
        let result = match futures::future::select(work, heartbeat).await {
            futures::future::Either::Left((done, _)) => done,
            futures::future::Either::Right((never, _)) => match never {},
        };
        let outcome = match &result {
            Ok(Some(ended)) => ended.status.as_str(),
            Ok(None) => "requeued",
            Err(_) => "error",
        };
        self.ports.telemetry.job_ended("sync", outcome);
        result
    }

    /// Renews the claim's lease every third of it, for as long as it holds.
    async fn heartbeat(&self, claim: Claim) -> std::convert::Infallible {
        let every = (self.sync_lease / 3)
            .to_std()
            .unwrap_or(std::time::Duration::from_secs(1))
            .max(std::time::Duration::from_millis(100));
        loop {
            self.ports.timer.sleep(every).await;
            let until = self.now() + self.sync_lease;
            if let Ok(false) = self.ports.accesses.extend_lease(claim, until).await {
                // Lost: the fenced finish decides; nothing more to renew. A store error is
                // tried again at the next beat.
                std::future::pending::<()>().await;
            }
        }
    }

    async fn sync_claimed(
        &self,
        claim: Claim,
        job: &SyncJob,
    ) -> Result<Option<SyncJob>, CoreError> {
        let Some(mut access) = self.ports.accesses.find_access(&job.access_id).await? else {
            // Deleted meanwhile: a job left behind goes too, rather than being claimed again.
            self.ports
                .accesses
                .delete_access_record(&job.access_id, self.now())
                .await?;
            return Ok(None);
        };
        let now = self.now();
        if !self.ports.accesses.access_held(&access.id, now).await? {
            // No live grant justifies it: the purge ends it. Look again tomorrow.
            self.ports
                .accesses
                .requeue_job(claim, now + TimeDelta::days(1))
                .await?;
            return Ok(None);
        }
        if !self.client_enabled(&access.client_id).await? {
            // Its customer is disabled: the bank is not read for it. Look again in an hour,
            // so syncs resume soon after the customer is enabled again.
            self.ports
                .accesses
                .requeue_job(claim, now + TimeDelta::hours(1))
                .await?;
            return Ok(None);
        }
        // A scheduled sync passes the ledger when it runs (a manual one did when it was asked
        // for); any sync run a second time (its first runner died or shut down mid-fetch)
        // passes it again, since the bank may have seen the first.
        if job.kind == JobKind::Scheduled || job.attempt > 1 {
            let mut admitted = false;
            for _ in 0..SWAP_TRIES {
                let expected = access.version;
                match access.admit(now, &self.sync) {
                    Ok(()) => {}
                    Err(AdmitError::NotBefore(t)) => {
                        self.ports.accesses.requeue_job(claim, t).await?;
                        return Ok(None);
                    }
                    Err(AdmitError::ConsentOver) => {
                        let failure = match access.status(now, &self.sync) {
                            AccessStatus::Revoked => SyncFailure::ConsentRevoked,
                            _ => SyncFailure::ConsentExpired,
                        };
                        return self.end_job(claim, access, job, Err((failure, None))).await;
                    }
                }
                access.version += 1;
                match self
                    .ports
                    .accesses
                    .update_access(&access, expected, None)
                    .await
                {
                    Ok(()) => {
                        admitted = true;
                        break;
                    }
                    Err(StoreError::Conflict(_)) => {
                        access = self
                            .ports
                            .accesses
                            .find_access(&job.access_id)
                            .await?
                            .ok_or(CoreError::NotFound("access"))?;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if !admitted {
                return Err(CoreError::Busy);
            }
        }
        let fetched = self.fetch(&access, now).await;
        self.end_job(claim, access, job, fetched).await
    }

    /// Fetches what a sync writes.
    async fn fetch(
        &self,
        access: &Access,
        now: Timestamp,
    ) -> Result<Vec<AccountSync>, (SyncFailure, Option<TimeDelta>)> {
        let today = day_of(now);
        let from = self
            .sync
            .sync_from(access.last_booked, today, access.sync_period.days());
        let mut out = Vec::with_capacity(access.accounts.len());
        for details in &access.accounts {
            let balances = self
                .bank_at(
                    &access.institution,
                    "balances",
                    self.ports
                        .bank
                        // Unattended: the user is not there.
                        .balances(&access.session, &details.external_id, &Presence::Unattended),
                )
                .await
                .map_err(|e| sync_failure(&e))?;
            let transactions = self
                .bank_at(
                    &access.institution,
                    "transactions",
                    self.ports.bank.transactions(
                        &access.session,
                        &details.external_id,
                        from,
                        today,
                        &Presence::Unattended,
                    ),
                )
                .await
                .map_err(|e| sync_failure(&e))?;
            out.push(AccountSync {
                account: Account {
                    id: Account::id_for(&access.id, &details.external_id),
                    access_id: access.id.clone(),
                    details: details.clone(),
                    balance: balances
                        .iter()
                        .find(|b| b.status == BalanceStatus::Booked)
                        .or(balances.first())
                        .cloned(),
                    status: SyncStatus {
                        synced_at: now,
                        succeeded_at: Some(now),
                        message: None,
                    },
                },
                transactions,
                window_from: from,
            });
        }
        Ok(out)
    }

    /// Writes a sync's outcome with the access and the next scheduled job, retrying the
    /// access's compare-and-swap on a fresh copy when something else changed it meanwhile.
    async fn end_job(
        &self,
        claim: Claim,
        mut access: Access,
        job: &SyncJob,
        fetched: Result<Vec<AccountSync>, (SyncFailure, Option<TimeDelta>)>,
    ) -> Result<Option<SyncJob>, CoreError> {
        let now = self.now();
        let (outcome, last_booked) = match &fetched {
            Ok(accounts) => (
                JobOutcome {
                    status: JobStatus::Succeeded,
                    finished_at: now,
                    error: None,
                    accounts: accounts.clone(),
                    events: Vec::new(),
                },
                accounts
                    .iter()
                    .flat_map(|a| a.transactions.iter())
                    .filter(|t| t.booked)
                    .map(|t| t.booked_on)
                    .max(),
            ),
            Err((failure, _)) => (
                JobOutcome {
                    status: JobStatus::Failed,
                    finished_at: now,
                    error: Some(*failure),
                    accounts: Vec::new(),
                    events: Vec::new(),
                },
                None,
            ),
        };
        let mut outcome = outcome;
        // The session the sync read with: if a renewal replaced it meanwhile, the old
        // consent's failure says nothing about the new one.
        let used = access.session.clone();
        for _ in 0..SWAP_TRIES {
            let expected = access.version;
            match &fetched {
                Ok(_) => access.sync_succeeded(now, last_booked),
                Err((failure, retry)) if access.session == used => {
                    access.sync_failed(*failure, now, *retry, &self.sync);
                }
                Err(_) => {}
            }
            access.version += 1;
            // The next slot; past the consent's last one, a last job at its end that finds
            // it over (and says so) without asking the bank.
            let next = (job.kind == JobKind::Scheduled)
                .then(|| {
                    access
                        .next_sync(now, &self.sync, self.sync_interval)
                        .or_else(|| {
                            access
                                .status(now, &self.sync)
                                .syncs()
                                .then(|| start_of(access.consent.valid_until) + TimeDelta::days(1))
                        })
                })
                .flatten()
                .map(|t| self.new_job(&access.id, JobKind::Scheduled, t, now));
            outcome.events = self.sync_events(&access, job, &fetched, access.session == used, now);
            match self
                .ports
                .accesses
                .finish_job(claim, &outcome, &access, expected, next)
                .await
            {
                Ok(_) => return Ok(self.ports.accesses.find_job(claim.job).await?),
                Err(StoreError::Conflict(_)) => {
                    let current = self.ports.accesses.find_job(claim.job).await?;
                    let still_ours = current.is_some_and(|j| {
                        j.attempt == claim.attempt && j.status == JobStatus::Running
                    });
                    let fresh = self.ports.accesses.find_access(&job.access_id).await?;
                    match (still_ours, fresh) {
                        (true, Some(a)) => access = a,
                        _ => return Ok(None),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(CoreError::Busy)
    }

    /// The events a sync's end makes: `access.synced` (counts filled in by the store) or
    /// `access.sync_failed`; `access.consent_expired` when the consent is found over (the
    /// current one: a failure of a consent a renewal replaced is only a failed sync);
    /// `access.consent_expiring` while it is within its expiring window (one per consent:
    /// its id derives from the access and the consent's last day).
    fn sync_events(
        &self,
        access: &Access,
        job: &SyncJob,
        fetched: &Result<Vec<AccountSync>, (SyncFailure, Option<TimeDelta>)>,
        current_session: bool,
        now: Timestamp,
    ) -> Vec<finx_domain::webhook::Event> {
        use finx_domain::webhook::{Event, EventData};
        let (access_id, user_id) = (access.id.clone(), access.user_id.clone());
        let valid_until = access.consent.valid_until;
        let once = |tag: &str| {
            Event::id_for(
                tag,
                format!("{}/{valid_until}", access.id.as_str()).as_bytes(),
            )
        };
        let mut events = Vec::with_capacity(2);
        match fetched {
            Ok(_) => {
                events.push(self.event(
                    &access.client_id,
                    EventData::AccessSynced {
                        access_id: access_id.clone(),
                        user_id: user_id.clone(),
                        sync_id: job.id,
                        counts: finx_domain::access::SyncCounts::default(),
                    },
                ));
                if access.status(now, &self.sync) == AccessStatus::Expiring {
                    events.push(Event {
                        id: once("access.consent_expiring"),
                        client_id: access.client_id.clone(),
                        at: now,
                        data: EventData::ConsentExpiring {
                            access_id,
                            user_id,
                            valid_until,
                        },
                    });
                }
            }
            // The consent that failed was replaced by a renewal meanwhile: it says
            // nothing of the current one.
            Err((failure, _)) if failure.ends_consent() && !current_session => {
                events.push(self.event(
                    &access.client_id,
                    EventData::AccessSyncFailed {
                        access_id,
                        user_id,
                        sync_id: job.id,
                        error: *failure,
                    },
                ));
            }
            Err((failure, _)) if failure.ends_consent() => events.push(Event {
                id: once("access.consent_expired"),
                client_id: access.client_id.clone(),
                at: now,
                data: EventData::ConsentExpired {
                    access_id,
                    user_id,
                    valid_until,
                    reason: *failure,
                },
            }),
            Err((failure, _)) => events.push(self.event(
                &access.client_id,
                EventData::AccessSyncFailed {
                    access_id,
                    user_id,
                    sync_id: job.id,
                    error: *failure,
                },
            )),
        }
        events
    }

    /// Ends the consents of accesses no live grant holds any more (best effort at the bank)
    /// and deletes them with their data and jobs. Returns how many.
    pub(crate) async fn end_orphaned_accesses(
        &self,
        now: Timestamp,
        before: Timestamp,
    ) -> Result<u64, CoreError> {
        let mut ended = 0;
        loop {
            let batch = self
                .ports
                .accesses
                .orphaned_accesses(now, before, 100)
                .await?;
            if batch.is_empty() {
                return Ok(ended);
            }
            for a in batch {
                let _ = self
                    .bank_at(
                        &a.institution,
                        "end_consent",
                        self.ports.bank.end_consent(&a.session),
                    )
                    .await;
                if self.ports.accesses.delete_access_record(&a.id, now).await? {
                    ended += 1;
                }
            }
        }
    }
}

/// What a bank's refusal during a sync means for the access.
fn sync_failure(e: &BankError) -> (SyncFailure, Option<TimeDelta>) {
    match e {
        BankError::ConsentExpired => (SyncFailure::ConsentExpired, None),
        BankError::ConsentRevoked | BankError::SessionExpired => {
            (SyncFailure::ConsentRevoked, None)
        }
        // A bank's wait is obeyed up to a week; a larger one is taken as a week.
        BankError::RateLimited { retry_after } => (
            SyncFailure::RateLimited,
            retry_after
                .map(|d| d.min(std::time::Duration::from_secs(7 * 86_400)))
                .and_then(|d| TimeDelta::from_std(d).ok()),
        ),
        BankError::Unavailable(_) => (SyncFailure::BankUnavailable, None),
        _ => (SyncFailure::BankError, None),
    }
}
