//! Events, venues, sections and seat maps.

use boxoffice_domain::event::{Category, Event, EventSpec, Policies, Section, SectionKind, Venue};
use boxoffice_domain::ids::{CustomerId, EventId, SeatId};
use boxoffice_domain::money::PriceCents;
use boxoffice_domain::ports::{SeatMap, StoreError};
use boxoffice_domain::seat::SeatState;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use time::OffsetDateTime;

use crate::codec::{corrupt, from_ts, id, store_error, ts};

/// Inserts an event unless its id exists; returns whether it was inserted.
pub fn insert_event(tx: &Transaction<'_>, e: &Event, lay_out: bool) -> Result<bool, StoreError> {
    let s = &e.spec;
    let v = &s.venue;
    let venue_id = v.key();
    let performers = serde_json::to_string(&s.performers)
        .map_err(|err| StoreError::Internal(format!("encoding performers: {err}")))?;
    (|| -> rusqlite::Result<bool> {
        tx.prepare_cached(
            "INSERT INTO venues (venue_id, name, address, city, zip_code, country, lat, lon)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            id(venue_id),
            v.name,
            v.address,
            v.city,
            v.zip_code,
            v.country,
            v.lat,
            v.lon
        ])?;
        let inserted = tx.prepare_cached(
            "INSERT OR IGNORE INTO events (event_id, organizer_id, venue_id, name, performers, category,
                description, starts_at, on_sale_at, currency, max_tickets_per_customer,
                refund_window_hours, resale_max_price_percent, seats_laid_out, created_at,
                updated_at, waiting_room)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15, ?16)",
        )?
        .execute(params![
            id(e.id.0),
            e.organizer.as_str(),
            id(venue_id),
            s.name,
            performers,
            s.category.as_str(),
            s.description,
            ts(s.starts_at),
            ts(s.on_sale_at),
            s.currency.as_str(),
            s.policies.max_tickets_per_customer,
            s.policies.refund_window_hours,
            s.policies.resale_max_price_percent,
            lay_out,
            ts(e.created_at),
            waiting_room_json(&s.policies),
        ])?;
        if inserted == 0 {
            return Ok(false);
        }
        let mut ins = tx.prepare_cached(
            "INSERT INTO sections (event_id, section_no, name, kind, rows, seats_per_row,
                capacity, price_cents)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for sec in &s.sections {
            let (kind, rows, per_row) = match sec.kind {
                SectionKind::Seated {
                    rows,
                    seats_per_row,
                } => ("SEATED", Some(rows), Some(seats_per_row)),
                SectionKind::GeneralAdmission { .. } => ("GA", None, None),
            };
            ins.execute(params![
                id(e.id.0),
                sec.number,
                sec.name,
                kind,
                rows,
                per_row,
                sec.kind.capacity(),
                sec.price.cents()
            ])?;
        }
        if lay_out {
            lay_out_seats(tx, e)?;
        }
        tx.prepare_cached(
            "INSERT INTO outbox (event_id, kind, payload, created_at) VALUES (?1, ?2, '{}', ?3)",
        )?
        .execute(params![
            id(e.id.0),
            boxoffice_domain::ports::change::EVENT_CHANGED,
            ts(e.created_at)
        ])?;
        Ok(true)
    })()
    .map_err(store_error)
}

/// Writes one row per seat of the event.
pub fn lay_out_seats(tx: &Transaction<'_>, e: &Event) -> rusqlite::Result<()> {
    let mut ins = tx.prepare_cached(
        "INSERT INTO seats (event_id, seat_id, section_no, row_index, row_label, number,
            price_cents)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let event_id = id(e.id.0);
    for sec in &e.spec.sections {
        for seat in sec.seats() {
            ins.execute(params![
                event_id,
                seat.id.as_str(),
                seat.section,
                seat.row_index,
                seat.row,
                seat.number,
                seat.price.cents()
            ])?;
        }
    }
    Ok(())
}

