//! Holds, commits, cancellations, tickets and the invariant checker, on SQLite.
//!
//! Every function here runs inside the single writer's `IMMEDIATE` transaction (or on a
//! reader), so SQLite itself serialises them: no two holds can ever see the same seat free.

use std::collections::BTreeMap;

use boxoffice_domain::booking::{
    BookedSeat, Booking, BookingStatus, HoldError, HoldRequest, NewTicket, Payment, PaymentStatus,
    Pick, Selection, Ticket, TicketStatus, candidate_windows, pick as choose,
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
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use time::OffsetDateTime;

use crate::catalog::lay_out_seats;
use crate::codec::{corrupt, from_ts, id, sq, store_error, ts, uuid_from};

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The front-most `window` free seats of a section: open ones (through the partial index of
/// open seats) and lapsed holds.
fn free_front(
    tx: &Transaction<'_>,
    req: &HoldRequest,
    section: u16,
    window: u32,
) -> Result<Vec<Candidate>> {
    let mut stmt = sq(tx.prepare_cached(
        "SELECT * FROM (
           SELECT seat_id, row_index, number, price_cents, state FROM seats
           WHERE event_id = ?1 AND section_no = ?2 AND state = 'OPEN'
           ORDER BY row_index, number LIMIT ?4)
         UNION ALL
         SELECT * FROM (
           SELECT seat_id, row_index, number, price_cents, state FROM seats
           WHERE event_id = ?1 AND section_no = ?2 AND state = 'HOLD' AND hold_expires_at <= ?3
           ORDER BY row_index, number LIMIT ?4)
         ORDER BY row_index, number LIMIT ?4",
    ))?;
    sq(stmt
        .query_map(
            params![id(req.event_id().0), section, ts(req.now), window],
            |r| {
                Ok(Candidate {
                    seat_id: r.get(0)?,
                    section,
                    row_index: r.get(1)?,
                    number: r.get(2)?,
                    price: r.get(3)?,
                    was_open: r.get::<_, String>(4)? == "OPEN",
                })
            },
        )
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>()))
}

// ---- reading ----------------------------------------------------------------------------

