//! Resale on SQLite: listings, buying them through the ordinary hold and commit, payouts, and
//! cancelling a whole event. The decisions are the domain's (`boxoffice_domain::resale`); this
//! module reads inside the single writer's transaction, asks, and writes — the same steps, in
//! the same order, as the PostgreSQL store.

use std::collections::BTreeMap;

use boxoffice_domain::booking::{
    Booking, BookingStatus, HoldError, HoldRequest, NewTicket, Payment, TicketStatus,
};
use boxoffice_domain::ids::{
    BookingId, CustomerId, EventId, ListingId, PayoutId, SeatId, TicketId,
};
use boxoffice_domain::ports::{ListRequest, StoreError};
use boxoffice_domain::resale::{
    self, ListError, Listing, ListingCheck, ListingStatus, Payout, PayoutStatus, WithdrawError,
};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use time::OffsetDateTime;

use crate::booking::{end_booking, load_payment, must_load, record_delta, void_confirmed};
use crate::codec::{corrupt, from_ts, id, sq, ts, uuid_from};

type Result<T, E = StoreError> = std::result::Result<T, E>;

const LISTING_SELECT: &str = "SELECT listing_id, event_id, ticket_id, seat_id, section_no,
        seller_id, price_cents, fee_cents, face_value_cents, currency, status, booking_id,
        reserved_until, created_at, updated_at
    FROM listings";

fn listing_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Listing> {
    let seller: String = r.get(5)?;
    let currency: String = r.get(9)?;
    let status: String = r.get(10)?;
    Ok(Listing {
        id: ListingId(uuid_from(r.get(0)?)?),
        event_id: EventId(uuid_from(r.get(1)?)?),
        ticket_id: TicketId(uuid_from(r.get(2)?)?),
        seat_id: SeatId::from_trusted(r.get(3)?),
        section: r.get(4)?,
        seller: CustomerId::parse(&seller).map_err(|e| corrupt(e.to_string()))?,
        price_cents: r.get(6)?,
        fee_cents: r.get(7)?,
        face_value_cents: r.get(8)?,
        currency: currency.parse().map_err(|_| corrupt("currency"))?,
        status: ListingStatus::parse(&status).ok_or_else(|| corrupt("listing status"))?,
        booking_id: r
            .get::<_, Option<Vec<u8>>>(11)?
            .map(uuid_from)
            .transpose()?
            .map(BookingId),
        reserved_until: r.get::<_, Option<i64>>(12)?.map(from_ts).transpose()?,
        created_at: from_ts(r.get(13)?)?,
        updated_at: from_ts(r.get(14)?)?,
    })
}

