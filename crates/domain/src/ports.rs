//! Ports: the traits the outside world is reached through. Adapter crates implement them; the
//! API and the binary only ever see these traits, never a driver type.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use std::sync::Arc;

use crate::booking::{
    Booking, BookingStatus, HoldError, HoldRequest, NewTicket, Payment, PaymentKey, PaymentStatus,
    Ticket,
};
use crate::event::Event;
use crate::ids::{BookingId, CustomerId, EventId, ListingId, PaymentId, SeatId, TicketId};
use crate::money::PriceCents;
use crate::seat::SeatState;

/// A storage failure that is not the caller's fault. The message is for logs only: it may name
/// tables or drivers and must never reach a client.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or has no connection to spare right now.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug, corrupt data, a failed migration.
    #[error("storage failure: {0}")]
    Internal(String),
    /// Lost a race inside the database (a deadlock victim, a serialization failure) and
    /// retries did not help; trying again shortly will.
    #[error("storage contention: {0}")]
    Contention(String),
}

/// Errors that may wrap a [`StoreError`], so adapters can retry transient failures whatever
/// the use case's error type.
pub trait MaybeStoreError {
    fn store_error(&self) -> Option<&StoreError>;

    fn is_contention(&self) -> bool {
        matches!(self.store_error(), Some(StoreError::Contention(_)))
    }
}

impl MaybeStoreError for StoreError {
    fn store_error(&self) -> Option<&StoreError> {
        Some(self)
    }
}

impl MaybeStoreError for CommitError {
    fn store_error(&self) -> Option<&StoreError> {
        match self {
            CommitError::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl MaybeStoreError for ReleaseError {
    fn store_error(&self) -> Option<&StoreError> {
        match self {
            ReleaseError::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl MaybeStoreError for HoldError {
    fn store_error(&self) -> Option<&StoreError> {
        match self {
            HoldError::Store(e) => Some(e),
            _ => None,
        }
    }
}

/// Time, injectable so that hold expiry and refund windows can be tested without waiting.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Now, in whole microseconds: the precision every store keeps, so that a value answered
    /// from memory equals the same value read back later.
    fn now(&self) -> OffsetDateTime;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        crate::event::to_micros(OffsetDateTime::now_utc())
    }
}

/// How many places a section has in each state right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SectionAvailability {
    pub section: u16,
    pub capacity: u32,
    pub available: u32,
    pub held: u32,
    pub sold: u32,
    /// Sold places offered for resale (counted in `sold` too).
    #[serde(default)]
    pub resale: u32,
}

/// One seat of a seated section, as a seat map shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatView {
    pub id: SeatId,
    pub section: u16,
    pub row: Option<String>,
    pub number: u32,
    pub price: PriceCents,
    /// The effective state at the time of the read (an expired hold shows as open).
    pub state: SeatState,
    /// A listing on offer for this (sold) seat, with its price: the seat map shows it RESALE.
    #[serde(default)]
    pub resale: Option<(ListingId, i64)>,
}

/// An event's availability: per-section counts, and every numbered seat. General-admission
/// places are counted, not listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatMap {
    pub event_id: EventId,
    pub sections: Vec<SectionAvailability>,
    pub seats: Vec<SeatView>,
}

/// The source of truth. Every method is one use case and one transaction inside the backend;
/// a method either does all it says or nothing.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// A cheap round trip to the database, for readiness checks.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Stores a new event with its venue and sections, lays out every seat, and records the
    /// change in the outbox, atomically.
    async fn create_event(&self, event: &Event) -> Result<(), StoreError>;

    /// Stores many events at once (demo catalogs, imports). Seats are laid out lazily, the
    /// first time an event is booked, so that a catalog of 100,000 stadiums stays small.
    /// Events whose id is already stored are left as they are, so an import can be re-run.
    async fn create_events_bulk(&self, events: &[Event]) -> Result<(), StoreError>;

    async fn event(&self, id: EventId) -> Result<Option<Event>, StoreError>;

    /// The seat map of a stored event at `now`.
    async fn seat_map(&self, event: &Event, now: OffsetDateTime) -> Result<SeatMap, StoreError>;

    // ---- booking ----------------------------------------------------------------------

    /// Holds the selected seats for a new booking, all or none, within the customer's limit.
    /// Seats of events bulk-created without a layout are laid out first. Expired holds count
    /// as free. Records the change of availability in the outbox.
    async fn hold(&self, req: &HoldRequest) -> Result<Booking, HoldError>;

