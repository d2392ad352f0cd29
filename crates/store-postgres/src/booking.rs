//! Holds, commits, cancellations, tickets and the invariant checker, on PostgreSQL.
//!
//! Concurrency rules, all enforced by the database:
//! - A customer's limit counter row (`customer_event_tickets`) is updated first in every hold,
//!   so one customer's parallel requests queue on that row and cannot pass the limit together;
//!   different customers never share a counter row.
//! - Explicit seats are taken with a conditional `UPDATE … FROM (SELECT … FOR UPDATE)`: rows
//!   are locked in index order (no deadlocks between buyers) and only free seats change.
//! - Best-available picks lock candidate rows with `FOR UPDATE SKIP LOCKED`, so concurrent
//!   buyers spread over the section instead of queueing on the same rows; a pick that loses a
//!   seat to someone else is retried.
//! - Commits and cancellations lock the booking row (and the payment row), so a request and
//!   the reconciler settling the same payment take turns, and the second changes nothing.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::exec::Exec;
use boxoffice_domain::booking::{
    BookedSeat, Booking, BookingStatus, HoldError, HoldRequest, NewTicket, Payment, PaymentKey,
    PaymentStatus, Pick, Selection, Ticket, TicketStatus, candidate_windows, pick as choose,
};
use boxoffice_domain::event::SectionKind;
use boxoffice_domain::ids::{BookingId, CustomerId, EventId, PaymentId, SeatId, TicketId};
use boxoffice_domain::money::PriceCents;
use boxoffice_domain::ports::change::{AvailabilityDelta, SectionDelta};
use boxoffice_domain::ports::{
    CheckIn, Clock, CommitBegin, CommitError, CommitFinish, CommitOutcome, CommitRequest, Finding,
    FinishedCommit, PaymentBacklog, ReleaseError, Settlement, StoreError, StoredResponse,
    SystemClock, change,
};
use boxoffice_domain::rules::{
    self, CancelAction, ReleaseAction, Revocation, RevokeAction, SettleAction,
};
use boxoffice_domain::seat::SeatState;
use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::catalog::lay_out_seats;
use crate::{corrupt, pg_error};

type Result<T, E = StoreError> = std::result::Result<T, E>;

// ---- reading ----------------------------------------------------------------------------

/// A booking's own columns (the table as `b`), in the order [`booking_row`] reads them.
macro_rules! booking_cols {
    () => {
        "b.event_id, b.customer_id, b.status, b.expires_at, b.total_cents, b.currency,
        b.contact_email, b.created_at, b.confirmed_at, b.cancelled_at, b.status_reason,
        b.listing_id IS NOT NULL"
    };
}

const BOOKING_SELECT: &str = concat!("SELECT ", booking_cols!(), " FROM bookings b");
/// How many columns [`booking_cols`] names.
const BOOKING_COLUMNS: usize = 12;

/// Marks a statement that finds its rows by a key other than the event: mostly the first
/// statement of a use case that starts from a bare id (the id carries its shard, so the lookup
/// goes straight there), which learns the event every later statement filters by; also a
/// commit replay's key record and a door scan's look at another event's ticket. The PostgreSQL
/// conformance suite checks every statement it sends (`testing::StatementCheck`): only these,
/// scans and a customer's own pages may go without `event_id`.
pub(crate) const BY_KEY: &str = "/* by key */";

/// A booking found by its id alone (the entry of a use case that starts from the id).
pub async fn load_booking<C: Exec>(c: &C, booking_id: BookingId) -> Result<Option<Booking>> {
    match booking_event(c, booking_id, false).await? {
        Some(event_id) => read_booking(c, event_id, booking_id, false).await,
        None => Ok(None),
    }
}

/// The event of a booking, by the booking's id; optionally locking the booking's row.
async fn booking_event<C: Exec>(
    c: &C,
    booking_id: BookingId,
    lock: bool,
) -> Result<Option<EventId>> {
    let sql = if lock {
        "/* by key */ SELECT event_id FROM bookings WHERE booking_id = $1 FOR UPDATE"
    } else {
        "/* by key */ SELECT event_id FROM bookings WHERE booking_id = $1"
    };
    Ok(q!(c, query_opt, sql, &booking_id.0)?.map(|r| EventId(r.get(0))))
}

/// Reads a booking of `event_id` in one round trip (its row, seats and tickets pipelined),
/// optionally locking its row first.
async fn read_booking<C: Exec>(
    c: &C,
    event_id: EventId,
    booking_id: BookingId,
    lock: bool,
) -> Result<Option<Booking>> {
    let row_sql = if lock {
        format!("{BOOKING_SELECT} WHERE event_id = $2 AND booking_id = $1 FOR UPDATE")
    } else {
        format!("{BOOKING_SELECT} WHERE event_id = $2 AND booking_id = $1")
    };
    let tickets_sql = format!("{TICKET_SELECT} WHERE event_id = $2 AND booking_id = $1");
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&booking_id.0, &event_id.0];
    // Pipelined: all go out before the first answer comes back, and run in this order.
    let (row, seats, tickets) = tokio::try_join!(
        c.query_opt(&row_sql, &params),
        c.query(
            "SELECT seat_id, price_cents FROM booking_seats
             WHERE event_id = $2 AND booking_id = $1",
            &params
        ),
        c.query(&tickets_sql, &params)
    )
    .map_err(pg_error)?;
    let Some(r) = row else {
        return Ok(None);
    };
    let seats = seats
        .iter()
        .map(|s| booked_seat(SeatId::from_trusted(s.get(0)), s.get(1)))
        .collect::<Result<Vec<_>>>()?;
    let tickets = tickets.iter().map(ticket_row).collect::<Result<_>>()?;
    booking_row(&r, 0, booking_id, seats, tickets).map(Some)
}

/// A booking from the [`booking_cols`] of `r`, starting at column `at`.
pub(crate) fn booking_row(
    r: &Row,
    at: usize,
    id: BookingId,
    seats: Vec<BookedSeat>,
    tickets: Vec<Ticket>,
) -> Result<Booking> {
    let status: &str = r.get(at + 2);
    let currency: &str = r.get(at + 5);
    let mut booking = Booking {
        id,
        event_id: EventId(r.get(at)),
        customer: CustomerId::parse(r.get(at + 1)).map_err(|_| corrupt("customer"))?,
        status: BookingStatus::parse(status).ok_or_else(|| corrupt("booking status"))?,
        expires_at: r.get(at + 3),
        seats,
        total_cents: r.get(at + 4),
        currency: currency.parse().map_err(|_| corrupt("currency"))?,
        contact_email: r.get(at + 6),
        tickets,
        created_at: r.get(at + 7),
        confirmed_at: r.get(at + 8),
        cancelled_at: r.get(at + 9),
        status_reason: r.get(at + 10),
        resale: r.get(at + 11),
    };
    booking.sort();
    Ok(booking)
}

/// The seats of a booking from two parallel arrays (seat ids, prices), as the grouped reads
/// return them.
pub(crate) fn booked_seats(ids: Vec<String>, prices: Vec<i64>) -> Result<Vec<BookedSeat>> {
    if ids.len() != prices.len() {
        return Err(corrupt("booking seats"));
    }
    ids.into_iter()
        .zip(prices)
        .map(|(id, price)| booked_seat(SeatId::from_trusted(id), price))
        .collect()
}

fn booked_seat(seat_id: SeatId, price: i64) -> Result<BookedSeat> {
    let (section, row, number) = seat_id.parts().ok_or_else(|| corrupt("seat id"))?;
    let row = row.map(str::to_owned);
    Ok(BookedSeat {
        section,
        row,
        number,
        price: PriceCents::new(price).map_err(|_| corrupt("price"))?,
        seat_id,
    })
}

const TICKET_SELECT: &str = "SELECT ticket_id, event_id, booking_id, seat_id, customer_id,
        status, token, attendee_name, issued_at, checked_in_at
    FROM tickets";

fn ticket_row(r: &Row) -> Result<Ticket> {
    Ok(Ticket {
        id: TicketId(r.get(0)),
        event_id: EventId(r.get(1)),
        booking_id: BookingId(r.get(2)),
        seat_id: SeatId::from_trusted(r.get(3)),
        customer: CustomerId::parse(r.get(4)).map_err(|_| corrupt("customer"))?,
        status: TicketStatus::parse(r.get(5)).ok_or_else(|| corrupt("ticket status"))?,
        token: r.get(6),
        attendee_name: r.get(7),
        issued_at: r.get(8),
        checked_in_at: r.get(9),
    })
}

pub async fn tickets_of<C: Exec>(c: &C, customer: &CustomerId) -> Result<Vec<Ticket>> {
    q!(
        c,
        query,
        &format!(
            "/* fan-out */ {TICKET_SELECT} WHERE customer_id = $1 ORDER BY issued_at DESC, seat_id"
        ),
        &customer.as_str()
    )?
    .iter()
    .map(ticket_row)
    .collect()
}

/// A payment's columns (the table as `p`), in the order [`payment_at`] reads them.
macro_rules! payment_cols {
    () => {
        "p.payment_id, p.booking_id, p.event_id, p.customer_id, p.provider, p.provider_ref,
        p.idempotency_key, p.method, p.amount_cents, p.currency, p.status, p.updated_at,
        p.attempts, p.queued"
    };
}

const PAYMENT_SELECT: &str = concat!("SELECT ", payment_cols!(), " FROM payments p");
/// How many columns [`payment_cols`] names.
const PAYMENT_COLUMNS: usize = 14;

fn payment_row(r: &Row) -> Result<Payment> {
    payment_at(r, 0)
}

/// A payment from the [`payment_cols`] of `r`, starting at column `at`.
pub(crate) fn payment_at(r: &Row, at: usize) -> Result<Payment> {
    let currency: &str = r.get(at + 9);
    Ok(Payment {
        id: PaymentId(r.get(at)),
        booking_id: BookingId(r.get(at + 1)),
        event_id: EventId(r.get(at + 2)),
        customer: CustomerId::parse(r.get(at + 3)).map_err(|_| corrupt("customer"))?,
        provider: r.get(at + 4),
        provider_ref: r.get(at + 5),
        idempotency_key: r.get(at + 6),
        method: r.get(at + 7),
        amount_cents: r.get(at + 8),
        currency: currency.parse().map_err(|_| corrupt("currency"))?,
        status: PaymentStatus::parse(r.get(at + 10)).ok_or_else(|| corrupt("payment status"))?,
        updated_at: r.get(at + 11),
        attempts: r.get::<_, i32>(at + 12).max(0) as u32,
        queued: r.get(at + 13),
    })
}

/// A payment found by its id alone (the entry of a use case that starts from the id).
pub async fn load_payment<C: Exec>(c: &C, id: PaymentId) -> Result<Option<Payment>> {
    q!(
        c,
        query_opt,
        &format!("{BY_KEY} {PAYMENT_SELECT} WHERE payment_id = $1"),
        &id.0
    )?
    .as_ref()
    .map(payment_row)
    .transpose()
}

/// A payment of a known event, optionally locking its row.
pub(crate) async fn payment_in<C: Exec>(
    c: &C,
    key: PaymentKey,
    lock: bool,
) -> Result<Option<Payment>> {
    let sql = if lock {
        format!("{PAYMENT_SELECT} WHERE event_id = $2 AND payment_id = $1 FOR UPDATE")
    } else {
        format!("{PAYMENT_SELECT} WHERE event_id = $2 AND payment_id = $1")
    };
    q!(c, query_opt, &sql, &key.id.0, &key.event_id.0)?
        .as_ref()
        .map(payment_row)
        .transpose()
}

