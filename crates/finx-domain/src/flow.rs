//! The one-time access flow: the state machine an end user walks through in the widget.
//!
//! ```text
//! Created ─▶ BankSelected ─▶ AtBank ─▶ ScaPassed ─▶ AccountsChosen ─▶ Syncing ─▶ Completed
//!    │            │  ▲          │ ▲ (the bank asks, the user answers: a ScaDialog)
//!    └────────────┴──┴──────────┴─┴──▶ Cancelled | Failed(reason) | Expired
//! ```
//! Once a bank is chosen, the bank leads: every step it asks for (login form, SCA method
//! choice, TAN, redirect to its pages, decoupled approval) is carried by a
//! [`ScaDialog`](crate::sca::ScaDialog) inside `AtBank`, whose rules the flow inherits: an
//! answer must fit the step asked, a consent only comes after every step the bank asked
//! for, and a login or TAN try is counted when the answer is given, before the bank sees it.
//! The flow keeps the counts (`login_attempts`, `tan_attempts`) and seeds every new dialog
//! with them, so choosing another bank never resets them: three tries per flow, however the
//! requests interleave. Every transition checks the link's expiry first. Illegal transitions
//! are errors, never panics. `Syncing` claims the flow before the data is fetched, so it is
//! fetched once.

use std::fmt;

use thiserror::Error;
use url::Url;

use crate::Timestamp;
use crate::bank::{AccountDetails, AccountType};
use crate::ids::{ClientId, FlowId, GrantId, InstitutionId};
use crate::reference::AccountReference;
use crate::sca::{
    BankStep, Consent, ScaDialog, ScaError, ScaState, StepAnswer, StepFailure, Verdict,
};
use crate::scope::Scope;
use crate::secret::{AuthorizationCode, TokenHash};
use crate::values::{Language, RedirectUri, State, SyncPeriod};

/// How many wrong passwords or wrong TANs end a flow.
pub const MAX_ATTEMPTS: u8 = 3;

/// What the customer asked for when creating the flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowParams {
    /// Where to send the end user back.
    pub redirect_uri: RedirectUri,
    /// Echoed back on the redirect.
    pub state: Option<State>,
    /// Widget language.
    pub language: Language,
    /// Accounts the customer already knows; the first IBAN's bank code preselects the bank.
    pub accounts: Vec<AccountReference>,
    /// Only offer accounts of these types (all when empty).
    pub account_types: Vec<AccountType>,
    /// Whether the end user may pick more than one account.
    pub allow_multi_selection: bool,
    /// Days of history to fetch.
    pub sync_period: SyncPeriod,
    /// A bank to preselect.
    pub provider_id: Option<InstitutionId>,
    /// What the resulting grant may read.
    pub scope: Scope,
    /// For an ongoing flow (`POST /ongoing/access`): the end user, and the access it renews.
    /// `None` for a one-time flow.
    pub ongoing: Option<crate::access::Ongoing>,
    /// For an account verification (`POST /onetime/account-verification`): what to verify.
    pub verification: Option<crate::verify::Verification>,
}

impl FlowParams {
    /// Whether the end user may see `account` under the `account_types` filter.
    #[must_use]
    pub fn offers(&self, account: &AccountDetails) -> bool {
        self.account_types.is_empty() || self.account_types.contains(&account.account_type)
    }

    /// Whether `account` is one the customer named in `accounts` (to preselect it).
    #[must_use]
    pub fn names(&self, account: &AccountDetails) -> bool {
        self.accounts.iter().any(|r| match r {
            AccountReference::Iban(i) => account.iban.as_ref() == Some(i),
            AccountReference::AccountNumber(n) => {
                account
                    .account_number
                    .as_deref()
                    .map(|a| a.trim_start_matches('0'))
                    == Some(n.trim_start_matches('0'))
            }
            AccountReference::CardLast4(l) => account.card_last4.as_deref() == Some(l.as_str()),
        })
    }
}

