//! The bank's side of a flow as a step protocol: once the bank is chosen, the bank (through
//! its connector) says what comes next, the end user answers, and the answer goes back to
//! the bank, until the bank is done and hands over a [`Consent`].
//!
//! ```text
//!            ┌──────────── bank_asks(step) ◀──────────────┐
//!            ▼                                            │
//!   (nothing asked) ─▶ Asked(step) ─ answer(a) ─▶ Answered ─┼─ bank_done(consent) ─▶ Done
//!                         ▲                               │
//!                         └── bank_rejects(wrong secret) ─┘ (tries left) ── else ─▶ Failed
//! ```
//!
//! The steps are those banks use under PSD2 (Berlin Group NextGenPSD2): a login form with
//! the bank's own fields, a choice among SCA methods, a TAN for a challenge (text, PNG image
//! or flicker code), a redirect to the bank's own pages, and a decoupled approval in the
//! bank's app that finX waits for. [`ScaDialog`] holds the rules: an answer must fit the
//! step asked; a step that takes a secret (login, TAN) counts its try before the bank is
//! asked, three at most per flow; the bank may ask for a next step or finish only once the
//! step it asked was answered, so a consent never comes before every step the bank asked
//! for. Every refused event leaves the dialog as it was.

use std::fmt;

use thiserror::Error;
use url::Url;

use crate::Date;
use crate::flow::{FailureReason, MAX_ATTEMPTS};

/// The most distinct steps one dialog may take (polls of a decoupled approval aside): a
/// bank that asks for more is misbehaving, and the flow fails rather than loop.
pub const MAX_STEPS: u8 = 12;

/// The most times a decoupled approval may be polled.
pub const MAX_POLLS: u16 = 600;

/// One field of a bank's login form, in the bank's own words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginField {
    /// What the answer names it by.
    pub id: String,
    /// The label the bank gives it, e.g. "Anmeldename" or "Online-Banking-PIN".
    pub label: String,
    /// Whether the value is secret (shown as a password field, never logged or stored).
    pub secret: bool,
}

/// The kind of an SCA method (XS2A `authenticationType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScaMethodKind {
    /// A TAN by SMS (`SMS_OTP`).
    Sms,
    /// A TAN from a chip card reader, e.g. chipTAN with a flicker code (`CHIP_OTP`).
    Chip,
    /// A TAN from an image read by an app or device, e.g. photoTAN (`PHOTO_OTP`).
    Photo,
    /// A TAN pushed to the bank's app, e.g. pushTAN (`PUSH_OTP`).
    Push,
    /// A TAN by e-mail (`SMTP_OTP`).
    Email,
    /// Anything else a bank documents.
    Other,
}

impl ScaMethodKind {
    /// From the XS2A `authenticationType`; unknown types are [`Other`](Self::Other).
    #[must_use]
    pub fn from_xs2a(authentication_type: &str) -> Self {
        match authentication_type {
            "SMS_OTP" => Self::Sms,
            "CHIP_OTP" => Self::Chip,
            "PHOTO_OTP" => Self::Photo,
            "PUSH_OTP" => Self::Push,
            "SMTP_OTP" => Self::Email,
            _ => Self::Other,
        }
    }

    /// The XS2A `authenticationType` (`OTHER` for [`Other`](Self::Other)).
    #[must_use]
    pub fn as_xs2a(self) -> &'static str {
        match self {
            Self::Sms => "SMS_OTP",
            Self::Chip => "CHIP_OTP",
            Self::Photo => "PHOTO_OTP",
            Self::Push => "PUSH_OTP",
            Self::Email => "SMTP_OTP",
            Self::Other => "OTHER",
        }
    }
}

/// An SCA method the bank offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaMethod {
    /// The bank's id for it (XS2A `authenticationMethodId`).
    pub id: String,
    /// The bank's name for it, shown to the end user, e.g. "pushTAN".
    pub name: String,
    /// Its kind.
    pub kind: ScaMethodKind,
}

/// What the end user must answer with a TAN.
#[derive(Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The name of the method in use, e.g. "photoTAN".
    pub method: String,
    /// The bank's instructions, if any.
    pub prompt: Option<String>,
    /// An image to show (PNG bytes), e.g. a photoTAN code.
    pub image_png: Option<Vec<u8>>,
    /// Flicker-code data for a chipTAN reader.
    pub flicker: Option<String>,
    /// The longest TAN the bank takes, if it says.
    pub max_length: Option<u8>,
}

