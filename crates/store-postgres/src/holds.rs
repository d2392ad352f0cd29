//! Holds written a group at a time (see [`crate::group`]): concurrent holds share one
//! transaction of a few set-based statements instead of five statements and a transaction
//! each.
//!
//! The group keeps the single path's rules and its lock order (a customer's counter row, then
//! seats): it counts every customer's places in one statement (their counter rows locked in
//! (event, customer) order, so groups on different nodes cannot deadlock), then locks the seats
//! each request will get with `SKIP LOCKED` (it never waits for a seat), then writes the seats,
//! the bookings and one availability change per event in one statement.
//!
//! Only the plain case is written here. A request is left to [`booking::hold`] on its own —
//! with everything as it found it, its counted places given back — whenever the single path
//! might answer anything but "held": a resale, a second request of the same customer for the
//! same event, a limit passed (counting lapsed holds not yet swept), a cancelled
//! event, a seat missing, taken or locked by someone else, a seated pick that finds too few
//! free seats, or a general-admission section that has run out of open places (the single
//! path then also looks at lapsed holds).

use std::collections::{BTreeMap, HashMap, HashSet};

use boxoffice_domain::booking::{Booking, HoldRequest, Pick, Selection, candidate_windows, pick};
use boxoffice_domain::event::SectionKind;
use boxoffice_domain::ids::BookingId;
use boxoffice_domain::ports::{StoreError, change};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::booking::{Taken, answers, delta_payload, firsts, held_booking};
use crate::exec::Exec;

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Returns, for each request in order, the booking it now holds, or `None` for a request left
/// to [`booking::hold`] on its own. An error means nothing was written: every request goes
/// alone.
///
/// [`booking::hold`]: crate::booking::hold
pub async fn holds<C: Exec>(c: &C, reqs: &[HoldRequest]) -> Result<Vec<Option<Booking>>> {
    // One request per customer and event: the second one's limit depends on the first.
    let mut customers = HashSet::new();
    let mut bookings = HashSet::new();
    let (in_group, tried) = firsts(reqs, |r| {
        plain(r)
            && customers.insert((r.event_id(), r.customer.as_str()))
            && bookings.insert(r.booking_id)
    });
    let counted = count_places(c, &tried).await?;
    let placed = place(c, &counted).await?;
    let seated: HashSet<BookingId> = placed.iter().map(|(r, _)| r.booking_id).collect();
    let unplaced: Vec<&HoldRequest> = counted
        .iter()
        .filter(|r| !seated.contains(&r.booking_id))
        .copied()
        .collect();
    give_back(c, &unplaced).await?;
    let written = write_holds(c, &placed).await?;
    Ok(answers(reqs, &in_group, written, |r| r.booking_id))
}

/// Whether a request may be tried in a group at all.
fn plain(r: &HoldRequest) -> bool {
    match &r.selection {
        Selection::Seats(ids) => {
            let distinct: HashSet<&str> = ids.iter().map(|s| s.as_str()).collect();
            !ids.is_empty() && distinct.len() == ids.len()
        }
        Selection::BestAvailable { section, quantity } => {
            *quantity > 0 && r.event.spec.section(*section).is_some()
        }
        Selection::Listings(_) => false,
    }
}

