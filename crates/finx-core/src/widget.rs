use chrono::TimeDelta;
use finx_domain::bank::{Account, BalanceStatus, Institution, SyncStatus};
use finx_domain::flow::{
    FailureReason, Flow, FlowError, FlowEvent, FlowStatus, MAX_ATTEMPTS, Outcome, callback_url,
};
use finx_domain::ids::{AccessId, FlowId, GrantId, InstitutionId};
use finx_domain::secret::AuthorizationCode;
use finx_domain::token::{CodeRecord, Grant};
use finx_ports::{BankCredentials, BankError, LoginOutcome, StoreError};
use url::Url;

use crate::error::invalid;
use crate::{CoreError, Finx};

/// How often a step re-reads the flow when another request changed it meanwhile.
const CAS_RETRIES: usize = 5;

/// How far a login got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginStep {
    /// The bank asks for a TAN next.
    ScaRequired,
    /// No SCA needed: the accounts are on offer.
    AccountsOffered,
}

/// What the widget shows for a flow: the flow and, once chosen, its bank.
#[derive(Debug, Clone)]
pub struct WidgetView {
    /// The flow (possibly just expired).
    pub flow: Flow,
    /// The selected bank.
    pub institution: Option<Institution>,
}

fn illegal(event: &'static str, flow: &Flow) -> CoreError {
    CoreError::Flow(FlowError::IllegalTransition {
        event,
        status: flow.status.name(),
    })
}

impl Finx {
    /// The flow as the widget should show it now. A flow past its expiry is marked expired.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] for an unknown flow.
    pub async fn widget_view(&self, id: FlowId) -> Result<WidgetView, CoreError> {
        let flow = self.load_flow(id).await?;
        let institution = match flow.status.institution() {
            Some(i) => self.ports.bank.institution(i).await?,
            None => None,
        };
        Ok(WidgetView { flow, institution })
    }

    /// Banks whose name contains `query`, or whose BIC or bank code equals it.
    ///
    /// # Errors
    /// When the connector fails.
    pub async fn search_institutions(&self, query: &str) -> Result<Vec<Institution>, CoreError> {
        if query.len() > 200 {
            return Err(invalid("q", "at most 200 bytes"));
        }
        Ok(self.ports.bank.search_institutions(query).await?)
    }

    /// The end user picks a bank.
    ///
    /// # Errors
    /// [`CoreError::Invalid`] for an unknown bank; [`CoreError::Flow`] when not allowed now.
    pub async fn select_bank(&self, id: FlowId, institution: &str) -> Result<Flow, CoreError> {
        let institution =
            InstitutionId::parse(institution).map_err(|e| invalid("institution", e))?;
        if self.ports.bank.institution(&institution).await?.is_none() {
            return Err(invalid("institution", "unknown bank"));
        }
        let flow = self.load_live(id).await?;
        // A customer that named the bank fixed it: the end user may not pick another.
        if flow
            .params
            .provider_id
            .as_ref()
            .is_some_and(|p| *p != institution)
        {
            return Err(invalid(
                "institution",
                "the customer fixed the bank for this link (provider_id)",
            ));
        }
        self.step(flow, FlowEvent::BankSelected(institution)).await
    }

