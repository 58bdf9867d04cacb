//! Benchmark servers, driven by `cargo xtask bench`:
//!
//! - `finx-bench baseline PORT`: an empty axum handler answering a short JSON body.
//! - `finx-bench bytes PORT BODY HEADERS`: the bytes and headers of a finX page, served
//!   from memory (the physical reference for pages).
//! - `finx-bench serve PORT STORE TRANSACTIONS REFRESH_TOKENS OUTDIR`: a finX server on
//!   `memory`, `sqlite://…` or `postgres://…`, with one grant whose account holds
//!   TRANSACTIONS transactions (its bearer token and account id are written to OUTDIR) and
//!   REFRESH_TOKENS single-use refresh tokens (OUTDIR/refresh_tokens). `GET /bench/queries`
//!   counts the SQL statements run so far.
//! - `finx-bench flows BASE SECONDS CONCURRENCY`: complete flows (link, widget, token,
//!   accounts) against a server, and print flows per second.
//! - `finx-bench rate URL RPS SECONDS BEARER|- [TOKENS AUTH]`: an open-loop load at a constant
//!   rate: a request is due every 1/RPS seconds whether or not the earlier ones have
//!   answered, and each latency is measured from the moment it was due, so a stall counts
//!   for every request it held up (no coordinated omission). GET with the bearer token, or,
//!   with TOKENS and AUTH, refresh grants: POST `/auth/token` with `Authorization: AUTH`
//!   along chains started from the refresh tokens of the file TOKENS (each answer's new
//!   refresh token is its chain's next). Prints the percentiles.
//! - `finx-bench syncs-seed STORE N`: N ongoing accesses of the sandbox's `moving` login, each
//!   with its own consent at the bank, synced before, and a scheduled sync due now.
//! - `finx-bench enrich-cost STORE`: a one-time flow of the sandbox's `bigdata` login
//!   (730 days of history), timing the full sync (the flow's data fetch and write) and then
//!   the categorisation of every transaction it wrote; prints both and their ratio.
//! - `finx-bench syncs-run STORE CONCURRENCY`: an instance's sync runner: runs due syncs,
//!   CONCURRENCY at once, until none has been due for two seconds; prints how many ran and
//!   failed, and when the first was claimed and the last ended (Unix milliseconds).

// A benchmark tool reports on stdout.
#![allow(clippy::print_stdout)]

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::routing::get;
use chrono::{TimeDelta, Utc};
use finx_core::{Finx, NewClient, OnetimeAccessRequest, Ports, Settings};
use finx_domain::bank::{Counterparty, TransactionDetails, TransactionType};
use finx_domain::ids::{FlowId, GrantId};
use finx_domain::money::{Currency, Money};
use finx_domain::scope::Scope;
use finx_domain::secret::{
    AccessToken, AuthorizationCode, ClientSecret, RefreshToken, TokenHasher,
};
use finx_domain::token::{
    AccessTokenRecord, CodeRecord, Grant, IssuedTokens, Lifetimes, RefreshTokenRecord,
};
use finx_ports::{BankCredentials, BankDataStore, GrantStore, SecretGenerator};
use rust_decimal::Decimal;

const KEY: &[u8] = b"finx-bench-hash-key-0123456789abcdef";
const CLIENT: &str = "bench";
const SECRET: &str = "fxs_bench-secret-0123456789";
const REDIRECT: &str = "http://127.0.0.1/callback";

/// Counts SQL statements (sqlx reports each as a `sqlx::query` event).
struct QueryCounter(Arc<AtomicU64>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for QueryCounter {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// mimalloc instead of the system allocator: with glibc's, a heap holding hundreds of
/// thousands of grants made every response's allocations walk fragmented free lists
/// (`malloc_consolidate`, `unlink_chunk`: half the CPU of a transaction page at 400,000
/// grants in memory, profiled with perf), so a page's cost grew with the grants held.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("baseline") => baseline(&args[2..]).await,
        Some("bytes") => bytes(&args[2..]).await,
        Some("serve") => serve(&args[2..]).await,
        Some("flows") => flows(&args[2..]).await,
        Some("rate") => rate(&args[2..]).await,
        Some("syncs-seed") => syncs_seed(&args[2..]).await,
        Some("syncs-run") => syncs_run(&args[2..]).await,
        Some("enrich-cost") => enrich_cost(&args[2..]).await,
        _ => Err("usage: finx-bench baseline PORT | serve PORT STORE TX REFRESH OUTDIR | flows BASE SECONDS CONCURRENCY".into()),
    };
    if let Err(e) = result {
        eprintln!("finx-bench: {e}");
        std::process::exit(1);
    }
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> Result<T, String> {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("missing or bad {what}"))
}

