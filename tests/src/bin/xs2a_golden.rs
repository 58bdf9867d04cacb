//! The XS2A connector's mapping on the official document's own response examples: each
//! example is read from the document and mapped, and what finX makes of it is compared with
//! a golden file of finX's own in `tests/golden/xs2a/` (the examples themselves stay in the
//! document; only finX's outputs are kept). `cargo xtask xs2a-conformance` runs it.
//!
//! Usage: `xs2a_golden DOCUMENT.yaml GOLDEN_DIR [--bless]`; `--bless` writes the golden
//! files instead of comparing.

#![allow(clippy::print_stdout)]

use std::path::Path;

use finx_bank_xs2a::wire;
use finx_domain::registry::{BankDraft, RegisteredBank};
use serde_json::{Value, json};

/// The examples mapped, and how.
const ACCOUNT_LISTS: &[&str] = &[
    "accountListExample1",
    "accountListExample2",
    "accountListExample3",
];
const BALANCES: &[&str] = &[
    "balancesExample1_RegularAccount",
    "balancesExample2_MulticurrencyAccount",
    "balancesExample3_RegularAccount",
    "balancesExample_CardAccount",
];
const TRANSACTIONS: &[&str] = &[
    "transactionsExample1_RegularAccount_json",
    "transactionsExample3_MulticurrencyAccount_json",
    "transactionsResponse200JsonExample",
];
const CONSENTS: &[&str] = &[
    "consentResponseExample1a_Redirect",
    "consentResponseExample1b_Redirect",
    "consentResponseExample2_OAuth2",
    "consentResponseExample3_Decoupled",
    "consentResponseExample4_Embedded",
];
const AUTHORISATIONS: &[&str] = &[
    "startScaProcessResponseExample1",
    "updatePsuAuthenticationResponseExample_Embedded_payments",
    "selectPsuAuthenticationMethodResponseExample_Embedded_payments",
    "updatePsuIdentificationResponseExample_Decoupled_payments",
    "transactionAuthorisationResponseExample",
];

fn bank() -> RegisteredBank {
    RegisteredBank::from_draft(BankDraft {
        name: "Example Bank".into(),
        bank_code: Some("10010010".into()),
        url: "https://xs2a.example".into(),
        ..BankDraft::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn transaction(t: &finx_domain::bank::TransactionDetails) -> Value {
    json!({
        "id": t.external_id,
        "amount": t.amount.amount().to_string(),
        "currency": t.amount.currency().as_str(),
        "booked": t.booked,
        "booked_on": t.booked_on.to_string(),
        "value_date": t.value_date.to_string(),
        "counterparty": {
            "name": t.counterparty.name,
            "iban": t.counterparty.iban.as_ref().map(ToString::to_string),
            "bic": t.counterparty.bic,
            "account_number": t.counterparty.account_number,
        },
        "purpose": t.purpose,
        "type": t.transaction_type.as_str(),
        "booking_text": t.booking_text,
        "creditor_id": t.creditor_id,
        "mandate_reference": t.mandate_reference,
        "end_to_end_reference": t.end_to_end_reference,
        "purpose_code": t.sepa_purpose_code,
    })
}

fn map(name: &str, example: &Value) -> Value {
    let bank = bank();
    if ACCOUNT_LISTS.contains(&name) {
        let list = example["accounts"].as_array().cloned().unwrap_or_default();
        return json!(
            list.iter()
                .map(|a| match wire::account(a, &bank) {
                    Some(d) => json!({
                        "id": d.external_id,
                        "iban": d.iban.as_ref().map(ToString::to_string),
                        "account_number": d.account_number,
                        "bank_code": d.bank_code,
                        "currency": d.currency.as_str(),
                        "type": d.account_type.as_str(),
                        "name": d.name,
                        "owner": d.owner,
                        "card_last4": d.card_last4,
                    }),
                    None => json!("not usable"),
                })
                .collect::<Vec<_>>()
        );
    }
    if BALANCES.contains(&name) {
        return json!(
            wire::balances(example)
                .iter()
                .map(|b| json!({
                    "status": format!("{:?}", b.status),
                    "amount": b.amount.amount().to_string(),
                    "currency": b.amount.currency().as_str(),
                    "date": b.date.to_string(),
                }))
                .collect::<Vec<_>>()
        );
    }
    if TRANSACTIONS.contains(&name) {
        let report = &example["transactions"];
        let mut list = wire::transactions(report, true);
        list.extend(wire::transactions(report, false));
        wire::number_derived_ids(&mut list);
        return json!(list.iter().map(transaction).collect::<Vec<_>>());
    }
    if CONSENTS.contains(&name) {
        return json!(format!("{:?}", wire::consent_next(example)));
    }
    match wire::authorisation_next(example) {
        wire::AuthorisationNext::Tan { challenge, link } => json!({
            "next": "tan",
            "method": challenge.method,
            "prompt": challenge.prompt,
            "image_bytes": challenge.image_png.map(|i| i.len()),
            "flicker": challenge.flicker,
            "max_length": challenge.max_length,
            "link": link,
        }),
        other => json!(format!("{other:?}")),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(document), Some(golden)) = (args.first(), args.get(1)) else {
        eprintln!("usage: xs2a_golden DOCUMENT.yaml GOLDEN_DIR [--bless]");
        std::process::exit(2);
    };
    let bless = args.iter().any(|a| a == "--bless");
    let text = std::fs::read_to_string(document).unwrap_or_else(|e| panic!("{document}: {e}"));
    let doc: Value = serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{document}: {e}"));
    let examples = &doc["components"]["examples"];
    let golden = Path::new(golden);
    let mut failed = 0;
    let mut checked = 0;
    for name in ACCOUNT_LISTS
        .iter()
        .chain(BALANCES)
        .chain(TRANSACTIONS)
        .chain(CONSENTS)
        .chain(AUTHORISATIONS)
    {
        let example = &examples[*name]["value"];
        assert!(!example.is_null(), "the document has no example {name}");
        let got = map(name, example);
        let file = golden.join(format!("{name}.json"));
        let pretty = serde_json::to_string_pretty(&got).unwrap_or_default() + "\n";
        if bless {
            std::fs::create_dir_all(golden).unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(&file, pretty).unwrap_or_else(|e| panic!("{e}"));
            continue;
        }
        checked += 1;
        match std::fs::read_to_string(&file) {
            Ok(want) if want == pretty => {}
            Ok(want) => {
                failed += 1;
                eprintln!("{name}: the mapping changed\n--- golden\n{want}\n--- now\n{pretty}");
            }
            Err(e) => {
                failed += 1;
                eprintln!("{name}: no golden file {} ({e})", file.display());
            }
        }
    }
    println!("{{\"examples\": {checked}, \"differences\": {failed}}}");
    if failed > 0 {
        std::process::exit(1);
    }
}