/// An opaque handle to an authenticated session at the bank, issued by the bank connector.
/// It may grant access to the end user's bank data, so its `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct BankSession(String);

impl BankSession {
    /// Wraps the connector's handle.
    #[must_use]
    pub fn new(handle: String) -> Self {
        Self(handle)
    }

    /// The handle, for the connector.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for BankSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BankSession([redacted])")
    }
}

/// The authorization code of a completed flow, kept (stores seal it at rest) so that a
/// reload of the last page sends the user back with the same code. Compared in constant
/// time; its `Debug` is redacted.
#[derive(Clone, Debug)]
pub struct KeptCode(pub AuthorizationCode);

impl PartialEq for KeptCode {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0)
    }
}

impl Eq for KeptCode {}

/// Why a flow failed. The code is what the customer receives as `error=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureReason {
    /// Wrong credentials three times.
    LoginFailed,
    /// The bank says the login is locked.
    AccountLocked,
    /// The bank could not be reached or refused service.
    BankUnavailable,
    /// Wrong TAN three times.
    ScaFailed,
    /// The bank rejected the authorisation, or the end user declined it in the bank's app.
    ScaRejected,
    /// The authorisation expired at the bank before it was finished.
    ScaExpired,
    /// No account could be offered (none, or none of the requested types).
    NoAccounts,
    /// Fetching the data failed.
    SyncFailed,
    /// The link expired.
    LinkExpired,
}

impl FailureReason {
    /// The machine-readable code.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::LoginFailed => "login_failed",
            Self::AccountLocked => "account_locked",
            Self::BankUnavailable => "bank_unavailable",
            Self::ScaFailed => "sca_failed",
            Self::ScaRejected => "sca_rejected",
            Self::ScaExpired => "sca_expired",
            Self::NoAccounts => "no_accounts",
            Self::SyncFailed => "sync_failed",
            Self::LinkExpired => "link_expired",
        }
    }

    /// Reads a code back.
    #[must_use]
    pub fn parse(code: &str) -> Option<Self> {
        [
            Self::LoginFailed,
            Self::AccountLocked,
            Self::BankUnavailable,
            Self::ScaFailed,
            Self::ScaRejected,
            Self::ScaExpired,
            Self::NoAccounts,
            Self::SyncFailed,
            Self::LinkExpired,
        ]
        .into_iter()
        .find(|r| r.code() == code)
    }
}

/// Where a flow stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowStatus {
    /// Waiting for the end user to pick a bank.
    Created,
    /// A bank is picked; waiting for the login.
    BankSelected {
        /// The bank.
        institution: InstitutionId,
    },
    /// In the dialog with the bank: the bank asked for a step, or has the end user's answer.
    AtBank {
        /// The bank.
        institution: InstitutionId,
        /// The bank session the dialog continues in.
        session: BankSession,
        /// The dialog and its rules.
        dialog: ScaDialog,
        /// When the dialog last moved: the bank asked (a decoupled approval is polled no
        /// sooner than the bank said after this), or the end user answered (an answer the
        /// bank never replied to, its instance gone, stalls the flow after a while).
        since: Timestamp,
        /// For a redirect step: the keyed hash of the nonce in finX's return address, so
        /// only the return the bank was given resumes the flow, and only once.
        return_check: Option<TokenHash>,
    },
    /// SCA passed; the accounts on offer are known.
    ScaPassed {
        /// The bank.
        institution: InstitutionId,
        /// The bank session.
        session: BankSession,
        /// What the end user allowed at the bank.
        consent: Consent,
        /// Accounts the end user may choose from (already filtered by `account_types`).
        offered: Vec<AccountDetails>,
    },
    /// The end user chose accounts.
    AccountsChosen {
        /// The bank.
        institution: InstitutionId,
        /// The bank session.
        session: BankSession,
        /// What the end user allowed at the bank.
        consent: Consent,
        /// The chosen accounts.
        chosen: Vec<AccountDetails>,
    },
    /// The chosen accounts' data is being fetched, by a task the server owns.
    Syncing {
        /// The bank.
        institution: InstitutionId,
        /// The bank session.
        session: BankSession,
        /// What the end user allowed at the bank.
        consent: Consent,
        /// The chosen accounts.
        chosen: Vec<AccountDetails>,
        /// When the fetch started: a fetch that has not ended long after is stale, and the
        /// server fails the flow.
        started_at: Timestamp,
    },
    /// Done: a grant and its code exist.
    Completed {
        /// The grant.
        grant_id: GrantId,
        /// The code handed out, kept so that a reload of the last page returns the same
        /// one (there is never a second code for a flow).
        code: Option<KeptCode>,
    },
    /// The end user cancelled.
    Cancelled,
    /// The flow failed.
    Failed {
        /// Why.
        reason: FailureReason,
    },
    /// The link expired before the flow was completed.
    Expired,
}

