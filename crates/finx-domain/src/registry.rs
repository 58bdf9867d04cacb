//! The bank registry: the banks finX reaches through their Berlin Group NextGenPSD2 (XS2A)
//! APIs, with what the connector must know of each (base URL, SCA approaches, consent model,
//! quirks). Entries are validated here, whatever file or table they come from.

use thiserror::Error;
use url::Url;

use crate::bank::{Institution, LoginFields};
use crate::ids::InstitutionId;

/// An SCA approach a bank offers (XS2A `ASPSP-SCA-Approach`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScaApproach {
    /// `REDIRECT`: the user authenticates on the bank's pages.
    Redirect,
    /// `DECOUPLED`: the user approves in the bank's app.
    Decoupled,
    /// `EMBEDDED`: finX carries the PIN and the TAN.
    Embedded,
    /// `OAUTH`: a redirect with a token exchange.
    OAuth,
}

impl ScaApproach {
    /// Every approach, in the order the registry lists them.
    pub const ALL: [Self; 4] = [Self::Redirect, Self::Decoupled, Self::Embedded, Self::OAuth];

    /// The XS2A name.
    #[must_use]
    pub fn as_xs2a(self) -> &'static str {
        match self {
            Self::Redirect => "REDIRECT",
            Self::Decoupled => "DECOUPLED",
            Self::Embedded => "EMBEDDED",
            Self::OAuth => "OAUTH",
        }
    }

    /// From the XS2A name (case-insensitive).
    #[must_use]
    pub fn from_xs2a(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_xs2a().eq_ignore_ascii_case(name.trim()))
    }
}

/// Which consent a bank takes for account information.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsentModel {
    /// `bank-offered`: empty `accounts`/`balances`/`transactions` lists; the user picks the
    /// accounts at the bank.
    BankOffered,
    /// `available-accounts`: first `availableAccounts` to list the accounts, then a dedicated
    /// consent for the chosen ones.
    AvailableAccounts,
    /// `dedicated`: a consent naming the accounts (IBANs) the customer passed.
    Dedicated,
}

impl ConsentModel {
    /// The registry's name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BankOffered => "bank-offered",
            Self::AvailableAccounts => "available-accounts",
            Self::Dedicated => "dedicated",
        }
    }

    /// From the registry's name.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        [Self::BankOffered, Self::AvailableAccounts, Self::Dedicated]
            .into_iter()
            .find(|m| m.as_str() == name.trim())
    }
}

/// What a bank does differently, as flags the connector reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Quirks {
    /// Requests must be signed with the QSealC (`Digest`, `Signature`,
    /// `TPP-Signature-Certificate`).
    pub signing_required: bool,
    /// The explicit start of the authorisation carries the PIN
    /// (`startAuthorisationWithPsuAuthentication`) even where the links do not say so.
    pub password_at_start: bool,
    /// The bank starts the authorisation implicitly with the consent: never start it
    /// explicitly.
    pub implicit_start: bool,
}

impl Quirks {
    /// The flags as registry names, for storage and listings.
    #[must_use]
    pub fn names(self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.signing_required {
            out.push("signing-required");
        }
        if self.password_at_start {
            out.push("password-at-start");
        }
        if self.implicit_start {
            out.push("implicit-start");
        }
        out
    }

    /// From registry names.
    ///
    /// # Errors
    /// [`RegistryError::Invalid`] for an unknown name.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, RegistryError> {
        let mut q = Self::default();
        for name in names {
            match name.trim() {
                "signing-required" => q.signing_required = true,
                "password-at-start" => q.password_at_start = true,
                "implicit-start" => q.implicit_start = true,
                "" => {}
                _ => return Err(RegistryError::Invalid("quirks", "an unknown quirk")),
            }
        }
        Ok(q)
    }
}

/// A registry entry that cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RegistryError {
    /// A field is invalid.
    #[error("{0}: {1}")]
    Invalid(&'static str, &'static str),
}

