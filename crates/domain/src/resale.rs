//! The second life of a ticket: resale listings, payouts to sellers, and transfers.
//!
//! ```text
//!   ticket VALID ──list──► LISTED ──sold──► REISSUED   (the buyer gets a new VALID ticket)
//!        ▲                   │
//!        └────withdraw───────┘
//!   ticket VALID ──transfer accepted──► REISSUED      (the recipient gets a new VALID ticket)
//!
//!   listing ACTIVE ──buyer holds──► RESERVED ──buyer pays──► SOLD
//!      │   ▲                          │
//!      │   └──hold released/expired───┘   (a reservation past its time is ACTIVE again)
//!      ├──seller withdraws──► WITHDRAWN
//!      └──event starts or is cancelled──► EXPIRED / WITHDRAWN
//!
//!   payout SCHEDULED ──after the event──► PAID
//!          └──event cancelled──► CLAWED_BACK
//! ```
//!
//! A reissued ticket's token dies with it: a later owner always gets a new id and token, so a
//! screenshot of the seller's barcode never gets in. The rules here are pure: stores and the
//! API call them, so every backend lists, sells and pays out alike.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::booking::TicketStatus;
use crate::ids::{BookingId, CustomerId, EventId, ListingId, SeatId, TicketId};
use crate::money::Currency;

macro_rules! status_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),*
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),*
                }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($text => Some($name::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

status_enum!(
    /// Where a resale listing stands.
    ListingStatus {
        Active = "ACTIVE",
        Reserved = "RESERVED",
        Sold = "SOLD",
        Withdrawn = "WITHDRAWN",
        Expired = "EXPIRED",
    }
);

status_enum!(
    /// Where a seller's payout stands.
    PayoutStatus {
        Scheduled = "SCHEDULED",
        Paid = "PAID",
        ClawedBack = "CLAWED_BACK",
    }
);

status_enum!(
    /// Where a ticket transfer stands.
    TransferStatus {
        Pending = "PENDING",
        Accepted = "ACCEPTED",
        Cancelled = "CANCELLED",
        Expired = "EXPIRED",
    }
);

impl ListingStatus {
    /// Whether the listing is still on offer or held by a buyer.
    pub fn is_open(self) -> bool {
        matches!(self, ListingStatus::Active | ListingStatus::Reserved)
    }
}

/// A ticket offered for resale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub id: ListingId,
    pub event_id: EventId,
    pub ticket_id: TicketId,
    pub seat_id: SeatId,
    pub section: u16,
    pub seller: CustomerId,
    /// What the buyer pays.
    pub price_cents: i64,
    /// What the platform keeps; the seller gets `price_cents - fee_cents`.
    pub fee_cents: i64,
    /// What the seller paid for the ticket (the cap is a percentage of it).
    pub face_value_cents: i64,
    pub currency: Currency,
    pub status: ListingStatus,
    /// The buyer's booking, while RESERVED (and once SOLD).
    pub booking_id: Option<BookingId>,
    pub reserved_until: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Listing {
    pub fn seller_proceeds_cents(&self) -> i64 {
        self.price_cents - self.fee_cents
    }

    /// The status that counts at `now`: a reservation whose hold ran out is on offer again,
    /// even before anyone has written that down.
    pub fn effective_status(&self, now: OffsetDateTime) -> ListingStatus {
        match (self.status, self.reserved_until) {
            (ListingStatus::Reserved, Some(until)) if until <= now => ListingStatus::Active,
            (s, _) => s,
        }
    }
}

/// `reserved_until` of a listing whose buyer is paying: like a seat in PENDING, it never
/// lapses by the clock while money may be moving; settling the payment ends or restores it.
pub const PAYING: OffsetDateTime = time::macros::datetime!(9999-01-01 0:00 UTC);

/// The most a ticket of face value `face_value_cents` may be listed for: the event's cap in
/// percent of face value, rounded down. A cap of 0 turns resale off.
pub fn max_price_cents(face_value_cents: i64, cap_percent: u32) -> i64 {
    face_value_cents.saturating_mul(i64::from(cap_percent)) / 100
}

/// The platform's fee on a resale price, in basis points of it, rounded half up; never more
/// than the price.
pub fn fee_cents(price_cents: i64, fee_basis_points: u32) -> i64 {
    let fee = (price_cents.saturating_mul(i64::from(fee_basis_points)) + 5_000) / 10_000;
    fee.clamp(0, price_cents)
}

/// Why a ticket cannot be listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    /// Not the caller's ticket, or no such ticket: indistinguishable to the caller.
    #[error("no such ticket")]
    NotFound,
    /// The ticket is already on offer.
    #[error("the ticket is already listed")]
    AlreadyListed,
    /// Used, void or reissued tickets cannot be sold.
    #[error("the ticket is {0:?}")]
    NotValid(TicketStatus),
    /// A transfer of the ticket is pending.
    #[error("a transfer of the ticket is pending")]
    TransferPending,
    #[error("the event has started")]
    EventStarted,
    #[error("the event was cancelled")]
    EventCancelled,
    /// The organizer turned resale off (a cap of 0%).
    #[error("resale is turned off for this event")]
    ResaleOff,
    #[error("the price is above the cap of {max_price_cents}")]
    AboveCap { max_price_cents: i64 },
}

/// What a listing is decided from.
#[derive(Debug, Clone, Copy)]
pub struct ListingCheck<'a> {
    pub ticket_owner: &'a CustomerId,
    pub ticket_status: TicketStatus,
    pub caller: &'a CustomerId,
    pub transfer_pending: bool,
    pub event_starts_at: OffsetDateTime,
    pub event_cancelled: bool,
    pub cap_percent: u32,
    pub face_value_cents: i64,
    pub price_cents: i64,
    pub now: OffsetDateTime,
}

