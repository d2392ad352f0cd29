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
//!
//! Scaled out ([`CommitQueue::use_log`]), the queue is a shared [`CommitLog`] (NATS JetStream)
//! instead: a message names the purchase, workers on every node pull batches, read the payment
//! and booking from the store, charge, and acknowledge once the outcome is stored. A store
//! error is retried with back-off; past the log's delivery limit the message is a dead letter
//! and the purchase is left, STARTED and queued, to the reconciler, as is one whose message
//! could not be published at all.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use boxoffice_domain::booking::{Booking, Payment, PaymentStatus};
use boxoffice_domain::event::Event;
use boxoffice_domain::ids::{BookingId, EventId};
use boxoffice_domain::onsale::{CommitLog, Delivery, QueuedCommit};
use futures_util::StreamExt;
use tokio::sync::{broadcast, mpsc};

use crate::booking::{BookingService, CommitReply, InFlight};

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
    /// The shared commit log, when the node is scaled out.
    log: OnceLock<Arc<dyn CommitLog>>,
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
            log: OnceLock::new(),
            settled: broadcast::channel(4096).0,
        }
    }
}

impl CommitQueue {
    /// Takes purchases through `log` from now on, and starts `workers` workers on this node
    /// that pull from it. Call once, at start-up.
    pub fn use_log(&self, service: &BookingService, log: Arc<dyn CommitLog>, workers: usize) {
        if self.log.set(log.clone()).is_err() {
            return;
        }
        for _ in 0..workers.max(1) {
            tokio::spawn(consume(service.clone(), log.clone(), self.settled.clone()));
        }
    }

    /// Queues a purchase for `service`'s worker (or the shared log's). `false` when the queue
    /// is full or the log unreachable: the purchase stays STARTED and queued, and the
    /// reconciler completes it.
    pub async fn push(&self, service: &BookingService, q: Queued) -> bool {
        if let Some(log) = self.log.get() {
            return publish(log.as_ref(), &q).await;
        }
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
        // What is still waiting once this batch is taken (push sets it as purchases come in).
        metrics::gauge!("commit_queue_depth").set(rx.len() as f64);
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

async fn publish(log: &dyn CommitLog, q: &Queued) -> bool {
    let commit = QueuedCommit {
        payment_id: q.payment.id,
        booking_id: q.booking.id,
        event_id: q.event.id,
        key: q.payment.idempotency_key.clone(),
    };
    match log.publish(&commit).await {
        Ok(()) => {
            metrics::counter!("commit_queue_published_total").increment(1);
            true
        }
        Err(e) => {
            tracing::warn!(booking_id = %q.booking.id, error = %e, "commit log unreachable; the reconciler completes the purchase");
            metrics::counter!("commit_queue_publish_failed_total").increment(1);
            false
        }
    }
}

/// What became of one delivery.
enum Handled {
    /// The outcome is stored (here, elsewhere, or there is nothing to do): acknowledge.
    Done,
    /// Try again later.
    Retry,
}

/// One worker: pulls batches from the shared log until the node stops.
async fn consume(
    service: BookingService,
    log: Arc<dyn CommitLog>,
    settled: broadcast::Sender<BookingId>,
) {
    loop {
        let batch = match log.pull(BATCH).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "cannot pull queued commits; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if batch.is_empty() {
            continue;
        }
        metrics::histogram!("commit_queue_batch_size").record(batch.len() as f64);
        // Each event of the batch read once.
        let mut events: HashMap<EventId, Option<Arc<Event>>> = HashMap::new();
        for d in &batch {
            if let Ok(c) = d.commit()
                && !events.contains_key(&c.event_id)
            {
                let e = service.store.event(c.event_id).await.ok().flatten();
                events.insert(c.event_id, e.map(Arc::new));
            }
        }
        let events = &events;
        futures_util::stream::iter(batch)
            .for_each_concurrent(PARALLEL, |d| {
                let service = service.clone();
                let settled = settled.clone();
                let log = log.clone();
                async move { settle_delivery(&service, log.as_ref(), d, events, &settled).await }
            })
            .await;
        metrics::counter!("commit_queue_processed_total").increment(1);
    }
}

async fn settle_delivery(
    service: &BookingService,
    log: &dyn CommitLog,
    d: Box<dyn Delivery>,
    events: &HashMap<EventId, Option<Arc<Event>>>,
    settled: &broadcast::Sender<BookingId>,
) {
    let handled = match d.commit() {
        Ok(c) => {
            let event = events.get(&c.event_id).cloned().flatten();
            handle(service, c, event, settled).await
        }
        Err(e) => {
            tracing::error!(error = %e, "unreadable queued commit dropped");
            Handled::Done
        }
    };
    let attempt = d.attempt();
    let result = match handled {
        Handled::Done => d.ack().await,
        Handled::Retry if attempt >= log.max_deliver() => {
            tracing::warn!(
                attempt,
                "queued commit dead-lettered; the reconciler completes the purchase"
            );
            d.give_up().await
        }
        Handled::Retry => d.retry(retry_after(attempt)).await,
    };
    // An answer the broker missed means one more delivery, which changes nothing.
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not settle a delivery with the commit log");
    }
}

/// Back-off between deliveries of a purchase that could not be settled: 1 s, 2 s, 4 s, … 30 s.
fn retry_after(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(5)).min(Duration::from_secs(30))
}

/// Charges one queued purchase named by a message. The store is the fence: a purchase whose
/// payment is no longer STARTED was settled already (a redelivery, a duplicate, another node,
/// the reconciler), and nothing happens.
async fn handle(
    service: &BookingService,
    c: &QueuedCommit,
    event: Option<Arc<Event>>,
    settled: &broadcast::Sender<BookingId>,
) -> Handled {
    let payment = match service.store.payment(c.payment_id).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            tracing::warn!(payment_id = %c.payment_id, "queued commit names no payment");
            return Handled::Done;
        }
        Err(e) => {
            tracing::warn!(payment_id = %c.payment_id, error = %e, "queued commit: store unavailable");
            return Handled::Retry;
        }
    };
    if payment.status != PaymentStatus::Started {
        metrics::counter!("commit_queue_already_settled_total").increment(1);
        let _ = settled.send(c.booking_id);
        return Handled::Done;
    }
    // Someone on this node is on it already; it completes it, or the reconciler does.
    let Some(_guard) = InFlight::claim(&service.in_flight, payment.id) else {
        return Handled::Done;
    };
    let (booking, event) = match (service.store.booking(payment.booking_id).await, event) {
        (Ok(Some(b)), Some(e)) => (b, e),
        (Ok(None), _) => return Handled::Done,
        _ => return Handled::Retry,
    };
    match service.charge(event, booking, payment).await {
        Ok(CommitReply::Stored(_)) => {
            metrics::counter!("commits_queued_settled_total").increment(1);
            let _ = settled.send(c.booking_id);
            Handled::Done
        }
        // The provider's answer is unknown: ask again later, with the same key.
        Ok(CommitReply::Pending(_)) => Handled::Retry,
        Err(e) => {
            tracing::warn!(booking_id = %c.booking_id, error = %e, "queued commit: settling failed");
            Handled::Retry
        }
    }
}
