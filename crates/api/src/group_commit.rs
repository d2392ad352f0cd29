//! Group commit for the write every paid purchase ends with: recording that its payment was
//! captured (AUTHORIZED → CAPTURED). Concurrent captures wait together and are written by one
//! statement; while one group is being written the next one gathers, so a group grows with
//! the load and a capture on a quiet node waits for nothing.
//!
//! Losing a group (the node dies, the database refuses) loses nothing: the payment stays
//! AUTHORIZED and the reconciler asks the provider and records the capture, as it did when
//! each capture was written on its own.

use std::sync::{Arc, OnceLock};

use boxoffice_domain::booking::PaymentKey;
use boxoffice_domain::booking::PaymentStatus;
use boxoffice_domain::ports::{Clock, Store, StoreError};
use tokio::sync::{mpsc, oneshot};

/// The most captures one statement records.
const MAX_GROUP: usize = 512;

type Waiter = (PaymentKey, oneshot::Sender<Result<(), StoreError>>);

/// Records captures a group at a time; cheap to clone (clones share the writer).
#[derive(Debug, Default, Clone)]
pub struct CaptureLog {
    writer: Arc<OnceLock<mpsc::UnboundedSender<Waiter>>>,
}

impl CaptureLog {
    /// Records that `payment` was captured, together with whichever captures are waiting, and
    /// returns once that write is done.
    pub async fn record(
        &self,
        store: &Arc<dyn Store>,
        clock: &Arc<dyn Clock>,
        payment: PaymentKey,
    ) -> Result<(), StoreError> {
        let writer = self.writer.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(write_groups(store.clone(), clock.clone(), rx));
            tx
        });
        let (tx, rx) = oneshot::channel();
        if writer.send((payment, tx)).is_ok()
            && let Ok(done) = rx.await
        {
            return done;
        }
        // The writer is gone (its runtime ended): write this one alone.
        store
            .set_payment_status(
                payment,
                &[PaymentStatus::Authorized],
                PaymentStatus::Captured,
                clock.now(),
            )
            .await
            .map(|_| ())
    }
}

async fn write_groups(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    mut rx: mpsc::UnboundedReceiver<Waiter>,
) {
    let mut group: Vec<Waiter> = Vec::with_capacity(MAX_GROUP);
    while rx.recv_many(&mut group, MAX_GROUP).await > 0 {
        let ids: Vec<PaymentKey> = group.iter().map(|(key, _)| *key).collect();
        let written = store
            .set_payments_status(
                &ids,
                &[PaymentStatus::Authorized],
                PaymentStatus::Captured,
                clock.now(),
            )
            .await;
        metrics::histogram!("capture_group_size").record(ids.len() as f64);
        for (_, waiter) in group.drain(..) {
            let _ = waiter.send(match &written {
                Ok(_) => Ok(()),
                Err(e) => Err(StoreError::Unavailable(e.to_string())),
            });
        }
    }
}