impl FlowStatus {
    /// Whether no further transition is possible.
    #[must_use]
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Completed { .. } | Self::Cancelled | Self::Failed { .. } | Self::Expired
        )
    }

    /// A short name, for errors and logs.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::BankSelected { .. } => "bank_selected",
            Self::AtBank { .. } => "at_bank",
            Self::ScaPassed { .. } => "sca_passed",
            Self::AccountsChosen { .. } => "accounts_chosen",
            Self::Syncing { .. } => "syncing",
            Self::Completed { .. } => "completed",
            Self::Cancelled => "cancelled",
            Self::Failed { .. } => "failed",
            Self::Expired => "expired",
        }
    }

    /// The bank, once one is selected and while the flow is live.
    #[must_use]
    pub fn institution(&self) -> Option<&InstitutionId> {
        match self {
            Self::BankSelected { institution }
            | Self::AtBank { institution, .. }
            | Self::ScaPassed { institution, .. }
            | Self::AccountsChosen { institution, .. }
            | Self::Syncing { institution, .. } => Some(institution),
            _ => None,
        }
    }
}

/// Something that happened in the widget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowEvent {
    /// The end user picked a bank (or the bank came from the customer's IBAN).
    BankSelected(InstitutionId),
    /// The bank asks for a step: the first, or the next once the last was answered.
    BankAsked {
        /// The bank session to continue in.
        session: BankSession,
        /// The step.
        step: BankStep,
        /// For a redirect step: the keyed hash of the nonce in the return address the bank
        /// was given.
        return_check: Option<TokenHash>,
    },
    /// The end user answers the step asked; a login or TAN try counts here, whatever the
    /// bank then says. Refused once [`MAX_ATTEMPTS`] tries of its kind were made.
    Answered(StepAnswer),
    /// The bank refused the answer.
    BankRejected(StepFailure),
    /// The bank is done (SCA passed, or was not needed): this consent, these accounts.
    ScaPassed {
        /// The bank session to continue in.
        session: BankSession,
        /// What the end user allowed.
        consent: Consent,
        /// Every account the bank returned; the flow keeps those `account_types` allows.
        accounts: Vec<AccountDetails>,
    },
    /// The end user chose these accounts (external ids).
    AccountsChosen(Vec<String>),
    /// Fetching the data starts.
    SyncStarted,
    /// The data is fetched, the grant created with this code.
    Completed(GrantId, KeptCode),
    /// The end user cancelled.
    Cancelled,
    /// Something failed for good.
    Failed(FailureReason),
}

