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

use time::OffsetDateTime;

use crate::ids::{BookingId, CustomerId, EventId, PaymentId, SeatId, TicketId};
use crate::money::{Currency, PriceCents};

/// What a buyer asks to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// These exact seats (or general-admission places), all or none.
    Seats(Vec<SeatId>),
    /// The best `quantity` places of a section: front rows first, adjacent seats in one row
    /// preferred. For general admission, any `quantity` places.
    BestAvailable { section: u16, quantity: u32 },
    /// These resale listings, all or none.
    Listings(Vec<crate::ids::ListingId>),
}

impl Selection {
    pub fn quantity(&self) -> u32 {
        match self {
            Selection::Seats(s) => s.len() as u32,
            Selection::Listings(l) => l.len() as u32,
            Selection::BestAvailable { quantity, .. } => *quantity,
        }
    }
}

/// A request to hold seats, fully decided by the caller (ids, times) so that stores only
/// carry it out. Times are whole microseconds, the precision stores keep.
#[derive(Debug, Clone)]
pub struct HoldRequest {
    pub booking_id: BookingId,
    /// The event, as the caller read it (events do not change once created).
    pub event: std::sync::Arc<crate::event::Event>,
    pub customer: CustomerId,
    pub selection: Selection,
    pub now: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

impl HoldRequest {
    pub fn event_id(&self) -> EventId {
        self.event.id
    }

    pub fn currency(&self) -> Currency {
        self.event.spec.currency
    }

    pub fn max_tickets_per_customer(&self) -> u32 {
        self.event.spec.policies.max_tickets_per_customer
    }
}

/// Why a hold was refused.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    /// Some requested seats are held or sold by someone else.
    #[error("seats unavailable: {0:?}")]
    Unavailable(Vec<SeatId>),
    /// Fewer than `requested` places are open in the section.
    #[error("only {available} of {requested} places available")]
    NotEnough { requested: u32, available: u32 },
    /// Seat ids that the event does not have.
    #[error("no such seats: {0:?}")]
    NoSuchSeats(Vec<SeatId>),
    /// Enough places are free, but concurrent buyers kept taking the ones picked: try again.
    #[error("concurrent buyers took the picked seats")]
    Busy,
    /// Listing ids that the event does not have.
    #[error("no such listings: {0:?}")]
    NoSuchListings(Vec<crate::ids::ListingId>),
    /// Some requested listings are held or sold by someone else, or withdrawn.
    #[error("listings unavailable: {0:?}")]
    ListingsUnavailable(Vec<crate::ids::ListingId>),
    /// The buyer is the seller of one of the listings.
    #[error("you cannot buy your own listing")]
    OwnListing,
    /// The event was cancelled by its organizer.
    #[error("the event was cancelled")]
    EventCancelled,
    /// The customer would hold more than the event allows.
    #[error("limit of {limit} tickets per customer; {already} already held or bought")]
    LimitExceeded { limit: u32, already: u32 },
    #[error(transparent)]
    Store(#[from] crate::ports::StoreError),
}

/// One seat of a booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookedSeat {
    pub seat_id: SeatId,
    pub section: u16,
    pub row: Option<String>,
    pub number: u32,
    pub price: PriceCents,
}

/// A ticket's life: VALID at the door; LISTED while offered for resale (still valid until
/// sold); USED once scanned; VOID when its booking was refunded or its payment failed;
/// REISSUED when resold or transferred — a new ticket with a new id and token replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TicketStatus {
    Valid,
    Listed,
    Used,
    Void,
    Reissued,
}

