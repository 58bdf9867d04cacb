//! The finX server binary: reads the configuration, wires the adapters to the core, and
//! serves. Nothing else happens here.
//!
//! Configuration comes from flags, then `FINX_…` environment variables, then an optional
//! TOML file (`--config`), then defaults: `127.0.0.1:8080`, SQLite in `./finx-data/`, the
//! sandbox bank and a demo client.

// A command-line program talks to its user on stdout.
#![allow(clippy::print_stdout)]

mod banks;
mod config;
#[cfg(feature = "sandbox")]
mod sandbox;
#[cfg(not(feature = "sandbox"))]
#[path = "no_sandbox.rs"]
mod sandbox;
mod scheduler;

#[cfg(not(feature = "xs2a"))]
compile_error!(
    "finx-server needs the `xs2a` feature: the XS2A connector is how finX reads any bank, the sandbox's included"
);

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use finx_core::{CoreError, Finx, NewClient, Ports, Settings};
use finx_domain::secret::ClientSecret;
use finx_ports::StoreError;
use finx_store_sql::SqlStore;

use crate::config::{
    BanksCommand, Cli, ClientsCommand, Command, Config, RulesCommand, WebhookCommand,
};

/// mimalloc instead of the system allocator: with glibc's, a heap holding hundreds of
/// thousands of grants made every response's allocations walk fragmented free lists
/// (`malloc_consolidate`, `unlink_chunk`: half the CPU of a transaction page at 400,000
/// grants in memory, profiled with perf), so a page's cost grew with the grants held.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::resolve(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("finx-server: {e}");
            return ExitCode::from(2);
        }
    };
    config::init_logging(&config);
    match run(cli, config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("finx-server: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, config: Config) -> Result<(), String> {
    let options = finx_store_sql::SqlOptions {
        data_key: finx_store_sql::DataKey::from_secret(&config.data_key).map_err(str::to_owned)?,
        ..finx_store_sql::SqlOptions::default()
    };
    let store = Arc::new(
        SqlStore::connect_with(&config.database_url, &options)
            .await
            .map_err(|e| chain(&e))?,
    );
    match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => {
            println!("database migrated ({})", store.kind());
            Ok(())
        }
        Command::Clients { command } => {
            let quiet = Arc::new(finx_ports::NoTelemetry);
            clients(&wire(&config, store, quiet)?.0, command).await
        }
        Command::Banks { command } => banks_command(store.as_ref(), command).await,
        Command::SandboxBank {
            tls_cert,
            tls_key,
            client_ca,
            signature_ca,
        } => sandbox::standalone(&config, tls_cert, tls_key, client_ca, signature_ca).await,
        Command::Serve => serve(config, store).await,
    }
}