/// An event that is not allowed now.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FlowError {
    /// The link expired; the flow is now `Expired`.
    #[error("the link has expired")]
    Expired,
    /// The flow is already finished.
    #[error("the flow is already {0}")]
    Finished(&'static str),
    /// The event does not fit the current step.
    #[error("{event} is not possible while the flow is {status}")]
    IllegalTransition {
        /// The event.
        event: &'static str,
        /// The status.
        status: &'static str,
    },
    /// Every login or TAN try of this flow is used up.
    #[error("no tries left")]
    AttemptsExhausted,
    /// The step does not fit the dialog with the bank.
    #[error(transparent)]
    Sca(ScaError),
    /// The chosen accounts are not acceptable.
    #[error("invalid account selection: {0}")]
    InvalidSelection(&'static str),
    /// The flow belongs to the browser that first opened its link; this is another one.
    #[error("the link is in use in another browser")]
    OtherBrowser,
}

/// A one-time access flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    /// Its id.
    pub id: FlowId,
    /// The customer that created it.
    pub client_id: ClientId,
    /// What the customer asked for.
    pub params: FlowParams,
    /// Creation time.
    pub created_at: Timestamp,
    /// The link's expiry (exclusive).
    pub expires_at: Timestamp,
    /// Where it stands.
    pub status: FlowStatus,
    /// The keyed hash of the browser token of the browser that first opened the link; every
    /// later step must come from that browser.
    pub browser: Option<TokenHash>,
    /// Login tries made so far (never reset).
    pub login_attempts: u8,
    /// TAN tries made so far (never reset).
    pub tan_attempts: u8,
    /// Bumped on every change, for the store's compare-and-swap.
    pub version: u64,
}

impl FlowEvent {
    fn name(&self) -> &'static str {
        match self {
            Self::BankSelected(_) => "bank selection",
            Self::BankAsked { .. } => "a step from the bank",
            Self::Answered(a) => a.name(),
            Self::BankRejected(_) => "a rejection from the bank",
            Self::ScaPassed { .. } => "SCA",
            Self::AccountsChosen(_) => "account selection",
            Self::SyncStarted => "data fetch",
            Self::Completed(..) => "completion",
            Self::Cancelled => "cancellation",
            Self::Failed(_) => "failure",
        }
    }
}

impl Flow {
    /// A new flow in `Created`, or `BankSelected` when the bank is already known.
    #[must_use]
    pub fn new(
        id: FlowId,
        client_id: ClientId,
        params: FlowParams,
        now: Timestamp,
        lifetime: chrono::TimeDelta,
        preselected: Option<InstitutionId>,
    ) -> Self {
        let status = match preselected {
            Some(institution) => FlowStatus::BankSelected { institution },
            None => FlowStatus::Created,
        };
        Self {
            id,
            client_id,
            params,
            created_at: now,
            expires_at: now + lifetime,
            status,
            browser: None,
            login_attempts: 0,
            tan_attempts: 0,
            version: 0,
        }
    }

    /// Binds the flow to the browser whose token hashes to `browser`, if no browser holds it
    /// yet. Returns whether it changed (then save it).
    ///
    /// # Errors
    /// [`FlowError::OtherBrowser`] when another browser holds it.
    pub fn bind_browser(&mut self, browser: TokenHash) -> Result<bool, FlowError> {
        match &self.browser {
            // Constant-time comparison (`TokenHash`'s equality).
            Some(held) if *held == browser => Ok(false),
            Some(_) => Err(FlowError::OtherBrowser),
            None => {
                self.browser = Some(browser);
                self.version += 1;
                Ok(true)
            }
        }
    }

    /// Moves a live flow past its expiry to `Expired`. Returns whether it did.
    pub fn expire_if_due(&mut self, now: Timestamp) -> bool {
        if self.status.is_terminal() || now < self.expires_at {
            return false;
        }
        self.status = FlowStatus::Expired;
        self.version += 1;
        true
    }

    /// Applies an event at `now`.
    ///
    /// # Errors
    /// [`FlowError::Expired`] when the link has expired (the flow is then `Expired` and should
    /// be saved), [`FlowError::Finished`] after a terminal state, and
    /// [`FlowError::IllegalTransition`] or [`FlowError::InvalidSelection`] otherwise. On error
    /// nothing but the expiry changes.
    pub fn apply(&mut self, event: FlowEvent, now: Timestamp) -> Result<(), FlowError> {
        if self.expire_if_due(now) {
            return Err(FlowError::Expired);
        }
        if self.status.is_terminal() {
            return Err(FlowError::Finished(self.status.name()));
        }
        let illegal = FlowError::IllegalTransition {
            event: event.name(),
            status: self.status.name(),
        };
        let current = std::mem::replace(&mut self.status, FlowStatus::Created);
        match self.next(current.clone(), event, illegal, now) {
            Ok(status) => {
                self.status = status;
                self.version += 1;
                Ok(())
            }
            Err(e) => {
                self.status = current;
                Err(e)
            }
        }
    }

