//! XS2A JSON to finX values: accounts, balances, transactions, what an authorisation asks
//! next, SCA methods and challenges, error codes. Public so that the mapping can be checked
//! on the official document's own examples (`cargo xtask xs2a-conformance`).

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use finx_domain::Date;
use finx_domain::bank::{
    AccountDetails, AccountType, Balance, BalanceStatus, Counterparty, TransactionDetails,
    TransactionType,
};
use finx_domain::money::{Currency, Money};
use finx_domain::reference::Iban;
use finx_domain::registry::RegisteredBank;
use finx_domain::sca::{Challenge, MAX_CHALLENGE_IMAGE, ScaMethod, ScaMethodKind};
use finx_ports::{ConsentRequest, PsuContext};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The consent terms kept in the session, for a follow-up consent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Terms {
    pub(crate) recurring: bool,
    /// `YYYY-MM-DD`.
    valid_until: String,
    pub(crate) frequency_per_day: u16,
    /// The end user's address and browser, for a follow-up consent made while they are
    /// present (banks require `PSU-IP-Address` on every consent).
    #[serde(default)]
    psu_ip: Option<std::net::IpAddr>,
    #[serde(default)]
    psu_user_agent: Option<String>,
}

impl Terms {
    pub(crate) fn of(r: &ConsentRequest) -> Self {
        Self {
            recurring: r.recurring,
            valid_until: r.valid_until.format("%Y-%m-%d").to_string(),
            frequency_per_day: r.frequency_per_day,
            psu_ip: r.psu.ip,
            psu_user_agent: r.psu.user_agent.clone(),
        }
    }

    /// The last day asked for.
    pub(crate) fn valid_until(&self) -> Date {
        chrono::NaiveDate::parse_from_str(&self.valid_until, "%Y-%m-%d").unwrap_or_default()
    }

    /// The request again, for a follow-up consent.
    pub(crate) fn to_request(&self) -> ConsentRequest {
        ConsentRequest {
            psu: PsuContext {
                ip: self.psu_ip,
                user_agent: self.psu_user_agent.clone(),
            },
            ibans: Vec::new(),
            recurring: self.recurring,
            valid_until: self.valid_until(),
            frequency_per_day: self.frequency_per_day,
        }
    }
}

/// A path segment, percent-encoded.
pub(crate) fn segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn clip(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// The `code`s of an error body (`tppMessages`, or problem+json's `code` and
/// `additionalErrors`).
pub fn error_codes(body: &[u8]) -> Vec<String> {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let mut codes = Vec::new();
    let list = v
        .get("tppMessages")
        .and_then(Value::as_array)
        .cloned()
        .or_else(|| v.as_array().cloned())
        .unwrap_or_default();
    for m in list.iter().chain(
        v.get("additionalErrors")
            .and_then(Value::as_array)
            .into_iter()
            .flatten(),
    ) {
        if let Some(c) = text(m, "code") {
            codes.push(clip(c, 64));
        }
    }
    if let Some(c) = text(&v, "code") {
        codes.push(clip(c, 64));
    }
    codes
}

/// The bank's own error text, for the log only, cut short and on one line.
pub(crate) fn error_text(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(512)]);
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn money(v: &Value) -> Option<Money> {
    let amount: Decimal = text(v, "amount")?.trim().parse().ok()?;
    let currency = Currency::parse(text(v, "currency")?).ok()?;
    Some(Money::new(amount, currency))
}

fn date(v: &Value, key: &str) -> Option<Date> {
    chrono::NaiveDate::parse_from_str(text(v, key)?, "%Y-%m-%d").ok()
}

