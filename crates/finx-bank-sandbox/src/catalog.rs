//! What the sandbox serves: its banks, its test logins and the accounts behind them.

use finx_domain::bank::{AccountDetails, AccountType, Institution, LoginFields};
use finx_domain::ids::{IdError, InstitutionId};
use finx_domain::money::Currency;

use crate::sepa::german_iban;

/// How a bank authenticates its users (XS2A `ASPSP-SCA-Approach`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Approach {
    /// finX shows the bank's login form, the method choice and the TAN prompt.
    Embedded,
    /// The user logs in and approves on the bank's own pages.
    Redirect,
    /// finX shows the login form; the user approves in the bank's app.
    Decoupled,
}

/// One sandbox bank.
#[derive(Debug)]
pub(crate) struct Bank {
    /// How it authenticates.
    pub(crate) approach: Approach,
    /// National bank code (BLZ).
    pub(crate) code: &'static str,
    /// Display name.
    pub(crate) name: &'static str,
    /// BIC.
    pub(crate) bic: &'static str,
    /// Login form labels.
    pub(crate) user_label: &'static str,
    /// Login form labels.
    pub(crate) secret_label: &'static str,
    /// The demo giro account's number.
    pub(crate) giro_number: &'static str,
    /// The demo savings account's number.
    pub(crate) savings_number: &'static str,
    /// The `bigdata` login's giro account number.
    pub(crate) bigdata_giro_number: &'static str,
    /// Holder of the demo giro account.
    pub(crate) giro_owner: &'static str,
    /// Whether the demo giro account is held jointly.
    pub(crate) giro_joint: bool,
    /// Monthly account fee in cents (0: free account).
    pub(crate) monthly_fee_cents: i64,
    /// Credit card limit in cents.
    pub(crate) card_limit_cents: i64,
}

/// The holder of every sandbox account but the household's giro accounts, whose holders
/// are written as each bank writes them (for account verification).
pub(crate) const HOLDER: &str = "Erika Mustermann";

/// The banks, in the order `institutions()` lists them.
pub(crate) static BANKS: [Bank; 3] = [
    Bank {
        approach: Approach::Embedded,
        code: "90094815",
        name: "finX Sandbox Bank",
        bic: "FINXDEB1XXX",
        user_label: "Anmeldename",
        secret_label: "PIN",
        giro_number: "2881",
        savings_number: "2882",
        bigdata_giro_number: "2889",
        // How many banks report a holder: family name first, in capitals.
        giro_owner: "MUSTERMANN, ERIKA",
        giro_joint: false,
        monthly_fee_cents: 490,
        card_limit_cents: 250_000,
    },
    Bank {
        approach: Approach::Redirect,
        code: "90094816",
        name: "Sparkasse Musterstadt (Sandbox)",
        bic: "SPMUDEM1XXX",
        user_label: "Anmeldename oder Legitimations-ID",
        secret_label: "PIN",
        giro_number: "1002003004",
        savings_number: "3002003004",
        bigdata_giro_number: "1002003999",
        giro_owner: "Erika und Max Mustermann",
        giro_joint: true,
        monthly_fee_cents: 695,
        card_limit_cents: 200_000,
    },
    Bank {
        approach: Approach::Decoupled,
        code: "90094817",
        name: "Testbank Direkt (Sandbox)",
        bic: "TBDIDEF1XXX",
        user_label: "Kontonummer oder Benutzername",
        secret_label: "Passwort",
        giro_number: "5550012345",
        savings_number: "5550012346",
        bigdata_giro_number: "5550019999",
        // A title, an umlaut and a double name.
        giro_owner: "Dr. Erika Müller-Mustermann",
        giro_joint: false,
        monthly_fee_cents: 0,
        card_limit_cents: 300_000,
    },
];

impl Bank {
    /// The institution id, `sandbox-<bank code>`.
    pub(crate) fn institution_id(&self) -> Result<InstitutionId, IdError> {
        InstitutionId::parse(&format!("sandbox-{}", self.code))
    }

    /// The bank as an [`Institution`].
    pub(crate) fn institution(&self) -> Result<Institution, IdError> {
        Ok(Institution {
            id: self.institution_id()?,
            name: self.name.to_owned(),
            bic: Some(self.bic.to_owned()),
            bank_code: Some(self.code.to_owned()),
            country: "DE".to_owned(),
            login_fields: LoginFields {
                user_label: self.user_label.to_owned(),
                secret_label: self.secret_label.to_owned(),
            },
        })
    }

    /// A bank by its institution id.
    pub(crate) fn by_institution(id: &str) -> Option<&'static Self> {
        let code = id.strip_prefix("sandbox-")?;
        Self::by_code(code)
    }

    /// A bank by its bank code.
    pub(crate) fn by_code(code: &str) -> Option<&'static Self> {
        BANKS.iter().find(|b| b.code == code)
    }
}