pub fn load_booking(c: &Connection, booking_id: BookingId) -> rusqlite::Result<Option<Booking>> {
    let row = c
        .prepare_cached(
            "SELECT event_id, customer_id, status, expires_at, total_cents, currency,
                contact_email, created_at, confirmed_at, cancelled_at, status_reason,
                listing_id IS NOT NULL
             FROM bookings WHERE booking_id = ?1",
        )?
        .query_row([id(booking_id.0)], |r| {
            let status: String = r.get(2)?;
            let currency: String = r.get(5)?;
            let customer: String = r.get(1)?;
            Ok(Booking {
                id: booking_id,
                event_id: EventId(uuid_from(r.get(0)?)?),
                customer: CustomerId::parse(&customer).map_err(|e| corrupt(e.to_string()))?,
                status: BookingStatus::parse(&status).ok_or_else(|| corrupt("booking status"))?,
                expires_at: from_ts(r.get(3)?)?,
                seats: Vec::new(),
                total_cents: r.get(4)?,
                currency: currency.parse().map_err(|_| corrupt("currency"))?,
                contact_email: r.get(6)?,
                tickets: Vec::new(),
                created_at: from_ts(r.get(7)?)?,
                confirmed_at: r.get::<_, Option<i64>>(8)?.map(from_ts).transpose()?,
                cancelled_at: r.get::<_, Option<i64>>(9)?.map(from_ts).transpose()?,
                status_reason: r.get(10)?,
                resale: r.get(11)?,
            })
        })
        .optional()?;
    let Some(mut booking) = row else {
        return Ok(None);
    };
    let mut stmt =
        c.prepare_cached("SELECT seat_id, price_cents FROM booking_seats WHERE booking_id = ?1")?;
    booking.seats = stmt
        .query_map([id(booking_id.0)], |r| {
            booked_seat(SeatId::from_trusted(r.get(0)?), r.get(1)?)
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    booking.tickets = tickets_where(c, "booking_id = ?1", &id(booking_id.0))?;
    booking.sort();
    Ok(Some(booking))
}

fn booked_seat(seat_id: SeatId, price: i64) -> rusqlite::Result<BookedSeat> {
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

fn tickets_where(
    c: &Connection,
    cond: &str,
    arg: &dyn rusqlite::ToSql,
) -> rusqlite::Result<Vec<Ticket>> {
    let sql = format!(
        "SELECT ticket_id, event_id, booking_id, seat_id, customer_id, status, token,
            attendee_name, issued_at, checked_in_at
         FROM tickets WHERE {cond} ORDER BY issued_at DESC, seat_id"
    );
    let mut stmt = c.prepare_cached(&sql)?;
    stmt.query_map([arg], ticket_row)?.collect()
}

fn ticket_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Ticket> {
    let status: String = r.get(5)?;
    let customer: String = r.get(4)?;
    Ok(Ticket {
        id: TicketId(uuid_from(r.get(0)?)?),
        event_id: EventId(uuid_from(r.get(1)?)?),
        booking_id: BookingId(uuid_from(r.get(2)?)?),
        seat_id: SeatId::from_trusted(r.get(3)?),
        customer: CustomerId::parse(&customer).map_err(|e| corrupt(e.to_string()))?,
        status: TicketStatus::parse(&status).ok_or_else(|| corrupt("ticket status"))?,
        token: r.get(6)?,
        attendee_name: r.get(7)?,
        issued_at: from_ts(r.get(8)?)?,
        checked_in_at: r.get::<_, Option<i64>>(9)?.map(from_ts).transpose()?,
    })
}

pub fn tickets_of(c: &Connection, customer: &CustomerId) -> rusqlite::Result<Vec<Ticket>> {
    tickets_where(c, "customer_id = ?1", &customer.as_str())
}

pub fn load_payment(c: &Connection, payment_id: PaymentId) -> rusqlite::Result<Option<Payment>> {
    c.prepare_cached(&format!("{PAYMENT_SELECT} WHERE payment_id = ?1"))?
        .query_row([id(payment_id.0)], payment_row)
        .optional()
}

const PAYMENT_SELECT: &str = "SELECT payment_id, booking_id, event_id, customer_id, provider,
        provider_ref, idempotency_key, method, amount_cents, currency, status, updated_at, attempts,
        queued
    FROM payments";

fn payment_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Payment> {
    let customer: String = r.get(3)?;
    let currency: String = r.get(9)?;
    let status: String = r.get(10)?;
    Ok(Payment {
        id: PaymentId(uuid_from(r.get(0)?)?),
        booking_id: BookingId(uuid_from(r.get(1)?)?),
        event_id: EventId(uuid_from(r.get(2)?)?),
        customer: CustomerId::parse(&customer).map_err(|e| corrupt(e.to_string()))?,
        provider: r.get(4)?,
        provider_ref: r.get(5)?,
        idempotency_key: r.get(6)?,
        method: r.get(7)?,
        amount_cents: r.get(8)?,
        currency: currency.parse().map_err(|_| corrupt("currency"))?,
        status: PaymentStatus::parse(&status).ok_or_else(|| corrupt("payment status"))?,
        updated_at: from_ts(r.get(11)?)?,
        attempts: r.get(12)?,
        queued: r.get(13)?,
    })
}

pub fn unsettled_payments(
    c: &Connection,
    before: OffsetDateTime,
    now: OffsetDateTime,
    limit: u32,
) -> rusqlite::Result<Vec<Payment>> {
    let mut stmt = c.prepare_cached(&format!(
        "{PAYMENT_SELECT} WHERE status IN ('STARTED', 'AUTHORIZED', 'REFUND_PENDING')
            AND updated_at < ?1 AND (next_attempt_at IS NULL OR next_attempt_at <= ?3)
         ORDER BY coalesce(next_attempt_at, updated_at) LIMIT ?2"
    ))?;
    stmt.query_map(params![ts(before), limit, ts(now)], payment_row)?
        .collect()
}

pub fn defer_payment(
    tx: &Transaction<'_>,
    payment: PaymentId,
    next_attempt_at: OffsetDateTime,
    error: &str,
) -> Result<()> {
    sq(tx
        .prepare_cached(
            "UPDATE payments SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3
             WHERE payment_id = ?1",
        )
        .and_then(|mut s| s.execute(params![id(payment.0), ts(next_attempt_at), error])))?;
    Ok(())
}

pub fn payment_backlog(c: &Connection) -> rusqlite::Result<PaymentBacklog> {
    c.prepare_cached(
        "SELECT count(*), min(updated_at) FROM payments
         WHERE status IN ('STARTED', 'AUTHORIZED', 'REFUND_PENDING')",
    )?
    .query_row([], |r| {
        Ok(PaymentBacklog {
            unsettled: r.get::<_, i64>(0)?.max(0) as u64,
            oldest: r.get::<_, Option<i64>>(1)?.map(from_ts).transpose()?,
        })
    })
}

pub fn payment_by_ref(
    c: &Connection,
    provider_ref: &str,
    provider_key: Option<&str>,
) -> rusqlite::Result<Option<Payment>> {
    c.prepare_cached(&format!(
        "{PAYMENT_SELECT} WHERE provider_ref = ?1 OR idempotency_key = ?2
         ORDER BY provider_ref = ?1 DESC, updated_at DESC LIMIT 1"
    ))?
    .query_row(params![provider_ref, provider_key], payment_row)
    .optional()
}

// ---- writing helpers ----------------------------------------------------------------------

/// Appends a `seats.changed` row with the per-section change of available places.
pub(crate) fn record_delta(
    tx: &Transaction<'_>,
    event_id: EventId,
    deltas: &BTreeMap<u16, i32>,
    now: OffsetDateTime,
) -> Result<()> {
    let sections: Vec<SectionDelta> = deltas
        .iter()
        .filter(|(_, d)| **d != 0)
        .map(|(s, d)| SectionDelta {
            section: *s,
            available: *d,
        })
        .collect();
    if sections.is_empty() {
        return Ok(());
    }
    let payload = serde_json::to_string(&AvailabilityDelta { sections })
        .map_err(|e| StoreError::Internal(format!("encoding delta: {e}")))?;
    sq(tx
        .prepare_cached(
            "INSERT INTO outbox (event_id, kind, payload, created_at) VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut s| {
            s.execute(params![
                id(event_id.0),
                change::SEATS_CHANGED,
                payload,
                ts(now)
            ])
        }))?;
    Ok(())
}

/// Returns the seats `booking` holds in `from` states to OPEN; returns how many per section.
fn free_seats(
    tx: &Transaction<'_>,
    event_id: EventId,
    booking_id: BookingId,
    from: &[SeatState],
) -> Result<BTreeMap<u16, i32>> {
    let states: Vec<String> = from.iter().map(|s| format!("'{}'", s.as_str())).collect();
    // Seats are found through the booking's own list and the seat key: seats carry no index
    // on booking_id, which every state change would otherwise have to maintain.
    let sql = format!(
        "UPDATE seats SET state = 'OPEN', booking_id = NULL, hold_expires_at = NULL,
            version = version + 1
         WHERE event_id = ?2
           AND seat_id IN (SELECT seat_id FROM booking_seats WHERE booking_id = ?1)
           AND booking_id = ?1 AND state IN ({}) RETURNING section_no",
        states.join(", ")
    );
    let mut stmt = sq(tx.prepare_cached(&sql))?;
    let mut out = BTreeMap::new();
    let rows = sq(stmt
        .query_map(params![id(booking_id.0), id(event_id.0)], |r| {
            r.get::<_, u16>(0)
        })
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>()))?;
    for section in rows {
        *out.entry(section).or_insert(0) += 1;
    }
    Ok(out)
}

fn adjust_counter(
    tx: &Transaction<'_>,
    event_id: EventId,
    customer: &CustomerId,
    delta: i64,
) -> Result<()> {
    sq(tx
        .prepare_cached(
            "UPDATE customer_event_tickets SET tickets = max(tickets + ?3, 0)
             WHERE event_id = ?1 AND customer_id = ?2",
        )
        .and_then(|mut s| s.execute(params![id(event_id.0), customer.as_str(), delta])))?;
    Ok(())
}

/// Takes `quantity` more tickets on the customer's counter if that stays within `max`;
/// returns the count before, or `Err(already)` if the limit would be passed.
fn take_from_limit(
    tx: &Transaction<'_>,
    event_id: EventId,
    customer: &CustomerId,
    quantity: u32,
    max: u32,
) -> Result<std::result::Result<(), u32>> {
    let current: u32 = sq(tx
        .prepare_cached(
            "SELECT tickets FROM customer_event_tickets WHERE event_id = ?1 AND customer_id = ?2",
        )
        .and_then(|mut s| {
            s.query_row(params![id(event_id.0), customer.as_str()], |r| r.get(0))
                .optional()
        }))?
    .unwrap_or(0);
    if current + quantity > max {
        return Ok(Err(current));
    }
    sq(tx
        .prepare_cached(
            "INSERT INTO customer_event_tickets (event_id, customer_id, tickets)
             VALUES (?1, ?2, ?3)
             ON CONFLICT (event_id, customer_id) DO UPDATE SET tickets = tickets + ?3",
        )
        .and_then(|mut s| s.execute(params![id(event_id.0), customer.as_str(), quantity])))?;
    Ok(Ok(()))
}

/// Ends a booking that is still HOLD (or PENDING whose payment settled without money) as
/// `to`: frees its held seats and gives its places back to the customer's limit.
pub(crate) fn end_booking(
    tx: &Transaction<'_>,
    b: &Booking,
    to: BookingStatus,
    now: OffsetDateTime,
) -> Result<()> {
    debug_assert!(b.status.can_become(to), "{:?} -> {to:?}", b.status);
    // A resale booking held listings, not seats: they go back on offer.
    let freed = if b.resale {
        crate::resale::release_listings(tx, b.id, b.event_id, now)?;
        BTreeMap::new()
    } else {
        free_seats(tx, b.event_id, b.id, &[SeatState::Hold, SeatState::Pending])?
    };
    sq(tx
        .prepare_cached(
            "UPDATE bookings SET status = ?2, cancelled_at = ?3, updated_at = ?3,
                version = version + 1
             WHERE booking_id = ?1 AND status = ?4",
        )
        .and_then(|mut s| {
            s.execute(params![id(b.id.0), to.as_str(), ts(now), b.status.as_str()])
        }))?;
    adjust_counter(
        tx,
        b.event_id,
        &b.customer,
        -i64::from(b.seats.len() as u32),
    )?;
    record_delta(tx, b.event_id, &freed, now)
}

pub(crate) fn must_load(tx: &Transaction<'_>, booking_id: BookingId) -> Result<Booking> {
    sq(load_booking(tx, booking_id))?
        .ok_or_else(|| StoreError::Internal(format!("booking {booking_id} vanished")))
}

// ---- holds ----------------------------------------------------------------------------------

struct Candidate {
    seat_id: String,
    section: u16,
    row_index: u32,
    number: u32,
    price: i64,
    was_open: bool,
}

pub fn hold(tx: &Transaction<'_>, req: &HoldRequest) -> Result<Booking, HoldError> {
    let laid_out: Option<(bool, bool)> = sq(tx
        .prepare_cached(
            "SELECT seats_laid_out, cancelled_at IS NOT NULL FROM events WHERE event_id = ?1",
        )
        .and_then(|mut s| {
            s.query_row([id(req.event_id().0)], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        }))?;
    if laid_out.is_some_and(|(_, cancelled)| cancelled) {
        return Err(HoldError::EventCancelled);
    }
    let Some((laid_out, _)) = laid_out else {
        return Err(
            StoreError::Internal(format!("hold for unknown event {}", req.event_id())).into(),
        );
    };
    // The caller's copy of the event: events do not change once created.
    let event = &req.event;
    if !laid_out {
        sq(lay_out_seats(tx, event))?;
        sq(tx
            .prepare_cached("UPDATE events SET seats_laid_out = 1 WHERE event_id = ?1")
            .and_then(|mut s| s.execute([id(req.event_id().0)])))?;
    }
    // The customer's own lapsed holds must not count against their limit.
    let lapsed: Vec<Vec<u8>> = sq(tx
        .prepare_cached(
            "SELECT booking_id FROM bookings
             WHERE customer_id = ?1 AND event_id = ?2 AND status = 'HOLD' AND expires_at <= ?3",
        )
        .and_then(|mut s| {
            s.query_map(
                params![req.customer.as_str(), id(req.event_id().0), ts(req.now)],
                |r| r.get(0),
            )?
            .collect()
        }))?;
    for raw in lapsed {
        let bid = BookingId(sq(uuid_from(raw))?);
        let b = must_load(tx, bid)?;
        if rules::lapsed(b.status, b.expires_at, req.now) {
            end_booking(tx, &b, BookingStatus::Expired, req.now)?;
        }
    }

    // The limit first, as on every store: a customer at their limit hears that, whatever the
    // seats they asked for. The transaction rolls back if the seats then fail.
    if let Err(already) = take_from_limit(
        tx,
        req.event_id(),
        &req.customer,
        req.selection.quantity(),
        req.max_tickets_per_customer(),
    )? {
        return Err(HoldError::LimitExceeded {
            limit: req.max_tickets_per_customer(),
            already,
        });
    }

    let now = ts(req.now);
    let chosen: Vec<Candidate> = match &req.selection {
        Selection::Listings(ids) => return crate::resale::hold_listings(tx, req, ids),
        Selection::Seats(ids) => {
            let mut stmt = sq(tx.prepare_cached(
                "SELECT section_no, row_index, number, price_cents, state, hold_expires_at
                 FROM seats WHERE event_id = ?1 AND seat_id = ?2",
            ))?;
            let mut missing = Vec::new();
            let mut taken = Vec::new();
            let mut out = Vec::new();
            for seat in ids {
                let row = sq(stmt
                    .query_row(params![id(req.event_id().0), seat.as_str()], |r| {
                        Ok((
                            r.get::<_, u16>(0)?,
                            r.get::<_, u32>(1)?,
                            r.get::<_, u32>(2)?,
                            r.get::<_, i64>(3)?,
                            r.get::<_, String>(4)?,
                            r.get::<_, Option<i64>>(5)?,
                        ))
                    })
                    .optional())?;
                match row {
                    None => missing.push(seat.clone()),
                    Some((section, row_index, number, price, state, exp)) => {
                        let open = state == "OPEN";
                        let lapsed = state == "HOLD" && exp.is_some_and(|e| e <= now);
                        if open || lapsed {
                            out.push(Candidate {
                                seat_id: seat.as_str().to_owned(),
                                section,
                                row_index,
                                number,
                                price,
                                was_open: open,
                            });
                        } else {
                            taken.push(seat.clone());
                        }
                    }
                }
            }
            if !missing.is_empty() {
                return Err(HoldError::NoSuchSeats(missing));
            }
            if !taken.is_empty() {
                return Err(HoldError::Unavailable(taken));
            }
            out
        }
        Selection::BestAvailable { section, quantity } => {
            let sec = event
                .spec
                .section(*section)
                .ok_or_else(|| StoreError::Internal("no such section".into()))?;
            let (windows, row_len) = match sec.kind {
                SectionKind::Seated { seats_per_row, .. } => {
                    let (small, wide) = candidate_windows(*quantity, seats_per_row);
                    (vec![small, wide], seats_per_row)
                }
                SectionKind::GeneralAdmission { .. } => (vec![*quantity], u32::MAX / 2),
            };
            let mut chosen = None;
            for (i, window) in windows.iter().enumerate() {
                let open = free_front(tx, req, *section, *window)?;
                let positions: Vec<(u32, u32)> =
                    open.iter().map(|c| (c.row_index, c.number)).collect();
                match choose(
                    &positions,
                    *quantity,
                    row_len,
                    *window,
                    i + 1 == windows.len(),
                ) {
                    Pick::Take(found) => {
                        chosen = Some((open, found));
                        break;
                    }
                    Pick::Widen => continue,
                    Pick::NotEnough => break,
                }
            }
            let Some((open, pick)) = chosen else {
                let available: u32 = sq(tx
                    .prepare_cached(
                        "SELECT count(*) FROM seats WHERE event_id = ?1 AND section_no = ?2
                           AND (state = 'OPEN' OR (state = 'HOLD' AND hold_expires_at <= ?3))",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![id(req.event_id().0), section, now], |r| r.get(0))
                    }))?;
                return Err(HoldError::NotEnough {
                    requested: *quantity,
                    available,
                });
            };
            let mut open: Vec<Option<Candidate>> = open.into_iter().map(Some).collect();
            pick.into_iter().filter_map(|i| open[i].take()).collect()
        }
    };

    let quantity = chosen.len() as u32;
    debug_assert_eq!(quantity, req.selection.quantity());

    let total: i64 = chosen.iter().map(|c| c.price).sum();
    sq(tx
        .prepare_cached(
            "INSERT INTO bookings (booking_id, event_id, customer_id, status, expires_at,
                total_cents, currency, quantity, created_at, updated_at)
             VALUES (?1, ?2, ?3, 'HOLD', ?4, ?5, ?6, ?7, ?8, ?8)",
        )
        .and_then(|mut s| {
            s.execute(params![
                id(req.booking_id.0),
                id(req.event_id().0),
                req.customer.as_str(),
                ts(req.expires_at),
                total,
                req.currency().as_str(),
                quantity,
                now
            ])
        }))?;
    let mut take = sq(tx.prepare_cached(
        "UPDATE seats SET state = 'HOLD', hold_expires_at = ?3, booking_id = ?4,
            version = version + 1
         WHERE event_id = ?1 AND seat_id = ?2
           AND (state = 'OPEN' OR (state = 'HOLD' AND hold_expires_at <= ?5))",
    ))?;
    let mut link = sq(tx.prepare_cached(
        "INSERT INTO booking_seats (booking_id, event_id, seat_id, price_cents)
         VALUES (?1, ?2, ?3, ?4)",
    ))?;
    let mut deltas = BTreeMap::new();
    for c in &chosen {
        let n = sq(take.execute(params![
            id(req.event_id().0),
            c.seat_id,
            ts(req.expires_at),
            id(req.booking_id.0),
            now
        ]))?;
        if n != 1 {
            return Err(
                StoreError::Internal(format!("seat {} changed under a hold", c.seat_id)).into(),
            );
        }
        sq(link.execute(params![
            id(req.booking_id.0),
            id(req.event_id().0),
            c.seat_id,
            c.price
        ]))?;
        if c.was_open {
            *deltas.entry(c.section).or_insert(0) -= 1;
        }
    }
    record_delta(tx, req.event_id(), &deltas, req.now)?;
    Ok(must_load(tx, req.booking_id)?)
}

