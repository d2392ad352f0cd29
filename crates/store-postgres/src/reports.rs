//! Reads for the organizer's pages: their events, and what an event has sold.

use crate::exec::Exec;
use boxoffice_domain::ids::{CustomerId, EventId};
use boxoffice_domain::ports::{EventSales, StoreError};

type Result<T, E = StoreError> = std::result::Result<T, E>;

pub async fn organizer_events<C: Exec>(
    c: &C,
    organizer: &CustomerId,
    limit: u32,
) -> Result<Vec<EventId>> {
    Ok(q!(
        c,
        query,
        "/* fan-out */ SELECT event_id FROM events WHERE organizer_id = $1
         ORDER BY starts_at DESC, event_id LIMIT $2",
        &organizer.as_str(),
        &i64::from(limit)
    )?
    .iter()
    .map(|r| EventId(r.get(0)))
    .collect())
}

pub async fn event_sales<C: Exec>(c: &C, event: EventId) -> Result<EventSales> {
    let r = q!(
        c,
        query_one,
        "SELECT
            (SELECT count(*) FROM bookings
              WHERE event_id = $1 AND status = 'CONFIRMED' AND listing_id IS NULL)::int8,
            (SELECT coalesce(sum(p.amount_cents), 0) FROM bookings b
               JOIN payments p ON p.booking_id = b.booking_id
              WHERE b.event_id = $1 AND b.listing_id IS NULL AND p.status = 'CAPTURED')::int8,
            (SELECT count(*) FROM listings WHERE event_id = $1 AND status = 'SOLD')::int8,
            (SELECT coalesce(sum(price_cents), 0) FROM listings
              WHERE event_id = $1 AND status = 'SOLD')::int8,
            (SELECT coalesce(sum(fee_cents), 0) FROM listings
              WHERE event_id = $1 AND status = 'SOLD')::int8",
        &event.0
    )?;
    Ok(EventSales {
        bookings: r.get::<_, i64>(0).max(0) as u64,
        revenue_cents: r.get(1),
        resales: r.get::<_, i64>(2).max(0) as u64,
        resale_volume_cents: r.get(3),
        resale_fees_cents: r.get(4),
    })
}