    /// The end user logs in at the selected bank. The try is counted before the bank is
    /// asked, so no interleaving of requests gets more than three tries per flow.
    ///
    /// # Errors
    /// [`CoreError::CredentialsInvalid`] while tries are left; [`CoreError::FlowFailed`]
    /// when the flow ended (three wrong passwords, locked, bank unavailable);
    /// [`CoreError::Flow`] with `AttemptsExhausted` when the tries are used up.
    pub async fn submit_credentials(
        &self,
        id: FlowId,
        credentials: &BankCredentials,
    ) -> Result<LoginStep, CoreError> {
        if credentials.user.is_empty()
            || credentials.user.len() > 256
            || credentials.secret.len() > 256
        {
            return Err(invalid(
                "credentials",
                "user name and PIN must be 1 to 256 bytes",
            ));
        }
        let flow = self.load_live(id).await?;
        let FlowStatus::BankSelected { institution } = &flow.status else {
            return Err(illegal("login", &flow));
        };
        let institution = institution.clone();
        self.step(flow, FlowEvent::LoginStarted).await?;
        let event = match self.ports.bank.start_login(&institution, credentials).await {
            Ok(LoginOutcome::ScaRequired { session, challenge }) => {
                FlowEvent::LoginAccepted { session, challenge }
            }
            Ok(LoginOutcome::Authenticated { session }) => {
                match self.ports.bank.accounts(&session).await {
                    Ok(accounts) => FlowEvent::ScaPassed { session, accounts },
                    Err(e) => FlowEvent::Failed(bank_failure(&e, FailureReason::BankUnavailable)),
                }
            }
            Err(BankError::InvalidCredentials) => FlowEvent::LoginRejected,
            Err(e) => FlowEvent::Failed(bank_failure(&e, FailureReason::BankUnavailable)),
        };
        let flow = self.step_latest(id, event).await?;
        match &flow.status {
            FlowStatus::CredentialsAccepted { .. } => Ok(LoginStep::ScaRequired),
            FlowStatus::ScaPassed { .. } => Ok(LoginStep::AccountsOffered),
            FlowStatus::BankSelected { .. } => Err(CoreError::CredentialsInvalid {
                attempts_left: MAX_ATTEMPTS.saturating_sub(flow.login_attempts),
            }),
            _ => Err(failure_of(&flow)),
        }
    }

    /// The end user enters the TAN. The try is counted before the bank is asked.
    ///
    /// # Errors
    /// [`CoreError::TanInvalid`] while tries are left; [`CoreError::FlowFailed`] when the
    /// flow ended.
    pub async fn submit_tan(&self, id: FlowId, tan: &str) -> Result<Flow, CoreError> {
        if tan.is_empty() || tan.len() > 64 {
            return Err(invalid("tan", "must be 1 to 64 characters"));
        }
        let flow = self.load_live(id).await?;
        let FlowStatus::CredentialsAccepted { session, .. } = &flow.status else {
            return Err(illegal("SCA", &flow));
        };
        let session = session.clone();
        self.step(flow, FlowEvent::TanStarted).await?;
        let event = match self.ports.bank.submit_sca(&session, tan).await {
            Ok(session) => match self.ports.bank.accounts(&session).await {
                Ok(accounts) => FlowEvent::ScaPassed { session, accounts },
                Err(e) => FlowEvent::Failed(bank_failure(&e, FailureReason::BankUnavailable)),
            },
            Err(BankError::InvalidTan) => FlowEvent::TanRejected,
            Err(e) => FlowEvent::Failed(bank_failure(&e, FailureReason::ScaFailed)),
        };
        let flow = self.step_latest(id, event).await?;
        match &flow.status {
            FlowStatus::ScaPassed { .. } => Ok(flow),
            FlowStatus::CredentialsAccepted { .. } => Err(CoreError::TanInvalid {
                attempts_left: MAX_ATTEMPTS.saturating_sub(flow.tan_attempts),
            }),
            _ => Err(failure_of(&flow)),
        }
    }

    /// The end user chooses accounts (by the bank's external ids, as offered).
    ///
    /// # Errors
    /// [`CoreError::Flow`] with `InvalidSelection` for a bad choice.
    pub async fn choose_accounts(
        &self,
        id: FlowId,
        external_ids: Vec<String>,
    ) -> Result<Flow, CoreError> {
        let flow = self.load_live(id).await?;
        self.step(flow, FlowEvent::AccountsChosen(external_ids))
            .await
    }

