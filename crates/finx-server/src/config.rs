//! Configuration: flags over `FINX_…` environment variables over a TOML file over defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use finx_domain::token::Lifetimes;
use serde::Deserialize;
use url::Url;

/// The sandbox demo client's id.
pub(crate) const DEMO_CLIENT_ID: &str = "finx-demo";

/// Keys used when none is configured. Fine for the sandbox; refused in production.
const SANDBOX_HASH_KEY: &str = "finx-sandbox-hash-key-not-for-production-use";
const SANDBOX_LINK_KEY: &str = "finx-sandbox-link-key-not-for-production-use";
const SANDBOX_DEMO_SECRET: &str = "fxs_demo-secret-for-the-sandbox";

/// The version and the adapters built in (`finx-server --version`), e.g.
/// `0.1.0 (sqlite postgres sandbox xs2a)`.
pub(crate) fn version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| {
        let built: Vec<&str> = [
            ("sqlite", cfg!(feature = "sqlite")),
            ("postgres", cfg!(feature = "postgres")),
            ("sandbox", cfg!(feature = "sandbox")),
            ("xs2a", cfg!(feature = "xs2a")),
        ]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect();
        format!("{} ({})", env!("CARGO_PKG_VERSION"), built.join(" "))
    })
}

/// The finX server.
#[derive(Debug, Parser)]
#[command(
    name = "finx-server",
    version = version(),
    about = "The finX account-information API server"
)]
pub(crate) struct Cli {
    /// A TOML file with any of the settings below (flags and FINX_… variables win).
    #[arg(long, env = "FINX_CONFIG", global = true)]
    pub(crate) config: Option<PathBuf>,
    /// `sqlite://PATH` (default `sqlite://finx-data/finx.db`) or `postgres://…`.
    #[arg(long, env = "FINX_DATABASE_URL", global = true)]
    pub(crate) database_url: Option<String>,
    /// `sandbox` (default: sandbox bank, demo client, built-in keys) or `production`.
    #[arg(long, env = "FINX_MODE", global = true)]
    pub(crate) mode: Option<String>,
    /// Key for the keyed hashes of tokens and secrets (32+ characters).
    #[arg(long, env = "FINX_HASH_KEY", global = true, hide_env_values = true)]
    pub(crate) hash_key: Option<String>,
    /// Hash keys this one replaced, comma-separated, newest first: tokens hashed under them
    /// work until they expire, and client secrets are hashed again under the current key
    /// when next presented. Drop one when `clients list` shows no secret under it and the
    /// longest token lifetime has passed.
    #[arg(
        long,
        env = "FINX_PREVIOUS_HASH_KEYS",
        global = true,
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub(crate) previous_hash_keys: Vec<String>,
    /// Key that signs widget links (32+ characters).
    #[arg(long, env = "FINX_LINK_KEY", global = true, hide_env_values = true)]
    pub(crate) link_key: Option<String>,
    /// Link keys this one replaced, comma-separated: links signed under them open until
    /// they expire (an hour at most).
    #[arg(
        long,
        env = "FINX_PREVIOUS_LINK_KEYS",
        global = true,
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub(crate) previous_link_keys: Vec<String>,
    /// Key that encrypts bank session handles at rest (32+ characters; AES-256-GCM).
    #[arg(long, env = "FINX_DATA_KEY", global = true, hide_env_values = true)]
    pub(crate) data_key: Option<String>,
    /// `text` (default) or `json` logs.
    #[arg(long, env = "FINX_LOG_FORMAT", global = true)]
    pub(crate) log_format: Option<String>,
    /// What to do (default: serve).
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    #[command(flatten)]
    pub(crate) serve: ServeArgs,
}