// ---- commit ---------------------------------------------------------------------------------

pub fn begin_commit(tx: &Transaction<'_>, req: &CommitRequest) -> Result<CommitBegin, CommitError> {
    let key = sq(tx
        .prepare_cached(
            "SELECT fingerprint, state, response_status, response_body
             FROM idempotency_keys WHERE customer_id = ?1 AND idempotency_key = ?2",
        )
        .and_then(|mut s| {
            s.query_row(params![req.customer.as_str(), req.idempotency_key], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<u16>>(2)?,
                    r.get::<_, Option<Vec<u8>>>(3)?,
                ))
            })
            .optional()
        }))?;
    if let Some((fingerprint, state, status, body)) = key {
        let key = rules::KeyRecord {
            fingerprint,
            response: match (state.as_str(), status, body) {
                ("DONE", Some(status), Some(body)) => Some(StoredResponse { status, body }),
                _ => None,
            },
        };
        return rules::replay(&key, &req.fingerprint).map(CommitBegin::Replay);
    }
    let booking = sq(load_booking(tx, req.booking_id))?.ok_or(CommitError::NotFound)?;
    // Judged at the time the write lock was ours, not when the request arrived.
    let now = rules::tx_now(req.now, SystemClock.now());
    rules::may_start_commit(
        Some(&booking.customer),
        booking.status,
        booking.expires_at,
        &req.customer,
        now,
    )?;
    // The key forwarded to the provider is derived from the customer's key: if a payment has
    // it, the key was used before (its record purged since), and the provider would answer
    // with that first payment.
    let reused = sq(tx
        .prepare_cached("SELECT 1 FROM payments WHERE idempotency_key = ?1")
        .and_then(|mut s| s.exists([&req.provider_key])))?;
    if reused {
        return Err(CommitError::KeyReused);
    }
    let now = ts(now);
    sq(tx
        .prepare_cached(
            "UPDATE bookings SET status = 'PENDING', updated_at = ?2, version = version + 1,
                status_reason = NULL
             WHERE booking_id = ?1 AND status = 'HOLD'",
        )
        .and_then(|mut s| s.execute(params![id(req.booking_id.0), now])))?;
    let moved = sq(tx
        .prepare_cached(
            "UPDATE seats SET state = 'PENDING', version = version + 1
             WHERE event_id = ?2
               AND seat_id IN (SELECT seat_id FROM booking_seats WHERE booking_id = ?1)
               AND booking_id = ?1 AND state = 'HOLD'",
        )
        .and_then(|mut s| s.execute(params![id(req.booking_id.0), id(booking.event_id.0)])))?;
    if booking.resale {
        // The listings stay reserved while the money moves, whatever the clock says.
        sq(tx
            .prepare_cached(
                "UPDATE listings SET reserved_until = ?2 WHERE booking_id = ?1 AND status = 'RESERVED'",
            )
            .and_then(|mut s| {
                s.execute(params![
                    id(booking.id.0),
                    ts(boxoffice_domain::resale::PAYING)
                ])
            }))?;
    }
    // A resale booking's seats stay SOLD to their seller until the sale completes.
    if !booking.resale && moved != booking.seats.len() {
        return Err(StoreError::Internal(format!(
            "booking {} holds {moved} of its {} seats",
            booking.id,
            booking.seats.len()
        ))
        .into());
    }
    sq(tx
        .prepare_cached(
            "INSERT INTO idempotency_keys (customer_id, idempotency_key, event_id, booking_id,
                payment_id, fingerprint, state, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'IN_FLIGHT', ?7)",
        )
        .and_then(|mut s| {
            s.execute(params![
                req.customer.as_str(),
                req.idempotency_key,
                id(booking.event_id.0),
                id(booking.id.0),
                id(req.payment_id.0),
                req.fingerprint,
                now
            ])
        }))?;
    sq(tx
        .prepare_cached(
            "INSERT INTO payments (payment_id, event_id, booking_id, customer_id, provider,
                idempotency_key, method, amount_cents, currency, status, created_at, updated_at,
                queued)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'STARTED', ?10, ?10,
                 ?11 OR EXISTS (SELECT 1 FROM events
                                WHERE event_id = ?2 AND waiting_room IS NOT NULL))",
        )
        .and_then(|mut s| {
            s.execute(params![
                id(req.payment_id.0),
                id(booking.event_id.0),
                id(booking.id.0),
                req.customer.as_str(),
                req.provider,
                req.provider_key,
                req.method,
                booking.total_cents,
                booking.currency.as_str(),
                now,
                req.queued
            ])
        }))?;
    let booking = must_load(tx, req.booking_id)?;
    let payment = sq(load_payment(tx, req.payment_id))?
        .ok_or_else(|| StoreError::Internal("payment vanished".into()))?;
    Ok(CommitBegin::Started {
        booking: Box::new(booking),
        payment: Box::new(payment),
    })
}

