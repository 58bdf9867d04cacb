//! Quickstart: the guide's three calls from a customer's Rust backend.
//!
//! Start a server (`cargo run --release -p finx-server`), then run
//! `cargo run -p finx-client --example quickstart`. It prints a widget link; open it, connect
//! a sandbox bank (`demo` / `demo`, TAN `123456`), and paste the URL you land on.
//!
//! `FINX_URL`, `FINX_CLIENT_ID` and `FINX_CLIENT_SECRET` point it elsewhere; `FINX_CALLBACK_URL`
//! skips the prompt.

// An example talks to its reader on stdout.
#![allow(clippy::print_stdout)]

use std::io::BufRead as _;
use std::sync::Arc;

use finx_client::{Callback, FinxClient, MemoryTokenStore, OnetimeAccess, TransactionQuery};

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = env("FINX_URL", "http://127.0.0.1:8080");
    let finx = FinxClient::new(
        &base,
        &env("FINX_CLIENT_ID", "finx-demo"),
        &env("FINX_CLIENT_SECRET", "fxs_demo-secret-for-the-sandbox"),
    )?;
    let redirect_uri = format!("{}/demo/callback", base.trim_end_matches('/'));
    // The state ties the callback to this user; check it when they come back.
    let state = format!("quickstart-{}", std::process::id());

    // 1. A widget link for the end user.
    let link = finx
        .create_onetime_access(&OnetimeAccess {
            redirect_uri: redirect_uri.clone(),
            state: Some(state.clone()),
            ..Default::default()
        })
        .await?;
    println!(
        "1. Open this link and connect a bank (sandbox: demo / demo, TAN 123456):\n\n   {}\n",
        link.location
    );

    // 2. The user comes back to the redirect URI; exchange the code.
    let callback = match std::env::var("FINX_CALLBACK_URL") {
        Ok(url) => url,
        Err(_) => {
            println!("2. Paste the URL you landed on (…/demo/callback?code=…):");
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim().to_owned()
        }
    };
    let code = match finx.parse_callback(&callback, Some(&state))? {
        Callback::Success { code, .. } => code,
        Callback::Cancelled { .. } => {
            println!("The user cancelled.");
            return Ok(());
        }
        Callback::Failed { error, .. } => {
            println!("The flow failed: {}", error.unwrap_or_default());
            return Ok(());
        }
    };
    let tokens = finx.exchange_code(&code, &redirect_uri).await?;

    // Keep the tokens in a store (use SqlTokenStore in production); the connection
    // refreshes and rotates them from now on.
    let conn = finx
        .connect(
            "quickstart-user",
            Arc::new(MemoryTokenStore::default()),
            &tokens,
        )
        .await?;

    // 3. The data.
    for a in conn.accounts().await? {
        let balance = a
            .balance
            .as_ref()
            .map(|b| format!("{} {}", b.balance, b.currency))
            .unwrap_or_default();
        println!(
            "{:<16} {:<24} {:<34} {balance}",
            a.account_type,
            a.name,
            a.iban.unwrap_or_default()
        );
    }
    println!();
    for t in conn
        .transactions(&TransactionQuery::new().count(10))
        .await?
    {
        println!(
            "{}  {:>10} {}  {}",
            t.booked_at,
            t.amount,
            t.currency,
            t.name.unwrap_or_default()
        );
    }
    Ok(())
}