async fn listen(port: u16) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())
}

fn ready() {
    println!("ready");
    let _ = std::io::stdout().flush();
}

async fn baseline(args: &[String]) -> Result<(), String> {
    let listener = listen(arg(args, 0, "port")?).await?;
    let app = axum::Router::new().route(
        "/empty",
        get(|| async { axum::Json(serde_json::json!({ "ok": true })) }),
    );
    ready();
    axum::serve(listener, app).await.map_err(|e| e.to_string())
}

/// `bytes PORT BODY HEADERS`: answers `GET /page` with the bytes of BODY and the headers in
/// HEADERS (one `name: value` per line): a finX page served from memory with no work, the
/// limit of HTTP and payload on this machine.
async fn bytes(args: &[String]) -> Result<(), String> {
    let listener = listen(arg(args, 0, "port")?).await?;
    let body = axum::body::Bytes::from(
        std::fs::read(arg::<String>(args, 1, "body file")?).map_err(|e| e.to_string())?,
    );
    let mut headers = axum::http::HeaderMap::new();
    for line in std::fs::read_to_string(arg::<String>(args, 2, "headers file")?)
        .map_err(|e| e.to_string())?
        .lines()
    {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if let (Ok(n), Ok(v)) = (
            axum::http::HeaderName::from_bytes(name.trim().as_bytes()),
            axum::http::HeaderValue::from_str(value.trim()),
        ) {
            headers.insert(n, v);
        }
    }
    let app = axum::Router::new().route(
        "/page",
        get(move || {
            let (headers, body) = (headers.clone(), body.clone());
            async move { (headers, body) }
        }),
    );
    ready();
    axum::serve(listener, app).await.map_err(|e| e.to_string())
}

/// A synthetic but plausible transaction; `i` spreads them over ten years.
fn transaction(i: u64, today: chrono::NaiveDate) -> TransactionDetails {
    let day = today - TimeDelta::days(i64::try_from(i % 3650).unwrap_or(0));
    let cents = i64::try_from(i % 20_000).unwrap_or(0) - 15_000;
    TransactionDetails {
        external_id: format!("bench-{i}"),
        amount: Money::new(Decimal::new(cents, 2), Currency::EUR),
        counterparty: Counterparty {
            name: Some(format!("Händler {}", i % 97)),
            ..Counterparty::default()
        },
        purpose: Some(format!("EREF+B{i} SVWZ+Einkauf {i}")),
        booked_on: day,
        value_date: day,
        booked: true,
        booking_text: Some("KARTENZAHLUNG".into()),
        transaction_type: TransactionType::ElectronicCash,
        creditor_id: None,
        mandate_reference: None,
        end_to_end_reference: Some(format!("B{i}")),
        sepa_purpose_code: None,
        bank_transaction_code: None,
        mcc: None,
    }
}

/// The storage ports, as the core takes them.
type StorePorts = (
    Arc<dyn finx_ports::ClientRegistry>,
    Arc<dyn finx_ports::FlowStore>,
    Arc<dyn BankDataStore>,
);

enum Store {
    Memory(Arc<finx_store_memory::MemoryStore>),
    Sql(Arc<finx_store_sql::SqlStore>),
}

impl Store {
    fn grants(&self) -> Arc<dyn GrantStore> {
        match self {
            Store::Memory(s) => s.clone(),
            Store::Sql(s) => s.clone(),
        }
    }

    fn accesses(&self) -> Arc<dyn finx_ports::AccessStore> {
        match self {
            Store::Memory(s) => s.clone(),
            Store::Sql(s) => s.clone(),
        }
    }