/// The core on the configured adapters: the SQL store, the system clock, timer and
/// randomness, and the XS2A connector for the banks of the registry. In sandbox mode the
/// sandbox bank (returned, to be served on its own listener) is one of them: the demo walks
/// the real connector over loopback HTTP.
fn wire(
    config: &Config,
    store: Arc<SqlStore>,
    telemetry: Arc<dyn finx_ports::Telemetry>,
) -> Result<(Finx, Option<sandbox::Bank>), String> {
    let clock = Arc::new(finx_system::SystemClock);
    // Webhooks to loopback over http are for sandbox mode only (a customer's test
    // receiver); production sends https to public addresses only.
    let policy = finx_core::UrlPolicy {
        sandbox: config.sandbox,
    };
    let sandbox = sandbox::in_process(config, clock.clone());
    let connector = finx_bank_xs2a::Xs2aConnector::new(
        store.clone(),
        finx_bank_xs2a::Xs2aConfig {
            timeout: config.bank_timeout,
            qwac_pem: config.qwac_pem.clone(),
            extra_roots_pem: config.bank_roots_pem.clone().into_iter().collect(),
            qseal_pem: config.qseal_pem.clone(),
            ..finx_bank_xs2a::Xs2aConfig::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let ports = Ports {
        clients: store.clone(),
        flows: store.clone(),
        grants: store.clone(),
        data: store.clone(),
        accesses: store.clone(),
        bank: Arc::new(connector),
        clock,
        random: Arc::new(finx_system::OsRandom),
        timer: Arc::new(finx_system::TokioTimer),
        bus: store.clone(),
        telemetry,
        webhooks: store,
        sender: Arc::new(
            finx_webhooks::HttpSender::new(policy, config.webhook_timeout)
                .map_err(|e| format!("webhook sender: {e}"))?,
        ),
    };
    let settings = Settings {
        lifetimes: config.lifetimes,
        hash_key: config.hash_key.as_bytes().to_vec(),
        previous_hash_keys: config
            .previous_hash_keys
            .iter()
            .map(|k| k.as_bytes().to_vec())
            .collect(),
        bank_timeout: config.bank_timeout,
        return_url: config
            .public_url
            .join("widget/callback")
            .map_err(|e| e.to_string())?,
        sync: finx_domain::schedule::SyncPolicy {
            per_day: config.syncs_per_day,
            ..finx_domain::schedule::SyncPolicy::default()
        },
        sync_interval: config.sync_interval,
        sync_lease: config.sync_lease,
        onetime_retention: config.onetime_retention,
        consent_days: 90,
        read_cache: config.read_cache,
        webhooks: finx_core::WebhookSettings {
            policy,
            secret_overlap: config.webhook_secret_overlap,
            ..finx_core::WebhookSettings::default()
        },
    };
    let finx = Finx::new(ports, settings).map_err(|e| e.to_string())?;
    Ok((finx, sandbox))
}

/// `banks import` and `banks list`.
async fn banks_command(store: &SqlStore, command: BanksCommand) -> Result<(), String> {
    use finx_ports::BankRegistry;
    match command {
        BanksCommand::Import { file } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let parsed = banks::parse(&text)?;
            for note in &parsed.notes {
                println!("note: {note}");
            }
            let n = store
                .upsert_banks(&parsed.banks)
                .await
                .map_err(|e| chain(&e))?;
            let total = store.count_banks().await.map_err(|e| chain(&e))?;
            println!(
                "imported {n} banks from {} ({total} in the registry)",
                file.display()
            );
            Ok(())
        }
        BanksCommand::List { search, limit } => {
            let banks = store
                .search_banks(search.as_deref().unwrap_or_default(), limit)
                .await
                .map_err(|e| chain(&e))?;
            for b in banks {
                let approaches: Vec<&str> = b.sca_approaches.iter().map(|a| a.as_xs2a()).collect();
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    b.id,
                    b.name,
                    b.bic.as_deref().unwrap_or("-"),
                    b.bank_code.as_deref().unwrap_or("-"),
                    b.url,
                    approaches.join(","),
                    b.consent_model.as_str()
                );
            }
            Ok(())
        }
    }
}

