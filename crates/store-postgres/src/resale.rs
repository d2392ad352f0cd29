//! Resale on PostgreSQL: listings, buying them through the ordinary hold and commit, payouts,
//! and cancelling a whole event. The decisions are the domain's (`boxoffice_domain::resale`);
//! this module reads under row locks, asks, and writes.
//!
//! Lock order, as everywhere: booking, then payment, then listings (by id), then tickets, then
//! seats.

use std::collections::BTreeMap;

use crate::exec::Exec;
use boxoffice_domain::booking::{
    Booking, BookingStatus, HoldError, HoldRequest, NewTicket, Payment, PaymentStatus, TicketStatus,
};
use boxoffice_domain::ids::{BookingId, CustomerId, EventId, ListingId, PayoutId, TicketId};
use boxoffice_domain::ports::{ListRequest, StoreError};
use boxoffice_domain::resale::{
    self, ListError, Listing, ListingCheck, ListingStatus, Payout, PayoutStatus, WithdrawError,
};
use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::booking::{delta_payload, must_load, record_delta};
use crate::corrupt;

type Result<T, E = StoreError> = std::result::Result<T, E>;

const LISTING_SELECT: &str = "SELECT listing_id, event_id, ticket_id, seat_id, section_no,
        seller_id, price_cents, fee_cents, face_value_cents, currency, status, booking_id,
        reserved_until, created_at, updated_at
    FROM listings";

fn listing_row(r: &Row) -> Result<Listing> {
    let currency: &str = r.get(9);
    Ok(Listing {
        id: ListingId(r.get(0)),
        event_id: EventId(r.get(1)),
        ticket_id: TicketId(r.get(2)),
        seat_id: boxoffice_domain::ids::SeatId::from_trusted(r.get(3)),
        section: r.get::<_, i16>(4) as u16,
        seller: CustomerId::parse(r.get(5)).map_err(|_| corrupt("seller"))?,
        price_cents: r.get(6),
        fee_cents: r.get(7),
        face_value_cents: r.get(8),
        currency: currency.parse().map_err(|_| corrupt("currency"))?,
        status: ListingStatus::parse(r.get(10)).ok_or_else(|| corrupt("listing status"))?,
        booking_id: r.get::<_, Option<Uuid>>(11).map(BookingId),
        reserved_until: r.get(12),
        created_at: r.get(13),
        updated_at: r.get(14),
    })
}

/// One section's change of available places, for the outbox.
fn delta(section: u16, by: i32) -> BTreeMap<u16, i32> {
    BTreeMap::from([(section, by)])
}