    /// Stores grants already redeemed: in bulk on SQL, through the port in memory.
    async fn add_grants(&self, rows: &[(Grant, CodeRecord, IssuedTokens)]) -> Result<(), String> {
        match self {
            Store::Sql(s) => s.import_grants(rows).await.map_err(|e| {
                let source = std::error::Error::source(&e)
                    .map(ToString::to_string)
                    .unwrap_or_default();
                format!("{e}: {source}")
            }),
            Store::Memory(s) => {
                for (g, c, t) in rows {
                    s.insert_grant(g, c).await.map_err(|e| e.to_string())?;
                    s.redeem_code(&c.hash, Utc::now(), t)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Ok(())
            }
        }
    }
}

/// The store at `store_url` (`memory`, `sqlite://…`, `sqlite-normal://…` for
/// `synchronous=NORMAL`, `postgres://…`) and a core on it with the in-process sandbox bank.
async fn core_on(
    store_url: &str,
) -> Result<(Store, Finx, Arc<finx_bank_sandbox::SandboxBank>), String> {
    let store = if store_url == "memory" {
        Store::Memory(Arc::new(finx_store_memory::MemoryStore::new()))
    } else {
        // `sqlite-normal://…`: SQLite with synchronous=NORMAL, to show what FULL costs.
        let (url, full_sync) = match store_url.strip_prefix("sqlite-normal:") {
            Some(rest) => (format!("sqlite:{rest}"), false),
            None => (store_url.to_owned(), true),
        };
        let options = finx_store_sql::SqlOptions {
            sqlite_full_sync: full_sync,
            ..finx_store_sql::SqlOptions::default()
        };
        Store::Sql(Arc::new(
            finx_store_sql::SqlStore::connect_with(&url, &options)
                .await
                .map_err(|e| e.to_string())?,
        ))
    };
    let (clients, flows, data): StorePorts = match &store {
        Store::Memory(s) => (s.clone(), s.clone(), s.clone()),
        Store::Sql(s) => (s.clone(), s.clone(), s.clone()),
    };
    let clock = Arc::new(finx_system::SystemClock);
    let bank = Arc::new(finx_bank_sandbox::SandboxBank::new(
        finx_bank_sandbox::SandboxConfig::default(),
        clock.clone(),
    ));
    let ports = Ports {
        clients,
        flows,
        grants: store.grants(),
        data,
        accesses: store.accesses(),
        bank: bank.clone(),
        clock,
        random: Arc::new(finx_system::OsRandom),
        timer: Arc::new(finx_system::TokioTimer),
        webhooks: match &store {
            Store::Memory(s) => s.clone(),
            Store::Sql(s) => s.clone(),
        },
        // Counted as in production, so the figures include what metrics cost.
        telemetry: Arc::new(finx_metrics::Prometheus::new()),
        bus: match &store {
            Store::Memory(s) => s.clone(),
            Store::Sql(s) => s.clone(),
        },
        sender: Arc::new(
            finx_webhooks::HttpSender::new(
                finx_domain::webhook::UrlPolicy::default(),
                finx_webhooks::DEFAULT_TIMEOUT,
            )
            .map_err(|e| e.to_string())?,
        ),
    };
    let finx = Finx::new(
        ports,
        Settings {
            lifetimes: Lifetimes::default(),
            ..Settings::with_hash_key(KEY.to_vec())
        },
    )
    .map_err(|e| e.to_string())?;
    // Other instances' writes, heard as the server hears them (PostgreSQL).
    let listening = finx.clone();
    tokio::spawn(async move { listening.run_invalidation_listener().await });
    Ok((store, finx, bank))
}

async fn serve(args: &[String]) -> Result<(), String> {
    let port: u16 = arg(args, 0, "port")?;
    let store_url: String = arg(args, 1, "store")?;
    let n_tx: u64 = arg(args, 2, "transactions")?;
    let n_refresh: usize = arg(args, 3, "refresh tokens")?;
    let out = std::path::PathBuf::from(arg::<String>(args, 4, "outdir")?);
    let queries = Arc::new(AtomicU64::new(0));
    {
        use tracing_subscriber::prelude::*;
        let filter = tracing_subscriber::filter::Targets::new()
            .with_target("sqlx::query", tracing::Level::DEBUG);
        tracing_subscriber::registry()
            .with(QueryCounter(queries.clone()).with_filter(filter))
            .init();
    }

    let (store, finx, _) = core_on(&store_url).await?;
    let client = bench_client(&finx).await?;
    std::fs::write(out.join("client_id"), client.id.as_str()).map_err(|e| e.to_string())?;

    // One grant to read with.
    let flow = finx
        .create_onetime_access(
            &client,
            OnetimeAccessRequest {
                redirect_uri: REDIRECT.into(),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    finx.select_bank(flow.id, "sandbox-90094815")
        .await
        .map_err(|e| e.to_string())?;
    finx.submit_credentials(
        flow.id,
        &BankCredentials {
            user: "nosca".into(),
            secret: "demo".into(),
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    let (tokens, auth) = giro_grant(&finx, &client, flow.id).await?;
    let account = auth.account_ids.first().cloned().ok_or("no account")?;

    // The account's history: n_tx transactions.
    let started = Instant::now();
    add_transactions(&store, &account, 0, n_tx).await?;
    eprintln!("seeded {n_tx} transactions in {:?}", started.elapsed());

    // Refresh tokens to start chains from, each in a grant of its own (a load rotates each
    // chain: every answer's new refresh token is the next request's).
    let seed = Seed {
        hasher: TokenHasher::new(KEY).map_err(|e| e.to_string())?,
        random: Arc::new(finx_system::OsRandom),
        client: client.id.clone(),
        account: account.clone(),
        access: auth.access_id.clone(),
    };
    let mut rows = Vec::with_capacity(n_refresh);
    let mut refresh_lines = String::new();
    for _ in 0..n_refresh {
        let (grant, code, issued, refresh) = seed.grant()?;
        rows.push((grant, code, issued));
        refresh_lines.push_str(&refresh);
        refresh_lines.push('\n');
    }
    store.add_grants(&rows).await?;
    std::fs::write(out.join("refresh_tokens"), refresh_lines).map_err(|e| e.to_string())?;
    std::fs::write(out.join("access_token"), tokens.access_token.expose())
        .map_err(|e| e.to_string())?;
    std::fs::write(out.join("account_id"), account.as_str()).map_err(|e| e.to_string())?;

    let listener = listen(port).await?;
    let base = url::Url::parse(&format!("http://127.0.0.1:{port}/")).map_err(|e| e.to_string())?;
    let unlimited = finx_http::limit::Rate {
        burst: u32::MAX / 2,
        per_minute: u32::MAX / 2,
    };
    let limits = finx_http::limit::RateLimits {
        token_per_ip: unlimited,
        token_per_client: unlimited,
        auth_failures_per_ip: unlimited,
        auth_failures_per_ip_and_client: unlimited,
    };
    let config = finx_http::HttpConfig {
        public_url: base,
        link_key: finx_http::LinkKey::new(KEY.to_vec()),
        demo_client: None,
        limits,
        trusted_proxies: Vec::new(),
        completion_budget: std::time::Duration::from_secs(300),
        render_cache_bytes: finx_http::render::DEFAULT_CACHE_BYTES,
    };
    let counter = queries.clone();
    let grow = Arc::new(Grow {
        store,
        seed,
        account,
        transactions: tokio::sync::Mutex::new(n_tx),
        live_grants: tokio::sync::Mutex::new(n_refresh as u64 + 1),
    });
    let router = finx_http::router(finx_http::AppState::new(finx, config)).merge(
        axum::Router::new()
            .route(
                "/bench/queries",
                get(move || async move { counter.load(Ordering::Relaxed).to_string() }),
            )
            .route(
                "/bench/grow/{to}",
                axum::routing::post(
                    |axum::extract::State(g): axum::extract::State<Arc<Grow>>,
                     axum::extract::Path(to): axum::extract::Path<u64>| async move {
                        g.transactions_to(to).await
                    },
                ),
            )
            .route(
                "/bench/grants/{to}",
                axum::routing::post(
                    |axum::extract::State(g): axum::extract::State<Arc<Grow>>,
                     axum::extract::Path(to): axum::extract::Path<u64>| async move {
                        g.grants_to(to).await
                    },
                ),
            )
            .with_state(grow),
    );
    queries.store(0, Ordering::Relaxed);
    ready();
    finx_http::serve(
        listener,
        router,
        std::future::pending(),
        Duration::from_secs(1),
        finx_http::ServerTimeouts::default(),
    )
    .await
    .map_err(|e| e.to_string())
}

async fn flows(args: &[String]) -> Result<(), String> {
    let base: String = arg(args, 0, "base URL")?;
    let seconds: u64 = arg(args, 1, "seconds")?;
    let concurrency: usize = arg(args, 2, "concurrency")?;
    let client_id: String = arg(args, 3, "client id")?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (http, base, done, client_id) =
            (http.clone(), base.clone(), done.clone(), client_id.clone());
        workers.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let link: serde_json::Value = http
                    .post(format!("{base}/onetime/access"))
                    .basic_auth(&client_id, Some(SECRET))
                    .json(&serde_json::json!({ "redirect_uri": REDIRECT, "accounts": [{ "id": "DE82900948150000002881" }] }))
                    .send()
                    .await?
                    .json()
                    .await?;
                let location = link["location"].as_str().unwrap_or_default().to_owned();
                let back = finx_tests::fixtures::walk_widget(&http, &location, "sandbox-90094815", "nosca").await;
                let code = back.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned()).unwrap_or_default();
                let t: serde_json::Value = http
                    .post(format!("{base}/auth/token"))
                    .basic_auth(&client_id, Some(SECRET))
                    .form(&[("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", REDIRECT)])
                    .send()
                    .await?
                    .json()
                    .await?;
                let accounts = http.get(format!("{base}/rest/accounts")).bearer_auth(t["access_token"].as_str().unwrap_or_default()).send().await?;
                if accounts.status().is_success() {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok::<_, reqwest::Error>(())
        }));
    }
    for w in workers {
        w.await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    }
    let secs = started.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss, clippy::float_arithmetic)]
    let rate = done.load(Ordering::Relaxed) as f64 / secs;
    println!(
        "flows {} seconds {secs:.2} flows_per_second {rate:.2}",
        done.load(Ordering::Relaxed)
    );
    Ok(())
}

