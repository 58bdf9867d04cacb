//! The sandbox's cast: employer, landlord, creditors, friends and merchants.

/// Someone with a German bank account.
pub(crate) struct Party {
    /// Account holder.
    pub(crate) name: &'static str,
    /// Bank code of the account.
    pub(crate) bank_code: &'static str,
    /// BIC of that bank.
    pub(crate) bic: &'static str,
    /// Account number.
    pub(crate) account: &'static str,
}

/// Who pays the salary.
pub(crate) const EMPLOYER: Party = Party {
    name: "Musterfirma GmbH",
    bank_code: "90094817",
    bic: "TBDIDEF1XXX",
    account: "4711000815",
};

/// Who gets the rent.
pub(crate) const LANDLORD: Party = Party {
    name: "Hausverwaltung Schmidt GmbH",
    bank_code: "90094816",
    bic: "SPMUDEM1XXX",
    account: "7700123456",
};

/// A company collecting by SEPA direct debit.
pub(crate) struct Creditor {
    /// Name and collection account.
    pub(crate) party: Party,
    /// The national part of its creditor identifier (11 characters in Germany).
    pub(crate) national_id: &'static str,
    /// How its mandate references start.
    pub(crate) mandate_prefix: &'static str,
    /// How its end-to-end references start.
    pub(crate) e2e_prefix: &'static str,
    /// Day of the month it collects on (moved to the next business day when needed).
    pub(crate) day: u32,
    /// Months it collects in; every month when empty.
    pub(crate) months: &'static [u32],
    /// Amount in cents (positive; it is debited).
    pub(crate) cents: i64,
    /// What it is for; the period is appended.
    pub(crate) what: &'static str,
    /// Whether the period is a quarter ("Q2/2026") rather than a month ("04/2026").
    pub(crate) quarterly: bool,
    /// ISO 20022 purpose code.
    pub(crate) purpose_code: Option<&'static str>,
    /// The bank's booking text.
    pub(crate) booking_text: &'static str,
}

/// Every direct debit of the household's giro account.
pub(crate) const CREDITORS: [Creditor; 7] = [
    Creditor {
        party: Party {
            name: "Telekom Deutschland GmbH",
            bank_code: "90094815",
            bic: "FINXDEB1XXX",
            account: "9100200300",
        },
        national_id: "00000057387",
        mandate_prefix: "TK",
        e2e_prefix: "TDG-RG",
        day: 5,
        months: &[],
        cents: 3995,
        what: "Festnetz/Internet Rechnung",
        quarterly: false,
        purpose_code: Some("PHON"),
        booking_text: "FOLGELASTSCHRIFT",
    },
    Creditor {
        party: Party {
            name: "FitX Deutschland GmbH",
            bank_code: "90094817",
            bic: "TBDIDEF1XXX",
            account: "8800112233",
        },
        national_id: "00001183552",
        mandate_prefix: "FITX-M-",
        e2e_prefix: "FITX",
        day: 8,
        months: &[],
        cents: 2499,
        what: "Mitgliedsbeitrag",
        quarterly: false,
        purpose_code: None,
        booking_text: "FOLGELASTSCHRIFT",
    },
    Creditor {
        party: Party {
            name: "Stadtwerke Musterstadt GmbH",
            bank_code: "90094816",
            bic: "SPMUDEM1XXX",
            account: "1000555777",
        },
        national_id: "00000482915",
        mandate_prefix: "SWM-V-",
        e2e_prefix: "SWM",
        day: 15,
        months: &[],
        cents: 8400,
        what: "Strom Abschlag",
        quarterly: false,
        purpose_code: Some("ELEC"),
        booking_text: "FOLGELASTSCHRIFT",
    },
    Creditor {
        party: Party {
            name: "Netflix International B.V.",
            bank_code: "90094815",
            bic: "FINXDEB1XXX",
            account: "9200300400",
        },
        national_id: "00002178903",
        mandate_prefix: "NFLX",
        e2e_prefix: "NF",
        day: 18,
        months: &[],
        cents: 1399,
        what: "Netflix Abo",
        quarterly: false,
        purpose_code: None,
        booking_text: "SEPA-LASTSCHRIFT",
    },
    Creditor {
        party: Party {
            name: "Spotify AB",
            bank_code: "90094817",
            bic: "TBDIDEF1XXX",
            account: "9300400500",
        },
        national_id: "00001966120",
        mandate_prefix: "SPOT",
        e2e_prefix: "SPOTIFY",
        day: 23,
        months: &[],
        cents: 1099,
        what: "Spotify Premium",
        quarterly: false,
        purpose_code: None,
        booking_text: "SEPA-LASTSCHRIFT",
    },
    Creditor {
        party: Party {
            name: "Allianz Versicherungs-AG",
            bank_code: "90094815",
            bic: "FINXDEB1XXX",
            account: "9400500600",
        },
        national_id: "00000010356",
        mandate_prefix: "AZ-",
        e2e_prefix: "AZV",
        day: 1,
        months: &[1, 4, 7, 10],
        cents: 6738,
        what: "Beitrag Hausrat/Haftpflicht",
        quarterly: true,
        purpose_code: Some("INSU"),
        booking_text: "FOLGELASTSCHRIFT",
    },
    Creditor {
        party: Party {
            name: "Rundfunk ARD, ZDF, DRadio",
            bank_code: "90094816",
            bic: "SPMUDEM1XXX",
            account: "9500600700",
        },
        national_id: "00000001007",
        mandate_prefix: "RB",
        e2e_prefix: "RBS",
        day: 15,
        months: &[2, 5, 8, 11],
        cents: 5508,
        what: "Rundfunkbeitrag",
        quarterly: true,
        purpose_code: None,
        booking_text: "FOLGELASTSCHRIFT",
    },
];