    fn next(
        &mut self,
        current: FlowStatus,
        event: FlowEvent,
        illegal: FlowError,
        now: Timestamp,
    ) -> Result<FlowStatus, FlowError> {
        use FlowEvent as E;
        use FlowStatus as S;
        Ok(match (current, event) {
            (_, E::Cancelled) => S::Cancelled,
            (_, E::Failed(reason)) => S::Failed { reason },
            (
                S::Created | S::BankSelected { .. } | S::AtBank { .. },
                E::BankSelected(institution),
            ) => S::BankSelected { institution },
            (
                S::BankSelected { institution },
                E::BankAsked {
                    session,
                    step,
                    return_check,
                },
            ) => {
                let mut dialog = ScaDialog::resume(self.login_attempts, self.tan_attempts);
                dialog.bank_asks(step).map_err(sca)?;
                S::AtBank {
                    institution,
                    session,
                    dialog,
                    since: now,
                    return_check,
                }
            }
            (
                S::AtBank {
                    institution,
                    mut dialog,
                    ..
                },
                E::BankAsked {
                    session,
                    step,
                    return_check,
                },
            ) => {
                dialog.bank_asks(step).map_err(sca)?;
                S::AtBank {
                    institution,
                    session,
                    dialog,
                    since: now,
                    return_check,
                }
            }
            (
                S::AtBank {
                    institution,
                    session,
                    mut dialog,
                    ..
                },
                E::Answered(answer),
            ) => {
                dialog.answer(&answer).map_err(sca)?;
                self.login_attempts = dialog.login_tries();
                self.tan_attempts = dialog.tan_tries();
                // A return from the bank uses its nonce up.
                S::AtBank {
                    institution,
                    session,
                    dialog,
                    since: now,
                    return_check: None,
                }
            }
            (
                S::AtBank {
                    institution,
                    session,
                    mut dialog,
                    since,
                    return_check,
                },
                E::BankRejected(failure),
            ) => match dialog.bank_rejects(failure).map_err(sca)? {
                Verdict::TryAgain { .. } => S::AtBank {
                    institution,
                    session,
                    dialog,
                    since,
                    return_check,
                },
                Verdict::Failed(reason) => S::Failed { reason },
                Verdict::Cancelled => S::Cancelled,
            },
            (
                S::AtBank {
                    institution,
                    mut dialog,
                    ..
                },
                E::ScaPassed {
                    session,
                    consent,
                    accounts,
                },
            ) => {
                dialog.bank_done(consent.clone()).map_err(sca)?;
                self.offer(institution, session, consent, accounts)
            }
            (
                S::ScaPassed {
                    institution,
                    session,
                    consent,
                    offered,
                },
                E::AccountsChosen(ids),
            ) => {
                let chosen = self.choose(&offered, &ids)?;
                S::AccountsChosen {
                    institution,
                    session,
                    consent,
                    chosen,
                }
            }
            (
                S::AccountsChosen {
                    institution,
                    session,
                    consent,
                    chosen,
                },
                E::SyncStarted,
            ) => S::Syncing {
                institution,
                session,
                consent,
                chosen,
                started_at: now,
            },
            (S::Syncing { .. }, E::Completed(grant_id, code)) => S::Completed {
                grant_id,
                code: Some(code),
            },
            _ => return Err(illegal),
        })
    }