/// Whether the caller may list the ticket at that price: checked in this order, on every
/// store.
pub fn may_list(c: &ListingCheck<'_>) -> Result<(), ListError> {
    if c.ticket_owner != c.caller {
        return Err(ListError::NotFound);
    }
    match c.ticket_status {
        TicketStatus::Valid => {}
        TicketStatus::Listed => return Err(ListError::AlreadyListed),
        s => return Err(ListError::NotValid(s)),
    }
    if c.transfer_pending {
        return Err(ListError::TransferPending);
    }
    if c.event_cancelled {
        return Err(ListError::EventCancelled);
    }
    if c.now >= c.event_starts_at {
        return Err(ListError::EventStarted);
    }
    if c.cap_percent == 0 {
        return Err(ListError::ResaleOff);
    }
    let max = max_price_cents(c.face_value_cents, c.cap_percent);
    if c.price_cents > max {
        return Err(ListError::AboveCap {
            max_price_cents: max,
        });
    }
    Ok(())
}

/// Why a listing cannot be withdrawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WithdrawError {
    #[error("no such listing")]
    NotFound,
    /// A buyer holds it (or bought it); a reservation that lapses makes it ACTIVE again.
    #[error("the listing is {0:?}")]
    NotActive(ListingStatus),
}

/// Whether the seller may withdraw the listing at `now`.
pub fn may_withdraw(
    listing: &Listing,
    caller: &CustomerId,
    now: OffsetDateTime,
) -> Result<(), WithdrawError> {
    if &listing.seller != caller {
        return Err(WithdrawError::NotFound);
    }
    match listing.effective_status(now) {
        ListingStatus::Active => Ok(()),
        s => Err(WithdrawError::NotActive(s)),
    }
}

/// Whether a buyer may hold the listing at `now`: on offer, and not their own.
pub fn may_reserve(
    listing: &Listing,
    buyer: &CustomerId,
    now: OffsetDateTime,
) -> Result<(), ReserveRefusal> {
    if &listing.seller == buyer {
        return Err(ReserveRefusal::OwnListing);
    }
    match listing.effective_status(now) {
        ListingStatus::Active => Ok(()),
        _ => Err(ReserveRefusal::Unavailable),
    }
}

/// Why a buyer cannot hold a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReserveRefusal {
    OwnListing,
    Unavailable,
}

/// A seller's earnings from one resale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payout {
    pub id: crate::ids::PayoutId,
    pub event_id: EventId,
    pub listing_id: ListingId,
    pub seller: CustomerId,
    pub amount_cents: i64,
    pub currency: Currency,
    pub status: PayoutStatus,
    /// Paid out from then on: after the event, when it can no longer be cancelled.
    pub available_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
}

/// When a payout for an event starting at `starts_at` becomes payable: a day after the event,
/// once a cancellation can no longer claw it back.
pub fn payout_available_at(starts_at: OffsetDateTime) -> OffsetDateTime {
    starts_at + time::Duration::days(1)
}