    /// Fetches the chosen accounts' data (`sync_period` days), creates the grant and its
    /// code, completes the flow and returns the redirect to the customer.
    ///
    /// The flow is claimed (`Syncing`) before the bank is asked, so the data is fetched once.
    /// If the flow is cancelled or expires while the data is fetched, the grant is revoked
    /// and the fetched data deleted: nothing is left without an owner.
    ///
    /// # Errors
    /// [`CoreError::FlowFailed`] when the bank fails (the flow is then failed);
    /// [`CoreError::Busy`] when another request claimed it first.
    pub async fn complete(&self, id: FlowId) -> Result<Url, CoreError> {
        let flow = self.load_live(id).await?;
        if !matches!(flow.status, FlowStatus::AccountsChosen { .. }) {
            return Err(illegal("completion", &flow));
        }
        let flow = self.step(flow, FlowEvent::SyncStarted).await?;
        let FlowStatus::Syncing {
            session, chosen, ..
        } = &flow.status
        else {
            return Err(illegal("completion", &flow));
        };
        let now = self.now();
        let today = now.date_naive();
        let from = today - TimeDelta::days(i64::from(flow.params.sync_period.days()) - 1);
        let access_id = AccessId::derive(&[&flow.id.to_string()]);
        let mut fetched = Vec::with_capacity(chosen.len());
        for details in chosen {
            let data = async {
                let balances = self
                    .ports
                    .bank
                    .balances(session, &details.external_id)
                    .await?;
                let txs = self
                    .ports
                    .bank
                    .transactions(session, &details.external_id, from, today)
                    .await?;
                Ok::<_, BankError>((balances, txs))
            };
            match data.await {
                Ok(d) => fetched.push((details, d)),
                Err(e) => {
                    let failed = FlowEvent::Failed(bank_failure(&e, FailureReason::SyncFailed));
                    let flow = self.step_latest(id, failed).await?;
                    return Err(failure_of(&flow));
                }
            }
        }
        let mut account_ids = Vec::with_capacity(fetched.len());
        for (details, (balances, txs)) in fetched {
            let account = Account {
                id: Account::id_for(&access_id, &details.external_id),
                access_id: access_id.clone(),
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
            };
            self.ports.data.upsert_account(&account).await?;
            self.ports
                .data
                .sync_transactions(&account.id, &txs, now)
                .await?;
            account_ids.push(account.id);
        }

        let code = AuthorizationCode::from_random(self.ports.random.bytes32());
        let grant = Grant {
            id: GrantId::from_random(self.ports.random.bytes16()),
            client_id: flow.client_id.clone(),
            flow_id: flow.id,
            access_id: access_id.clone(),
            account_ids,
            scope: flow.params.scope,
            redirect_uri: flow.params.redirect_uri.clone(),
            created_at: now,
            expires_at: now + self.lifetimes.grant,
            revoked_at: None,
        };
        let record = CodeRecord {
            hash: self.hasher.hash(&code),
            grant_id: grant.id,
            issued_at: now,
            expires_at: now + self.lifetimes.code,
            used_at: None,
        };
        self.ports.grants.insert_grant(&grant, &record).await?;
        // The grant exists before the flow says so. If the flow was cancelled or expired
        // meanwhile, the code is never shown, the grant is revoked and the data deleted.
        if let Err(e) = self.step_latest(id, FlowEvent::Completed(grant.id)).await {
            self.ports.grants.revoke_grant(grant.id, now).await?;
            self.ports.data.delete_access(&access_id).await?;
            return Err(e);
        }
        Ok(callback_url(&flow.params, flow.id, &Outcome::Success(code)))
    }

    /// The end user cancels; returns the redirect to the customer.
    ///
    /// # Errors
    /// [`CoreError::Flow`] when the flow is already finished.
    pub async fn cancel(&self, id: FlowId) -> Result<Url, CoreError> {
        let flow = self.load_live(id).await?;
        let flow = self.step(flow, FlowEvent::Cancelled).await?;
        Ok(callback_url(&flow.params, flow.id, &Outcome::Cancelled))
    }