/// An account of `/v1/accounts`, `None` when it cannot be used (no id, no currency).
pub fn account(a: &Value, bank: &RegisteredBank) -> Option<AccountDetails> {
    let external_id = clip(text(a, "resourceId")?, 128);
    let iban = text(a, "iban").and_then(|i| Iban::parse(i).ok());
    let bban = text(a, "bban").map(|b| clip(b, 34));
    let account_number = bban.or_else(|| {
        iban.as_ref()
            .filter(|i| i.as_str().starts_with("DE") && i.as_str().len() == 22)
            .map(|i| i.as_str()[12..].trim_start_matches('0').to_owned())
    });
    let bank_code = iban
        .as_ref()
        .filter(|i| i.as_str().starts_with("DE") && i.as_str().len() == 22)
        .map(|i| i.as_str()[4..12].to_owned())
        .or_else(|| bank.bank_code.clone());
    let account_type = match text(a, "cashAccountType").unwrap_or_default() {
        "CACC" | "CASH" | "TRAN" => AccountType::Giro,
        "SVGS" | "MOMA" | "ONDP" => AccountType::Savings,
        "CARD" => AccountType::CreditCard,
        "LOAN" | "MGLD" => AccountType::Loan,
        _ => AccountType::Unknown,
    };
    let masked = text(a, "maskedPan");
    let card_last4 = masked
        .map(|m| m.chars().filter(char::is_ascii_digit).collect::<String>())
        .filter(|d| d.len() >= 4)
        .map(|d| d[d.len() - 4..].to_owned());
    let name = text(a, "name")
        .or_else(|| text(a, "displayName"))
        .or_else(|| text(a, "product"))
        .unwrap_or("Konto");
    let owner = text(a, "ownerName").unwrap_or_default();
    Some(AccountDetails {
        external_id,
        iban,
        account_number,
        bank_code,
        bic: text(a, "bic")
            .map(|b| clip(b, 11))
            .or_else(|| bank.bic.clone()),
        bank_name: bank.name.clone(),
        currency: Currency::parse(text(a, "currency")?).ok()?,
        account_type: if masked.is_some() && account_type == AccountType::Unknown {
            AccountType::CreditCard
        } else {
            account_type
        },
        name: clip(name, 140),
        owner: clip(owner, 140),
        is_jointly_managed: false,
        card_last4,
    })
}

