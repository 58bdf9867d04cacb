//! The bank registry's files: TOML (`[[bank]]` tables) or the adorsys CSV (no header; `id,
//! aspspName, bic, url, adapterId, bankCode, idpUrl, aspspScaApproaches`), told apart by
//! their first non-blank character. A file is taken whole or not at all: every bad row is
//! reported with its line, and nothing is written.

use std::collections::HashMap;

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

/// A registry file read: the banks, and notes on what was tidied (dropped invalid BICs,
/// merged duplicate rows).
#[derive(Debug)]
pub(crate) struct Parsed {
    /// The banks to write.
    pub(crate) banks: Vec<RegisteredBank>,
    /// What was tidied, one line each.
    pub(crate) notes: Vec<String>,
}

/// The banks of a registry file's text.
///
/// # Errors
/// Every problem found, one per line (at most twenty), when any row is bad.
pub(crate) fn parse(text: &str) -> Result<Parsed, String> {
    let first = text.trim_start().chars().next();
    let (drafts, mut notes): (Vec<Row>, Vec<String>) = match first {
        Some('[' | '#') => (parse_toml(text)?, Vec::new()),
        Some(_) => parse_csv(text)?,
        None => return Err("the file is empty".into()),
    };
    let mut errors = Vec::new();
    let mut banks: Vec<RegisteredBank> = Vec::with_capacity(drafts.len());
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut merged = 0;
    for (line, row_id, draft) in drafts {
        let bic = draft.bic.clone();
        let mut b = match RegisteredBank::from_draft(draft) {
            Ok(b) => b,
            Err(e) => {
                errors.push(format!("line {line}: {e}"));
                continue;
            }
        };
        if let Some(&i) = ids.get(b.id.as_str()) {
            if same(&banks[i], &b) {
                // The same bank listed again.
                merged += 1;
                continue;
            }
            // Another bank under the same bank code: told apart by its BIC, or its row id.
            let suffix = bic
                .filter(|b| !b.trim().is_empty())
                .map(|b| b.trim().to_ascii_lowercase())
                .or_else(|| row_id.map(|r| r.chars().take(8).collect()))
                .unwrap_or_else(|| line.to_string());
            match finx_domain::ids::InstitutionId::parse(&format!("{}-{suffix}", b.id)) {
                Ok(id) => match ids.get(id.as_str()) {
                    None => b.id = id,
                    Some(&j) if same(&banks[j], &b) => {
                        merged += 1;
                        continue;
                    }
                    Some(_) => {
                        errors.push(format!("line {line}: the id {id} repeats"));
                        continue;
                    }
                },
                Err(_) => {
                    errors.push(format!("line {line}: the id {} repeats", b.id));
                    continue;
                }
            }
        }
        ids.insert(b.id.to_string(), banks.len());
        banks.push(b);
    }
    if merged > 0 {
        notes.push(format!(
            "{merged} rows repeated an earlier bank and were merged"
        ));
    }
    if errors.is_empty() {
        Ok(Parsed { banks, notes })
    } else {
        let more = errors.len().saturating_sub(MAX_REPORTED);
        errors.truncate(MAX_REPORTED);
        if more > 0 {
            errors.push(format!("… and {more} more"));
        }
        Err(format!("nothing imported:\n{}", errors.join("\n")))
    }
}

/// A row of a registry file: its line, its own id (the CSV's first column) and the draft.
type Row = (usize, Option<String>, BankDraft);

/// The same bank listed twice (ids aside).
fn same(a: &RegisteredBank, b: &RegisteredBank) -> bool {
    a.name == b.name && a.bic == b.bic && a.bank_code == b.bank_code && a.url == b.url
}

fn parse_toml(text: &str) -> Result<Vec<Row>, String> {
    let file: TomlFile =
        toml::from_str(text).map_err(|e| format!("not a registry TOML file: {e}"))?;
    Ok(file
        .bank
        .into_iter()
        .enumerate()
        .map(|(n, b)| {
            (
                n + 1,
                None,
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

/// The adorsys CSV. Its BICs are sometimes shortened ("DEUTDE", "ADORSYS"): such a BIC is
/// dropped, with a note, and the bank is kept.
fn parse_csv(text: &str) -> Result<(Vec<Row>, Vec<String>), String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    let mut notes = Vec::new();
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
        let bic = Some(field(2)).filter(|s| !s.is_empty());
        let bic = match bic {
            Some(b) if !(b.len() == 8 || b.len() == 11) => {
                notes.push(format!(
                    "line {}: the BIC {b:?} is not 8 or 11 characters; dropped",
                    n + 1
                ));
                None
            }
            other => other,
        };
        let row_id = Some(field(0)).filter(|s| !s.is_empty());
        let bank_code = Some(field(5)).filter(|s| !s.is_empty());
        out.push((
            n + 1,
            row_id.clone(),
            BankDraft {
                // Neither a bank code nor a BIC: the row's own id names it.
                id: (bank_code.is_none() && bic.is_none())
                    .then(|| {
                        row_id.map(|r| format!("reg-{}", r.chars().take(8).collect::<String>()))
                    })
                    .flatten(),
                name: field(1),
                bic,
                bank_code,
                country: None,
                url: field(3),
                sca_approaches: approaches,
                consent_model: None,
                quirks: Vec::new(),
            },
        ));
    }
    Ok((out, notes))
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
        .expect("valid")
        .banks;
        assert_eq!(banks.len(), 1);
        assert_eq!(banks[0].id.as_str(), "de-10010010");
        assert!(banks[0].quirks.signing_required);
    }

    #[test]
    fn adorsys_csv_rows_are_read_and_shared_bank_codes_keep_one_id_each() {
        let parsed = parse(
            "a,Bank Eins,AAAADEFFXXX,https://x.example/api,adapter,10010010\n\
             b,Bank Eins Filiale,AAAADEFF123,https://x.example/api,adapter,10010010\n\
             c,Bank Eins,AAAADEFFXXX,https://x.example/api,adapter,10010010\n\
             d1234567-x,Kurzbank,KURZ,https://k.example/api,adapter,\n",
        )
        .expect("valid");
        let banks = parsed.banks;
        assert_eq!(banks.len(), 3, "the repeated row is merged");
        assert_eq!(banks[0].id.as_str(), "de-10010010");
        assert_eq!(banks[1].id.as_str(), "de-10010010-aaaadeff123");
        assert_eq!(
            banks[2].id.as_str(),
            "reg-d1234567",
            "no code, a short BIC dropped"
        );
        assert_eq!(banks[2].bic, None);
        assert_eq!(parsed.notes.len(), 2, "{:?}", parsed.notes);
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