/// Adds each request's places to its customer's counter where that stays within the event's
/// limit and the event is not cancelled; returns the requests counted, in order. The counter
/// rows stay locked until the group ends.
///
/// The customer's lapsed holds still count here (the sweeper ends them and gives their places
/// back). The single path ends them first so that they do not count against the limit; that
/// matters only to a request the limit would refuse, and such a request is not counted here and
/// goes alone. Their seats are free to everyone meanwhile, as lapsed holds always are.
async fn count_places<'a, C: Exec>(
    c: &C,
    tried: &[&'a HoldRequest],
) -> Result<Vec<&'a HoldRequest>> {
    if tried.is_empty() {
        return Ok(Vec::new());
    }
    // Counter rows are locked in (event, customer) order, the same in every group.
    let mut order = tried.to_vec();
    order.sort_by(|a, b| {
        (a.event_id().0, a.customer.as_str()).cmp(&(b.event_id().0, b.customer.as_str()))
    });
    let rows = q!(
        c,
        query,
        "/* grouped */ INSERT INTO customer_event_tickets AS c (event_id, customer_id, tickets)
         SELECT x.ev, x.cust, x.n
         FROM unnest($1::uuid[], $2::text[], $3::int4[], $4::int4[], $5::timestamptz[])
             WITH ORDINALITY AS x(ev, cust, n, mx, now, i)
         WHERE x.n <= x.mx
           AND NOT EXISTS (SELECT 1 FROM events e
                           WHERE e.event_id = x.ev AND e.cancelled_at IS NOT NULL)
         ORDER BY x.i
         ON CONFLICT (event_id, customer_id) DO UPDATE SET tickets = c.tickets + excluded.tickets
         WHERE c.tickets + excluded.tickets <= (
             SELECT m.mx FROM unnest($1::uuid[], $4::int4[]) AS m(ev, mx)
             WHERE m.ev = c.event_id LIMIT 1)
         RETURNING event_id, customer_id",
        &order.iter().map(|r| r.event_id().0).collect::<Vec<_>>(),
        &order
            .iter()
            .map(|r| r.customer.as_str())
            .collect::<Vec<_>>(),
        &order
            .iter()
            .map(|r| r.selection.quantity() as i32)
            .collect::<Vec<_>>(),
        &order
            .iter()
            .map(|r| r.max_tickets_per_customer() as i32)
            .collect::<Vec<_>>(),
        &order.iter().map(|r| r.now).collect::<Vec<_>>()
    )?;
    let got: HashSet<(Uuid, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    Ok(tried
        .iter()
        .filter(|r| got.contains(&(r.event_id().0, r.customer.as_str().to_owned())))
        .copied()
        .collect())
}

/// Takes the counted places back from the customers of requests that got no seats here.
async fn give_back<C: Exec>(c: &C, reqs: &[&HoldRequest]) -> Result<()> {
    if reqs.is_empty() {
        return Ok(());
    }
    q!(
        c,
        execute,
        "/* grouped */ UPDATE customer_event_tickets c SET tickets = c.tickets - x.n
         FROM unnest($1::uuid[], $2::text[], $3::int4[]) AS x(ev, cust, n)
         WHERE c.customer_id = ANY($2) AND c.event_id = x.ev AND c.customer_id = x.cust",
        &reqs.iter().map(|r| r.event_id().0).collect::<Vec<_>>(),
        &reqs.iter().map(|r| r.customer.as_str()).collect::<Vec<_>>(),
        &reqs
            .iter()
            .map(|r| r.selection.quantity() as i32)
            .collect::<Vec<_>>()
    )?;
    Ok(())
}

/// Finds and locks the seats of each counted request; returns the requests that got all
/// theirs, with them.
async fn place<'a, C: Exec>(
    c: &C,
    counted: &[&'a HoldRequest],
) -> Result<Vec<(&'a HoldRequest, Vec<Taken>)>> {
    // Requests by how their seats are found: named, picked with adjacency, or front first.
    let mut named: Vec<(&HoldRequest, Vec<String>)> = Vec::new();
    let mut seated: BTreeMap<(Uuid, i16), (u32, Vec<&HoldRequest>)> = BTreeMap::new();
    let mut fronts: BTreeMap<(Uuid, i16), Vec<&HoldRequest>> = BTreeMap::new();
    for &r in counted {
        match &r.selection {
            Selection::Seats(ids) => {
                named.push((r, ids.iter().map(|s| s.as_str().to_owned()).collect()));
            }
            Selection::BestAvailable { section, .. } => {
                let key = (r.event_id().0, *section as i16);
                match r.event.spec.section(*section).map(|s| &s.kind) {
                    Some(SectionKind::Seated { seats_per_row, .. }) => {
                        seated
                            .entry(key)
                            .or_insert((*seats_per_row, Vec::new()))
                            .1
                            .push(r);
                    }
                    Some(SectionKind::GeneralAdmission { .. }) => {
                        fronts.entry(key).or_default().push(r);
                    }
                    None => {}
                }
            }
            Selection::Listings(_) => {}
        }
    }
    named.extend(pick_seated(c, &seated).await?);
    let mut placed = lock_named(c, &named).await?;
    placed.extend(lock_fronts(c, &fronts).await?);
    Ok(placed)
}