fn listings_where(
    c: &Connection,
    cond: &str,
    args: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<Vec<Listing>> {
    let mut stmt = c.prepare_cached(&format!("{LISTING_SELECT} WHERE {cond}"))?;
    stmt.query_map(args, listing_row)?.collect()
}

fn delta(section: u16, by: i32) -> BTreeMap<u16, i32> {
    BTreeMap::from([(section, by)])
}

pub fn list_ticket(tx: &Transaction<'_>, req: &ListRequest) -> Result<Result<Listing, ListError>> {
    let row = sq(tx
        .prepare_cached(
            // The cap is a percentage of the seat's face value, never of what the last owner
            // paid on resale (a chain of resales cannot compound it).
            "SELECT t.customer_id, t.status, t.event_id, t.seat_id, s.price_cents, b.currency,
                    e.starts_at, e.cancelled_at IS NOT NULL, e.resale_max_price_percent,
                    EXISTS (SELECT 1 FROM transfers x WHERE x.ticket_id = t.ticket_id
                              AND x.status = 'PENDING')
             FROM tickets t
             JOIN bookings b ON b.booking_id = t.booking_id
             JOIN seats s ON s.event_id = t.event_id AND s.seat_id = t.seat_id
             JOIN events e ON e.event_id = t.event_id
             WHERE t.ticket_id = ?1",
        )
        .and_then(|mut s| {
            s.query_row([id(req.ticket_id.0)], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    uuid_from(r.get(2)?)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, String>(5)?,
                    from_ts(r.get(6)?)?,
                    r.get::<_, bool>(7)?,
                    r.get::<_, u32>(8)?,
                    r.get::<_, bool>(9)?,
                ))
            })
            .optional()
        }))?;
    let Some((
        owner,
        status,
        event_id,
        seat_id,
        face_value,
        currency,
        starts_at,
        cancelled,
        cap,
        transfer,
    )) = row
    else {
        return Ok(Err(ListError::NotFound));
    };
    let owner = CustomerId::parse(&owner).map_err(|_| StoreError::Internal("bad owner".into()))?;
    let status = TicketStatus::parse(&status)
        .ok_or_else(|| StoreError::Internal("bad ticket status".into()))?;
    if let Err(e) = resale::may_list(&ListingCheck {
        ticket_owner: &owner,
        ticket_status: status,
        caller: &req.seller,
        transfer_pending: transfer,
        event_starts_at: starts_at,
        event_cancelled: cancelled,
        cap_percent: cap,
        face_value_cents: face_value,
        price_cents: req.price_cents,
        now: req.now,
    }) {
        return Ok(Err(e));
    }
    let seat = SeatId::from_trusted(seat_id);
    let section = seat
        .parts()
        .ok_or_else(|| StoreError::Internal("bad seat id".into()))?
        .0;
    let listing = Listing {
        id: req.listing_id,
        event_id: EventId(event_id),
        ticket_id: req.ticket_id,
        seat_id: seat,
        section,
        seller: req.seller.clone(),
        price_cents: req.price_cents,
        fee_cents: resale::fee_cents(req.price_cents, req.fee_basis_points),
        face_value_cents: face_value,
        currency: currency
            .parse()
            .map_err(|_| StoreError::Internal("bad currency".into()))?,
        status: ListingStatus::Active,
        booking_id: None,
        reserved_until: None,
        created_at: req.now,
        updated_at: req.now,
    };
    sq(tx
        .prepare_cached(
            "INSERT INTO listings (listing_id, event_id, ticket_id, seat_id, section_no, seller_id,
                 price_cents, fee_cents, face_value_cents, currency, status, created_at,
                 updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'ACTIVE', ?11, ?11)",
        )
        .and_then(|mut s| {
            s.execute(params![
                id(listing.id.0),
                id(listing.event_id.0),
                id(listing.ticket_id.0),
                listing.seat_id.as_str(),
                section,
                listing.seller.as_str(),
                listing.price_cents,
                listing.fee_cents,
                listing.face_value_cents,
                listing.currency.as_str(),
                ts(req.now)
            ])
        }))?;
    sq(tx
        .prepare_cached("UPDATE tickets SET status = 'LISTED' WHERE ticket_id = ?1")
        .and_then(|mut s| s.execute([id(req.ticket_id.0)])))?;
    record_delta(tx, listing.event_id, &delta(section, 1), req.now)?;
    Ok(Ok(listing))
}

pub fn listing(c: &Connection, l: ListingId) -> rusqlite::Result<Option<Listing>> {
    Ok(listings_where(c, "listing_id = ?1", &[&id(l.0)])?
        .into_iter()
        .next())
}

pub fn event_listings(
    c: &Connection,
    event: EventId,
    now: OffsetDateTime,
) -> rusqlite::Result<Vec<Listing>> {
    listings_where(
        c,
        "event_id = ?1 AND (status = 'ACTIVE' OR (status = 'RESERVED' AND reserved_until <= ?2))
         ORDER BY price_cents, created_at",
        &[&id(event.0), &ts(now)],
    )
}

pub fn seller_listings(c: &Connection, seller: &CustomerId) -> rusqlite::Result<Vec<Listing>> {
    listings_where(
        c,
        "seller_id = ?1 ORDER BY created_at DESC",
        &[&seller.as_str()],
    )
}

pub fn withdraw(
    tx: &Transaction<'_>,
    l: ListingId,
    seller: &CustomerId,
    now: OffsetDateTime,
) -> Result<Result<Listing, WithdrawError>> {
    let Some(listing) = sq(listing(tx, l))? else {
        return Ok(Err(WithdrawError::NotFound));
    };
    if let Err(e) = resale::may_withdraw(&listing, seller, now) {
        return Ok(Err(e));
    }
    close_listing(tx, &listing, now)?;
    Ok(Ok(Listing {
        status: ListingStatus::Withdrawn,
        booking_id: None,
        reserved_until: None,
        updated_at: now,
        ..listing
    }))
}