impl fmt::Debug for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Challenge")
            .field("method", &self.method)
            .field("prompt", &self.prompt)
            .field("image_png", &self.image_png.as_ref().map(Vec::len))
            .field("flicker", &self.flicker.is_some())
            .field("max_length", &self.max_length)
            .finish()
    }
}

/// The largest challenge image accepted (the XS2A limit).
pub const MAX_CHALLENGE_IMAGE: usize = 512 * 1024;

/// What the bank asks for next. Its `Debug` shows a redirect's address without its query,
/// which may carry the return's nonce.
#[derive(Clone, PartialEq, Eq)]
pub enum BankStep {
    /// Log in with these fields.
    Login {
        /// The bank's fields, in the bank's order.
        fields: Vec<LoginField>,
    },
    /// Choose one of these SCA methods.
    ChooseMethod {
        /// The methods, in the bank's order.
        methods: Vec<ScaMethod>,
    },
    /// Enter the TAN for this challenge.
    Tan {
        /// The challenge.
        challenge: Challenge,
    },
    /// Continue at the bank's own pages; the bank sends the user back to finX.
    Redirect {
        /// The bank's page.
        url: Url,
    },
    /// Approve in the bank's app; finX asks again after `poll_after_seconds`.
    Decoupled {
        /// The bank's instructions, if any.
        prompt: Option<String>,
        /// How long to wait before asking the bank again (1 to 60).
        poll_after_seconds: u16,
    },
}

impl fmt::Debug for BankStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Login { fields } => f.debug_struct("Login").field("fields", fields).finish(),
            Self::ChooseMethod { methods } => f
                .debug_struct("ChooseMethod")
                .field("methods", methods)
                .finish(),
            Self::Tan { challenge } => f.debug_struct("Tan").field("challenge", challenge).finish(),
            Self::Redirect { url } => {
                let mut shown = url.clone();
                if shown.query().is_some() {
                    shown.set_query(Some("[redacted]"));
                }
                f.debug_struct("Redirect")
                    .field("url", &shown.as_str())
                    .finish()
            }
            Self::Decoupled {
                prompt,
                poll_after_seconds,
            } => f
                .debug_struct("Decoupled")
                .field("prompt", prompt)
                .field("poll_after_seconds", poll_after_seconds)
                .finish(),
        }
    }
}

impl BankStep {
    /// A short name, for errors and logs.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Login { .. } => "login",
            Self::ChooseMethod { .. } => "method choice",
            Self::Tan { .. } => "TAN",
            Self::Redirect { .. } => "redirect",
            Self::Decoupled { .. } => "decoupled approval",
        }
    }

    /// Checks what a bank sent, so that a malformed step never reaches the end user.
    fn check(&self) -> Result<(), ScaError> {
        let bad = |why: &'static str| Err(ScaError::MalformedStep(why));
        match self {
            Self::Login { fields } => {
                if fields.is_empty() || fields.len() > 8 {
                    return bad("a login form has 1 to 8 fields");
                }
                if !distinct(fields.iter().map(|f| f.id.as_str())) {
                    return bad("login field ids repeat");
                }
                if fields.iter().any(|f| f.id.is_empty() || f.label.is_empty()) {
                    return bad("a login field without id or label");
                }
            }
            Self::ChooseMethod { methods } => {
                if methods.is_empty() || methods.len() > 16 {
                    return bad("a method choice has 1 to 16 methods");
                }
                if !distinct(methods.iter().map(|m| m.id.as_str())) {
                    return bad("method ids repeat");
                }
                if methods.iter().any(|m| m.id.is_empty() || m.name.is_empty()) {
                    return bad("a method without id or name");
                }
            }
            Self::Tan { challenge } => {
                if challenge
                    .image_png
                    .as_ref()
                    .is_some_and(|i| i.is_empty() || i.len() > MAX_CHALLENGE_IMAGE)
                {
                    return bad("a challenge image of 1 byte to 512 KiB");
                }
                if challenge.max_length == Some(0) {
                    return bad("a TAN of at most 0 characters");
                }
            }
            Self::Redirect { url } => {
                if !matches!(url.scheme(), "https" | "http") {
                    return bad("a redirect to a web page");
                }
            }
            Self::Decoupled {
                poll_after_seconds, ..
            } => {
                if !(1..=60).contains(poll_after_seconds) {
                    return bad("a poll interval of 1 to 60 seconds");
                }
            }
        }
        Ok(())
    }
}