    /// The accounts to offer: those the consent covers (all when it names none) that the
    /// customer's `account_types` allow.
    fn offer(
        &self,
        institution: InstitutionId,
        session: BankSession,
        consent: Consent,
        accounts: Vec<AccountDetails>,
    ) -> FlowStatus {
        let offered: Vec<_> = accounts
            .into_iter()
            .filter(|a| consent.accounts.is_empty() || consent.accounts.contains(&a.external_id))
            .filter(|a| self.params.offers(a))
            .collect();
        if offered.is_empty() {
            return FlowStatus::Failed {
                reason: FailureReason::NoAccounts,
            };
        }
        FlowStatus::ScaPassed {
            institution,
            session,
            consent,
            offered,
        }
    }

    fn choose(
        &self,
        offered: &[AccountDetails],
        ids: &[String],
    ) -> Result<Vec<AccountDetails>, FlowError> {
        if ids.is_empty() {
            return Err(FlowError::InvalidSelection("choose at least one account"));
        }
        if ids.len() > 1 && !self.params.allow_multi_selection {
            return Err(FlowError::InvalidSelection(
                "only one account may be chosen",
            ));
        }
        let mut chosen: Vec<AccountDetails> = Vec::with_capacity(ids.len());
        for id in ids {
            let account = offered.iter().find(|a| a.external_id == *id).ok_or(
                FlowError::InvalidSelection("an account that was not offered"),
            )?;
            if !chosen.iter().any(|c| c.external_id == *id) {
                chosen.push(account.clone());
            }
        }
        Ok(chosen)
    }

    /// The accounts to preselect on the selection page: those the customer named, or all
    /// (multi-selection) or the first (single selection) when none was named.
    #[must_use]
    pub fn preselected(&self) -> Vec<&AccountDetails> {
        let FlowStatus::ScaPassed { offered, .. } = &self.status else {
            return Vec::new();
        };
        let named: Vec<_> = offered.iter().filter(|a| self.params.names(a)).collect();
        if !named.is_empty() {
            return if self.params.allow_multi_selection {
                named
            } else {
                named.into_iter().take(1).collect()
            };
        }
        if self.params.allow_multi_selection {
            offered.iter().collect()
        } else {
            offered.iter().take(1).collect()
        }
    }
}

/// A refusal of the dialog with the bank, as a flow error (used-up tries keep their own).
fn sca(e: ScaError) -> FlowError {
    match e {
        ScaError::AttemptsExhausted => FlowError::AttemptsExhausted,
        other => FlowError::Sca(other),
    }
}

impl Flow {
    /// The step the bank asked for, while the end user is to answer it.
    #[must_use]
    pub fn asked(&self) -> Option<&BankStep> {
        match &self.status {
            FlowStatus::AtBank { dialog, .. } => match dialog.state() {
                ScaState::Asked(step) => Some(step),
                _ => None,
            },
            _ => None,
        }
    }
}

/// How a flow ends, as the customer is told on the redirect.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Success, with the authorization code.
    Success(AuthorizationCode),
    /// The end user cancelled.
    Cancelled,
    /// Failure.
    Failed(FailureReason),
}

/// The URL the end user is sent back to: `redirect_uri` with `code`, `state`, `success`,
/// `cancel`, `error` and `flow_id` added to whatever query it had.
#[must_use]
pub fn callback_url(params: &FlowParams, flow_id: FlowId, outcome: &Outcome) -> Url {
    let mut url = params.redirect_uri.url().clone();
    {
        let mut q = url.query_pairs_mut();
        match outcome {
            Outcome::Success(code) => {
                q.append_pair("code", code.expose());
                if let Some(s) = &params.state {
                    q.append_pair("state", s.as_str());
                }
                q.append_pair("success", "true");
            }
            Outcome::Cancelled => {
                q.append_pair("success", "false");
                q.append_pair("cancel", "true");
                if let Some(s) = &params.state {
                    q.append_pair("state", s.as_str());
                }
            }
            Outcome::Failed(reason) => {
                q.append_pair("success", "false");
                if let Some(s) = &params.state {
                    q.append_pair("state", s.as_str());
                }
                q.append_pair("error", reason.code());
            }
        }
        q.append_pair("flow_id", &flow_id.to_string());
    }
    url
}

#[cfg(test)]
mod tests;