/// WITHDRAWN, its ticket VALID again if still LISTED, and its place no longer available if it
/// was counted so (ACTIVE on the books).
fn close_listing(tx: &Transaction<'_>, l: &Listing, now: OffsetDateTime) -> Result<()> {
    sq(tx
        .prepare_cached(
            "UPDATE listings SET status = 'WITHDRAWN', booking_id = NULL, reserved_until = NULL,
                 updated_at = ?2
             WHERE listing_id = ?1",
        )
        .and_then(|mut s| s.execute(params![id(l.id.0), ts(now)])))?;
    sq(tx
        .prepare_cached(
            "UPDATE tickets SET status = 'VALID' WHERE ticket_id = ?1 AND status = 'LISTED'",
        )
        .and_then(|mut s| s.execute([id(l.ticket_id.0)])))?;
    if l.status == ListingStatus::Active {
        record_delta(tx, l.event_id, &delta(l.section, -1), now)?;
    }
    Ok(())
}

/// Withdraws the open listings of a booking's tickets (it is being cancelled).
pub fn close_listings_of_booking(
    tx: &Transaction<'_>,
    booking: BookingId,
    now: OffsetDateTime,
) -> Result<()> {
    let open = sq(listings_where(
        tx,
        "ticket_id IN (SELECT ticket_id FROM tickets WHERE booking_id = ?1)
           AND status IN ('ACTIVE', 'RESERVED')",
        &[&id(booking.0)],
    ))?;
    for l in &open {
        close_listing(tx, l, now)?;
    }
    Ok(())
}

/// Withdraws the open listing of a ticket that was just used at the door.
pub fn withdraw_for_ticket(
    tx: &Transaction<'_>,
    ticket: TicketId,
    now: OffsetDateTime,
) -> Result<()> {
    let open = sq(listings_where(
        tx,
        "ticket_id = ?1 AND status IN ('ACTIVE', 'RESERVED')",
        &[&id(ticket.0)],
    ))?;
    for l in open {
        close_listing(tx, &l, now)?;
    }
    // The ticket is USED now, not VALID: close_listing only touched a LISTED one.
    Ok(())
}

/// Holds resale listings for a new booking, all or none. The customer's limit is already
/// taken by the caller.
pub fn hold_listings(
    tx: &Transaction<'_>,
    req: &HoldRequest,
    ids: &[ListingId],
) -> Result<Booking, HoldError> {
    let mut listings = Vec::with_capacity(ids.len());
    let mut missing = Vec::new();
    for l in ids {
        match sq(listing(tx, *l))? {
            Some(found) if found.event_id == req.event_id() => listings.push(found),
            _ => missing.push(*l),
        }
    }
    if !missing.is_empty() {
        return Err(HoldError::NoSuchListings(missing));
    }
    let mut unavailable = Vec::new();
    for l in &listings {
        match resale::may_reserve(l, &req.customer, req.now) {
            Ok(()) => {}
            Err(resale::ReserveRefusal::OwnListing) => return Err(HoldError::OwnListing),
            Err(resale::ReserveRefusal::Unavailable) => unavailable.push(l.id),
        }
    }
    if !unavailable.is_empty() {
        return Err(HoldError::ListingsUnavailable(unavailable));
    }
    let total: i64 = listings.iter().map(|l| l.price_cents).sum();
    sq(tx
        .prepare_cached(
            "INSERT INTO bookings (booking_id, event_id, customer_id, status, expires_at,
                total_cents, currency, quantity, created_at, updated_at, listing_id)
             VALUES (?1, ?2, ?3, 'HOLD', ?4, ?5, ?6, ?7, ?8, ?8, ?9)",
        )
        .and_then(|mut s| {
            s.execute(params![
                id(req.booking_id.0),
                id(req.event_id().0),
                req.customer.as_str(),
                ts(req.expires_at),
                total,
                req.currency().as_str(),
                listings.len() as u32,
                ts(req.now),
                id(listings[0].id.0)
            ])
        }))?;
    let mut deltas = BTreeMap::new();
    for l in &listings {
        sq(tx
            .prepare_cached(
                "INSERT INTO booking_seats (booking_id, event_id, seat_id, price_cents)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    id(req.booking_id.0),
                    id(req.event_id().0),
                    l.seat_id.as_str(),
                    l.price_cents
                ])
            }))?;
        sq(tx
            .prepare_cached(
                "UPDATE listings SET status = 'RESERVED', booking_id = ?2, reserved_until = ?3,
                     updated_at = ?4
                 WHERE listing_id = ?1",
            )
            .and_then(|mut s| {
                s.execute(params![
                    id(l.id.0),
                    id(req.booking_id.0),
                    ts(req.expires_at),
                    ts(req.now)
                ])
            }))?;
        // Counted available while ACTIVE on the books (a lapsed reservation never was).
        if l.status == ListingStatus::Active {
            *deltas.entry(l.section).or_insert(0) -= 1;
        }
    }
    record_delta(tx, req.event_id(), &deltas, req.now)?;
    Ok(must_load(tx, req.booking_id)?)
}

