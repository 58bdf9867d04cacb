//! Walks whole flows through a running finX's widget forms, one per SCA approach and
//! consent model, exchanges each code and reads the data; then times the widget's bank
//! search. `cargo xtask xs2a-conformance` runs it with finX's banks behind Prism, which
//! checks every XS2A call against the official document.
//!
//! Usage: `xs2a_walk FINX_BASE CLIENT_ID CLIENT_SECRET REDIRECT_URI`. Prints one JSON
//! object: the flows walked and the search latencies. Exits non-zero when a flow fails.

// Latency figures are floating point; money never is (see finx-domain).
#![allow(clippy::print_stdout, clippy::float_arithmetic)]

use std::time::{Duration, Instant};

use finx_tests::fixtures::{browser, csrf_of, page_text, walk_widget};
use serde_json::{Value, json};

/// One flow to walk: the bank (registry id), the login, and IBANs to name.
struct Walk {
    name: &'static str,
    provider: &'static str,
    user: &'static str,
    ibans: &'static [&'static str],
}

const WALKS: &[Walk] = &[
    Walk {
        name: "embedded, bank-offered consent",
        provider: "sandbox-90094815",
        user: "demo",
        ibans: &[],
    },
    Walk {
        name: "redirect, bank-offered consent",
        provider: "sandbox-90094816",
        user: "demo",
        ibans: &[],
    },
    Walk {
        name: "decoupled, bank-offered consent",
        provider: "sandbox-90094817",
        user: "demo",
        ibans: &[],
    },
    Walk {
        name: "OAuth (scaOAuth), code with PKCE",
        provider: "conf-oauth",
        user: "demo",
        ibans: &[],
    },
    Walk {
        name: "embedded, no SCA needed",
        provider: "sandbox-90094815",
        user: "nosca",
        ibans: &[],
    },
    Walk {
        name: "embedded, availableAccounts then dedicated",
        provider: "conf-available",
        user: "demo",
        ibans: &[],
    },
    Walk {
        name: "embedded, dedicated from the customer's IBAN",
        provider: "conf-dedicated",
        user: "demo",
        ibans: &["DE82900948150000002881"],
    },
];

/// Search terms: names, a BIC, bank codes.
const QUERIES: &[&str] = &[
    "sparkasse",
    "volksbank",
    "Raiffeisenbank",
    "COBADEFFXXX",
    "10010010",
    "deutsche",
    "xyz-nothing",
];

/// Searches per term.
const ROUNDS: usize = 30;

async fn link(
    http: &reqwest::Client,
    base: &str,
    client: &str,
    secret: &str,
    redirect: &str,
    body: Value,
) -> String {
    let mut b = json!({ "redirect_uri": redirect, "state": "conformance" });
    if let (Some(b), Some(e)) = (b.as_object_mut(), body.as_object()) {
        b.extend(e.clone());
    }
    let v: Value = http
        .post(format!("{base}/onetime/access"))
        .basic_auth(client, Some(secret))
        .json(&b)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    v["location"]
        .as_str()
        .unwrap_or_else(|| panic!("no link: {v}"))
        .to_owned()
}

async fn read_data(
    http: &reqwest::Client,
    base: &str,
    client: &str,
    secret: &str,
    redirect: &str,
    code: &str,
) -> (usize, usize) {
    let t: Value = http
        .post(format!("{base}/auth/token"))
        .basic_auth(client, Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect),
        ])
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let access = t["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {t}"));
    let get = |path: &'static str| http.get(format!("{base}{path}")).bearer_auth(access).send();
    let accounts: Value = get("/rest/accounts")
        .await
        .expect("accounts")
        .json()
        .await
        .expect("json");
    let txs: Value = get("/rest/transactions?count=500&include_pending=true")
        .await
        .expect("txs")
        .json()
        .await
        .expect("json");
    (
        accounts["accounts"].as_array().map_or(0, Vec::len),
        txs["transactions"].as_array().map_or(0, Vec::len),
    )
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base, client, secret, redirect] = args.as_slice() else {
        eprintln!("usage: xs2a_walk FINX_BASE CLIENT_ID CLIENT_SECRET REDIRECT_URI");
        std::process::exit(2);
    };
    let base = base.trim_end_matches('/');
    let http = reqwest::Client::new();
    let mut walked = Vec::new();
    for w in WALKS {
        let accounts: Vec<Value> = w.ibans.iter().map(|i| json!({ "id": i })).collect();
        let location = link(
            &http,
            base,
            client,
            secret,
            redirect,
            json!({ "provider_id": w.provider, "accounts": accounts }),
        )
        .await;
        let started = Instant::now();
        let back = walk_widget(&http, &location, w.provider, w.user).await;
        let code = back
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("{}: no code in {back}", w.name));
        let (n_accounts, n_txs) = read_data(&http, base, client, secret, redirect, &code).await;
        assert!(
            n_accounts > 0 && n_txs > 0,
            "{}: {n_accounts} accounts, {n_txs} transactions",
            w.name
        );
        walked.push(json!({
            "flow": w.name,
            "seconds": started.elapsed().as_secs_f64(),
            "accounts": n_accounts,
            "transactions": n_txs,
        }));
    }

    // The widget's bank search, over every bank of the registry.
    let me = browser();
    let location = link(&me, base, client, secret, redirect, json!({})).await;
    let first = page_text(&me, &location).await;
    let _ = csrf_of(&first);
    let mut times = Vec::new();
    let mut hits = serde_json::Map::new();
    for q in QUERIES {
        let url = format!(
            "{location}&q={}",
            form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
        );
        for round in 0..ROUNDS {
            let t = Instant::now();
            let html = page_text(&me, &url).await;
            times.push(t.elapsed());
            if round == 0 {
                hits.insert((*q).to_owned(), json!(html.matches("bank-choice").count()));
            }
        }
    }
    times.sort();
    let summary = json!({
        "flows": walked,
        "search": {
            "requests": times.len(),
            "p50_ms": percentile(&times, 0.5),
            "p99_ms": percentile(&times, 0.99),
            "max_ms": percentile(&times, 1.0),
            "hits": hits,
        },
    });
    println!("{summary}");
}