/// Settings of `serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, env = "FINX_LISTEN", global = true)]
    pub(crate) listen: Option<SocketAddr>,
    /// The public base URL widget links are built on (default http://LISTEN/).
    #[arg(long, env = "FINX_PUBLIC_URL", global = true)]
    pub(crate) public_url: Option<Url>,
    /// The sandbox demo client's secret.
    #[arg(
        long,
        env = "FINX_DEMO_CLIENT_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub(crate) demo_client_secret: Option<String>,
    /// Access token lifetime in seconds (default 3600).
    #[arg(long, env = "FINX_ACCESS_TOKEN_SECONDS", global = true)]
    pub(crate) access_token_seconds: Option<i64>,
    /// The longest one bank call may take, in seconds (default 30); past it the bank is
    /// unavailable to the end user.
    #[arg(long, env = "FINX_BANK_TIMEOUT_SECONDS", global = true)]
    pub(crate) bank_timeout_seconds: Option<u64>,
    /// For tests: scheduled syncs of ongoing accesses every this many seconds instead of at
    /// the day's slots (the daily allowance still holds). Default off.
    #[arg(long = "sync-interval", env = "FINX_SYNC_INTERVAL", global = true)]
    pub(crate) sync_interval: Option<u64>,
    /// Unattended syncs a day per ongoing access, 1 to 4 (default 4; never more than the
    /// consent allows).
    #[arg(long, env = "FINX_SYNCS_PER_DAY", global = true)]
    pub(crate) syncs_per_day: Option<u16>,
    /// How many syncs one instance runs at once (default 4).
    #[arg(long, env = "FINX_SYNC_CONCURRENCY", global = true)]
    pub(crate) sync_concurrency: Option<u32>,
    /// MiB of rendered transaction JSON kept for reuse (default 32; 0 keeps none).
    #[arg(long, env = "FINX_RENDER_CACHE_MB", global = true)]
    pub(crate) render_cache_mb: Option<u64>,
    /// Milliseconds a validated access token or a rendered page of transactions may be
    /// served from memory at most (default 1000; 0 turns these caches off). Writes end the
    /// entries they make stale at once, on every instance of a PostgreSQL database.
    #[arg(long, env = "FINX_READ_CACHE_MS", global = true)]
    pub(crate) read_cache_ms: Option<u64>,
    /// Seconds a runner holds a claimed sync before another instance may take it over
    /// (default 300).
    #[arg(long, env = "FINX_SYNC_LEASE_SECONDS", global = true)]
    pub(crate) sync_lease_seconds: Option<u64>,
    /// Seconds one-time data and its grant are kept after the flow (default 3600).
    #[arg(
        long = "onetime-retention",
        env = "FINX_ONETIME_RETENTION",
        global = true
    )]
    pub(crate) onetime_retention: Option<u64>,
    /// Seconds running requests, data fetches and syncs get to finish at shutdown (default
    /// 20); syncs still running then go back to the queue.
    #[arg(long, env = "FINX_SHUTDOWN_GRACE_SECONDS", global = true)]
    pub(crate) shutdown_grace_seconds: Option<u64>,
    /// Seconds between the start of shutdown and closing the listener, while `/readyz`
    /// fails and requests are still answered, so that a load balancer stops sending first
    /// (default 5 in production, 0 in sandbox mode).
    #[arg(long, env = "FINX_SHUTDOWN_DRAIN_SECONDS", global = true)]
    pub(crate) shutdown_drain_seconds: Option<u64>,
    /// Where Prometheus scrapes `GET /metrics` (default 127.0.0.1:9464, never the API's
    /// port); `off` serves no metrics.
    #[arg(long, env = "FINX_METRICS_LISTEN", global = true)]
    pub(crate) metrics_listen: Option<String>,
    /// The longest one webhook POST may take, in seconds (default 10).
    #[arg(long, env = "FINX_WEBHOOK_TIMEOUT_SECONDS", global = true)]
    pub(crate) webhook_timeout_seconds: Option<u64>,
    /// Hours a rotated-out webhook secret keeps signing next to the new one (default 24).
    #[arg(long, env = "FINX_WEBHOOK_SECRET_OVERLAP_HOURS", global = true)]
    pub(crate) webhook_secret_overlap_hours: Option<u64>,
    /// Sandbox mode: use the sandbox bank already running at this URL (`finx-server
    /// sandbox-bank`) instead of starting one, so several instances share one bank.
    #[arg(long, env = "FINX_SANDBOX_BANK_URL", global = true)]
    pub(crate) sandbox_bank_url: Option<Url>,
    /// A grant's absolute lifetime in days, however often it is refreshed (default 180).
    #[arg(long, env = "FINX_GRANT_LIFETIME_DAYS", global = true)]
    pub(crate) grant_lifetime_days: Option<i64>,
    /// Reverse proxies (comma-separated CIDRs, default none) whose `X-Forwarded-For` or
    /// `Forwarded` header gives the client address for rate limits.
    #[arg(
        long,
        env = "FINX_TRUSTED_PROXIES",
        global = true,
        value_delimiter = ','
    )]
    pub(crate) trusted_proxies: Option<Vec<ipnet::IpNet>>,
    /// The longest a request may take before it is answered 503, in seconds (default 75).
    #[arg(long, env = "FINX_REQUEST_TIMEOUT_SECONDS", global = true)]
    pub(crate) request_timeout_seconds: Option<u64>,
    /// How long a client may take to send a request's headers, in seconds (default 10).
    #[arg(long, env = "FINX_HEADER_READ_TIMEOUT_SECONDS", global = true)]
    pub(crate) header_read_timeout_seconds: Option<u64>,
    /// Where the sandbox bank listens (sandbox mode and `sandbox-bank`; default
    /// 127.0.0.1:8081): its XS2A API under `/sandbox/xs2a/` and its own pages.
    #[arg(long, env = "FINX_SANDBOX_LISTEN", global = true)]
    pub(crate) sandbox_listen: Option<SocketAddr>,
    /// The sandbox bank's public base URL (default http://SANDBOX_LISTEN/).
    #[arg(long, env = "FINX_SANDBOX_PUBLIC_URL", global = true)]
    pub(crate) sandbox_public_url: Option<Url>,
    /// The operator's eIDAS QWAC for mutual TLS with banks: one PEM file with the
    /// certificate chain and the private key, or a PKCS#12 file (`.p12`, `.pfx`) with
    /// `--certificate-password`. Required in production mode.
    #[arg(long, env = "FINX_QWAC", global = true)]
    pub(crate) qwac: Option<PathBuf>,
    /// The password of PKCS#12 files given as `--qwac` or `--qseal` (default empty).
    #[arg(
        long,
        env = "FINX_CERTIFICATE_PASSWORD",
        global = true,
        hide_env_values = true
    )]
    pub(crate) certificate_password: Option<String>,
    /// Extra root certificates (PEM) to trust for banks, e.g. a test authority.
    #[arg(long, env = "FINX_BANK_ROOTS", global = true)]
    pub(crate) bank_roots: Option<PathBuf>,
    /// The operator's eIDAS QSealC (PEM: certificate and PKCS#8 key), to sign requests to
    /// the banks that require it (registry quirk `signing-required`).
    #[arg(long, env = "FINX_QSEAL", global = true)]
    pub(crate) qseal: Option<PathBuf>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Manage customers (OAuth clients).
    Clients {
        #[command(subcommand)]
        command: ClientsCommand,
    },
    /// Manage the bank registry.
    Banks {
        #[command(subcommand)]
        command: BanksCommand,
    },
    /// Run the sandbox bank alone (its XS2A API and its pages), for integration tests.
    SandboxBank {
        /// Serve over TLS with this certificate chain (PEM); plain HTTP without it.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The TLS private key (PEM).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Demand a client certificate (the TPP's QWAC) issued by one of these authorities
        /// (PEM); needs TLS.
        #[arg(long, requires = "tls_cert")]
        client_ca: Option<PathBuf>,
        /// Demand signed requests whose QSealC this authority issued (PEM).
        #[arg(long)]
        signature_ca: Option<PathBuf>,
    },
}

