//! Outbox retention: a background loop that prunes the change feed behind its readers.
//!
//! Every node runs it (pruning is safe to run concurrently); each run deletes what every live
//! reader has applied and reports in `/metrics`: `outbox_pruned_rows_total` (counter) and
//! `outbox_rows` (gauge, rows left after the last run).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use boxoffice_domain::feed::{ChangeFeed, Retention};
use boxoffice_domain::ports::Clock;

/// Prunes the outbox once now, then every `every`, until `shutdown` completes.
pub async fn run_outbox_pruner(
    feed: Arc<dyn ChangeFeed>,
    clock: Arc<dyn Clock>,
    retention: Retention,
    every: Duration,
    shutdown: impl Future<Output = ()>,
) {
    // Installs the Prometheus recorder if the router has not yet.
    let _ = crate::middleware::metrics_handle();
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tick.tick() => {}
        }
        match feed.prune(retention, clock.now()).await {
            Ok(p) => {
                metrics::counter!("outbox_pruned_rows_total").increment(p.rows);
                metrics::gauge!("outbox_rows").set(p.remaining as f64);
                if p.rows > 0 {
                    tracing::info!(pruned = p.rows, remaining = p.remaining, "outbox pruned");
                }
            }
            Err(e) => tracing::warn!(error = %e, "pruning the outbox failed; will retry"),
        }
    }
}