fn distinct<'a>(ids: impl Iterator<Item = &'a str>) -> bool {
    let mut seen = std::collections::BTreeSet::new();
    ids.into_iter().all(|id| seen.insert(id))
}

/// The end user's answer to a step. Its `Debug` shows no value: login values and TANs are
/// secrets.
#[derive(Clone, PartialEq, Eq)]
pub enum StepAnswer {
    /// The login form, a value per field id.
    Login(Vec<(String, String)>),
    /// The chosen method's id.
    Method(String),
    /// The TAN.
    Tan(String),
    /// Back from the bank's pages: whether the bank sent the user to finX's success or
    /// failure route.
    Returned {
        /// `true` for the success route.
        ok: bool,
    },
    /// Back from the bank's OAuth authorisation with its authorisation code (a secret, to
    /// exchange for the bank's token).
    Authorized {
        /// The bank's authorisation code.
        code: String,
    },
    /// Ask the bank again whether the approval happened.
    Poll,
}

impl StepAnswer {
    /// A short name, for errors and logs.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Login(_) => "login",
            Self::Method(_) => "method choice",
            Self::Tan(_) => "TAN",
            Self::Returned { .. } | Self::Authorized { .. } => "return from the bank",
            Self::Poll => "poll",
        }
    }
}

impl fmt::Debug for StepAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Login(values) => {
                let ids: Vec<&str> = values.iter().map(|(k, _)| k.as_str()).collect();
                write!(f, "Login({ids:?}, [redacted])")
            }
            Self::Method(id) => write!(f, "Method({id:?})"),
            Self::Tan(_) => f.write_str("Tan([redacted])"),
            Self::Returned { ok } => write!(f, "Returned {{ ok: {ok} }}"),
            Self::Authorized { .. } => f.write_str("Authorized { code: [redacted] }"),
            Self::Poll => f.write_str("Poll"),
        }
    }
}

/// Why the bank said no to an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepFailure {
    /// Wrong login values.
    WrongCredentials,
    /// Wrong TAN.
    WrongTan,
    /// The login is locked at the bank.
    Locked,
    /// The bank rejected the authorisation (or the end user declined in the app).
    Rejected,
    /// The end user cancelled at the bank.
    CancelledAtBank,
    /// The authorisation expired at the bank.
    Expired,
    /// The bank cannot be reached or refuses service now.
    Unavailable,
}

/// The status of a consent (XS2A `consentStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsentStatus {
    /// Received, not yet authorised.
    Received,
    /// Rejected.
    Rejected,
    /// Valid: data may be read.
    Valid,
    /// Revoked by the end user at the bank.
    RevokedByPsu,
    /// Expired.
    Expired,
    /// Ended by finX.
    TerminatedByTpp,
    /// Partly authorised (several signatures needed).
    PartiallyAuthorised,
}

impl ConsentStatus {
    /// From the XS2A value.
    #[must_use]
    pub fn from_xs2a(status: &str) -> Option<Self> {
        Some(match status {
            "received" => Self::Received,
            "rejected" => Self::Rejected,
            "valid" => Self::Valid,
            "revokedByPsu" => Self::RevokedByPsu,
            "expired" => Self::Expired,
            "terminatedByTpp" => Self::TerminatedByTpp,
            "partiallyAuthorised" => Self::PartiallyAuthorised,
            _ => return None,
        })
    }

    /// The XS2A value.
    #[must_use]
    pub fn as_xs2a(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Rejected => "rejected",
            Self::Valid => "valid",
            Self::RevokedByPsu => "revokedByPsu",
            Self::Expired => "expired",
            Self::TerminatedByTpp => "terminatedByTpp",
            Self::PartiallyAuthorised => "partiallyAuthorised",
        }
    }
}

