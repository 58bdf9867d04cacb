//! Conversions between domain values and what the tables hold.

use chrono::DateTime;
use finx_domain::Timestamp;
use finx_domain::access::{Ongoing, UserId};
use finx_domain::bank::{AccountDetails, AccountType};
use finx_domain::flow::{BankSession, FailureReason, Flow, FlowParams, FlowStatus, KeptCode};
use finx_domain::ids::{AccessId, ClientId, FlowId, GrantId, InstitutionId};
use finx_domain::money::Currency;
use finx_domain::reference::{AccountReference, Iban};
use finx_domain::scope::Scope;
use finx_domain::secret::{AuthorizationCode, TokenHash};
use finx_domain::values::{Language, RedirectUri, State, SyncPeriod};
use finx_ports::StoreError;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::corrupt;
use crate::sca_doc::{ConsentDoc, DialogDoc};
use crate::seal::DataKey;

/// Microseconds since the epoch: what every instant column holds.
pub(crate) fn micros(t: Timestamp) -> i64 {
    t.timestamp_micros()
}

/// An instant column read back.
pub(crate) fn instant(us: i64) -> Result<Timestamp, StoreError> {
    DateTime::from_timestamp_micros(us).ok_or_else(|| corrupt("instant"))
}

/// An optional instant column read back.
pub(crate) fn opt_instant(us: Option<i64>) -> Result<Option<Timestamp>, StoreError> {
    us.map(instant).transpose()
}

/// Money columns hold integers in 1/10 000 of the unit: exact for every amount with at most
/// four decimals and up to ±922 trillion units.
const MINOR_DIGITS: u32 = 4;

/// An amount as (units of 1/10 000, original scale).
pub(crate) fn to_minor(amount: Decimal) -> Result<(i64, i64), StoreError> {
    use rust_decimal::prelude::ToPrimitive;
    let scale = amount.scale();
    if scale > MINOR_DIGITS {
        return Err(StoreError::Unexpected(
            format!("amount {amount} has more than {MINOR_DIGITS} decimals").into(),
        ));
    }
    let minor = amount
        .checked_mul(Decimal::from(10_i64.pow(MINOR_DIGITS)))
        .and_then(|m| m.to_i64())
        .ok_or_else(|| {
            StoreError::Unexpected(format!("amount {amount} is too large to store").into())
        })?;
    Ok((minor, i64::from(scale)))
}

/// An amount read back, with the scale it was stored with.
pub(crate) fn from_minor(minor: i64, scale: i64) -> Result<Decimal, StoreError> {
    let scale = u32::try_from(scale)
        .ok()
        .filter(|s| *s <= MINOR_DIGITS)
        .ok_or_else(|| corrupt("amount scale"))?;
    let mut d = Decimal::new(minor, MINOR_DIGITS);
    d.rescale(scale);
    Ok(d)
}

/// The minor units an amount filter compares with; `None` when no stored amount can equal it.
pub(crate) fn filter_minor(amount: Decimal) -> Option<i64> {
    to_minor(amount).ok().map(|(m, _)| m)
}

fn unhex(text: &str) -> Result<TokenHash, StoreError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).map_err(|_| corrupt("browser hash"))?;
    Ok(TokenHash::from_bytes(out))
}

pub(crate) fn json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Unexpected(Box::new(e)))
}

pub(crate) fn from_json<'a, T: Deserialize<'a>>(
    text: &'a str,
    what: &'static str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|_| corrupt(what))
}

pub(crate) fn parse<T, E>(r: Result<T, E>, what: &'static str) -> Result<T, StoreError> {
    r.map_err(|_| corrupt(what))
}

/// An account as the flow document keeps it.
#[derive(Serialize, Deserialize)]
pub(crate) struct AccountDoc {
    external_id: String,
    iban: Option<String>,
    account_number: Option<String>,
    bank_code: Option<String>,
    bic: Option<String>,
    bank_name: String,
    currency: String,
    account_type: String,
    name: String,
    owner: String,
    is_jointly_managed: bool,
    card_last4: Option<String>,
}

impl AccountDoc {
    fn of(a: &AccountDetails) -> Self {
        Self {
            external_id: a.external_id.clone(),
            iban: a.iban.as_ref().map(ToString::to_string),
            account_number: a.account_number.clone(),
            bank_code: a.bank_code.clone(),
            bic: a.bic.clone(),
            bank_name: a.bank_name.clone(),
            currency: a.currency.as_str().to_owned(),
            account_type: a.account_type.as_str().to_owned(),
            name: a.name.clone(),
            owner: a.owner.clone(),
            is_jointly_managed: a.is_jointly_managed,
            card_last4: a.card_last4.clone(),
        }
    }

