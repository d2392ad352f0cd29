//! Events, venues, sections and seat maps.

use crate::exec::Exec;
use boxoffice_domain::event::{Category, Event, EventSpec, Policies, Section, SectionKind, Venue};
use boxoffice_domain::ids::{CustomerId, EventId, SeatId};
use boxoffice_domain::money::PriceCents;
use boxoffice_domain::ports::{SeatMap, StoreError, change};
use boxoffice_domain::seat::SeatState;
use time::OffsetDateTime;

use crate::{corrupt, pg_error};

/// Inserts events with their venues, sections, optionally their seats, and one outbox row
/// each, as a handful of set-based statements whatever the number of events.
pub async fn insert_events<C: Exec>(
    c: &C,
    events: &[Event],
    lay_out: bool,
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut venue_ids = Vec::with_capacity(events.len());
    let (mut v_name, mut v_addr, mut v_city, mut v_zip, mut v_country, mut v_lat, mut v_lon) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut event_ids = Vec::with_capacity(events.len());
    let (mut organizer, mut name, mut performers, mut category, mut description) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut starts, mut on_sale, mut currency, mut created) = (vec![], vec![], vec![], vec![]);
    let (mut max_tickets, mut refund_hours, mut resale_pct) = (vec![], vec![], vec![]);
    let mut rooms: Vec<Option<serde_json::Value>> = Vec::with_capacity(events.len());
    for e in events {
        let s = &e.spec;
        let v = &s.venue;
        venue_ids.push(v.key());
        v_name.push(v.name.as_str());
        v_addr.push(v.address.as_str());
        v_city.push(v.city.as_str());
        v_zip.push(v.zip_code.as_str());
        v_country.push(v.country.as_str());
        v_lat.push(v.lat);
        v_lon.push(v.lon);
        event_ids.push(e.id.0);
        organizer.push(e.organizer.as_str());
        name.push(s.name.as_str());
        performers.push(serde_json::json!(s.performers));
        category.push(s.category.as_str());
        description.push(s.description.as_str());
        starts.push(s.starts_at);
        on_sale.push(s.on_sale_at);
        currency.push(s.currency.as_str());
        created.push(e.created_at);
        max_tickets.push(s.policies.max_tickets_per_customer as i32);
        refund_hours.push(s.policies.refund_window_hours as i32);
        resale_pct.push(s.policies.resale_max_price_percent as i32);
        rooms.push(waiting_room_json(&s.policies));
    }
    c.execute(
        "INSERT INTO venues (venue_id, name, address, city, zip_code, country, lat, lon)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                              $6::text[], $7::float8[], $8::float8[])
         ON CONFLICT DO NOTHING",
        &[
            &venue_ids, &v_name, &v_addr, &v_city, &v_zip, &v_country, &v_lat, &v_lon,
        ],
    )
    .await
    .map_err(pg_error)?;
    let inserted: std::collections::HashSet<uuid::Uuid> = c
        .query(
            "INSERT INTO events (event_id, organizer_id, venue_id, name, performers, category,
            description, starts_at, on_sale_at, currency, max_tickets_per_customer,
            refund_window_hours, resale_max_price_percent, seats_laid_out, created_at,
            updated_at, waiting_room)
         SELECT e, o, v, n, p, c, d, s, os, cur, m, r, rp, $14, cr, cr, wr
         FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::jsonb[], $6::text[],
                     $7::text[], $8::timestamptz[], $9::timestamptz[], $10::text[],
                     $11::int4[], $12::int4[], $13::int4[], $15::timestamptz[], $16::jsonb[])
              AS t(e, o, v, n, p, c, d, s, os, cur, m, r, rp, cr, wr)
         ON CONFLICT (event_id) DO NOTHING
         RETURNING event_id",
            &[
                &event_ids,
                &organizer,
                &venue_ids,
                &name,
                &performers,
                &category,
                &description,
                &starts,
                &on_sale,
                &currency,
                &max_tickets,
                &refund_hours,
                &resale_pct,
                &lay_out,
                &created,
                &rooms,
            ],
        )
        .await
        .map_err(pg_error)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if inserted.len() == events.len() {
        return insert_dependents(c, events, lay_out).await;
    }
    // Some ids were stored already: those events stay as they are.
    let fresh: Vec<Event> = events
        .iter()
        .filter(|e| inserted.contains(&e.id.0))
        .cloned()
        .collect();
    insert_dependents(c, &fresh, lay_out).await
}