/// `rate URL RPS SECONDS BEARER|- [TOKENS AUTH]`: see the crate's documentation.
// Latency statistics are floating point; money never is.
#[allow(clippy::float_arithmetic)]
async fn rate(args: &[String]) -> Result<(), String> {
    let url: String = arg(args, 0, "url")?;
    let rps: u32 = arg(args, 1, "requests per second")?;
    let seconds: u64 = arg(args, 2, "seconds")?;
    let bearer: String = arg(args, 3, "bearer token or -")?;
    let refresh: Option<(Vec<String>, String)> = match (args.get(4), args.get(5)) {
        (Some(file), Some(auth)) => Some((
            std::fs::read_to_string(file)
                .map_err(|e| e.to_string())?
                .lines()
                .map(str::to_owned)
                .collect(),
            auth.clone(),
        )),
        _ => None,
    };
    if rps == 0 {
        return Err("the rate must be positive".into());
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .build()
        .map_err(|e| e.to_string())?;
    let total = u64::from(rps) * seconds;
    let every = Duration::from_secs(1) / rps;
    let start = tokio::time::Instant::now();
    // Refresh chains: a request takes a chain's current token (waiting, with its clock
    // running, while every chain is in flight) and gives back the one it got.
    let chains = Arc::new((
        std::sync::Mutex::new(refresh.as_ref().map(|(t, _)| t.clone()).unwrap_or_default()),
        tokio::sync::Notify::new(),
    ));
    let auth = refresh.map(|(_, a)| a);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        // Due at start + i/rps, whatever happened to the requests before it.
        let due = start + every * u32::try_from(i).unwrap_or(u32::MAX);
        tokio::time::sleep_until(due).await;
        let (http, url, bearer, auth, chains) = (
            http.clone(),
            url.clone(),
            bearer.clone(),
            auth.clone(),
            chains.clone(),
        );
        tasks.spawn(async move {
            let ok = match auth {
                Some(auth) => {
                    let waited = tokio::time::Instant::now();
                    let token = loop {
                        let notified = chains.1.notified();
                        let next = chains.0.lock().ok().and_then(|mut c| c.pop());
                        if let Some(t) = next {
                            break Some(t);
                        }
                        // Every chain broke (a failed refresh ends its chain): give up.
                        if waited.elapsed() > Duration::from_secs(10) {
                            break None;
                        }
                        let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
                    };
                    let Some(token) = token else {
                        return (due.elapsed(), false);
                    };
                    let answer = http
                        .post(&url)
                        .header("authorization", auth)
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(format!("grant_type=refresh_token&refresh_token={token}"))
                        .send()
                        .await;
                    let next = match answer {
                        Ok(r) if r.status().is_success() => r
                            .json::<serde_json::Value>()
                            .await
                            .ok()
                            .and_then(|v| v["refresh_token"].as_str().map(str::to_owned)),
                        _ => None,
                    };
                    let ok = next.is_some();
                    if let (Some(t), Ok(mut c)) = (next, chains.0.lock()) {
                        c.push(t);
                    }
                    chains.1.notify_one();
                    ok
                }
                None => match http.get(&url).bearer_auth(&bearer).send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                },
            };
            (due.elapsed(), ok)
        });
    }
    let mut latencies = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    let mut failed = 0u64;
    while let Some(r) = tasks.join_next().await {
        let (latency, ok) = r.map_err(|e| e.to_string())?;
        latencies.push(latency);
        failed += u64::from(!ok);
    }
    latencies.sort_unstable();
    let at = |q: usize| {
        latencies
            .get((latencies.len() * q / 1000).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "sent {} failed {failed} seconds {:.2} p50_ms {:.3} p99_ms {:.3} p999_ms {:.3} max_ms {:.3}",
        latencies.len(),
        start.elapsed().as_secs_f64(),
        at(500),
        at(990),
        at(999),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    );
    Ok(())
}

