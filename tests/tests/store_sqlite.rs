//! The conformance suite on SQLite, each test on its own database file.

use std::sync::Arc;

use finx_store_sql::SqlStore;

/// A fresh store on a new file under the target directory (`cargo clean` removes it; the
/// store must outlive the test body, so the directory is kept).
async fn fresh() -> Arc<SqlStore> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir")
        .keep();
    let url = format!("sqlite://{}", dir.join("finx.db").display());
    Arc::new(SqlStore::connect(&url).await.expect("open SQLite"))
}

finx_tests::conformance_suite!(fresh());

#[tokio::test]
async fn imported_grants_are_like_redeemed_ones() {
    finx_tests::conformance::imported_grants_are_like_redeemed_ones(fresh().await).await;
}