/// Sections, seats and outbox rows of events just inserted.
async fn insert_dependents<C: Exec>(
    c: &C,
    events: &[Event],
    lay_out: bool,
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let event_ids: Vec<uuid::Uuid> = events.iter().map(|e| e.id.0).collect();
    let (mut s_event, mut s_no, mut s_name, mut s_kind, mut s_rows, mut s_per_row) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut s_cap, mut s_price) = (vec![], vec![]);
    for e in events {
        for sec in &e.spec.sections {
            let (kind, rows, per_row) = match sec.kind {
                SectionKind::Seated {
                    rows,
                    seats_per_row,
                } => ("SEATED", Some(rows as i32), Some(seats_per_row as i32)),
                SectionKind::GeneralAdmission { .. } => ("GA", None, None),
            };
            s_event.push(e.id.0);
            s_no.push(sec.number as i16);
            s_name.push(sec.name.as_str());
            s_kind.push(kind);
            s_rows.push(rows);
            s_per_row.push(per_row);
            s_cap.push(sec.kind.capacity() as i32);
            s_price.push(sec.price.cents());
        }
    }
    c.execute(
        "INSERT INTO sections (event_id, section_no, name, kind, rows, seats_per_row, capacity,
            price_cents)
         SELECT * FROM unnest($1::uuid[], $2::int2[], $3::text[], $4::text[], $5::int4[],
                              $6::int4[], $7::int4[], $8::int8[])",
        &[
            &s_event, &s_no, &s_name, &s_kind, &s_rows, &s_per_row, &s_cap, &s_price,
        ],
    )
    .await
    .map_err(pg_error)?;
    if lay_out {
        for e in events {
            lay_out_seats(c, e).await?;
        }
    }
    c.execute(
        "INSERT INTO outbox (event_id, kind, payload)
         SELECT e, $2, '{}'::jsonb FROM unnest($1::uuid[]) AS t(e)",
        &[&event_ids, &change::EVENT_CHANGED],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

/// Writes one row per seat of the event, in one statement.
pub async fn lay_out_seats<C: Exec>(c: &C, e: &Event) -> Result<(), StoreError> {
    let capacity = e.spec.capacity() as usize;
    let mut seat_id = Vec::with_capacity(capacity);
    let mut section = Vec::with_capacity(capacity);
    let mut row_index = Vec::with_capacity(capacity);
    let mut row_label = Vec::with_capacity(capacity);
    let mut number = Vec::with_capacity(capacity);
    let mut price = Vec::with_capacity(capacity);
    for sec in &e.spec.sections {
        for s in sec.seats() {
            seat_id.push(s.id.as_str().to_owned());
            section.push(s.section as i16);
            row_index.push(s.row_index as i32);
            row_label.push(s.row);
            number.push(s.number as i32);
            price.push(s.price.cents());
        }
    }
    c.execute(
        "INSERT INTO seats (event_id, seat_id, section_no, row_index, row_label, number,
            price_cents)
         SELECT $1, * FROM unnest($2::text[], $3::int2[], $4::int4[], $5::text[], $6::int4[],
                                  $7::int8[])",
        &[
            &e.id.0, &seat_id, &section, &row_index, &row_label, &number, &price,
        ],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

pub async fn load_event<C: Exec>(c: &C, event_id: EventId) -> Result<Option<Event>, StoreError> {
    let stmt = "SELECT e.organizer_id, e.name, e.performers, e.category, e.description,
                e.starts_at, e.on_sale_at, e.currency, e.max_tickets_per_customer,
                e.refund_window_hours, e.resale_max_price_percent, e.created_at,
                v.name, v.address, v.city, v.zip_code, v.country, v.lat, v.lon, e.cancelled_at,
                e.waiting_room
             FROM events e JOIN venues v ON v.venue_id = e.venue_id
             WHERE e.event_id = $1";
    let Some(r) = c.query_opt(stmt, &[&event_id.0]).await.map_err(pg_error)? else {
        return Ok(None);
    };
    let sections_stmt = "SELECT section_no, name, kind, rows, seats_per_row, capacity, price_cents
             FROM sections WHERE event_id = $1 ORDER BY section_no";
    let sections = c
        .query(sections_stmt, &[&event_id.0])
        .await
        .map_err(pg_error)?
        .iter()
        .map(|s| {
            let kind: &str = s.get(2);
            let kind = match kind {
                "SEATED" => SectionKind::Seated {
                    rows: s.get::<_, i32>(3) as u32,
                    seats_per_row: s.get::<_, i32>(4) as u32,
                },
                _ => SectionKind::GeneralAdmission {
                    capacity: s.get::<_, i32>(5) as u32,
                },
            };
            Ok(Section {
                number: s.get::<_, i16>(0) as u16,
                name: s.get(1),
                kind,
                price: PriceCents::new(s.get(6)).map_err(|_| corrupt("price"))?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let performers: serde_json::Value = r.get(2);
    let currency: &str = r.get(7);
    Ok(Some(Event {
        id: event_id,
        organizer: CustomerId::parse(r.get(0)).map_err(|_| corrupt("organizer"))?,
        created_at: r.get(11),
        spec: EventSpec {
            name: r.get(1),
            performers: serde_json::from_value(performers).map_err(|_| corrupt("performers"))?,
            category: Category::parse(r.get(3)).map_err(|_| corrupt("category"))?,
            description: r.get(4),
            starts_at: r.get(5),
            on_sale_at: r.get(6),
            currency: currency.parse().map_err(|_| corrupt("currency"))?,
            venue: Venue {
                name: r.get(12),
                address: r.get(13),
                city: r.get(14),
                zip_code: r.get(15),
                country: r.get(16),
                lat: r.get(17),
                lon: r.get(18),
            },
            sections,
            policies: Policies {
                max_tickets_per_customer: r.get::<_, i32>(8) as u32,
                refund_window_hours: r.get::<_, i32>(9) as u32,
                resale_max_price_percent: r.get::<_, i32>(10) as u32,
                waiting_room: waiting_room_from(r.get(20))?,
            },
        },
        cancelled_at: r.get(19),
    }))
}

pub async fn seat_map<C: Exec>(
    c: &C,
    event: &Event,
    now: OffsetDateTime,
) -> Result<SeatMap, StoreError> {
    let event_id = event.id;
    let laid_out: bool = c
        .query_one(
            "SELECT seats_laid_out FROM events WHERE event_id = $1",
            &[&event_id.0],
        )
        .await
        .map_err(pg_error)?
        .get(0);
    if !laid_out {
        return Ok(SeatMap::all_open(event, now));
    }
    let stmt = "SELECT seat_id, section_no, row_label, number, price_cents, state, hold_expires_at
             FROM seats WHERE event_id = $1";
    let rows = c.query(stmt, &[&event_id.0]).await.map_err(pg_error)?;
    let mut map = SeatMap::builder(event);
    for r in rows {
        map.push(
            SeatId::from_trusted(r.get(0)),
            r.get::<_, i16>(1) as u16,
            r.get(2),
            r.get::<_, i32>(3) as u32,
            PriceCents::new(r.get(4)).map_err(|_| corrupt("price"))?,
            SeatState::parse(r.get(5)).ok_or_else(|| corrupt("seat state"))?,
            r.get(6),
            now,
        );
    }
    map.sort();
    Ok(map)
}

/// An event's waiting-room policy as stored: JSON, or NULL for none.
pub(crate) fn waiting_room_json(p: &Policies) -> Option<serde_json::Value> {
    p.waiting_room
        .as_ref()
        .and_then(|r| serde_json::to_value(r).ok())
}

pub(crate) fn waiting_room_from(
    v: Option<serde_json::Value>,
) -> Result<Option<boxoffice_domain::event::WaitingRoom>, StoreError> {
    v.map(serde_json::from_value)
        .transpose()
        .map_err(|_| corrupt("waiting room"))
}