pub async fn unsettled_payments<C: Exec>(
    c: &C,
    before: OffsetDateTime,
    now: OffsetDateTime,
    limit: u32,
) -> Result<Vec<Payment>> {
    q!(
        c,
        query,
        &format!(
            "/* scan */ {PAYMENT_SELECT}
             WHERE status IN ('STARTED', 'AUTHORIZED', 'REFUND_PENDING')
                AND updated_at < $1 AND (next_attempt_at IS NULL OR next_attempt_at <= $3)
             ORDER BY coalesce(next_attempt_at, updated_at) LIMIT $2"
        ),
        &before,
        &i64::from(limit),
        &now
    )?
    .iter()
    .map(payment_row)
    .collect()
}

pub async fn defer_payment<C: Exec>(
    c: &C,
    key: PaymentKey,
    next_attempt_at: OffsetDateTime,
    error: &str,
) -> Result<()> {
    q!(
        c,
        execute,
        "UPDATE payments SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3
         WHERE event_id = $4 AND payment_id = $1",
        &key.id.0,
        &next_attempt_at,
        &error,
        &key.event_id.0
    )?;
    Ok(())
}

pub async fn payment_backlog<C: Exec>(c: &C) -> Result<PaymentBacklog> {
    let r = q!(
        c,
        query_one,
        "/* scan */ SELECT count(*), min(updated_at) FROM payments
         WHERE status IN ('STARTED', 'AUTHORIZED', 'REFUND_PENDING')",
    )?;
    Ok(PaymentBacklog {
        unsettled: r.get::<_, i64>(0).max(0) as u64,
        oldest: r.get(1),
    })
}

pub async fn payment_by_ref<C: Exec>(
    c: &C,
    provider_ref: &str,
    provider_key: Option<&str>,
) -> Result<Option<Payment>> {
    q!(
        c,
        query_opt,
        &format!(
            "{BY_KEY} {PAYMENT_SELECT} WHERE provider_ref = $1 OR idempotency_key = $2
             ORDER BY provider_ref = $1 DESC, updated_at DESC LIMIT 1"
        ),
        &provider_ref,
        &provider_key
    )?
    .as_ref()
    .map(payment_row)
    .transpose()
}

// ---- writing helpers ----------------------------------------------------------------------

/// The `seats.changed` payload for these per-section changes; `None` if nothing changed.
pub(crate) fn delta_payload(deltas: &BTreeMap<u16, i32>) -> Result<Option<serde_json::Value>> {
    let sections: Vec<SectionDelta> = deltas
        .iter()
        .filter(|(_, d)| **d != 0)
        .map(|(s, d)| SectionDelta {
            section: *s,
            available: *d,
        })
        .collect();
    if sections.is_empty() {
        return Ok(None);
    }
    serde_json::to_value(AvailabilityDelta { sections })
        .map(Some)
        .map_err(|e| StoreError::Internal(format!("encoding delta: {e}")))
}

pub(crate) async fn record_delta<C: Exec>(
    c: &C,
    event_id: EventId,
    deltas: &BTreeMap<u16, i32>,
) -> Result<()> {
    let Some(payload) = delta_payload(deltas)? else {
        return Ok(());
    };
    q!(
        c,
        execute,
        "INSERT INTO outbox (event_id, kind, payload) VALUES ($1, $2, $3)",
        &event_id.0,
        &change::SEATS_CHANGED,
        &payload
    )?;
    Ok(())
}

/// Returns the seats `booking` holds in one of `states` to OPEN; counts them per section.
async fn free_seats<C: Exec>(
    c: &C,
    event_id: EventId,
    booking_id: BookingId,
    states: &[&str],
) -> Result<BTreeMap<u16, i32>> {
    let states: Vec<String> = states.iter().map(|s| (*s).to_owned()).collect();
    // Seats are found through the booking's own list and the seat key: seats carry no index
    // on booking_id, which every state change would otherwise have to maintain.
    let rows = q!(
        c,
        query,
        "UPDATE seats SET state = 'OPEN', booking_id = NULL, hold_expires_at = NULL,
            version = version + 1
         WHERE event_id = $3
           AND seat_id IN (SELECT seat_id FROM booking_seats
                           WHERE event_id = $3 AND booking_id = $1)
           AND booking_id = $1 AND state = ANY($2)
         RETURNING section_no",
        &booking_id.0,
        &states,
        &event_id.0
    )?;
    let mut out = BTreeMap::new();
    for r in rows {
        *out.entry(r.get::<_, i16>(0) as u16).or_insert(0) += 1;
    }
    Ok(out)
}

async fn adjust_counter<C: Exec>(
    c: &C,
    event_id: EventId,
    customer: &CustomerId,
    delta: i32,
) -> Result<()> {
    q!(
        c,
        execute,
        "UPDATE customer_event_tickets SET tickets = greatest(tickets + $3, 0)
         WHERE event_id = $1 AND customer_id = $2",
        &event_id.0,
        &customer.as_str(),
        &delta
    )?;
    Ok(())
}

/// Adds `quantity` to the customer's counter if that stays within `max`. The row lock this
/// takes is what serialises one customer's parallel holds. `Err(already)` when over.
async fn take_from_limit<C: Exec>(
    c: &C,
    event_id: EventId,
    customer: &CustomerId,
    quantity: u32,
    max: u32,
) -> Result<std::result::Result<(), LimitRefusal>> {
    let q = quantity as i32;
    // The event's cancellation is checked in the same statement: no round trip of its own.
    let row = q!(
        c,
        query_opt,
        "INSERT INTO customer_event_tickets AS c (event_id, customer_id, tickets)
         SELECT $1::uuid, $2::text, $3::int4 WHERE $3::int4 <= $4::int4 AND NOT EXISTS (
             SELECT 1 FROM events WHERE event_id = $1 AND cancelled_at IS NOT NULL)
         ON CONFLICT (event_id, customer_id) DO UPDATE SET tickets = c.tickets + excluded.tickets
         WHERE c.tickets + excluded.tickets <= $4
         RETURNING tickets",
        &event_id.0,
        &customer.as_str(),
        &q,
        &(max as i32)
    )?;
    if row.is_some() {
        return Ok(Ok(()));
    }
    let r = q!(
        c,
        query_one,
        "SELECT (SELECT tickets FROM customer_event_tickets
                 WHERE event_id = $1 AND customer_id = $2),
                EXISTS (SELECT 1 FROM events WHERE event_id = $1 AND cancelled_at IS NOT NULL)",
        &event_id.0,
        &customer.as_str()
    )?;
    if r.get::<_, bool>(1) {
        return Ok(Err(LimitRefusal::EventCancelled));
    }
    let already: Option<i32> = r.get(0);
    Ok(Err(LimitRefusal::Over(already.unwrap_or(0).max(0) as u32)))
}

/// Why a customer's places could not be counted.
enum LimitRefusal {
    /// They already hold or bought this many, and the new ones would pass the limit.
    Over(u32),
    EventCancelled,
}

/// Ends a booking that is still in `from` (HOLD, or PENDING whose payment settled without
/// money) as `to`: frees its held seats and gives its places back to the customer's limit.
/// The status is re-checked by the update itself, so a booking that moved on meanwhile (a
/// hold that became PENDING while this waited for its row) is left alone.
pub(crate) async fn end_booking<C: Exec>(
    c: &C,
    event_id: EventId,
    booking_id: BookingId,
    from: BookingStatus,
    to: BookingStatus,
    now: OffsetDateTime,
) -> Result<bool> {
    debug_assert!(from.can_become(to), "{from:?} -> {to:?}");
    let row = q!(
        c,
        query_opt,
        "UPDATE bookings SET status = $2, cancelled_at = $3, updated_at = $3,
            version = version + 1
         WHERE event_id = $5 AND booking_id = $1 AND status = $4
         RETURNING customer_id, quantity, listing_id IS NOT NULL",
        &booking_id.0,
        &to.as_str(),
        &now,
        &from.as_str(),
        &event_id.0
    )?;
    let Some(r) = row else {
        return Ok(false);
    };
    let customer = CustomerId::parse(r.get(0)).map_err(|_| corrupt("customer"))?;
    adjust_counter(c, event_id, &customer, -r.get::<_, i32>(1)).await?;
    if r.get::<_, bool>(2) {
        // A resale booking held listings, not seats: they go back on offer.
        crate::resale::release_listings(c, booking_id, event_id, now).await?;
    } else {
        let freed = free_seats(c, event_id, booking_id, &["HOLD", "PENDING"]).await?;
        record_delta(c, event_id, &freed).await?;
    }
    Ok(true)
}

pub(crate) async fn must_load<C: Exec>(
    c: &C,
    event_id: EventId,
    booking_id: BookingId,
) -> Result<Booking> {
    read_booking(c, event_id, booking_id, false)
        .await?
        .ok_or_else(|| StoreError::Internal(format!("booking {booking_id} vanished")))
}

// ---- holds ----------------------------------------------------------------------------------

/// A seat a hold takes: (seat id, section, price, whether it was open).
pub(crate) type Taken = (String, i16, i64, bool);

