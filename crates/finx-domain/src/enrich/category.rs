//! The category tree (docs/categories.md): two levels, stable ids, German and English
//! names.

use crate::values::Language;

/// One category of the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Category {
    /// Its stable id: `food` for a top level, `food.groceries` for a leaf.
    pub id: &'static str,
    /// English name.
    pub en: &'static str,
    /// German name.
    pub de: &'static str,
}

impl Category {
    /// Its name in `language`.
    #[must_use]
    pub fn name(&self, language: Language) -> &'static str {
        match language {
            Language::De => self.de,
            Language::En => self.en,
        }
    }

    /// Whether it is a top level.
    #[must_use]
    pub fn is_top(&self) -> bool {
        !self.id.contains('.')
    }

    /// Its top level (itself for a top level).
    #[must_use]
    pub fn top(&self) -> &'static Category {
        let top = self.id.split('.').next().unwrap_or(self.id);
        find(top).unwrap_or_else(|| unreachable!("every leaf's top level is in the tree"))
    }

    /// The path from the top level to it: `[top]` or `[top, leaf]`.
    #[must_use]
    pub fn path(&'static self) -> Vec<&'static Category> {
        if self.is_top() {
            vec![self]
        } else {
            vec![self.top(), self]
        }
    }
}

/// Every category, each top level before its leaves.
pub const TREE: &[Category] = &[
    Category {
        id: "income",
        en: "Income",
        de: "Einnahmen",
    },
    Category {
        id: "income.salary",
        en: "Salary",
        de: "Gehalt und Lohn",
    },
    Category {
        id: "income.pension",
        en: "Pension",
        de: "Rente und Pension",
    },
    Category {
        id: "income.benefits",
        en: "Public benefits",
        de: "Sozialleistungen",
    },
    Category {
        id: "income.refunds",
        en: "Refunds",
        de: "Erstattungen",
    },
    Category {
        id: "income.other",
        en: "Other income",
        de: "Sonstige Einnahmen",
    },
    Category {
        id: "housing",
        en: "Housing",
        de: "Wohnen",
    },
    Category {
        id: "housing.rent",
        en: "Rent",
        de: "Miete",
    },
    Category {
        id: "housing.utilities",
        en: "Energy and water",
        de: "Energie und Wasser",
    },
    Category {
        id: "housing.telecom",
        en: "Internet and phone",
        de: "Internet und Telefon",
    },
    Category {
        id: "housing.broadcast",
        en: "Broadcasting fee",
        de: "Rundfunkbeitrag",
    },
    Category {
        id: "food",
        en: "Food",
        de: "Essen und Trinken",
    },
    Category {
        id: "food.groceries",
        en: "Groceries",
        de: "Lebensmittel",
    },
    Category {
        id: "food.restaurants",
        en: "Restaurants and delivery",
        de: "Restaurants und Lieferdienste",
    },
    Category {
        id: "shopping",
        en: "Shopping",
        de: "Einkäufe",
    },
    Category {
        id: "shopping.online",
        en: "Online shopping",
        de: "Online-Shopping",
    },
    Category {
        id: "shopping.drugstore",
        en: "Drugstore",
        de: "Drogerie",
    },
    Category {
        id: "shopping.clothing",
        en: "Clothing",
        de: "Kleidung",
    },
    Category {
        id: "shopping.electronics",
        en: "Electronics",
        de: "Elektronik",
    },
    Category {
        id: "shopping.home",
        en: "Home and garden",
        de: "Haus und Garten",
    },
    Category {
        id: "mobility",
        en: "Mobility",
        de: "Mobilität",
    },
    Category {
        id: "mobility.public_transport",
        en: "Public transport",
        de: "Öffentlicher Verkehr",
    },
    Category {
        id: "mobility.fuel",
        en: "Fuel and charging",
        de: "Tanken und Laden",
    },
    Category {
        id: "mobility.car",
        en: "Car",
        de: "Auto",
    },
    Category {
        id: "mobility.taxi",
        en: "Taxi and sharing",
        de: "Taxi und Sharing",
    },
    Category {
        id: "subscriptions",
        en: "Subscriptions",
        de: "Abonnements",
    },
    Category {
        id: "subscriptions.streaming",
        en: "Streaming",
        de: "Streaming",
    },
    Category {
        id: "subscriptions.software",
        en: "Software and cloud",
        de: "Software und Cloud",
    },
    Category {
        id: "subscriptions.fitness",
        en: "Fitness",
        de: "Fitness",
    },
    Category {
        id: "subscriptions.press",
        en: "News and press",
        de: "Presse",
    },
    Category {
        id: "insurance",
        en: "Insurance",
        de: "Versicherungen",
    },
    Category {
        id: "insurance.health",
        en: "Health insurance",
        de: "Krankenversicherung",
    },
    Category {
        id: "insurance.property",
        en: "Liability and property",
        de: "Haftpflicht und Hausrat",
    },
    Category {
        id: "insurance.car",
        en: "Car insurance",
        de: "Kfz-Versicherung",
    },
    Category {
        id: "insurance.life",
        en: "Life and pension plans",
        de: "Leben und Vorsorge",
    },
    Category {
        id: "health",
        en: "Health",
        de: "Gesundheit",
    },
    Category {
        id: "health.pharmacy",
        en: "Pharmacy",
        de: "Apotheke",
    },
    Category {
        id: "health.doctor",
        en: "Doctors and therapy",
        de: "Ärzte und Therapie",
    },
    Category {
        id: "leisure",
        en: "Leisure",
        de: "Freizeit",
    },
    Category {
        id: "leisure.travel",
        en: "Travel",
        de: "Reisen",
    },
    Category {
        id: "leisure.culture",
        en: "Events and culture",
        de: "Veranstaltungen und Kultur",
    },
    Category {
        id: "family",
        en: "Family and education",
        de: "Familie und Bildung",
    },
    Category {
        id: "family.childcare",
        en: "Childcare and school",
        de: "Kinderbetreuung und Schule",
    },
    Category {
        id: "family.education",
        en: "Education",
        de: "Bildung",
    },
    Category {
        id: "cash",
        en: "Cash",
        de: "Bargeld",
    },
    Category {
        id: "cash.withdrawal",
        en: "Cash withdrawal",
        de: "Bargeldabhebung",
    },
    Category {
        id: "cash.deposit",
        en: "Cash deposit",
        de: "Bareinzahlung",
    },
    Category {
        id: "transfers",
        en: "Transfers",
        de: "Umbuchungen",
    },
    Category {
        id: "transfers.own_accounts",
        en: "Own accounts",
        de: "Eigene Konten",
    },
    Category {
        id: "transfers.savings",
        en: "Savings and investments",
        de: "Sparen und Anlegen",
    },
    Category {
        id: "transfers.credit_card",
        en: "Credit card statement",
        de: "Kreditkartenabrechnung",
    },
    Category {
        id: "transfers.people",
        en: "To and from people",
        de: "Von und an Personen",
    },
    Category {
        id: "fees",
        en: "Fees and interest",
        de: "Gebühren und Zinsen",
    },
    Category {
        id: "fees.bank",
        en: "Bank fees",
        de: "Bankgebühren",
    },
    Category {
        id: "fees.interest",
        en: "Interest",
        de: "Zinsen",
    },
    Category {
        id: "taxes",
        en: "Taxes",
        de: "Steuern",
    },
    Category {
        id: "taxes.income",
        en: "Tax office",
        de: "Finanzamt",
    },
    Category {
        id: "taxes.vehicle",
        en: "Vehicle tax",
        de: "Kfz-Steuer",
    },
];