impl TicketStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::Valid => "VALID",
            TicketStatus::Listed => "LISTED",
            TicketStatus::Used => "USED",
            TicketStatus::Void => "VOID",
            TicketStatus::Reissued => "REISSUED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "VALID" => TicketStatus::Valid,
            "LISTED" => TicketStatus::Listed,
            "USED" => TicketStatus::Used,
            "VOID" => TicketStatus::Void,
            "REISSUED" => TicketStatus::Reissued,
            _ => return None,
        })
    }

    /// Whether this ticket gets its holder in: VALID or LISTED (a listed ticket is its
    /// owner's until it sells). Every other one is refused at the door.
    pub fn admits(self) -> bool {
        matches!(self, TicketStatus::Valid | TicketStatus::Listed)
    }

    /// Whether the ticket still stands for its seat (it can enter, or it did).
    pub fn is_live(self) -> bool {
        matches!(
            self,
            TicketStatus::Valid | TicketStatus::Listed | TicketStatus::Used
        )
    }
}

/// An admission ticket: one per sold seat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub id: TicketId,
    pub event_id: EventId,
    pub booking_id: BookingId,
    pub seat_id: SeatId,
    pub customer: CustomerId,
    pub status: TicketStatus,
    /// Signed, scannable token (verifiable offline with the published public key).
    pub token: String,
    pub attendee_name: Option<String>,
    pub issued_at: OffsetDateTime,
    pub checked_in_at: Option<OffsetDateTime>,
}

/// A ticket about to be issued: the caller signs the token before the store writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTicket {
    pub id: TicketId,
    pub seat_id: SeatId,
    pub token: String,
}

/// A booking with its seats and (once confirmed) tickets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    pub id: BookingId,
    pub event_id: EventId,
    pub customer: CustomerId,
    pub status: BookingStatus,
    pub expires_at: OffsetDateTime,
    pub seats: Vec<BookedSeat>,
    pub total_cents: i64,
    pub currency: Currency,
    pub contact_email: Option<String>,
    pub tickets: Vec<Ticket>,
    pub created_at: OffsetDateTime,
    pub confirmed_at: Option<OffsetDateTime>,
    pub cancelled_at: Option<OffsetDateTime>,
    /// Why the booking ended, when that was not its owner's doing: a stable code such as
    /// `payment-capture-failed` (see [`crate::rules::Revocation::reason`]).
    pub status_reason: Option<String>,
    /// Whether this booking buys resale listings rather than seats on first sale.
    pub resale: bool,
}

impl Booking {
    /// Puts seats in venue order (section, row, number) and tickets in the order of their
    /// seats, so that every store and every code path presents a booking the same way.
    pub fn sort(&mut self) {
        fn key(s: &BookedSeat) -> (u16, Option<u32>, u32) {
            (
                s.section,
                s.row.as_deref().and_then(crate::event::row_index),
                s.number,
            )
        }
        self.seats.sort_by_key(key);
        let position = |seat: &SeatId| self.seats.iter().position(|s| &s.seat_id == seat);
        let mut tickets = std::mem::take(&mut self.tickets);
        tickets.sort_by_key(|t| position(&t.seat_id));
        self.tickets = tickets;
    }

    /// The status a reader should see at `now`: an unpaid hold past its expiry is expired
    /// even before the sweeper has written that down.
    pub fn effective_status(&self, now: OffsetDateTime) -> BookingStatus {
        crate::rules::effective(self.status, self.expires_at, now)
    }
}

/// Payment records as stored beside bookings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentStatus {
    /// Created before calling the provider; outcome not known yet.
    Started,
    /// Funds reserved, not taken.
    Authorized,
    Captured,
    Declined,
    /// The provider refused the request itself, or the attempt never reached it.
    Failed,
    Voided,
    /// The booking was cancelled; the refund at the provider is owed.
    RefundPending,
    Refunded,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Started => "STARTED",
            PaymentStatus::Authorized => "AUTHORIZED",
            PaymentStatus::Captured => "CAPTURED",
            PaymentStatus::Declined => "DECLINED",
            PaymentStatus::Failed => "FAILED",
            PaymentStatus::Voided => "VOIDED",
            PaymentStatus::RefundPending => "REFUND_PENDING",
            PaymentStatus::Refunded => "REFUNDED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "STARTED" => PaymentStatus::Started,
            "AUTHORIZED" => PaymentStatus::Authorized,
            "CAPTURED" => PaymentStatus::Captured,
            "DECLINED" => PaymentStatus::Declined,
            "FAILED" => PaymentStatus::Failed,
            "VOIDED" => PaymentStatus::Voided,
            "REFUND_PENDING" => PaymentStatus::RefundPending,
            "REFUNDED" => PaymentStatus::Refunded,
            _ => return None,
        })
    }
}