/// Holds seats for a new booking. A best-available pick that loses seats to concurrent
/// buyers fails with [`HoldError::Busy`] (the caller rolls back and tries again) unless this
/// is the `last_try`, which takes whatever free seats it can get, adjacent or not.
pub async fn hold<C: Exec>(
    c: &C,
    req: &HoldRequest,
    last_try: bool,
    laid_out_known: bool,
) -> Result<Booking, HoldError> {
    let event = &req.event;
    if !laid_out_known {
        let laid_out = q!(
            c,
            query_opt,
            "SELECT seats_laid_out FROM events WHERE event_id = $1",
            &req.event_id().0
        )?
        .map(|r| r.get::<_, bool>(0))
        .ok_or_else(|| StoreError::Internal(format!("hold for unknown event {}", event.id)))?;
        if !laid_out {
            // The first buyer lays the seats out; concurrent ones wait on the row, then find
            // the flag set and the seats there.
            let n = q!(
                c,
                execute,
                "UPDATE events SET seats_laid_out = true WHERE event_id = $1 AND NOT seats_laid_out",
                &req.event_id().0
            )?;
            if n == 1 {
                lay_out_seats(c, event).await?;
            }
        }
    }
    // The customer's own lapsed holds must not count against their limit.
    let lapsed = q!(
        c,
        query,
        "SELECT booking_id FROM bookings
         WHERE customer_id = $1 AND event_id = $2 AND status = 'HOLD' AND expires_at <= $3",
        &req.customer.as_str(),
        &req.event_id().0,
        &req.now
    )?;
    for r in lapsed {
        end_booking(
            c,
            req.event_id(),
            BookingId(r.get(0)),
            BookingStatus::Hold,
            BookingStatus::Expired,
            req.now,
        )
        .await?;
    }

    let quantity = req.selection.quantity();
    match take_from_limit(
        c,
        req.event_id(),
        &req.customer,
        quantity,
        req.max_tickets_per_customer(),
    )
    .await?
    {
        Ok(()) => {}
        Err(LimitRefusal::EventCancelled) => return Err(HoldError::EventCancelled),
        Err(LimitRefusal::Over(already)) => {
            return Err(HoldError::LimitExceeded {
                limit: req.max_tickets_per_customer(),
                already,
            });
        }
    }

    let taken: Vec<Taken> = match &req.selection {
        Selection::Listings(ids) => return crate::resale::hold_listings(c, req, ids).await,
        Selection::Seats(ids) => {
            let ids: Vec<String> = ids.iter().map(|s| s.as_str().to_owned()).collect();
            let rows = take_seats(c, req, &ids, false).await?;
            if rows.len() < ids.len() {
                let existing: Vec<String> = q!(
                    c,
                    query,
                    "SELECT seat_id FROM seats WHERE event_id = $1 AND seat_id = ANY($2)",
                    &req.event_id().0,
                    &ids
                )?
                .iter()
                .map(|r| r.get(0))
                .collect();
                let missing: Vec<SeatId> = ids
                    .iter()
                    .filter(|s| !existing.contains(s))
                    .map(|s| SeatId::from_trusted(s.clone()))
                    .collect();
                if !missing.is_empty() {
                    return Err(HoldError::NoSuchSeats(missing));
                }
                let got: Vec<&String> = rows.iter().map(|r| &r.0).collect();
                return Err(HoldError::Unavailable(
                    ids.iter()
                        .filter(|s| !got.contains(s))
                        .map(|s| SeatId::from_trusted(s.clone()))
                        .collect(),
                ));
            }
            rows
        }
        Selection::BestAvailable { section, quantity } => {
            let sec = event
                .spec
                .section(*section)
                .ok_or_else(|| StoreError::Internal("no such section".into()))?;
            let section_no = *section as i16;
            let rows = match sec.kind {
                SectionKind::GeneralAdmission { .. } => {
                    take_front(c, req, section_no, *quantity).await?
                }
                SectionKind::Seated { seats_per_row, .. } => {
                    let (small, wide) = candidate_windows(*quantity, seats_per_row);
                    let mut pick = None;
                    for window in [small, wide] {
                        let candidates = free_front(c, req, section_no, window).await?;
                        let positions: Vec<(u32, u32)> =
                            candidates.iter().map(|(_, r, n)| (*r, *n)).collect();
                        match choose(&positions, *quantity, seats_per_row, window, window == wide) {
                            Pick::Take(found) => {
                                pick = Some(
                                    found
                                        .iter()
                                        .map(|&i| candidates[i].0.clone())
                                        .collect::<Vec<_>>(),
                                );
                                break;
                            }
                            Pick::Widen => continue,
                            Pick::NotEnough => break,
                        }
                    }
                    match pick {
                        Some(ids) => {
                            let got = take_seats(c, req, &ids, true).await?;
                            if got.len() == ids.len() {
                                got
                            } else if last_try {
                                // Adjacency lost to the crowd: keep what this pick got and
                                // make up the rest with any free seats, front first.
                                return finish_front(c, req, section_no, *quantity, got).await;
                            } else {
                                return Err(HoldError::Busy);
                            }
                        }
                        None => Vec::new(),
                    }
                }
            };
            if rows.len() < *quantity as usize {
                let available: i64 = q!(
                    c,
                    query_one,
                    "SELECT count(*) FROM seats WHERE event_id = $1 AND section_no = $2
                       AND (state = 'OPEN' OR (state = 'HOLD' AND hold_expires_at <= $3))",
                    &req.event_id().0,
                    &section_no,
                    &req.now
                )?
                .get::<_, i64>(0)
                    + rows.len() as i64; // what this attempt took counts too
                // `available` also counts rows other buyers have locked but not yet taken.
                if available >= i64::from(*quantity) {
                    return Err(HoldError::Busy);
                }
                return Err(HoldError::NotEnough {
                    requested: *quantity,
                    available: available.max(0) as u32,
                });
            }
            rows
        }
    };
    Ok(write_booking(c, req, &taken).await?)
}

async fn finish_front<C: Exec>(
    c: &C,
    req: &HoldRequest,
    section_no: i16,
    quantity: u32,
    mut got: Vec<Taken>,
) -> Result<Booking, HoldError> {
    let more = take_front(c, req, section_no, quantity - got.len() as u32).await?;
    got.extend(more);
    if got.len() < quantity as usize {
        // The transaction rolls back, seats taken so far included.
        return Err(HoldError::Busy);
    }
    Ok(write_booking(c, req, &got).await?)
}

/// Conditionally takes exactly these seats for the booking; returns those it got.
async fn take_seats<C: Exec>(
    c: &C,
    req: &HoldRequest,
    ids: &[String],
    skip_locked: bool,
) -> Result<Vec<Taken>> {
    let sql = format!(
        // A materialized step, run once (see take_front_where).
        "WITH o AS MATERIALIZED (
             SELECT seat_id, state AS old_state FROM seats
             WHERE event_id = $1 AND seat_id = ANY($2)
               -- Written as CASE so that the planner looks these seats up by key: an OR of
               -- states would tempt it to scan the partial indexes of free seats instead.
               AND CASE state WHEN 'OPEN' THEN true
                              WHEN 'HOLD' THEN hold_expires_at <= $5
                              ELSE false END
             ORDER BY seat_id FOR UPDATE{})
         UPDATE seats s SET state = 'HOLD', hold_expires_at = $3, booking_id = $4,
            version = s.version + 1
         FROM o
         WHERE s.event_id = $1 AND s.seat_id = o.seat_id
         RETURNING s.seat_id, s.section_no, s.price_cents, o.old_state = 'OPEN'",
        if skip_locked { " SKIP LOCKED" } else { "" }
    );
    let rows = q!(
        c,
        query,
        &sql,
        &req.event_id().0,
        &ids,
        &req.expires_at,
        &req.booking_id.0,
        &req.now
    )?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect())
}

/// The front-most `window` free seats of a section (open ones through the partial index of
/// open seats, plus lapsed holds), without locking: (seat id, row index, number).
async fn free_front<C: Exec>(
    c: &C,
    req: &HoldRequest,
    section_no: i16,
    window: u32,
) -> Result<Vec<(String, u32, u32)>> {
    Ok(q!(
        c,
        query,
        "(SELECT seat_id, row_index, number FROM seats
          WHERE event_id = $1 AND section_no = $2 AND state = 'OPEN'
          ORDER BY row_index, number LIMIT $4)
         UNION ALL
         (SELECT seat_id, row_index, number FROM seats
          WHERE event_id = $1 AND section_no = $2 AND state = 'HOLD' AND hold_expires_at <= $3
          ORDER BY row_index, number LIMIT $4)
         ORDER BY row_index, number LIMIT $4",
        &req.event_id().0,
        &section_no,
        &req.now,
        &i64::from(window)
    )?
    .iter()
    .map(|r| {
        (
            r.get(0),
            r.get::<_, i32>(1) as u32,
            r.get::<_, i32>(2) as u32,
        )
    })
    .collect())
}

/// Takes the front-most `quantity` free places of a section that nobody else is taking:
/// open seats first (through the partial index of open seats), then lapsed holds.
async fn take_front<C: Exec>(
    c: &C,
    req: &HoldRequest,
    section_no: i16,
    quantity: u32,
) -> Result<Vec<Taken>> {
    let mut taken = take_front_where(c, req, section_no, quantity, "state = 'OPEN'").await?;
    if taken.len() < quantity as usize {
        let more = take_front_where(
            c,
            req,
            section_no,
            quantity - taken.len() as u32,
            "state = 'HOLD' AND hold_expires_at <= $6",
        )
        .await?;
        taken.extend(more);
    }
    Ok(taken)
}

async fn take_front_where<C: Exec>(
    c: &C,
    req: &HoldRequest,
    section_no: i16,
    quantity: u32,
    free: &str,
) -> Result<Vec<Taken>> {
    // The pick is a materialized step that runs once. As a subquery joined to the UPDATE it
    // could be put on the inner side of a nested loop and scanned again for every outer row;
    // with SKIP LOCKED and LIMIT each scan may return other rows, and the statement would take
    // more places than asked for (seen once on a brand-new event, whose seats had no
    // statistics yet).
    let sql = format!(
        "WITH o AS MATERIALIZED (
             SELECT seat_id, state AS old_state FROM seats
             WHERE event_id = $1 AND section_no = $2 AND {free}
             ORDER BY row_index, number LIMIT $5 FOR UPDATE SKIP LOCKED)
         UPDATE seats s SET state = 'HOLD', hold_expires_at = $3, booking_id = $4,
            version = s.version + 1
         FROM o
         WHERE s.event_id = $1 AND s.seat_id = o.seat_id
         RETURNING s.seat_id, s.section_no, s.price_cents, o.old_state = 'OPEN'"
    );
    let limit = i64::from(quantity);
    let rows = if free.contains("$6") {
        q!(
            c,
            query,
            &sql,
            &req.event_id().0,
            &section_no,
            &req.expires_at,
            &req.booking_id.0,
            &limit,
            &req.now
        )?
    } else {
        q!(
            c,
            query,
            &sql,
            &req.event_id().0,
            &section_no,
            &req.expires_at,
            &req.booking_id.0,
            &limit
        )?
    };
    if rows.len() > quantity as usize {
        // Never more than asked for; the transaction rolls back.
        return Err(StoreError::Internal(format!(
            "a pick of {quantity} places took {}",
            rows.len()
        )));
    }
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect())
}

/// Writes the booking, its seats and the availability change (pipelined), and returns the
/// booking as it now stands.
async fn write_booking<C: Exec>(c: &C, req: &HoldRequest, taken: &[Taken]) -> Result<Booking> {
    let total: i64 = taken.iter().map(|t| t.2).sum();
    let ids: Vec<&str> = taken.iter().map(|t| t.0.as_str()).collect();
    let prices: Vec<i64> = taken.iter().map(|t| t.2).collect();
    let mut deltas = BTreeMap::new();
    for t in taken.iter().filter(|t| t.3) {
        *deltas.entry(t.1 as u16).or_insert(0) -= 1;
    }
    let quantity = taken.len() as i32;
    let currency = req.currency();
    let payload = delta_payload(&deltas)?;
    q!(
        c,
        execute,
        "WITH b AS (
             INSERT INTO bookings (booking_id, event_id, customer_id, status, expires_at,
                 total_cents, currency, quantity, created_at, updated_at)
             VALUES ($1, $2, $3, 'HOLD', $4, $5, $6, $7, $8, $8) RETURNING 1),
         s AS (
             INSERT INTO booking_seats (booking_id, event_id, seat_id, price_cents)
             SELECT $1, $2, * FROM unnest($9::text[], $10::int8[]) RETURNING 1),
         o AS (
             INSERT INTO outbox (event_id, kind, payload)
             SELECT $2, $11, $12::jsonb WHERE $12::jsonb IS NOT NULL RETURNING 1)
         SELECT 1",
        &req.booking_id.0,
        &req.event_id().0,
        &req.customer.as_str(),
        &req.expires_at,
        &total,
        &currency.as_str(),
        &quantity,
        &req.now,
        &ids,
        &prices,
        &change::SEATS_CHANGED,
        &payload
    )?;
    held_booking(req, taken)
}

/// The booking a hold of `taken` wrote for `req`.
pub(crate) fn held_booking(req: &HoldRequest, taken: &[Taken]) -> Result<Booking> {
    let mut booking = Booking {
        id: req.booking_id,
        event_id: req.event_id(),
        customer: req.customer.clone(),
        status: BookingStatus::Hold,
        expires_at: req.expires_at,
        seats: taken
            .iter()
            .map(|t| booked_seat(SeatId::from_trusted(t.0.clone()), t.2))
            .collect::<Result<_>>()?,
        total_cents: taken.iter().map(|t| t.2).sum(),
        currency: req.currency(),
        contact_email: None,
        tickets: Vec::new(),
        created_at: req.now,
        confirmed_at: None,
        cancelled_at: None,
        status_reason: None,
        resale: false,
    };
    booking.sort();
    Ok(booking)
}

// ---- commit ---------------------------------------------------------------------------------