/// A bank finX reaches through its XS2A API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredBank {
    /// finX's id for it (`<country>-<bank code>`, or `bic-<BIC>` without a bank code, unless
    /// the registry names one).
    pub id: InstitutionId,
    /// Display name.
    pub name: String,
    /// BIC (8 or 11 characters).
    pub bic: Option<String>,
    /// National bank code (German BLZ).
    pub bank_code: Option<String>,
    /// ISO 3166 country code.
    pub country: String,
    /// The XS2A base URL; `/v1/…` is appended.
    pub url: Url,
    /// The approaches it offers, in its order of preference.
    pub sca_approaches: Vec<ScaApproach>,
    /// The consent it takes.
    pub consent_model: ConsentModel,
    /// What it does differently.
    pub quirks: Quirks,
}

/// The parts of a registry entry as a file gives them, before checking.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BankDraft {
    /// An explicit id, if the file gives one.
    pub id: Option<String>,
    /// Name.
    pub name: String,
    /// BIC.
    pub bic: Option<String>,
    /// Bank code.
    pub bank_code: Option<String>,
    /// Country (default `DE`).
    pub country: Option<String>,
    /// Base URL.
    pub url: String,
    /// Approaches, by XS2A name.
    pub sca_approaches: Vec<String>,
    /// Consent model name (default `bank-offered`).
    pub consent_model: Option<String>,
    /// Quirk names.
    pub quirks: Vec<String>,
}