/// What the end user allowed at the bank: the basis of every later access to the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    /// The bank's id for it.
    pub id: String,
    /// Its status.
    pub status: ConsentStatus,
    /// The last day it may be used.
    pub valid_until: Date,
    /// Unattended accesses allowed per day (PSD2: 4 unless the consent says otherwise).
    pub frequency_per_day: u16,
    /// Whether it allows repeated access (ongoing) or only one (one-time).
    pub recurring: bool,
    /// The accounts it covers (external ids); empty when the bank lets the user choose
    /// afterwards among all accounts it lists.
    pub accounts: Vec<String>,
}

/// Where the dialog with the bank stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScaState {
    /// The bank has not asked for anything yet.
    Start,
    /// The bank asked for this step; waiting for the end user.
    Asked(BankStep),
    /// The end user answered the step; waiting for the bank.
    Answered(BankStep),
    /// The bank is done.
    Done(Consent),
    /// The dialog failed for good.
    Failed(FailureReason),
    /// The end user cancelled at the bank.
    Cancelled,
}

/// An event that does not fit the dialog now. The dialog is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScaError {
    /// The bank sent a step that cannot be shown.
    #[error("the bank sent a malformed step: {0}")]
    MalformedStep(&'static str),
    /// The event does not fit where the dialog stands.
    #[error("{event} is not possible now ({state})")]
    OutOfOrder {
        /// The event.
        event: &'static str,
        /// Where the dialog stands.
        state: &'static str,
    },
    /// The answer does not fit the step asked.
    #[error("the answer does not fit the {step} step: {why}")]
    AnswerMismatch {
        /// The step asked.
        step: &'static str,
        /// What is wrong.
        why: &'static str,
    },
    /// Every try of this kind is used up.
    #[error("no tries left")]
    AttemptsExhausted,
    /// The bank asked for more steps than any bank needs.
    #[error("the bank asked for too many steps")]
    TooManySteps,
    /// The consent the bank finished with is not usable.
    #[error("the bank finished with an unusable consent: {0}")]
    BadConsent(&'static str),
}

/// What a rejection means for the end user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Wrong secret with tries left: the same step again.
    TryAgain {
        /// Tries left of this kind.
        attempts_left: u8,
    },
    /// The dialog failed for good.
    Failed(FailureReason),
    /// The end user cancelled at the bank.
    Cancelled,
}

/// What a [`ScaDialog`] holds, for stores ([`ScaDialog::parts`], [`ScaDialog::from_parts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogParts {
    /// Where it stands.
    pub state: ScaState,
    /// Login tries made.
    pub login_tries: u8,
    /// TAN tries made.
    pub tan_tries: u8,
    /// Steps the bank asked for (polls aside).
    pub steps: u8,
    /// Polls of decoupled approvals.
    pub polls: u16,
}

/// The rules of the dialog with the bank. See the [module](self) documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaDialog {
    state: ScaState,
    login_tries: u8,
    tan_tries: u8,
    steps: u8,
    polls: u16,
}

impl Default for ScaDialog {
    fn default() -> Self {
        Self::new()
    }
}