pub async fn begin_commit<C: Exec>(c: &C, req: &CommitRequest) -> Result<CommitBegin, CommitError> {
    // The key first (see claim_keys); the booking found by its id names its event for
    // everything after.
    let claimed = claim_keys(c, &[req]).await?.pop();
    let Some(claimed) = claimed else {
        // A replay: the key's own record, by its key (it may name another booking).
        let existing = q!(
            c,
            query_opt,
            "/* by key */ SELECT fingerprint, state, response_status, response_body
             FROM idempotency_keys WHERE customer_id = $1 AND idempotency_key = $2",
            &req.customer.as_str(),
            &req.idempotency_key
        )?;
        let Some(k) = existing else {
            // No such booking at all (the insert selected nothing).
            return Err(CommitError::NotFound);
        };
        let key = rules::KeyRecord {
            fingerprint: k.get(0),
            response: match (
                k.get::<_, &str>(1),
                k.get::<_, Option<i16>>(2),
                k.get::<_, Option<Vec<u8>>>(3),
            ) {
                ("DONE", Some(status), Some(body)) => Some(StoredResponse {
                    status: status as u16,
                    body,
                }),
                _ => None,
            },
        };
        return rules::replay(&key, &req.fingerprint).map(CommitBegin::Replay);
    };
    let booking = lock_bookings(c, &[claimed])
        .await?
        .pop()
        .ok_or(CommitError::NotFound)?;
    // Judged at the time the row lock was ours, not when the request arrived.
    let now = rules::tx_now(req.now, SystemClock.now());
    rules::may_start_commit(
        Some(&booking.customer),
        booking.status,
        booking.expires_at,
        &req.customer,
        now,
    )?;
    let start = Start {
        req,
        booking: &booking,
        now,
    };
    let [(moved, paid)] = write_starts(c, std::slice::from_ref(&start)).await?[..] else {
        return Err(StoreError::Internal("one start written, not one answer".into()).into());
    };
    let Some(queued) = paid else {
        // The key forwarded to the provider is derived from the customer's key, so it was used
        // before (its record purged since): the provider would answer with that first payment.
        // The transaction rolls back.
        return Err(CommitError::KeyReused);
    };
    if booking.resale {
        // The listings stay reserved while the money moves, whatever the clock says.
        q!(
            c,
            execute,
            "UPDATE listings SET reserved_until = $2
             WHERE event_id = $3 AND booking_id = $1 AND status = 'RESERVED'",
            &booking.id.0,
            &boxoffice_domain::resale::PAYING,
            &booking.event_id.0
        )?;
    }
    // A resale booking's seats stay SOLD to their seller until the sale completes.
    if !booking.resale && moved as usize != booking.seats.len() {
        return Err(StoreError::Internal(format!(
            "booking {} holds {moved} of its {} seats",
            booking.id,
            booking.seats.len()
        ))
        .into());
    }
    Ok(start.started(queued))
}

/// Starts many commits in one transaction: the store's group commit for the first step of a
/// purchase, so that concurrent buyers share the statements, the transaction and its flush.
///
/// Returns, for each request in order, its start; or `None` for a request left to
/// [`begin_commit`] on its own: a replay, a second request for the same key or booking, a
/// booking that may not start now, a resale. A claim this transaction made for such a request
/// is withdrawn in it, so on its own the request finds everything as it was and gets the
/// answer it would have got. An error means nothing was written: every request goes alone.
pub async fn begin_commits<C: Exec>(
    c: &C,
    reqs: &[CommitRequest],
) -> Result<Vec<Option<CommitBegin>>> {
    // One request per key and per booking: a second one waits for the first on its own.
    let mut keys = HashSet::new();
    let mut bookings = HashSet::new();
    let (in_group, tried) = firsts(reqs, |r| {
        let new_key = keys.insert((r.customer.as_str(), r.idempotency_key.as_str()));
        let new_booking = bookings.insert(r.booking_id);
        new_key && new_booking
    });
    let claimed = claim_keys(c, &tried).await?;
    let mut locked: HashMap<BookingId, Booking> = lock_bookings(c, &claimed)
        .await?
        .into_iter()
        .map(|b| (b.id, b))
        .collect();
    let now = SystemClock.now();
    let mut starts = Vec::new();
    let mut withdrawn = Vec::new();
    for req in &tried {
        let Some(booking) = locked.remove(&req.booking_id) else {
            continue; // not claimed: a replay or no such booking
        };
        let now = rules::tx_now(req.now, now);
        let may = rules::may_start_commit(
            Some(&booking.customer),
            booking.status,
            booking.expires_at,
            &req.customer,
            now,
        );
        if may.is_ok() && !booking.resale {
            starts.push((*req, booking, now));
        } else {
            withdrawn.push((booking.event_id, *req));
        }
    }
    if !withdrawn.is_empty() {
        q!(
            c,
            execute,
            "/* grouped */ DELETE FROM idempotency_keys k
             USING unnest($1::uuid[], $2::text[], $3::text[]) AS x(ev, cust, key)
             WHERE k.customer_id = ANY($2) AND k.event_id = x.ev AND k.customer_id = x.cust
               AND k.idempotency_key = x.key",
            &withdrawn.iter().map(|w| w.0.0).collect::<Vec<_>>(),
            &withdrawn
                .iter()
                .map(|w| w.1.customer.as_str())
                .collect::<Vec<_>>(),
            &withdrawn
                .iter()
                .map(|w| w.1.idempotency_key.as_str())
                .collect::<Vec<_>>()
        )?;
    }
    let starts: Vec<Start<'_>> = starts
        .iter()
        .map(|(req, booking, now)| Start {
            req,
            booking,
            now: *now,
        })
        .collect();
    let written = write_starts(c, &starts).await?;
    // Tried requests differ in booking, so the booking names the request.
    let mut out: HashMap<BookingId, CommitBegin> = HashMap::with_capacity(starts.len());
    for (start, (moved, paid)) in starts.iter().zip(written) {
        match paid {
            Some(queued) if moved as usize == start.booking.seats.len() => {
                out.insert(start.booking.id, start.started(queued));
            }
            // A reused provider key or a seat no longer held: such a request must fail on
            // its own, and this transaction must not keep its writes.
            _ => {
                return Err(StoreError::Internal(format!(
                    "booking {} cannot start in a group",
                    start.booking.id
                )));
            }
        }
    }
    Ok(answers(reqs, &in_group, out, |r| r.booking_id))
}

/// Claims each request's key for its booking (none for a key already claimed, or a booking
/// that does not exist); returns the claimed bookings with their events. A concurrent request
/// with the same key waits on the unique index until this transaction ends, then finds the key
/// taken.
async fn claim_keys<C: Exec>(c: &C, reqs: &[&CommitRequest]) -> Result<Vec<(EventId, BookingId)>> {
    let column = |f: fn(&CommitRequest) -> &str| reqs.iter().map(|r| f(r)).collect::<Vec<_>>();
    let rows = q!(
        c,
        query,
        "/* by key */ INSERT INTO idempotency_keys (customer_id, idempotency_key, event_id,
            booking_id, payment_id, fingerprint, state, created_at)
         SELECT x.cust, x.key, b.event_id, b.booking_id, x.pay, x.fp, 'IN_FLIGHT', x.now
         FROM unnest($1::text[], $2::text[], $3::uuid[], $4::uuid[], $5::text[],
                     $6::timestamptz[]) AS x(cust, key, bk, pay, fp, now),
              bookings b
         WHERE b.booking_id = ANY($3) AND b.booking_id = x.bk
         ON CONFLICT (customer_id, idempotency_key) DO NOTHING
         RETURNING booking_id, event_id",
        &column(|r| r.customer.as_str()),
        &column(|r| r.idempotency_key.as_str()),
        &reqs.iter().map(|r| r.booking_id.0).collect::<Vec<_>>(),
        &reqs.iter().map(|r| r.payment_id.0).collect::<Vec<_>>(),
        &column(|r| r.fingerprint.as_str()),
        &reqs.iter().map(|r| r.now).collect::<Vec<_>>()
    )?;
    Ok(rows
        .iter()
        .map(|r| (EventId(r.get(1)), BookingId(r.get(0))))
        .collect())
}

/// Which of a group's requests it writes (`keep`, called once per request in order), and
/// those requests.
pub(crate) fn firsts<'a, T>(
    items: &'a [T],
    mut keep: impl FnMut(&'a T) -> bool,
) -> (Vec<bool>, Vec<&'a T>) {
    let in_group: Vec<bool> = items.iter().map(&mut keep).collect();
    let tried = items
        .iter()
        .zip(&in_group)
        .filter_map(|(item, &t)| t.then_some(item))
        .collect();
    (in_group, tried)
}

/// Each request's answer, in order: what the group wrote for it (found by its booking, which
/// no two written requests share), or `None` to go alone.
pub(crate) fn answers<T, A>(
    items: &[T],
    in_group: &[bool],
    mut out: HashMap<BookingId, A>,
    booking: impl Fn(&T) -> BookingId,
) -> Vec<Option<A>> {
    items
        .iter()
        .zip(in_group)
        .map(|(item, &t)| if t { out.remove(&booking(item)) } else { None })
        .collect()
}

/// Reads bookings with their seats (no tickets) in one statement, locking their rows in
/// booking-id order; bookings not found are left out.
async fn lock_bookings<C: Exec>(c: &C, ids: &[(EventId, BookingId)]) -> Result<Vec<Booking>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = q!(
        c,
        query,
        concat!(
            "/* grouped */ SELECT b.booking_id, ",
            booking_cols!(),
            ",
                ARRAY(SELECT s.seat_id FROM booking_seats s
                      WHERE s.event_id = b.event_id AND s.booking_id = b.booking_id
                      ORDER BY s.seat_id),
                ARRAY(SELECT s.price_cents FROM booking_seats s
                      WHERE s.event_id = b.event_id AND s.booking_id = b.booking_id
                      ORDER BY s.seat_id)
             FROM unnest($1::uuid[], $2::uuid[]) AS x(ev, bk)
             JOIN bookings b ON b.event_id = x.ev AND b.booking_id = x.bk
             WHERE b.booking_id = ANY($2)
             ORDER BY b.booking_id
             FOR UPDATE OF b"
        ),
        &ids.iter().map(|i| i.0.0).collect::<Vec<_>>(),
        &ids.iter().map(|i| i.1.0).collect::<Vec<_>>()
    )?;
    rows.iter()
        .map(|r| {
            // booking_id, the booking's columns, then its seat ids and prices.
            let seats = booked_seats(r.get(1 + BOOKING_COLUMNS), r.get(2 + BOOKING_COLUMNS))?;
            booking_row(r, 1, BookingId(r.get(0)), seats, Vec::new())
        })
        .collect()
}

/// A commit starting: its booking, read and judged under its row lock, goes PENDING with a
/// STARTED payment at `now`.
struct Start<'a> {
    req: &'a CommitRequest,
    booking: &'a Booking,
    now: OffsetDateTime,
}

impl Start<'_> {
    /// What the caller is told once the start is written.
    fn started(&self, queued: bool) -> CommitBegin {
        let (req, booking) = (self.req, self.booking);
        let payment = Payment {
            id: req.payment_id,
            booking_id: booking.id,
            event_id: booking.event_id,
            customer: req.customer.clone(),
            provider: req.provider.clone(),
            provider_ref: None,
            idempotency_key: req.provider_key.clone(),
            method: req.method.clone(),
            amount_cents: booking.total_cents,
            currency: booking.currency,
            status: PaymentStatus::Started,
            updated_at: self.now,
            attempts: 0,
            queued,
        };
        let booking = Booking {
            status: BookingStatus::Pending,
            ..booking.clone()
        };
        CommitBegin::Started {
            booking: Box::new(booking),
            payment: Box::new(payment),
        }
    }
}

