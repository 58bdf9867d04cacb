//! finX storage on SQL: every storage port on SQLite (the embedded default) or PostgreSQL.
//!
//! One SQL text serves both databases (`$N` placeholders work in both); where a statement
//! must differ, the [`on_pool!`] macro runs the same Rust code against each pool type.
//!
//! Atomicity: code redemption and refresh rotation are a conditional
//! `UPDATE … WHERE used_at IS NULL` checked by rows affected, inside one write transaction
//! with the token inserts. On SQLite every write transaction is `BEGIN IMMEDIATE` (it takes
//! the write lock at once, so a read-then-write transaction cannot fail to upgrade), the
//! journal is WAL with `synchronous=FULL` (a 200 means the commit is on disk) and connections
//! wait on a busy timeout.
//!
//! Instants are stored as microseconds since the epoch, money as integers in 1/10 000 of the
//! unit with the original scale, and secrets only as their keyed hashes.

mod banks;
mod bus;
mod clients;
mod codec;
mod data;
mod flows;
mod grants;
mod sca_doc;
mod seal;
mod uploads;
mod webhooks;

#[cfg(feature = "sqlite")]
use std::str::FromStr;
use std::time::Duration;

#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
compile_error!("finx-store-sql needs a database: enable the `sqlite` or `postgres` feature");

use finx_ports::{BoxError, StoreError};
#[cfg(feature = "postgres")]
use sqlx::postgres::{PgPool, PgPoolOptions};
#[cfg(feature = "sqlite")]
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use thiserror::Error;

pub use crate::seal::DataKey;

/// The store could not be opened or migrated.
#[derive(Debug, Error)]
pub enum SqlError {
    /// The URL is neither `sqlite:` nor `postgres:`.
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    /// The URL names a database this build left out (a Cargo feature).
    #[error("this build of finX has no {0} support: build it with the `{0}` feature")]
    NotBuilt(&'static str),
    /// The directory for the SQLite file could not be created.
    #[error("cannot create the directory for the SQLite database: {0}")]
    Directory(#[source] std::io::Error),
    /// Connecting failed.
    #[error("cannot connect to the database")]
    Connect(#[source] sqlx::Error),
    /// Applying the schema migrations failed.
    #[error("cannot migrate the database schema")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

/// Tuning for [`SqlStore::connect_with`].
#[derive(Debug, Clone)]
pub struct SqlOptions {
    /// Most connections in the pool.
    pub max_connections: u32,
    /// How long to wait for a connection (and, on SQLite, for the write lock).
    pub acquire_timeout: Duration,
    /// The key that encrypts bank session handles (and codes kept for a reload) at rest.
    pub data_key: DataKey,
    /// SQLite only: `synchronous=FULL` (the default: a commit is on disk before it is
    /// acknowledged). `false` means `NORMAL`, which may lose the last commits on power loss;
    /// it exists so that the benchmark can show what durability costs, not for production.
    pub sqlite_full_sync: bool,
}

impl Default for SqlOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
            data_key: DataKey::default(),
            sqlite_full_sync: true,
        }
    }
}

/// A database this build left out: no value of it exists.
#[cfg(not(all(feature = "sqlite", feature = "postgres")))]
#[derive(Debug, Clone)]
enum Absent {}

#[cfg(not(feature = "sqlite"))]
type SqlitePool = Absent;
#[cfg(not(feature = "postgres"))]
type PgPool = Absent;

// A build with one database never makes the other's variant.
#[cfg_attr(not(all(feature = "sqlite", feature = "postgres")), allow(dead_code))]
#[derive(Debug, Clone)]
enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the store's pool, whichever database it is. The body
/// is compiled once per database built in, so it may use anything both support.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.backend {
            #[cfg(feature = "sqlite")]
            $crate::Backend::Sqlite($pool) => $body,
            #[cfg(feature = "postgres")]
            $crate::Backend::Postgres($pool) => $body,
            #[allow(unreachable_patterns)]
            _ => unreachable!("a database this build left out has no value"),
        }
    };
}
pub(crate) use on_pool;