/// Gives the listings a resale booking held back to sale (its hold ended without a sale).
pub fn release_listings(
    tx: &Transaction<'_>,
    booking: BookingId,
    event: EventId,
    now: OffsetDateTime,
) -> Result<()> {
    let sections: Vec<u16> = sq(tx
        .prepare_cached(
            "UPDATE listings SET status = 'ACTIVE', booking_id = NULL, reserved_until = NULL,
                 updated_at = ?2
             WHERE booking_id = ?1 AND status = 'RESERVED' RETURNING section_no",
        )
        .and_then(|mut s| {
            s.query_map(params![id(booking.0), ts(now)], |r| r.get(0))?
                .collect()
        }))?;
    let mut deltas = BTreeMap::new();
    for s in sections {
        *deltas.entry(s).or_insert(0) += 1;
    }
    record_delta(tx, event, &deltas, now)
}

/// Confirms a PENDING resale booking: see the PostgreSQL store, which does the same.
pub fn confirm_resale(
    tx: &Transaction<'_>,
    booking: &Booking,
    tickets: &[NewTicket],
    now: OffsetDateTime,
) -> Result<bool> {
    if booking.status != BookingStatus::Pending {
        return Ok(false);
    }
    let listings = sq(listings_where(
        tx,
        "booking_id = ?1 ORDER BY listing_id",
        &[&id(booking.id.0)],
    ))?;
    let (starts_at, cancelled): (i64, bool) = sq(tx
        .prepare_cached(
            "SELECT starts_at, cancelled_at IS NOT NULL FROM events WHERE event_id = ?1",
        )
        .and_then(|mut s| s.query_row([id(booking.event_id.0)], |r| Ok((r.get(0)?, r.get(1)?)))))?;
    // The tickets must still be on sale (not used at the door meanwhile).
    let mut listed =
        sq(tx.prepare_cached("SELECT 1 FROM tickets WHERE ticket_id = ?1 AND status = 'LISTED'"))?;
    let mut all_listed = true;
    for l in &listings {
        all_listed &= sq(listed.exists([id(l.ticket_id.0)]))?;
    }
    if cancelled
        || listings.len() != booking.seats.len()
        || listings.iter().any(|l| l.status != ListingStatus::Reserved)
        || !all_listed
    {
        // The listings went (withdrawn at the door, event cancelled): the booking ends here
        // and the caller voids the payment.
        end_booking(tx, booking, BookingStatus::Expired, now)?;
        return Ok(false);
    }
    let available_at = resale::payout_available_at(sq(from_ts(starts_at))?);
    for l in &listings {
        let t = tickets
            .iter()
            .find(|t| t.seat_id == l.seat_id)
            .ok_or_else(|| StoreError::Internal("no ticket for a listed seat".into()))?;
        let reissued = sq(tx
            .prepare_cached(
                "UPDATE tickets SET status = 'REISSUED', reissued_at = ?2
                 WHERE ticket_id = ?1 AND status = 'LISTED'",
            )
            .and_then(|mut s| s.execute(params![id(l.ticket_id.0), ts(now)])))?;
        if reissued != 1 {
            return Err(StoreError::Internal(format!(
                "listing {}: its ticket is not LISTED",
                l.id
            )));
        }
        sq(tx
            .prepare_cached(
                "INSERT INTO tickets (ticket_id, event_id, booking_id, seat_id, customer_id,
                     status, token, issued_at, replaces)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'VALID', ?6, ?7, ?8)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    id(t.id.0),
                    id(booking.event_id.0),
                    id(booking.id.0),
                    l.seat_id.as_str(),
                    booking.customer.as_str(),
                    t.token,
                    ts(now),
                    id(l.ticket_id.0)
                ])
            }))?;
        sq(tx
            .prepare_cached(
                "UPDATE seats SET booking_id = ?3, version = version + 1
                 WHERE event_id = ?1 AND seat_id = ?2 AND state = 'SOLD'",
            )
            .and_then(|mut s| {
                s.execute(params![
                    id(booking.event_id.0),
                    l.seat_id.as_str(),
                    id(booking.id.0)
                ])
            }))?;
        sq(tx
            .prepare_cached(
                "UPDATE listings SET status = 'SOLD', reserved_until = NULL, updated_at = ?2
                 WHERE listing_id = ?1",
            )
            .and_then(|mut s| s.execute(params![id(l.id.0), ts(now)])))?;
        sq(tx
            .prepare_cached(
                "INSERT INTO payouts (payout_id, event_id, listing_id, seller_id, amount_cents,
                     currency, status, available_at, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'SCHEDULED', ?7, ?8, ?8)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    id(PayoutId::new_in(booking.event_id.slot()).0),
                    id(booking.event_id.0),
                    id(l.id.0),
                    l.seller.as_str(),
                    l.seller_proceeds_cents(),
                    l.currency.as_str(),
                    ts(available_at),
                    ts(now)
                ])
            }))?;
    }
    sq(tx
        .prepare_cached(
            "UPDATE bookings SET status = 'CONFIRMED', confirmed_at = ?2, updated_at = ?2,
                cancelled_at = NULL, version = version + 1
             WHERE booking_id = ?1",
        )
        .and_then(|mut s| s.execute(params![id(booking.id.0), ts(now)])))?;
    Ok(true)
}