    fn into_domain(self) -> Result<AccountDetails, StoreError> {
        Ok(AccountDetails {
            external_id: self.external_id,
            iban: self
                .iban
                .as_deref()
                .map(Iban::parse)
                .transpose()
                .map_err(|_| corrupt("IBAN"))?,
            account_number: self.account_number,
            bank_code: self.bank_code,
            bic: self.bic,
            bank_name: self.bank_name,
            currency: parse(Currency::parse(&self.currency), "currency")?,
            account_type: AccountType::parse(&self.account_type)
                .ok_or_else(|| corrupt("account type"))?,
            name: self.name,
            owner: self.owner,
            is_jointly_managed: self.is_jointly_managed,
            card_last4: self.card_last4,
        })
    }
}

pub(crate) fn docs(accounts: &[AccountDetails]) -> Vec<AccountDoc> {
    accounts.iter().map(AccountDoc::of).collect()
}

pub(crate) fn undoc(accounts: Vec<AccountDoc>) -> Result<Vec<AccountDetails>, StoreError> {
    accounts.into_iter().map(AccountDoc::into_domain).collect()
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum StatusDoc {
    Created,
    BankSelected {
        institution: String,
    },
    AtBank {
        institution: String,
        session: String,
        dialog: DialogDoc,
        since: i64,
        return_check: Option<String>,
    },
    ScaPassed {
        institution: String,
        session: String,
        consent: ConsentDoc,
        offered: Vec<AccountDoc>,
    },
    AccountsChosen {
        institution: String,
        session: String,
        consent: ConsentDoc,
        chosen: Vec<AccountDoc>,
    },
    Syncing {
        institution: String,
        session: String,
        consent: ConsentDoc,
        chosen: Vec<AccountDoc>,
        /// Microseconds; absent in documents of older versions.
        #[serde(default)]
        started_at: i64,
    },
    Completed {
        grant_id: String,
        /// The code handed out, sealed; absent in documents of older versions.
        #[serde(default)]
        code: Option<String>,
    },
    Cancelled,
    Failed {
        reason: String,
    },
    Expired,
}

/// Everything of a flow that has no column of its own.
#[derive(Serialize, Deserialize)]
pub(crate) struct FlowDoc {
    redirect_uri: String,
    state: Option<String>,
    language: String,
    /// Tagged: `iban:…`, `account:…` or `card:` and the last four digits.
    accounts: Vec<String>,
    account_types: Vec<String>,
    allow_multi_selection: bool,
    sync_period: u16,
    provider_id: Option<String>,
    scope: String,
    login_attempts: u8,
    tan_attempts: u8,
    /// The bound browser's token hash, hex; absent in documents of older versions.
    #[serde(default)]
    browser: Option<String>,
    /// An ongoing flow's user and the access it renews; absent for one-time flows.
    #[serde(default)]
    ongoing: Option<OngoingDoc>,
    /// An account verification's name and IBAN; absent for other flows.
    #[serde(default)]
    verification: Option<VerificationDoc>,
    status: StatusDoc,
}

/// What an account verification verifies, as flow documents and grants keep it.
#[derive(Serialize, Deserialize)]
pub(crate) struct VerificationDoc {
    name: String,
    iban: Option<String>,
}

impl VerificationDoc {
    pub(crate) fn of(v: &finx_domain::verify::Verification) -> Self {
        Self {
            name: v.name.clone(),
            iban: v.iban.as_ref().map(|i| i.as_str().to_owned()),
        }
    }

    pub(crate) fn into_domain(self) -> Result<finx_domain::verify::Verification, StoreError> {
        let iban = self
            .iban
            .as_deref()
            .map(|i| parse(finx_domain::reference::Iban::parse(i), "verification IBAN"))
            .transpose()?;
        parse(
            finx_domain::verify::Verification::new(&self.name, iban),
            "verification name",
        )
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct OngoingDoc {
    user_id: String,
    renews: Option<String>,
}

impl OngoingDoc {
    fn of(o: &Ongoing) -> Self {
        Self {
            user_id: o.user_id.as_str().to_owned(),
            renews: o.renews.as_ref().map(ToString::to_string),
        }
    }

    fn into_domain(self) -> Result<Ongoing, StoreError> {
        Ok(Ongoing {
            user_id: parse(UserId::parse(&self.user_id), "user id")?,
            renews: self
                .renews
                .as_deref()
                .map(|a| parse(AccessId::parse(a), "access id"))
                .transpose()?,
        })
    }
}

fn reference_text(r: &AccountReference) -> String {
    match r {
        AccountReference::Iban(i) => format!("iban:{i}"),
        AccountReference::AccountNumber(n) => format!("account:{n}"),
        AccountReference::CardLast4(l) => format!("card:{l}"),
    }
}

fn reference(text: &str) -> Result<AccountReference, StoreError> {
    let bad = || corrupt("account reference");
    let (kind, value) = text.split_once(':').ok_or_else(bad)?;
    match kind {
        "iban" => Iban::parse(value)
            .map(AccountReference::Iban)
            .map_err(|_| bad()),
        "account" => Ok(AccountReference::AccountNumber(value.to_owned())),
        "card" if value.len() == 4 && value.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(AccountReference::CardLast4(value.to_owned()))
        }
        // Written by versions that kept the whole number: read back only what is used.
        "pan" if value.len() >= 4 => Ok(AccountReference::CardLast4(
            value[value.len() - 4..].to_owned(),
        )),
        _ => Err(bad()),
    }
}

impl FlowDoc {
    /// The document of `flow`, its bank session handle and code sealed under `key`.
    pub(crate) fn of(flow: &Flow, key: &DataKey) -> Result<Self, StoreError> {
        let p = &flow.params;
        let context = flow.id.to_string();
        let seal = |s: &BankSession| key.seal(s.expose(), &context);
        let status = match &flow.status {
            FlowStatus::Created => StatusDoc::Created,
            FlowStatus::BankSelected { institution } => StatusDoc::BankSelected {
                institution: institution.to_string(),
            },
            FlowStatus::AtBank {
                institution,
                session,
                dialog,
                since,
                return_check,
            } => StatusDoc::AtBank {
                institution: institution.to_string(),
                session: seal(session)?,
                dialog: DialogDoc::of(dialog),
                since: micros(*since),
                return_check: return_check.map(|h| h.to_hex()),
            },
            FlowStatus::ScaPassed {
                institution,
                session,
                consent,
                offered,
            } => StatusDoc::ScaPassed {
                institution: institution.to_string(),
                session: seal(session)?,
                consent: ConsentDoc::of(consent),
                offered: docs(offered),
            },
            FlowStatus::AccountsChosen {
                institution,
                session,
                consent,
                chosen,
            } => StatusDoc::AccountsChosen {
                institution: institution.to_string(),
                session: seal(session)?,
                consent: ConsentDoc::of(consent),
                chosen: docs(chosen),
            },
            FlowStatus::Syncing {
                institution,
                session,
                consent,
                chosen,
                started_at,
            } => StatusDoc::Syncing {
                institution: institution.to_string(),
                session: seal(session)?,
                consent: ConsentDoc::of(consent),
                chosen: docs(chosen),
                started_at: micros(*started_at),
            },
            FlowStatus::Completed { grant_id, code } => StatusDoc::Completed {
                grant_id: grant_id.to_string(),
                code: code
                    .as_ref()
                    .map(|c| key.seal(c.0.expose(), &context))
                    .transpose()?,
            },
            FlowStatus::Cancelled => StatusDoc::Cancelled,
            FlowStatus::Failed { reason } => StatusDoc::Failed {
                reason: reason.code().to_owned(),
            },
            FlowStatus::Expired => StatusDoc::Expired,
        };
        Ok(Self {
            redirect_uri: p.redirect_uri.to_string(),
            state: p.state.as_ref().map(|s| s.as_str().to_owned()),
            language: p.language.code().to_owned(),
            accounts: p.accounts.iter().map(reference_text).collect(),
            account_types: p
                .account_types
                .iter()
                .map(|t| t.as_str().to_owned())
                .collect(),
            allow_multi_selection: p.allow_multi_selection,
            sync_period: p.sync_period.days(),
            provider_id: p.provider_id.as_ref().map(ToString::to_string),
            scope: p.scope.to_string(),
            login_attempts: flow.login_attempts,
            browser: flow.browser.map(|h| h.to_hex()),
            tan_attempts: flow.tan_attempts,
            ongoing: p.ongoing.as_ref().map(OngoingDoc::of),
            verification: p.verification.as_ref().map(VerificationDoc::of),
            status,
        })
    }

    /// The flow with this document and these column values.
    pub(crate) fn into_flow(
        self,
        key: &DataKey,
        id: &str,
        client_id: &str,
        version: i64,
        created_at: i64,
        expires_at: i64,
    ) -> Result<Flow, StoreError> {
        let inst = |s: &str| parse(InstitutionId::parse(s), "institution id");
        let session = |s: String| key.open(&s, id).map(BankSession::new);
        let status = match self.status {
            StatusDoc::Created => FlowStatus::Created,
            StatusDoc::BankSelected { institution } => FlowStatus::BankSelected {
                institution: inst(&institution)?,
            },
            StatusDoc::AtBank {
                institution,
                session: s,
                dialog,
                since,
                return_check,
            } => FlowStatus::AtBank {
                institution: inst(&institution)?,
                session: session(s)?,
                dialog: dialog.into_domain()?,
                since: instant(since)?,
                return_check: return_check
                    .as_deref()
                    .map(|h| TokenHash::from_hex(h).map_err(|_| corrupt("return check")))
                    .transpose()?,
            },
            StatusDoc::ScaPassed {
                institution,
                session: s,
                consent,
                offered,
            } => FlowStatus::ScaPassed {
                institution: inst(&institution)?,
                session: session(s)?,
                consent: consent.into_domain()?,
                offered: undoc(offered)?,
            },
            StatusDoc::AccountsChosen {
                institution,
                session: s,
                consent,
                chosen,
            } => FlowStatus::AccountsChosen {
                institution: inst(&institution)?,
                session: session(s)?,
                consent: consent.into_domain()?,
                chosen: undoc(chosen)?,
            },
            StatusDoc::Syncing {
                institution,
                session: s,
                consent,
                chosen,
                started_at,
            } => FlowStatus::Syncing {
                institution: inst(&institution)?,
                session: session(s)?,
                consent: consent.into_domain()?,
                chosen: undoc(chosen)?,
                started_at: instant(started_at)?,
            },
            StatusDoc::Completed { grant_id, code } => FlowStatus::Completed {
                grant_id: parse(GrantId::parse(&grant_id), "grant id")?,
                code: code
                    .map(|c| {
                        let plain = key.open(&c, id)?;
                        parse(AuthorizationCode::from_presented(&plain), "code").map(KeptCode)
                    })
                    .transpose()?,
            },
            StatusDoc::Cancelled => FlowStatus::Cancelled,
            StatusDoc::Failed { reason } => FlowStatus::Failed {
                reason: FailureReason::parse(&reason).ok_or_else(|| corrupt("failure reason"))?,
            },
            StatusDoc::Expired => FlowStatus::Expired,
        };
        let params = FlowParams {
            redirect_uri: parse(RedirectUri::parse(&self.redirect_uri), "redirect URI")?,
            state: self
                .state
                .as_deref()
                .map(State::parse)
                .transpose()
                .map_err(|_| corrupt("state"))?,
            language: Language::from_tag(&self.language),
            accounts: self
                .accounts
                .iter()
                .map(|a| reference(a))
                .collect::<Result<_, _>>()?,
            account_types: self
                .account_types
                .iter()
                .map(|t| AccountType::parse(t).ok_or_else(|| corrupt("account type")))
                .collect::<Result<_, _>>()?,
            allow_multi_selection: self.allow_multi_selection,
            sync_period: parse(SyncPeriod::new(i64::from(self.sync_period)), "sync period")?,
            provider_id: self.provider_id.as_deref().map(inst).transpose()?,
            scope: parse(Scope::parse(&self.scope), "scope")?,
            ongoing: self.ongoing.map(OngoingDoc::into_domain).transpose()?,
            verification: self
                .verification
                .map(VerificationDoc::into_domain)
                .transpose()?,
        };
        Ok(Flow {
            id: parse(FlowId::parse(id), "flow id")?,
            client_id: parse(ClientId::parse(client_id), "client id")?,
            params,
            created_at: instant(created_at)?,
            expires_at: instant(expires_at)?,
            status,
            login_attempts: self.login_attempts,
            browser: self.browser.as_deref().map(unhex).transpose()?,
            tan_attempts: self.tan_attempts,
            version: u64::try_from(version).map_err(|_| corrupt("flow version"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_round_trip_exactly_with_their_scale() {
        for (m, s) in [
            (-1, 2),
            (1_234_567_890_123_499, 2),
            (0, 0),
            (5, 1),
            (-12_345, 4),
        ] {
            let d = Decimal::new(m, s);
            let (minor, scale) = to_minor(d).expect("fits");
            let back = from_minor(minor, scale).expect("reads");
            assert_eq!(back, d);
            assert_eq!(back.to_string(), d.to_string(), "the scale survives");
        }
        assert!(
            to_minor(Decimal::new(1, 5)).is_err(),
            "five decimals do not fit"
        );
        assert!(to_minor(Decimal::MAX).is_err());
        assert!(from_minor(1, 9).is_err());
    }

    #[test]
    fn instants_are_microseconds() {
        let t = instant(1_780_000_000_123_456).expect("valid");
        assert_eq!(micros(t), 1_780_000_000_123_456);
        assert!(instant(i64::MAX).is_err());
    }
}
