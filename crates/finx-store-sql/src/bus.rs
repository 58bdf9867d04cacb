//! The invalidation bus on PostgreSQL: `pg_notify` after a write, `LISTEN` on one
//! connection per instance. SQLite is one process's file: its bus is not shared.

// Without PostgreSQL in the build, the payload format has no use.
#![cfg_attr(not(feature = "postgres"), allow(dead_code))]

use std::time::Duration;

use async_trait::async_trait;
use finx_domain::ids::AccountId;
use finx_ports::{Heard, Invalidation, InvalidationBus, StoreError};
#[cfg(feature = "postgres")]
use sqlx::postgres::PgListener;

#[cfg(feature = "postgres")]
use crate::db;
use crate::{Backend, SqlStore};

/// The channel every instance listens on.
const CHANNEL: &str = "finx_invalidations";

/// PostgreSQL refuses payloads of 8,000 bytes and more; longer lists say "everything".
const MAX_PAYLOAD: usize = 7_900;

/// How long to wait before connecting the listener again.
const RECONNECT: Duration = Duration::from_millis(500);

/// The one listening connection of a store and its clones.
#[cfg(feature = "postgres")]
#[derive(Default)]
pub(crate) struct Listener(tokio::sync::Mutex<Option<PgListener>>);

/// No PostgreSQL in this build: nothing to listen on.
#[cfg(not(feature = "postgres"))]
#[derive(Default)]
pub(crate) struct Listener;

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Listener")
    }
}

/// `*` for everything, else the account ids joined by commas.
fn payload(what: &Invalidation) -> String {
    match what {
        Invalidation::Everything => "*".to_owned(),
        Invalidation::Accounts(ids) => {
            let joined = ids
                .iter()
                .map(AccountId::as_str)
                .collect::<Vec<_>>()
                .join(",");
            if joined.len() > MAX_PAYLOAD || joined.is_empty() {
                "*".to_owned()
            } else {
                joined
            }
        }
    }
}

/// What a payload says; anything unreadable counts as everything.
fn parse(payload: &str) -> Invalidation {
    payload
        .split(',')
        .map(AccountId::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_or(Invalidation::Everything, Invalidation::Accounts)
}

#[async_trait]
impl InvalidationBus for SqlStore {
    fn shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    #[cfg(not(feature = "postgres"))]
    async fn publish(&self, _: &Invalidation) -> Result<(), StoreError> {
        Ok(())
    }

    #[cfg(not(feature = "postgres"))]
    async fn next(&self) -> Heard {
        std::future::pending().await
    }

    #[cfg(feature = "postgres")]
    async fn publish(&self, what: &Invalidation) -> Result<(), StoreError> {
        let Backend::Postgres(pool) = &self.backend else {
            return Ok(());
        };
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload(what))
            .execute(pool)
            .await
            .map(|_| ())
            .map_err(db)
    }

    #[cfg(feature = "postgres")]
    async fn next(&self) -> Heard {
        let Backend::Postgres(pool) = &self.backend else {
            return std::future::pending().await;
        };
        let mut listener = self.listener.0.lock().await;
        loop {
            let Some(l) = listener.as_mut() else {
                if let Ok(mut l) = PgListener::connect_with(pool).await {
                    if l.listen(CHANNEL).await.is_ok() {
                        *listener = Some(l);
                        return Heard::Connected;
                    }
                }
                tokio::time::sleep(RECONNECT).await;
                continue;
            };
            return match l.try_recv().await {
                Ok(Some(n)) => Heard::Published(parse(n.payload())),
                // The connection went: what was sent meanwhile is lost.
                Ok(None) | Err(_) => {
                    *listener = None;
                    Heard::Lost
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_read_back_and_anything_else_is_everything() {
        let ids = vec![
            AccountId::parse("A1").expect("id"),
            AccountId::parse("A2").expect("id"),
        ];
        let what = Invalidation::Accounts(ids);
        assert_eq!(parse(&payload(&what)), what);
        assert_eq!(
            parse(&payload(&Invalidation::Everything)),
            Invalidation::Everything
        );
        assert_eq!(parse("A1,not an id!"), Invalidation::Everything);
        let many = Invalidation::Accounts(
            (0..2_000)
                .map(|i| AccountId::parse(&format!("A{i:06}")).expect("id"))
                .collect(),
        );
        assert_eq!(payload(&many), "*");
    }
}