    /// A booking with its seats and tickets.
    async fn booking(&self, id: BookingId) -> Result<Option<Booking>, StoreError>;

    /// Every ticket a customer holds, newest first.
    async fn tickets_of(&self, customer: &CustomerId) -> Result<Vec<Ticket>, StoreError>;

    /// Step 1 of paying: records the idempotency key with the request's fingerprint and a
    /// payment row, and moves the booking and its seats from HOLD to PENDING — atomically.
    async fn begin_commit(&self, req: &CommitRequest) -> Result<CommitBegin, CommitError>;

    /// Step 2: settles a pending commit with what the payment provider said, and stores the
    /// response `render` produces under the idempotency key — atomically. Safe to call twice
    /// for one payment (the second call changes nothing and returns the first outcome).
    async fn finish_commit(&self, fin: &CommitFinish) -> Result<FinishedCommit, StoreError>;

    /// Moves a payment to `to` if it is in one of `from`; returns whether it moved.
    async fn set_payment_status(
        &self,
        payment: PaymentKey,
        from: &[PaymentStatus],
        to: PaymentStatus,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        Ok(self.set_payments_status(&[payment], from, to, now).await? == 1)
    }

    /// Moves each of these payments that is in one of `from` to `to`, in one atomic write;
    /// returns how many moved (the others are left as they are). Concurrent captures are
    /// recorded this way, a group at a time.
    async fn set_payments_status(
        &self,
        payments: &[PaymentKey],
        from: &[PaymentStatus],
        to: PaymentStatus,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError>;

    /// Releases a hold at once (its owner or an admin deleting it). Releasing a booking that
    /// is already cancelled or expired returns it unchanged.
    async fn release(&self, id: BookingId, now: OffsetDateTime) -> Result<Booking, ReleaseError>;

    /// Cancels a confirmed booking: voids its tickets, reopens its seats and marks its payment
    /// REFUND_PENDING, atomically. The caller then refunds at the provider.
    async fn cancel_confirmed(
        &self,
        id: BookingId,
        now: OffsetDateTime,
    ) -> Result<(Booking, Option<Payment>), ReleaseError>;

    /// Updates contact details and attendee names (by seat) of a booking.
    async fn update_details(
        &self,
        id: BookingId,
        contact_email: Option<String>,
        attendees: Vec<(SeatId, Option<String>)>,
        now: OffsetDateTime,
    ) -> Result<Booking, StoreError>;

    /// Expires up to `limit` holds whose time is up, returning their seats to sale. Returns how
    /// many bookings it expired.
    async fn expire_holds(&self, now: OffsetDateTime, limit: u32) -> Result<u32, StoreError>;

    /// Payments needing attention, last touched before `before` and due by their own
    /// next-attempt time at `now`, the longest-waiting first: STARTED (outcome unknown),
    /// AUTHORIZED (to capture, or to void if their booking did not confirm), REFUND_PENDING.
    async fn unsettled_payments(
        &self,
        before: OffsetDateTime,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Payment>, StoreError>;

    /// Records a failed attempt to settle a payment: one more attempt, the next not before
    /// `next_attempt_at`, and the error (for operators; never shown to customers).
    async fn defer_payment(
        &self,
        payment: PaymentKey,
        next_attempt_at: OffsetDateTime,
        error: &str,
    ) -> Result<(), StoreError>;

    /// How many payments are unsettled, and since when the oldest.
    async fn payment_backlog(&self) -> Result<PaymentBacklog, StoreError>;

    /// A payment by id.
    async fn payment(&self, id: PaymentId) -> Result<Option<Payment>, StoreError>;

    /// A payment by the provider's reference for it (`pi_…`) or, for an attempt whose answer
    /// was lost (so its reference never recorded), by the key we forwarded to the provider.
    async fn payment_by_ref(
        &self,
        provider_ref: &str,
        provider_key: Option<&str>,
    ) -> Result<Option<Payment>, StoreError>;

    /// The money behind a booking is gone (capture refused, refunded or disputed at the
    /// provider): applies [`crate::rules::revoke`] — the booking CANCELLED with the reason,
    /// its tickets VOID, its seats back on sale, the payment settled — atomically. Returns the
    /// booking as it now stands, if it changed.
    async fn revoke(
        &self,
        payment: PaymentKey,
        why: crate::rules::Revocation,
        now: OffsetDateTime,
    ) -> Result<Option<Booking>, StoreError>;

    /// Marks a ticket as scanned at the door of `event`, if it is valid and for that event. A
    /// ticket of another event is refused and left as it is.
    async fn check_in(
        &self,
        id: TicketId,
        event: EventId,
        now: OffsetDateTime,
    ) -> Result<CheckIn, StoreError>;

    /// Checks the booking invariants over the whole database.
    async fn verify(&self, now: OffsetDateTime) -> Result<Vec<Finding>, StoreError>;

    // ---- resale --------------------------------------------------------------------------

    /// Lists the seller's ticket for resale, if [`crate::resale::may_list`] allows: the
    /// listing ACTIVE, the ticket LISTED, the seat counted available again — atomically.
    async fn list_ticket(
        &self,
        req: &ListRequest,
    ) -> Result<Result<crate::resale::Listing, crate::resale::ListError>, StoreError>;

    async fn listing(&self, id: ListingId) -> Result<Option<crate::resale::Listing>, StoreError>;

    /// An event's listings on offer at `now` (a lapsed reservation is on offer again),
    /// cheapest first.
    async fn event_listings(
        &self,
        event: EventId,
        now: OffsetDateTime,
    ) -> Result<Vec<crate::resale::Listing>, StoreError>;

    /// Every listing of a seller, newest first, in every state.
    async fn seller_listings(
        &self,
        seller: &CustomerId,
    ) -> Result<Vec<crate::resale::Listing>, StoreError>;

    /// Withdraws an ACTIVE listing of the seller: the ticket VALID again.
    async fn withdraw_listing(
        &self,
        id: ListingId,
        seller: &CustomerId,
        now: OffsetDateTime,
    ) -> Result<Result<crate::resale::Listing, crate::resale::WithdrawError>, StoreError>;

    /// Every payout of a seller, newest first.
    async fn payouts_of(
        &self,
        seller: &CustomerId,
    ) -> Result<Vec<crate::resale::Payout>, StoreError>;

    /// SCHEDULED payouts whose time has come.
    async fn due_payouts(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<crate::resale::Payout>, StoreError>;

    /// Records a payout as PAID (if still SCHEDULED); returns whether it moved.
    async fn mark_payout_paid(
        &self,
        id: crate::ids::PayoutId,
        provider_ref: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Events cancelled since `since`.
    async fn cancelled_events(&self, since: OffsetDateTime) -> Result<Vec<EventId>, StoreError>;

    /// Cancels an event: nothing sells any more, open listings are withdrawn, holds end, every
    /// confirmed booking is CANCELLED (`event-cancelled`) with its tickets VOID and its
    /// payment owed back (REFUND_PENDING), scheduled payouts are clawed back — atomically.
    /// Returns the payments to refund. Cancelling again changes nothing.
    async fn cancel_event(
        &self,
        event: EventId,
        now: OffsetDateTime,
    ) -> Result<Vec<Payment>, StoreError>;

    // ---- transfers (see `crate::transfers`) ---------------------------------------------

    /// A ticket by id.
    async fn ticket(&self, id: TicketId) -> Result<Option<Ticket>, StoreError>;

    /// Offers the sender's ticket to another customer, if [`crate::transfers::may_offer`]
    /// allows: a PENDING transfer.
    async fn offer_transfer(
        &self,
        req: &crate::transfers::OfferRequest,
    ) -> Result<Result<crate::resale::Transfer, crate::transfers::TransferError>, StoreError>;

    /// Accepts a transfer as [`crate::transfers::decide_accept`] says, with the transfer and
    /// its ticket locked: the old ticket REISSUED, the recipient's new ticket VALID (same seat
    /// and booking, `replaces` the old one), the transfer ACCEPTED — atomically. A refusal may
    /// still write the transfer's end (EXPIRED, CANCELLED). Returns the transfer and the new
    /// ticket.
    async fn accept_transfer(
        &self,
        req: &crate::transfers::AcceptRequest,
    ) -> Result<
        Result<(crate::resale::Transfer, Ticket), crate::transfers::TransferError>,
        StoreError,
    >;

    /// Cancels the sender's pending transfer.
    async fn cancel_transfer(
        &self,
        id: crate::ids::TransferId,
        sender: &CustomerId,
        now: OffsetDateTime,
    ) -> Result<Result<crate::resale::Transfer, crate::transfers::TransferError>, StoreError>;

    async fn transfer(
        &self,
        id: crate::ids::TransferId,
    ) -> Result<Option<crate::resale::Transfer>, StoreError>;

    /// Transfers a customer sent or received, newest first, as stored (see
    /// [`crate::transfers::effective_status`] for what counts now).
    async fn transfers_of(
        &self,
        customer: &CustomerId,
    ) -> Result<Vec<crate::resale::Transfer>, StoreError>;

    /// Tickets of an event voided or reissued after `after`, in (time, ticket id) order.
    async fn revocations(
        &self,
        event: EventId,
        after: Option<crate::transfers::RevocationCursor>,
        limit: u32,
    ) -> Result<Vec<crate::transfers::RevokedTicket>, StoreError>;

    // The on-sale waiting room (see [`crate::queue`]).

    /// Joins an event's waiting room, or returns the customer's existing place there (queued
    /// again at `join.sort_key` if their admission lapsed at or before `join.lapsed_before`).
    async fn join_queue(
        &self,
        join: &crate::queue::QueueJoin,
    ) -> Result<crate::queue::QueueEntry, StoreError>;

    /// One place in a waiting room.
    async fn queue_entry(
        &self,
        id: crate::ids::QueueId,
    ) -> Result<Option<crate::queue::QueueEntry>, StoreError>;

    /// How many buyers still waiting are ahead of `entry`.
    async fn queue_position(&self, entry: &crate::queue::QueueEntry) -> Result<u64, StoreError>;

    /// One admission round, under the room's lock: lets in [`crate::queue::to_admit`] more
    /// buyers, first in line first, and counts the room.
    async fn admit_from_queue(
        &self,
        round: &crate::queue::AdmitRound,
    ) -> Result<crate::queue::RoomCounts, StoreError>;

    /// The sort keys of everyone still waiting, in order: one read per round lets a node tell
    /// every buyer it streams to where they stand.
    async fn queue_waiting_keys(&self, event: EventId) -> Result<Vec<i64>, StoreError>;

    // ---- reports (the organizer's pages) ------------------------------------------------

    /// The events an organizer created, latest start first, at most `limit`.
    async fn organizer_events(
        &self,
        organizer: &CustomerId,
        limit: u32,
    ) -> Result<Vec<EventId>, StoreError>;

    /// What an event has sold so far: first-sale bookings and the money captured for them,
    /// and completed resales.
    async fn event_sales(&self, event: EventId) -> Result<EventSales, StoreError>;
}

/// What an event has sold, for its organizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EventSales {
    /// Confirmed first-sale bookings (not resale purchases).
    pub bookings: u64,
    /// Money captured for first-sale bookings (a refunded payment no longer counts).
    pub revenue_cents: i64,
    /// Completed resales, what buyers paid for them, and the platform's fees on them.
    pub resales: u64,
    pub resale_volume_cents: i64,
    pub resale_fees_cents: i64,
}

/// A request to list a ticket, fully decided by the caller.
#[derive(Debug, Clone)]
pub struct ListRequest {
    pub listing_id: ListingId,
    pub ticket_id: TicketId,
    pub seller: CustomerId,
    pub price_cents: i64,
    /// The platform's fee, in basis points of the price.
    pub fee_basis_points: u32,
    pub now: OffsetDateTime,
}

/// Unsettled payments, for `/metrics` and alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PaymentBacklog {
    pub unsettled: u64,
    /// When the longest-unsettled payment was last touched.
    pub oldest: Option<OffsetDateTime>,
}

/// What `begin_commit` needs, fully decided by the caller.
#[derive(Debug, Clone)]
pub struct CommitRequest {
    pub customer: CustomerId,
    pub booking_id: BookingId,
    /// The client's key, scoped to the customer.
    pub idempotency_key: String,
    /// A digest of the request body; the same key with another body is refused.
    pub fingerprint: String,
    pub payment_id: PaymentId,
    /// The key forwarded to the payment provider.
    pub provider_key: String,
    pub provider: String,
    pub method: String,
    pub now: OffsetDateTime,
    /// The charge is left to the commit queue (see [`crate::booking::Payment::queued`]). The
    /// store also queues every commit of an event with a waiting room, whatever this says, in
    /// the same statement that records the payment: the returned payment tells which it was.
    pub queued: bool,
}

/// The outcome of `begin_commit`.
#[derive(Debug, Clone)]
pub enum CommitBegin {
    /// Go ahead and charge: the booking is PENDING with this payment.
    Started {
        booking: Box<Booking>,
        payment: Box<Payment>,
    },
    /// This key already finished: answer exactly this.
    Replay(StoredResponse),
}

/// Why a commit could not start.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("the idempotency key was used with a different request")]
    KeyReused,
    #[error("a request with this idempotency key is in progress")]
    InFlight,
    #[error("no such booking")]
    NotFound,
    #[error("the hold has expired or was released")]
    Gone,
    #[error("the booking is already confirmed")]
    AlreadyConfirmed,
    #[error("a payment for this booking is in progress")]
    PaymentInProgress,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A response kept under an idempotency key and replayed byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// What the payment provider said about a pending commit.
#[derive(Debug, Clone)]
pub enum Settlement {
    /// Funds reserved: confirm and issue these tickets (one per seat of the booking). If the
    /// booking lapsed meanwhile, its seats are taken again if they are still free.
    Approved {
        provider_ref: String,
        tickets: Vec<NewTicket>,
    },
    /// The method was refused: back to HOLD (or EXPIRED if the hold ran out meanwhile).
    Declined { reason: String },
    /// No money moved (the provider refused the request, or never saw it): like a decline.
    Failed { reason: String },
    /// The provider has no answer yet (it timed out, is down, or its lookup may lag). Not
    /// final: once the hold has run out its seats go back on sale, but the payment stays
    /// STARTED and is asked about again; nothing is stored under the key.
    Unresolved,
}

impl Settlement {
    /// The provider's answer, as the rulebook sees it.
    pub fn answer(&self) -> crate::rules::Answer {
        use crate::rules::Answer;
        match self {
            Settlement::Approved { .. } => Answer::Approved,
            Settlement::Declined { .. } => Answer::Declined,
            Settlement::Failed { .. } => Answer::Failed,
            Settlement::Unresolved => Answer::Unresolved,
        }
    }
}

/// The outcome of settling a commit.
#[derive(Debug, Clone)]
pub enum CommitOutcome {
    /// Tickets issued; the caller now captures the payment.
    Confirmed(Booking),
    /// Declined or failed; the booking is on hold again (or expired).
    NotPaid { booking: Booking, reason: String },
    /// Approved, but the booking had lapsed and its seats were taken: the caller voids the
    /// authorization.
    Lapsed(Booking),
    /// No answer from the provider yet: the booking stays PENDING (or, once its hold ran
    /// out, EXPIRED with the payment still open); nothing is stored under the key.
    Unresolved(Booking),
}

/// Renders the response stored under the idempotency key for an outcome.
pub type RenderCommit = Arc<dyn Fn(&CommitOutcome) -> StoredResponse + Send + Sync>;

/// Everything `finish_commit` needs.
#[derive(Clone)]
pub struct CommitFinish {
    pub booking_id: BookingId,
    /// The booking's event (from [`CommitBegin::Started`]): every statement filters by it.
    pub event_id: EventId,
    pub payment_id: PaymentId,
    pub settlement: Settlement,
    pub now: OffsetDateTime,
    pub render: RenderCommit,
}

impl std::fmt::Debug for CommitFinish {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitFinish")
            .field("booking_id", &self.booking_id)
            .field("payment_id", &self.payment_id)
            .field("settlement", &self.settlement)
            .finish_non_exhaustive()
    }
}

/// The outcome of `finish_commit`, with the response stored under the key.
#[derive(Debug, Clone)]
pub struct FinishedCommit {
    pub outcome: CommitOutcome,
    pub response: StoredResponse,
    pub payment: Payment,
}

/// Why a booking could not be released or cancelled.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("no such booking")]
    NotFound,
    #[error("a payment for this booking is in progress")]
    PaymentInProgress,
    /// Releasing a confirmed booking needs `cancel_confirmed`; cancelling a hold needs
    /// `release`.
    #[error("the booking is {0:?}")]
    WrongStatus(BookingStatus),
    /// A ticket of the booking was scanned at the door: it cannot be refunded.
    #[error("a ticket of the booking has been used")]
    TicketUsed,
    /// A ticket of the booking is listed for resale: withdraw the listing first.
    #[error("a ticket of the booking is listed for resale")]
    TicketListed,
    /// A ticket of the booking was resold or transferred: it is someone else's now.
    #[error("a ticket of the booking was resold or transferred")]
    TicketReissued,
    /// A resale purchase is final for the buyer (they may list it again).
    #[error("a resale purchase is final")]
    ResaleFinal,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The result of scanning a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckIn {
    Admitted(Ticket),
    AlreadyUsed(Ticket),
    Void(Ticket),
    /// Resold or transferred: its new owner holds a new ticket; this one is dead.
    Reissued(Ticket),
    /// A ticket of another event than the door's; nothing changed.
    WrongEvent(Ticket),
    Unknown,
}

/// One broken invariant, found by [`Store::verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// A stable name for the rule: `seat-sold-twice`, `sold-seat-ticket-count`, …
    pub rule: String,
    pub detail: String,
}