/// `banks …`.
#[derive(Debug, Subcommand)]
pub(crate) enum BanksCommand {
    /// Insert or update banks from a TOML file (`[[bank]]` tables) or an adorsys CSV.
    Import {
        /// The file.
        file: PathBuf,
    },
    /// List banks, by name, BIC or bank code.
    List {
        /// Only banks whose name contains this, or whose BIC or bank code is this.
        #[arg(long)]
        search: Option<String>,
        /// At most this many (default 50).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

/// `clients …`.
#[derive(Debug, Subcommand)]
pub(crate) enum ClientsCommand {
    /// Register a client; prints its secret once.
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// An allowed redirect URI (repeat for more).
        #[arg(long = "redirect-uri", required = true)]
        redirect_uri: Vec<String>,
        /// The most its grants may read (default: everything).
        #[arg(long)]
        scope: Option<String>,
        /// A chosen id (default: random).
        #[arg(long)]
        id: Option<String>,
    },
    /// List clients.
    List,
    /// Show one client: id, name, scope, state, secret (its hash key, a rotation's
    /// overlap), registration time and redirect URIs.
    Show {
        /// The client.
        client_id: String,
    },
    /// Change a client's name, redirect URIs (the given ones replace the old) or scope;
    /// takes effect at once on every instance.
    Update {
        /// The client.
        client_id: String,
        /// New display name.
        #[arg(long)]
        name: Option<String>,
        /// An allowed redirect URI (repeat for more); replaces the current list.
        #[arg(long = "redirect-uri")]
        redirect_uri: Vec<String>,
        /// The most its grants may read from now on (grants given keep theirs).
        #[arg(long)]
        scope: Option<String>,
    },
    /// Disable a client: it cannot authenticate and its tokens read nothing, at once on
    /// every instance; its grants, accesses and data are kept for `enable`.
    Disable {
        /// The client.
        client_id: String,
    },
    /// Enable a disabled client again.
    Enable {
        /// The client.
        client_id: String,
    },
    /// Delete a client and everything of it: its accesses (consents ended at the banks),
    /// grants, tokens, bank data and webhook endpoints.
    Delete {
        /// The client.
        client_id: String,
        /// Confirms the deletion (it cannot be undone).
        #[arg(long)]
        yes: bool,
    },
    /// Give a client a new secret (printed once); the old one keeps working for the
    /// overlap, so the customer can deploy the new one without an outage.
    RotateSecret {
        /// The client.
        client_id: String,
        /// Seconds the old secret stays accepted (default 86400, a day; 0 ends it now; at
        /// most 30 days).
        #[arg(long, default_value_t = 86_400)]
        overlap_seconds: u64,
    },
    /// Manage a client's categorisation rules (they win over the built-in ones).
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Manage a client's webhook endpoints.
    Webhook {
        #[command(subcommand)]
        command: WebhookCommand,
    },
}

/// `clients rules …`.
#[derive(Debug, Subcommand)]
pub(crate) enum RulesCommand {
    /// A client's rules, in the order they apply.
    List {
        /// The client.
        client_id: String,
    },
    /// Add a rule after the client's others; every condition given must hold.
    Add {
        /// The client.
        client_id: String,
        /// The category it gives (docs/categories.md), e.g. `family.childcare`.
        #[arg(long)]
        category: String,
        /// Words the counterparty's name contains.
        #[arg(long)]
        name_contains: Option<String>,
        /// Words the purpose contains.
        #[arg(long)]
        purpose_contains: Option<String>,
        /// The SEPA creditor id.
        #[arg(long)]
        creditor_id: Option<String>,
        /// The counterparty's IBAN.
        #[arg(long)]
        iban: Option<String>,
        /// The least amount (negative for money going out), e.g. `-500.00`.
        #[arg(long, allow_hyphen_values = true)]
        min_amount: Option<String>,
        /// The greatest amount.
        #[arg(long, allow_hyphen_values = true)]
        max_amount: Option<String>,
    },
    /// Delete a rule.
    Remove {
        /// The client.
        client_id: String,
        /// The rule (`R…`).
        rule_id: String,
    },
}

/// `clients webhook …`.
#[derive(Debug, Subcommand)]
pub(crate) enum WebhookCommand {
    /// Register an endpoint (https; http to loopback in sandbox mode only); prints its
    /// signing secret once.
    Add {
        /// The client.
        client_id: String,
        /// Where events are POSTed.
        url: String,
    },
    /// List a client's endpoints: id, state (enabled, or disabled since when), last
    /// success, URL.
    List {
        /// The client.
        client_id: String,
    },
    /// Remove an endpoint with its pending deliveries and log.
    Remove {
        /// The client.
        client_id: String,
        /// The endpoint.
        endpoint_id: String,
    },
    /// Give an endpoint a new secret (printed once); the old one keeps signing for the
    /// overlap (`--webhook-secret-overlap-hours`).
    RotateSecret {
        /// The client.
        client_id: String,
        /// The endpoint.
        endpoint_id: String,
    },
    /// Enable an endpoint that was disabled for failing.
    Enable {
        /// The client.
        client_id: String,
        /// The endpoint.
        endpoint_id: String,
    },
    /// Show an endpoint's latest delivery attempts, newest first.
    Log {
        /// The client.
        client_id: String,
        /// The endpoint.
        endpoint_id: String,
        /// At most this many (default 50).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

/// The TOML file: the same settings, by the same names with underscores.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    database_url: Option<String>,
    mode: Option<String>,
    hash_key: Option<String>,
    previous_hash_keys: Option<Vec<String>>,
    link_key: Option<String>,
    previous_link_keys: Option<Vec<String>>,
    data_key: Option<String>,
    log_format: Option<String>,
    listen: Option<SocketAddr>,
    public_url: Option<Url>,
    demo_client_secret: Option<String>,
    access_token_seconds: Option<i64>,
    grant_lifetime_days: Option<i64>,
    bank_timeout_seconds: Option<u64>,
    request_timeout_seconds: Option<u64>,
    header_read_timeout_seconds: Option<u64>,
    trusted_proxies: Option<Vec<ipnet::IpNet>>,
    sandbox_listen: Option<SocketAddr>,
    sandbox_public_url: Option<Url>,
    qwac: Option<PathBuf>,
    bank_roots: Option<PathBuf>,
    qseal: Option<PathBuf>,
    certificate_password: Option<String>,
    sync_interval: Option<u64>,
    syncs_per_day: Option<u16>,
    sync_concurrency: Option<u32>,
    render_cache_mb: Option<u64>,
    read_cache_ms: Option<u64>,
    sync_lease_seconds: Option<u64>,
    webhook_timeout_seconds: Option<u64>,
    webhook_secret_overlap_hours: Option<u64>,
    onetime_retention: Option<u64>,
    sandbox_bank_url: Option<Url>,
    shutdown_grace_seconds: Option<u64>,
    shutdown_drain_seconds: Option<u64>,
    metrics_listen: Option<String>,
}

/// The resolved configuration. Its `Debug` hides the keys and the demo secret.
pub(crate) struct Config {
    pub(crate) database_url: String,
    pub(crate) sandbox: bool,
    pub(crate) hash_key: String,
    pub(crate) previous_hash_keys: Vec<String>,
    pub(crate) link_key: String,
    pub(crate) previous_link_keys: Vec<String>,
    pub(crate) data_key: String,
    pub(crate) json_logs: bool,
    pub(crate) listen: SocketAddr,
    pub(crate) public_url: Url,
    pub(crate) demo_client_secret: String,
    pub(crate) lifetimes: Lifetimes,
    pub(crate) bank_timeout: std::time::Duration,
    pub(crate) timeouts: finx_http::ServerTimeouts,
    pub(crate) trusted_proxies: Vec<ipnet::IpNet>,
    /// Where the sandbox bank listens.
    #[cfg_attr(not(feature = "sandbox"), allow(dead_code))]
    pub(crate) sandbox_listen: SocketAddr,
    /// The sandbox bank's public base URL.
    #[cfg_attr(not(feature = "sandbox"), allow(dead_code))]
    pub(crate) sandbox_public_url: Url,
    /// The QWAC (PEM: chain and key).
    pub(crate) qwac_pem: Option<Vec<u8>>,
    /// Extra bank roots (PEM).
    pub(crate) bank_roots_pem: Option<Vec<u8>>,
    /// The QSealC (PEM: certificate and key).
    pub(crate) qseal_pem: Option<Vec<u8>>,
    /// Scheduled syncs every this long instead of at slots (tests).
    pub(crate) sync_interval: Option<std::time::Duration>,
    /// Unattended syncs a day per access.
    pub(crate) syncs_per_day: u16,
    /// Syncs run at once by this instance.
    pub(crate) sync_concurrency: u32,
    /// Bytes of rendered transaction JSON kept for reuse.
    pub(crate) render_cache_bytes: u64,
    /// How long a token or page may be served from memory at most.
    pub(crate) read_cache: std::time::Duration,
    /// How long a claimed sync is held.
    pub(crate) sync_lease: std::time::Duration,
    /// How long one-time data is kept.
    pub(crate) onetime_retention: std::time::Duration,
    /// An external sandbox bank to use instead of starting one.
    #[cfg_attr(not(feature = "sandbox"), allow(dead_code))]
    pub(crate) sandbox_bank_url: Option<Url>,
    /// How long shutdown waits for work in progress.
    pub(crate) shutdown_grace: std::time::Duration,
    /// How long readiness fails before the listener closes at shutdown.
    pub(crate) shutdown_drain: std::time::Duration,
    /// Where the metrics are served; `None`: nowhere.
    pub(crate) metrics_listen: Option<SocketAddr>,
    /// The longest one webhook POST may take.
    pub(crate) webhook_timeout: std::time::Duration,
    /// How long a rotated-out webhook secret keeps signing.
    pub(crate) webhook_secret_overlap: std::time::Duration,
}

impl Config {
    /// The longest a flow's data fetch may run: ten bank calls at the bank timeout, at
    /// least five minutes.
    pub(crate) fn completion_budget(&self) -> std::time::Duration {
        (self.bank_timeout * 10).max(std::time::Duration::from_secs(300))
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &"[set]")
            .field("sandbox", &self.sandbox)
            .field("listen", &self.listen)
            .field("public_url", &self.public_url.as_str())
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Layers the sources and checks the result.
    pub(crate) fn resolve(cli: &Cli) -> Result<Self, String> {
        let file: FileConfig = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let mode = cli
            .mode
            .clone()
            .or(file.mode)
            .unwrap_or_else(|| "sandbox".into());
        let sandbox = match mode.as_str() {
            #[cfg(feature = "sandbox")]
            "sandbox" => true,
            #[cfg(not(feature = "sandbox"))]
            "sandbox" => return Err(crate::sandbox::MISSING.into()),
            "production" => false,
            other => return Err(format!("mode must be sandbox or production, not {other:?}")),
        };
        let hash_key = cli
            .hash_key
            .clone()
            .or(file.hash_key)
            .unwrap_or_else(|| SANDBOX_HASH_KEY.into());
        let link_key = cli
            .link_key
            .clone()
            .or(file.link_key)
            .unwrap_or_else(|| SANDBOX_LINK_KEY.into());
        let data_key = cli
            .data_key
            .clone()
            .or(file.data_key)
            .unwrap_or_else(|| finx_store_sql::DataKey::SANDBOX.into());
        for (name, key, default) in [
            ("hash key", &hash_key, SANDBOX_HASH_KEY),
            ("link key", &link_key, SANDBOX_LINK_KEY),
            ("data key", &data_key, finx_store_sql::DataKey::SANDBOX),
        ] {
            if key.len() < 32 {
                return Err(format!("the {name} must be at least 32 characters"));
            }
            if !sandbox && key == default {
                return Err(format!(
                    "refusing to run in production mode with the built-in {name}: set FINX_{} to a secret of 32+ random characters",
                    name.replace(' ', "_").to_uppercase()
                ));
            }
        }
        let pick = |flag: &[String], file: Option<Vec<String>>| {
            if flag.is_empty() {
                file.unwrap_or_default()
            } else {
                flag.to_vec()
            }
        };
        let previous_hash_keys = pick(&cli.previous_hash_keys, file.previous_hash_keys);
        let previous_link_keys = pick(&cli.previous_link_keys, file.previous_link_keys);
        for (name, current, previous) in [
            ("hash", &hash_key, &previous_hash_keys),
            ("link", &link_key, &previous_link_keys),
        ] {
            for (i, key) in previous.iter().enumerate() {
                if key.len() < 32 {
                    return Err(format!(
                        "previous {name} key {} must be at least 32 characters",
                        i + 1
                    ));
                }
                if key == current || previous[..i].contains(key) {
                    return Err(format!(
                        "previous {name} key {} repeats a key already given",
                        i + 1
                    ));
                }
            }
        }
        let read = |p: &PathBuf, what: &str| {
            std::fs::read(p).map_err(|e| format!("cannot read the {what} {}: {e}", p.display()))
        };
        let password = cli
            .serve
            .certificate_password
            .clone()
            .or(file.certificate_password)
            .unwrap_or_default();
        // A PEM file, or else PKCS#12 opened with the password.
        let identity = |p: &PathBuf, what: &str| -> Result<Vec<u8>, String> {
            let bytes = read(p, what)?;
            if bytes.starts_with(b"-----BEGIN") {
                return Ok(bytes);
            }
            finx_bank_xs2a::signing::pem_from_pkcs12(&bytes, &password)
                .map_err(|e| format!("the {what} {}: {e}", p.display()))
        };
        let qwac_pem = match cli.serve.qwac.clone().or(file.qwac) {
            Some(p) => Some(identity(&p, "QWAC")?),
            None => None,
        };
        if !sandbox && qwac_pem.is_none() {
            return Err("production mode needs the operator's eIDAS QWAC for mutual TLS with banks: set FINX_QWAC to a PEM file with the certificate chain and the key".into());
        }
        let bank_roots_pem = match cli.serve.bank_roots.clone().or(file.bank_roots) {
            Some(p) => Some(read(&p, "bank roots")?),
            None => None,
        };
        let qseal_pem = match cli.serve.qseal.clone().or(file.qseal) {
            Some(p) => Some(identity(&p, "QSealC")?),
            None => None,
        };
        let sandbox_listen = cli
            .serve
            .sandbox_listen
            .or(file.sandbox_listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8081)));
        let sandbox_public_url = match cli
            .serve
            .sandbox_public_url
            .clone()
            .or(file.sandbox_public_url)
        {
            Some(u) => u,
            None => own_url(
                sandbox_listen,
                sandbox,
                "sandbox_listen",
                "sandbox_public_url",
            )?,
        };
        let listen = cli
            .serve
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let public_url = match cli.serve.public_url.clone().or(file.public_url) {
            Some(u) => u,
            None => own_url(listen, sandbox, "listen", "public_url")?,
        };
        let access = cli
            .serve
            .access_token_seconds
            .or(file.access_token_seconds)
            .unwrap_or(3600);
        if !(10..=86_400).contains(&access) {
            return Err("access_token_seconds must be between 10 and 86400".into());
        }
        let grant_days = cli
            .serve
            .grant_lifetime_days
            .or(file.grant_lifetime_days)
            .unwrap_or(180);
        if !(1..=3650).contains(&grant_days) {
            return Err("grant_lifetime_days must be between 1 and 3650".into());
        }
        let bank_timeout = cli
            .serve
            .bank_timeout_seconds
            .or(file.bank_timeout_seconds)
            .unwrap_or(30);
        if !(1..=600).contains(&bank_timeout) {
            return Err("bank_timeout_seconds must be between 1 and 600".into());
        }
        let request_timeout = cli
            .serve
            .request_timeout_seconds
            .or(file.request_timeout_seconds)
            .unwrap_or(75);
        if !(1..=3600).contains(&request_timeout) {
            return Err("request_timeout_seconds must be between 1 and 3600".into());
        }
        // A login step asks the bank twice (log in, then list accounts).
        if request_timeout <= 2 * bank_timeout {
            return Err(format!(
                "request_timeout_seconds ({request_timeout}) must exceed twice bank_timeout_seconds ({bank_timeout}): a widget step may make two bank calls"
            ));
        }
        let header_read = cli
            .serve
            .header_read_timeout_seconds
            .or(file.header_read_timeout_seconds)
            .unwrap_or(10);
        if !(1..=300).contains(&header_read) {
            return Err("header_read_timeout_seconds must be between 1 and 300".into());
        }
        let sync_interval = cli.serve.sync_interval.or(file.sync_interval);
        if sync_interval.is_some_and(|s| !(1..=86_400).contains(&s)) {
            return Err("sync_interval must be between 1 and 86400 seconds".into());
        }
        let syncs_per_day = cli.serve.syncs_per_day.or(file.syncs_per_day).unwrap_or(4);
        if !(1..=4).contains(&syncs_per_day) {
            return Err(
                "syncs_per_day must be between 1 and 4 (PSD2 allows 4 unattended accesses a day)"
                    .into(),
            );
        }
        let sync_concurrency = cli
            .serve
            .sync_concurrency
            .or(file.sync_concurrency)
            .unwrap_or(4);
        if !(1..=256).contains(&sync_concurrency) {
            return Err("sync_concurrency must be between 1 and 256".into());
        }
        let render_cache_mb = cli
            .serve
            .render_cache_mb
            .or(file.render_cache_mb)
            .unwrap_or(32);
        if render_cache_mb > 65_536 {
            return Err("render_cache_mb must be at most 65536".into());
        }
        let read_cache_ms = cli
            .serve
            .read_cache_ms
            .or(file.read_cache_ms)
            .unwrap_or(1000);
        if read_cache_ms > 60_000 {
            return Err("read_cache_ms must be at most 60000".into());
        }
        let sync_lease = cli
            .serve
            .sync_lease_seconds
            .or(file.sync_lease_seconds)
            .unwrap_or(300);
        if !(5..=86_400).contains(&sync_lease) {
            return Err("sync_lease_seconds must be between 5 and 86400".into());
        }
        let onetime_retention = cli
            .serve
            .onetime_retention
            .or(file.onetime_retention)
            .unwrap_or(3600);
        if !(60..=30 * 86_400).contains(&onetime_retention) {
            return Err("onetime_retention must be between 60 seconds and 30 days".into());
        }
        let shutdown_grace = cli
            .serve
            .shutdown_grace_seconds
            .or(file.shutdown_grace_seconds)
            .unwrap_or(20);
        if !(1..=600).contains(&shutdown_grace) {
            return Err("shutdown_grace_seconds must be between 1 and 600".into());
        }
        let shutdown_drain = cli
            .serve
            .shutdown_drain_seconds
            .or(file.shutdown_drain_seconds)
            .unwrap_or(if sandbox { 0 } else { 5 });
        if shutdown_drain > 300 {
            return Err("shutdown_drain_seconds must be at most 300".into());
        }
        let metrics_listen = match cli
            .serve
            .metrics_listen
            .clone()
            .or(file.metrics_listen)
            .as_deref()
        {
            None => Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
            Some("off") => None,
            Some(addr) => Some(addr.parse::<SocketAddr>().map_err(|e| {
                format!("metrics_listen must be an address and port (or off): {e}")
            })?),
        };
        let webhook_timeout = cli
            .serve
            .webhook_timeout_seconds
            .or(file.webhook_timeout_seconds)
            .unwrap_or(10);
        if !(1..=60).contains(&webhook_timeout) {
            return Err("webhook_timeout_seconds must be between 1 and 60".into());
        }
        let webhook_overlap = cli
            .serve
            .webhook_secret_overlap_hours
            .or(file.webhook_secret_overlap_hours)
            .unwrap_or(24);
        if !(1..=24 * 30).contains(&webhook_overlap) {
            return Err("webhook_secret_overlap_hours must be between 1 and 720".into());
        }
        let log_format = cli
            .log_format
            .clone()
            .or(file.log_format)
            .unwrap_or_else(|| "text".into());
        Ok(Self {
            webhook_timeout: std::time::Duration::from_secs(webhook_timeout),
            webhook_secret_overlap: std::time::Duration::from_secs(webhook_overlap * 3600),
            shutdown_grace: std::time::Duration::from_secs(shutdown_grace),
            shutdown_drain: std::time::Duration::from_secs(shutdown_drain),
            metrics_listen,
            sync_interval: sync_interval.map(std::time::Duration::from_secs),
            syncs_per_day,
            sync_concurrency,
            render_cache_bytes: render_cache_mb << 20,
            read_cache: std::time::Duration::from_millis(read_cache_ms),
            sync_lease: std::time::Duration::from_secs(sync_lease),
            onetime_retention: std::time::Duration::from_secs(onetime_retention),
            sandbox_bank_url: cli.serve.sandbox_bank_url.clone().or(file.sandbox_bank_url),
            database_url: cli
                .database_url
                .clone()
                .or(file.database_url)
                .unwrap_or_else(|| "sqlite://finx-data/finx.db".into()),
            sandbox,
            hash_key,
            previous_hash_keys,
            link_key,
            previous_link_keys,
            data_key,
            json_logs: match log_format.as_str() {
                "text" => false,
                "json" => true,
                other => return Err(format!("log format must be text or json, not {other:?}")),
            },
            listen,
            public_url,
            demo_client_secret: cli
                .serve
                .demo_client_secret
                .clone()
                .or(file.demo_client_secret)
                .unwrap_or_else(|| SANDBOX_DEMO_SECRET.into()),
            lifetimes: Lifetimes {
                access: chrono::TimeDelta::seconds(access),
                grant: chrono::TimeDelta::days(grant_days),
                ..Lifetimes::default()
            },
            bank_timeout: std::time::Duration::from_secs(bank_timeout),
            trusted_proxies: cli
                .serve
                .trusted_proxies
                .clone()
                .or(file.trusted_proxies)
                .unwrap_or_default(),
            timeouts: finx_http::ServerTimeouts {
                header_read: std::time::Duration::from_secs(header_read),
                request: std::time::Duration::from_secs(request_timeout),
            },
            sandbox_listen,
            sandbox_public_url,
            qwac_pem,
            bank_roots_pem,
            qseal_pem,
        })
    }
}

