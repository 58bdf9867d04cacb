//! The bank registry's files: TOML (`[[bank]]` tables) or the adorsys CSV (no header; `id,
//! aspspName, bic, url, adapterId, bankCode, idpUrl, aspspScaApproaches`), told apart by
//! their first non-blank character. A file is taken whole or not at all: every bad row is
//! reported with its line, and nothing is written.

use std::collections::HashSet;

use finx_domain::registry::{BankDraft, RegisteredBank};
use serde::Deserialize;

/// The most errors reported for one file.
const MAX_REPORTED: usize = 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    #[serde(default)]
    bank: Vec<TomlBank>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlBank {
    id: Option<String>,
    name: String,
    bic: Option<String>,
    bank_code: Option<String>,
    country: Option<String>,
    url: String,
    #[serde(default)]
    sca_approaches: Vec<String>,
    consent_model: Option<String>,
    #[serde(default)]
    quirks: Vec<String>,
}

/// The banks of a registry file's text.
///
/// # Errors
/// Every problem found, one per line (at most twenty), when any row is bad.
pub(crate) fn parse(text: &str) -> Result<Vec<RegisteredBank>, String> {
    let first = text.trim_start().chars().next();
    let drafts: Vec<(usize, BankDraft)> = match first {
        Some('[' | '#') => parse_toml(text)?,
        Some(_) => parse_csv(text)?,
        None => return Err("the file is empty".into()),
    };
    let mut errors = Vec::new();
    let mut banks = Vec::with_capacity(drafts.len());
    let mut ids = HashSet::new();
    for (line, draft) in drafts {
        let bic = draft.bic.clone();
        match RegisteredBank::from_draft(draft) {
            Ok(mut b) => {
                // Banks sharing a bank code (one institute, several BICs) keep one id each.
                if !ids.insert(b.id.to_string())
                    && let Some(bic) = bic.filter(|b| !b.trim().is_empty())
                {
                    let id = format!("{}-{}", b.id, bic.trim().to_ascii_lowercase());
                    match finx_domain::ids::InstitutionId::parse(&id) {
                        Ok(id) if ids.insert(id.to_string()) => b.id = id,
                        _ => {
                            errors.push(format!("line {line}: the id {} repeats", b.id));
                            continue;
                        }
                    }
                }
                banks.push(b);
            }
            Err(e) => errors.push(format!("line {line}: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(banks)
    } else {
        let more = errors.len().saturating_sub(MAX_REPORTED);
        errors.truncate(MAX_REPORTED);
        if more > 0 {
            errors.push(format!("… and {more} more"));
        }
        Err(format!("nothing imported:\n{}", errors.join("\n")))
    }
}

fn parse_toml(text: &str) -> Result<Vec<(usize, BankDraft)>, String> {
    let file: TomlFile =
        toml::from_str(text).map_err(|e| format!("not a registry TOML file: {e}"))?;
    Ok(file
        .bank
        .into_iter()
        .enumerate()
        .map(|(n, b)| {
            (
                n + 1,
                BankDraft {
                    id: b.id,
                    name: b.name,
                    bic: b.bic,
                    bank_code: b.bank_code,
                    country: b.country,
                    url: b.url,
                    sca_approaches: b.sca_approaches,
                    consent_model: b.consent_model,
                    quirks: b.quirks,
                },
            )
        })
        .collect())
}

fn parse_csv(text: &str) -> Result<Vec<(usize, BankDraft)>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format!("line {}: not CSV: {e}", n + 1))?;
        if record.len() < 6 {
            return Err(format!(
                "line {}: {} columns; the adorsys order has at least 6 (id, aspspName, bic, url, adapterId, bankCode)",
                n + 1,
                record.len()
            ));
        }
        let field = |i: usize| record.get(i).map(str::trim).unwrap_or_default().to_owned();
        let approaches: Vec<String> = field(7)
            .split([';', '|', ' '])
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        out.push((
            n + 1,
            BankDraft {
                id: None,
                name: field(1),
                bic: Some(field(2)).filter(|s| !s.is_empty()),
                bank_code: Some(field(5)).filter(|s| !s.is_empty()),
                country: None,
                url: field(3),
                sca_approaches: approaches,
                consent_model: None,
                quirks: Vec::new(),
            },
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_files_take_every_field() {
        let banks = parse(
            r#"
[[bank]]
name = "Musterbank"
bic = "MUSTDEFFXXX"
bank_code = "10010010"
country = "DE"
url = "https://xs2a.musterbank.example"
sca_approaches = ["REDIRECT", "DECOUPLED"]
consent_model = "available-accounts"
quirks = ["signing-required"]
"#,
        )
        .expect("valid");
        assert_eq!(banks.len(), 1);
        assert_eq!(banks[0].id.as_str(), "de-10010010");
        assert!(banks[0].quirks.signing_required);
    }

    #[test]
    fn adorsys_csv_rows_are_read_and_shared_bank_codes_keep_one_id_each() {
        let banks = parse(
            "a,Bank Eins,AAAADEFFXXX,https://x.example/api,adapter,10010010\n\
             b,Bank Eins Filiale,AAAADEFF123,https://x.example/api,adapter,10010010\n",
        )
        .expect("valid");
        assert_eq!(banks.len(), 2);
        assert_eq!(banks[0].id.as_str(), "de-10010010");
        assert_eq!(banks[1].id.as_str(), "de-10010010-aaaadeff123");
    }

    #[test]
    fn one_bad_row_refuses_the_file_and_names_the_line() {
        let e = parse(
            "a,Bank,AAAADEFFXXX,https://x.example,adapter,10010010\n\
             b,Bank,AAAADEFFXXX,ftp://x.example,adapter,10010011\n",
        )
        .expect_err("refused");
        assert!(e.contains("line 2") && e.contains("url"), "{e}");
        assert!(parse("").is_err());
        assert!(parse("[[bank]]\nname = 1\n").is_err());
    }
}