async fn clients(finx: &Finx, command: ClientsCommand) -> Result<(), String> {
    match command {
        ClientsCommand::Create {
            name,
            redirect_uri,
            scope,
            id,
        } => {
            let new = NewClient {
                id,
                name,
                redirect_uris: redirect_uri,
                scope,
                secret: None,
            };
            let r = finx
                .register_client(new)
                .await
                .map_err(|e| core_error(&e))?;
            println!("client_id:     {}", r.client.id);
            println!("client_secret: {}", r.secret.expose());
            println!("(the secret is shown this once; only its hash is stored)");
            Ok(())
        }
        ClientsCommand::List => {
            for c in finx.list_clients().await.map_err(|e| chain(&e))? {
                let uris: Vec<&str> = c
                    .redirect_uris
                    .iter()
                    .map(finx_domain::values::RedirectUri::as_str)
                    .collect();
                let state = if c.disabled_at.is_some() {
                    "disabled"
                } else {
                    "enabled"
                };
                let key = if c.secret_key_id == finx.hash_key_id() {
                    "key=current".to_owned()
                } else {
                    format!("key={}", c.secret_key_id)
                };
                println!(
                    "{}\t{}\t{}\t{state}\t{key}\t{}",
                    c.id,
                    c.name,
                    c.scope,
                    uris.join(" ")
                );
            }
            Ok(())
        }
        ClientsCommand::Show { client_id } => {
            let id = finx_domain::ids::ClientId::parse(&client_id)
                .map_err(|e| format!("client id: {e}"))?;
            let c = finx
                .find_client(&id)
                .await
                .map_err(|e| chain(&e))?
                .ok_or_else(|| format!("no client {client_id}"))?;
            print_client(finx, &c);
            Ok(())
        }
        ClientsCommand::Update {
            client_id,
            name,
            redirect_uri,
            scope,
        } => {
            let id = finx_domain::ids::ClientId::parse(&client_id)
                .map_err(|e| format!("client id: {e}"))?;
            if name.is_none() && redirect_uri.is_empty() && scope.is_none() {
                return Err("nothing to change: give --name, --redirect-uri or --scope".into());
            }
            let c = finx
                .update_client(
                    &id,
                    finx_core::ClientUpdate {
                        name,
                        redirect_uris: (!redirect_uri.is_empty()).then_some(redirect_uri),
                        scope,
                    },
                )
                .await
                .map_err(|e| core_error(&e))?;
            print_client(finx, &c);
            Ok(())
        }
        ClientsCommand::Disable { client_id } => {
            let c = finx
                .disable_client(&client_id_arg(&client_id)?)
                .await
                .map_err(|e| core_error(&e))?;
            print_client(finx, &c);
            Ok(())
        }
        ClientsCommand::Enable { client_id } => {
            let c = finx
                .enable_client(&client_id_arg(&client_id)?)
                .await
                .map_err(|e| core_error(&e))?;
            print_client(finx, &c);
            Ok(())
        }
        ClientsCommand::Delete { client_id, yes } => {
            if !yes {
                return Err(format!(
                    "deleting {client_id} ends its accesses, grants, tokens, bank data and webhooks and cannot be undone: add --yes"
                ));
            }
            let done = finx
                .delete_client(&client_id_arg(&client_id)?)
                .await
                .map_err(|e| core_error(&e))?;
            println!(
                "deleted {client_id}: {} accesses, {} grants, {} webhook endpoints",
                done.accesses, done.grants, done.webhooks
            );
            Ok(())
        }
        ClientsCommand::RotateSecret {
            client_id,
            overlap_seconds,
        } => {
            let r = finx
                .rotate_client_secret(
                    &client_id_arg(&client_id)?,
                    std::time::Duration::from_secs(overlap_seconds),
                )
                .await
                .map_err(|e| core_error(&e))?;
            println!("client_id:     {}", r.client.id);
            println!("client_secret: {}", r.secret.expose());
            match &r.client.previous_secret {
                Some(p) => println!("(the old secret works until {})", p.until.to_rfc3339()),
                None => println!("(the old secret no longer works)"),
            }
            println!("(the secret is shown this once; only its hash is stored)");
            Ok(())
        }
        ClientsCommand::Rules { command } => rules(finx, command).await,
        ClientsCommand::Webhook { command } => webhook(finx, command).await,
    }
}

/// `clients rules …`.
async fn rules(finx: &Finx, command: RulesCommand) -> Result<(), String> {
    let show = |r: &finx_domain::enrich::CustomerRule| {
        let mut conditions = Vec::new();
        for (k, v) in [
            ("name_contains", &r.name_contains),
            ("purpose_contains", &r.purpose_contains),
            ("creditor_id", &r.creditor_id),
            ("iban", &r.iban),
        ] {
            if let Some(v) = v {
                conditions.push(format!("{k}={v:?}"));
            }
        }
        if let Some(a) = r.min_amount {
            conditions.push(format!("min_amount={a}"));
        }
        if let Some(a) = r.max_amount {
            conditions.push(format!("max_amount={a}"));
        }
        println!("{}\t{}\t{}", r.id, r.category.id, conditions.join(" "));
    };
    match command {
        RulesCommand::List { client_id } => {
            for r in finx
                .category_rules(&client_id_arg(&client_id)?)
                .await
                .map_err(|e| core_error(&e))?
            {
                show(&r);
            }
        }
        RulesCommand::Add {
            client_id,
            category,
            name_contains,
            purpose_contains,
            creditor_id,
            iban,
            min_amount,
            max_amount,
        } => {
            let amount = |name: &str, a: Option<String>| {
                a.map(|a| {
                    a.parse::<rust_decimal::Decimal>()
                        .map_err(|_| format!("{name} must be a decimal number, e.g. -500.00"))
                })
                .transpose()
            };
            let rule = finx
                .add_category_rule(
                    &client_id_arg(&client_id)?,
                    finx_domain::enrich::NewCustomerRule {
                        category,
                        name_contains,
                        purpose_contains,
                        creditor_id,
                        iban,
                        min_amount: amount("--min-amount", min_amount)?,
                        max_amount: amount("--max-amount", max_amount)?,
                    },
                )
                .await
                .map_err(|e| core_error(&e))?;
            show(&rule);
        }
        RulesCommand::Remove { client_id, rule_id } => {
            finx.delete_category_rule(&client_id_arg(&client_id)?, &rule_id)
                .await
                .map_err(|e| core_error(&e))?;
            println!("removed {rule_id}");
        }
    }
    Ok(())
}