/// Best-available picks in seated sections, made one request after another over one read of
/// each section's front-most free seats (no locks yet), as the single path makes one: first
/// over a small window of seats; the requests that found no adjacent block in it and would
/// look further back then share one wider read. A request that finds too few seats is left
/// out.
async fn pick_seated<'a, C: Exec>(
    c: &C,
    seated: &BTreeMap<(Uuid, i16), (u32, Vec<&'a HoldRequest>)>,
) -> Result<Vec<(&'a HoldRequest, Vec<String>)>> {
    let mut out = Vec::new();
    // Seats picked so far, per section: a later read finds them free still.
    let mut chosen: BTreeMap<(Uuid, i16), HashSet<String>> = BTreeMap::new();
    let mut todo = seated.clone();
    for wide in [false, true] {
        if todo.is_empty() {
            break;
        }
        // How many seats to read per section: the small windows of its requests added up;
        // when widening, the widest window asked, room for the picks before it and for
        // what was picked already.
        let windows: Vec<i64> = todo
            .iter()
            .map(|(key, (per_row, reqs))| {
                let sizes = reqs
                    .iter()
                    .map(|r| candidate_windows(r.selection.quantity(), *per_row));
                let taken = chosen.get(key).map_or(0, HashSet::len) as i64;
                if wide {
                    let widest = sizes.map(|w| i64::from(w.1)).max().unwrap_or(0);
                    let picks: i64 = reqs.iter().map(|r| i64::from(r.selection.quantity())).sum();
                    widest + picks + taken
                } else {
                    sizes.map(|w| i64::from(w.0)).sum::<i64>() + taken
                }
            })
            .collect();
        let free = read_front(c, &todo, &windows).await?;
        let mut widen: BTreeMap<(Uuid, i16), (u32, Vec<&HoldRequest>)> = BTreeMap::new();
        for (((key, (per_row, reqs)), free), read) in todo.iter().zip(free).zip(&windows) {
            let taken = chosen.entry(*key).or_default();
            // "More behind" holds while what is left of the window came back full.
            let full = free.len() as i64 == *read;
            let mut free: Vec<(String, u32, u32)> =
                free.into_iter().filter(|f| !taken.contains(&f.0)).collect();
            for &r in reqs {
                let quantity = r.selection.quantity();
                let positions: Vec<(u32, u32)> = free.iter().map(|f| (f.1, f.2)).collect();
                let window = if full { free.len() as u32 } else { u32::MAX };
                match pick(&positions, quantity, *per_row, window, wide) {
                    Pick::Take(mut found) => {
                        found.sort_unstable_by(|a, b| b.cmp(a));
                        let ids: Vec<String> =
                            found.into_iter().map(|i| free.remove(i).0).collect();
                        taken.extend(ids.iter().cloned());
                        out.push((r, ids));
                    }
                    Pick::Widen => widen
                        .entry(*key)
                        .or_insert((*per_row, Vec::new()))
                        .1
                        .push(r),
                    Pick::NotEnough => {} // alone, it is told how many are left
                }
            }
        }
        todo = widen;
    }
    Ok(out)
}