pub async fn list_ticket<C: Exec>(c: &C, req: &ListRequest) -> Result<Result<Listing, ListError>> {
    let Some(t) = q!(
        c,
        query_opt,
        // The cap is a percentage of the seat's face value, never of what the last owner paid
        // on resale (a chain of resales cannot compound it).
        // The entry (by the ticket's id); its joins stay within the ticket's event.
        "/* by key */ SELECT t.customer_id, t.status, t.event_id, t.seat_id, s.price_cents,
                b.currency, e.starts_at, e.cancelled_at IS NOT NULL, e.resale_max_price_percent,
                EXISTS (SELECT 1 FROM transfers x WHERE x.event_id = t.event_id
                          AND x.ticket_id = t.ticket_id AND x.status = 'PENDING')
         FROM tickets t
         JOIN bookings b ON b.event_id = t.event_id AND b.booking_id = t.booking_id
         JOIN seats s ON s.event_id = t.event_id AND s.seat_id = t.seat_id
         JOIN events e ON e.event_id = t.event_id
         WHERE t.ticket_id = $1 FOR UPDATE OF t",
        &req.ticket_id.0
    )?
    else {
        return Ok(Err(ListError::NotFound));
    };
    let owner = CustomerId::parse(t.get(0)).map_err(|_| corrupt("customer"))?;
    let status = TicketStatus::parse(t.get(1)).ok_or_else(|| corrupt("ticket status"))?;
    let face_value: i64 = t.get(4);
    let check = ListingCheck {
        ticket_owner: &owner,
        ticket_status: status,
        caller: &req.seller,
        transfer_pending: t.get(9),
        event_starts_at: t.get(6),
        event_cancelled: t.get(7),
        cap_percent: t.get::<_, i32>(8).max(0) as u32,
        face_value_cents: face_value,
        price_cents: req.price_cents,
        now: req.now,
    };
    if let Err(e) = resale::may_list(&check) {
        return Ok(Err(e));
    }
    let seat_id: String = t.get(3);
    let seat = boxoffice_domain::ids::SeatId::from_trusted(seat_id.clone());
    let section = seat.parts().ok_or_else(|| corrupt("seat id"))?.0;
    let currency: &str = t.get(5);
    let listing = Listing {
        id: req.listing_id,
        event_id: EventId(t.get(2)),
        ticket_id: req.ticket_id,
        seat_id: seat,
        section,
        seller: req.seller.clone(),
        price_cents: req.price_cents,
        fee_cents: resale::fee_cents(req.price_cents, req.fee_basis_points),
        face_value_cents: face_value,
        currency: currency.parse().map_err(|_| corrupt("currency"))?,
        status: ListingStatus::Active,
        booking_id: None,
        reserved_until: None,
        created_at: req.now,
        updated_at: req.now,
    };
    let payload = delta_payload(&delta(section, 1))?;
    q!(
        c,
        execute,
        "WITH l AS (
             INSERT INTO listings (listing_id, event_id, ticket_id, seat_id, section_no, seller_id,
                 price_cents, fee_cents, face_value_cents, currency, status, created_at,
                 updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'ACTIVE', $11, $11) RETURNING 1),
         t AS (UPDATE tickets SET status = 'LISTED' WHERE event_id = $2 AND ticket_id = $3
               RETURNING 1),
         o AS (INSERT INTO outbox (event_id, kind, payload)
               SELECT $2, $12, $13::jsonb WHERE $13::jsonb IS NOT NULL RETURNING 1)
         SELECT 1",
        &listing.id.0,
        &listing.event_id.0,
        &listing.ticket_id.0,
        &seat_id,
        &(section as i16),
        &listing.seller.as_str(),
        &listing.price_cents,
        &listing.fee_cents,
        &listing.face_value_cents,
        &listing.currency.as_str(),
        &req.now,
        &boxoffice_domain::ports::change::SEATS_CHANGED,
        &payload
    )?;
    Ok(Ok(listing))
}

pub async fn listing<C: Exec>(c: &C, id: ListingId) -> Result<Option<Listing>> {
    q!(
        c,
        query_opt,
        &format!("/* by key */ {LISTING_SELECT} WHERE listing_id = $1"),
        &id.0
    )?
    .as_ref()
    .map(listing_row)
    .transpose()
}

pub async fn event_listings<C: Exec>(
    c: &C,
    event: EventId,
    now: OffsetDateTime,
) -> Result<Vec<Listing>> {
    q!(
        c,
        query,
        &format!(
            "{LISTING_SELECT} WHERE event_id = $1
               AND (status = 'ACTIVE' OR (status = 'RESERVED' AND reserved_until <= $2))
             ORDER BY price_cents, created_at"
        ),
        &event.0,
        &now
    )?
    .iter()
    .map(listing_row)
    .collect()
}

pub async fn seller_listings<C: Exec>(c: &C, seller: &CustomerId) -> Result<Vec<Listing>> {
    q!(
        c,
        query,
        &format!("/* fan-out */ {LISTING_SELECT} WHERE seller_id = $1 ORDER BY created_at DESC"),
        &seller.as_str()
    )?
    .iter()
    .map(listing_row)
    .collect()
}

pub async fn withdraw<C: Exec>(
    c: &C,
    id: ListingId,
    seller: &CustomerId,
    now: OffsetDateTime,
) -> Result<Result<Listing, WithdrawError>> {
    let Some(l) = q!(
        c,
        query_opt,
        &format!("/* by key */ {LISTING_SELECT} WHERE listing_id = $1 FOR UPDATE"),
        &id.0
    )?
    .as_ref()
    .map(listing_row)
    .transpose()?
    else {
        return Ok(Err(WithdrawError::NotFound));
    };
    if let Err(e) = resale::may_withdraw(&l, seller, now) {
        return Ok(Err(e));
    }
    close_listing(c, &l, now).await?;
    Ok(Ok(Listing {
        status: ListingStatus::Withdrawn,
        booking_id: None,
        reserved_until: None,
        updated_at: now,
        ..l
    }))
}