/// A pool that can open a write transaction.
pub(crate) trait WritePool {
    /// The database.
    type Db: sqlx::Database;
    /// Opens a transaction that will write: on SQLite `BEGIN IMMEDIATE` on the store's one
    /// writer connection (writers then queue without SQLite's sleeping busy handler), `BEGIN`
    /// elsewhere.
    async fn begin_write(
        &self,
        store: &SqlStore,
    ) -> Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>;
}

#[cfg(feature = "sqlite")]
impl WritePool for SqlitePool {
    type Db = sqlx::Sqlite;
    async fn begin_write(
        &self,
        store: &SqlStore,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        store
            .sqlite_writer
            .as_ref()
            .unwrap_or(self)
            .begin_with("BEGIN IMMEDIATE")
            .await
    }
}

#[cfg(feature = "postgres")]
impl WritePool for PgPool {
    type Db = sqlx::Postgres;
    async fn begin_write(
        &self,
        _: &SqlStore,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.begin().await
    }
}

#[cfg(feature = "sqlite")]
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
#[cfg(feature = "postgres")]
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Every finX storage port on one SQL database.
#[derive(Debug, Clone)]
pub struct SqlStore {
    backend: Backend,
    /// SQLite allows one writer at a time: write transactions take this one connection.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    sqlite_writer: Option<SqlitePool>,
    /// Encrypts bank session handles at rest.
    data_key: DataKey,
    /// PostgreSQL: the connection that hears other instances' invalidations.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    listener: std::sync::Arc<bus::Listener>,
}

impl SqlStore {
    /// Opens `url` (`sqlite://PATH`, created with its directory when missing, or
    /// `postgres://…`) with default options, and applies the embedded migrations.
    ///
    /// # Errors
    /// [`SqlError`] when the URL is unsupported, the database unreachable or the schema
    /// cannot be migrated.
    pub async fn connect(url: &str) -> Result<Self, SqlError> {
        Self::connect_with(url, &SqlOptions::default()).await
    }