fn client_id_arg(id: &str) -> Result<finx_domain::ids::ClientId, String> {
    finx_domain::ids::ClientId::parse(id).map_err(|e| format!("client id: {e}"))
}

/// One client, a field a line (never its secret, which is not stored).
fn print_client(finx: &Finx, c: &finx_ports::Client) {
    println!("client_id:    {}", c.id);
    println!("name:         {}", c.name);
    println!("scope:        {}", c.scope);
    match c.disabled_at {
        Some(t) => println!("state:        disabled since {}", t.to_rfc3339()),
        None => println!("state:        enabled"),
    }
    println!("secret_key:   {}", key_note(finx, &c.secret_key_id));
    if let Some(p) = &c.previous_secret {
        println!(
            "old_secret:   accepted until {} (hash key {})",
            p.until.to_rfc3339(),
            key_note(finx, &p.key_id)
        );
    }
    println!("created_at:   {}", c.created_at.to_rfc3339());
    for u in &c.redirect_uris {
        println!("redirect_uri: {}", u.as_str());
    }
}

/// A hash key id, and whether it is the current key: a secret under another key stops
/// working when that key is dropped from `--previous-hash-keys`.
fn key_note(finx: &Finx, id: &str) -> String {
    if id == finx.hash_key_id() {
        format!("{id} (current hash key)")
    } else if id.is_empty() {
        "unrecorded (hashed before key ids; authenticate once to record it)".into()
    } else {
        format!("{id} (a previous hash key: authenticate once to move to the current key)")
    }
}

/// `clients webhook …`.
async fn webhook(finx: &Finx, command: WebhookCommand) -> Result<(), String> {
    let show_secret = |e: &finx_domain::webhook::Endpoint| {
        println!("endpoint_id: {}", e.id);
        println!("url:         {}", e.url.as_str());
        println!("secret:      {}", e.secret.expose());
        println!("(the secret is shown this once; finX keeps it sealed)");
    };
    match command {
        WebhookCommand::Add { client_id, url } => {
            let e = finx
                .add_webhook(&client_id, &url)
                .await
                .map_err(|e| core_error(&e))?;
            show_secret(&e);
        }
        WebhookCommand::List { client_id } => {
            for e in finx
                .list_webhooks(&client_id)
                .await
                .map_err(|e| core_error(&e))?
            {
                let state = e
                    .disabled_at
                    .map_or_else(|| "enabled".to_owned(), |t| format!("disabled since {t}"));
                let success = e.last_success_at.map_or_else(
                    || "never delivered".to_owned(),
                    |t| format!("last delivered {t}"),
                );
                println!("{}\t{state}\t{success}\t{}", e.id, e.url.as_str());
            }
        }
        WebhookCommand::Remove {
            client_id,
            endpoint_id,
        } => {
            finx.remove_webhook(&client_id, &endpoint_id)
                .await
                .map_err(|e| core_error(&e))?;
            println!("removed {endpoint_id}");
        }
        WebhookCommand::RotateSecret {
            client_id,
            endpoint_id,
        } => {
            let e = finx
                .rotate_webhook_secret(&client_id, &endpoint_id)
                .await
                .map_err(|e| core_error(&e))?;
            show_secret(&e);
            if let Some((_, until)) = &e.previous {
                println!("(the previous secret signs too until {until})");
            }
        }
        WebhookCommand::Enable {
            client_id,
            endpoint_id,
        } => {
            finx.enable_webhook(&client_id, &endpoint_id)
                .await
                .map_err(|e| core_error(&e))?;
            println!("enabled {endpoint_id}");
        }
        WebhookCommand::Log {
            client_id,
            endpoint_id,
            limit,
        } => {
            for a in finx
                .webhook_log(&client_id, &endpoint_id, limit)
                .await
                .map_err(|e| core_error(&e))?
            {
                println!(
                    "{}\t{}\t{}\tattempt {}\t{}\t{} ms\t{}",
                    a.at,
                    a.event_id,
                    a.event_type,
                    a.attempt,
                    a.status.map_or_else(|| "-".to_owned(), |s| s.to_string()),
                    a.millis,
                    a.error.as_deref().unwrap_or("ok"),
                );
            }
        }
    }
    Ok(())
}

