//! Reads for the organizer's pages: their events, and what an event has sold.

use boxoffice_domain::ids::{CustomerId, EventId};
use boxoffice_domain::ports::EventSales;
use rusqlite::Connection;

use crate::codec::{id, uuid_from};

pub fn organizer_events(
    c: &Connection,
    organizer: &CustomerId,
    limit: u32,
) -> rusqlite::Result<Vec<EventId>> {
    let mut stmt = c.prepare_cached(
        "SELECT event_id FROM events WHERE organizer_id = ?1
         ORDER BY starts_at DESC, event_id LIMIT ?2",
    )?;
    stmt.query_map(rusqlite::params![organizer.as_str(), limit], |r| {
        Ok(EventId(uuid_from(r.get(0)?)?))
    })?
    .collect()
}

pub fn event_sales(c: &Connection, event: EventId) -> rusqlite::Result<EventSales> {
    c.prepare_cached(
        "SELECT
            (SELECT count(*) FROM bookings
              WHERE event_id = ?1 AND status = 'CONFIRMED' AND listing_id IS NULL),
            (SELECT coalesce(sum(p.amount_cents), 0) FROM bookings b
               JOIN payments p ON p.booking_id = b.booking_id
              WHERE b.event_id = ?1 AND b.listing_id IS NULL AND p.status = 'CAPTURED'),
            (SELECT count(*) FROM listings WHERE event_id = ?1 AND status = 'SOLD'),
            (SELECT coalesce(sum(price_cents), 0) FROM listings WHERE event_id = ?1 AND status = 'SOLD'),
            (SELECT coalesce(sum(fee_cents), 0) FROM listings WHERE event_id = ?1 AND status = 'SOLD')",
    )?
    .query_row([id(event.0)], |r| {
        Ok(EventSales {
            bookings: r.get::<_, i64>(0)?.max(0) as u64,
            revenue_cents: r.get(1)?,
            resales: r.get::<_, i64>(2)?.max(0) as u64,
            resale_volume_cents: r.get(3)?,
            resale_fees_cents: r.get(4)?,
        })
    })
}