/// The logins that open a session (`locked` and `unavailable` never do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum User {
    /// Needs SCA.
    Demo,
    /// No SCA.
    NoSca,
    /// Like `Demo`, but slow.
    Slow,
    /// One giro account with 10 000 transactions.
    BigData,
    /// Like `Demo`, but declines in the bank's app (decoupled).
    DecoupledReject,
    /// Like `Demo`, but cancels on the bank's pages (redirect).
    RedirectCancel,
    /// Its bank's books move forward one bank day per sync (issue 13).
    Moving,
    /// The first balance read of a consent works; every later one is refused with
    /// `ACCESS_EXCEEDED` (429) and `Retry-After: 7200`.
    Throttled,
}

/// Which data a login sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Profile {
    /// Giro, savings and credit card of an ordinary household.
    Household,
    /// One very busy giro account.
    BigData,
    /// The household's giro account alone, whose bank day moves forward one day per sync,
    /// starting [`MOVING_LAG_DAYS`](crate::ledger::MOVING_LAG_DAYS) back: new transactions
    /// arrive, pending card payments book (restaurants with the tip), and some pending
    /// ones are reversed.
    Moving,
}

impl User {
    /// Every user, for parsing.
    const ALL: [Self; 8] = [
        Self::Demo,
        Self::NoSca,
        Self::Slow,
        Self::BigData,
        Self::DecoupledReject,
        Self::RedirectCancel,
        Self::Moving,
        Self::Throttled,
    ];

    /// The login name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Demo => "demo",
            Self::NoSca => "nosca",
            Self::Slow => "slow",
            Self::BigData => "bigdata",
            Self::DecoupledReject => "decoupled-reject",
            Self::RedirectCancel => "redirect-cancel",
            Self::Moving => "moving",
            Self::Throttled => "throttled",
        }
    }

    /// A user by exact login name.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|u| u.name() == name)
    }

    /// The data behind the login. All but `bigdata` share one household.
    pub(crate) fn profile(self) -> Profile {
        match self {
            Self::BigData => Profile::BigData,
            Self::Moving => Profile::Moving,
            Self::Demo
            | Self::NoSca
            | Self::Slow
            | Self::DecoupledReject
            | Self::RedirectCancel
            | Self::Throttled => Profile::Household,
        }
    }
}

impl Profile {
    /// A name that keys its random streams.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Self::Household => "household",
            Self::BigData => "bigdata",
            Self::Moving => "moving",
        }
    }

    /// Its accounts, in the order they are listed.
    pub(crate) fn accounts(self) -> &'static [AccountKind] {
        match self {
            Self::Household => &[AccountKind::Giro, AccountKind::Savings, AccountKind::Card],
            Self::BigData | Self::Moving => &[AccountKind::Giro],
        }
    }
}

/// The kinds of sandbox account; each login has at most one of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AccountKind {
    /// Girokonto.
    Giro,
    /// Tagesgeld.
    Savings,
    /// Visa Classic.
    Card,
}

impl AccountKind {
    /// The external id.
    pub(crate) fn external_id(self) -> &'static str {
        match self {
            Self::Giro => "giro",
            Self::Savings => "savings",
            Self::Card => "card",
        }
    }
}

/// The last four digits of every sandbox credit card (the Visa test card number).
pub(crate) const CARD_LAST4: &str = "1111";

/// The product name of the credit card.
pub(crate) const CARD_NAME: &str = "Visa Classic";

/// What the bank says about one account.
pub(crate) fn account_details(bank: &Bank, profile: Profile, kind: AccountKind) -> AccountDetails {
    let (number, account_type, name, owner, joint) = match (kind, profile) {
        (AccountKind::Giro, Profile::Household | Profile::Moving) => (
            Some(bank.giro_number),
            AccountType::Giro,
            "Girokonto",
            bank.giro_owner,
            bank.giro_joint,
        ),
        (AccountKind::Giro, Profile::BigData) => (
            Some(bank.bigdata_giro_number),
            AccountType::Giro,
            "Girokonto",
            HOLDER,
            false,
        ),
        (AccountKind::Savings, _) => (
            Some(bank.savings_number),
            AccountType::Savings,
            "Tagesgeld",
            HOLDER,
            false,
        ),
        (AccountKind::Card, _) => (None, AccountType::CreditCard, CARD_NAME, HOLDER, false),
    };
    AccountDetails {
        external_id: kind.external_id().to_owned(),
        iban: number.and_then(|n| german_iban(bank.code, n)),
        account_number: number.map(str::to_owned),
        bank_code: Some(bank.code.to_owned()),
        bic: Some(bank.bic.to_owned()),
        bank_name: bank.name.to_owned(),
        currency: Currency::EUR,
        account_type,
        name: name.to_owned(),
        owner: owner.to_owned(),
        is_jointly_managed: joint,
        card_last4: (kind == AccountKind::Card).then(|| CARD_LAST4.to_owned()),
    }
}
