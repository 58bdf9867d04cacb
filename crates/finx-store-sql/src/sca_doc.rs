//! The dialog with the bank (`FlowStatus::AtBank`) and the consent, as JSON documents.
//! Read back through [`ScaDialog::from_parts`], so a stored document that breaks the
//! dialog's rules is refused as corrupt.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use finx_domain::flow::FailureReason;
use finx_domain::sca::{
    BankStep, Challenge, Consent, ConsentStatus, DialogParts, LoginField, ScaDialog, ScaMethod,
    ScaMethodKind, ScaState,
};
use finx_ports::StoreError;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::corrupt;

#[derive(Serialize, Deserialize)]
pub(crate) struct FieldDoc {
    id: String,
    label: String,
    secret: bool,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct MethodDoc {
    id: String,
    name: String,
    kind: String,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum StepDoc {
    Login {
        fields: Vec<FieldDoc>,
    },
    ChooseMethod {
        methods: Vec<MethodDoc>,
    },
    Tan {
        method: String,
        prompt: Option<String>,
        /// Base64.
        image_png: Option<String>,
        flicker: Option<String>,
        max_length: Option<u8>,
    },
    Redirect {
        url: String,
    },
    Decoupled {
        prompt: Option<String>,
        poll_after_seconds: u16,
    },
}

impl StepDoc {
    fn of(step: &BankStep) -> Self {
        match step {
            BankStep::Login { fields } => Self::Login {
                fields: fields
                    .iter()
                    .map(|f| FieldDoc {
                        id: f.id.clone(),
                        label: f.label.clone(),
                        secret: f.secret,
                    })
                    .collect(),
            },
            BankStep::ChooseMethod { methods } => Self::ChooseMethod {
                methods: methods
                    .iter()
                    .map(|m| MethodDoc {
                        id: m.id.clone(),
                        name: m.name.clone(),
                        kind: m.kind.as_xs2a().to_owned(),
                    })
                    .collect(),
            },
            BankStep::Tan { challenge } => Self::Tan {
                method: challenge.method.clone(),
                prompt: challenge.prompt.clone(),
                image_png: challenge.image_png.as_ref().map(|i| STANDARD.encode(i)),
                flicker: challenge.flicker.clone(),
                max_length: challenge.max_length,
            },
            BankStep::Redirect { url } => Self::Redirect {
                url: url.to_string(),
            },
            BankStep::Decoupled {
                prompt,
                poll_after_seconds,
            } => Self::Decoupled {
                prompt: prompt.clone(),
                poll_after_seconds: *poll_after_seconds,
            },
        }
    }

    fn into_domain(self) -> Result<BankStep, StoreError> {
        Ok(match self {
            Self::Login { fields } => BankStep::Login {
                fields: fields
                    .into_iter()
                    .map(|f| LoginField {
                        id: f.id,
                        label: f.label,
                        secret: f.secret,
                    })
                    .collect(),
            },
            Self::ChooseMethod { methods } => BankStep::ChooseMethod {
                methods: methods
                    .into_iter()
                    .map(|m| ScaMethod {
                        kind: ScaMethodKind::from_xs2a(&m.kind),
                        id: m.id,
                        name: m.name,
                    })
                    .collect(),
            },
            Self::Tan {
                method,
                prompt,
                image_png,
                flicker,
                max_length,
            } => BankStep::Tan {
                challenge: Challenge {
                    method,
                    prompt,
                    image_png: image_png
                        .map(|i| STANDARD.decode(i).map_err(|_| corrupt("challenge image")))
                        .transpose()?,
                    flicker,
                    max_length,
                },
            },
            Self::Redirect { url } => BankStep::Redirect {
                url: Url::parse(&url).map_err(|_| corrupt("redirect URL"))?,
            },
            Self::Decoupled {
                prompt,
                poll_after_seconds,
            } => BankStep::Decoupled {
                prompt,
                poll_after_seconds,
            },
        })
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct ConsentDoc {
    id: String,
    status: String,
    valid_until: String,
    frequency_per_day: u16,
    recurring: bool,
    accounts: Vec<String>,
}

impl ConsentDoc {
    pub(crate) fn of(c: &Consent) -> Self {
        Self {
            id: c.id.clone(),
            status: c.status.as_xs2a().to_owned(),
            valid_until: c.valid_until.format("%Y-%m-%d").to_string(),
            frequency_per_day: c.frequency_per_day,
            recurring: c.recurring,
            accounts: c.accounts.clone(),
        }
    }

    pub(crate) fn into_domain(self) -> Result<Consent, StoreError> {
        Ok(Consent {
            id: self.id,
            status: ConsentStatus::from_xs2a(&self.status)
                .ok_or_else(|| corrupt("consent status"))?,
            valid_until: chrono::NaiveDate::parse_from_str(&self.valid_until, "%Y-%m-%d")
                .map_err(|_| corrupt("consent date"))?,
            frequency_per_day: self.frequency_per_day,
            recurring: self.recurring,
            accounts: self.accounts,
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum StateDoc {
    Start,
    Asked { step: StepDoc },
    Answered { step: StepDoc },
    Done { consent: ConsentDoc },
    Failed { reason: String },
    Cancelled,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct DialogDoc {
    state: StateDoc,
    login_tries: u8,
    tan_tries: u8,
    steps: u8,
    polls: u16,
}

impl DialogDoc {
    pub(crate) fn of(dialog: &ScaDialog) -> Self {
        let parts = dialog.parts();
        Self {
            state: match &parts.state {
                ScaState::Start => StateDoc::Start,
                ScaState::Asked(s) => StateDoc::Asked {
                    step: StepDoc::of(s),
                },
                ScaState::Answered(s) => StateDoc::Answered {
                    step: StepDoc::of(s),
                },
                ScaState::Done(c) => StateDoc::Done {
                    consent: ConsentDoc::of(c),
                },
                ScaState::Failed(r) => StateDoc::Failed {
                    reason: r.code().to_owned(),
                },
                ScaState::Cancelled => StateDoc::Cancelled,
            },
            login_tries: parts.login_tries,
            tan_tries: parts.tan_tries,
            steps: parts.steps,
            polls: parts.polls,
        }
    }

    pub(crate) fn into_domain(self) -> Result<ScaDialog, StoreError> {
        let state = match self.state {
            StateDoc::Start => ScaState::Start,
            StateDoc::Asked { step } => ScaState::Asked(step.into_domain()?),
            StateDoc::Answered { step } => ScaState::Answered(step.into_domain()?),
            StateDoc::Done { consent } => ScaState::Done(consent.into_domain()?),
            StateDoc::Failed { reason } => ScaState::Failed(
                FailureReason::parse(&reason).ok_or_else(|| corrupt("failure reason"))?,
            ),
            StateDoc::Cancelled => ScaState::Cancelled,
        };
        ScaDialog::from_parts(DialogParts {
            state,
            login_tries: self.login_tries,
            tan_tries: self.tan_tries,
            steps: self.steps,
            polls: self.polls,
        })
        .map_err(|_| corrupt("bank dialog"))
    }
}
