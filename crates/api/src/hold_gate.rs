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

/// This node's gate, if it has one. Clones share it (the booking service clears the marks of
/// seats it puts back on sale; the routes mark and clear the rest).
#[derive(Debug, Default, Clone)]
pub struct Gate {
    gate: Arc<OnceLock<Arc<dyn HoldGate>>>,
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

    /// Asks the gate to mark `req`'s seats for its booking for `ttl`, and never beyond the
    /// hold's own `expires_at`: the marks lapse when the hold does, not `ttl` after this
    /// call (which comes a little, or under load a lot, after the hold's clock was read).
    pub async fn take(&self, req: &HoldRequest, ttl: Duration) -> Passage {
        let (Some(gate), Selection::Seats(seats)) = (self.gate.get(), &req.selection) else {
            return Passage::Bypassed;
        };
        let ttl = mark_ttl(req.expires_at, time::OffsetDateTime::now_utc(), ttl);
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

    /// A booking's seats went back on sale (released, cancelled, revoked, lapsed while
    /// paying): clears its marks, which would otherwise turn buyers away from open seats until
    /// the hold's time is up.
    pub async fn released(&self, b: &Booking) {
        let Some(gate) = self.gate.get() else { return };
        let seats: Vec<_> = b.seats.iter().map(|s| s.seat_id.clone()).collect();
        if let Err(e) = gate.release(b.event_id, &seats, b.id).await {
            tracing::warn!(booking_id = %b.id, error = %e, "could not clear hold gate marks");
        }
    }
}

/// How long a mark taken at `now` for a hold expiring at `expires_at` may live: what is left
/// of the hold, at most `ttl`, at least a millisecond (a hold already lapsed when it reaches
/// the gate gets a mark that is gone at once).
fn mark_ttl(
    expires_at: time::OffsetDateTime,
    now: time::OffsetDateTime,
    ttl: Duration,
) -> Duration {
    let left = Duration::try_from(expires_at - now).unwrap_or(Duration::ZERO);
    // Whole milliseconds, rounded down: Redis keeps milliseconds, and a mark may end a little
    // before its hold, never after.
    let left = Duration::from_millis(u64::try_from(left.as_millis()).unwrap_or(u64::MAX));
    left.min(ttl).max(Duration::from_millis(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_never_outlives_its_hold() {
        let now = time::OffsetDateTime::now_utc();
        let ttl = Duration::from_secs(300);
        // Reached the gate 40 ms after the hold's clock was read: 40 ms less.
        let expires = now + time::Duration::seconds(300) - time::Duration::milliseconds(40);
        assert_eq!(mark_ttl(expires, now, ttl), Duration::from_millis(299_960));
        // Never longer than the configured TTL (a clock behind the hold's).
        assert_eq!(mark_ttl(now + time::Duration::hours(1), now, ttl), ttl);
        // Lapsed already: gone at once.
        assert_eq!(
            mark_ttl(now - time::Duration::seconds(1), now, ttl),
            Duration::from_millis(1)
        );
        // Sub-millisecond rest is dropped, not rounded up.
        let expires = now + time::Duration::microseconds(2_900);
        assert_eq!(mark_ttl(expires, now, ttl), Duration::from_millis(2));
    }
}