/// WITHDRAWN, its ticket VALID again if still LISTED, and its place no longer available if it
/// was counted so: ACTIVE on the books (a lapsed reservation still RESERVED never was given
/// back).
async fn close_listing<C: Exec>(c: &C, l: &Listing, now: OffsetDateTime) -> Result<()> {
    q!(
        c,
        execute,
        "WITH l AS (UPDATE listings SET status = 'WITHDRAWN', booking_id = NULL,
                        reserved_until = NULL, updated_at = $2
                    WHERE event_id = $4 AND listing_id = $1 RETURNING 1),
         t AS (UPDATE tickets SET status = 'VALID'
               WHERE event_id = $4 AND ticket_id = $3 AND status = 'LISTED'
               RETURNING 1)
         SELECT 1",
        &l.id.0,
        &now,
        &l.ticket_id.0,
        &l.event_id.0
    )?;
    if l.status == ListingStatus::Active {
        record_delta(c, l.event_id, &delta(l.section, -1)).await?;
    }
    Ok(())
}

/// Withdraws the open listings of a booking's tickets (it is being cancelled).
pub async fn close_listings_of_booking<C: Exec>(
    c: &C,
    event: EventId,
    booking: BookingId,
    now: OffsetDateTime,
) -> Result<()> {
    let open = q!(
        c,
        query,
        &format!(
            "{LISTING_SELECT}
             WHERE event_id = $2
               AND ticket_id IN (SELECT ticket_id FROM tickets
                                 WHERE event_id = $2 AND booking_id = $1)
               AND status IN ('ACTIVE', 'RESERVED')
             ORDER BY listing_id FOR UPDATE"
        ),
        &booking.0,
        &event.0
    )?;
    for l in open.iter().map(listing_row) {
        close_listing(c, &l?, now).await?;
    }
    Ok(())
}

/// Withdraws the open listing of a ticket that was just used at the door.
pub async fn withdraw_for_ticket<C: Exec>(
    c: &C,
    event: EventId,
    ticket: TicketId,
    now: OffsetDateTime,
) -> Result<()> {
    let rows = q!(
        c,
        query,
        "UPDATE listings l SET status = 'WITHDRAWN', booking_id = NULL, reserved_until = NULL,
             updated_at = $2
         FROM (SELECT listing_id, status FROM listings
               WHERE event_id = $3 AND ticket_id = $1 AND status IN ('ACTIVE', 'RESERVED')
               FOR UPDATE) old
         WHERE l.event_id = $3 AND l.listing_id = old.listing_id
         RETURNING l.section_no, old.status = 'ACTIVE'",
        &ticket.0,
        &now,
        &event.0
    )?;
    for r in rows {
        if r.get::<_, bool>(1) {
            record_delta(c, event, &delta(r.get::<_, i16>(0) as u16, -1)).await?;
        }
    }
    Ok(())
}

/// Holds resale listings for a new booking, all or none. The customer's limit is already
/// taken by the caller.
pub async fn hold_listings<C: Exec>(
    c: &C,
    req: &HoldRequest,
    ids: &[ListingId],
) -> Result<Booking, HoldError> {
    let raw: Vec<Uuid> = ids.iter().map(|l| l.0).collect();
    let rows = q!(
        c,
        query,
        &format!(
            "{LISTING_SELECT} WHERE listing_id = ANY($1) AND event_id = $2
             ORDER BY listing_id FOR UPDATE"
        ),
        &raw,
        &req.event_id().0
    )?;
    let listings: Vec<Listing> = rows.iter().map(listing_row).collect::<Result<_>>()?;
    let missing: Vec<ListingId> = ids
        .iter()
        .filter(|id| !listings.iter().any(|l| &l.id == *id))
        .copied()
        .collect();
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
    // Places counted available: ACTIVE ones (a lapsed reservation was never given back).
    let mut deltas = BTreeMap::new();
    for l in listings
        .iter()
        .filter(|l| l.status == ListingStatus::Active)
    {
        *deltas.entry(l.section).or_insert(0) -= 1;
    }
    let seat_ids: Vec<&str> = listings.iter().map(|l| l.seat_id.as_str()).collect();
    let prices: Vec<i64> = listings.iter().map(|l| l.price_cents).collect();
    let total: i64 = prices.iter().sum();
    let currency = req.currency();
    let payload = delta_payload(&deltas)?;
    q!(
        c,
        execute,
        "WITH b AS (
             INSERT INTO bookings (booking_id, event_id, customer_id, status, expires_at,
                 total_cents, currency, quantity, created_at, updated_at, listing_id)
             VALUES ($1, $2, $3, 'HOLD', $4, $5, $6, $7, $8, $8, $13) RETURNING 1),
         s AS (
             INSERT INTO booking_seats (booking_id, event_id, seat_id, price_cents)
             SELECT $1, $2, * FROM unnest($9::text[], $10::int8[]) RETURNING 1),
         l AS (
             UPDATE listings SET status = 'RESERVED', booking_id = $1, reserved_until = $4,
                 updated_at = $8
             WHERE event_id = $2 AND listing_id = ANY($14) RETURNING 1),
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
        &(listings.len() as i32),
        &req.now,
        &seat_ids,
        &prices,
        &boxoffice_domain::ports::change::SEATS_CHANGED,
        &payload,
        &raw[0],
        &raw
    )?;
    Ok(must_load(c, req.event_id(), req.booking_id).await?)
}