const PAYOUT_SELECT: &str = "SELECT payout_id, event_id, listing_id, seller_id, amount_cents,
        currency, status, available_at, created_at
    FROM payouts";

fn payout_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Payout> {
    let seller: String = r.get(3)?;
    let currency: String = r.get(5)?;
    let status: String = r.get(6)?;
    Ok(Payout {
        id: PayoutId(uuid_from(r.get(0)?)?),
        event_id: EventId(uuid_from(r.get(1)?)?),
        listing_id: ListingId(uuid_from(r.get(2)?)?),
        seller: CustomerId::parse(&seller).map_err(|e| corrupt(e.to_string()))?,
        amount_cents: r.get(4)?,
        currency: currency.parse().map_err(|_| corrupt("currency"))?,
        status: PayoutStatus::parse(&status).ok_or_else(|| corrupt("payout status"))?,
        available_at: from_ts(r.get(7)?)?,
        created_at: from_ts(r.get(8)?)?,
    })
}

pub fn payouts_of(c: &Connection, seller: &CustomerId) -> rusqlite::Result<Vec<Payout>> {
    let mut stmt = c.prepare_cached(&format!(
        "{PAYOUT_SELECT} WHERE seller_id = ?1 ORDER BY created_at DESC"
    ))?;
    stmt.query_map([seller.as_str()], payout_row)?.collect()
}

pub fn due_payouts(
    c: &Connection,
    now: OffsetDateTime,
    limit: u32,
) -> rusqlite::Result<Vec<Payout>> {
    let mut stmt = c.prepare_cached(&format!(
        "{PAYOUT_SELECT} WHERE status = 'SCHEDULED' AND available_at <= ?1
         ORDER BY available_at LIMIT ?2"
    ))?;
    stmt.query_map(params![ts(now), limit], payout_row)?
        .collect()
}

pub fn mark_payout_paid(
    tx: &Transaction<'_>,
    payout: PayoutId,
    provider_ref: &str,
    now: OffsetDateTime,
) -> Result<bool> {
    let n = sq(tx
        .prepare_cached(
            "UPDATE payouts SET status = 'PAID', provider_ref = ?2, updated_at = ?3
             WHERE payout_id = ?1 AND status = 'SCHEDULED'",
        )
        .and_then(|mut s| s.execute(params![id(payout.0), provider_ref, ts(now)])))?;
    Ok(n == 1)
}