    /// The redirect back to the customer for a failed or expired flow.
    ///
    /// # Errors
    /// [`CoreError::Flow`] when the flow has not failed.
    pub async fn failure_redirect(&self, id: FlowId) -> Result<Url, CoreError> {
        let flow = self.load_flow(id).await?;
        let reason = match flow.status {
            FlowStatus::Failed { reason } => reason,
            FlowStatus::Expired => FailureReason::LinkExpired,
            _ => return Err(illegal("failure redirect", &flow)),
        };
        Ok(callback_url(
            &flow.params,
            flow.id,
            &Outcome::Failed(reason),
        ))
    }

    /// Loads a flow, marking it expired (and saving that) when its link has run out.
    async fn load_flow(&self, id: FlowId) -> Result<Flow, CoreError> {
        let mut flow = self
            .ports
            .flows
            .find_flow(id)
            .await?
            .ok_or(CoreError::NotFound("flow"))?;
        let version = flow.version;
        if flow.expire_if_due(self.now()) {
            match self.ports.flows.update_flow(&flow, version).await {
                // Someone else changed it meanwhile; what they stored wins.
                Err(StoreError::Conflict(_)) => {
                    flow = self
                        .ports
                        .flows
                        .find_flow(id)
                        .await?
                        .ok_or(CoreError::NotFound("flow"))?;
                }
                other => other?,
            }
        }
        Ok(flow)
    }

    /// Loads a flow that must still be live.
    async fn load_live(&self, id: FlowId) -> Result<Flow, CoreError> {
        let flow = self.load_flow(id).await?;
        match flow.status {
            FlowStatus::Expired => Err(CoreError::Flow(FlowError::Expired)),
            ref s if s.is_terminal() => Err(CoreError::Flow(FlowError::Finished(s.name()))),
            _ => Ok(flow),
        }
    }

    /// Applies an event to the flow as loaded and saves it with a compare-and-swap: the
    /// step is refused ([`CoreError::Busy`]) when anything changed since.
    async fn step(&self, mut flow: Flow, event: FlowEvent) -> Result<Flow, CoreError> {
        let version = flow.version;
        let applied = flow.apply(event, self.now());
        if let Err(e) = applied {
            if e == FlowError::Expired {
                self.save(&flow, version).await?;
            }
            return Err(e.into());
        }
        self.save(&flow, version).await?;
        Ok(flow)
    }

    /// Applies the outcome of a bank call to the latest version of the flow, re-reading it
    /// when another request changed it meanwhile: the bank's answer must not be lost.
    async fn step_latest(&self, id: FlowId, event: FlowEvent) -> Result<Flow, CoreError> {
        for _ in 0..CAS_RETRIES {
            let flow = self.load_flow(id).await?;
            match self.step(flow, event.clone()).await {
                Err(CoreError::Busy) => continue,
                other => return other,
            }
        }
        Err(CoreError::Busy)
    }

    async fn save(&self, flow: &Flow, version: u64) -> Result<(), CoreError> {
        match self.ports.flows.update_flow(flow, version).await {
            Err(StoreError::Conflict(_)) => Err(CoreError::Busy),
            other => Ok(other?),
        }
    }
}

fn bank_failure(e: &BankError, otherwise: FailureReason) -> FailureReason {
    match e {
        BankError::Locked => FailureReason::AccountLocked,
        BankError::Unavailable(_) | BankError::UnknownInstitution => FailureReason::BankUnavailable,
        _ => otherwise,
    }
}

fn failure_of(flow: &Flow) -> CoreError {
    match flow.status {
        FlowStatus::Failed { reason } => CoreError::FlowFailed(reason),
        FlowStatus::Expired => CoreError::Flow(FlowError::Expired),
        _ => CoreError::Flow(FlowError::Finished(flow.status.name())),
    }
}
