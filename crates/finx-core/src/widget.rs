use chrono::TimeDelta;
use finx_domain::bank::{Account, BalanceStatus, Institution, SyncStatus};
use finx_domain::flow::{
    FailureReason, Flow, FlowError, FlowEvent, FlowStatus, KeptCode, MAX_ATTEMPTS, Outcome,
    callback_url,
};
use finx_domain::ids::{AccessId, FlowId, GrantId, InstitutionId};
use finx_domain::sca::{BankStep, ScaError, ScaState, StepAnswer, StepFailure};
use finx_domain::scope::ScopeItem;
use finx_domain::secret::ReturnNonce;
use finx_domain::secret::{AuthorizationCode, BrowserToken};
use finx_domain::token::{CodeRecord, Grant};
use finx_domain::webhook::{Event, EventData, RevokeReason};
use finx_ports::{
    BankCredentials, BankError, BankReply, ConsentRequest, Presence, PsuContext, ReturnTo,
    StoreError,
};
use url::Url;

use crate::error::invalid;
use crate::{CoreError, Finx};

/// How often a step re-reads the flow when another request changed it meanwhile.
const CAS_RETRIES: usize = 5;

/// How far a login got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginStep {
    /// The bank asks for more (SCA) next.
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
            Some(i) => self.bank(self.ports.bank.institution(i)).await?,
            None => None,
        };
        Ok(WidgetView { flow, institution })
    }

    /// The bank access a flow's data is written under.
    #[must_use]
    pub fn access_of(flow: FlowId) -> AccessId {
        AccessId::derive(&[&flow.to_string()])
    }

    /// The flow as stored now (marked expired when its link has run out), without asking
    /// the bank anything: for checks that need no bank details.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] for an unknown flow.
    pub async fn flow(&self, id: FlowId) -> Result<Flow, CoreError> {
        self.load_flow(id).await
    }

    /// A fresh browser token, for a browser that has none yet (the widget sets it as a
    /// cookie).
    #[must_use]
    pub fn new_browser_token(&self) -> BrowserToken {
        BrowserToken::from_random(self.ports.random.bytes32())
    }

    /// Binds the flow to the browser presenting `browser` when no browser holds it yet, and
    /// otherwise checks that this is that browser. The widget calls it before it shows or
    /// changes anything: whoever else holds the link sees no bank data and can do nothing.
    ///
    /// # Errors
    /// [`CoreError::Flow`] with [`FlowError::OtherBrowser`] for another browser (or a
    /// malformed token); [`CoreError::NotFound`] for an unknown flow.
    pub async fn bind_browser(&self, id: FlowId, browser: &str) -> Result<(), CoreError> {
        let token = BrowserToken::from_presented(browser)
            .map_err(|_| CoreError::Flow(FlowError::OtherBrowser))?;
        let hashes = self.hasher.candidates(&token);
        for _ in 0..CAS_RETRIES {
            let mut flow = self.load_flow(id).await?;
            let version = flow.version;
            // Bound before a hash-key rotation: the browser's hash under a previous key.
            if flow.browser.is_some_and(|held| hashes[1..].contains(&held)) {
                return Ok(());
            }
            if !flow.bind_browser(hashes[0])? {
                return Ok(());
            }
            match self.save(&flow, version).await {
                Err(CoreError::Busy) => continue,
                other => return other,
            }
        }
        Err(CoreError::Busy)
    }

    /// Banks whose name contains `query`, or whose BIC or bank code equals it.
    ///
    /// # Errors
    /// When the connector fails.
    pub async fn search_institutions(&self, query: &str) -> Result<Vec<Institution>, CoreError> {
        if query.len() > 200 {
            return Err(invalid("q", "at most 200 bytes"));
        }
        Ok(self
            .bank(self.ports.bank.search_institutions(query))
            .await?)
    }

    /// A page of the bank catalog (`GET /rest/catalog/banks`): banks whose name contains
    /// `query`, or whose BIC or bank code equals it (every bank for a blank one), in
    /// `country` when given, by name; the ids are what `provider_id` accepts. Returns at
    /// most `count` (1 to 100) after `offset`, and whether more follow.
    ///
    /// # Errors
    /// [`CoreError::Invalid`] for a query over 200 bytes, a country that is not two
    /// letters, a count out of range or an offset over 100,000.
    pub async fn bank_catalog(
        &self,
        query: &str,
        country: Option<&str>,
        offset: u32,
        count: u32,
    ) -> Result<(Vec<Institution>, bool), CoreError> {
        if query.len() > 200 {
            return Err(invalid("q", "at most 200 bytes"));
        }
        if country.is_some_and(|c| c.len() != 2 || !c.bytes().all(|b| b.is_ascii_alphabetic())) {
            return Err(invalid("country", "an ISO 3166 country code, e.g. DE"));
        }
        if !(1..=100).contains(&count) {
            return Err(invalid("count", "must be 1 to 100"));
        }
        if offset > 100_000 {
            return Err(invalid("offset", "at most 100000"));
        }
        let mut banks = self
            .bank(
                self.ports
                    .bank
                    .catalog(query, country.map(str::to_owned), offset, count + 1),
            )
            .await?;
        let more = banks.len() > usize::try_from(count).unwrap_or(usize::MAX);
        banks.truncate(usize::try_from(count).unwrap_or(usize::MAX));
        Ok((banks, more))
    }

    /// The end user picks a bank.
    ///
    /// # Errors
    /// [`CoreError::Invalid`] for an unknown bank; [`CoreError::Flow`] when not allowed now.
    pub async fn select_bank(&self, id: FlowId, institution: &str) -> Result<Flow, CoreError> {
        let institution =
            InstitutionId::parse(institution).map_err(|e| invalid("institution", e))?;
        if self
            .bank(self.ports.bank.institution(&institution))
            .await?
            .is_none()
        {
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

    /// Starts the dialog with the chosen bank, once: a flow whose bank is chosen asks the
    /// bank what comes first (a login form, a redirect, a decoupled approval). The widget
    /// calls it when it shows such a flow; a flow already at the bank is returned as it is.
    ///
    /// # Errors
    /// [`CoreError::FlowFailed`] when the bank cannot start (the flow then failed);
    /// [`CoreError::Flow`] when the flow is not at that point.
    pub async fn open_at_bank(&self, id: FlowId) -> Result<Flow, CoreError> {
        self.open_at_bank_as(id, PsuContext::default()).await
    }

    /// [`open_at_bank`](Self::open_at_bank) for the end user at `psu` (their address and
    /// browser, which banks want to see while the user is present).
    ///
    /// # Errors
    /// As [`open_at_bank`](Self::open_at_bank).
    pub async fn open_at_bank_as(&self, id: FlowId, psu: PsuContext) -> Result<Flow, CoreError> {
        let flow = self.load_live(id).await?;
        let FlowStatus::BankSelected { institution } = &flow.status else {
            return Ok(flow);
        };
        let institution = institution.clone();
        let version = flow.version;
        let today = self.now().date_naive();
        let ibans = flow
            .params
            .accounts
            .iter()
            .filter_map(|a| match a {
                finx_domain::reference::AccountReference::Iban(i) => Some(i.to_string()),
                _ => None,
            })
            .collect();
        // An ongoing flow asks for a recurring consent: `consent_days` long, with as many
        // unattended accesses a day as finX's policy uses.
        let request = if flow.params.ongoing.is_some() {
            ConsentRequest {
                psu,
                ibans,
                recurring: true,
                valid_until: today + TimeDelta::days(i64::from(self.consent_days) - 1),
                frequency_per_day: self.sync.per_day,
            }
        } else {
            ConsentRequest {
                psu,
                ibans,
                recurring: false,
                valid_until: today + TimeDelta::days(1),
                frequency_per_day: 1,
            }
        };
        let (nonce, return_to) = self.return_to(id);
        let event = match self
            .bank_at(
                &institution,
                "begin",
                self.ports.bank.begin(&institution, &request, &return_to),
            )
            .await
        {
            Ok(reply) => {
                self.reply_event(&institution, reply, &nonce, &request.psu)
                    .await
            }
            Err(BankError::CancelledByUser) => FlowEvent::Cancelled,
            Err(e) => FlowEvent::Failed(bank_failure(&e, FailureReason::BankUnavailable)),
        };
        // Only if nothing changed meanwhile: a concurrent start, or the user picking another
        // bank, wins over this one.
        let latest = self.load_live(id).await?;
        if latest.version != version {
            return Ok(latest);
        }
        self.settle(id, latest, event, |f| {
            matches!(&f.status, FlowStatus::BankSelected { institution: i } if *i == institution)
        })
        .await
    }

    /// The end user answers the step the bank asked: a login form, a method choice, a TAN,
    /// or a poll of a decoupled approval. A login or TAN try is counted before the bank
    /// sees it, so no interleaving of requests gets more than three per flow. Returns the
    /// flow after the bank's answer: at the next step, or with the accounts on offer.
    ///
    /// # Errors
    /// [`CoreError::Invalid`] for an answer that does not fit the step (nothing counted);
    /// [`CoreError::CredentialsInvalid`] or [`CoreError::TanInvalid`] while tries are left;
    /// [`CoreError::FlowFailed`] when the flow ended (three wrong tries, locked, rejected,
    /// expired, bank unavailable); [`CoreError::Flow`] with `Finished("cancelled")` when the
    /// end user cancelled at the bank, with `AttemptsExhausted` when tries are used up, and
    /// otherwise when no step waits for this answer.
    pub async fn submit_step(&self, id: FlowId, answer: StepAnswer) -> Result<Flow, CoreError> {
        self.submit_step_as(id, answer, &PsuContext::default())
            .await
    }

    /// [`submit_step`](Self::submit_step) for the end user at `psu`, whose address the bank
    /// sees on the account list it gives once the authorisation is done.
    ///
    /// # Errors
    /// As [`submit_step`](Self::submit_step).
    pub async fn submit_step_as(
        &self,
        id: FlowId,
        answer: StepAnswer,
        psu: &PsuContext,
    ) -> Result<Flow, CoreError> {
        let flow = self.load_live(id).await?;
        self.answer_bank(flow, answer, psu).await
    }

    async fn answer_bank(
        &self,
        flow: Flow,
        answer: StepAnswer,
        psu: &PsuContext,
    ) -> Result<Flow, CoreError> {
        let id = flow.id;
        let FlowStatus::AtBank {
            institution,
            session,
            ..
        } = &flow.status
        else {
            return Err(illegal(answer.name(), &flow));
        };
        let (institution, session) = (institution.clone(), session.clone());
        // A bank that sends the user to the same page again still holds the return address
        // it was given first: keep that return's check rather than make a new one.
        let same_trip = match (&flow.status, flow.asked()) {
            (
                FlowStatus::AtBank {
                    return_check: Some(check),
                    ..
                },
                Some(BankStep::Redirect { url }),
            ) => Some((*check, url.clone())),
            _ => None,
        };
        let flow = match self.step(flow, FlowEvent::Answered(answer.clone())).await {
            Err(CoreError::Flow(FlowError::Sca(ScaError::AnswerMismatch { step, why }))) => {
                return Err(invalid(step, why));
            }
            other => other?,
        };
        let (nonce, return_to) = self.return_to(id);
        let event = match self
            .bank_at(
                &institution,
                "answer",
                self.ports
                    .bank
                    .answer(&institution, &session, &answer, &return_to),
            )
            .await
        {
            Ok(reply) => self.reply_event(&institution, reply, &nonce, psu).await,
            Err(e) => FlowEvent::BankRejected(step_failure(&e)),
        };
        let event = match (event, same_trip) {
            (
                FlowEvent::BankAsked {
                    session,
                    step: BankStep::Redirect { url },
                    return_check: _,
                },
                Some((check, earlier)),
            ) if url == earlier => FlowEvent::BankAsked {
                session,
                step: BankStep::Redirect { url },
                return_check: Some(check),
            },
            (event, _) => event,
        };
        let rejected = match &event {
            FlowEvent::BankRejected(f) => Some(*f),
            _ => None,
        };
        let flow = self
            .settle(id, flow, event, |f| match &f.status {
                FlowStatus::AtBank {
                    session: s, dialog, ..
                } => *s == session && matches!(dialog.state(), ScaState::Answered(_)),
                _ => false,
            })
            .await?;
        match (&flow.status, rejected) {
            (FlowStatus::AtBank { .. }, Some(StepFailure::WrongCredentials)) => {
                Err(CoreError::CredentialsInvalid {
                    attempts_left: MAX_ATTEMPTS.saturating_sub(flow.login_attempts),
                })
            }
            (FlowStatus::AtBank { .. }, Some(StepFailure::WrongTan)) => {
                Err(CoreError::TanInvalid {
                    attempts_left: MAX_ATTEMPTS.saturating_sub(flow.tan_attempts),
                })
            }
            (s, _) if s.is_terminal() => Err(failure_of(&flow)),
            _ => Ok(flow),
        }
    }

    /// The end user is back from the bank's pages, at finX's return route with the `state`
    /// the bank was given and whether it was the success (`ok`) or the failure address, and
    /// the authorisation `code` a bank's OAuth server sent along.
    /// Only the return this flow awaits counts, and only once; the bank is then asked how
    /// the authorisation ended (the route taken is a hint, not proof).
    ///
    /// # Errors
    /// [`CoreError::Invalid`] for a `state` that is not the return the flow awaits (forged,
    /// replayed, another flow's); otherwise as [`submit_step`](Self::submit_step).
    pub async fn return_from_bank(
        &self,
        id: FlowId,
        nonce: &str,
        ok: bool,
        code: Option<&str>,
    ) -> Result<Flow, CoreError> {
        self.return_from_bank_as(id, nonce, ok, code, &PsuContext::default())
            .await
    }

    /// [`return_from_bank`](Self::return_from_bank) for the end user at `psu`.
    ///
    /// # Errors
    /// As [`return_from_bank`](Self::return_from_bank).
    pub async fn return_from_bank_as(
        &self,
        id: FlowId,
        nonce: &str,
        ok: bool,
        code: Option<&str>,
        psu: &PsuContext,
    ) -> Result<Flow, CoreError> {
        let not_awaited = || invalid("state", "not the return this flow awaits");
        let nonce = ReturnNonce::from_presented(nonce).map_err(|_| not_awaited())?;
        let flow = self.load_live(id).await?;
        if !self.awaits(&flow, &nonce) {
            return Err(not_awaited());
        }
        // A bank's OAuth authorisation comes back with a code to exchange.
        let answer = match code.map(str::trim).filter(|c| !c.is_empty()) {
            Some(c) if ok && c.len() <= 2048 => StepAnswer::Authorized { code: c.to_owned() },
            Some(_) if ok => return Err(invalid("code", "over 2048 bytes")),
            _ => StepAnswer::Returned { ok },
        };
        self.answer_bank(flow, answer, psu).await
    }

    /// Whether `nonce` is the return the flow `id` awaits now (a redirect step asked, and
    /// the nonce's keyed hash the one kept), without using it up: the return route checks
    /// this before it binds a browser or shows anything.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] for an unknown flow; [`CoreError::Store`].
    pub async fn awaits_return(&self, id: FlowId, nonce: &str) -> Result<bool, CoreError> {
        let Ok(nonce) = ReturnNonce::from_presented(nonce) else {
            return Ok(false);
        };
        let flow = self.load_flow(id).await?;
        Ok(self.awaits(&flow, &nonce))
    }

    /// Whether `flow` waits for the return with `nonce`: a redirect step asked, and the
    /// nonce's keyed hash the one kept (compared in constant time, `TokenHash`'s equality).
    fn awaits(&self, flow: &Flow, nonce: &ReturnNonce) -> bool {
        match &flow.status {
            FlowStatus::AtBank {
                return_check: Some(check),
                ..
            } => {
                self.hasher.matches(nonce, check)
                    && matches!(flow.asked(), Some(BankStep::Redirect { .. }))
            }
            _ => false,
        }
    }

    /// Asks the bank whether a decoupled approval happened, no sooner than the bank asked
    /// to be polled: earlier calls (a page reloading too often, two tabs) return the flow
    /// without asking the bank, as does a poll while another is with the bank.
    ///
    /// # Errors
    /// As [`submit_step`](Self::submit_step).
    pub async fn poll_bank(&self, id: FlowId) -> Result<Flow, CoreError> {
        self.poll_bank_as(id, &PsuContext::default()).await
    }

    /// [`poll_bank`](Self::poll_bank) for the end user at `psu` (the waiting page).
    ///
    /// # Errors
    /// As [`submit_step`](Self::submit_step).
    pub async fn poll_bank_as(&self, id: FlowId, psu: &PsuContext) -> Result<Flow, CoreError> {
        let flow = self.load_live(id).await?;
        let (
            FlowStatus::AtBank { since, .. },
            Some(BankStep::Decoupled {
                poll_after_seconds, ..
            }),
        ) = (&flow.status, flow.asked())
        else {
            return Ok(flow);
        };
        if self.now() < *since + TimeDelta::seconds(i64::from(*poll_after_seconds)) {
            return Ok(flow);
        }
        match self.answer_bank(flow, StepAnswer::Poll, psu).await {
            Err(CoreError::Busy) => self.load_flow(id).await,
            other => other,
        }
    }

    /// Fails a flow whose answer the bank never replied to: the request that took it to the
    /// bank is gone (its instance died) and, every bank call being bounded by the bank
    /// timeout (an answer takes at most two: the answer and the account list), no reply can
    /// come any more once three times that has passed. The widget calls it
    /// while it shows the waiting page, so the user is told rather than kept waiting until
    /// the link expires. Returns the flow as it is then.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] for an unknown flow; [`CoreError::Store`].
    pub async fn fail_if_stalled(&self, id: FlowId) -> Result<Flow, CoreError> {
        let flow = self.load_flow(id).await?;
        let stalled = match &flow.status {
            FlowStatus::AtBank { dialog, since, .. } => {
                matches!(dialog.state(), ScaState::Answered(_))
                    && self.now()
                        >= *since
                            + TimeDelta::from_std(self.bank_timeout * 3).unwrap_or(TimeDelta::MAX)
            }
            _ => false,
        };
        if !stalled {
            return Ok(flow);
        }
        match self
            .step(flow, FlowEvent::Failed(FailureReason::BankUnavailable))
            .await
        {
            // Someone moved it meanwhile (the reply came after all): theirs wins.
            Err(CoreError::Busy) => self.load_flow(id).await,
            other => other,
        }
    }

    /// The state and return addresses for a bank call: the nonce's keyed hash is kept only
    /// if the bank answers with a redirect.
    fn return_to(&self, id: FlowId) -> (ReturnNonce, ReturnTo) {
        let nonce = ReturnNonce::from_random(self.ports.random.bytes32());
        let state = format!("{id}.{}", nonce.expose());
        let with = |ok: &str| {
            let mut url = self.return_url.clone();
            url.query_pairs_mut()
                .append_pair("state", &state)
                .append_pair("ok", ok);
            url
        };
        let return_to = ReturnTo {
            ok: with("1"),
            nok: with("0"),
        };
        (nonce, return_to)
    }

    /// Splits the `state` of a return from the bank into the flow it names and its nonce.
    ///
    /// # Errors
    /// [`CoreError::Invalid`] when it is not one finX made.
    pub fn return_state(state: &str) -> Result<(FlowId, String), CoreError> {
        let bad = || invalid("state", "not a return finX made");
        let (flow, nonce) = state.split_once('.').ok_or_else(bad)?;
        let flow = FlowId::parse(flow).map_err(|_| bad())?;
        Ok((flow, nonce.to_owned()))
    }

    /// The flow event for the bank's reply: its next step, or, once it is done, the
    /// accounts of the consent.
    async fn reply_event(
        &self,
        institution: &InstitutionId,
        reply: BankReply,
        nonce: &ReturnNonce,
        psu: &PsuContext,
    ) -> FlowEvent {
        match reply {
            BankReply::Next { session, step } => {
                let return_check =
                    matches!(step, BankStep::Redirect { .. }).then(|| self.hasher.hash(nonce));
                FlowEvent::BankAsked {
                    session,
                    step,
                    return_check,
                }
            }
            BankReply::Done { session, consent } => {
                match self
                    .bank_at(
                        institution,
                        "accounts",
                        self.ports
                            .bank
                            .accounts(&session, &Presence::Present(psu.clone())),
                    )
                    .await
                {
                    Ok(accounts) => FlowEvent::ScaPassed {
                        session,
                        consent,
                        accounts,
                    },
                    Err(e) => FlowEvent::Failed(bank_failure(&e, FailureReason::BankUnavailable)),
                }
            }
        }
    }

    /// Applies what the bank said to the flow as it was when the bank was asked, or, when
    /// another request changed it meanwhile, to the latest flow if that still waits for this
    /// answer (`waits`): a reply for a bank or session the flow has left is dropped, never
    /// applied to the new one. A reply that breaks the dialog's rules (a consent before the
    /// step asked was answered, a malformed step, too many steps, a step nobody asked for)
    /// fails the flow: a misbehaving bank never leaves it hanging.
    async fn settle(
        &self,
        id: FlowId,
        flow: Flow,
        event: FlowEvent,
        waits: impl Fn(&Flow) -> bool,
    ) -> Result<Flow, CoreError> {
        let mut current = flow;
        let mut applied = Err(CoreError::Busy);
        for _ in 0..CAS_RETRIES {
            if current.status.is_terminal() {
                return Err(failure_of(&current));
            }
            if !waits(&current) {
                return Ok(current);
            }
            applied = self.step(current.clone(), event.clone()).await;
            let refused = matches!(
                applied,
                Err(CoreError::Flow(
                    FlowError::Sca(_) | FlowError::IllegalTransition { .. }
                ))
            );
            if !refused && !matches!(applied, Err(CoreError::Busy)) {
                break;
            }
            // Refused or raced: judge the reply only against the flow as it is now.
            let latest = self.load_flow(id).await?;
            if refused && latest.version == current.version {
                break;
            }
            current = latest;
        }
        match applied {
            Err(CoreError::Flow(FlowError::Sca(_) | FlowError::IllegalTransition { .. })) => {
                let flow = self
                    .step_latest(id, FlowEvent::Failed(FailureReason::BankUnavailable))
                    .await?;
                Err(failure_of(&flow))
            }
            other => other,
        }
    }

    /// The end user logs in with the classic two-field form (a name and a PIN): the answer
    /// to the bank's login step, its first plain field taking the name and its first
    /// secret field the PIN. For callers that drive a flow without the widget.
    ///
    /// # Errors
    /// As [`submit_step`](Self::submit_step); [`CoreError::Invalid`] when the bank's form
    /// is not such a form, or the values are empty or over 256 bytes.
    pub async fn submit_credentials(
        &self,
        id: FlowId,
        credentials: &BankCredentials,
    ) -> Result<LoginStep, CoreError> {
        if credentials.user.is_empty()
            || credentials.user.len() > 256
            || credentials.secret.is_empty()
            || credentials.secret.len() > 256
        {
            return Err(invalid(
                "credentials",
                "user name and PIN must be 1 to 256 bytes",
            ));
        }
        let flow = self.open_at_bank(id).await?;
        let Some(BankStep::Login { fields }) = flow.asked() else {
            return Err(illegal("login", &flow));
        };
        let user = fields.iter().find(|f| !f.secret);
        let pin = fields.iter().find(|f| f.secret);
        let (Some(user), Some(pin), 2) = (user, pin, fields.len()) else {
            return Err(invalid(
                "credentials",
                "the bank's login form has other fields",
            ));
        };
        let answer = StepAnswer::Login(vec![
            (user.id.clone(), credentials.user.clone()),
            (pin.id.clone(), credentials.secret.clone()),
        ]);
        let flow = self
            .answer_bank(flow, answer, &PsuContext::default())
            .await?;
        Ok(match flow.status {
            FlowStatus::ScaPassed { .. } => LoginStep::AccountsOffered,
            _ => LoginStep::ScaRequired,
        })
    }

    /// The end user chooses an SCA method among those the bank offered.
    ///
    /// # Errors
    /// As [`submit_step`](Self::submit_step).
    pub async fn choose_method(&self, id: FlowId, method: &str) -> Result<Flow, CoreError> {
        self.submit_step(id, StepAnswer::Method(method.to_owned()))
            .await
    }

    /// The end user enters the TAN.
    ///
    /// # Errors
    /// As [`submit_step`](Self::submit_step).
    pub async fn submit_tan(&self, id: FlowId, tan: &str) -> Result<Flow, CoreError> {
        self.submit_step(id, StepAnswer::Tan(tan.trim().to_owned()))
            .await
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

    /// Fetches the chosen accounts' data, creates the grant and its code, completes the flow
    /// and returns the redirect to the customer: [`start_completion`](Self::start_completion)
    /// and [`run_completion`](Self::run_completion) in one call.
    ///
    /// # Errors
    /// As those two.
    pub async fn complete(&self, id: FlowId) -> Result<Url, CoreError> {
        if !self.start_completion(id).await? {
            return Err(CoreError::Busy);
        }
        self.run_completion(id).await
    }

    /// Claims the flow for the data fetch (`Syncing`), so the data is fetched once. Returns
    /// whether this call claimed it: only then must the caller run
    /// [`run_completion`](Self::run_completion). A flow already claimed is left as it is;
    /// the caller only has to wait for it.
    ///
    /// # Errors
    /// [`CoreError::Flow`] when no accounts are chosen yet, or the flow has ended;
    /// [`CoreError::Busy`] when another request changed it at the same moment.
    pub async fn start_completion(&self, id: FlowId) -> Result<bool, CoreError> {
        let flow = self.load_live(id).await?;
        match flow.status {
            FlowStatus::Syncing { .. } => Ok(false),
            FlowStatus::AccountsChosen { .. } => {
                self.step(flow, FlowEvent::SyncStarted).await?;
                Ok(true)
            }
            _ => Err(illegal("completion", &flow)),
        }
    }

    /// Runs the data fetch of a claimed flow: a job the server owns, not a request, so a
    /// browser that goes away changes nothing. Fetches `sync_period` days per chosen account
    /// (every bank call bounded by the bank timeout) and writes each account's transactions
    /// in batches, so the store's writer is never held for long. Then creates the grant and
    /// its code and completes the flow, keeping the code for a reload of the last page.
    ///
    /// Whatever goes wrong after the first write (the bank, the store, a cancel or expiry
    /// meanwhile), the data written is deleted and a grant created is revoked: nothing is left
    /// without an owner.
    ///
    /// # Errors
    /// [`CoreError::FlowFailed`] when the bank fails (the flow is then failed);
    /// [`CoreError::Flow`] when the flow is not claimed or has ended; [`CoreError::Store`].
    pub async fn run_completion(&self, id: FlowId) -> Result<Url, CoreError> {
        self.run_completion_as(id, &PsuContext::default()).await
    }

    /// [`run_completion`](Self::run_completion) for the end user at `psu`, who waits on the
    /// widget while the data is read: the bank is told they are present (XS2A
    /// `PSU-IP-Address`), so this read does not count against the consent's unattended
    /// accesses a day.
    ///
    /// # Errors
    /// As [`run_completion`](Self::run_completion).
    pub async fn run_completion_as(&self, id: FlowId, psu: &PsuContext) -> Result<Url, CoreError> {
        let flow = self.load_live(id).await?;
        let FlowStatus::Syncing { chosen, .. } = &flow.status else {
            return Err(illegal("completion", &flow));
        };
        let access_id = Self::data_access(&flow);
        match self.fetch_and_grant(&flow, chosen, &access_id, psu).await {
            Ok(url) => Ok(url),
            Err(e) => {
                // Best effort: what a failed delete leaves, the purge deletes once it is older
                // than a link's lifetime, since no grant holds it. A renewal's access keeps
                // its data: its old grants still hold it.
                if !Self::renews(&flow) {
                    let _ = self.ports.data.delete_access(&access_id).await;
                    if flow.params.ongoing.is_some() {
                        // A new access that will never get its grant: its record and
                        // recurring consent end now rather than at the purge.
                        let _ = self
                            .ports
                            .accesses
                            .delete_access_record(&access_id, self.now())
                            .await;
                        if let FlowStatus::Syncing {
                            session,
                            institution,
                            ..
                        } = &flow.status
                        {
                            let _ = self
                                .bank_at(
                                    institution,
                                    "end_consent",
                                    self.ports.bank.end_consent(session),
                                )
                                .await;
                        }
                    }
                }
                if matches!(e, CoreError::Store(_) | CoreError::Bank(_)) {
                    let _ = self
                        .step_latest(id, FlowEvent::Failed(FailureReason::SyncFailed))
                        .await;
                }
                Err(e)
            }
        }
    }

    async fn fetch_and_grant(
        &self,
        flow: &Flow,
        chosen: &[finx_domain::bank::AccountDetails],
        access_id: &AccessId,
        psu: &PsuContext,
    ) -> Result<Url, CoreError> {
        let FlowStatus::Syncing {
            session,
            consent,
            institution,
            ..
        } = &flow.status
        else {
            return Err(illegal("completion", flow));
        };
        let id = flow.id;
        let mut last_booked = None;
        let now = self.now();
        let today = now.date_naive();
        let from = today - TimeDelta::days(i64::from(flow.params.sync_period.days()) - 1);
        let mut account_ids = Vec::with_capacity(chosen.len());
        let present = Presence::Present(psu.clone());
        for details in chosen {
            // Only what the grant may read is fetched (an ongoing access syncs everything).
            let wants = |item| flow.params.ongoing.is_some() || flow.params.scope.contains(item);
            let fetched = async {
                let balances = if wants(ScopeItem::Balance) {
                    self.bank_at(
                        institution,
                        "balances",
                        self.ports
                            .bank
                            .balances(session, &details.external_id, &present),
                    )
                    .await?
                } else {
                    Vec::new()
                };
                if !wants(ScopeItem::Transactions) {
                    return Ok((balances, Vec::new()));
                }
                let txs = self
                    .bank_at(
                        institution,
                        "transactions",
                        self.ports.bank.transactions(
                            session,
                            &details.external_id,
                            from,
                            today,
                            &present,
                        ),
                    )
                    .await?;
                Ok::<_, BankError>((balances, txs))
            };
            let (balances, txs) = match fetched.await {
                Ok(d) => d,
                Err(e) => {
                    let failed = FlowEvent::Failed(bank_failure(&e, FailureReason::SyncFailed));
                    let flow = self.step_latest(id, failed).await?;
                    return Err(failure_of(&flow));
                }
            };
            let account = Account {
                id: Account::id_for(access_id, &details.external_id),
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
            if Self::renews(flow) {
                // The access has history: link the whole fetch against it in one step, so a
                // payment booked meanwhile keeps its id however long the fetch.
                self.ports
                    .data
                    .sync_transactions(&account.id, &txs, now)
                    .await?;
            } else {
                self.write_transactions(&account.id, &txs, now).await?;
            }
            account_ids.push(account.id);
            last_booked = txs
                .iter()
                .filter(|t| t.booked)
                .map(|t| t.booked_on)
                .max()
                .max(last_booked);
        }
        if let Some(ongoing) = &flow.params.ongoing {
            self.keep_access(
                flow,
                ongoing,
                access_id,
                session,
                consent,
                chosen,
                institution,
                last_booked,
            )
            .await?;
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
            // One-time data is kept for the retention window only, and its grant with it;
            // an ongoing grant lives its full lifetime.
            expires_at: now
                + if flow.params.ongoing.is_some() {
                    self.lifetimes.grant
                } else {
                    self.onetime_retention.min(self.lifetimes.grant)
                },
            revoked_at: None,
            language: flow.params.language,
            verification: flow.params.verification.clone(),
        };
        let record = CodeRecord {
            hash: self.hasher.hash(&code),
            grant_id: grant.id,
            issued_at: now,
            expires_at: now + self.lifetimes.code,
            used_at: None,
        };
        self.ports.grants.insert_grant(&grant, &record).await?;
        // The grant exists before the flow says so. If the flow was cancelled, expired or
        // failed meanwhile, the code is never shown and the grant is revoked, its data with it.
        let completed = FlowEvent::Completed(grant.id, KeptCode(code.clone()));
        if let Err(e) = self.step_latest(id, completed).await {
            self.ports
                .grants
                .revoke_grant(grant.id, now, RevokeReason::FlowEnded)
                .await?;
            return Err(e);
        }
        Ok(callback_url(&flow.params, flow.id, &Outcome::Success(code)))
    }

    /// Writes what the bank reported for one account in batches of
    /// [`SYNC_BATCH`](crate::SYNC_BATCH), then drops the pending transactions it no longer
    /// reports. Each batch is its own store transaction: a long history never holds the
    /// store's writer for long.
    pub(crate) async fn write_transactions(
        &self,
        account: &finx_domain::ids::AccountId,
        txs: &[finx_domain::bank::TransactionDetails],
        now: finx_domain::Timestamp,
    ) -> Result<(), CoreError> {
        if txs.len() <= crate::SYNC_BATCH {
            self.ports.data.sync_transactions(account, txs, now).await?;
            return Ok(());
        }
        for batch in txs.chunks(crate::SYNC_BATCH) {
            self.ports
                .data
                .upsert_transactions(account, batch, now)
                .await?;
        }
        let keep: Vec<_> = txs
            .iter()
            .filter(|t| !t.booked)
            .map(|t| finx_domain::bank::Transaction::id_for(account, &t.external_id))
            .collect();
        self.ports.data.drop_pending_except(account, &keep).await?;
        Ok(())
    }

    /// The redirect back to the customer for a completed flow, with the code it handed out,
    /// as long as that code still works (unused, unexpired, its grant live): a reload of the
    /// last page brings the user back with the same code, never a second one.
    ///
    /// # Errors
    /// [`CoreError::Flow`] when the flow has not completed, or its code no longer works.
    pub async fn completion_redirect(&self, id: FlowId) -> Result<Url, CoreError> {
        let flow = self.load_flow(id).await?;
        let FlowStatus::Completed {
            code: Some(kept), ..
        } = &flow.status
        else {
            return Err(illegal("return", &flow));
        };
        let usable = self
            .find_code(&kept.0)
            .await?
            .is_some_and(|(_, (record, grant))| {
                finx_domain::token::check_redeem(&record, &grant, self.now()).is_ok()
            });
        if !usable {
            return Err(CoreError::Flow(FlowError::Finished("completed")));
        }
        Ok(callback_url(
            &flow.params,
            flow.id,
            &Outcome::Success(kept.0.clone()),
        ))
    }

    /// Fails the flows whose data fetch started before `started_before` and never ended (the
    /// instance running it died), and deletes what they wrote. The server runs this
    /// periodically with a cut-off well past the longest fetch. Returns how many.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn fail_stale_syncs(
        &self,
        started_before: finx_domain::Timestamp,
    ) -> Result<u64, CoreError> {
        let mut failed = 0;
        for flow in self.ports.flows.stale_syncing_flows(started_before).await? {
            // A renewal's access keeps its data: its old grants still hold it.
            let written = (!Self::renews(&flow)).then(|| Self::data_access(&flow));
            // A compare-and-swap on the version read: a fetch that completes meanwhile wins.
            if self
                .step(flow, FlowEvent::Failed(FailureReason::SyncFailed))
                .await
                .is_ok()
            {
                if let Some(access) = written {
                    self.ports.data.delete_access(&access).await?;
                }
                failed += 1;
            }
        }
        Ok(failed)
    }

    /// Runs a bank call within the bank timeout: a bank that does not answer in time is
    /// unavailable, which the end user is told.
    pub(crate) async fn bank<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, BankError>>,
    ) -> Result<T, BankError> {
        let call = std::pin::pin!(call);
        let deadline = self.ports.timer.sleep(self.bank_timeout);
        match futures::future::select(call, deadline).await {
            futures::future::Either::Left((answer, _)) => answer,
            futures::future::Either::Right(((), _)) => Err(BankError::Unavailable(format!(
                "no answer within {} s",
                self.bank_timeout.as_secs()
            ))),
        }
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

    /// The redirect back to the customer for a failed, expired or cancelled flow (the end
    /// user may cancel at the bank, too).
    ///
    /// # Errors
    /// [`CoreError::Flow`] when the flow has not ended that way.
    pub async fn failure_redirect(&self, id: FlowId) -> Result<Url, CoreError> {
        let flow = self.load_flow(id).await?;
        let outcome = match flow.status {
            FlowStatus::Failed { reason } => Outcome::Failed(reason),
            FlowStatus::Expired => Outcome::Failed(FailureReason::LinkExpired),
            FlowStatus::Cancelled => Outcome::Cancelled,
            _ => return Err(illegal("failure redirect", &flow)),
        };
        Ok(callback_url(&flow.params, flow.id, &outcome))
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
            let events = self.flow_end_events(&flow);
            match self.ports.flows.update_flow(&flow, version, &events).await {
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
        let was_over = flow.status.is_terminal();
        let bank = flow
            .status
            .institution()
            .or(flow.params.provider_id.as_ref())
            .map_or_else(|| "none".to_owned(), |i| i.as_str().to_owned());
        let applied = flow.apply(event, self.now());
        if let Err(e) = applied {
            if e == FlowError::Expired {
                self.save(&flow, version).await?;
                self.count_flow_end(was_over, &bank, &flow);
            }
            return Err(e.into());
        }
        self.save(&flow, version).await?;
        self.count_flow_end(was_over, &bank, &flow);
        Ok(flow)
    }

    /// Counts a flow this save ended, by bank and outcome.
    fn count_flow_end(&self, was_over: bool, bank: &str, flow: &Flow) {
        if !was_over && flow.status.is_terminal() {
            self.ports.telemetry.flow_ended(bank, flow.status.name());
        }
    }

    /// A call to the bank `bank` ([`bank`](Self::bank)'s time limit), counted with its
    /// operation, outcome and duration.
    pub(crate) async fn bank_at<T>(
        &self,
        bank: &InstitutionId,
        operation: &'static str,
        call: impl std::future::Future<Output = Result<T, BankError>>,
    ) -> Result<T, BankError> {
        let started = self.now();
        let result = self.bank(call).await;
        let took = (self.now() - started).to_std().unwrap_or_default();
        let outcome = result.as_ref().map_or_else(BankError::kind, |_| "ok");
        self.ports
            .telemetry
            .bank_call(bank.as_str(), operation, outcome, took);
        result
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

    /// Saves a flow; when this save ends it, with its `flow.completed` or `flow.failed`
    /// event (in the same store write).
    async fn save(&self, flow: &Flow, version: u64) -> Result<(), CoreError> {
        let events = self.flow_end_events(flow);
        match self.ports.flows.update_flow(flow, version, &events).await {
            Err(StoreError::Conflict(_)) => Err(CoreError::Busy),
            other => Ok(other?),
        }
    }

    /// The event of an ended flow (none for one still going): `flow.completed`, or
    /// `flow.failed` with the widget's failure code, `cancelled` or `link_expired`.
    fn flow_end_events(&self, flow: &Flow) -> Vec<Event> {
        let data = match &flow.status {
            FlowStatus::Completed { .. } => Some(EventData::FlowCompleted {
                flow_id: flow.id,
                access_id: Self::data_access(flow),
                user_id: flow.params.ongoing.as_ref().map(|o| o.user_id.clone()),
            }),
            FlowStatus::Failed { reason } => Some(EventData::FlowFailed {
                flow_id: flow.id,
                reason: reason.code(),
            }),
            FlowStatus::Cancelled => Some(EventData::FlowFailed {
                flow_id: flow.id,
                reason: "cancelled",
            }),
            FlowStatus::Expired => Some(EventData::FlowFailed {
                flow_id: flow.id,
                reason: FailureReason::LinkExpired.code(),
            }),
            _ => None,
        };
        // One event per flow: its id derives from the flow, so a later save of the ended
        // flow writes nothing new.
        data.map(|data| Event {
            id: Event::id_for("flow.end", flow.id.as_uuid().as_bytes()),
            client_id: flow.client_id.clone(),
            at: self.now(),
            data,
        })
        .into_iter()
        .collect()
    }
}

fn bank_failure(e: &BankError, otherwise: FailureReason) -> FailureReason {
    match e {
        BankError::Locked => FailureReason::AccountLocked,
        BankError::Unavailable(_)
        | BankError::RateLimited { .. }
        | BankError::UnknownInstitution => FailureReason::BankUnavailable,
        _ => otherwise,
    }
}

/// What a bank's refusal of an answer means for the dialog.
fn step_failure(e: &BankError) -> StepFailure {
    match e {
        BankError::InvalidCredentials => StepFailure::WrongCredentials,
        BankError::InvalidTan => StepFailure::WrongTan,
        BankError::Locked => StepFailure::Locked,
        BankError::Rejected => StepFailure::Rejected,
        BankError::CancelledByUser => StepFailure::CancelledAtBank,
        BankError::AuthorisationExpired
        | BankError::SessionExpired
        | BankError::ConsentExpired
        | BankError::ConsentRevoked => StepFailure::Expired,
        BankError::Unavailable(_)
        | BankError::RateLimited { .. }
        | BankError::UnknownInstitution
        | BankError::Unexpected(_) => StepFailure::Unavailable,
    }
}

fn failure_of(flow: &Flow) -> CoreError {
    match flow.status {
        FlowStatus::Failed { reason } => CoreError::FlowFailed(reason),
        FlowStatus::Expired => CoreError::Flow(FlowError::Expired),
        _ => CoreError::Flow(FlowError::Finished(flow.status.name())),
    }
}