/// The category with this id.
#[must_use]
pub fn find(id: &str) -> Option<&'static Category> {
    TREE.iter().find(|c| c.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_has_two_levels_and_every_leaf_its_top_level() {
        let mut seen = std::collections::HashSet::new();
        for c in TREE {
            assert!(seen.insert(c.id), "{} twice", c.id);
            assert!(c.id.split('.').count() <= 2, "{}", c.id);
            if !c.is_top() {
                let top = c.top();
                assert!(top.is_top());
                assert!(c.id.starts_with(&format!("{}.", top.id)));
            }
            assert!(!c.en.is_empty() && !c.de.is_empty());
        }
        let groceries = find("food.groceries").expect("a leaf");
        let path: Vec<&str> = groceries
            .path()
            .iter()
            .map(|c| c.name(Language::En))
            .collect();
        assert_eq!(path, ["Food", "Groceries"]);
        assert_eq!(groceries.name(Language::De), "Lebensmittel");
        assert!(find("nothing").is_none());
    }

    #[test]
    fn the_documented_tree_is_the_tree() {
        let doc = include_str!("../../../../docs/categories.md");
        let documented: Vec<&str> = doc
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .collect();
        let ids: Vec<&str> = TREE.iter().map(|c| c.id).collect();
        assert_eq!(documented, ids);
    }
}
