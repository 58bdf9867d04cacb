//! The conformance suite on PostgreSQL, each test on its own database.

use std::sync::Arc;

use finx_store_sql::SqlStore;

async fn fresh() -> Arc<SqlStore> {
    let url = finx_tests::pg::fresh_database().await;
    Arc::new(SqlStore::connect(&url).await.expect("open PostgreSQL"))
}

finx_tests::conformance_suite!(fresh());

#[tokio::test]
async fn imported_grants_are_like_redeemed_ones() {
    finx_tests::conformance::imported_grants_are_like_redeemed_ones(fresh().await).await;
}