/// Cancels an event: see [`boxoffice_domain::ports::Store::cancel_event`].
pub fn cancel_event(
    tx: &Transaction<'_>,
    event: EventId,
    now: OffsetDateTime,
) -> Result<Vec<Payment>> {
    let first = sq(tx
        .prepare_cached(
            "UPDATE events SET cancelled_at = ?2, updated_at = ?2
             WHERE event_id = ?1 AND cancelled_at IS NULL",
        )
        .and_then(|mut s| s.execute(params![id(event.0), ts(now)])))?;
    // Search indexes re-read the event and show it CANCELLED (once).
    if first == 1 {
        sq(tx
        .prepare_cached(
            "INSERT INTO outbox (event_id, kind, payload, created_at) VALUES (?1, ?2, '{}', ?3)",
        )
        .and_then(|mut s| {
            s.execute(params![
                id(event.0),
                boxoffice_domain::ports::change::EVENT_CHANGED,
                ts(now)
            ])
        }))?;
    }
    let open = sq(listings_where(
        tx,
        "event_id = ?1 AND status IN ('ACTIVE', 'RESERVED')",
        &[&id(event.0)],
    ))?;
    for l in &open {
        close_listing(tx, l, now)?;
    }
    sq(tx
        .prepare_cached(
            "UPDATE payouts SET status = 'CLAWED_BACK', updated_at = ?2
             WHERE event_id = ?1 AND status = 'SCHEDULED'",
        )
        .and_then(|mut s| s.execute(params![id(event.0), ts(now)])))?;
    // Pending transfers lapse with the event.
    sq(tx
        .prepare_cached(
            "UPDATE transfers SET status = 'EXPIRED', updated_at = ?2
             WHERE event_id = ?1 AND status = 'PENDING'",
        )
        .and_then(|mut s| s.execute(params![id(event.0), ts(now)])))?;
    let bookings = |status: &str| -> Result<Vec<BookingId>> {
        sq(tx
            .prepare_cached(
                "SELECT booking_id FROM bookings WHERE event_id = ?1 AND status = ?2
                 ORDER BY booking_id",
            )
            .and_then(|mut s| {
                s.query_map(params![id(event.0), status], |r| r.get::<_, Vec<u8>>(0))?
                    .map(|raw| raw.and_then(uuid_from).map(BookingId))
                    .collect()
            }))
    };
    for b in bookings("HOLD")? {
        let b = must_load(tx, b)?;
        end_booking(tx, &b, BookingStatus::Cancelled, now)?;
    }
    for b in bookings("CONFIRMED")? {
        let b = must_load(tx, b)?;
        void_confirmed(tx, &b, Some("event-cancelled"), now)?;
    }
    // Every payment still holding money for a booking this cancellation ended — including
    // one approved late, after an earlier run — is owed back.
    let paid: Vec<Vec<u8>> = sq(tx
        .prepare_cached(
            "UPDATE payments SET status = 'REFUND_PENDING', updated_at = ?2
             WHERE status IN ('AUTHORIZED', 'CAPTURED') AND booking_id IN (
                 SELECT booking_id FROM bookings
                 WHERE event_id = ?1 AND status = 'CANCELLED'
                   AND status_reason = 'event-cancelled')
             RETURNING payment_id",
        )
        .and_then(|mut s| {
            s.query_map(params![id(event.0), ts(now)], |r| r.get(0))?
                .collect()
        }))?;
    let mut owed = Vec::new();
    for raw in paid {
        let pid = boxoffice_domain::ids::PaymentId(sq(uuid_from(raw))?);
        if let Some(p) = sq(load_payment(tx, pid))? {
            owed.push(p);
        }
    }
    Ok(owed)
}

pub fn cancelled_events(c: &Connection, since: OffsetDateTime) -> rusqlite::Result<Vec<EventId>> {
    let mut stmt = c.prepare_cached(
        "SELECT event_id FROM events WHERE cancelled_at IS NOT NULL AND cancelled_at >= ?1",
    )?;
    stmt.query_map([ts(since)], |r| Ok(EventId(uuid_from(r.get(0)?)?)))?
        .collect()
}