/// Makes sure the sandbox's demo client exists with the configured secret.
async fn demo_client(finx: &Finx, config: &Config) -> Result<String, String> {
    let redirect = config
        .public_url
        .join("demo/callback")
        .map_err(|e| e.to_string())?
        .to_string();
    let secret =
        ClientSecret::from_presented(&config.demo_client_secret).map_err(|e| e.to_string())?;
    let uris = vec![redirect.clone(), "http://127.0.0.1/callback".to_owned()];
    let new = NewClient {
        id: Some(config::DEMO_CLIENT_ID.into()),
        name: "finX demo client".into(),
        redirect_uris: uris.clone(),
        scope: None,
        secret: Some(secret),
    };
    match finx.register_client(new).await {
        Ok(_) => Ok(redirect),
        Err(CoreError::Store(StoreError::Conflict(_))) => {
            // Registered by an earlier start, maybe under another public URL: its redirect
            // URIs follow this one.
            let id = finx_domain::ids::ClientId::parse(config::DEMO_CLIENT_ID)
                .map_err(|e| e.to_string())?;
            finx.update_client(
                &id,
                finx_core::ClientUpdate {
                    redirect_uris: Some(uris),
                    ..finx_core::ClientUpdate::default()
                },
            )
            .await
            .map_err(|e| core_error(&e))?;
            if finx
                .authenticate_client(config::DEMO_CLIENT_ID, &config.demo_client_secret)
                .await
                .is_err()
            {
                tracing::warn!(
                    "the demo client exists with another secret; the printed secret will not work"
                );
            }
            Ok(redirect)
        }
        Err(e) => Err(core_error(&e)),
    }
}

