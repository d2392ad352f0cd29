//! The booking state machine.
//!
//! ```text
//!   HOLD ──commit──► PENDING ──captured──► CONFIRMED ──refund──► CANCELLED
//!    │ ▲               │  │
//!    │ └──declined─────┘  └──failed, hold gone──► EXPIRED
//!    ├──released by owner──► CANCELLED
//!    └──hold expired──────► EXPIRED
//! ```

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum BookingStatus {
    Hold,
    Pending,
    Confirmed,
    Cancelled,
    Expired,
}

impl BookingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BookingStatus::Hold => "HOLD",
            BookingStatus::Pending => "PENDING",
            BookingStatus::Confirmed => "CONFIRMED",
            BookingStatus::Cancelled => "CANCELLED",
            BookingStatus::Expired => "EXPIRED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "HOLD" => BookingStatus::Hold,
            "PENDING" => BookingStatus::Pending,
            "CONFIRMED" => BookingStatus::Confirmed,
            "CANCELLED" => BookingStatus::Cancelled,
            "EXPIRED" => BookingStatus::Expired,
            _ => return None,
        })
    }

    /// A booking in a final state never changes again.
    pub fn is_final(self) -> bool {
        matches!(self, BookingStatus::Cancelled | BookingStatus::Expired)
    }

    /// Whether the booking still has a claim on its seats.
    pub fn holds_seats(self) -> bool {
        matches!(
            self,
            BookingStatus::Hold | BookingStatus::Pending | BookingStatus::Confirmed
        )
    }

    pub fn can_become(self, to: BookingStatus) -> bool {
        use BookingStatus::*;
        matches!(
            (self, to),
            (Hold, Pending)
                | (Hold, Cancelled)
                | (Hold, Expired)
                | (Pending, Confirmed)
                | (Pending, Hold)
                | (Pending, Expired)
                | (Confirmed, Cancelled)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BookingStatus::*;

    const ALL: [BookingStatus; 5] = [Hold, Pending, Confirmed, Cancelled, Expired];

    #[test]
    fn final_states_are_final() {
        for from in ALL.into_iter().filter(|s| s.is_final()) {
            for to in ALL {
                assert!(!from.can_become(to), "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn confirmation_only_from_pending() {
        for from in ALL {
            assert_eq!(from.can_become(Confirmed), from == Pending);
        }
        for s in ALL {
            assert_eq!(BookingStatus::parse(s.as_str()), Some(s));
        }
    }
}