/// Friends who send money now and then.
pub(crate) const FRIENDS: [Party; 4] = [
    Party {
        name: "Max Mustermann",
        bank_code: "90094815",
        bic: "FINXDEB1XXX",
        account: "4433221100",
    },
    Party {
        name: "Lisa Müller",
        bank_code: "90094816",
        bic: "SPMUDEM1XXX",
        account: "1200340056",
    },
    Party {
        name: "Jonas Becker",
        bank_code: "90094817",
        bic: "TBDIDEF1XXX",
        account: "5550077881",
    },
    Party {
        name: "Anna Schmidt",
        bank_code: "90094815",
        bic: "FINXDEB1XXX",
        account: "3141592653",
    },
];

/// Why friends send money, with the range of the amount in cents.
pub(crate) const FRIEND_REASONS: [(&str, i64, i64); 6] = [
    ("Erstattung Pizza", 800, 2500),
    ("Kino", 900, 2400),
    ("Anteil Geschenk für Tom", 1000, 3000),
    ("Konzertkarten", 3900, 8900),
    ("Tankfüllung Urlaub", 2000, 4500),
    ("Erstattung Einkauf", 500, 4000),
];

/// What kind of business a merchant is: restaurants add the tip and hotels the extras
/// when the card payment books, so their pending amount differs from the booked one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Category {
    /// A shop; closed on Sundays and holidays unless `sunday`.
    Shop,
    /// An online shop; always open.
    Online,
    /// A restaurant or café.
    Restaurant,
    /// A hotel.
    Hotel,
}

/// Somewhere a card is used.
pub(crate) struct Merchant {
    /// Its name on the statement.
    pub(crate) name: &'static str,
    /// Its town.
    pub(crate) city: &'static str,
    /// ISO country code.
    pub(crate) country: &'static str,
    /// Smallest amount in cents.
    pub(crate) min: i64,
    /// Largest amount in cents.
    pub(crate) max: i64,
    /// Kind of business.
    pub(crate) category: Category,
    /// Whether it takes payments on Sundays and holidays.
    pub(crate) sunday: bool,
    /// For non-euro merchants: the currency and how much of it one euro buys, times 10 000.
    pub(crate) currency: Option<(&'static str, i64)>,
}

impl Merchant {
    /// The first hour a payment can happen.
    pub(crate) fn opens(&self) -> i64 {
        match self.category {
            Category::Shop | Category::Hotel => 7,
            Category::Online => 0,
            Category::Restaurant => 11,
        }
    }

