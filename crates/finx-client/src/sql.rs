//! Tokens in SQLite or PostgreSQL, shared by every worker and process of a customer.

use async_trait::async_trait;
use chrono::DateTime;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{PgPool, SqlitePool};

use crate::Error;
use crate::connection::{StoredTokens, TokenStore};

/// A [`TokenStore`] on SQL. Token columns are `TEXT` without a length cap (finX tokens vary
/// in length); tokens are never logged.
#[derive(Debug, Clone)]
pub struct SqlTokenStore {
    pool: Pool,
}

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

fn store(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Store(Box::new(e))
}

const CREATE: &str = "CREATE TABLE IF NOT EXISTS finx_client_tokens (\
     key TEXT PRIMARY KEY, access_token TEXT NOT NULL, access_expires_at BIGINT NOT NULL, \
     refresh_token TEXT, scope TEXT NOT NULL, refresh_lease_until BIGINT, version BIGINT NOT NULL)";

#[derive(sqlx::FromRow)]
struct Row {
    access_token: String,
    access_expires_at: i64,
    refresh_token: Option<String>,
    scope: String,
    refresh_lease_until: Option<i64>,
    version: i64,
}

macro_rules! on_pool {
    ($s:expr, |$p:ident| $body:expr) => {
        match &$s.pool {
            Pool::Sqlite($p) => $body,
            Pool::Postgres($p) => $body,
        }
    };
}

impl SqlTokenStore {
    /// Opens `sqlite://PATH` (created if missing) or `postgres://…` and creates the table.
    ///
    /// # Errors
    /// [`Error::Store`] when the database cannot be opened.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let pool = if url.starts_with("sqlite:") {
            let opts = url
                .parse::<SqliteConnectOptions>()
                .map_err(store)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(std::time::Duration::from_secs(10));
            Pool::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(8)
                    .connect_with(opts)
                    .await
                    .map_err(store)?,
            )
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(8)
                    .connect(url)
                    .await
                    .map_err(store)?,
            )
        } else {
            return Err(Error::Config(
                "token store URL must be sqlite:// or postgres://".into(),
            ));
        };
        let s = Self { pool };
        on_pool!(s, |p| {
            sqlx::query(CREATE).execute(p).await.map_err(store)?;
        });
        Ok(s)
    }
}

fn micros(t: DateTime<chrono::Utc>) -> i64 {
    t.timestamp_micros()
}

fn instant(us: i64) -> Result<DateTime<chrono::Utc>, Error> {
    DateTime::from_timestamp_micros(us)
        .ok_or_else(|| Error::Decode("stored instant out of range".into()))
}

#[async_trait]
impl TokenStore for SqlTokenStore {
    async fn load(&self, key: &str) -> Result<Option<StoredTokens>, Error> {
        let row: Option<Row> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT access_token, access_expires_at, refresh_token, scope, refresh_lease_until, version \
                 FROM finx_client_tokens WHERE key = $1",
            )
            .bind(key)
            .fetch_optional(p)
            .await
            .map_err(store)?
        });
        row.map(|r| {
            Ok(StoredTokens {
                access_token: r.access_token,
                access_expires_at: instant(r.access_expires_at)?,
                refresh_token: r.refresh_token,
                scope: r.scope,
                refresh_lease_until: r.refresh_lease_until.map(instant).transpose()?,
                version: u64::try_from(r.version)
                    .map_err(|_| Error::Decode("negative version".into()))?,
            })
        })
        .transpose()
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<u64>,
        new: &StoredTokens,
    ) -> Result<bool, Error> {
        let lease = new.refresh_lease_until.map(micros);
        let affected = match expected {
            None => on_pool!(self, |p| {
                sqlx::query(
                    "INSERT INTO finx_client_tokens (key, access_token, access_expires_at, refresh_token, scope, refresh_lease_until, version) \
                     VALUES ($1, $2, $3, $4, $5, $6, 1) ON CONFLICT (key) DO NOTHING",
                )
                .bind(key)
                .bind(&new.access_token)
                .bind(micros(new.access_expires_at))
                .bind(&new.refresh_token)
                .bind(&new.scope)
                .bind(lease)
                .execute(p)
                .await
                .map_err(store)?
                .rows_affected()
            }),
            Some(v) => {
                let v =
                    i64::try_from(v).map_err(|_| Error::Decode("version out of range".into()))?;
                on_pool!(self, |p| {
                    sqlx::query(
                        "UPDATE finx_client_tokens SET access_token = $1, access_expires_at = $2, refresh_token = $3, \
                         scope = $4, refresh_lease_until = $5, version = version + 1 WHERE key = $6 AND version = $7",
                    )
                    .bind(&new.access_token)
                    .bind(micros(new.access_expires_at))
                    .bind(&new.refresh_token)
                    .bind(&new.scope)
                    .bind(lease)
                    .bind(key)
                    .bind(v)
                    .execute(p)
                    .await
                    .map_err(store)?
                    .rows_affected()
                })
            }
        };
        Ok(affected == 1)
    }

    async fn compare_and_delete(&self, key: &str, expected: u64) -> Result<bool, Error> {
        let v =
            i64::try_from(expected).map_err(|_| Error::Decode("version out of range".into()))?;
        let n = on_pool!(self, |p| {
            sqlx::query("DELETE FROM finx_client_tokens WHERE key = $1 AND version = $2")
                .bind(key)
                .bind(v)
                .execute(p)
                .await
                .map_err(store)?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// The database's clock: PostgreSQL's server time, which every worker shares; for
    /// SQLite, a file on one host, that host's time.
    async fn now(&self) -> Result<DateTime<chrono::Utc>, Error> {
        let (us,): (i64,) = match &self.pool {
            Pool::Sqlite(p) => sqlx::query_as(
                "SELECT CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)",
            )
            .fetch_one(p)
            .await
            .map_err(store)?,
            Pool::Postgres(p) => sqlx::query_as(
                "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)",
            )
            .fetch_one(p)
            .await
            .map_err(store)?,
        };
        instant(us)
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        on_pool!(self, |p| {
            sqlx::query("DELETE FROM finx_client_tokens WHERE key = $1")
                .bind(key)
                .execute(p)
                .await
                .map_err(store)?;
        });
        Ok(())
    }
}