async fn serve(config: Config, store: Arc<SqlStore>) -> Result<(), String> {
    let metrics = Arc::new(finx_metrics::Prometheus::new());
    let (finx, sandbox) = wire(&config, store.clone(), metrics.clone())?;
    if let Some(addr) = config.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen for metrics on {addr}: {e}"))?;
        let app = finx_metrics::router(metrics.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "the metrics listener stopped");
            }
        });
        // The queues and the pool, sampled for the scrapes.
        let sampled = store.clone();
        let into = metrics.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                sample(&sampled, into.as_ref()).await;
            }
        });
    }
    if config.sandbox {
        sandbox::start(&config, &store, sandbox).await?;
    } else {
        use finx_ports::BankRegistry;
        if store.count_banks().await.map_err(|e| chain(&e))? == 0 {
            return Err(
                "production mode needs a bank registry: run `finx-server banks import FILE` first"
                    .into(),
            );
        }
    }
    let redirect = if config.sandbox {
        Some(demo_client(&finx, &config).await?)
    } else {
        None
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let http = finx_http::HttpConfig {
        public_url: config.public_url.clone(),
        link_key: finx_http::LinkKey::with_previous(
            config.link_key.as_bytes().to_vec(),
            config
                .previous_link_keys
                .iter()
                .map(|k| k.as_bytes().to_vec())
                .collect(),
        ),
        demo_client: config.sandbox.then(|| finx_http::DemoClient {
            id: config::DEMO_CLIENT_ID.to_owned(),
            secret: config.demo_client_secret.clone(),
        }),
        limits: finx_http::limit::RateLimits::default(),
        trusted_proxies: config.trusted_proxies.clone(),
        completion_budget: config.completion_budget(),
        render_cache_bytes: config.render_cache_bytes,
    };
    let state = finx_http::AppState::new(finx.clone(), http);
    let fetches = state.tasks.clone();
    let draining = state.clone();
    let router = finx_http::router(state);
    banner(&config, redirect.as_deref(), &store);

    // Other instances' writes, heard for the read caches (PostgreSQL; nothing on SQLite).
    let listening = finx.clone();
    tokio::spawn(async move { listening.run_invalidation_listener().await });

    // The cleanup job: expired codes, tokens and flows go; used refresh tokens stay until
    // they expire, so a replay is still caught.
    let cleanup = finx.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(600));
        loop {
            every.tick().await;
            match cleanup.purge_expired().await {
                Ok(r) => tracing::info!(
                    grants = r.grants,
                    accounts = r.accounts,
                    codes = r.codes,
                    access = r.access_tokens,
                    refresh = r.refresh_tokens,
                    flows = r.flows,
                    accesses = r.accesses,
                    webhooks = r.webhooks,
                    uploads = r.uploads,
                    "purged expired records"
                ),
                Err(e) => tracing::warn!(error = %e, "purge failed"),
            }
        }
    });

    // The stale-sync job: a data fetch still running long past its budget belongs to an
    // instance that died; its flow is failed and what it wrote deleted.
    let sweeper = finx.clone();
    // A fetch older than its budget and a margin has no instance running it any more.
    let stale_after = chrono::TimeDelta::from_std(config.completion_budget())
        .unwrap_or(chrono::TimeDelta::MAX)
        + chrono::TimeDelta::minutes(1);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(30));
        loop {
            every.tick().await;
            let cutoff = sweeper.now() - stale_after;
            match sweeper.fail_stale_syncs(cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(flows = n, "failed stale data fetches"),
                Err(e) => tracing::warn!(error = %e, "stale-sync job failed"),
            }
        }
    });

    let grace = config.shutdown_grace;
    // The sync runner of ongoing accesses, stopped with the server.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(scheduler::run(
        finx.clone(),
        config.sync_concurrency,
        grace,
        stopped,
    ));
    let webhooks = tokio::spawn(scheduler::run_webhooks(
        finx.clone(),
        grace,
        stop.subscribe(),
    ));
    let drain = config.shutdown_drain;
    let shutdown = async move {
        shutdown_signal().await;
        // Readiness fails at once and the runners stop claiming; the listener stays open
        // for the drain, so a load balancer stops sending before connections are refused.
        draining.begin_drain();
        let _ = stop.send(true);
        if !drain.is_zero() {
            tracing::info!(
                seconds = drain.as_secs(),
                "draining: /readyz fails, requests are still answered"
            );
            tokio::time::sleep(drain).await;
        }
    };
    finx_http::serve(listener, router, shutdown, grace, config.timeouts)
        .await
        .map_err(|e| e.to_string())?;
    if runner.await.is_err() {
        tracing::warn!("the sync runner ended abnormally");
    }
    if webhooks.await.is_err() {
        tracing::warn!("the webhook runner ended abnormally");
    }
    // Data fetches in progress finish, within the grace period; one cut off is failed by
    // the stale-sync job of another instance (or this one, after a restart).
    fetches.close();
    if tokio::time::timeout(grace, fetches.wait()).await.is_err() {
        tracing::warn!(
            fetches = fetches.len(),
            "data fetches still running at shutdown; left to the stale-sync job"
        );
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Samples what the metrics show between events: the queues' depths and the pool's use.
async fn sample(store: &SqlStore, telemetry: &dyn finx_ports::Telemetry) {
    let (open, idle, max) = store.pool_stats();
    telemetry.db_pool(open, idle, max);
    match store.queue_depths(chrono::Utc::now()).await {
        Ok((syncs, webhooks)) => {
            telemetry.jobs_queued("sync", syncs);
            telemetry.jobs_queued("webhook", webhooks);
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the queues' depths"),
    }
}

fn banner(config: &Config, redirect: Option<&str>, store: &SqlStore) {
    println!(
        "finX listening on http://{} ({} store, {} mode)",
        config.listen,
        store.kind(),
        if config.sandbox {
            "sandbox"
        } else {
            "production"
        }
    );
    let Some(redirect) = redirect else { return };
    let base = config.public_url.as_str().trim_end_matches('/');
    println!();
    println!("demo client");
    println!("  client_id:     {}", config::DEMO_CLIENT_ID);
    println!("  client_secret: {}", config.demo_client_secret);
    println!("  redirect_uri:  {redirect}");
    println!();
    println!("step 1, create a widget link:");
    println!(
        "  curl -s -u {}:{} -H 'Content-Type: application/json' \\\n    -d '{{\"redirect_uri\":\"{redirect}\",\"state\":\"demo\"}}' \\\n    {base}/onetime/access",
        config::DEMO_CLIENT_ID,
        config.demo_client_secret
    );
    println!();
    println!("sandbox bank: log in with demo / demo, TAN 123456");
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(c) = source {
        s.push_str(": ");
        s.push_str(&c.to_string());
        source = c.source();
    }
    s
}

fn core_error(e: &CoreError) -> String {
    chain(e)
}