/// A payment attempt, as the booking tables record it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: PaymentId,
    pub booking_id: BookingId,
    pub event_id: EventId,
    pub customer: CustomerId,
    pub provider: String,
    pub provider_ref: Option<String>,
    /// The key sent to the provider.
    pub idempotency_key: String,
    pub method: String,
    pub amount_cents: i64,
    pub currency: Currency,
    pub status: PaymentStatus,
    pub updated_at: OffsetDateTime,
    /// How many times reconciliation has tried to settle it and failed (drives back-off).
    pub attempts: u32,
    /// Taken by the commit queue (an on-sale): the provider may not have been asked yet, so
    /// reconciliation asks it (with the same key) rather than giving up on it.
    pub queued: bool,
}

/// A payment named together with the event it pays for. A payment lives with its event (on
/// the event's shard), and every statement that changes one filters by the event, so a write
/// to a payment names both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PaymentKey {
    pub event_id: EventId,
    pub id: PaymentId,
}

impl Payment {
    pub fn key(&self) -> PaymentKey {
        PaymentKey {
            event_id: self.event_id,
            id: self.id,
        }
    }
}

/// Picks the best `quantity` seats from `open` (seats of one section that are free, in any
/// order): the front-most row that has `quantity` adjacent seats, taking the run closest to
/// the row's centre; failing that, the front-most seats wherever they are. `None` if there
/// are fewer than `quantity`.
pub fn best_available(open: &[(u32, u32)], quantity: usize, row_len: u32) -> Option<Vec<usize>> {
    if quantity == 0 || open.len() < quantity {
        return None;
    }
    let mut idx: Vec<usize> = (0..open.len()).collect();
    idx.sort_by_key(|&i| open[i]);
    let centre = row_len as i64 + 1; // twice the centre of seats numbered 1..=row_len
    let mut best: Option<(u32, i64, usize)> = None; // (row, distance from centre, start)
    let mut start = 0;
    while start < idx.len() {
        // [start, end) is one row
        let row = open[idx[start]].0;
        let mut end = start;
        while end < idx.len() && open[idx[end]].0 == row {
            end += 1;
        }
        if best.is_some_and(|(r, _, _)| r < row) {
            break;
        }
        let mut run_start = start;
        for k in start..end {
            if k > start && open[idx[k]].1 != open[idx[k - 1]].1 + 1 {
                run_start = k;
            }
            if k + 1 - run_start >= quantity {
                let first = k + 1 - quantity;
                let mid = i64::from(open[idx[first]].1) + i64::from(open[idx[k]].1);
                let dist = (mid - centre).abs();
                if best.is_none_or(|(r, d, _)| row < r || (row == r && dist < d)) {
                    best = Some((row, dist, first));
                }
            }
        }
        start = end;
    }
    Some(match best {
        Some((_, _, first)) => idx[first..first + quantity].to_vec(),
        None => idx[..quantity].to_vec(),
    })
}

/// Whether these seat positions (row, number) are one unbroken run in one row.
pub fn is_adjacent_block(positions: &[(u32, u32)]) -> bool {
    let mut p = positions.to_vec();
    p.sort();
    p.windows(2)
        .all(|w| w[0].0 == w[1].0 && w[1].1 == w[0].1 + 1)
}