/// The front-most free seats (open, or held past their expiry) of each section, up to its
/// window, front first: (seat id, row index, number).
async fn read_front<C: Exec>(
    c: &C,
    sections: &BTreeMap<(Uuid, i16), (u32, Vec<&HoldRequest>)>,
    windows: &[i64],
) -> Result<Vec<Vec<(String, u32, u32)>>> {
    let now = sections
        .values()
        .flat_map(|(_, reqs)| reqs.iter().map(|r| r.now))
        .min();
    let rows = q!(
        c,
        query,
        "/* grouped */ SELECT x.i, f.seat_id, f.row_index, f.number
         FROM unnest($1::uuid[], $2::int2[], $3::int8[]) WITH ORDINALITY AS x(ev, sec, n, i)
         CROSS JOIN LATERAL (
             (SELECT seat_id, row_index, number FROM seats
              WHERE event_id = x.ev AND section_no = x.sec AND state = 'OPEN'
              ORDER BY row_index, number LIMIT x.n)
             UNION ALL
             (SELECT seat_id, row_index, number FROM seats
              WHERE event_id = x.ev AND section_no = x.sec AND state = 'HOLD'
                AND hold_expires_at <= $4
              ORDER BY row_index, number LIMIT x.n)
             ORDER BY row_index, number LIMIT x.n) f
         ORDER BY x.i, f.row_index, f.number",
        &sections.keys().map(|k| k.0).collect::<Vec<_>>(),
        &sections.keys().map(|k| k.1).collect::<Vec<_>>(),
        &windows,
        &now
    )?;
    Ok(per_section(&rows, sections.len(), |r| {
        (
            r.get(1),
            r.get::<_, i32>(2) as u32,
            r.get::<_, i32>(3) as u32,
        )
    }))
}

/// Rows of a per-section read (the section's 1-based position first), as one list per section.
fn per_section<T: Clone>(rows: &[Row], sections: usize, each: impl Fn(&Row) -> T) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = vec![Vec::new(); sections];
    for r in rows {
        let i = r.get::<_, i64>(0) as usize;
        if let Some(list) = i.checked_sub(1).and_then(|i| out.get_mut(i)) {
            list.push(each(r));
        }
    }
    out
}

