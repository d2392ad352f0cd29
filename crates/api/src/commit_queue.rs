//! Queued commits: during an on-sale (a waiting-room event, or any event on a node run with
//! `--queued-commits`) `POST /v1/commit` does step 1 (the key, the STARTED payment, the
//! booking PENDING) and answers 202 at once; this queue's worker then asks the payment provider
//! and records the outcome, many purchases at a time, and tells the booking's status streams.
//!
//! The database stays the fence: the worker settles through the same rulebook as a direct
//! commit, a purchase charged twice (a replay, another node, the reconciler) is settled once,
//! and the provider sees one key per purchase. A purchase the queue lost (a full queue, a node
//! killed) is a STARTED payment marked `queued`: the reconciler asks the provider with its key
//! (charging it if it never got there) and settles it, so it completes on another node or
//! after a restart.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use boxoffice_domain::booking::{Booking, Payment};
use boxoffice_domain::event::Event;
use boxoffice_domain::ids::{BookingId, EventId};
use futures_util::StreamExt;
use tokio::sync::{broadcast, mpsc};

use crate::booking::{BookingService, InFlight};

/// Purchases waiting at most (beyond them, the reconciler drives the rest).
pub const CAPACITY: usize = 100_000;
/// Purchases taken from the queue at once.
pub const BATCH: usize = 512;
/// Purchases of one batch being charged at the same time.
pub const PARALLEL: usize = 64;

/// One purchase whose step 1 is done.
#[derive(Debug)]
pub struct Queued {
    pub event: Arc<Event>,
    pub booking: Booking,
    pub payment: Payment,
}

/// The node's commit queue. The worker starts with the first purchase.
pub struct CommitQueue {
    tx: OnceLock<mpsc::Sender<Queued>>,
    settled: broadcast::Sender<BookingId>,
}

impl std::fmt::Debug for CommitQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitQueue").finish_non_exhaustive()
    }
}

impl Default for CommitQueue {
    fn default() -> Self {
        Self {
            tx: OnceLock::new(),
            settled: broadcast::channel(4096).0,
        }
    }
}

impl CommitQueue {
    /// Queues a purchase for `service`'s worker. `false` when the queue is full: the purchase
    /// stays STARTED and queued, and the reconciler completes it.
    pub fn push(&self, service: &BookingService, q: Queued) -> bool {
        let tx = self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::channel(CAPACITY);
            tokio::spawn(run(service.clone(), rx, self.settled.clone()));
            tx
        });
        metrics::gauge!("commit_queue_depth").set((CAPACITY - tx.capacity()) as f64);
        match tx.try_send(q) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "commit queue full; the reconciler completes the purchase");
                metrics::counter!("commit_queue_overflow_total").increment(1);
                false
            }
        }
    }

    /// Booking ids as their queued purchase settles on this node.
    pub fn settled(&self) -> broadcast::Receiver<BookingId> {
        self.settled.subscribe()
    }

    /// Tells the streams of `booking` to look again (settled here, outside the queue).
    pub fn notify(&self, booking: BookingId) {
        let _ = self.settled.send(booking);
    }
}

async fn run(
    service: BookingService,
    mut rx: mpsc::Receiver<Queued>,
    settled: broadcast::Sender<BookingId>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        metrics::histogram!("commit_queue_batch_size").record(batch.len() as f64);
        // One event's purchases together: they share the event and its hot rows.
        let mut by_event: HashMap<EventId, Vec<Queued>> = HashMap::new();
        for q in batch.drain(..) {
            by_event.entry(q.event.id).or_default().push(q);
        }
        for (_, purchases) in by_event {
            futures_util::stream::iter(purchases)
                .for_each_concurrent(PARALLEL, |q| {
                    let service = service.clone();
                    let settled = settled.clone();
                    async move {
                        let booking = q.booking.id;
                        charge(&service, q).await;
                        let _ = settled.send(booking);
                    }
                })
                .await;
        }
        metrics::counter!("commit_queue_processed_total").increment(1);
    }
}

async fn charge(service: &BookingService, q: Queued) {
    // A reconciliation of the same payment on this node is as good: leave it to that one.
    let Some(_guard) = InFlight::claim(&service.in_flight, q.payment.id) else {
        return;
    };
    let id = q.booking.id;
    match service.charge(q.event, q.booking, q.payment).await {
        Ok(_) => metrics::counter!("commits_queued_settled_total").increment(1),
        Err(e) => {
            // The payment stays STARTED and queued: the reconciler completes it.
            tracing::warn!(booking_id = %id, error = %e, "queued commit left to the reconciler");
            metrics::counter!("commits_queued_deferred_total").increment(1);
        }
    }
}