pub fn finish_commit(tx: &Transaction<'_>, fin: &CommitFinish) -> Result<FinishedCommit> {
    let payment = sq(load_payment(tx, fin.payment_id))?
        .ok_or_else(|| StoreError::Internal(format!("no payment {}", fin.payment_id)))?;
    let booking = must_load(tx, fin.booking_id)?;
    let stored = stored_response(tx, fin.payment_id)?;
    let at = rules::tx_now(fin.now, SystemClock.now());
    let plan = rules::settle(
        booking.status,
        booking.expires_at,
        payment.status,
        fin.settlement.answer(),
        stored.is_some(),
        at,
    );
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
    let now = ts(at);
    let outcome = match (&fin.settlement, plan.action) {
        (
            Settlement::Approved {
                provider_ref,
                tickets,
            },
            action,
        ) => {
            sq(tx
                .prepare_cached(
                    "UPDATE payments SET status = 'AUTHORIZED', provider_ref = ?2, updated_at = ?3
                     WHERE payment_id = ?1",
                )
                .and_then(|mut s| s.execute(params![id(fin.payment_id.0), provider_ref, now])))?;
            if action != SettleAction::Void && confirm(tx, &booking, tickets, at)? {
                CommitOutcome::Confirmed(must_load(tx, booking.id)?)
            } else {
                CommitOutcome::Lapsed(booking)
            }
        }
        (settlement, action) => {
            if let Some(to) = plan.payment_to {
                sq(tx
                    .prepare_cached(
                        "UPDATE payments SET status = ?2, updated_at = ?3 WHERE payment_id = ?1",
                    )
                    .and_then(|mut s| s.execute(params![id(fin.payment_id.0), to.as_str(), now])))?;
            }
            match action {
                SettleAction::ReturnToHold => {
                    sq(tx
                        .prepare_cached(
                            "UPDATE bookings SET status = 'HOLD', updated_at = ?2,
                                version = version + 1, status_reason = ?3
                             WHERE booking_id = ?1 AND status = 'PENDING'",
                        )
                        .and_then(|mut s| {
                            s.execute(params![
                                id(booking.id.0),
                                now,
                                rules::returned_to_hold_reason(settlement)
                            ])
                        }))?;
                    // A resale booking's listings are held until the hold's own expiry again.
                    sq(tx
                        .prepare_cached(
                            "UPDATE listings SET reserved_until = ?2
                             WHERE booking_id = ?1 AND status = 'RESERVED'",
                        )
                        .and_then(|mut s| {
                            s.execute(params![id(booking.id.0), ts(booking.expires_at)])
                        }))?;
                    sq(tx
                        .prepare_cached(
                            "UPDATE seats SET state = 'HOLD', version = version + 1
                             WHERE event_id = ?2
                               AND seat_id IN (SELECT seat_id FROM booking_seats
                                               WHERE booking_id = ?1)
                               AND booking_id = ?1 AND state = 'PENDING'",
                        )
                        .and_then(|mut s| {
                            s.execute(params![id(booking.id.0), id(booking.event_id.0)])
                        }))?;
                }
                SettleAction::Expire => end_booking(tx, &booking, BookingStatus::Expired, at)?,
                _ => {}
            }
            rules::unpaid_outcome(settlement, must_load(tx, booking.id)?)
        }
    };
    let response = match stored {
        Some(r) => r,
        None => {
            let response = (fin.render)(&outcome);
            if plan.store_response {
                sq(tx
                    .prepare_cached(
                        "UPDATE idempotency_keys SET state = 'DONE', response_status = ?2,
                            response_body = ?3
                         WHERE payment_id = ?1 AND state <> 'DONE'",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            id(fin.payment_id.0),
                            response.status,
                            response.body
                        ])
                    }))?;
            }
            response
        }
    };
    let payment = sq(load_payment(tx, fin.payment_id))?
        .ok_or_else(|| StoreError::Internal("payment vanished".into()))?;
    Ok(FinishedCommit {
        outcome,
        response,
        payment,
    })
}