/// Locks named seats that are free, skipping any another transaction has locked; a request
/// gets its seats only if it gets all of them (and no earlier request got one of them).
async fn lock_named<'a, C: Exec>(
    c: &C,
    named: &[(&'a HoldRequest, Vec<String>)],
) -> Result<Vec<(&'a HoldRequest, Vec<Taken>)>> {
    if named.is_empty() {
        return Ok(Vec::new());
    }
    let wanted: Vec<(usize, Uuid, &str, time::OffsetDateTime)> = named
        .iter()
        .enumerate()
        .flat_map(|(i, (r, ids))| {
            ids.iter()
                .map(move |s| (i, r.event_id().0, s.as_str(), r.now))
        })
        .collect();
    let rows = q!(
        c,
        query,
        "/* grouped */ SELECT x.i, s.seat_id, s.section_no, s.price_cents, s.state = 'OPEN'
         FROM unnest($1::int8[], $2::uuid[], $3::text[], $4::timestamptz[]) AS x(i, ev, seat, now)
         JOIN seats s ON s.event_id = x.ev AND s.seat_id = x.seat
         WHERE s.seat_id = ANY($3)
           -- CASE, not OR, so that the planner finds these seats by key (see take_seats).
           AND CASE s.state WHEN 'OPEN' THEN true
                            WHEN 'HOLD' THEN s.hold_expires_at <= x.now
                            ELSE false END
         ORDER BY s.event_id, s.seat_id
         FOR UPDATE OF s SKIP LOCKED",
        &wanted.iter().map(|w| w.0 as i64).collect::<Vec<_>>(),
        &wanted.iter().map(|w| w.1).collect::<Vec<_>>(),
        &wanted.iter().map(|w| w.2).collect::<Vec<_>>(),
        &wanted.iter().map(|w| w.3).collect::<Vec<_>>()
    )?;
    let mut got: Vec<HashMap<String, Taken>> = vec![HashMap::new(); named.len()];
    for r in &rows {
        let seat: String = r.get(1);
        if let Some(g) = got.get_mut(r.get::<_, i64>(0) as usize) {
            g.insert(seat.clone(), (seat, r.get(2), r.get(3), r.get(4)));
        }
    }
    let mut given: HashSet<(Uuid, String)> = HashSet::new();
    let mut out = Vec::new();
    for ((r, ids), mut got) in named.iter().zip(got) {
        let ev = r.event_id().0;
        let all = ids
            .iter()
            .all(|s| got.contains_key(s) && !given.contains(&(ev, s.clone())));
        if all {
            let taken: Vec<Taken> = ids.iter().filter_map(|s| got.remove(s)).collect();
            given.extend(ids.iter().map(|s| (ev, s.clone())));
            out.push((*r, taken));
        }
    }
    Ok(out)
}

/// Locks the front-most open places of each general-admission section, as many as its
/// requests want together, skipping any another transaction has locked, and hands them out in
/// request order; requests the section runs out for get none.
async fn lock_fronts<'a, C: Exec>(
    c: &C,
    fronts: &BTreeMap<(Uuid, i16), Vec<&'a HoldRequest>>,
) -> Result<Vec<(&'a HoldRequest, Vec<Taken>)>> {
    if fronts.is_empty() {
        return Ok(Vec::new());
    }
    let wanted: Vec<i64> = fronts
        .values()
        .map(|reqs| reqs.iter().map(|r| i64::from(r.selection.quantity())).sum())
        .collect();
    // The pick runs once per section (a lateral subquery is run per outer row), so it never
    // takes more than the section's requests want together.
    let rows = q!(
        c,
        query,
        "/* grouped */ SELECT x.i, p.seat_id, p.section_no, p.price_cents
         FROM unnest($1::uuid[], $2::int2[], $3::int8[]) WITH ORDINALITY AS x(ev, sec, n, i)
         CROSS JOIN LATERAL (
             SELECT seat_id, section_no, price_cents, row_index, number FROM seats
             WHERE event_id = x.ev AND section_no = x.sec AND state = 'OPEN'
             ORDER BY row_index, number LIMIT x.n
             FOR UPDATE SKIP LOCKED) p
         ORDER BY x.i, p.row_index, p.number",
        &fronts.keys().map(|k| k.0).collect::<Vec<_>>(),
        &fronts.keys().map(|k| k.1).collect::<Vec<_>>(),
        &wanted
    )?;
    let free = per_section(&rows, fronts.len(), |r| -> Taken {
        (r.get(1), r.get(2), r.get(3), true)
    });
    let mut out = Vec::new();
    for ((reqs, free), wanted) in fronts.values().zip(free).zip(wanted) {
        if free.len() as i64 > wanted {
            return Err(StoreError::Internal(format!(
                "a pick of {wanted} places took {}",
                free.len()
            )));
        }
        let mut free = free.into_iter();
        for &r in reqs {
            let quantity = r.selection.quantity() as usize;
            let taken: Vec<Taken> = free.by_ref().take(quantity).collect();
            if taken.len() < quantity {
                break; // the section ran out: this request and those after it go alone
            }
            out.push((r, taken));
        }
    }
    Ok(out)
}