    /// The last hour a payment can happen.
    pub(crate) fn closes(&self) -> i64 {
        match self.category {
            Category::Shop => 20,
            Category::Online | Category::Hotel => 23,
            Category::Restaurant => 22,
        }
    }
}

const fn local(
    name: &'static str,
    min: i64,
    max: i64,
    category: Category,
    sunday: bool,
) -> Merchant {
    Merchant {
        name,
        city: "Musterstadt",
        country: "DE",
        min,
        max,
        category,
        sunday,
        currency: None,
    }
}

/// Where the giro account's debit card (girocard) is used.
pub(crate) const GIRO_MERCHANTS: [Merchant; 12] = [
    local("REWE Markt GmbH", 800, 9500, Category::Shop, false),
    local("EDEKA Center Musterstadt", 500, 8000, Category::Shop, false),
    local("ALDI SÜD", 600, 7000, Category::Shop, false),
    local("LIDL Dienstleistung GmbH", 600, 7000, Category::Shop, false),
    local("dm-drogerie markt", 300, 4500, Category::Shop, false),
    local("Rossmann", 300, 4000, Category::Shop, false),
    Merchant {
        name: "AMAZON EU S.A R.L., NIEDERLASSUNG DEUTSCHLAND",
        city: "München",
        country: "DE",
        min: 900,
        max: 15_000,
        category: Category::Online,
        sunday: true,
        currency: None,
    },
    local("Trattoria Da Enzo", 1800, 7500, Category::Restaurant, true),
    local(
        "Restaurant Zum Goldenen Hirsch",
        2500,
        9000,
        Category::Restaurant,
        true,
    ),
    local("Sushi Bar Sakura", 1500, 6500, Category::Restaurant, true),
    local("Bäckerei Schäfer", 300, 1200, Category::Shop, true),
    local(
        "Shell Station Musterstadt",
        4000,
        9500,
        Category::Shop,
        true,
    ),
];

/// Where the credit card is used.
pub(crate) const CARD_MERCHANTS: [Merchant; 14] = [
    Merchant {
        name: "Zalando SE",
        city: "Berlin",
        country: "DE",
        min: 1995,
        max: 18_900,
        category: Category::Online,
        sunday: true,
        currency: None,
    },
    Merchant {
        name: "AMZN Mktp DE",
        city: "amazon.de",
        country: "LU",
        min: 800,
        max: 12_000,
        category: Category::Online,
        sunday: true,
        currency: None,
    },
    Merchant {
        name: "DB Fernverkehr AG",
        city: "Frankfurt",
        country: "DE",
        min: 1990,
        max: 13_990,
        category: Category::Online,
        sunday: true,
        currency: None,
    },
    Merchant {
        name: "Deutsche Lufthansa AG",
        city: "Frankfurt",
        country: "DE",
        min: 8900,
        max: 38_900,
        category: Category::Online,
        sunday: true,
        currency: None,
    },
    Merchant {
        name: "Apple.com/bill",
        city: "Cork",
        country: "IE",
        min: 99,
        max: 2999,
        category: Category::Online,
        sunday: true,
        currency: None,
    },
    Merchant {
        name: "Motel One Hamburg-Altona",
        city: "Hamburg",
        country: "DE",
        min: 8900,
        max: 16_900,
        category: Category::Hotel,
        sunday: true,
        currency: None,
    },
    Merchant {
        name: "Hotel Am Stadtpark",
        city: "Musterstadt",
        country: "DE",
        min: 9500,
        max: 21_000,
        category: Category::Hotel,
        sunday: true,
        currency: None,
    },
    Merchant {
        name: "NH Collection Wien Zentrum",
        city: "Wien",
        country: "AT",
        min: 11_000,
        max: 26_000,
        category: Category::Hotel,
        sunday: true,
        currency: None,
    },
    Merchant {
        name: "Ristorante Bella Vista",
        city: "Musterstadt",
        country: "DE",
        min: 2500,
        max: 9500,
        category: Category::Restaurant,
        sunday: true,
        currency: None,
    },
    Merchant {
        name: "Trattoria Da Mario",
        city: "Roma",
        country: "IT",
        min: 2200,
        max: 8500,
        category: Category::Restaurant,
        sunday: true,
        currency: None,
    },
    Merchant {
        name: "Albert Heijn",
        city: "Amsterdam",
        country: "NL",
        min: 500,
        max: 4500,
        category: Category::Shop,
        sunday: true,
        currency: None,
    },
    Merchant {
        name: "Pret A Manger",
        city: "London",
        country: "GB",
        min: 600,
        max: 2500,
        category: Category::Restaurant,
        sunday: true,
        currency: Some(("GBP", 8550)),
    },
    Merchant {
        name: "Migros",
        city: "Zürich",
        country: "CH",
        min: 800,
        max: 6000,
        category: Category::Shop,
        sunday: false,
        currency: Some(("CHF", 9420)),
    },
    Merchant {
        name: "Walgreens",
        city: "New York",
        country: "US",
        min: 500,
        max: 4000,
        category: Category::Shop,
        sunday: true,
        currency: Some(("USD", 10_850)),
    },
];

/// The `bigdata` login's many small card payments.
pub(crate) const SMALL_MERCHANTS: [Merchant; 7] = [
    local("Bäckerei Schäfer", 120, 900, Category::Shop, true),
    local("Kiosk am Markt", 150, 1200, Category::Shop, true),
    local(
        "Musterstadt Verkehrsbetriebe",
        290,
        990,
        Category::Online,
        true,
    ),
    local("Parkhaus Zentrum", 200, 1500, Category::Online, true),
    local("Eiscafé Venezia", 250, 1400, Category::Restaurant, true),
    local("Getränke Hoffmann", 500, 2400, Category::Shop, false),
    local("Copy Shop Musterstadt", 120, 800, Category::Shop, false),
];

/// The `bigdata` login's customers (Erika sells pottery on the side).
pub(crate) const CUSTOMERS: [&str; 8] = [
    "Sabine Wagner",
    "Thomas Weber",
    "Julia Fischer",
    "Michael Hoffmann",
    "Katrin Schulz",
    "Stefan Koch",
    "Laura Richter",
    "Andreas Klein",
];

/// Bank codes and BICs for accounts the sandbox makes up (customers' accounts).
pub(crate) const OTHER_BANKS: [(&str, &str); 3] = [
    ("90094815", "FINXDEB1XXX"),
    ("90094816", "SPMUDEM1XXX"),
    ("90094817", "TBDIDEF1XXX"),
];