/// Gives the listings a resale booking held back to sale (its hold ended without a sale).
pub async fn release_listings<C: Exec>(
    c: &C,
    booking: BookingId,
    event: EventId,
    now: OffsetDateTime,
) -> Result<()> {
    let rows = q!(
        c,
        query,
        "UPDATE listings SET status = 'ACTIVE', booking_id = NULL, reserved_until = NULL,
             updated_at = $2
         WHERE event_id = $3 AND booking_id = $1 AND status = 'RESERVED' RETURNING section_no",
        &booking.0,
        &now,
        &event.0
    )?;
    let mut deltas = BTreeMap::new();
    for r in rows {
        *deltas.entry(r.get::<_, i16>(0) as u16).or_insert(0) += 1;
    }
    record_delta(c, event, &deltas).await
}

/// Confirms a PENDING resale booking: every listing SOLD, each seller's ticket REISSUED, the
/// buyer's new tickets VALID (the seat now belongs to the buyer's booking), one payout per
/// listing SCHEDULED. Returns false if the booking can no longer take the listings (it lapsed,
/// or the event was cancelled): the caller voids the payment.
pub async fn confirm_resale<C: Exec>(
    c: &C,
    booking: &Booking,
    tickets: &[NewTicket],
    now: OffsetDateTime,
) -> Result<bool> {
    if booking.status != BookingStatus::Pending {
        return Ok(false);
    }
    let rows = q!(
        c,
        query,
        &format!(
            "{LISTING_SELECT} WHERE event_id = $2 AND booking_id = $1
             ORDER BY listing_id FOR UPDATE"
        ),
        &booking.id.0,
        &booking.event_id.0
    )?;
    let listings: Vec<Listing> = rows.iter().map(listing_row).collect::<Result<_>>()?;
    let cancelled: bool = q!(
        c,
        query_one,
        "SELECT cancelled_at IS NOT NULL FROM events WHERE event_id = $1",
        &booking.event_id.0
    )?
    .get(0);
    // The tickets must still be on sale (not used at the door meanwhile): checked under
    // their row locks before anything is written.
    let ticket_ids: Vec<Uuid> = listings.iter().map(|l| l.ticket_id.0).collect();
    let still_listed: i64 = q!(
        c,
        query_one,
        "SELECT count(*) FROM (SELECT 1 FROM tickets
                               WHERE event_id = $2 AND ticket_id = ANY($1)
                                 AND status = 'LISTED'
                               FOR UPDATE) t",
        &ticket_ids,
        &booking.event_id.0
    )?
    .get(0);
    if cancelled
        || listings.len() != booking.seats.len()
        || listings.iter().any(|l| l.status != ListingStatus::Reserved)
        || still_listed as usize != listings.len()
    {
        // The listings went (withdrawn at the door, event cancelled): the booking ends here
        // and the caller voids the payment.
        crate::booking::end_booking(
            c,
            booking.event_id,
            booking.id,
            BookingStatus::Pending,
            BookingStatus::Expired,
            now,
        )
        .await?;
        return Ok(false);
    }
    let starts_at: OffsetDateTime = q!(
        c,
        query_one,
        "SELECT starts_at FROM events WHERE event_id = $1",
        &booking.event_id.0
    )?
    .get(0);
    for l in &listings {
        let t = tickets
            .iter()
            .find(|t| t.seat_id == l.seat_id)
            .ok_or_else(|| StoreError::Internal("no ticket for a listed seat".into()))?;
        let reissued = q!(
            c,
            execute,
            "UPDATE tickets SET status = 'REISSUED', reissued_at = $2
             WHERE event_id = $3 AND ticket_id = $1 AND status = 'LISTED'",
            &l.ticket_id.0,
            &now,
            &booking.event_id.0
        )?;
        if reissued != 1 {
            return Err(StoreError::Internal(format!(
                "listing {}: its ticket is not LISTED",
                l.id
            )));
        }
        q!(
            c,
            execute,
            "WITH t AS (
                 INSERT INTO tickets (ticket_id, event_id, booking_id, seat_id, customer_id,
                     status, token, issued_at, replaces)
                 VALUES ($1, $2, $3, $4, $5, 'VALID', $6, $7, $8) RETURNING 1),
             s AS (UPDATE seats SET booking_id = $3, version = version + 1
                   WHERE event_id = $2 AND seat_id = $4 AND state = 'SOLD' RETURNING 1),
             l AS (UPDATE listings SET status = 'SOLD', reserved_until = NULL, updated_at = $7
                   WHERE event_id = $2 AND listing_id = $9 RETURNING 1),
             p AS (INSERT INTO payouts (payout_id, event_id, listing_id, seller_id, amount_cents,
                       currency, status, available_at, created_at, updated_at)
                   VALUES ($10, $2, $9, $11, $12, $13, 'SCHEDULED', $14, $7, $7) RETURNING 1)
             SELECT (SELECT count(*) FROM s)",
            &t.id.0,
            &booking.event_id.0,
            &booking.id.0,
            &l.seat_id.as_str(),
            &booking.customer.as_str(),
            &t.token,
            &now,
            &l.ticket_id.0,
            &l.id.0,
            &PayoutId::new_in(booking.event_id.slot()).0,
            &l.seller.as_str(),
            &l.seller_proceeds_cents(),
            &l.currency.as_str(),
            &resale::payout_available_at(starts_at)
        )?;
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
    Ok(true)
}