/// Writes the placed holds in one statement: their seats HOLD, their bookings and booked
/// seats, and one availability change per event. Returns the bookings by id.
async fn write_holds<C: Exec>(
    c: &C,
    placed: &[(&HoldRequest, Vec<Taken>)],
) -> Result<HashMap<BookingId, Booking>> {
    if placed.is_empty() {
        return Ok(HashMap::new());
    }
    let seats: Vec<(&HoldRequest, &Taken)> = placed
        .iter()
        .flat_map(|(r, taken)| taken.iter().map(move |t| (*r, t)))
        .collect();
    let mut deltas: BTreeMap<Uuid, BTreeMap<u16, i32>> = BTreeMap::new();
    for (r, t) in seats.iter().filter(|(_, t)| t.3) {
        *deltas
            .entry(r.event_id().0)
            .or_default()
            .entry(t.1 as u16)
            .or_insert(0) -= 1;
    }
    let mut changes: Vec<(Uuid, serde_json::Value)> = Vec::new();
    for (ev, d) in &deltas {
        if let Some(payload) = delta_payload(d)? {
            changes.push((*ev, payload));
        }
    }
    let row = q!(
        c,
        query_one,
        "/* grouped */ WITH y AS (
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::timestamptz[],
                 $5::int8[]) AS y(ev, seat, bk, exp, price)),
         s AS (
             UPDATE seats s SET state = 'HOLD', hold_expires_at = y.exp, booking_id = y.bk,
                 version = s.version + 1
             FROM y WHERE s.seat_id = ANY($2) AND s.event_id = y.ev AND s.seat_id = y.seat
             RETURNING 1),
         bs AS (
             INSERT INTO booking_seats (booking_id, event_id, seat_id, price_cents)
             SELECT y.bk, y.ev, y.seat, y.price FROM y RETURNING 1),
         b AS (
             INSERT INTO bookings (booking_id, event_id, customer_id, status, expires_at,
                 total_cents, currency, quantity, created_at, updated_at)
             SELECT x.bk, x.ev, x.cust, 'HOLD', x.exp, x.total, x.currency, x.n, x.now, x.now
             FROM unnest($6::uuid[], $7::uuid[], $8::text[], $9::timestamptz[], $10::int8[],
                 $11::text[], $12::int4[], $13::timestamptz[])
                 AS x(bk, ev, cust, exp, total, currency, n, now)
             RETURNING 1),
         o AS (
             INSERT INTO outbox (event_id, kind, payload)
             SELECT o.ev, $14, o.payload FROM unnest($15::uuid[], $16::jsonb[]) AS o(ev, payload)
             RETURNING 1)
         SELECT (SELECT count(*) FROM s), (SELECT count(*) FROM b)",
        &seats.iter().map(|s| s.0.event_id().0).collect::<Vec<_>>(),
        &seats.iter().map(|s| s.1.0.as_str()).collect::<Vec<_>>(),
        &seats.iter().map(|s| s.0.booking_id.0).collect::<Vec<_>>(),
        &seats.iter().map(|s| s.0.expires_at).collect::<Vec<_>>(),
        &seats.iter().map(|s| s.1.2).collect::<Vec<_>>(),
        &placed.iter().map(|p| p.0.booking_id.0).collect::<Vec<_>>(),
        &placed.iter().map(|p| p.0.event_id().0).collect::<Vec<_>>(),
        &placed
            .iter()
            .map(|p| p.0.customer.as_str())
            .collect::<Vec<_>>(),
        &placed.iter().map(|p| p.0.expires_at).collect::<Vec<_>>(),
        &placed
            .iter()
            .map(|p| p.1.iter().map(|t| t.2).sum::<i64>())
            .collect::<Vec<_>>(),
        &placed
            .iter()
            .map(|p| p.0.currency().as_str().to_owned())
            .collect::<Vec<_>>(),
        &placed.iter().map(|p| p.1.len() as i32).collect::<Vec<_>>(),
        &placed.iter().map(|p| p.0.now).collect::<Vec<_>>(),
        &change::SEATS_CHANGED,
        &changes.iter().map(|c| c.0).collect::<Vec<_>>(),
        &changes.iter().map(|c| c.1.clone()).collect::<Vec<_>>()
    )?;
    let (moved, booked): (i64, i64) = (row.get(0), row.get(1));
    if moved as usize != seats.len() || booked as usize != placed.len() {
        // The seats were locked above, so this cannot happen; if it does, nothing is kept.
        return Err(StoreError::Internal(format!(
            "a group of holds moved {moved} of {} seats",
            seats.len()
        )));
    }
    placed
        .iter()
        .map(|(r, taken)| Ok((r.booking_id, held_booking(r, taken)?)))
        .collect()
}