    /// [`connect`](Self::connect) with options.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_with(url: &str, options: &SqlOptions) -> Result<Self, SqlError> {
        let store = Self::open(url, options).await?;
        store.migrate().await?;
        Ok(store)
    }

    async fn open(url: &str, options: &SqlOptions) -> Result<Self, SqlError> {
        if url.starts_with("sqlite:") {
            #[cfg(not(feature = "sqlite"))]
            return Err(SqlError::NotBuilt("sqlite"));
        }
        #[cfg(feature = "sqlite")]
        if url.starts_with("sqlite:") {
            let connect = SqliteConnectOptions::from_str(url)
                .map_err(SqlError::Connect)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: a commit is on disk before it is acknowledged. Under NORMAL, WAL may
                // lose the last commits on power loss, bringing a rotated refresh token back.
                .synchronous(if options.sqlite_full_sync {
                    SqliteSynchronous::Full
                } else {
                    SqliteSynchronous::Normal
                })
                .busy_timeout(options.acquire_timeout)
                .foreign_keys(true)
                // 64 MiB of page cache per connection instead of SQLite's 2 MiB: the token
                // and transaction indexes are keyed by hashes, so their inserts land on
                // random pages, which a small cache reads from the file again and again.
                .pragma("cache_size", "-65536");
            if let Some(dir) = connect
                .get_filename()
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir).map_err(SqlError::Directory)?;
            }
            let pool = SqlitePoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect.clone())
                .await
                .map_err(SqlError::Connect)?;
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect)
                .await
                .map_err(SqlError::Connect)?;
            return Ok(Self {
                backend: Backend::Sqlite(pool),
                sqlite_writer: Some(writer),
                data_key: options.data_key.clone(),
                listener: std::sync::Arc::default(),
            });
        }
        if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            #[cfg(not(feature = "postgres"))]
            return Err(SqlError::NotBuilt("postgres"));
        }
        #[cfg(feature = "postgres")]
        if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = PgPoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(options.acquire_timeout)
                .connect(url)
                .await
                .map_err(SqlError::Connect)?;
            return Ok(Self {
                backend: Backend::Postgres(pool),
                sqlite_writer: None,
                data_key: options.data_key.clone(),
                listener: std::sync::Arc::default(),
            });
        }
        Err(SqlError::UnsupportedUrl(url.chars().take(40).collect()))
    }

    /// Applies the embedded schema migrations (idempotent).
    ///
    /// # Errors
    /// [`SqlError::Migrate`] when a migration fails.
    pub async fn migrate(&self) -> Result<(), SqlError> {
        match &self.backend {
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(p) => SQLITE_MIGRATIONS.run(p).await,
            #[cfg(feature = "postgres")]
            Backend::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await,
            #[allow(unreachable_patterns)]
            _ => unreachable!("a database this build left out has no value"),
        }
        .map_err(SqlError::Migrate)
    }

    /// Which database this is: `"sqlite"` or `"postgres"`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Checks that the database answers (for readiness probes).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when it does not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(|_| ())
            .map_err(db))
    }

    /// The pool now, for metrics: connections open, open and idle, and the most it opens
    /// (the main pool; on SQLite the writer's one connection is not counted).
    #[must_use]
    pub fn pool_stats(&self) -> (u32, u32, u32) {
        on_pool!(self, |pool| (
            pool.size(),
            u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
            pool.options().get_max_connections()
        ))
    }

    /// How many jobs are due at `now` and not yet taken, for metrics: syncs and webhook
    /// deliveries.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn queue_depths(
        &self,
        now: finx_domain::Timestamp,
    ) -> Result<(u64, u64), StoreError> {
        let now = codec::micros(now);
        let (syncs, webhooks): (i64, i64) = on_pool!(self, |pool| {
            sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM sync_jobs WHERE status = 'queued' AND run_at <= $1), \
                    (SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending' AND next_at <= $1)"
        )
        .bind(now)
        .fetch_one(pool)
        .await
        .map_err(db)?
        });
        Ok((
            u64::try_from(syncs).unwrap_or_default(),
            u64::try_from(webhooks).unwrap_or_default(),
        ))
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await);
        #[cfg(feature = "sqlite")]
        if let Some(w) = &self.sqlite_writer {
            w.close().await;
        }
    }
}

/// Maps a database error onto the ports' error: unique violations are conflicts; lost
/// connections and timeouts mean the database is unavailable.
pub(crate) fn db(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StoreError::Conflict("record exists")
        }
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_) => StoreError::Unavailable(Box::new(e)),
        sqlx::Error::Database(d) if d.message().contains("database is locked") => {
            StoreError::Unavailable(Box::new(e))
        }
        // SQLSTATE classes 08 (connection exception) and 57 (operator intervention, e.g. a
        // server shutting down): the database is going or gone, not the query wrong.
        sqlx::Error::Database(d)
            if d.code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57")) =>
        {
            StoreError::Unavailable(Box::new(e))
        }
        _ => StoreError::Unexpected(Box::new(e)),
    }
}

/// Stored data that does not read back as a valid domain value.
pub(crate) fn corrupt(what: &'static str) -> StoreError {
    StoreError::Unexpected(BoxError::from(format!("stored {what} is not valid")))
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;

    /// Every connection, the writer's included, commits durably (`synchronous=FULL`).
    #[tokio::test]
    async fn sqlite_commits_are_durable() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("d.db").display());
        let store = SqlStore::connect(&url).await.expect("open");
        let Backend::Sqlite(pool) = &store.backend else {
            panic!("a SQLite store")
        };
        let writer = store.sqlite_writer.as_ref().expect("writer");
        for p in [pool, writer] {
            let (mode,): (i64,) = sqlx::query_as("PRAGMA synchronous")
                .fetch_one(p)
                .await
                .expect("pragma");
            assert_eq!(mode, 2, "2 is FULL");
            let (journal,): (String,) = sqlx::query_as("PRAGMA journal_mode")
                .fetch_one(p)
                .await
                .expect("pragma");
            assert_eq!(journal, "wal");
        }
    }
}