/// Writes starts in one statement: each booking and its held seats PENDING, its payment
/// STARTED (queued if asked, or if its event has a waiting room). Returns, per start in order,
/// how many seats moved and whether its payment was written (`None`: its provider key was used
/// before), and if so whether it is queued.
async fn write_starts<C: Exec>(c: &C, starts: &[Start<'_>]) -> Result<Vec<(i64, Option<bool>)>> {
    if starts.is_empty() {
        return Ok(Vec::new());
    }
    let each = |f: fn(&Start<'_>) -> Uuid| starts.iter().map(f).collect::<Vec<_>>();
    let text = |f: for<'b> fn(&'b Start<'_>) -> &'b str| starts.iter().map(f).collect::<Vec<_>>();
    let seats: Vec<(Uuid, &str, Uuid)> = starts
        .iter()
        .flat_map(|s| {
            s.booking
                .seats
                .iter()
                .map(|seat| (s.booking.event_id.0, seat.seat_id.as_str(), s.booking.id.0))
        })
        .collect();
    let rows = q!(
        c,
        query,
        "/* grouped */ WITH x AS (
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::uuid[],
                 $5::text[], $6::text[], $7::text[], $8::text[], $9::int8[], $10::text[],
                 $11::bool[]) WITH ORDINALITY
                 AS x(bk, ev, now, pay, cust, provider, pkey, method, amount, currency, queued, i)),
         b AS (
             UPDATE bookings b SET status = 'PENDING', updated_at = x.now,
                 version = b.version + 1, status_reason = NULL
             FROM x WHERE b.booking_id = ANY($1) AND b.event_id = x.ev AND b.booking_id = x.bk
             RETURNING 1),
         s AS (
             UPDATE seats s SET state = 'PENDING', version = s.version + 1
             FROM unnest($12::uuid[], $13::text[], $14::uuid[]) AS y(ev, seat, bk)
             WHERE s.seat_id = ANY($13) AND s.event_id = y.ev AND s.seat_id = y.seat
               AND s.booking_id = y.bk
               -- CASE, not `state = 'HOLD'`, which would steer the planner to the partial
               -- index of held seats and a scan of every hold of the event per seat.
               AND CASE s.state WHEN 'HOLD' THEN true ELSE false END
             RETURNING s.booking_id),
         p AS (
             INSERT INTO payments (payment_id, event_id, booking_id, customer_id, provider,
                 idempotency_key, method, amount_cents, currency, status, created_at, updated_at,
                 queued)
             SELECT x.pay, x.ev, x.bk, x.cust, x.provider, x.pkey, x.method, x.amount,
                 x.currency, 'STARTED', x.now, x.now,
                 x.queued OR EXISTS (SELECT 1 FROM events e
                                     WHERE e.event_id = x.ev AND e.waiting_room IS NOT NULL)
             FROM x
             ON CONFLICT (idempotency_key) DO NOTHING RETURNING booking_id, queued)
         SELECT (SELECT count(*) FROM s WHERE s.booking_id = x.bk), p.queued
         FROM x LEFT JOIN p ON p.booking_id = x.bk ORDER BY x.i",
        &each(|s| s.booking.id.0),
        &each(|s| s.booking.event_id.0),
        &starts.iter().map(|s| s.now).collect::<Vec<_>>(),
        &each(|s| s.req.payment_id.0),
        &text(|s| s.req.customer.as_str()),
        &text(|s| s.req.provider.as_str()),
        &text(|s| s.req.provider_key.as_str()),
        &text(|s| s.req.method.as_str()),
        &starts
            .iter()
            .map(|s| s.booking.total_cents)
            .collect::<Vec<_>>(),
        &text(|s| s.booking.currency.as_str()),
        &starts.iter().map(|s| s.req.queued).collect::<Vec<_>>(),
        &seats.iter().map(|s| s.0).collect::<Vec<_>>(),
        &seats.iter().map(|s| s.1).collect::<Vec<_>>(),
        &seats.iter().map(|s| s.2).collect::<Vec<_>>()
    )?;
    if rows.len() != starts.len() {
        return Err(StoreError::Internal(format!(
            "{} starts written, {} answers",
            starts.len(),
            rows.len()
        )));
    }
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, i64>(0), r.get::<_, Option<bool>>(1)))
        .collect())
}

pub async fn finish_commit<C: Exec>(c: &C, fin: &CommitFinish) -> Result<FinishedCommit> {
    // Lock order everywhere: booking, then payment, then seats. Both locks and the reads go
    // out in one round trip.
    let key = PaymentKey {
        event_id: fin.event_id,
        id: fin.payment_id,
    };
    let (booking, payment, stored) = tokio::try_join!(
        read_booking(c, fin.event_id, fin.booking_id, true),
        payment_in(c, key, true),
        stored_response(c, key),
    )?;
    let booking =
        booking.ok_or_else(|| StoreError::Internal(format!("no booking {}", fin.booking_id)))?;
    let payment =
        payment.ok_or_else(|| StoreError::Internal(format!("no payment {}", fin.payment_id)))?;
    let now = rules::tx_now(fin.now, SystemClock.now());
    let plan = rules::settle(
        booking.status,
        booking.expires_at,
        payment.status,
        fin.settlement.answer(),
        stored.is_some(),
        now,
    );
    if let Settlement::Approved {
        provider_ref,
        tickets,
    } = &fin.settlement
        && plan.action == SettleAction::Confirm
        && !booking.resale
        && plan.store_response
    {
        return confirm_pending(c, fin, booking, payment, provider_ref, tickets, now).await;
    }
    if plan.action == SettleAction::Nothing && plan.payment_to.is_none() {
        // Settled before (by the request or by reconciliation), or nothing to do yet: answer
        // as then.
        let outcome = rules::settled_outcome(payment.status, booking);
        let response = stored.unwrap_or_else(|| (fin.render)(&outcome));
        return Ok(FinishedCommit {
            outcome,
            response,
            payment,
        });
    }
    let outcome = match (&fin.settlement, plan.action) {
        (
            Settlement::Approved {
                provider_ref,
                tickets,
            },
            action,
        ) => {
            q!(
                c,
                execute,
                "UPDATE payments SET status = 'AUTHORIZED', provider_ref = $2, updated_at = $3
                 WHERE event_id = $4 AND payment_id = $1",
                &fin.payment_id.0,
                &provider_ref,
                &now,
                &fin.event_id.0
            )?;
            if action != SettleAction::Void && confirm(c, &booking, tickets, now).await? {
                CommitOutcome::Confirmed(must_load(c, booking.event_id, booking.id).await?)
            } else {
                CommitOutcome::Lapsed(booking)
            }
        }
        (settlement, action) => {
            if let Some(to) = plan.payment_to {
                q!(
                    c,
                    execute,
                    "UPDATE payments SET status = $2, updated_at = $3
                     WHERE event_id = $4 AND payment_id = $1",
                    &fin.payment_id.0,
                    &to.as_str(),
                    &now,
                    &fin.event_id.0
                )?;
            }
            match action {
                SettleAction::ReturnToHold => {
                    q!(
                        c,
                        execute,
                        "UPDATE bookings SET status = 'HOLD', updated_at = $2,
                            version = version + 1, status_reason = $4
                         WHERE event_id = $3 AND booking_id = $1 AND status = 'PENDING'",
                        &booking.id.0,
                        &now,
                        &booking.event_id.0,
                        &rules::returned_to_hold_reason(settlement)
                    )?;
                    // A resale booking's listings are held until the hold's own expiry again.
                    q!(
                        c,
                        execute,
                        "UPDATE listings SET reserved_until = $2
                         WHERE event_id = $3 AND booking_id = $1 AND status = 'RESERVED'",
                        &booking.id.0,
                        &booking.expires_at,
                        &booking.event_id.0
                    )?;
                    let ids: Vec<&str> = booking.seats.iter().map(|s| s.seat_id.as_str()).collect();
                    q!(
                        c,
                        execute,
                        "UPDATE seats SET state = 'HOLD', version = version + 1
                         WHERE event_id = $2 AND seat_id = ANY($3)
                           AND booking_id = $1 AND state = 'PENDING'",
                        &booking.id.0,
                        &booking.event_id.0,
                        &ids
                    )?;
                }
                SettleAction::Expire => {
                    end_booking(
                        c,
                        booking.event_id,
                        booking.id,
                        BookingStatus::Pending,
                        BookingStatus::Expired,
                        now,
                    )
                    .await?;
                }
                _ => {}
            }
            rules::unpaid_outcome(
                settlement,
                must_load(c, booking.event_id, booking.id).await?,
            )
        }
    };
    let response = match stored {
        Some(r) => r,
        None => {
            let response = (fin.render)(&outcome);
            if plan.store_response {
                q!(
                    c,
                    execute,
                    "UPDATE idempotency_keys SET state = 'DONE', response_status = $2,
                        response_body = $3
                     WHERE event_id = $4 AND payment_id = $1 AND state <> 'DONE'",
                    &fin.payment_id.0,
                    &(response.status as i16),
                    &response.body,
                    &fin.event_id.0
                )?;
            }
            response
        }
    };
    let payment = payment_in(c, key, false)
        .await?
        .ok_or_else(|| StoreError::Internal("payment vanished".into()))?;
    Ok(FinishedCommit {
        outcome,
        response,
        payment,
    })
}

/// The common case: a pending booking whose payment was approved. The outcome and its stored
/// response are computed first, then every write goes out in one statement.
async fn confirm_pending<C: Exec>(
    c: &C,
    fin: &CommitFinish,
    booking: Booking,
    payment: Payment,
    provider_ref: &str,
    tickets: &[NewTicket],
    now: OffsetDateTime,
) -> Result<FinishedCommit> {
    let done = confirmation(fin, booking, payment, provider_ref, tickets, now)?;
    write_confirmations(c, std::slice::from_ref(&done)).await?;
    Ok(done.finished)
}

/// A pending booking confirmed with its approved payment, as it will be written.
struct Confirmation<'a> {
    finished: FinishedCommit,
    tickets: &'a [NewTicket],
    now: OffsetDateTime,
}

/// The outcome of confirming `booking` (PENDING, its payment approved) with `tickets`, and the
/// response stored for it.
fn confirmation<'a>(
    fin: &CommitFinish,
    booking: Booking,
    payment: Payment,
    provider_ref: &str,
    tickets: &'a [NewTicket],
    now: OffsetDateTime,
) -> Result<Confirmation<'a>> {
    if tickets.len() != booking.seats.len()
        || tickets
            .iter()
            .any(|t| !booking.seats.iter().any(|s| s.seat_id == t.seat_id))
    {
        return Err(StoreError::Internal(
            "one ticket per seat of the booking is required".into(),
        ));
    }
    let mut confirmed = Booking {
        status: BookingStatus::Confirmed,
        confirmed_at: Some(now),
        cancelled_at: None,
        tickets: tickets
            .iter()
            .map(|t| Ticket {
                id: t.id,
                event_id: booking.event_id,
                booking_id: booking.id,
                seat_id: t.seat_id.clone(),
                customer: booking.customer.clone(),
                status: TicketStatus::Valid,
                token: t.token.clone(),
                attendee_name: None,
                issued_at: now,
                checked_in_at: None,
            })
            .collect(),
        ..booking
    };
    confirmed.sort();
    let outcome = CommitOutcome::Confirmed(confirmed);
    let response = (fin.render)(&outcome);
    Ok(Confirmation {
        finished: FinishedCommit {
            outcome,
            response,
            payment: Payment {
                status: PaymentStatus::Authorized,
                provider_ref: Some(provider_ref.to_owned()),
                updated_at: now,
                ..payment
            },
        },
        tickets,
        now,
    })
}

