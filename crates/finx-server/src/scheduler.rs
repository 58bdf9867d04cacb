//! The runners: the sync runner claims due syncs of ongoing accesses from the store and
//! runs them, at most `concurrency` at once; the webhook runner sends due deliveries. Any
//! number of instances may run them on one database: the store hands each job or delivery
//! to one claimant at a time, and one whose runner died is taken over once its lease ends.
//! At shutdown they stop claiming and let running work finish within the grace period;
//! syncs still running are handed back to the queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use finx_core::Finx;
use finx_domain::access::SyncJob;
use finx_domain::ids::SyncId;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// How often a runner looks for due work.
const TICK: Duration = Duration::from_millis(500);

/// The loop both runners share: every tick until `stop`, claims as many due items as
/// permits are free and runs each in a task of `tasks` that holds a permit.
async fn claim_loop<T, C, CF, W, WF>(
    concurrency: usize,
    stop: &mut watch::Receiver<bool>,
    tasks: &mut JoinSet<()>,
    what: &'static str,
    claim: C,
    work: W,
) where
    C: Fn(u32) -> CF,
    CF: std::future::Future<Output = Result<Vec<T>, finx_core::CoreError>>,
    W: Fn(T) -> WF,
    WF: std::future::Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(concurrency));
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            () = tokio::time::sleep(TICK) => {}
        }
        while tasks.try_join_next().is_some() {}
        let free = u32::try_from(permits.available_permits()).unwrap_or(0);
        if free == 0 {
            continue;
        }
        let due = match claim(free).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "claiming {what} failed");
                continue;
            }
        };
        for item in due {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let run = work(item);
            tasks.spawn(async move {
                let _permit = permit;
                run.await;
            });
        }
    }
}

/// Runs syncs until `stop` turns true, then winds down within `grace`.
pub(crate) async fn run(
    finx: Finx,
    concurrency: u32,
    grace: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let running: Arc<Mutex<HashMap<SyncId, SyncJob>>> = Arc::default();
    let mut tasks = JoinSet::new();
    claim_loop(
        concurrency as usize,
        &mut stop,
        &mut tasks,
        "syncs",
        |free| finx.claim_syncs(free),
        |job: SyncJob| {
            held(&running).insert(job.id, job.clone());
            let (finx, running) = (finx.clone(), running.clone());
            async move {
                match finx.run_sync(&job).await {
                    Ok(Some(done)) => tracing::info!(
                        sync = %done.id,
                        kind = done.kind.as_str(),
                        status = done.status.as_str(),
                        error = done.error.map(|e| e.as_str()),
                        "sync ended"
                    ),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(sync = %job.id, error = %e, "sync failed; its lease will lapse"),
                }
                held(&running).remove(&job.id);
            }
        },
    )
    .await;
    // Shutdown: running syncs may finish within the grace period; the rest go back.
    if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        let left: Vec<SyncJob> = held(&running).drain().map(|(_, j)| j).collect();
        for job in left {
            match finx.hand_back(&job).await {
                Ok(_) => tracing::info!(sync = %job.id, "sync handed back at shutdown"),
                Err(e) => {
                    tracing::warn!(sync = %job.id, error = %e, "hand-back failed; its lease will lapse");
                }
            }
        }
    }
}

fn held(
    m: &Mutex<HashMap<SyncId, SyncJob>>,
) -> std::sync::MutexGuard<'_, HashMap<SyncId, SyncJob>> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How many webhook deliveries one instance sends at once.
const WEBHOOK_CONCURRENCY: usize = 16;

/// Sends due webhook deliveries until `stop` turns true, then lets those in flight finish
/// within `grace`. A delivery cut off stays claimed until its lease lapses, and is sent
/// again then (at least once; receivers drop repeats by `webhook-id`).
pub(crate) async fn run_webhooks(finx: Finx, grace: Duration, mut stop: watch::Receiver<bool>) {
    let mut tasks = JoinSet::new();
    claim_loop(
        WEBHOOK_CONCURRENCY,
        &mut stop,
        &mut tasks,
        "webhook deliveries",
        |free| finx.claim_webhooks(free),
        |delivery: finx_domain::webhook::Delivery| {
            let finx = finx.clone();
            async move {
                match finx.deliver_webhook(&delivery).await {
                    Ok(ok) => tracing::info!(
                        event = %delivery.event.id,
                        endpoint = %delivery.endpoint.id,
                        event_type = %delivery.event.event_type,
                        attempt = delivery.attempt,
                        delivered = ok,
                        "webhook attempt"
                    ),
                    Err(e) => tracing::warn!(
                        event = %delivery.event.id,
                        error = %e,
                        "webhook attempt not recorded; its lease will lapse"
                    ),
                }
            }
        },
    )
    .await;
    if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tasks.abort_all();
    }
}