impl ScaState {
    fn name(&self) -> &'static str {
        match self {
            Self::Start => "not started",
            Self::Asked(_) => "waiting for the end user",
            Self::Answered(_) => "waiting for the bank",
            Self::Done(_) => "done",
            Self::Failed(_) => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl ScaDialog {
    /// A dialog the bank has not spoken in yet.
    #[must_use]
    pub fn new() -> Self {
        Self {
            state: ScaState::Start,
            login_tries: 0,
            tan_tries: 0,
            steps: 0,
            polls: 0,
        }
    }

    /// A dialog the bank has not spoken in yet, for a flow that already used these tries
    /// (at another bank, say): tries are never reset within a flow.
    #[must_use]
    pub fn resume(login_tries: u8, tan_tries: u8) -> Self {
        Self {
            login_tries: login_tries.min(MAX_ATTEMPTS),
            tan_tries: tan_tries.min(MAX_ATTEMPTS),
            ..Self::new()
        }
    }

    /// Everything the dialog holds, for a store to write down.
    #[must_use]
    pub fn parts(&self) -> DialogParts {
        DialogParts {
            state: self.state.clone(),
            login_tries: self.login_tries,
            tan_tries: self.tan_tries,
            steps: self.steps,
            polls: self.polls,
        }
    }

    /// A dialog read back from a store, checked against the rules: a stored document that
    /// breaks them is refused rather than trusted.
    ///
    /// # Errors
    /// [`ScaError::MalformedStep`] for a step that could never have been asked, and
    /// [`ScaError::TooManySteps`] for counts past their limits.
    pub fn from_parts(parts: DialogParts) -> Result<Self, ScaError> {
        if parts.login_tries > MAX_ATTEMPTS
            || parts.tan_tries > MAX_ATTEMPTS
            || parts.steps > MAX_STEPS
            || parts.polls > MAX_POLLS
        {
            return Err(ScaError::TooManySteps);
        }
        if let ScaState::Asked(step) | ScaState::Answered(step) = &parts.state {
            step.check()?;
        }
        Ok(Self {
            state: parts.state,
            login_tries: parts.login_tries,
            tan_tries: parts.tan_tries,
            steps: parts.steps,
            polls: parts.polls,
        })
    }

    /// Where it stands.
    #[must_use]
    pub fn state(&self) -> &ScaState {
        &self.state
    }

    /// Login tries made (counted before the bank is asked; never reset).
    #[must_use]
    pub fn login_tries(&self) -> u8 {
        self.login_tries
    }

    /// TAN tries made (counted before the bank is asked; never reset).
    #[must_use]
    pub fn tan_tries(&self) -> u8 {
        self.tan_tries
    }

    /// The bank asks for `step`: at the start, or once the step it asked before was
    /// answered. Asking again for a decoupled approval after a poll counts as a poll, not
    /// a step.
    ///
    /// # Errors
    /// [`ScaError::MalformedStep`], [`ScaError::OutOfOrder`], [`ScaError::TooManySteps`].
    pub fn bank_asks(&mut self, step: BankStep) -> Result<(), ScaError> {
        step.check()?;
        let poll_again = matches!(
            (&self.state, &step),
            (
                ScaState::Answered(BankStep::Decoupled { .. }),
                BankStep::Decoupled { .. }
            )
        );
        match &self.state {
            ScaState::Start | ScaState::Answered(_) => {}
            other => {
                return Err(ScaError::OutOfOrder {
                    event: "a step from the bank",
                    state: other.name(),
                });
            }
        }
        if poll_again {
            if self.polls >= MAX_POLLS {
                return Err(ScaError::TooManySteps);
            }
            self.polls += 1;
        } else {
            if self.steps >= MAX_STEPS {
                return Err(ScaError::TooManySteps);
            }
            self.steps += 1;
        }
        self.state = ScaState::Asked(step);
        Ok(())
    }

    /// The end user answers the step asked. A login or TAN try is counted here, before the
    /// bank sees the answer.
    ///
    /// # Errors
    /// [`ScaError::OutOfOrder`] when no step waits for an answer;
    /// [`ScaError::AnswerMismatch`] when the answer does not fit it;
    /// [`ScaError::AttemptsExhausted`] when its tries are used up.
    pub fn answer(&mut self, answer: &StepAnswer) -> Result<(), ScaError> {
        let ScaState::Asked(step) = &self.state else {
            return Err(ScaError::OutOfOrder {
                event: answer.name(),
                state: self.state.name(),
            });
        };
        let mismatch = |why: &'static str| ScaError::AnswerMismatch {
            step: step.name(),
            why,
        };
        match (step, answer) {
            (BankStep::Login { fields }, StepAnswer::Login(values)) => {
                let complete = values.len() == fields.len()
                    && fields.iter().all(|f| {
                        values
                            .iter()
                            .filter(|(id, _)| *id == f.id)
                            .map(|(_, v)| v)
                            .exactly_one()
                            .is_some_and(|v| !v.is_empty() && v.len() <= 256)
                    });
                if !complete {
                    return Err(mismatch("every field once, 1 to 256 bytes"));
                }
                if self.login_tries >= MAX_ATTEMPTS {
                    return Err(ScaError::AttemptsExhausted);
                }
                self.login_tries += 1;
            }
            (BankStep::ChooseMethod { methods }, StepAnswer::Method(id)) => {
                if !methods.iter().any(|m| m.id == *id) {
                    return Err(mismatch("a method that was offered"));
                }
            }
            (BankStep::Tan { challenge }, StepAnswer::Tan(tan)) => {
                let max = challenge.max_length.map_or(64, usize::from).min(64);
                if tan.is_empty() || tan.chars().count() > max {
                    return Err(mismatch("a TAN of 1 to its longest length"));
                }
                if self.tan_tries >= MAX_ATTEMPTS {
                    return Err(ScaError::AttemptsExhausted);
                }
                self.tan_tries += 1;
            }
            (
                BankStep::Redirect { .. },
                StepAnswer::Returned { .. } | StepAnswer::Authorized { .. },
            )
            | (BankStep::Decoupled { .. }, StepAnswer::Poll) => {}
            _ => return Err(mismatch("another kind of answer")),
        }
        self.state = ScaState::Answered(step.clone());
        Ok(())
    }

    /// The bank refuses the answer it was given.
    ///
    /// # Errors
    /// [`ScaError::OutOfOrder`] when no answer is with the bank, or the failure does not
    /// fit it (a wrong TAN for a login, say).
    pub fn bank_rejects(&mut self, failure: StepFailure) -> Result<Verdict, ScaError> {
        let ScaState::Answered(step) = &self.state else {
            return Err(ScaError::OutOfOrder {
                event: "a rejection from the bank",
                state: self.state.name(),
            });
        };
        let out_of_order = ScaError::OutOfOrder {
            event: "a rejection of this kind",
            state: step.name(),
        };
        let verdict = match failure {
            StepFailure::WrongCredentials => {
                if !matches!(step, BankStep::Login { .. }) {
                    return Err(out_of_order);
                }
                retry_or(self.login_tries, FailureReason::LoginFailed)
            }
            StepFailure::WrongTan => {
                if !matches!(step, BankStep::Tan { .. }) {
                    return Err(out_of_order);
                }
                retry_or(self.tan_tries, FailureReason::ScaFailed)
            }
            StepFailure::Locked => Verdict::Failed(FailureReason::AccountLocked),
            StepFailure::Rejected => Verdict::Failed(FailureReason::ScaRejected),
            StepFailure::Expired => Verdict::Failed(FailureReason::ScaExpired),
            StepFailure::Unavailable => Verdict::Failed(FailureReason::BankUnavailable),
            StepFailure::CancelledAtBank => Verdict::Cancelled,
        };
        self.state = match verdict {
            Verdict::TryAgain { .. } => ScaState::Asked(step.clone()),
            Verdict::Failed(reason) => ScaState::Failed(reason),
            Verdict::Cancelled => ScaState::Cancelled,
        };
        Ok(verdict)
    }

    /// The bank is done with a consent. Only once the step it asked last was answered, so
    /// a consent never skips a step the bank asked for; and only with a valid consent.
    ///
    /// # Errors
    /// [`ScaError::OutOfOrder`]; [`ScaError::BadConsent`] for a consent that is not valid
    /// or allows no access.
    pub fn bank_done(&mut self, consent: Consent) -> Result<(), ScaError> {
        if !matches!(self.state, ScaState::Answered(_)) {
            return Err(ScaError::OutOfOrder {
                event: "the bank's consent",
                state: self.state.name(),
            });
        }
        if consent.status != ConsentStatus::Valid {
            return Err(ScaError::BadConsent("its status is not valid"));
        }
        if consent.frequency_per_day == 0 {
            return Err(ScaError::BadConsent("it allows no access a day"));
        }
        if consent.id.is_empty() {
            return Err(ScaError::BadConsent("it has no id"));
        }
        self.state = ScaState::Done(consent);
        Ok(())
    }
}

fn retry_or(tries: u8, reason: FailureReason) -> Verdict {
    if tries >= MAX_ATTEMPTS {
        Verdict::Failed(reason)
    } else {
        Verdict::TryAgain {
            attempts_left: MAX_ATTEMPTS - tries,
        }
    }
}

/// `Iterator::exactly_one` for the one place it is needed.
trait ExactlyOne: Iterator + Sized {
    fn exactly_one(mut self) -> Option<Self::Item> {
        let first = self.next()?;
        self.next().is_none().then_some(first)
    }
}

impl<I: Iterator> ExactlyOne for I {}

#[cfg(test)]
mod tests;
