//! The conformance suite on PostgreSQL, each test on its own database.

use std::sync::Arc;

use finx_store_sql::SqlStore;

async fn fresh() -> Arc<SqlStore> {
    let url = finx_tests::pg::fresh_database().await;
    Arc::new(SqlStore::connect(&url).await.expect("open PostgreSQL"))
}

finx_tests::conformance_suite!(fresh());