/// A ticket given away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub id: crate::ids::TransferId,
    pub event_id: EventId,
    pub ticket_id: TicketId,
    pub from: CustomerId,
    pub to: CustomerId,
    pub status: TransferStatus,
    /// The recipient's ticket, once accepted.
    pub new_ticket_id: Option<TicketId>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    proptest! {
        #[test]
        fn fees_never_exceed_the_price_and_proceeds_add_up(
            price in 0i64..10_000_000, bps in 0u32..10_000,
        ) {
            let fee = fee_cents(price, bps);
            prop_assert!(fee >= 0 && fee <= price);
            prop_assert_eq!(fee + (price - fee), price);
        }

        #[test]
        fn the_cap_is_a_percentage_of_face_value(face in 0i64..10_000_000, pct in 0u32..1000) {
            let max = max_price_cents(face, pct);
            prop_assert!(max * 100 <= face * i64::from(pct));
            prop_assert!((max + 1) * 100 > face * i64::from(pct));
        }
    }

    #[test]
    fn listing_checks_in_order() {
        let alice = CustomerId::parse("alice").unwrap();
        let bob = CustomerId::parse("bob").unwrap();
        let now = datetime!(2027-01-01 12:00 UTC);
        let ok = ListingCheck {
            ticket_owner: &alice,
            ticket_status: TicketStatus::Valid,
            caller: &alice,
            transfer_pending: false,
            event_starts_at: now + time::Duration::days(30),
            event_cancelled: false,
            cap_percent: 120,
            face_value_cents: 10_000,
            price_cents: 12_000,
            now,
        };
        assert_eq!(may_list(&ok), Ok(()));
        assert_eq!(
            may_list(&ListingCheck {
                price_cents: 12_001,
                ..ok
            }),
            Err(ListError::AboveCap {
                max_price_cents: 12_000
            })
        );
        assert_eq!(
            may_list(&ListingCheck { caller: &bob, ..ok }),
            Err(ListError::NotFound)
        );
        assert_eq!(
            may_list(&ListingCheck {
                ticket_status: TicketStatus::Listed,
                ..ok
            }),
            Err(ListError::AlreadyListed)
        );
        assert_eq!(
            may_list(&ListingCheck {
                ticket_status: TicketStatus::Used,
                ..ok
            }),
            Err(ListError::NotValid(TicketStatus::Used))
        );
        assert_eq!(
            may_list(&ListingCheck {
                event_starts_at: now,
                ..ok
            }),
            Err(ListError::EventStarted)
        );
        assert_eq!(
            may_list(&ListingCheck {
                cap_percent: 0,
                ..ok
            }),
            Err(ListError::ResaleOff)
        );
    }

    #[test]
    fn lapsed_reservations_are_on_offer_again() {
        let now = datetime!(2027-01-01 12:00 UTC);
        let seller = CustomerId::parse("alice").unwrap();
        let l = Listing {
            id: ListingId::new(),
            event_id: EventId::new(),
            ticket_id: TicketId::new(),
            seat_id: SeatId::parse("1-A-1").unwrap(),
            section: 1,
            seller: seller.clone(),
            price_cents: 100,
            fee_cents: 10,
            face_value_cents: 100,
            currency: "USD".parse().unwrap(),
            status: ListingStatus::Reserved,
            booking_id: Some(BookingId::new()),
            reserved_until: Some(now - time::Duration::seconds(1)),
            created_at: now,
            updated_at: now,
        };
        assert_eq!(l.effective_status(now), ListingStatus::Active);
        assert_eq!(l.seller_proceeds_cents(), 90);
        assert_eq!(may_withdraw(&l, &seller, now), Ok(()));
        let held = Listing {
            reserved_until: Some(now + time::Duration::minutes(1)),
            ..l.clone()
        };
        assert_eq!(
            may_withdraw(&held, &seller, now),
            Err(WithdrawError::NotActive(ListingStatus::Reserved))
        );
        assert_eq!(
            may_reserve(&l, &seller, now),
            Err(ReserveRefusal::OwnListing)
        );
        assert_eq!(
            may_reserve(&held, &CustomerId::parse("bob").unwrap(), now),
            Err(ReserveRefusal::Unavailable)
        );
    }
}