pub fn load_event(c: &Connection, event_id: EventId) -> rusqlite::Result<Option<Event>> {
    let row = c
        .prepare_cached(
            "SELECT e.organizer_id, e.name, e.performers, e.category, e.description,
                e.starts_at, e.on_sale_at, e.currency, e.max_tickets_per_customer,
                e.refund_window_hours, e.resale_max_price_percent, e.created_at,
                v.name, v.address, v.city, v.zip_code, v.country, v.lat, v.lon, e.cancelled_at,
                e.waiting_room
             FROM events e JOIN venues v ON v.venue_id = e.venue_id
             WHERE e.event_id = ?1",
        )?
        .query_row([id(event_id.0)], |r| {
            let performers: String = r.get(2)?;
            let category: String = r.get(3)?;
            let currency: String = r.get(7)?;
            let organizer: String = r.get(0)?;
            Ok((
                EventRow {
                    organizer: CustomerId::parse(&organizer).map_err(|e| corrupt(e.to_string()))?,
                    name: r.get(1)?,
                    performers: serde_json::from_str(&performers)
                        .map_err(|e| corrupt(e.to_string()))?,
                    category: Category::parse(&category).map_err(|e| corrupt(e.to_string()))?,
                    description: r.get(4)?,
                    starts_at: from_ts(r.get(5)?)?,
                    on_sale_at: from_ts(r.get(6)?)?,
                    currency: currency.parse().map_err(|_| corrupt("currency"))?,
                    policies: Policies {
                        max_tickets_per_customer: r.get(8)?,
                        refund_window_hours: r.get(9)?,
                        resale_max_price_percent: r.get(10)?,
                        waiting_room: r
                            .get::<_, Option<String>>(20)?
                            .map(|j| serde_json::from_str(&j))
                            .transpose()
                            .map_err(|e| corrupt(e.to_string()))?,
                    },
                    created_at: from_ts(r.get(11)?)?,
                },
                Venue {
                    name: r.get(12)?,
                    address: r.get(13)?,
                    city: r.get(14)?,
                    zip_code: r.get(15)?,
                    country: r.get(16)?,
                    lat: r.get(17)?,
                    lon: r.get(18)?,
                },
                r.get::<_, Option<i64>>(19)?.map(from_ts).transpose()?,
            ))
        })
        .optional()?;
    let Some((row, venue, cancelled_at)) = row else {
        return Ok(None);
    };
    let mut stmt = c.prepare_cached(
        "SELECT section_no, name, kind, rows, seats_per_row, capacity, price_cents
         FROM sections WHERE event_id = ?1 ORDER BY section_no",
    )?;
    let sections = stmt
        .query_map([id(event_id.0)], |r| {
            let kind: String = r.get(2)?;
            let kind = match kind.as_str() {
                "SEATED" => SectionKind::Seated {
                    rows: r.get(3)?,
                    seats_per_row: r.get(4)?,
                },
                _ => SectionKind::GeneralAdmission {
                    capacity: r.get(5)?,
                },
            };
            Ok(Section {
                number: r.get(0)?,
                name: r.get(1)?,
                kind,
                price: PriceCents::new(r.get(6)?).map_err(|_| corrupt("price"))?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some(Event {
        id: event_id,
        organizer: row.organizer,
        created_at: row.created_at,
        spec: EventSpec {
            name: row.name,
            performers: row.performers,
            category: row.category,
            description: row.description,
            starts_at: row.starts_at,
            on_sale_at: row.on_sale_at,
            currency: row.currency,
            venue,
            sections,
            policies: row.policies,
        },
        cancelled_at,
    }))
}

struct EventRow {
    organizer: CustomerId,
    name: String,
    performers: Vec<String>,
    category: Category,
    description: String,
    starts_at: OffsetDateTime,
    on_sale_at: OffsetDateTime,
    currency: boxoffice_domain::money::Currency,
    policies: Policies,
    created_at: OffsetDateTime,
}

pub fn seat_map(c: &Connection, event: &Event, now: OffsetDateTime) -> rusqlite::Result<SeatMap> {
    let event_id = event.id;
    let laid_out: bool = c
        .prepare_cached("SELECT seats_laid_out FROM events WHERE event_id = ?1")?
        .query_row([id(event_id.0)], |r| r.get(0))?;
    if !laid_out {
        return Ok(SeatMap::all_open(event, now));
    }
    let mut map = SeatMap::builder(event);
    let mut stmt = c.prepare_cached(
        "SELECT seat_id, section_no, row_label, number, price_cents, state, hold_expires_at
         FROM seats WHERE event_id = ?1",
    )?;
    let mut rows = stmt.query([id(event_id.0)])?;
    while let Some(r) = rows.next()? {
        let state: String = r.get(5)?;
        let expires: Option<i64> = r.get(6)?;
        map.push(
            SeatId::from_trusted(r.get(0)?),
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            PriceCents::new(r.get(4)?).map_err(|_| corrupt("price"))?,
            SeatState::parse(&state).ok_or_else(|| corrupt("seat state"))?,
            expires.map(from_ts).transpose()?,
            now,
        );
    }
    map.sort();
    Ok(map)
}

/// An event's waiting-room policy as stored: JSON, or NULL for none.
fn waiting_room_json(p: &Policies) -> Option<String> {
    p.waiting_room
        .as_ref()
        .and_then(|r| serde_json::to_string(r).ok())
}