/// The balances finX keeps: the first booked and the first available type present, in the
/// documented order of preference.
pub fn balances(body: &Value) -> Vec<Balance> {
    let list = body
        .get("balances")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let pick = |types: &[&str], status: BalanceStatus| {
        types.iter().find_map(|t| {
            list.iter()
                .find(|b| text(b, "balanceType") == Some(*t))
                .and_then(|b| {
                    let amount = money(b.get("balanceAmount")?)?;
                    // A balance without a date says nothing usable.
                    let date = date(b, "referenceDate").or_else(|| {
                        text(b, "lastChangeDateTime")
                            .and_then(|d| d.get(..10))
                            .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                    })?;
                    Some(Balance {
                        amount,
                        date,
                        status,
                    })
                })
        })
    };
    [
        pick(
            &["closingBooked", "interimBooked", "openingBooked"],
            BalanceStatus::Booked,
        ),
        pick(
            &[
                "interimAvailable",
                "expected",
                "forwardAvailable",
                "closingAvailable",
                "openingAvailable",
            ],
            BalanceStatus::Available,
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The finX type of an ISO 20022 bank transaction code (`DOMAIN-FAMILY-SUBFAMILY`) or, failing
/// that, of the bank's proprietary code.
fn transaction_type(btc: Option<&str>, proprietary: Option<&str>, credit: bool) -> TransactionType {
    if let Some(code) = btc {
        let parts: Vec<&str> = code.split('-').collect();
        let (family, sub) = (parts.get(1).copied(), parts.get(2).copied());
        match (family, sub) {
            (Some("RDDT" | "IDDT"), _) => return TransactionType::DirectDebit,
            (Some("ICDT" | "RCDT"), Some("STDO")) => return TransactionType::StandingOrder,
            (_, Some("SALA" | "PENS")) => return TransactionType::SalaryOrRent,
            (Some("CCRD" | "DCRD"), Some("CWDL")) => return TransactionType::Atm,
            (Some("CCRD" | "DCRD" | "MCRD"), _) => return TransactionType::ElectronicCash,
            (Some("CNTR"), _) => return TransactionType::Atm,
            (Some("ICDT" | "RCDT"), _) => return TransactionType::Transfer,
            (Some("MDOP" | "MCOP"), Some("CHRG" | "INTR" | "FEES" | "COMM")) => {
                return TransactionType::ChargesOrInterest;
            }
            _ => {}
        }
    }
    let p = proprietary.unwrap_or_default().to_ascii_uppercase();
    if p.contains("LASTSCHRIFT") {
        TransactionType::DirectDebit
    } else if p.contains("DAUERAUFTRAG") {
        TransactionType::StandingOrder
    } else if p.contains("LOHN") || p.contains("GEHALT") || p.contains("RENTE") {
        TransactionType::SalaryOrRent
    } else if p.contains("GELDAUTOMAT") || p.contains("BARGELD") {
        TransactionType::Atm
    } else if p.contains("KARTE") || p.contains("GIROCARD") {
        TransactionType::ElectronicCash
    } else if p.contains("ENTGELT") || p.contains("ZINS") || p.contains("ABSCHLUSS") {
        TransactionType::ChargesOrInterest
    } else if p.contains("UEBERWEISUNG") || p.contains("ÜBERWEISUNG") || credit {
        TransactionType::Transfer
    } else {
        TransactionType::Unknown
    }
}

fn reference_iban(v: Option<&Value>) -> Option<Iban> {
    v.and_then(|r| text(r, "iban"))
        .and_then(|i| Iban::parse(i).ok())
}

/// The booked (or pending) transactions of an `accountReport`.
pub fn transactions(report: &Value, booked: bool) -> Vec<TransactionDetails> {
    let key = if booked { "booked" } else { "pending" };
    let Some(list) = report.get(key).and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter().filter_map(|t| transaction(t, booked)).collect()
}

fn transaction(t: &Value, booked: bool) -> Option<TransactionDetails> {
    let amount = money(t.get("transactionAmount")?)?;
    let credit = amount.amount().is_sign_positive() && !amount.amount().is_zero();
    let booked_on = date(t, "bookingDate")
        .or_else(|| date(t, "valueDate"))
        .or_else(|| date(t, "transactionDate"))?;
    let value_date = date(t, "valueDate").unwrap_or(booked_on);
    // The other side: the debtor of a credit, the creditor of a debit.
    let (name_key, account_key, agent_key) = if credit {
        ("debtorName", "debtorAccount", "debtorAgent")
    } else {
        ("creditorName", "creditorAccount", "creditorAgent")
    };
    let counterparty = Counterparty {
        name: text(t, name_key)
            .or_else(|| {
                text(
                    t,
                    if credit {
                        "ultimateDebtor"
                    } else {
                        "ultimateCreditor"
                    },
                )
            })
            .map(|n| clip(n, 140)),
        iban: reference_iban(t.get(account_key)),
        bic: text(t, agent_key).map(|b| clip(b, 11)),
        account_number: t
            .get(account_key)
            .and_then(|r| text(r, "bban"))
            .map(|b| clip(b, 34)),
        bank_code: None,
    };
    let purpose = text(t, "remittanceInformationUnstructured")
        .map(str::to_owned)
        .or_else(|| {
            let lines: Vec<&str> = t
                .get("remittanceInformationUnstructuredArray")?
                .as_array()?
                .iter()
                .filter_map(Value::as_str)
                .collect();
            (!lines.is_empty()).then(|| lines.join(" "))
        })
        .or_else(|| {
            t.get("remittanceInformationStructured")
                .and_then(|s| text(s, "reference").map(str::to_owned))
        })
        .map(|p| clip(&p, 1000));
    let btc = text(t, "bankTransactionCode");
    let proprietary = text(t, "proprietaryBankTransactionCode");
    let mut details = TransactionDetails {
        external_id: String::new(),
        amount,
        counterparty,
        purpose,
        booked_on,
        value_date,
        booked,
        booking_text: proprietary.map(|p| clip(p, 140)),
        transaction_type: transaction_type(btc, proprietary, credit),
        creditor_id: text(t, "creditorId").map(|c| clip(c, 35)),
        mandate_reference: text(t, "mandateId").map(|c| clip(c, 35)),
        end_to_end_reference: text(t, "endToEndId").map(|c| clip(c, 35)),
        sepa_purpose_code: text(t, "purposeCode").map(|c| clip(c, 4)),
        bank_transaction_code: btc.map(|c| clip(c, 35)),
        // Four digits, or nothing (a bank's other text is not an MCC).
        mcc: text(t, "merchantCategoryCode")
            .filter(|m| m.len() == 4 && m.bytes().all(|b| b.is_ascii_digit()))
            .map(str::to_owned),
    };
    details.external_id = match text(t, "transactionId").or_else(|| text(t, "entryReference")) {
        Some(id) => clip(id, 128),
        None => derived_id(&details),
    };
    Some(details)
}

/// An id from the transaction's own fields, for banks that give none: the same transaction
/// fetched again gets the same id. Identical ones are numbered by
/// [`number_derived_ids`].
fn derived_id(t: &TransactionDetails) -> String {
    let mut h = Sha256::new();
    for part in [
        t.booked_on.to_string(),
        t.value_date.to_string(),
        t.amount.amount().normalize().to_string(),
        t.amount.currency().as_str().to_owned(),
        t.counterparty.name.clone().unwrap_or_default(),
        t.counterparty
            .iban
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        t.purpose.clone().unwrap_or_default(),
        t.end_to_end_reference.clone().unwrap_or_default(),
        t.mandate_reference.clone().unwrap_or_default(),
        String::from(if t.booked { "b" } else { "p" }),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    format!("d-{}", hex::encode(&digest[..12]))
}

/// Numbers derived ids that repeat (two identical coffees on one day): the second is
/// `…-2`, in the order the bank listed them, which banks keep stable.
pub fn number_derived_ids(list: &mut [TransactionDetails]) {
    let mut seen: HashMap<String, u32> = HashMap::new();
    for t in list.iter_mut().filter(|t| t.external_id.starts_with("d-")) {
        let n = seen.entry(t.external_id.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            t.external_id = format!("{}-{n}", t.external_id);
        }
    }
}

/// The SCA methods of `scaMethods`.
pub fn methods(list: &[Value]) -> Vec<ScaMethod> {
    list.iter()
        .filter_map(|m| {
            let id = clip(text(m, "authenticationMethodId")?, 64);
            Some(ScaMethod {
                name: clip(text(m, "name").unwrap_or(&id), 70),
                kind: ScaMethodKind::from_xs2a(text(m, "authenticationType").unwrap_or_default()),
                id,
            })
        })
        .take(16)
        .collect()
}

/// The TAN challenge of an authorisation answer, when it has one (`challengeData`, or a
/// chosen method with an `authoriseTransaction` link).
pub fn challenge(body: &Value) -> Option<Challenge> {
    let data = body.get("challengeData");
    let chosen = body.get("chosenScaMethod");
    let asks_tan = body
        .get("_links")
        .and_then(|l| l.get("authoriseTransaction"))
        .is_some();
    if data.is_none() && !asks_tan {
        return None;
    }
    let method = chosen
        .and_then(|m| text(m, "name").or_else(|| text(m, "authenticationMethodId")))
        .map_or_else(|| "TAN".to_owned(), |m| clip(m, 70));
    let image_png = data
        .and_then(|d| text(d, "image"))
        .and_then(|i| STANDARD.decode(i.trim()).ok())
        .filter(|i| !i.is_empty() && i.len() <= MAX_CHALLENGE_IMAGE && i.starts_with(b"\x89PNG"));
    let flicker = data
        .and_then(|d| d.get("data"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("")
        })
        .filter(|f| !f.is_empty())
        .map(|f| clip(&f, 2048));
    let prompt = data
        .and_then(|d| text(d, "additionalInformation"))
        .or_else(|| text(body, "psuMessage"))
        .map(|p| clip(p, 500));
    let max_length = data
        .and_then(|d| d.get("otpMaxLength"))
        .and_then(Value::as_u64)
        .and_then(|n| u8::try_from(n).ok())
        .filter(|n| (1..=64).contains(n));
    Some(Challenge {
        method,
        prompt,
        image_png,
        flicker,
        max_length,
    })
}

/// What the answer to a consent's creation asks first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsentNext {
    /// Send the user to the bank's page (`scaRedirect`); poll `status` after.
    Redirect {
        /// The bank's page.
        url: String,
        /// The SCA status link, when given.
        status: Option<String>,
    },
    /// An OAuth authorisation (`scaOAuth`): the bank's OAuth server metadata is here.
    OAuth(String),
    /// Start the authorisation at this link: with the PSU's password
    /// (`…WithPsuAuthentication`), or with the PSU's id alone, the password following only
    /// if the bank then asks for it (`…WithPsuIdentification`, plain `startAuthorisation`).
    Start {
        /// The link.
        link: Option<String>,
        /// Whether the password goes with the start.
        with_password: bool,
    },
}

/// What the answer to a consent's creation asks first.
#[must_use]
pub fn consent_next(body: &Value) -> ConsentNext {
    if let Some(url) = link(body, "scaRedirect") {
        return ConsentNext::Redirect {
            url,
            status: link(body, "scaStatus"),
        };
    }
    if let Some(server) = link(body, "scaOAuth") {
        return ConsentNext::OAuth(server);
    }
    let with = [
        "startAuthorisationWithPsuAuthentication",
        "startAuthorisationWithEncryptedPsuAuthentication",
    ]
    .into_iter()
    .find_map(|l| link(body, l));
    if with.is_some() {
        return ConsentNext::Start {
            link: with,
            with_password: true,
        };
    }
    ConsentNext::Start {
        link: [
            "startAuthorisationWithPsuIdentification",
            "startAuthorisation",
        ]
        .into_iter()
        .find_map(|l| link(body, l)),
        with_password: false,
    }
}

/// What an authorisation's answer asks next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorisationNext {
    /// SCA is done (`finalised` or `exempted`).
    Finalised,
    /// SCA failed.
    Failed,
    /// Continue at the bank's page (`scaRedirect` after an explicit start).
    Redirect {
        /// The bank's page.
        url: String,
        /// The SCA status link, when given.
        status: Option<String>,
    },
    /// Choose one of these methods, at `link`.
    Methods {
        /// The methods.
        methods: Vec<ScaMethod>,
        /// Where the choice goes.
        link: Option<String>,
    },
    /// Enter the TAN for this challenge, at `link`.
    Tan {
        /// The challenge.
        challenge: Challenge,
        /// Where the TAN goes.
        link: Option<String>,
    },
    /// Nothing to enter: the user approves elsewhere; poll `link`.
    Decoupled {
        /// The bank's message.
        prompt: Option<String>,
        /// The SCA status link.
        link: Option<String>,
    },
}

/// The value of `_links.<name>.href`.
#[must_use]
pub fn link(body: &Value, name: &str) -> Option<String> {
    body.get("_links")?
        .get(name)?
        .get("href")?
        .as_str()
        .map(str::to_owned)
}

/// What an authorisation's answer asks next: `scaStatus` first, then a method choice (more
/// than one method and none chosen), then a TAN (a challenge, or an `authoriseTransaction`
/// link), else a decoupled approval.
#[must_use]
pub fn authorisation_next(body: &Value) -> AuthorisationNext {
    match body
        .get("scaStatus")
        .and_then(Value::as_str)
        .unwrap_or_default()
    {
        "finalised" | "exempted" => return AuthorisationNext::Finalised,
        "failed" => return AuthorisationNext::Failed,
        _ => {}
    }
    let status = link(body, "scaStatus");
    if let Some(url) = link(body, "scaRedirect") {
        return AuthorisationNext::Redirect { url, status };
    }
    if let Some(list) = body.get("scaMethods").and_then(Value::as_array)
        && list.len() > 1
        && body.get("chosenScaMethod").is_none()
    {
        return AuthorisationNext::Methods {
            methods: methods(list),
            link: link(body, "selectAuthenticationMethod").or(status),
        };
    }
    if let Some(challenge) = challenge(body) {
        return AuthorisationNext::Tan {
            challenge,
            link: link(body, "authoriseTransaction").or(status),
        };
    }
    AuthorisationNext::Decoupled {
        prompt: psu_message(body),
        link: status,
    }
}

/// The bank's message to the PSU (`psuMessage`), cut to 500 characters.
#[must_use]
pub fn psu_message(body: &Value) -> Option<String> {
    text(body, "psuMessage").map(|m| clip(m, 500))
}