fn stored_response(tx: &Transaction<'_>, payment_id: PaymentId) -> Result<Option<StoredResponse>> {
    let row = sq(tx
        .prepare_cached(
            "SELECT response_status, response_body FROM idempotency_keys
             WHERE payment_id = ?1 AND state = 'DONE'",
        )
        .and_then(|mut s| {
            s.query_row([id(payment_id.0)], |r| {
                Ok((r.get::<_, u16>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .optional()
        }))?;
    Ok(row.map(|(status, body)| StoredResponse { status, body }))
}

/// Sells the booking's seats and issues its tickets. A PENDING booking always can; one that
/// lapsed meanwhile (expired or released while the payment was in flight) can if every one of
/// its seats is still free, or still its own, and the customer's limit allows. Returns whether
/// the booking is now confirmed.
fn confirm(
    tx: &Transaction<'_>,
    booking: &Booking,
    tickets: &[NewTicket],
    now: OffsetDateTime,
) -> Result<bool> {
    if booking.resale {
        return crate::resale::confirm_resale(tx, booking, tickets, now);
    }
    let quantity = booking.seats.len() as u32;
    let mut deltas = BTreeMap::new();
    match booking.status {
        BookingStatus::Pending => {}
        BookingStatus::Hold | BookingStatus::Expired => {
            let mut state = sq(tx.prepare_cached(
                "SELECT state, hold_expires_at, booking_id FROM seats
                 WHERE event_id = ?1 AND seat_id = ?2",
            ))?;
            for seat in &booking.seats {
                let (s, exp, owner): (String, Option<i64>, Option<Vec<u8>>) = sq(state.query_row(
                    params![id(booking.event_id.0), seat.seat_id.as_str()],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                ))?;
                let ours = owner.as_deref() == Some(&id(booking.id.0)[..]);
                let state =
                    SeatState::parse(&s).ok_or_else(|| store_error(corrupt("seat state")))?;
                let exp = exp.map(from_ts).transpose().map_err(store_error)?;
                match rules::retake_seat(state, exp, ours, now) {
                    None => return Ok(false),
                    Some(true) => *deltas.entry(seat.section).or_insert(0) -= 1,
                    Some(false) => {}
                }
            }
            if booking.status == BookingStatus::Expired {
                // Its seats left the customer's count when it expired.
                let max: u32 = sq(tx
                    .prepare_cached(
                        "SELECT max_tickets_per_customer FROM events WHERE event_id = ?1",
                    )
                    .and_then(|mut s| s.query_row([id(booking.event_id.0)], |r| r.get(0))))?;
                if take_from_limit(tx, booking.event_id, &booking.customer, quantity, max)?.is_err()
                {
                    return Ok(false);
                }
            }
            let mut take = sq(tx.prepare_cached(
                "UPDATE seats SET state = 'PENDING', booking_id = ?3,
                    hold_expires_at = coalesce(hold_expires_at, ?4), version = version + 1
                 WHERE event_id = ?1 AND seat_id = ?2",
            ))?;
            for seat in &booking.seats {
                sq(take.execute(params![
                    id(booking.event_id.0),
                    seat.seat_id.as_str(),
                    id(booking.id.0),
                    ts(now)
                ]))?;
            }
        }
        BookingStatus::Confirmed | BookingStatus::Cancelled => return Ok(false),
    }
    let sold = sq(tx
        .prepare_cached(
            "UPDATE seats SET state = 'SOLD', hold_expires_at = NULL, version = version + 1
             WHERE event_id = ?2
               AND seat_id IN (SELECT seat_id FROM booking_seats WHERE booking_id = ?1)
               AND booking_id = ?1 AND state = 'PENDING'",
        )
        .and_then(|mut s| s.execute(params![id(booking.id.0), id(booking.event_id.0)])))?;
    if sold != booking.seats.len() {
        return Err(StoreError::Internal(format!(
            "booking {} sold {sold} of its {} seats",
            booking.id,
            booking.seats.len()
        )));
    }
    sq(tx
        .prepare_cached(
            "UPDATE bookings SET status = 'CONFIRMED', confirmed_at = ?2, updated_at = ?2,
                cancelled_at = NULL, version = version + 1
             WHERE booking_id = ?1",
        )
        .and_then(|mut s| s.execute(params![id(booking.id.0), ts(now)])))?;
    let mut ins = sq(tx.prepare_cached(
        "INSERT INTO tickets (ticket_id, event_id, booking_id, seat_id, customer_id, status,
            token, issued_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'VALID', ?6, ?7)",
    ))?;
    for t in tickets {
        if !booking.seats.iter().any(|s| s.seat_id == t.seat_id) {
            return Err(StoreError::Internal(format!(
                "ticket for seat {} not in booking",
                t.seat_id
            )));
        }
        sq(ins.execute(params![
            id(t.id.0),
            id(booking.event_id.0),
            id(booking.id.0),
            t.seat_id.as_str(),
            booking.customer.as_str(),
            t.token,
            ts(now)
        ]))?;
    }
    if tickets.len() != booking.seats.len() {
        return Err(StoreError::Internal(
            "one ticket per seat is required".into(),
        ));
    }
    record_delta(tx, booking.event_id, &deltas, now)?;
    Ok(true)
}

pub fn set_payments_status(
    tx: &Transaction<'_>,
    payments: &[PaymentId],
    from: &[PaymentStatus],
    to: PaymentStatus,
    now: OffsetDateTime,
) -> Result<u64> {
    let from: Vec<String> = from.iter().map(|s| format!("'{}'", s.as_str())).collect();
    let sql = format!(
        "UPDATE payments SET status = ?2, updated_at = ?3
         WHERE payment_id = ?1 AND status IN ({})",
        from.join(", ")
    );
    // One transaction for all; a statement each is cheap in process.
    let mut stmt = sq(tx.prepare_cached(&sql))?;
    let mut moved = 0;
    for payment in payments {
        moved += sq(stmt.execute(params![id(payment.0), to.as_str(), ts(now)]))? as u64;
    }
    Ok(moved)
}

// ---- release, cancel, details ---------------------------------------------------------------

pub fn release(
    tx: &Transaction<'_>,
    booking_id: BookingId,
    now: OffsetDateTime,
) -> Result<Booking, ReleaseError> {
    let b = sq(load_booking(tx, booking_id))?.ok_or(ReleaseError::NotFound)?;
    let now = rules::tx_now(now, SystemClock.now());
    match rules::release(b.status, b.expires_at, now)? {
        ReleaseAction::End(to) => {
            end_booking(tx, &b, to, now)?;
            Ok(must_load(tx, booking_id)?)
        }
        ReleaseAction::Unchanged => Ok(b),
    }
}

pub fn cancel_confirmed(
    tx: &Transaction<'_>,
    booking_id: BookingId,
    now: OffsetDateTime,
) -> Result<(Booking, Option<Payment>), ReleaseError> {
    let b = sq(load_booking(tx, booking_id))?.ok_or(ReleaseError::NotFound)?;
    let tickets: Vec<TicketStatus> = b.tickets.iter().map(|t| t.status).collect();
    match rules::cancel(b.status, &tickets, b.resale)? {
        CancelAction::Unchanged => return Ok((b, None)),
        CancelAction::Cancel => {}
    }
    void_confirmed(tx, &b, None, now)?;
    let paid = sq(tx
        .prepare_cached(&format!(
            "{PAYMENT_SELECT} WHERE booking_id = ?1 AND status IN ('AUTHORIZED', 'CAPTURED')"
        ))
        .and_then(|mut s| s.query_row([id(b.id.0)], payment_row).optional()))?;
    if let Some(p) = &paid {
        set_payments_status(
            tx,
            &[p.id],
            &[PaymentStatus::Authorized, PaymentStatus::Captured],
            PaymentStatus::RefundPending,
            now,
        )?;
    }
    Ok((must_load(tx, booking_id)?, paid))
}

/// CONFIRMED → CANCELLED: every ticket VOID, the SOLD seats back on sale, the places back to
/// the customer's limit, with an optional reason shown on the booking.
pub(crate) fn void_confirmed(
    tx: &Transaction<'_>,
    b: &Booking,
    reason: Option<&str>,
    now: OffsetDateTime,
) -> Result<()> {
    debug_assert!(b.status.can_become(BookingStatus::Cancelled));
    // Its tickets can no longer be sold on, and no seller is paid for money that went back:
    // neither the seller of a resale this booking bought, nor this booking's owner for a
    // resale of a ticket they were refunded for.
    crate::resale::close_listings_of_booking(tx, b.id, now)?;
    sq(tx
        .prepare_cached(
            "UPDATE payouts SET status = 'CLAWED_BACK', updated_at = ?2
             WHERE status = 'SCHEDULED' AND listing_id IN (
                 SELECT listing_id FROM listings WHERE booking_id = ?1 AND status = 'SOLD'
                 UNION ALL
                 SELECT l.listing_id FROM listings l JOIN tickets t ON t.ticket_id = l.ticket_id
                 WHERE t.booking_id = ?1 AND l.status = 'SOLD')",
        )
        .and_then(|mut s| s.execute(params![id(b.id.0), ts(now)])))?;
    let freed = free_seats(tx, b.event_id, b.id, &[SeatState::Sold])?;
    sq(tx
        .prepare_cached(
            "UPDATE tickets SET status = 'VOID', voided_at = ?2
             WHERE booking_id = ?1 AND status IN ('VALID', 'LISTED', 'USED')",
        )
        .and_then(|mut s| s.execute(params![id(b.id.0), ts(now)])))?;
    sq(tx
        .prepare_cached(
            "UPDATE bookings SET status = 'CANCELLED', cancelled_at = ?2, updated_at = ?2,
                status_reason = ?3, version = version + 1
             WHERE booking_id = ?1",
        )
        .and_then(|mut s| s.execute(params![id(b.id.0), ts(now), reason])))?;
    adjust_counter(
        tx,
        b.event_id,
        &b.customer,
        -i64::from(b.seats.len() as u32),
    )?;
    record_delta(tx, b.event_id, &freed, now)
}

/// See [`boxoffice_domain::ports::Store::revoke`].
pub fn revoke(
    tx: &Transaction<'_>,
    payment_id: PaymentId,
    why: Revocation,
    now: OffsetDateTime,
) -> Result<Option<Booking>> {
    let Some(p) = sq(load_payment(tx, payment_id))? else {
        return Ok(None);
    };
    let Some(b) = sq(load_booking(tx, p.booking_id))? else {
        return Ok(None);
    };
    let action = rules::revoke(b.status, p.status, why);
    if action == RevokeAction::Nothing {
        return Ok(None);
    }
    if action == RevokeAction::Revoke {
        void_confirmed(tx, &b, Some(why.reason()), now)?;
    }
    sq(tx
        .prepare_cached(
            "UPDATE payments SET status = ?2, reason = ?3, updated_at = ?4 WHERE payment_id = ?1",
        )
        .and_then(|mut s| {
            s.execute(params![
                id(payment_id.0),
                why.payment_status().as_str(),
                why.reason(),
                ts(now)
            ])
        }))?;
    Ok(Some(must_load(tx, b.id)?))
}

pub fn update_details(
    tx: &Transaction<'_>,
    booking_id: BookingId,
    contact_email: Option<String>,
    attendees: Vec<(SeatId, Option<String>)>,
    now: OffsetDateTime,
) -> Result<Booking> {
    if let Some(email) = contact_email {
        sq(tx
            .prepare_cached(
                "UPDATE bookings SET contact_email = ?2, updated_at = ?3 WHERE booking_id = ?1",
            )
            .and_then(|mut s| s.execute(params![id(booking_id.0), email, ts(now)])))?;
    }
    let mut stmt = sq(tx.prepare_cached(
        // Only the booking owner's tickets: one given away is the recipient's.
        "UPDATE tickets SET attendee_name = ?3 WHERE booking_id = ?1 AND seat_id = ?2
           AND customer_id = (SELECT customer_id FROM bookings WHERE booking_id = ?1)",
    ))?;
    for (seat, name) in &attendees {
        sq(stmt.execute(params![id(booking_id.0), seat.as_str(), name]))?;
    }
    if !attendees.is_empty() {
        let json: Vec<serde_json::Value> = attendees
            .iter()
            .map(|(s, n)| serde_json::json!({"seatId": s.as_str(), "name": n}))
            .collect();
        sq(tx
            .prepare_cached("UPDATE bookings SET attendees = ?2 WHERE booking_id = ?1")
            .and_then(|mut s| {
                s.execute(params![
                    id(booking_id.0),
                    serde_json::Value::from(json).to_string()
                ])
            }))?;
    }
    must_load(tx, booking_id)
}

// ---- background work ------------------------------------------------------------------------

pub fn expire_holds(tx: &Transaction<'_>, now: OffsetDateTime, limit: u32) -> Result<u32> {
    let ids: Vec<Vec<u8>> = sq(tx
        .prepare_cached(
            "SELECT booking_id FROM bookings WHERE status = 'HOLD' AND expires_at <= ?1
             ORDER BY expires_at LIMIT ?2",
        )
        .and_then(|mut s| {
            s.query_map(params![ts(now), limit], |r| r.get(0))?
                .collect()
        }))?;
    let n = ids.len() as u32;
    for raw in ids {
        let b = must_load(tx, BookingId(sq(uuid_from(raw))?))?;
        if rules::lapsed(b.status, b.expires_at, now) {
            end_booking(tx, &b, BookingStatus::Expired, now)?;
        }
    }
    // Idempotency keys are kept at least 24 hours; finished ones go after 48.
    sq(tx
        .prepare_cached("DELETE FROM idempotency_keys WHERE state = 'DONE' AND created_at < ?1")
        .and_then(|mut s| s.execute([ts(now - time::Duration::hours(48))])))?;
    Ok(n)
}

pub fn check_in(
    tx: &Transaction<'_>,
    ticket: TicketId,
    event: EventId,
    now: OffsetDateTime,
) -> Result<CheckIn> {
    // Bound to the door's event: another event's ticket is never marked, whatever its state.
    // A listed ticket is still its owner's: it gets in, and its listing is withdrawn (a buyer
    // holding it then cannot complete the purchase).
    let listed = sq(tx
        .prepare_cached(
            "SELECT 1 FROM tickets WHERE ticket_id = ?1 AND event_id = ?2 AND status = 'LISTED'",
        )
        .and_then(|mut s| s.exists(params![id(ticket.0), id(event.0)])))?;
    let n = sq(tx
        .prepare_cached(
            "UPDATE tickets SET status = 'USED', checked_in_at = ?2
             WHERE ticket_id = ?1 AND event_id = ?3 AND status IN ('VALID', 'LISTED')",
        )
        .and_then(|mut s| s.execute(params![id(ticket.0), ts(now), id(event.0)])))?;
    if listed && n == 1 {
        crate::resale::withdraw_for_ticket(tx, ticket, now)?;
    }
    let t = sq(tickets_where(tx, "ticket_id = ?1", &id(ticket.0)))?
        .into_iter()
        .next();
    Ok(match t {
        None => CheckIn::Unknown,
        Some(t) if t.event_id != event => CheckIn::WrongEvent(t),
        Some(t) if n == 1 => CheckIn::Admitted(t),
        Some(t) if t.status == TicketStatus::Void => CheckIn::Void(t),
        Some(t) if t.status == TicketStatus::Reissued => CheckIn::Reissued(t),
        Some(t) => CheckIn::AlreadyUsed(t),
    })
}

/// The invariants, each as a query returning one row per violation.
const CHECKS: &[(&str, &str)] = &[
    (
        "listed-ticket-without-one-listing",
        "SELECT hex(t.ticket_id) || ' ' || t.status || ', open listings: ' || count(l.listing_id)
         FROM tickets t LEFT JOIN listings l
           ON l.ticket_id = t.ticket_id AND l.status IN ('ACTIVE', 'RESERVED')
         GROUP BY t.ticket_id, t.status
         HAVING (t.status = 'LISTED') <> (count(l.listing_id) = 1) OR count(l.listing_id) > 1",
    ),
    (
        "sold-listing-reissue",
        "SELECT hex(l.listing_id) || ': ticket ' || coalesce(t.status, 'missing') || ', '
                || (SELECT count(*) FROM tickets n WHERE n.replaces = l.ticket_id
                      AND n.booking_id = l.booking_id) || ' new tickets, '
                || (SELECT count(*) FROM payouts p WHERE p.listing_id = l.listing_id)
                || ' payouts'
         FROM listings l LEFT JOIN tickets t ON t.ticket_id = l.ticket_id
         WHERE l.status = 'SOLD' AND (t.status IS NOT 'REISSUED'
               OR (SELECT count(*) FROM tickets n WHERE n.replaces = l.ticket_id
                     AND n.booking_id = l.booking_id) <> 1
               OR (SELECT count(*) FROM payouts p WHERE p.listing_id = l.listing_id) <> 1)",
    ),
    (
        "resale-money",
        "SELECT hex(l.listing_id) || ': price ' || l.price_cents || ' = payout ' || p.amount_cents
                || ' + fee ' || l.fee_cents || '?'
         FROM listings l JOIN payouts p ON p.listing_id = l.listing_id
         WHERE p.amount_cents + l.fee_cents <> l.price_cents",
    ),
    (
        "payout-for-refunded-sale",
        "SELECT hex(p.payout_id) || ' ' || p.status || ' for booking ' || hex(b.booking_id) || ' '
                || b.status
         FROM payouts p JOIN listings l ON l.listing_id = p.listing_id
         JOIN bookings b ON b.booking_id = l.booking_id
         WHERE p.status IN ('SCHEDULED', 'PAID') AND b.status <> 'CONFIRMED'",
    ),
    (
        "seat-sold-twice",
        "SELECT hex(event_id) || ' ' || seat_id || ': ' || count(*) || ' live tickets'
         FROM tickets WHERE status IN ('VALID', 'LISTED', 'USED') GROUP BY event_id, seat_id HAVING count(*) > 1",
    ),
    (
        "sold-seat-ticket-count",
        "SELECT hex(s.event_id) || ' ' || s.seat_id || ': ' || count(t.ticket_id) || ' live tickets'
         FROM seats s LEFT JOIN tickets t
           ON t.event_id = s.event_id AND t.seat_id = s.seat_id AND t.status IN ('VALID', 'LISTED', 'USED')
          AND t.booking_id = s.booking_id
         WHERE s.state = 'SOLD' GROUP BY s.event_id, s.seat_id HAVING count(t.ticket_id) <> 1",
    ),
    (
        "ticket-without-sold-seat",
        "SELECT hex(t.ticket_id) || ' for ' || t.seat_id
         FROM tickets t LEFT JOIN seats s ON s.event_id = t.event_id AND s.seat_id = t.seat_id
         WHERE t.status IN ('VALID', 'LISTED', 'USED') AND (s.state IS NULL OR s.state <> 'SOLD'
               OR s.booking_id IS NOT t.booking_id)",
    ),
    (
        "sold-seat-without-confirmed-booking",
        "SELECT hex(s.event_id) || ' ' || s.seat_id
         FROM seats s LEFT JOIN bookings b ON b.booking_id = s.booking_id
         WHERE s.state = 'SOLD' AND (b.status IS NULL OR b.status <> 'CONFIRMED')",
    ),
    (
        "held-seat-without-active-booking",
        "SELECT hex(s.event_id) || ' ' || s.seat_id || ' ' || s.state
         FROM seats s LEFT JOIN bookings b ON b.booking_id = s.booking_id
         WHERE s.state IN ('HOLD', 'PENDING') AND (b.status IS NULL OR b.status <> s.state)",
    ),
    (
        "held-seat-not-in-its-booking",
        "SELECT hex(s.event_id) || ' ' || s.seat_id || ' ' || s.state || ' by '
                || hex(s.booking_id)
         FROM seats s
         WHERE s.booking_id IS NOT NULL AND NOT EXISTS (
             SELECT 1 FROM booking_seats bs
             WHERE bs.booking_id = s.booking_id AND bs.seat_id = s.seat_id)",
    ),
    (
        "confirmed-booking-ticket-count",
        // Every seat of a confirmed booking has a ticket that is live, or was passed on
        // (REISSUED) to a later owner.
        "SELECT hex(b.booking_id) || ': ' || b.quantity || ' seats, '
                || (SELECT count(DISTINCT seat_id) FROM tickets t
                    WHERE t.booking_id = b.booking_id AND t.status <> 'VOID') || ' with tickets'
         FROM bookings b WHERE b.status = 'CONFIRMED'
           AND b.quantity <> (SELECT count(DISTINCT seat_id) FROM tickets t
                              WHERE t.booking_id = b.booking_id AND t.status <> 'VOID')",
    ),
    (
        "confirmed-booking-without-captured-payment",
        "SELECT hex(b.booking_id) FROM bookings b WHERE b.status = 'CONFIRMED'
           AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.booking_id = b.booking_id
                             AND p.status = 'CAPTURED' AND p.amount_cents = b.total_cents)",
    ),
    (
        "captured-payment-without-confirmed-booking",
        "SELECT hex(p.payment_id) || ' for booking ' || hex(p.booking_id) || ' (' || b.status || ')'
         FROM payments p JOIN bookings b ON b.booking_id = p.booking_id
         WHERE p.status = 'CAPTURED' AND b.status <> 'CONFIRMED'",
    ),
    (
        "booking-paid-twice",
        "SELECT hex(p.booking_id) || ': ' || count(*) || ' payments holding money'
         FROM payments p WHERE p.status IN ('AUTHORIZED', 'CAPTURED', 'REFUND_PENDING')
         GROUP BY p.booking_id HAVING count(*) > 1",
    ),
    (
        "customer-limit-counter",
        "SELECT hex(c.event_id) || ' ' || c.customer_id || ': counter ' || c.tickets
                || ', bookings ' || coalesce(sum(b.quantity), 0)
         FROM customer_event_tickets c LEFT JOIN bookings b
           ON b.event_id = c.event_id AND b.customer_id = c.customer_id
          AND b.status IN ('HOLD', 'PENDING', 'CONFIRMED')
         GROUP BY c.event_id, c.customer_id, c.tickets
         HAVING c.tickets <> coalesce(sum(b.quantity), 0)",
    ),
    (
        "customer-limit-exceeded",
        "SELECT hex(c.event_id) || ' ' || c.customer_id || ': ' || c.tickets || ' > '
                || e.max_tickets_per_customer
         FROM customer_event_tickets c JOIN events e ON e.event_id = c.event_id
         WHERE c.tickets > e.max_tickets_per_customer",
    ),
    (
        "booking-total",
        "SELECT hex(b.booking_id) || ': total ' || b.total_cents || ', seats '
                || (SELECT coalesce(sum(price_cents), 0) FROM booking_seats bs
                      WHERE bs.booking_id = b.booking_id)
         FROM bookings b
         WHERE b.total_cents <> (SELECT coalesce(sum(price_cents), 0) FROM booking_seats bs
                                  WHERE bs.booking_id = b.booking_id)
            OR b.quantity <> (SELECT count(*) FROM booking_seats bs
                               WHERE bs.booking_id = b.booking_id)",
    ),
];

pub fn verify(c: &Connection) -> rusqlite::Result<Vec<Finding>> {
    let mut findings = Vec::new();
    for (rule, sql) in CHECKS {
        let mut stmt = c.prepare(sql)?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        for detail in rows {
            findings.push(Finding {
                rule: (*rule).to_owned(),
                detail: detail?,
            });
        }
    }
    Ok(findings)
}
