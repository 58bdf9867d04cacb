//! How well the built-in rules categorise: the labelled evaluation set
//! (`crates/finx-domain/data/enrich/eval-transactions.jsonl`, realistic German statement
//! lines written for this purpose by someone other than the rules' author) run through
//! `Rules::categorize`, with precision and coverage per top-level category.

// Shares and timings for a report, not money.
#![allow(clippy::float_arithmetic)]

use std::collections::BTreeMap;

use finx_domain::enrich::{Facts, Rules};
use rust_decimal::Decimal;
use serde_json::Value;

use crate::{Result, cargo, root, run};

/// One top level's counts.
#[derive(Default, Clone, Copy)]
struct Tally {
    /// Lines labelled with this top level.
    labelled: u32,
    /// Of those, lines given any category.
    covered: u32,
    /// Lines given this top level.
    predicted: u32,
    /// Of those, lines labelled with it.
    right: u32,
    /// Lines given exactly the labelled category (leaf or top level).
    exact: u32,
}

/// What categorising costs against a full sync: `finx-bench enrich-cost` (release) on a
/// fresh SQLite file, the `bigdata` login's 730 days, median of 3 runs by ratio.
pub(crate) fn cost(bin: &std::path::Path, work: &std::path::Path) -> Result<String> {
    let mut runs = Vec::new();
    for n in 0..3 {
        let db = work.join(format!("enrich-{n}.db"));
        let _ = std::fs::remove_file(&db);
        let out = std::process::Command::new(bin)
            .args(["enrich-cost", &format!("sqlite://{}", db.display())])
            .output()
            .map_err(|e| format!("finx-bench enrich-cost: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "finx-bench enrich-cost failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let field = |k: &str| {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                .and_then(|v| v.parse::<f64>().ok())
                .ok_or_else(|| format!("no {k} in {line:?}"))
        };
        runs.push((
            field("ratio")?,
            field("transactions")?,
            field("categorised")?,
            field("sync_ms")?,
            field("categorise_ms")?,
        ));
    }
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (ratio, n, known, sync, categorise) = runs[runs.len() / 2];
    Ok(format!(
        "**Speed.** Categorising all {n:.0} transactions of the sandbox's `bigdata` login (730 days; {known:.0} \
         of them recognised) takes {categorise:.1} ms; their full sync into SQLite took {sync:.0} ms: \
         categorisation is {:.1} % of a full sync (target: under 10 %). finX categorises when it serves \
         transactions, so a sync itself pays nothing for it (release build, median of 3 runs).\n",
        ratio * 100.0
    ))
}

/// The evaluations as Markdown (the last sections of `docs/benchmarks.md`), with `cost`
/// (see [`cost`]) when measured.
pub(crate) fn report_with(cost: Option<&str>) -> Result<String> {
    let mut md = categories_report()?;
    if let Some(c) = cost {
        md.push('\n');
        md.push_str(c);
    }
    md.push('\n');
    md.push_str(&names_report()?);
    Ok(md)
}

/// Name matching for account verification on the labelled pairs
/// (`crates/finx-domain/data/verify/name-pairs.jsonl`): agreement, and the confusion of
/// labels and answers.
fn names_report() -> Result<String> {
    use finx_domain::enrich::names::{Affinity, affinity};
    let path = root().join("crates/finx-domain/data/verify/name-pairs.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut confusion: BTreeMap<(String, String), u32> = BTreeMap::new();
    let mut by_case: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    let (mut n, mut agree) = (0u32, 0u32);
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Value =
            serde_json::from_str(line).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?;
        let (p, h, want) = (
            v["provided"].as_str().unwrap_or_default(),
            v["holder"].as_str().unwrap_or_default(),
            v["expected"].as_str().unwrap_or_default(),
        );
        let got = affinity(p, h).as_str();
        n += 1;
        let c = by_case
            .entry(v["case"].as_str().unwrap_or("?").to_owned())
            .or_default();
        c.0 += 1;
        if got == want {
            agree += 1;
            c.1 += 1;
        }
        *confusion
            .entry((want.to_owned(), got.to_owned()))
            .or_default() += 1;
    }
    let pct = |a: u32, b: u32| format!("{:.1} %", f64::from(a) * 100.0 / f64::from(b.max(1)));
    let labels: Vec<&str> = Affinity::ALL.iter().rev().map(|a| a.as_str()).collect();
    let mut md = format!(
        "## Account verification: name matching\n\n{n} labelled name pairs \
         (`crates/finx-domain/data/verify/name-pairs.jsonl`, written for this purpose by someone other than the \
         matcher's author; rules in [verification.md](verification.md)): the matcher agrees on {}. \
         Rows are the labels, columns the matcher's answers.\n\n| label |",
        pct(agree, n)
    );
    for l in &labels {
        md.push_str(&format!(" {l} |"));
    }
    md.push_str("\n|---|");
    md.push_str(&"---:|".repeat(labels.len()));
    md.push('\n');
    for want in &labels {
        md.push_str(&format!("| {want} |"));
        for got in &labels {
            let k = confusion
                .get(&((*want).to_owned(), (*got).to_owned()))
                .copied()
                .unwrap_or(0);
            md.push_str(&format!(" {k} |"));
        }
        md.push('\n');
    }
    md.push_str("\n| case | pairs | agree |\n|---|---:|---:|\n");
    for (case, (k, a)) in &by_case {
        md.push_str(&format!("| {case} | {k} | {} |\n", pct(*a, *k)));
    }
    Ok(md)
}

/// The categorisation evaluation as Markdown.
fn categories_report() -> Result<String> {
    let path = root().join("crates/finx-domain/data/enrich/eval-transactions.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let rules = Rules::builtin().map_err(|e| e.to_string())?;
    let mut by_top: BTreeMap<String, Tally> = BTreeMap::new();
    let mut by_case: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    let mut by_source: BTreeMap<&'static str, (u32, u32)> = BTreeMap::new();
    let (mut lines, mut unlabelled, mut wrongly_given) = (0u32, 0u32, 0u32);
    let mut all = Tally::default();
    let mut misses = Vec::new();
    let started = std::time::Instant::now();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Value =
            serde_json::from_str(line).map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?;
        let s = |k: &str| v[k].as_str();
        let amount: Decimal = s("amount")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("line {}: amount", n + 1))?;
        let facts = Facts {
            amount,
            name: s("name"),
            purpose: s("purpose"),
            booking_text: s("booking_text"),
            creditor_id: s("creditor_id"),
            mandate_reference: s("mandate_reference"),
            sepa_purpose_code: s("sepa_purpose_code"),
            bank_transaction_code: s("bank_transaction_code"),
            mcc: s("mcc"),
            own_account: v["own_account"].as_bool().unwrap_or(false),
        };
        lines += 1;
        let got = rules.categorize(&facts);
        let top_of = |id: &str| id.split('.').next().unwrap_or(id).to_owned();
        let Some(expected) = s("expected") else {
            unlabelled += 1;
            if got.is_some() {
                wrongly_given += 1;
            }
            continue;
        };
        let want_top = top_of(expected);
        let case = s("case").unwrap_or("plain").to_owned();
        let t = by_top.entry(want_top.clone()).or_default();
        t.labelled += 1;
        all.labelled += 1;
        let c = by_case.entry(case).or_default();
        c.0 += 1;
        if let Some(got) = got {
            t.covered += 1;
            all.covered += 1;
            let got_top = top_of(got.category.id);
            let right = got_top == want_top;
            let p = by_top.entry(got_top).or_default();
            p.predicted += 1;
            all.predicted += 1;
            let src = by_source.entry(got.source.as_str()).or_default();
            src.0 += 1;
            if right {
                by_top.entry(want_top.clone()).or_default().right += 1;
                all.right += 1;
                src.1 += 1;
                by_case
                    .entry(s("case").unwrap_or("plain").to_owned())
                    .or_default()
                    .1 += 1;
            } else {
                misses.push(format!(
                    "{}: {} → {} ({})",
                    s("id").unwrap_or("?"),
                    expected,
                    got.category.id,
                    got.source.as_str()
                ));
            }
            if got.category.id == expected {
                by_top.entry(want_top).or_default().exact += 1;
                all.exact += 1;
            }
        }
    }
    let per_line = started.elapsed().as_secs_f64() * 1e6 / f64::from(lines.max(1));
    let pct = |a: u32, b: u32| {
        if b == 0 {
            "–".to_owned()
        } else {
            format!("{:.1} %", f64::from(a) * 100.0 / f64::from(b))
        }
    };
    let mut md = String::new();
    md.push_str(&format!(
        "## Categorisation: precision and coverage\n\n\
         {lines} labelled German statement lines (`crates/finx-domain/data/enrich/eval-transactions.jsonl`), \
         run through the built-in rules. **Coverage**: of the lines labelled with a top level, the share given any \
         category. **Precision**: of the lines given a top level, the share labelled with it. **Exact**: of the \
         covered lines labelled with the top level, the share given exactly the labelled category (leaf or top level).\n\n\
         | top level | labelled | coverage | given | precision | exact |\n|---|---:|---:|---:|---:|---:|\n"
    ));
    for (top, t) in &by_top {
        md.push_str(&format!(
            "| {top} | {} | {} | {} | {} | {} |\n",
            t.labelled,
            pct(t.covered, t.labelled),
            t.predicted,
            pct(t.right, t.predicted),
            pct(t.exact, t.covered)
        ));
    }
    md.push_str(&format!(
        "| **all** | {} | {} | {} | {} | {} |\n\n",
        all.labelled,
        pct(all.covered, all.labelled),
        all.predicted,
        pct(all.right, all.predicted),
        pct(all.exact, all.covered)
    ));
    md.push_str(&format!(
        "Lines no careful reader could categorise either: {unlabelled}, of which finX gave {wrongly_given} a category.\n\n\
         | case | lines | right top level |\n|---|---:|---:|\n"
    ));
    for (case, (n, right)) in &by_case {
        md.push_str(&format!("| {case} | {n} | {} |\n", pct(*right, *n)));
    }
    md.push_str("\n| decided by | lines | right top level |\n|---|---:|---:|\n");
    for (source, (n, right)) in &by_source {
        md.push_str(&format!("| {source} | {n} | {} |\n", pct(*right, *n)));
    }
    md.push_str(&format!(
        "\nCategorising one line takes {per_line:.1} µs here (all {lines} lines, this build, one thread).\n"
    ));
    if !misses.is_empty() {
        md.push_str("\nWrong top levels (expected → given):\n\n");
        for m in &misses {
            md.push_str(&format!("- {m}\n"));
        }
    }
    Ok(md)
}

/// Writes [`report_with`] into `docs/benchmarks.md` in place of the sections it wrote
/// before (or at the end), leaving the rest as the last `cargo xtask bench` wrote it.
pub(crate) fn write_into_benchmarks() -> Result<()> {
    const HEADING: &str = "## Categorisation: precision and coverage";
    let path = root().join("docs/benchmarks.md");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    run(
        "build finx-bench (release) for the speed figure",
        cargo().args(["build", "--release", "--locked", "-p", "finx-bench"]),
    )?;
    let work = std::env::temp_dir().join(format!("finx-eval-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let cost = cost(&crate::target_dir().join("release/finx-bench"), &work);
    let _ = std::fs::remove_dir_all(&work);
    let section = report_with(Some(&cost?))?;
    let out = match text.find(HEADING) {
        // The evaluations are the file's last sections.
        Some(start) => format!("{}{section}", &text[..start]),
        None => format!("{}\n{section}", text.trim_end()),
    };
    std::fs::write(&path, out).map_err(|e| format!("{}: {e}", path.display()))
}