/// Makes live grants for the bench's client and account.
#[derive(Clone)]
struct Seed {
    hasher: TokenHasher,
    random: Arc<finx_system::OsRandom>,
    client: finx_domain::ids::ClientId,
    account: finx_domain::ids::AccountId,
    access: finx_domain::ids::AccessId,
}

impl Seed {
    /// A grant, its code and its tokens as a redeemed code leaves them, and the raw refresh
    /// token.
    fn grant(&self) -> Result<(Grant, CodeRecord, IssuedTokens, String), String> {
        let now = Utc::now();
        let random = &self.random;
        let grant = Grant {
            id: GrantId::from_random(random.bytes16()),
            client_id: self.client.clone(),
            flow_id: FlowId::from_random(random.bytes16()),
            access_id: self.access.clone(),
            account_ids: vec![self.account.clone()],
            scope: Scope::FULL,
            redirect_uri: finx_domain::values::RedirectUri::parse(REDIRECT)
                .map_err(|e| e.to_string())?,
            created_at: now,
            expires_at: now + TimeDelta::days(180),
            revoked_at: None,
            language: finx_domain::values::Language::De,
            verification: None,
        };
        let code = AuthorizationCode::from_random(random.bytes32());
        let record = CodeRecord {
            hash: self.hasher.hash(&code),
            grant_id: grant.id,
            issued_at: now,
            expires_at: now + TimeDelta::hours(1),
            used_at: None,
        };
        let access = AccessToken::from_random(random.bytes32());
        let refresh = RefreshToken::from_random(random.bytes32());
        let issued = IssuedTokens {
            access: AccessTokenRecord {
                hash: self.hasher.hash(&access),
                grant_id: grant.id,
                issued_at: now,
                expires_at: now + TimeDelta::hours(1),
                scope: Scope::FULL,
                revoked_at: None,
            },
            refresh: Some(RefreshTokenRecord {
                hash: self.hasher.hash(&refresh),
                grant_id: grant.id,
                issued_at: now,
                expires_at: now + TimeDelta::days(90),
                used_at: None,
            }),
        };
        Ok((grant, record, issued, refresh.expose().to_owned()))
    }
}