/// Writes confirmations in one statement: each payment AUTHORIZED, the seats SOLD, the
/// booking CONFIRMED, its tickets issued and its response stored under the key. Fails, and
/// the transaction must not commit, unless every seat was still PENDING for its booking.
async fn write_confirmations<C: Exec>(c: &C, done: &[Confirmation<'_>]) -> Result<()> {
    if done.is_empty() {
        return Ok(());
    }
    let payments: Vec<&Payment> = done.iter().map(|d| &d.finished.payment).collect();
    let tickets: Vec<(&Payment, &NewTicket, OffsetDateTime)> = done
        .iter()
        .flat_map(|d| {
            d.tickets
                .iter()
                .map(move |t| (&d.finished.payment, t, d.now))
        })
        .collect();
    let rows = q!(
        c,
        query,
        "/* grouped */ WITH x AS (
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[],
                 $5::timestamptz[], $6::int2[], $7::bytea[]) WITH ORDINALITY
                 AS x(ev, bk, pay, ref, now, rs, rb, i)),
         y AS (
             SELECT * FROM unnest($8::uuid[], $9::uuid[], $10::text[], $11::uuid[], $12::text[],
                 $13::text[], $14::timestamptz[]) AS y(ev, bk, seat, tid, token, cust, now)),
         pay AS (
             UPDATE payments p SET status = 'AUTHORIZED', provider_ref = x.ref,
                 updated_at = x.now
             FROM x WHERE p.payment_id = ANY($3) AND p.event_id = x.ev AND p.payment_id = x.pay
             RETURNING 1),
         sold AS (
             UPDATE seats s SET state = 'SOLD', hold_expires_at = NULL, version = s.version + 1
             FROM y WHERE s.seat_id = ANY($10) AND s.event_id = y.ev AND s.seat_id = y.seat
               AND s.booking_id = y.bk AND s.state = 'PENDING'
             RETURNING s.booking_id),
         book AS (
             UPDATE bookings b SET status = 'CONFIRMED', confirmed_at = x.now,
                 updated_at = x.now, cancelled_at = NULL, version = b.version + 1
             FROM x WHERE b.booking_id = ANY($2) AND b.event_id = x.ev AND b.booking_id = x.bk
             RETURNING 1),
         tick AS (
             INSERT INTO tickets (ticket_id, event_id, booking_id, seat_id, customer_id, status,
                 token, issued_at)
             SELECT y.tid, y.ev, y.bk, y.seat, y.cust, 'VALID', y.token, y.now FROM y
             RETURNING 1),
         k AS (
             UPDATE idempotency_keys k SET state = 'DONE', response_status = x.rs,
                 response_body = x.rb
             FROM x WHERE k.payment_id = ANY($3) AND k.event_id = x.ev AND k.payment_id = x.pay
               AND k.state <> 'DONE'
             RETURNING 1)
         SELECT (SELECT count(*) FROM sold WHERE sold.booking_id = x.bk) FROM x ORDER BY x.i",
        &payments.iter().map(|p| p.event_id.0).collect::<Vec<_>>(),
        &payments.iter().map(|p| p.booking_id.0).collect::<Vec<_>>(),
        &payments.iter().map(|p| p.id.0).collect::<Vec<_>>(),
        &payments
            .iter()
            .map(|p| p.provider_ref.as_deref().unwrap_or_default())
            .collect::<Vec<_>>(),
        &done.iter().map(|d| d.now).collect::<Vec<_>>(),
        &done
            .iter()
            .map(|d| d.finished.response.status as i16)
            .collect::<Vec<_>>(),
        &done
            .iter()
            .map(|d| d.finished.response.body.as_slice())
            .collect::<Vec<_>>(),
        &tickets.iter().map(|t| t.0.event_id.0).collect::<Vec<_>>(),
        &tickets.iter().map(|t| t.0.booking_id.0).collect::<Vec<_>>(),
        &tickets
            .iter()
            .map(|t| t.1.seat_id.as_str())
            .collect::<Vec<_>>(),
        &tickets.iter().map(|t| t.1.id.0).collect::<Vec<_>>(),
        &tickets
            .iter()
            .map(|t| t.1.token.as_str())
            .collect::<Vec<_>>(),
        &tickets
            .iter()
            .map(|t| t.0.customer.as_str())
            .collect::<Vec<_>>(),
        &tickets.iter().map(|t| t.2).collect::<Vec<_>>()
    )?;
    for (d, r) in done.iter().zip(&rows) {
        let sold: i64 = r.get(0);
        if sold as usize != d.tickets.len() {
            return Err(StoreError::Internal(format!(
                "booking {}: sold {sold} of {} seats",
                d.finished.payment.booking_id,
                d.tickets.len()
            )));
        }
    }
    if rows.len() != done.len() {
        return Err(StoreError::Internal(format!(
            "{} confirmations written, {} answers",
            done.len(),
            rows.len()
        )));
    }
    Ok(())
}