impl RegisteredBank {
    /// Checks a draft: a name of 1 to 140 characters, a BIC of 8 or 11 letters and digits, a
    /// bank code of 1 to 11 digits, a two-letter country, an https base URL (http only on
    /// loopback, for sandboxes), known approaches (all but OAuth when none is given) and a
    /// known consent model.
    ///
    /// # Errors
    /// [`RegistryError::Invalid`] naming the field.
    pub fn from_draft(d: BankDraft) -> Result<Self, RegistryError> {
        let name = d.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 140 {
            return Err(RegistryError::Invalid("name", "1 to 140 characters"));
        }
        let bic = d
            .bic
            .map(|b| b.trim().to_ascii_uppercase())
            .filter(|b| !b.is_empty());
        if let Some(b) = &bic
            && (!(b.len() == 8 || b.len() == 11) || !b.bytes().all(|c| c.is_ascii_alphanumeric()))
        {
            return Err(RegistryError::Invalid("bic", "8 or 11 letters and digits"));
        }
        let bank_code = d
            .bank_code
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty());
        if let Some(c) = &bank_code
            && (c.len() > 11 || !c.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(RegistryError::Invalid("bank_code", "1 to 11 digits"));
        }
        let country = d
            .country
            .map_or_else(|| "DE".to_owned(), |c| c.trim().to_ascii_uppercase());
        if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(RegistryError::Invalid("country", "two letters"));
        }
        let url =
            Url::parse(d.url.trim()).map_err(|_| RegistryError::Invalid("url", "not a URL"))?;
        let loopback = matches!(
            url.host(),
            Some(url::Host::Ipv4(ip)) if ip.is_loopback()
        ) || matches!(url.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
            || url.host_str() == Some("localhost");
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => {
                return Err(RegistryError::Invalid(
                    "url",
                    "https (http only on loopback)",
                ));
            }
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(RegistryError::Invalid("url", "a base URL without query"));
        }
        let mut sca_approaches = Vec::new();
        for a in &d.sca_approaches {
            let a = ScaApproach::from_xs2a(a).ok_or(RegistryError::Invalid(
                "sca_approaches",
                "an unknown approach",
            ))?;
            if !sca_approaches.contains(&a) {
                sca_approaches.push(a);
            }
        }
        if sca_approaches.is_empty() {
            sca_approaches = vec![
                ScaApproach::Redirect,
                ScaApproach::Decoupled,
                ScaApproach::Embedded,
            ];
        }
        let consent_model = match d.consent_model.as_deref().map(str::trim) {
            None | Some("") => ConsentModel::BankOffered,
            Some(m) => ConsentModel::parse(m)
                .ok_or(RegistryError::Invalid("consent_model", "an unknown model"))?,
        };
        let quirks = Quirks::parse(d.quirks.iter().map(String::as_str))?;
        let id = match d.id.map(|i| i.trim().to_owned()).filter(|i| !i.is_empty()) {
            Some(id) => id,
            None => match (&bank_code, &bic) {
                (Some(c), _) => format!("{}-{c}", country.to_ascii_lowercase()),
                (None, Some(b)) => format!("bic-{}", b.to_ascii_lowercase()),
                (None, None) => {
                    return Err(RegistryError::Invalid("bank_code", "a bank code or a BIC"));
                }
            },
        };
        let id = InstitutionId::parse(&id)
            .map_err(|_| RegistryError::Invalid("id", "letters, digits and dashes"))?;
        Ok(Self {
            id,
            name,
            bic,
            bank_code,
            country,
            url,
            sca_approaches,
            consent_model,
            quirks,
        })
    }

    /// The bank as the widget lists it.
    #[must_use]
    pub fn institution(&self) -> Institution {
        Institution {
            id: self.id.clone(),
            name: self.name.clone(),
            bic: self.bic.clone(),
            bank_code: self.bank_code.clone(),
            country: self.country.clone(),
            login_fields: LoginFields {
                user_label: "Anmeldename".into(),
                secret_label: "PIN".into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> BankDraft {
        BankDraft {
            name: "Musterbank".into(),
            bic: Some("mustdeffxxx".into()),
            bank_code: Some("10010010".into()),
            url: "https://xs2a.musterbank.example".into(),
            ..BankDraft::default()
        }
    }

    #[test]
    fn a_draft_becomes_an_entry_with_defaults() {
        let b = RegisteredBank::from_draft(draft()).expect("valid");
        assert_eq!(b.id.as_str(), "de-10010010");
        assert_eq!(b.bic.as_deref(), Some("MUSTDEFFXXX"));
        assert_eq!(b.country, "DE");
        assert_eq!(b.consent_model, ConsentModel::BankOffered);
        assert_eq!(b.sca_approaches.len(), 3);
        assert_eq!(b.institution().name, "Musterbank");
    }

    #[test]
    fn bad_fields_are_named() {
        let cases: Vec<(BankDraft, &str)> = vec![
            (
                BankDraft {
                    name: " ".into(),
                    ..draft()
                },
                "name",
            ),
            (
                BankDraft {
                    bic: Some("ABC".into()),
                    ..draft()
                },
                "bic",
            ),
            (
                BankDraft {
                    bank_code: Some("12a".into()),
                    ..draft()
                },
                "bank_code",
            ),
            (
                BankDraft {
                    country: Some("DEU".into()),
                    ..draft()
                },
                "country",
            ),
            (
                BankDraft {
                    url: "http://bank.example".into(),
                    ..draft()
                },
                "url",
            ),
            (
                BankDraft {
                    url: "https://b.example/?x=1".into(),
                    ..draft()
                },
                "url",
            ),
            (
                BankDraft {
                    sca_approaches: vec!["SMOKE".into()],
                    ..draft()
                },
                "sca_approaches",
            ),
            (
                BankDraft {
                    consent_model: Some("all".into()),
                    ..draft()
                },
                "consent_model",
            ),
            (
                BankDraft {
                    quirks: vec!["fast".into()],
                    ..draft()
                },
                "quirks",
            ),
            (
                BankDraft {
                    bank_code: None,
                    bic: None,
                    ..draft()
                },
                "bank_code",
            ),
        ];
        for (d, field) in cases {
            match RegisteredBank::from_draft(d) {
                Err(RegistryError::Invalid(f, _)) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        let local = BankDraft {
            url: "http://127.0.0.1:9090/xs2a".into(),
            ..draft()
        };
        assert!(
            RegisteredBank::from_draft(local).is_ok(),
            "http on loopback"
        );
    }

    #[test]
    fn names_round_trip() {
        for a in ScaApproach::ALL {
            assert_eq!(ScaApproach::from_xs2a(a.as_xs2a()), Some(a));
        }
        let q = Quirks {
            signing_required: true,
            password_at_start: false,
            implicit_start: true,
        };
        assert_eq!(Quirks::parse(q.names()), Ok(q));
    }
}
