//! The seat state machine.
//!
//! ```text
//!            hold                 commit starts          payment captured
//!   OPEN ───────────────► HOLD ───────────────► PENDING ────────────────► SOLD
//!    ▲  ◄─────────────────  │ ◄──────────────────  │                        │
//!    │   release / expiry   │   payment declined   │ payment failed and     │
//!    │                      │                      │ hold expired           │
//!    └──────────────────────┴──────────────────────┘◄───────────────────────┘
//!                                                     refund (cancellation)
//! ```
//!
//! A HOLD whose expiry has passed is OPEN for every purpose, without anyone having to write
//! that down first: [`SeatState::effective`] is what allocation looks at. PENDING never expires
//! by the clock, because money may be moving; only reconciliation with the payment provider
//! moves a seat out of PENDING.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SeatState {
    Open,
    Hold,
    Pending,
    Sold,
}

impl SeatState {
    pub fn as_str(self) -> &'static str {
        match self {
            SeatState::Open => "OPEN",
            SeatState::Hold => "HOLD",
            SeatState::Pending => "PENDING",
            SeatState::Sold => "SOLD",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "OPEN" => SeatState::Open,
            "HOLD" => SeatState::Hold,
            "PENDING" => SeatState::Pending,
            "SOLD" => SeatState::Sold,
            _ => return None,
        })
    }

    /// The state that matters at `now`: an expired hold is open.
    pub fn effective(self, hold_expires_at: Option<OffsetDateTime>, now: OffsetDateTime) -> Self {
        match (self, hold_expires_at) {
            (SeatState::Hold, Some(exp)) if exp <= now => SeatState::Open,
            (s, _) => s,
        }
    }

    /// Whether `self → to` is a legal move. Stores use this to document (and tests to check)
    /// that every write they make is one of these arrows.
    pub fn can_become(self, to: SeatState) -> bool {
        use SeatState::*;
        matches!(
            (self, to),
            (Open, Hold)
                | (Hold, Open)
                | (Hold, Pending)
                | (Pending, Sold)
                | (Pending, Hold)
                | (Pending, Open)
                | (Sold, Open)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn expired_holds_are_open_pending_never_expires() {
        let now = datetime!(2026-01-01 12:00 UTC);
        let past = Some(datetime!(2026-01-01 11:59 UTC));
        let future = Some(datetime!(2026-01-01 12:01 UTC));
        assert_eq!(SeatState::Hold.effective(past, now), SeatState::Open);
        assert_eq!(SeatState::Hold.effective(future, now), SeatState::Hold);
        assert_eq!(SeatState::Pending.effective(past, now), SeatState::Pending);
        assert_eq!(SeatState::Sold.effective(past, now), SeatState::Sold);
    }

    #[test]
    fn a_seat_is_never_sold_without_passing_through_pending() {
        use SeatState::*;
        assert!(!Open.can_become(Sold));
        assert!(!Hold.can_become(Sold));
        assert!(Pending.can_become(Sold));
        assert!(!Sold.can_become(Hold));
        for s in [Open, Hold, Pending, Sold] {
            assert_eq!(SeatState::parse(s.as_str()), Some(s));
            assert!(!s.can_become(s));
        }
    }
}
