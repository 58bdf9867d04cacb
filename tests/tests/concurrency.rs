//! Races through the whole core: many callers, one refresh token.

use finx_core::CoreError;
use finx_tests::fixtures::App;

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn sixty_four_concurrent_refreshes_of_one_token_have_exactly_one_winner() {
    let app = App::new().await;
    let tokens = app.nosca_tokens("sandbox-90094815").await;
    let refresh = tokens.refresh_token.expect("refresh").expose().to_owned();

    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(64));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (finx, client, refresh, barrier) = (
            app.finx.clone(),
            app.client.clone(),
            refresh.clone(),
            barrier.clone(),
        );
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            finx.refresh(&client, &refresh, None).await
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.expect("join") {
            Ok(t) => winners.push(t),
            Err(CoreError::InvalidGrant(_)) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one refresh wins");
    // The losers presented a used token: that is reuse, and the grant is revoked.
    let winner = winners.pop().expect("one");
    assert!(matches!(
        app.finx.authorize(winner.access_token.expose()).await,
        Err(CoreError::InvalidToken)
    ));
}
