//! PostgreSQL for tests: a fresh database per test on one server per test process.
//!
//! The server is `FINX_TEST_POSTGRES_URL` (an admin URL; `cargo xtask ci` starts a
//! throwaway cluster and sets it), or else a throwaway cluster started here on first use.
//! Either way the tests run: a missing PostgreSQL is a failure with a clear message, never
//! a skip.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use finx_pgtest::PgCluster;
use sqlx::Connection;

enum Server {
    External(String),
    Owned(PgCluster),
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
static NEXT: AtomicU32 = AtomicU32::new(0);

/// The admin URL of the test server.
///
/// # Panics
/// When no server is configured and none can be started, with the reason.
pub fn admin_url() -> String {
    let server = SERVER.get_or_init(|| match std::env::var("FINX_TEST_POSTGRES_URL") {
        Ok(url) => Ok(Server::External(url)),
        // The cluster lives as long as the process; its watchdog removes it afterwards.
        Err(_) => PgCluster::start()
            .map(Server::Owned)
            .map_err(|e| e.to_string()),
    });
    match server {
        Ok(Server::External(url)) => url.clone(),
        Ok(Server::Owned(cluster)) => cluster.url("postgres"),
        Err(e) => panic!(
            "PostgreSQL is needed for these tests and could not be started: {e}\n\
             Install Debian's postgresql-15 (`.ci/run` does) or set FINX_TEST_POSTGRES_URL."
        ),
    }
}

/// The throwaway cluster this process started, if it started one (for tests that stop and
/// restart the server).
#[must_use]
pub fn owned_cluster() -> Option<&'static PgCluster> {
    match SERVER.get() {
        Some(Ok(Server::Owned(c))) => Some(c),
        _ => None,
    }
}

/// Creates an empty database and returns its URL.
///
/// # Panics
/// When the server cannot be reached.
pub async fn fresh_database() -> String {
    let admin = admin_url();
    let name = format!(
        "finx_t{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("connect to {admin}: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("create database {name}: {e}"));
    let mut url = url::Url::parse(&admin).unwrap_or_else(|e| panic!("admin URL {admin}: {e}"));
    url.set_path(&name);
    url.to_string()
}
