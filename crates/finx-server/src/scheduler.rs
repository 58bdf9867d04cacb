//! The sync runner: claims due syncs of ongoing accesses from the store and runs them, at
//! most `concurrency` at once. Any number of instances may run it on one database: the
//! store hands each job to one claimant at a time, and a job whose runner died is taken
//! over once its lease ends. At shutdown it stops claiming, lets running syncs finish
//! within the grace period, and hands the rest back to the queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use finx_core::Finx;
use finx_domain::access::SyncJob;
use finx_domain::ids::SyncId;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// How often the runner looks for due syncs.
const TICK: Duration = Duration::from_millis(500);

/// Runs syncs until `stop` turns true, then winds down within `grace`.
pub(crate) async fn run(
    finx: Finx,
    concurrency: u32,
    grace: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(concurrency as usize));
    let running: Arc<Mutex<HashMap<SyncId, SyncJob>>> = Arc::default();
    let mut tasks = JoinSet::new();
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
        let jobs = match finx.claim_syncs(free).await {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(error = %e, "claiming syncs failed");
                continue;
            }
        };
        for job in jobs {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            held(&running).insert(job.id, job.clone());
            let (finx, running) = (finx.clone(), running.clone());
            tasks.spawn(async move {
                let _permit = permit;
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
            });
        }
    }
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
    let permits = Arc::new(Semaphore::new(WEBHOOK_CONCURRENCY));
    let mut tasks = JoinSet::new();
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
        let due = match finx.claim_webhooks(free).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "claiming webhook deliveries failed");
                continue;
            }
        };
        for delivery in due {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let finx = finx.clone();
            tasks.spawn(async move {
                let _permit = permit;
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
            });
        }
    }
    if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tasks.abort_all();
    }
}