/// What to do with the free seats read for a best-available pick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// Take these (indexes into the candidates).
    Take(Vec<usize>),
    /// No adjacent block among these, but more seats lie further back: read a wider window.
    Widen,
    /// Fewer free seats than wanted.
    NotEnough,
}

/// Decides a best-available pick from `candidates` (row, number) read with a window of
/// `window` seats; `wide` says it was the widest window there is.
pub fn pick(
    candidates: &[(u32, u32)],
    quantity: u32,
    seats_per_row: u32,
    window: u32,
    wide: bool,
) -> Pick {
    let Some(found) = best_available(candidates, quantity as usize, seats_per_row) else {
        return Pick::NotEnough;
    };
    let chosen: Vec<(u32, u32)> = found.iter().map(|&i| candidates[i]).collect();
    let more_behind = candidates.len() >= window as usize;
    if is_adjacent_block(&chosen) || !more_behind || wide {
        Pick::Take(found)
    } else {
        Pick::Widen
    }
}

/// How many free seats, front first, a best-available pick reads: a small window is enough
/// while a section sells front to back; when it holds no adjacent block, one wider read (a few
/// rows' worth) looks for one further back.
pub fn candidate_windows(quantity: u32, seats_per_row: u32) -> (u32, u32) {
    let small = (quantity * 8).max(16);
    let wide = (seats_per_row * 3).clamp(small, 1_000);
    (small, wide)
}

#[cfg(test)]
mod picking {
    use super::best_available;
    use proptest::prelude::*;

    #[test]
    fn prefers_the_front_row_centre_block() {
        // Row 0: seats 1..=10 open except 5; row 1 all open.
        let mut open: Vec<(u32, u32)> = (1..=10).filter(|&n| n != 5).map(|n| (0, n)).collect();
        open.extend((1..=10).map(|n| (1, n)));
        let pick = best_available(&open, 4, 10).unwrap();
        let mut seats: Vec<_> = pick.iter().map(|&i| open[i]).collect();
        seats.sort();
        assert_eq!(seats, vec![(0, 6), (0, 7), (0, 8), (0, 9)]);
        // Six adjacent do not fit in row 0: row 1, centred.
        let pick = best_available(&open, 6, 10).unwrap();
        let mut seats: Vec<_> = pick.iter().map(|&i| open[i]).collect();
        seats.sort();
        assert_eq!(seats, vec![(1, 3), (1, 4), (1, 5), (1, 6), (1, 7), (1, 8)]);
    }

    #[test]
    fn adjacency() {
        use super::is_adjacent_block;
        assert!(is_adjacent_block(&[(2, 5), (2, 4), (2, 6)]));
        assert!(!is_adjacent_block(&[(2, 5), (2, 7)]));
        assert!(!is_adjacent_block(&[(2, 5), (3, 6)]));
        assert!(is_adjacent_block(&[(1, 1)]));
    }

    #[test]
    fn scattered_when_no_block_fits() {
        let open = vec![(0, 1), (0, 3), (1, 2), (2, 9)];
        let pick = best_available(&open, 3, 10).unwrap();
        let mut seats: Vec<_> = pick.iter().map(|&i| open[i]).collect();
        seats.sort();
        assert_eq!(seats, vec![(0, 1), (0, 3), (1, 2)]);
        assert!(best_available(&open, 5, 10).is_none());
    }

    proptest! {
        #[test]
        fn picks_exactly_quantity_distinct_open_seats(
            seats in proptest::collection::btree_set((0u32..6, 1u32..20), 0..80),
            q in 1usize..10,
        ) {
            let open: Vec<_> = seats.into_iter().collect();
            match best_available(&open, q, 19) {
                None => prop_assert!(open.len() < q),
                Some(p) => {
                    prop_assert_eq!(p.len(), q);
                    let mut d = p.clone();
                    d.sort();
                    d.dedup();
                    prop_assert_eq!(d.len(), q);
                    prop_assert!(p.iter().all(|&i| i < open.len()));
                }
            }
        }
    }
}
