//! The hold gate in front of the store (scaled out: Redis, see [`HoldGate`]). Holds of explicit
//! seats ask the gate first, so most of an on-sale's losing buyers are refused without a
//! database transaction; the store still checks every hold and stays the fence. Holds by
//! section and quantity (best available) and resale listings go straight to the store, since
//! which seats they take is only known there.
//!
//! A gate that errs or is slow is skipped: the hold goes to the database (slower, never wrong)
//! and `hold_gate_bypassed_total` counts it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use boxoffice_domain::booking::{Booking, HoldRequest, Selection};
use boxoffice_domain::onsale::HoldGate;

/// This node's gate, if it has one.
#[derive(Debug, Default)]
pub struct Gate {
    gate: OnceLock<Arc<dyn HoldGate>>,
}

/// What the gate said about a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Passage {
    /// Another booking holds some of the seats: refuse without asking the store.
    Refused,
    /// The seats are marked for this booking: undo if the store refuses.
    Marked,
    /// Not asked (no gate, or not explicit seats) or not answering: the store decides alone.
    Bypassed,
}

impl Gate {
    /// Puts `gate` in front of this node's holds. Call once, at start-up.
    pub fn install(&self, gate: Arc<dyn HoldGate>) {
        let _ = self.gate.set(gate);
    }

    /// Asks the gate to mark `req`'s seats for its booking for `ttl`.
    pub async fn take(&self, req: &HoldRequest, ttl: Duration) -> Passage {
        let (Some(gate), Selection::Seats(seats)) = (self.gate.get(), &req.selection) else {
            return Passage::Bypassed;
        };
        match gate.take(req.event.id, seats, req.booking_id, ttl).await {
            Ok(true) => Passage::Marked,
            Ok(false) => {
                metrics::counter!("hold_gate_refused_total").increment(1);
                Passage::Refused
            }
            Err(e) => {
                tracing::warn!(error = %e, "hold gate skipped; the database decides");
                metrics::counter!("hold_gate_bypassed_total").increment(1);
                Passage::Bypassed
            }
        }
    }

    /// The store refused a hold the gate had marked: clears the marks.
    pub async fn undo(&self, req: &HoldRequest) {
        if let (Some(gate), Selection::Seats(seats)) = (self.gate.get(), &req.selection)
            && let Err(e) = gate.release(req.event.id, seats, req.booking_id).await
        {
            // The marks expire with the hold's TTL; until then they only refuse buyers.
            tracing::warn!(error = %e, "could not clear hold gate marks");
        }
    }

    /// A booking's seats went back on sale (released, cancelled): clears its marks.
    pub async fn released(&self, b: &Booking) {
        let Some(gate) = self.gate.get() else { return };
        let seats: Vec<_> = b.seats.iter().map(|s| s.seat_id.clone()).collect();
        if let Err(e) = gate.release(b.event_id, &seats, b.id).await {
            tracing::warn!(booking_id = %b.id, error = %e, "could not clear hold gate marks");
        }
    }
}