impl SeatMap {
    /// Starts a seat map for `event` with every section empty; stores then [`SeatMap::push`]
    /// each seat row they read.
    pub fn builder(event: &Event) -> Self {
        SeatMap {
            event_id: event.id,
            sections: event
                .spec
                .sections
                .iter()
                .map(|s| SectionAvailability {
                    section: s.number,
                    capacity: s.kind.capacity(),
                    ..Default::default()
                })
                .collect(),
            seats: Vec::new(),
        }
    }

    /// Adds one stored seat, counting it by its effective state at `now`. General-admission
    /// places are counted but not listed.
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        id: SeatId,
        section: u16,
        row: Option<String>,
        number: u32,
        price: PriceCents,
        state: SeatState,
        hold_expires_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) {
        let state = state.effective(hold_expires_at, now);
        if let Some(counts) = usize::from(section)
            .checked_sub(1)
            .and_then(|i| self.sections.get_mut(i))
        {
            match state {
                SeatState::Open => counts.available += 1,
                SeatState::Hold | SeatState::Pending => counts.held += 1,
                SeatState::Sold => counts.sold += 1,
            }
        }
        if row.is_some() {
            self.seats.push(SeatView {
                id,
                section,
                row,
                number,
                price,
                state,
                resale: None,
            });
        }
    }

    /// Marks the seats of listings on offer at `now` as resale, with their price, and counts
    /// them per section (`resale`): sold seats a buyer can still get.
    pub fn add_resale(&mut self, listings: &[crate::resale::Listing], now: OffsetDateTime) {
        for l in listings {
            if l.effective_status(now) != crate::resale::ListingStatus::Active {
                continue;
            }
            if let Some(counts) = usize::from(l.section)
                .checked_sub(1)
                .and_then(|i| self.sections.get_mut(i))
            {
                counts.resale += 1;
            }
            if let Some(seat) = self.seats.iter_mut().find(|s| s.id == l.seat_id) {
                seat.resale = Some((l.id, l.price_cents));
            }
        }
    }

    /// Puts the listed seats in venue order: section, row (A, B, …, Z, AA, …), number.
    pub fn sort(&mut self) {
        self.seats.sort_by_key(|s| {
            (
                s.section,
                s.row.as_deref().and_then(crate::event::row_index),
                s.number,
            )
        });
    }

    /// The seat map of an event whose seats have not been laid out yet: all open.
    pub fn all_open(event: &Event, now: OffsetDateTime) -> Self {
        let mut map = Self::builder(event);
        for section in &event.spec.sections {
            for s in section.seats() {
                map.push(
                    s.id,
                    s.section,
                    s.row,
                    s.number,
                    s.price,
                    SeatState::Open,
                    None,
                    now,
                );
            }
        }
        map
    }
}

/// Kinds of change recorded in the outbox, for change-data-capture readers.
pub mod change {
    use serde::{Deserialize, Serialize};

    /// An event's catalog entry was created or changed; readers re-read the event. Payload:
    /// `{}`.
    pub const EVENT_CHANGED: &str = "event.changed";
    /// Seats of an event became available or unavailable. Payload: [`AvailabilityDelta`].
    pub const SEATS_CHANGED: &str = "seats.changed";

    /// How the number of *available* (OPEN) places of each section changed in one
    /// transaction: a hold of 3 is `-3`, its release or expiry `+3`, a refund of 2 sold seats
    /// `+2`. A held seat becoming sold is not a change of availability and is not recorded;
    /// nor is a buyer taking over a hold that had expired but was not swept yet (the seat
    /// was counted as taken and still is). Readers that count seats from the tables count
    /// OPEN seats, to agree with these deltas.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    pub struct AvailabilityDelta {
        pub sections: Vec<SectionDelta>,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub struct SectionDelta {
        pub section: u16,
        pub available: i32,
    }
}
