//! The on-sale waiting room: who gets in, in what order, and how fast.
//!
//! Order: everyone who joins before the event goes on sale gets a uniformly random place among
//! the other early joiners (a random sort key); later arrivals queue behind them in the order
//! they came (a key past every random one). Admission: the room lets in `admitPerMinute` buyers
//! per minute from `onSaleAt`, cumulatively, but never more at once than there are free seats
//! for the admitted buyers still shopping, and nobody once the event is sold out. Stores keep
//! the entries and the running count of admissions; these functions decide.

use time::OffsetDateTime;

use crate::event::WaitingRoom;
use crate::ids::{CustomerId, EventId, QueueId};

/// Sort keys below this are the random places of early joiners.
pub const LATE_KEYS_FROM: i64 = 1 << 62;

/// One buyer's place in one event's waiting room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    pub id: QueueId,
    pub event_id: EventId,
    pub customer: CustomerId,
    /// The entry's place: lower goes first (ties broken by id).
    pub sort_key: i64,
    pub joined_at: OffsetDateTime,
    /// When the buyer was let in.
    pub admitted_at: Option<OffsetDateTime>,
}

/// A request to join a room; the store returns the existing entry for a customer who joined
/// before (with a new key at the back if their admission has lapsed).
#[derive(Debug, Clone)]
pub struct QueueJoin {
    pub id: QueueId,
    pub event_id: EventId,
    pub customer: CustomerId,
    pub sort_key: i64,
    pub now: OffsetDateTime,
    /// An earlier admission at or before this instant has lapsed: queue again at `sort_key`.
    pub lapsed_before: OffsetDateTime,
}

/// One admission round: the store takes the room's lock, counts what it has admitted, and lets
/// in [`to_admit`] more, first in line first.
#[derive(Debug, Clone, Copy)]
pub struct AdmitRound {
    pub event_id: EventId,
    pub now: OffsetDateTime,
    /// Admissions the rate allows so far, in all ([`allowance`]).
    pub allowance: u64,
    /// Seats (or places) free right now.
    pub free_seats: u64,
    /// Admissions granted after this instant are still shopping.
    pub active_since: OffsetDateTime,
}

/// What a room looks like after an admission round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RoomCounts {
    /// Admitted so far, in all.
    pub admitted: u64,
    /// Still waiting.
    pub waiting: u64,
}

/// The sort key of a buyer joining at `joined_at`: a random place among early joiners, or a
/// place in arrival order after them. `random` is a uniformly random number.
pub fn sort_key(joined_at: OffsetDateTime, on_sale_at: OffsetDateTime, random: u64) -> i64 {
    if joined_at < on_sale_at {
        (random % (LATE_KEYS_FROM as u64)) as i64
    } else {
        let micros = (joined_at.unix_timestamp_nanos() / 1_000).max(0) as i64;
        LATE_KEYS_FROM.saturating_add(micros)
    }
}

/// How many buyers the room's rate lets in by `now`, in all: `admitPerMinute` per minute from
/// `onSaleAt`, the first of them at once.
pub fn allowance(room: &WaitingRoom, on_sale_at: OffsetDateTime, now: OffsetDateTime) -> u64 {
    if now < on_sale_at {
        return 0;
    }
    let elapsed_ms = ((now - on_sale_at).whole_milliseconds()).max(0) as u128;
    let per_minute = u128::from(room.admit_per_minute);
    // One batch right at the start (a second's worth, at least one buyer), then the rate.
    let first = per_minute.div_ceil(60).max(1);
    let total = first + per_minute * elapsed_ms / 60_000;
    total.min(u128::from(u64::MAX)) as u64
}

/// How many more buyers to let in now: what the rate still owes, but no more than the free
/// seats not already spoken for by admitted buyers who are still shopping.
pub fn to_admit(allowance: u64, admitted: u64, free_seats: u64, active: u64) -> u64 {
    let owed = allowance.saturating_sub(admitted);
    let room_for = free_seats.saturating_sub(active);
    owed.min(room_for)
}

/// Where a buyer stands, as the room's routes report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueStatus {
    /// In line; `position` buyers are ahead (0: next).
    Waiting { position: u64 },
    /// Let in; may hold seats until `until`.
    Admitted { until: OffsetDateTime },
    /// Every seat is sold: waiting longer cannot help.
    SoldOut,
    /// The admission lapsed unused; joining again queues at the back.
    Expired,
}