const PAYOUT_SELECT: &str = "SELECT payout_id, event_id, listing_id, seller_id, amount_cents,
        currency, status, available_at, created_at
    FROM payouts";

fn payout_row(r: &Row) -> Result<Payout> {
    let currency: &str = r.get(5);
    Ok(Payout {
        id: PayoutId(r.get(0)),
        event_id: EventId(r.get(1)),
        listing_id: ListingId(r.get(2)),
        seller: CustomerId::parse(r.get(3)).map_err(|_| corrupt("seller"))?,
        amount_cents: r.get(4),
        currency: currency.parse().map_err(|_| corrupt("currency"))?,
        status: PayoutStatus::parse(r.get(6)).ok_or_else(|| corrupt("payout status"))?,
        available_at: r.get(7),
        created_at: r.get(8),
    })
}

pub async fn payouts_of<C: Exec>(c: &C, seller: &CustomerId) -> Result<Vec<Payout>> {
    q!(
        c,
        query,
        &format!("/* fan-out */ {PAYOUT_SELECT} WHERE seller_id = $1 ORDER BY created_at DESC"),
        &seller.as_str()
    )?
    .iter()
    .map(payout_row)
    .collect()
}

pub async fn due_payouts<C: Exec>(c: &C, now: OffsetDateTime, limit: u32) -> Result<Vec<Payout>> {
    q!(
        c,
        query,
        &format!(
            "/* scan */ {PAYOUT_SELECT} WHERE status = 'SCHEDULED' AND available_at <= $1
             ORDER BY available_at LIMIT $2"
        ),
        &now,
        &i64::from(limit)
    )?
    .iter()
    .map(payout_row)
    .collect()
}