/// Adds transactions `from..to` to the account's history, in batches.
async fn add_transactions(
    store: &Store,
    account: &finx_domain::ids::AccountId,
    from: u64,
    to: u64,
) -> Result<(), String> {
    let today = Utc::now().date_naive();
    let now = Utc::now();
    let mut i = from;
    while i < to {
        let batch: Vec<_> = (i..(i + 50_000).min(to))
            .map(|k| transaction(k, today))
            .collect();
        match store {
            Store::Memory(s) => {
                // A plain write, like the SQL store's import: `sync_transactions` would
                // take each batch for the account's whole history.
                s.upsert_transactions(account, &batch, now)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Store::Sql(s) => {
                s.import_transactions(account, &batch, now)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        i += 50_000;
    }
    if let Store::Sql(s) = store {
        s.analyze().await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// What the bench server grows between measurements: the account's history and the live
/// grants.
struct Grow {
    store: Store,
    seed: Seed,
    account: finx_domain::ids::AccountId,
    transactions: tokio::sync::Mutex<u64>,
    live_grants: tokio::sync::Mutex<u64>,
}

impl Grow {
    /// `POST /bench/grow/{to}`: the history grows to `to` transactions.
    async fn transactions_to(&self, to: u64) -> (axum::http::StatusCode, String) {
        let mut have = self.transactions.lock().await;
        match add_transactions(&self.store, &self.account, *have, to).await {
            Ok(()) => {
                *have = (*have).max(to);
                (axum::http::StatusCode::OK, have.to_string())
            }
            Err(e) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e),
        }
    }

    /// `POST /bench/grants/{to}`: live grants (each with an access and a refresh token)
    /// grow to `to`.
    async fn grants_to(&self, to: u64) -> (axum::http::StatusCode, String) {
        let mut have = self.live_grants.lock().await;
        let result = async {
            while *have < to {
                let n = (to - *have).min(10_000);
                let batch = (0..n)
                    .map(|_| self.seed.grant().map(|(g, c, t, _)| (g, c, t)))
                    .collect::<Result<Vec<_>, String>>()?;
                self.store.add_grants(&batch).await?;
                if let (Store::Sql(s), true) = (&self.store, *have + n >= to) {
                    s.analyze().await.map_err(|e| e.to_string())?;
                }
                *have += n;
            }
            Ok::<_, String>(())
        }
        .await;
        match result {
            Ok(()) => (axum::http::StatusCode::OK, have.to_string()),
            Err(e) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e),
        }
    }
}

/// Registers the bench's client (its secret is [`SECRET`]).
async fn bench_client(finx: &Finx) -> Result<finx_ports::Client, String> {
    let secret = ClientSecret::from_presented(SECRET).map_err(|e| e.to_string())?;
    finx.register_client(NewClient {
        id: Some(format!("{CLIENT}-{}", std::process::id())),
        name: "bench".into(),
        redirect_uris: vec![REDIRECT.into()],
        scope: None,
        secret: Some(secret),
    })
    .await
    .map(|r| r.client)
    .map_err(|e| format!("register: {e}"))
}

/// The answer the sandbox's `moving` login gives to `step`.
fn moving_answer(
    step: &finx_domain::sca::BankStep,
) -> Result<finx_domain::sca::StepAnswer, String> {
    login_answer("moving", step)
}

/// Takes `flow` at the sandbox's embedded bank through login, method and TAN as `user`.
async fn through_embedded_bank(finx: &Finx, flow: FlowId, user: &str) -> Result<(), String> {
    finx.select_bank(flow, "sandbox-90094815")
        .await
        .map_err(|e| e.to_string())?;
    let mut f = finx.open_at_bank(flow).await.map_err(|e| e.to_string())?;
    for _ in 0..8 {
        let Some(step) = f.asked().cloned() else {
            break;
        };
        f = finx
            .submit_step(flow, login_answer(user, &step)?)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The answer the sandbox's login `user` gives to `step`.
fn login_answer(
    user: &str,
    step: &finx_domain::sca::BankStep,
) -> Result<finx_domain::sca::StepAnswer, String> {
    use finx_domain::sca::{BankStep, StepAnswer};
    match step {
        BankStep::Login { .. } => Ok(StepAnswer::Login(vec![
            ("user".into(), user.into()),
            ("pin".into(), "demo".into()),
        ])),
        BankStep::ChooseMethod { .. } => Ok(StepAnswer::Method("push".into())),
        BankStep::Tan { .. } => Ok(StepAnswer::Tan("123456".into())),
        other => Err(format!("the embedded sandbox bank asked {other:?}")),
    }
}

/// `enrich-cost STORE`: see the crate's documentation.
// Timings, not money.
#[allow(clippy::float_arithmetic)]
async fn enrich_cost(args: &[String]) -> Result<(), String> {
    let store_url: String = arg(args, 0, "store")?;
    let (_store, finx, _bank) = core_on(&store_url).await?;
    let client = bench_client(&finx).await?;
    let flow = finx
        .create_onetime_access(
            &client,
            OnetimeAccessRequest {
                redirect_uri: REDIRECT.into(),
                sync_period: Some(730),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    through_embedded_bank(&finx, flow.id, "bigdata").await?;
    // The full sync: the flow's fetch of every account's history, written to the store.
    let started = std::time::Instant::now();
    let (_, auth) = giro_grant(&finx, &client, flow.id).await?;
    let sync = started.elapsed();
    let mut all = Vec::new();
    loop {
        let q =
            finx_domain::query::TransactionQuery::parse(finx_domain::query::RawTransactionQuery {
                count: Some("1000"),
                offset: Some(&all.len().to_string()),
                include_pending: Some("true"),
                ..Default::default()
            })
            .map_err(|e| format!("{e:?}"))?;
        let page = finx
            .list_transactions(&auth, q)
            .await
            .map_err(|e| e.to_string())?;
        let last = page.len() < 1000;
        all.extend(page);
        if last {
            break;
        }
    }
    // Categorisation of every one of them, as reading them all does.
    let started = std::time::Instant::now();
    let categories = finx
        .categorize(&auth, &all)
        .await
        .map_err(|e| e.to_string())?;
    let categorise = started.elapsed();
    let known = categories.iter().filter(|c| c.is_some()).count();
    println!(
        "transactions={} categorised={known} sync_ms={:.1} categorise_ms={:.1} ratio={:.4}",
        all.len(),
        sync.as_secs_f64() * 1e3,
        categorise.as_secs_f64() * 1e3,
        categorise.as_secs_f64() / sync.as_secs_f64().max(1e-9)
    );
    Ok(())
}

/// `syncs-seed STORE N`: see the crate's documentation.
async fn syncs_seed(args: &[String]) -> Result<(), String> {
    use finx_domain::access::{JobKind, SyncJob};
    use finx_domain::ids::{AccessId, SyncId};
    use finx_ports::{BankConnector, BankReply};
    let store_url: String = arg(args, 0, "store")?;
    let n: u64 = arg(args, 1, "accesses")?;
    let (store, finx, bank) = core_on(&store_url).await?;
    let accesses = store.accesses();
    let client = bench_client(&finx).await?;
    // One access through the whole flow: the template of the others.
    let flow = finx
        .create_ongoing_access(
            &client,
            finx_core::OngoingAccessRequest {
                flow: OnetimeAccessRequest {
                    redirect_uri: REDIRECT.into(),
                    ..Default::default()
                },
                user_id: "bench-user".into(),
                access_id: None,
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    through_embedded_bank(&finx, flow.id, "moving").await?;
    let (_, auth) = giro_grant(&finx, &client, flow.id).await?;
    let template = accesses
        .find_access(&auth.access_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the template access is missing")?;
    // Each clone gets a consent of its own at the bank, and a scheduled sync due now.
    let random = finx_system::OsRandom;
    let today = Utc::now().date_naive();
    let request = finx_ports::ConsentRequest {
        psu: finx_ports::PsuContext::default(),
        ibans: Vec::new(),
        recurring: true,
        valid_until: today + TimeDelta::days(89),
        frequency_per_day: 4,
    };
    let back = url::Url::parse(REDIRECT).map_err(|e| e.to_string())?;
    let return_to = finx_ports::ReturnTo {
        ok: back.clone(),
        nok: back,
    };
    // Each clone is held by a live grant of its own (an access no grant holds is not synced).
    let seed = Seed {
        hasher: TokenHasher::new(KEY).map_err(|e| e.to_string())?,
        random: Arc::new(finx_system::OsRandom),
        client: client.id.clone(),
        account: auth.account_ids.first().cloned().ok_or("no account")?,
        access: template.id.clone(),
    };
    let mut held = Vec::new();
    let started = Instant::now();
    for i in 0..n {
        let mut reply = bank
            .begin(&template.institution, &request, &return_to)
            .await
            .map_err(|e| e.to_string())?;
        let (session, consent) = loop {
            match reply {
                BankReply::Done { session, consent } => break (session, consent),
                BankReply::Next { session, step } => {
                    reply = bank
                        .answer(
                            &template.institution,
                            &session,
                            &moving_answer(&step)?,
                            &return_to,
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
        };
        let access = finx_domain::access::Access {
            id: AccessId::derive(&["bench", &std::process::id().to_string(), &i.to_string()]),
            session,
            consent,
            version: 0,
            ..template.clone()
        };
        let now = Utc::now();
        let job = SyncJob::queued(
            SyncId::from_random(random.bytes16()),
            access.id.clone(),
            JobKind::Scheduled,
            now,
            now,
        );
        accesses
            .insert_access(&access, &job)
            .await
            .map_err(|e| e.to_string())?;
        let (mut grant, code, issued, _) = seed.grant()?;
        grant.account_ids = access
            .accounts
            .iter()
            .map(|a| finx_domain::bank::Account::id_for(&access.id, &a.external_id))
            .collect();
        grant.access_id = access.id.clone();
        held.push((grant, code, issued));
        if held.len() == 1_000 || i + 1 == n {
            store.add_grants(&held).await?;
            held.clear();
        }
    }
    println!(
        "seeded {n} accesses in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `syncs-run STORE CONCURRENCY`: see the crate's documentation.
async fn syncs_run(args: &[String]) -> Result<(), String> {
    let store_url: String = arg(args, 0, "store")?;
    let concurrency: usize = arg(args, 1, "concurrency")?;
    let (_store, finx, _bank) = core_on(&store_url).await?;
    let ran = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let first = Arc::new(AtomicU64::new(u64::MAX));
    let last = Arc::new(AtomicU64::new(0));
    let now_ms = || u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (finx, ran, failed, first, last) = (
            finx.clone(),
            ran.clone(),
            failed.clone(),
            first.clone(),
            last.clone(),
        );
        workers.spawn(async move {
            let mut idle = Instant::now();
            while idle.elapsed() < Duration::from_secs(2) {
                let jobs = finx.claim_syncs(1).await.map_err(|e| e.to_string())?;
                if jobs.is_empty() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                first.fetch_min(now_ms(), Ordering::Relaxed);
                for job in &jobs {
                    match finx.run_sync(job).await {
                        Ok(Some(done))
                            if done.status == finx_domain::access::JobStatus::Succeeded =>
                        {
                            ran.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                last.fetch_max(now_ms(), Ordering::Relaxed);
                idle = Instant::now();
            }
            Ok::<_, String>(())
        });
    }
    while let Some(w) = workers.join_next().await {
        w.map_err(|e| e.to_string())??;
    }
    println!(
        "ran {} failed {} first_ms {} last_ms {}",
        ran.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        first.load(Ordering::Relaxed),
        last.load(Ordering::Relaxed)
    );
    Ok(())
}

/// Chooses the giro account of a flow past SCA, completes it and redeems its code: the
/// tokens and what they allow.
async fn giro_grant(
    finx: &Finx,
    client: &finx_ports::Client,
    flow: FlowId,
) -> Result<(finx_core::TokenResponse, finx_core::Authorization), String> {
    finx.choose_accounts(flow, vec!["giro".into()])
        .await
        .map_err(|e| e.to_string())?;
    let url = finx.complete(flow).await.map_err(|e| e.to_string())?;
    let code = url
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .ok_or("no code")?;
    let tokens = finx
        .exchange_code(client, &code, REDIRECT)
        .await
        .map_err(|e| e.to_string())?;
    let auth = finx
        .authorize(tokens.access_token.expose())
        .await
        .map_err(|e| e.to_string())?;
    Ok((tokens, auth))
}