impl QueueStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            QueueStatus::Waiting { .. } => "WAITING",
            QueueStatus::Admitted { .. } => "ADMITTED",
            QueueStatus::SoldOut => "SOLD_OUT",
            QueueStatus::Expired => "EXPIRED",
        }
    }
}

/// A buyer's status: admitted (and not lapsed) wins, a lapsed admission is over; otherwise sold
/// out when nothing is left to sell, else waiting at `position`.
pub fn status(
    entry: &QueueEntry,
    room: &WaitingRoom,
    now: OffsetDateTime,
    position: u64,
    sold_out: bool,
) -> QueueStatus {
    if let Some(at) = entry.admitted_at {
        let until = at + room.admission();
        return if until > now {
            QueueStatus::Admitted { until }
        } else {
            QueueStatus::Expired
        };
    }
    if sold_out {
        QueueStatus::SoldOut
    } else {
        QueueStatus::Waiting { position }
    }
}

/// Seconds until a buyer `position` places from the front is likely let in.
pub fn estimated_wait_seconds(
    room: &WaitingRoom,
    on_sale_at: OffsetDateTime,
    now: OffsetDateTime,
    position: u64,
) -> u64 {
    let until_sale = if now < on_sale_at {
        (on_sale_at - now).whole_seconds().max(0) as u64
    } else {
        0
    };
    let per_minute = u64::from(room.admit_per_minute.max(1));
    until_sale + (position.saturating_add(1)).saturating_mul(60) / per_minute
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn room() -> WaitingRoom {
        WaitingRoom::new(datetime!(2027-01-01 9:00 UTC), 120, 10).unwrap()
    }

    #[test]
    fn early_joiners_go_before_late_ones_and_late_ones_in_order() {
        let sale = datetime!(2027-01-01 10:00 UTC);
        let early = sort_key(datetime!(2027-01-01 9:59 UTC), sale, u64::MAX);
        let late1 = sort_key(sale, sale, 0);
        let late2 = sort_key(datetime!(2027-01-01 10:00:01 UTC), sale, 0);
        assert!(early < late1 && late1 < late2);
        assert!(sort_key(datetime!(2027-01-01 9:00 UTC), sale, 7) >= 0);
    }

    #[test]
    fn the_rate_admits_a_first_batch_then_per_minute() {
        let sale = datetime!(2027-01-01 10:00 UTC);
        let r = room();
        assert_eq!(allowance(&r, sale, datetime!(2027-01-01 9:59:59 UTC)), 0);
        assert_eq!(allowance(&r, sale, sale), 2);
        assert_eq!(allowance(&r, sale, datetime!(2027-01-01 10:01 UTC)), 122);
    }

    #[test]
    fn admissions_are_bounded_by_free_seats() {
        assert_eq!(to_admit(100, 10, 1000, 0), 90);
        assert_eq!(to_admit(100, 10, 50, 20), 30);
        assert_eq!(to_admit(100, 10, 5, 20), 0);
        assert_eq!(to_admit(5, 10, 50, 0), 0);
    }

    #[test]
    fn a_lapsed_admission_waits_again_and_sold_out_says_so() {
        let r = room();
        let now = datetime!(2027-01-01 10:30 UTC);
        let mut e = QueueEntry {
            id: QueueId::new(),
            event_id: EventId::new(),
            customer: CustomerId::parse("a").unwrap(),
            sort_key: 1,
            joined_at: now,
            admitted_at: Some(datetime!(2027-01-01 10:25 UTC)),
        };
        assert!(matches!(
            status(&e, &r, now, 0, true),
            QueueStatus::Admitted { .. }
        ));
        e.admitted_at = Some(datetime!(2027-01-01 10:10 UTC));
        assert_eq!(status(&e, &r, now, 3, false), QueueStatus::Expired);
        e.admitted_at = None;
        assert_eq!(
            status(&e, &r, now, 3, false),
            QueueStatus::Waiting { position: 3 }
        );
        assert_eq!(status(&e, &r, now, 3, true), QueueStatus::SoldOut);
    }
}