/// The address a listener on `addr` is reached at when no public URL is configured: the
/// address itself, or, for a wildcard (`0.0.0.0`, `::`), which no browser can open,
/// loopback in sandbox mode. Production mode needs the public URL then.
fn own_url(addr: SocketAddr, sandbox: bool, listen: &str, public: &str) -> Result<Url, String> {
    let host = if addr.ip().is_unspecified() {
        if !sandbox {
            return Err(format!(
                "{listen} {addr} listens on every interface: set {public} to the address clients use"
            ));
        }
        if addr.is_ipv4() {
            SocketAddr::from(([127, 0, 0, 1], addr.port()))
        } else {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port()))
        }
    } else {
        addr
    };
    Url::parse(&format!("http://{host}/")).map_err(|e| e.to_string())
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub(crate) fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if config.json_logs {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(args: &[&str]) -> Result<Config, String> {
        let mut argv = vec!["finx-server"];
        argv.extend_from_slice(args);
        Config::resolve(&Cli::try_parse_from(argv).map_err(|e| e.to_string())?)
    }

    fn file(text: &str) -> tempfile_path::Path {
        tempfile_path::Path::new(text)
    }

    /// A file that removes itself.
    mod tempfile_path {
        pub(super) struct Path(pub(super) std::path::PathBuf);
        impl Path {
            pub(super) fn new(text: &str) -> Self {
                static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let p = std::env::temp_dir()
                    .join(format!("finx-config-{}-{n}.toml", std::process::id()));
                std::fs::write(&p, text).expect("write");
                Self(p)
            }
            pub(super) fn arg(&self) -> String {
                self.0.display().to_string()
            }
        }
        impl Drop for Path {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn defaults_are_sqlite_on_loopback_in_sandbox_mode() {
        let c = resolve(&[]).expect("defaults");
        assert_eq!(c.database_url, "sqlite://finx-data/finx.db");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.public_url.as_str(), "http://127.0.0.1:8080/");
        assert!(c.sandbox);
        assert_eq!(c.lifetimes.access, chrono::TimeDelta::hours(1));
        assert_eq!(c.lifetimes.grant, chrono::TimeDelta::days(180));
        let c = resolve(&["--grant-lifetime-days", "30"]).expect("flag");
        assert_eq!(c.lifetimes.grant, chrono::TimeDelta::days(30));
        assert!(resolve(&["--grant-lifetime-days", "0"]).is_err());
    }

    #[test]
    fn a_wildcard_listener_never_makes_links_to_the_wildcard() {
        let c = resolve(&["--listen", "0.0.0.0:8080"]).expect("sandbox");
        assert_eq!(c.public_url.as_str(), "http://127.0.0.1:8080/");
        let c = resolve(&["--listen", "[::]:8080", "--sandbox-listen", "0.0.0.0:8081"])
            .expect("sandbox");
        assert_eq!(c.public_url.as_str(), "http://[::1]:8080/");
        assert_eq!(c.sandbox_public_url.as_str(), "http://127.0.0.1:8081/");
        let c = resolve(&[
            "--listen",
            "0.0.0.0:8080",
            "--public-url",
            "https://finx.example/",
        ])
        .expect("given");
        assert_eq!(c.public_url.as_str(), "https://finx.example/");
        let e = own_url(
            "0.0.0.0:8080".parse().expect("addr"),
            false,
            "listen",
            "public_url",
        )
        .expect_err("production needs the public URL");
        assert!(e.contains("public_url"), "{e}");
    }

    #[test]
    fn metrics_and_the_drain_have_defaults_and_can_be_turned_off() {
        let c = resolve(&[]).expect("defaults");
        assert_eq!(
            c.metrics_listen.map(|a| a.to_string()).as_deref(),
            Some("127.0.0.1:9464")
        );
        assert!(c.shutdown_drain.is_zero(), "no drain in sandbox mode");
        let c =
            resolve(&["--metrics-listen", "off", "--shutdown-drain-seconds", "7"]).expect("set");
        assert_eq!(c.metrics_listen, None);
        assert_eq!(c.shutdown_drain, std::time::Duration::from_secs(7));
        assert!(resolve(&["--metrics-listen", "nowhere"]).is_err());
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let f = file(
            "listen = \"127.0.0.1:9000\"\ndatabase_url = \"postgres://db/finx\"\naccess_token_seconds = 60\n",
        );
        let c = resolve(&["--config", &f.arg()]).expect("file");
        assert_eq!(c.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(c.database_url, "postgres://db/finx");
        assert_eq!(c.lifetimes.access, chrono::TimeDelta::seconds(60));
        let c =
            resolve(&["--config", &f.arg(), "--listen", "127.0.0.1:9100", "serve"]).expect("flags");
        assert_eq!(c.listen.to_string(), "127.0.0.1:9100");
        assert_eq!(c.database_url, "postgres://db/finx");
    }

    #[test]
    fn bad_settings_are_refused_with_a_reason() {
        let f = file("lisen = \"127.0.0.1:9000\"\n");
        assert!(
            resolve(&["--config", &f.arg()])
                .expect_err("typo")
                .contains("lisen")
        );
        assert!(resolve(&["--mode", "chaos"]).is_err());
        assert!(
            resolve(&["--hash-key", "short"])
                .expect_err("short key")
                .contains("32")
        );
        assert!(resolve(&["--access-token-seconds", "5"]).is_err());
        let e = resolve(&["--mode", "production"]).expect_err("built-in keys");
        assert!(e.contains("refusing") && e.contains("hash key"), "{e}");
        let k = "k".repeat(40);
        let l = "l".repeat(40);
        let e = resolve(&["--mode", "production", "--hash-key", &k, "--link-key", &l])
            .expect_err("built-in data key");
        assert!(e.contains("refusing") && e.contains("data key"), "{e}");
        let d = "d".repeat(40);
        let e = resolve(&[
            "--mode",
            "production",
            "--hash-key",
            &k,
            "--link-key",
            &l,
            "--data-key",
            &d,
        ])
        .expect_err("no QWAC");
        assert!(e.contains("QWAC"), "{e}");
        assert!(resolve(&["--data-key", "short"]).is_err());
        let e = resolve(&["--bank-timeout-seconds", "60"]).expect_err("75 s is too short");
        assert!(e.contains("twice"), "{e}");
        let c = resolve(&[
            "--bank-timeout-seconds",
            "60",
            "--request-timeout-seconds",
            "150",
        ])
        .expect("consistent");
        assert_eq!(c.completion_budget(), std::time::Duration::from_secs(600));
        let c = resolve(&["--trusted-proxies", "10.0.0.0/8,2001:db8::/32"]).expect("CIDRs");
        assert_eq!(c.trusted_proxies.len(), 2);
        assert!(resolve(&["--trusted-proxies", "10.0.0.0/33"]).is_err());
        assert!(resolve(&[]).expect("defaults").trusted_proxies.is_empty());
    }
}