pub async fn mark_payout_paid<C: Exec>(
    c: &C,
    id: PayoutId,
    provider_ref: &str,
    now: OffsetDateTime,
) -> Result<bool> {
    let n = q!(
        c,
        execute,
        "/* by key */ UPDATE payouts SET status = 'PAID', provider_ref = $2, updated_at = $3
         WHERE payout_id = $1 AND status = 'SCHEDULED'",
        &id.0,
        &provider_ref,
        &now
    )?;
    Ok(n == 1)
}

/// Cancels an event: no more sales; open listings withdrawn; every confirmed booking
/// CANCELLED (`event-cancelled`) with its tickets VOID and its payment owed back
/// (REFUND_PENDING); holds ended; scheduled payouts clawed back. Returns the payments to refund.
/// Doing it again changes nothing more.
pub async fn cancel_event<C: Exec>(
    c: &C,
    event: EventId,
    now: OffsetDateTime,
) -> Result<Vec<Payment>> {
    q!(
        c,
        execute,
        // Only the first cancellation changes the event (and tells the search indexes).
        "WITH e AS (UPDATE events SET cancelled_at = $2, updated_at = $2
                    WHERE event_id = $1 AND cancelled_at IS NULL RETURNING 1)
         INSERT INTO outbox (event_id, kind, payload)
         SELECT $1, $3, '{}'::jsonb WHERE EXISTS (SELECT 1 FROM e)",
        &event.0,
        &now,
        &boxoffice_domain::ports::change::EVENT_CHANGED
    )?;
    let open = q!(
        c,
        query,
        &format!(
            "{LISTING_SELECT} WHERE event_id = $1 AND status IN ('ACTIVE', 'RESERVED')
             ORDER BY listing_id FOR UPDATE"
        ),
        &event.0
    )?;
    for l in open.iter().map(listing_row) {
        close_listing(c, &l?, now).await?;
    }
    q!(
        c,
        execute,
        "WITH p AS (UPDATE payouts SET status = 'CLAWED_BACK', updated_at = $2
                    WHERE event_id = $1 AND status = 'SCHEDULED' RETURNING 1)
         UPDATE transfers SET status = 'EXPIRED', updated_at = $2
         WHERE event_id = $1 AND status = 'PENDING'",
        &event.0,
        &now
    )?;
    // Holds end at once; confirmed bookings are voided and refunded.
    let holds = q!(
        c,
        query,
        "SELECT booking_id FROM bookings WHERE event_id = $1 AND status = 'HOLD' FOR UPDATE",
        &event.0
    )?;
    for r in holds {
        crate::booking::end_booking(
            c,
            event,
            BookingId(r.get(0)),
            BookingStatus::Hold,
            BookingStatus::Cancelled,
            now,
        )
        .await?;
    }
    let confirmed = q!(
        c,
        query,
        "SELECT booking_id FROM bookings WHERE event_id = $1 AND status = 'CONFIRMED'
         ORDER BY booking_id FOR UPDATE",
        &event.0
    )?;
    for r in confirmed {
        let b = must_load(c, event, BookingId(r.get(0))).await?;
        crate::booking::void_confirmed(c, &b, Some("event-cancelled"), now).await?;
    }
    let owed = q!(
        c,
        query,
        "UPDATE payments p SET status = 'REFUND_PENDING', updated_at = $2
         FROM bookings b
         WHERE p.event_id = $1 AND b.event_id = $1 AND b.booking_id = p.booking_id
           AND b.status = 'CANCELLED' AND b.status_reason = 'event-cancelled'
           AND p.status IN ('AUTHORIZED', 'CAPTURED')
         RETURNING p.payment_id",
        &event.0,
        &now
    )?;
    let mut out = Vec::new();
    for r in owed {
        let key = boxoffice_domain::booking::PaymentKey {
            event_id: event,
            id: boxoffice_domain::ids::PaymentId(r.get(0)),
        };
        if let Some(p) = crate::booking::payment_in(c, key, false).await? {
            debug_assert_eq!(p.status, PaymentStatus::RefundPending);
            out.push(p);
        }
    }
    Ok(out)
}

pub async fn cancelled_events<C: Exec>(c: &C, since: OffsetDateTime) -> Result<Vec<EventId>> {
    Ok(q!(
        c,
        query,
        "/* scan */ SELECT event_id FROM events
         WHERE cancelled_at IS NOT NULL AND cancelled_at >= $1",
        &since
    )?
    .iter()
    .map(|r| EventId(r.get(0)))
    .collect())
}