/// Settles many approved commits in one transaction: the store's group commit for the last
/// step of a purchase. Only the common case is settled here — a PENDING booking (not a
/// resale) whose STARTED payment was approved, with one ticket per seat. Returns, per request
/// in order, its result; or `None` for a request left to [`finish_commit`] on its own (any
/// other case, or a second request for the same booking or payment), which this transaction
/// has not touched. An error means nothing was written: every request goes alone.
pub async fn finish_commits<C: Exec>(
    c: &C,
    fins: &[CommitFinish],
) -> Result<Vec<Option<FinishedCommit>>> {
    let mut bookings = HashSet::new();
    let mut payments = HashSet::new();
    let (in_group, tried) = firsts(fins, |f| {
        let new_booking = bookings.insert(f.booking_id);
        let new_payment = payments.insert(f.payment_id);
        matches!(f.settlement, Settlement::Approved { .. }) && new_booking && new_payment
    });
    // Lock order as everywhere: the booking, then its payment, then the seats.
    let rows = q!(
        c,
        query,
        concat!(
            "/* grouped */ SELECT b.booking_id, ",
            booking_cols!(),
            ", ",
            payment_cols!(),
            ",
                ARRAY(SELECT s.seat_id FROM booking_seats s
                      WHERE s.event_id = b.event_id AND s.booking_id = b.booking_id
                      ORDER BY s.seat_id),
                ARRAY(SELECT s.price_cents FROM booking_seats s
                      WHERE s.event_id = b.event_id AND s.booking_id = b.booking_id
                      ORDER BY s.seat_id),
                EXISTS (SELECT 1 FROM idempotency_keys k
                        WHERE k.event_id = p.event_id AND k.payment_id = p.payment_id
                          AND k.state = 'DONE')
             FROM unnest($1::uuid[], $2::uuid[], $3::uuid[]) AS x(ev, bk, pay)
             JOIN bookings b ON b.event_id = x.ev AND b.booking_id = x.bk
             JOIN payments p ON p.event_id = x.ev AND p.payment_id = x.pay
                 AND p.booking_id = b.booking_id
             WHERE b.booking_id = ANY($2) AND p.payment_id = ANY($3)
             ORDER BY b.booking_id
             FOR UPDATE OF b, p"
        ),
        &tried.iter().map(|f| f.event_id.0).collect::<Vec<_>>(),
        &tried.iter().map(|f| f.booking_id.0).collect::<Vec<_>>(),
        &tried.iter().map(|f| f.payment_id.0).collect::<Vec<_>>()
    )?;
    let mut found: HashMap<BookingId, (Booking, Payment, bool)> = HashMap::new();
    for r in &rows {
        let id = BookingId(r.get(0));
        // booking_id, the booking's columns, the payment's, then seat ids, prices, stored.
        let payment_at_col = 1 + BOOKING_COLUMNS;
        let rest = payment_at_col + PAYMENT_COLUMNS;
        let seats = booked_seats(r.get(rest), r.get(rest + 1))?;
        let booking = booking_row(r, 1, id, seats, Vec::new())?;
        found.insert(
            id,
            (booking, payment_at(r, payment_at_col)?, r.get(rest + 2)),
        );
    }
    let clock = SystemClock.now();
    let mut done: Vec<(BookingId, Confirmation<'_>)> = Vec::new();
    for fin in &tried {
        let Some((booking, payment, stored)) = found.remove(&fin.booking_id) else {
            continue;
        };
        let Settlement::Approved {
            provider_ref,
            tickets,
        } = &fin.settlement
        else {
            continue;
        };
        let now = rules::tx_now(fin.now, clock);
        let plan = rules::settle(
            booking.status,
            booking.expires_at,
            payment.status,
            fin.settlement.answer(),
            stored,
            now,
        );
        if plan.action != SettleAction::Confirm
            || booking.resale
            || !plan.store_response
            || payment.event_id != fin.event_id
        {
            continue;
        }
        // A ticket set that does not fit the booking fails on its own.
        if let Ok(confirmed) = confirmation(fin, booking, payment, provider_ref, tickets, now) {
            done.push((fin.booking_id, confirmed));
        }
    }
    let (ids, done): (Vec<BookingId>, Vec<Confirmation<'_>>) = done.into_iter().unzip();
    write_confirmations(c, &done).await?;
    let out: HashMap<BookingId, FinishedCommit> = ids
        .into_iter()
        .zip(done.into_iter().map(|d| d.finished))
        .collect();
    Ok(answers(fins, &in_group, out, |f| f.booking_id))
}

async fn stored_response<C: Exec>(c: &C, key: PaymentKey) -> Result<Option<StoredResponse>> {
    Ok(q!(
        c,
        query_opt,
        "SELECT response_status, response_body FROM idempotency_keys
         WHERE event_id = $2 AND payment_id = $1 AND state = 'DONE'",
        &key.id.0,
        &key.event_id.0
    )?
    .map(|r| StoredResponse {
        status: r.get::<_, i16>(0) as u16,
        body: r.get(1),
    }))
}

/// Sells the booking's seats and issues its tickets; see the SQLite store for the rules.
async fn confirm<C: Exec>(
    c: &C,
    booking: &Booking,
    tickets: &[NewTicket],
    now: OffsetDateTime,
) -> Result<bool> {
    if booking.resale {
        return crate::resale::confirm_resale(c, booking, tickets, now).await;
    }
    let mut deltas = BTreeMap::new();
    let ids: Vec<&str> = booking.seats.iter().map(|s| s.seat_id.as_str()).collect();
    match booking.status {
        BookingStatus::Pending => {}
        BookingStatus::Hold | BookingStatus::Expired => {
            let rows = q!(
                c,
                query,
                "SELECT seat_id, section_no, state, hold_expires_at, booking_id FROM seats
                 WHERE event_id = $1 AND seat_id = ANY($2) ORDER BY seat_id FOR UPDATE",
                &booking.event_id.0,
                &ids
            )?;
            if rows.len() != ids.len() {
                return Ok(false);
            }
            for r in &rows {
                let state: &str = r.get(2);
                let exp: Option<OffsetDateTime> = r.get(3);
                let owner: Option<Uuid> = r.get(4);
                let ours = owner == Some(booking.id.0);
                let state = SeatState::parse(state).ok_or_else(|| corrupt("seat state"))?;
                match rules::retake_seat(state, exp, ours, now) {
                    None => return Ok(false),
                    Some(true) => *deltas.entry(r.get::<_, i16>(1) as u16).or_insert(0) -= 1,
                    Some(false) => {}
                }
            }
            if booking.status == BookingStatus::Expired {
                let max: i32 = q!(
                    c,
                    query_one,
                    "SELECT max_tickets_per_customer FROM events WHERE event_id = $1",
                    &booking.event_id.0
                )?
                .get(0);
                if take_from_limit(
                    c,
                    booking.event_id,
                    &booking.customer,
                    booking.seats.len() as u32,
                    max as u32,
                )
                .await?
                .is_err()
                {
                    return Ok(false);
                }
            }
            q!(
                c,
                execute,
                "UPDATE seats SET state = 'PENDING', booking_id = $3,
                    hold_expires_at = coalesce(hold_expires_at, $4), version = version + 1
                 WHERE event_id = $1 AND seat_id = ANY($2)",
                &booking.event_id.0,
                &ids,
                &booking.id.0,
                &now
            )?;
        }
        BookingStatus::Confirmed | BookingStatus::Cancelled => return Ok(false),
    }
    let sold = q!(
        c,
        execute,
        "UPDATE seats SET state = 'SOLD', hold_expires_at = NULL, version = version + 1
         WHERE event_id = $2 AND seat_id = ANY($3) AND booking_id = $1 AND state = 'PENDING'",
        &booking.id.0,
        &booking.event_id.0,
        &ids
    )?;
    if sold as usize != booking.seats.len() || tickets.len() != booking.seats.len() {
        return Err(StoreError::Internal(format!(
            "booking {}: sold {sold}, {} tickets, {} seats",
            booking.id,
            tickets.len(),
            booking.seats.len()
        )));
    }
    if tickets
        .iter()
        .any(|t| !booking.seats.iter().any(|s| s.seat_id == t.seat_id))
    {
        return Err(StoreError::Internal(
            "ticket for a seat not in the booking".into(),
        ));
    }
    q!(
        c,
        execute,
        "UPDATE bookings SET status = 'CONFIRMED', confirmed_at = $2, updated_at = $2,
            cancelled_at = NULL, version = version + 1
         WHERE event_id = $3 AND booking_id = $1",
        &booking.id.0,
        &now,
        &booking.event_id.0
    )?;
    let t_ids: Vec<Uuid> = tickets.iter().map(|t| t.id.0).collect();
    let t_seats: Vec<&str> = tickets.iter().map(|t| t.seat_id.as_str()).collect();
    let t_tokens: Vec<&str> = tickets.iter().map(|t| t.token.as_str()).collect();
    q!(
        c,
        execute,
        "INSERT INTO tickets (ticket_id, event_id, booking_id, seat_id, customer_id, status,
            token, issued_at)
         SELECT t, $4, $5, s, $6, 'VALID', k, $7
         FROM unnest($1::uuid[], $2::text[], $3::text[]) AS x(t, s, k)",
        &t_ids,
        &t_seats,
        &t_tokens,
        &booking.event_id.0,
        &booking.id.0,
        &booking.customer.as_str(),
        &now
    )?;
    record_delta(c, booking.event_id, &deltas).await?;
    Ok(true)
}

pub async fn set_payments_status<C: Exec>(
    c: &C,
    payments: &[PaymentKey],
    from: &[PaymentStatus],
    to: PaymentStatus,
    now: OffsetDateTime,
) -> Result<u64> {
    let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
    let ids: Vec<uuid::Uuid> = payments.iter().map(|p| p.id.0).collect();
    let mut events: Vec<uuid::Uuid> = payments.iter().map(|p| p.event_id.0).collect();
    events.sort_unstable();
    events.dedup();
    // A payment id is unique on its own; the events name where the rows live.
    q!(
        c,
        execute,
        "UPDATE payments SET status = $2, updated_at = $3
         WHERE event_id = ANY($5) AND payment_id = ANY($1) AND status = ANY($4)",
        &ids,
        &to.as_str(),
        &now,
        &from,
        &events
    )
}

// ---- release, cancel, details ---------------------------------------------------------------

/// The entry of a use case on a booking named by its id: its row locked, then read.
async fn lock_booking<C: Exec>(c: &C, booking_id: BookingId) -> Result<Option<Booking>> {
    match booking_event(c, booking_id, true).await? {
        Some(event_id) => read_booking(c, event_id, booking_id, false).await,
        None => Ok(None),
    }
}

pub async fn release<C: Exec>(
    c: &C,
    booking_id: BookingId,
    now: OffsetDateTime,
) -> Result<Booking, ReleaseError> {
    let b = lock_booking(c, booking_id)
        .await?
        .ok_or(ReleaseError::NotFound)?;
    let now = rules::tx_now(now, SystemClock.now());
    match rules::release(b.status, b.expires_at, now)? {
        ReleaseAction::End(to) => {
            end_booking(c, b.event_id, b.id, b.status, to, now).await?;
            Ok(must_load(c, b.event_id, booking_id).await?)
        }
        ReleaseAction::Unchanged => Ok(b),
    }
}

pub async fn cancel_confirmed<C: Exec>(
    c: &C,
    booking_id: BookingId,
    now: OffsetDateTime,
) -> Result<(Booking, Option<Payment>), ReleaseError> {
    let b = lock_booking(c, booking_id)
        .await?
        .ok_or(ReleaseError::NotFound)?;
    // The tickets' rows too (lock order: booking, then tickets): a listing, a transfer or a
    // check-in of one of them waits for this decision, or this one sees theirs.
    let tickets: Vec<TicketStatus> = q!(
        c,
        query,
        "SELECT status FROM tickets WHERE event_id = $2 AND booking_id = $1
         ORDER BY ticket_id FOR UPDATE",
        &b.id.0,
        &b.event_id.0
    )?
    .iter()
    .map(|r| TicketStatus::parse(r.get(0)).ok_or_else(|| corrupt("ticket status")))
    .collect::<Result<_>>()?;
    match rules::cancel(b.status, &tickets, b.resale)? {
        CancelAction::Unchanged => return Ok((b, None)),
        CancelAction::Cancel => {}
    }
    let paid = q!(
        c,
        query_opt,
        &format!(
            "{PAYMENT_SELECT} WHERE event_id = $2 AND booking_id = $1
                AND status IN ('AUTHORIZED', 'CAPTURED')
             FOR UPDATE"
        ),
        &b.id.0,
        &b.event_id.0
    )?
    .as_ref()
    .map(payment_row)
    .transpose()?;
    void_confirmed(c, &b, None, now).await?;
    if let Some(p) = &paid {
        set_payments_status(
            c,
            &[p.key()],
            &[PaymentStatus::Authorized, PaymentStatus::Captured],
            PaymentStatus::RefundPending,
            now,
        )
        .await?;
    }
    Ok((must_load(c, b.event_id, booking_id).await?, paid))
}

/// CONFIRMED → CANCELLED: every ticket VOID, the SOLD seats back on sale, the places back to
/// the customer's limit, with an optional reason shown on the booking.
pub(crate) async fn void_confirmed<C: Exec>(
    c: &C,
    b: &Booking,
    reason: Option<&str>,
    now: OffsetDateTime,
) -> Result<()> {
    debug_assert!(b.status.can_become(BookingStatus::Cancelled));
    // Its tickets can no longer be sold on, and no seller is paid for money that went back:
    // neither the seller of a resale this booking bought, nor this booking's owner for a
    // resale of a ticket they were refunded for.
    crate::resale::close_listings_of_booking(c, b.event_id, b.id, now).await?;
    // Listings of this booking's tickets, and those it bought, are all of its event.
    q!(
        c,
        execute,
        "UPDATE payouts SET status = 'CLAWED_BACK', updated_at = $2
         WHERE event_id = $3 AND status = 'SCHEDULED' AND listing_id IN (
             SELECT listing_id FROM listings
             WHERE event_id = $3 AND booking_id = $1 AND status = 'SOLD'
             UNION ALL
             SELECT l.listing_id FROM listings l
             JOIN tickets t ON t.event_id = l.event_id AND t.ticket_id = l.ticket_id
             WHERE l.event_id = $3 AND t.booking_id = $1 AND l.status = 'SOLD')",
        &b.id.0,
        &now,
        &b.event_id.0
    )?;
    let freed = free_seats(c, b.event_id, b.id, &["SOLD"]).await?;
    q!(
        c,
        execute,
        "UPDATE tickets SET status = 'VOID', voided_at = $2
         WHERE event_id = $3 AND booking_id = $1 AND status IN ('VALID', 'LISTED', 'USED')",
        &b.id.0,
        &now,
        &b.event_id.0
    )?;
    q!(
        c,
        execute,
        "UPDATE bookings SET status = 'CANCELLED', cancelled_at = $2, updated_at = $2,
            status_reason = $3, version = version + 1
         WHERE event_id = $4 AND booking_id = $1",
        &b.id.0,
        &now,
        &reason,
        &b.event_id.0
    )?;
    adjust_counter(c, b.event_id, &b.customer, -(b.seats.len() as i32)).await?;
    record_delta(c, b.event_id, &freed).await
}

/// See [`boxoffice_domain::ports::Store::revoke`].
pub async fn revoke<C: Exec>(
    c: &C,
    key: PaymentKey,
    why: Revocation,
    now: OffsetDateTime,
) -> Result<Option<Booking>> {
    let Some(p) = payment_in(c, key, false).await? else {
        return Ok(None);
    };
    // Lock order: booking, then payment.
    let Some(b) = read_booking(c, key.event_id, p.booking_id, true).await? else {
        return Ok(None);
    };
    let p = payment_in(c, key, true)
        .await?
        .ok_or_else(|| StoreError::Internal(format!("payment {} vanished", key.id)))?;
    let action = rules::revoke(b.status, p.status, why);
    if action == RevokeAction::Nothing {
        return Ok(None);
    }
    if action == RevokeAction::Revoke {
        void_confirmed(c, &b, Some(why.reason()), now).await?;
    }
    q!(
        c,
        execute,
        "UPDATE payments SET status = $2, reason = $3, updated_at = $4
         WHERE event_id = $5 AND payment_id = $1",
        &key.id.0,
        &why.payment_status().as_str(),
        &why.reason(),
        &now,
        &key.event_id.0
    )?;
    Ok(Some(must_load(c, b.event_id, b.id).await?))
}

pub async fn update_details<C: Exec>(
    c: &C,
    booking_id: BookingId,
    contact_email: Option<String>,
    attendees: Vec<(SeatId, Option<String>)>,
    now: OffsetDateTime,
) -> Result<Booking> {
    let entry = q!(
        c,
        query_opt,
        "/* by key */ SELECT event_id, customer_id FROM bookings WHERE booking_id = $1 FOR UPDATE",
        &booking_id.0
    )?
    .ok_or_else(|| StoreError::Internal(format!("no booking {booking_id}")))?;
    let event_id = EventId(entry.get(0));
    let owner: &str = entry.get(1);
    if let Some(email) = contact_email {
        q!(
            c,
            execute,
            "UPDATE bookings SET contact_email = $2, updated_at = $3
             WHERE event_id = $4 AND booking_id = $1",
            &booking_id.0,
            &email,
            &now,
            &event_id.0
        )?;
    }
    if !attendees.is_empty() {
        let seats: Vec<&str> = attendees.iter().map(|(s, _)| s.as_str()).collect();
        let names: Vec<Option<&str>> = attendees.iter().map(|(_, n)| n.as_deref()).collect();
        q!(
            c,
            execute,
            "UPDATE tickets t SET attendee_name = x.n
             FROM unnest($2::text[], $3::text[]) AS x(s, n)
             WHERE t.event_id = $4 AND t.booking_id = $1 AND t.seat_id = x.s
               -- only the booking owner's tickets: one given away is the recipient's
               AND t.customer_id = $5",
            &booking_id.0,
            &seats,
            &names,
            &event_id.0,
            &owner
        )?;
        let json: Vec<serde_json::Value> = attendees
            .iter()
            .map(|(s, n)| serde_json::json!({"seatId": s.as_str(), "name": n}))
            .collect();
        q!(
            c,
            execute,
            "UPDATE bookings SET attendees = $2 WHERE event_id = $3 AND booking_id = $1",
            &booking_id.0,
            &serde_json::Value::from(json),
            &event_id.0
        )?;
    }
    must_load(c, event_id, booking_id).await
}

// ---- background work ------------------------------------------------------------------------

pub async fn expire_holds<C: Exec>(c: &C, now: OffsetDateTime, limit: u32) -> Result<u32> {
    // SKIP LOCKED: several nodes sweep at once without queueing on each other's rows.
    let ids = q!(
        c,
        query,
        "/* scan */ SELECT booking_id, event_id FROM bookings
         WHERE status = 'HOLD' AND expires_at <= $1
         ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        &now,
        &i64::from(limit)
    )?;
    let mut n = 0;
    for r in ids {
        if end_booking(
            c,
            EventId(r.get(1)),
            BookingId(r.get(0)),
            BookingStatus::Hold,
            BookingStatus::Expired,
            now,
        )
        .await?
        {
            n += 1;
        }
    }
    q!(
        c,
        execute,
        "/* scan */ DELETE FROM idempotency_keys WHERE state = 'DONE' AND created_at < $1",
        &(now - time::Duration::hours(48))
    )?;
    Ok(n)
}

pub async fn check_in<C: Exec>(
    c: &C,
    ticket: TicketId,
    event: EventId,
    now: OffsetDateTime,
) -> Result<CheckIn> {
    // Bound to the door's event: another event's ticket is never marked, whatever its state.
    // A listed ticket is still its owner's: it gets in, and its listing is withdrawn (a buyer
    // holding it then cannot complete the purchase). The ticket row lock orders this against
    // a sale of the same ticket: exactly one of the two wins. Lock order as everywhere:
    // listing, then ticket.
    q!(
        c,
        query,
        "SELECT 1 FROM listings
         WHERE event_id = $2 AND ticket_id = $1 AND status IN ('ACTIVE', 'RESERVED')
         FOR UPDATE",
        &ticket.0,
        &event.0
    )?;
    let was = q!(
        c,
        query_opt,
        "UPDATE tickets t SET status = 'USED', checked_in_at = $2
         FROM (SELECT ticket_id, status FROM tickets
               WHERE event_id = $3 AND ticket_id = $1 FOR UPDATE) old
         WHERE t.event_id = $3 AND t.ticket_id = old.ticket_id
           AND old.status IN ('VALID', 'LISTED')
         RETURNING old.status = 'LISTED'",
        &ticket.0,
        &now,
        &event.0
    )?;
    let n = u64::from(was.is_some());
    if was.is_some_and(|r| r.get::<_, bool>(0)) {
        crate::resale::withdraw_for_ticket(c, event, ticket, now).await?;
    }
    let mut t = q!(
        c,
        query_opt,
        &format!("{TICKET_SELECT} WHERE event_id = $2 AND ticket_id = $1"),
        &ticket.0,
        &event.0
    )?;
    if t.is_none() {
        // Not this door's: unknown, or another event's ticket (said so, and left alone).
        t = q!(
            c,
            query_opt,
            &format!("{BY_KEY} {TICKET_SELECT} WHERE ticket_id = $1"),
            &ticket.0
        )?;
    }
    let t = t.as_ref().map(ticket_row).transpose()?;
    Ok(match t {
        None => CheckIn::Unknown,
        Some(t) if t.event_id != event => CheckIn::WrongEvent(t),
        Some(t) if n == 1 => CheckIn::Admitted(t),
        Some(t) if t.status == TicketStatus::Void => CheckIn::Void(t),
        Some(t) if t.status == TicketStatus::Reissued => CheckIn::Reissued(t),
        Some(t) => CheckIn::AlreadyUsed(t),
    })
}

/// The invariants, each a query returning one row per violation (same rules as SQLite's).
const CHECKS: &[(&str, &str)] = &[
    (
        "listed-ticket-without-one-listing",
        "SELECT t.ticket_id || ' ' || t.status || ', open listings: ' || count(l.listing_id)
         FROM tickets t LEFT JOIN listings l
           ON l.ticket_id = t.ticket_id AND l.status IN ('ACTIVE', 'RESERVED')
         GROUP BY t.ticket_id, t.status
         HAVING (t.status = 'LISTED') <> (count(l.listing_id) = 1) OR count(l.listing_id) > 1",
    ),
    (
        "sold-listing-reissue",
        "SELECT l.listing_id || ': ticket ' || coalesce(t.status, 'missing') || ', '
                || (SELECT count(*) FROM tickets n WHERE n.replaces = l.ticket_id
                      AND n.booking_id = l.booking_id) || ' new tickets, '
                || (SELECT count(*) FROM payouts p WHERE p.listing_id = l.listing_id)
                || ' payouts'
         FROM listings l LEFT JOIN tickets t ON t.ticket_id = l.ticket_id
         WHERE l.status = 'SOLD' AND (t.status IS DISTINCT FROM 'REISSUED'
               OR (SELECT count(*) FROM tickets n WHERE n.replaces = l.ticket_id
                     AND n.booking_id = l.booking_id) <> 1
               OR (SELECT count(*) FROM payouts p WHERE p.listing_id = l.listing_id) <> 1)",
    ),
    (
        "resale-money",
        "SELECT l.listing_id || ': price ' || l.price_cents || ' = payout ' || p.amount_cents
                || ' + fee ' || l.fee_cents || '?'
         FROM listings l JOIN payouts p ON p.listing_id = l.listing_id
         WHERE p.amount_cents + l.fee_cents <> l.price_cents",
    ),
    (
        "payout-for-refunded-sale",
        "SELECT p.payout_id || ' ' || p.status || ' for booking ' || b.booking_id || ' '
                || b.status
         FROM payouts p JOIN listings l ON l.listing_id = p.listing_id
         JOIN bookings b ON b.booking_id = l.booking_id
         WHERE p.status IN ('SCHEDULED', 'PAID') AND b.status <> 'CONFIRMED'",
    ),
    (
        "seat-sold-twice",
        "SELECT event_id || ' ' || seat_id || ': ' || count(*) || ' live tickets'
         FROM tickets WHERE status IN ('VALID', 'LISTED', 'USED') GROUP BY event_id, seat_id HAVING count(*) > 1",
    ),
    (
        "sold-seat-ticket-count",
        "SELECT s.event_id || ' ' || s.seat_id || ': ' || count(t.ticket_id) || ' live tickets'
         FROM seats s LEFT JOIN tickets t
           ON t.event_id = s.event_id AND t.seat_id = s.seat_id AND t.status IN ('VALID', 'LISTED', 'USED')
          AND t.booking_id = s.booking_id
         WHERE s.state = 'SOLD' GROUP BY s.event_id, s.seat_id HAVING count(t.ticket_id) <> 1",
    ),
    (
        "ticket-without-sold-seat",
        "SELECT t.ticket_id || ' for ' || t.seat_id
         FROM tickets t LEFT JOIN seats s ON s.event_id = t.event_id AND s.seat_id = t.seat_id
         WHERE t.status IN ('VALID', 'LISTED', 'USED') AND (s.state IS NULL OR s.state <> 'SOLD'
               OR s.booking_id IS DISTINCT FROM t.booking_id)",
    ),
    (
        "sold-seat-without-confirmed-booking",
        "SELECT s.event_id || ' ' || s.seat_id
         FROM seats s LEFT JOIN bookings b ON b.booking_id = s.booking_id
         WHERE s.state = 'SOLD' AND (b.status IS NULL OR b.status <> 'CONFIRMED')",
    ),
    (
        "held-seat-without-active-booking",
        "SELECT s.event_id || ' ' || s.seat_id || ' ' || s.state
         FROM seats s LEFT JOIN bookings b ON b.booking_id = s.booking_id
         WHERE s.state IN ('HOLD', 'PENDING') AND (b.status IS NULL OR b.status <> s.state)",
    ),
    (
        "held-seat-not-in-its-booking",
        "SELECT s.event_id || ' ' || s.seat_id || ' ' || s.state || ' by ' || s.booking_id
         FROM seats s
         WHERE s.booking_id IS NOT NULL AND NOT EXISTS (
             SELECT 1 FROM booking_seats bs
             WHERE bs.booking_id = s.booking_id AND bs.seat_id = s.seat_id)",
    ),
    (
        "confirmed-booking-ticket-count",
        // Every seat of a confirmed booking has a ticket that is live, or was passed on
        // (REISSUED) to a later owner.
        "SELECT b.booking_id || ': ' || b.quantity || ' seats, ' || count(DISTINCT t.seat_id)
                || ' with tickets'
         FROM bookings b LEFT JOIN tickets t ON t.booking_id = b.booking_id AND t.status <> 'VOID'
         WHERE b.status = 'CONFIRMED'
         GROUP BY b.booking_id, b.quantity HAVING count(DISTINCT t.seat_id) <> b.quantity",
    ),
    (
        "confirmed-booking-without-captured-payment",
        "SELECT b.booking_id::text FROM bookings b WHERE b.status = 'CONFIRMED'
           AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.booking_id = b.booking_id
                             AND p.status = 'CAPTURED' AND p.amount_cents = b.total_cents)",
    ),
    (
        "captured-payment-without-confirmed-booking",
        "SELECT p.payment_id || ' for booking ' || p.booking_id || ' (' || b.status || ')'
         FROM payments p JOIN bookings b ON b.booking_id = p.booking_id
         WHERE p.status = 'CAPTURED' AND b.status <> 'CONFIRMED'",
    ),
    (
        "booking-paid-twice",
        "SELECT p.booking_id::text || ': ' || count(*) || ' payments holding money'
         FROM payments p WHERE p.status IN ('AUTHORIZED', 'CAPTURED', 'REFUND_PENDING')
         GROUP BY p.booking_id HAVING count(*) > 1",
    ),
    (
        "customer-limit-counter",
        "SELECT c.event_id || ' ' || c.customer_id || ': counter ' || c.tickets
                || ', bookings ' || coalesce(sum(b.quantity), 0)
         FROM customer_event_tickets c LEFT JOIN bookings b
           ON b.event_id = c.event_id AND b.customer_id = c.customer_id
          AND b.status IN ('HOLD', 'PENDING', 'CONFIRMED')
         GROUP BY c.event_id, c.customer_id, c.tickets
         HAVING c.tickets <> coalesce(sum(b.quantity), 0)",
    ),
    (
        "customer-limit-exceeded",
        "SELECT c.event_id || ' ' || c.customer_id || ': ' || c.tickets || ' > '
                || e.max_tickets_per_customer
         FROM customer_event_tickets c JOIN events e ON e.event_id = c.event_id
         WHERE c.tickets > e.max_tickets_per_customer",
    ),
    (
        "booking-total",
        "SELECT b.booking_id || ': total ' || b.total_cents || ', seats '
                || coalesce(sum(bs.price_cents), 0)
         FROM bookings b LEFT JOIN booking_seats bs ON bs.booking_id = b.booking_id
         GROUP BY b.booking_id, b.total_cents, b.quantity
         HAVING b.total_cents <> coalesce(sum(bs.price_cents), 0)
             OR b.quantity <> count(bs.seat_id)",
    ),
];

pub async fn verify<C: Exec>(c: &C) -> Result<Vec<Finding>> {
    let mut findings = Vec::new();
    for (rule, sql) in CHECKS {
        // Every check looks over all events.
        let sql = format!("/* scan */ {sql}");
        for r in c.query(&sql, &[]).await.map_err(pg_error)? {
            findings.push(Finding {
                rule: (*rule).to_owned(),
                detail: r.get(0),
            });
        }
    }
    Ok(findings)
}
