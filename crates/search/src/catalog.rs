//! The in-memory side of the index: one compact row per event, addressed by *slot*.
//!
//! tantivy answers "which events match these words"; everything else a query needs — filters,
//! sort keys, facets, the hit as JSON, seats left — is read from these rows. A pass reads each
//! event's values from one 40-byte row (12–15 ns an event for a full pass over a date window,
//! facets and page included, in `bench/RESULTS.md`; a browse now mostly counts from the date
//! order's block marks instead) rather than decoding each from its own fast-field column;
//! and seat counts change here, in place, without re-indexing anything. Every document in tantivy stores its slot, so a text match leads
//! straight to its row.
//!
//! The indexer owns the only mutable copy and publishes immutable snapshots; searches take the
//! current snapshot (an `Arc`) and never wait for the indexer. Seats left are the exception:
//! they live in one array of atomic counters that every snapshot shares ([`Seats`]), so a
//! seat change is one store, visible to the next search, and publishes no new snapshot (which
//! would copy the rows and retire the sorted orders, the grid and the cached answers).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use boxoffice_domain::event::Category;
use parking_lot::Mutex;

use crate::schema::Source;

/// What filters, facets and sorts read, and nothing else: `Copy` and small (40 bytes), so
/// that a scan reads as few cache lines as it can.
#[derive(Debug, Clone, Copy, Default)]
pub struct Row {
    pub starts_at: i64,
    pub min_price: i64,
    pub max_price: i64,
    pub lat: f32,
    pub lon: f32,
    /// Interned zip code; 0 for none.
    pub zip: u32,
    /// Index into [`Category::ALL`].
    pub category: u8,
    /// Index into `engine::PRICE_BANDS` of `min_price`: the price facet it counts in.
    pub band: u8,
    pub alive: bool,
}

impl Row {
    /// Whether the event's prices reach into `[min, max]`: its cheapest at most `max`, its
    /// dearest at least `min` (the price filter, and what the category facets count). Both
    /// comparisons are evaluated, with no branch between them, for tight passes.
    #[inline(always)]
    pub fn priced_within(&self, min: i64, max: i64) -> bool {
        (self.max_price >= min) & (self.min_price <= max)
    }
}

impl Hit {
    /// `saleStatus` at `now` (unix seconds) of an event starting at `starts_at`, as the event
    /// detail shows it.
    pub fn sale_status(&self, starts_at: i64, now: i64) -> &'static str {
        if self.cancelled {
            "CANCELLED"
        } else if now >= starts_at {
            "STARTED"
        } else if now < self.on_sale_at {
            "NOT_YET_ON_SALE"
        } else {
            "ON_SALE"
        }
    }
}

/// A hit as JSON, minus the members that change (seats left, distance) and the closing brace,
/// and what only rendering reads (kept out of [`Row`], which scans read).
#[derive(Debug)]
pub struct Hit {
    pub json_head: Box<str>,
    /// Unix seconds.
    pub on_sale_at: i64,
    pub cancelled: bool,
}

/// Seats left per slot, shared by the indexer's catalog and every snapshot it published: the
/// indexer stores, searches load (relaxed: a count is a count, and each is read once per row).
/// The slots whose count is zero are also kept as a set, so that a browse with `availableOnly`
/// can take the few sold-out events away from counts made without looking at seats.
#[derive(Debug, Default)]
pub struct Seats {
    counts: Box<[AtomicU32]>,
    sold_out: Mutex<HashSet<u32>>,
}

impl Seats {
    fn with_len(n: usize, from: &Seats) -> Self {
        let counts = (0..n)
            .map(|i| AtomicU32::new(from.counts.get(i).map_or(0, |c| c.load(Ordering::Relaxed))))
            .collect();
        Self {
            counts,
            sold_out: Mutex::new(from.sold_out.lock().clone()),
        }
    }

    fn get(&self, slot: u32) -> u32 {
        self.counts
            .get(slot as usize)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    fn set(&self, slot: u32, n: u32) -> u32 {
        let Some(count) = self.counts.get(slot as usize) else {
            return 0;
        };
        let before = count.swap(n, Ordering::Relaxed);
        if n == 0 {
            self.sold_out.lock().insert(slot);
        } else if before == 0 {
            self.sold_out.lock().remove(&slot);
        }
        before
    }
}

#[derive(Debug, Default)]
pub struct Catalog {
    pub rows: Vec<Row>,
    /// Seats left, by slot: shared with the snapshots (see [`Seats`]).
    seats: Arc<Seats>,
    /// Event ids as integers: the final tie-breaker of every sort, so orders are total.
    pub ids: Vec<u128>,
    pub hits: Vec<Option<Arc<Hit>>>,
    pub zips: Arc<HashMap<String, u32>>,
    pub live: usize,
    /// Live slots by (start, id), with a copy of their rows in that order (a date window is
    /// then read front to back) and their facets counted block by block, and live slots by
    /// (cheapest price, start, id): computed by the first search of a snapshot that can use
    /// them.
    by_date: OnceLock<DateOrder>,
    by_price: OnceLock<Vec<u32>>,
    /// Live events by half-degree cell of latitude and longitude, for radius searches.
    grid: OnceLock<Vec<Placed>>,
}

/// Events by category and price band (`engine::PRICE_BANDS`): the facets of a browse.
pub type Facets = [[u32; PRICE_BANDS]; 9];

const PRICE_BANDS: usize = crate::engine::PRICE_BANDS.len();

/// Rows of the date order per block whose facets are counted ahead (see [`DateOrder`]).
const BLOCK: usize = 256;

/// The live events in date order (by start, then id): their slots, a copy of their rows, and
/// `marks[k]`, the facets of the first `k * BLOCK` rows. The facets of any date window are then
/// two subtractions of marks and at most `2 * BLOCK` rows counted at its ends, instead of
/// every row of the window.
#[derive(Debug)]
struct DateOrder {
    slots: Vec<u32>,
    rows: Vec<Row>,
    marks: Vec<Facets>,
}

impl DateOrder {
    fn new(catalog: &Catalog) -> Self {
        let mut slots = catalog.live_slots();
        slots.sort_unstable_by_key(|&s| {
            (catalog.rows[s as usize].starts_at, catalog.ids[s as usize])
        });
        let rows: Vec<Row> = slots.iter().map(|&s| catalog.rows[s as usize]).collect();
        let mut marks = Vec::with_capacity(rows.len() / BLOCK + 1);
        let mut running: Facets = [[0; PRICE_BANDS]; 9];
        marks.push(running);
        for block in rows.chunks_exact(BLOCK) {
            count(block, &mut running);
            marks.push(running);
        }
        Self { slots, rows, marks }
    }

    /// The positions of the rows that start within `[after, before]`.
    fn window(&self, after: i64, before: i64) -> std::ops::Range<usize> {
        let from = self.rows.partition_point(|r| r.starts_at < after);
        let len = self.rows[from..].partition_point(|r| r.starts_at <= before);
        from..from + len
    }
}

/// Adds `rows` to `facets`.
fn count(rows: &[Row], facets: &mut Facets) {
    for r in rows {
        facets[usize::from(r.category)][usize::from(r.band)] += 1;
    }
}

/// Grid cells per degree of latitude and of longitude.
const CELLS_PER_DEGREE: f64 = 2.0;

/// Longitude cells around the globe; a cell index is in `-HALF_TURN..HALF_TURN`.
const HALF_TURN: i16 = (180.0 * CELLS_PER_DEGREE) as i16;

/// An event on the grid: its cell, its slot, its position as a unit vector (a distance test
/// with no trigonometry) and a copy of its row. The grid is sorted by cell, so a radius search
/// reads each band of cells front to back instead of one scattered row per event (a cache miss
/// each, which was most of a radius search's time).
#[derive(Debug, Clone, Copy)]
pub struct Placed {
    pub cell: (i16, i16),
    pub slot: u32,
    pub unit: [f32; 3],
    pub row: Row,
}

/// The point at `lat`, `lon` (degrees) on the unit sphere.
pub fn unit_vector(lat: f64, lon: f64) -> [f64; 3] {
    let (lat, lon) = (lat.to_radians(), lon.to_radians());
    [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
}

impl Clone for Catalog {
    /// A copy to change: the orders of the original do not carry over.
    fn clone(&self) -> Self {
        Self {
            rows: self.rows.clone(),
            ids: self.ids.clone(),
            hits: self.hits.clone(),
            seats: self.seats.clone(),
            zips: self.zips.clone(),
            live: self.live,
            by_date: OnceLock::new(),
            by_price: OnceLock::new(),
            grid: OnceLock::new(),
        }
    }
}

pub fn category_index(c: Category) -> u8 {
    Category::ALL.iter().position(|x| *x == c).unwrap_or(0) as u8
}

impl Catalog {
    fn date_order(&self) -> &DateOrder {
        self.by_date.get_or_init(|| DateOrder::new(self))
    }

    /// The live events that start within `[after, before]` (unix seconds), in date order: their
    /// slots, and their rows in the same order (a binary search of the date order).
    pub fn starting_between(&self, after: i64, before: i64) -> (&[u32], &[Row]) {
        let order = self.date_order();
        let window = order.window(after, before);
        (&order.slots[window.clone()], &order.rows[window])
    }

    /// The live events that start within `[after, before]`, by category and price band, seats
    /// left or not: the rows at the window's ends counted one by one, the blocks between from
    /// their marks.
    pub fn facets_between(&self, after: i64, before: i64) -> Facets {
        let order = self.date_order();
        let window = order.window(after, before);
        let mut facets: Facets = [[0; PRICE_BANDS]; 9];
        let (first, last) = (window.start.div_ceil(BLOCK), window.end / BLOCK);
        if first >= last {
            count(&order.rows[window], &mut facets);
            return facets;
        }
        count(&order.rows[window.start..first * BLOCK], &mut facets);
        count(&order.rows[last * BLOCK..window.end], &mut facets);
        for (c, row) in facets.iter_mut().enumerate() {
            for (b, n) in row.iter_mut().enumerate() {
                *n += order.marks[last][c][b] - order.marks[first][c][b];
            }
        }
        facets
    }

    /// The live events that start within `[after, before]` and whose prices reach into
    /// `[price_min, price_max]` ([`Row::priced_within`]), by category and price band: one tight
    /// pass over the window's rows, with no branch per row.
    pub fn priced_between(
        &self,
        after: i64,
        before: i64,
        price_min: i64,
        price_max: i64,
    ) -> Facets {
        let order = self.date_order();
        let mut facets: Facets = [[0; PRICE_BANDS]; 9];
        for r in &order.rows[order.window(after, before)] {
            facets[usize::from(r.category)][usize::from(r.band)] +=
                u32::from(r.priced_within(price_min, price_max));
        }
        facets
    }

    /// Calls `f` with each slot that has no seats left, unless there are more than `at_most`
    /// (then `false`, and `f` is not called). The slots may include events that are no longer
    /// live in this snapshot.
    pub fn for_each_sold_out(&self, at_most: usize, mut f: impl FnMut(u32)) -> bool {
        let sold_out = self.seats.sold_out.lock();
        if sold_out.len() > at_most {
            return false;
        }
        sold_out.iter().copied().for_each(&mut f);
        true
    }

    pub fn by_price(&self) -> &[u32] {
        self.by_price.get_or_init(|| {
            let mut v = self.live_slots();
            v.sort_unstable_by_key(|&s| {
                let r = &self.rows[s as usize];
                (r.min_price, r.starts_at, self.ids[s as usize])
            });
            v
        })
    }

    /// The grid's runs of events whose cells may lie within `lat_span`/`lon_span` degrees of
    /// (`lat`, `lon`): one or two runs per band of latitude (two where the area crosses the
    /// antimeridian). `None` when the area is too large for the grid to help.
    pub fn near(&self, lat: f64, lon: f64, lat_span: f64, lon_span: f64) -> Option<Vec<&[Placed]>> {
        if lat_span > 20.0 || lon_span > 20.0 {
            return None;
        }
        let grid = self.grid.get_or_init(|| {
            let mut g: Vec<Placed> = self
                .rows
                .iter()
                .enumerate()
                .filter(|(_, r)| r.alive)
                .map(|(slot, r)| {
                    let (lat, lon) = (f64::from(r.lat), f64::from(r.lon));
                    Placed {
                        cell: cell(lat, lon),
                        slot: slot as u32,
                        unit: unit_vector(lat, lon).map(|c| c as f32),
                        row: *r,
                    }
                })
                .collect();
            g.sort_unstable_by_key(|p| (p.cell, p.slot));
            g
        });
        let band = |x: f64| (x * CELLS_PER_DEGREE).floor() as i16;
        let (lon0, lon1) = (band(lon - lon_span), band(lon + lon_span));
        let run = |la: i16, from: i16, to: i16| {
            let a = grid.partition_point(|p| p.cell < (la, from));
            let b = grid.partition_point(|p| p.cell <= (la, to));
            &grid[a..b.max(a)]
        };
        let mut out = Vec::new();
        for la in band(lat - lat_span)..=band(lat + lat_span) {
            // Across the antimeridian, cells continue on the other side.
            let (w0, w1) = (wrap(lon0), wrap(lon1));
            if w0 <= w1 {
                out.push(run(la, w0, w1));
            } else {
                out.push(run(la, w0, HALF_TURN - 1));
                out.push(run(la, -HALF_TURN, w1));
            }
        }
        out.retain(|r| !r.is_empty());
        Some(out)
    }

    fn live_slots(&self) -> Vec<u32> {
        (0..self.rows.len() as u32)
            .filter(|&s| self.rows[s as usize].alive)
            .collect()
    }

    pub fn zip_id(&self, zip: &str) -> Option<u32> {
        self.zips.get(zip).copied()
    }

    /// Puts (or replaces) the event at `slot`.
    pub fn set(&mut self, slot: u32, s: &Source) {
        let i = slot as usize;
        if self.rows.len() <= i {
            self.rows.resize(i + 1, Row::default());
            self.ids.resize(i + 1, 0);
            self.hits.resize(i + 1, None);
        }
        if self.seats.counts.len() <= i {
            // Room to grow without a copy per new event. Snapshots published before keep the
            // old array, frozen: they are retired by the snapshot this change publishes.
            let n = (i + 1).max(self.seats.counts.len() * 3 / 2).max(1_024);
            self.seats = Arc::new(Seats::with_len(n, &self.seats));
        }
        self.seats.set(slot, s.available);
        let zip = if s.zip_code.is_empty() {
            0
        } else if let Some(z) = self.zips.get(&s.zip_code) {
            *z
        } else {
            let zips = Arc::make_mut(&mut self.zips);
            let z = zips.len() as u32 + 1;
            zips.insert(s.zip_code.clone(), z);
            z
        };
        if !self.rows[i].alive {
            self.live += 1;
        }
        self.rows[i] = Row {
            starts_at: s.starts_at,
            min_price: s.min_price_cents,
            max_price: s.max_price_cents,
            lat: s.lat as f32,
            lon: s.lon as f32,
            zip,
            category: category_index(s.category),
            band: crate::engine::price_band(s.min_price_cents) as u8,
            alive: true,
        };
        self.ids[i] = s.id.as_u128();
        self.hits[i] = Some(Arc::new(Hit {
            json_head: hit_head(s).into_boxed_str(),
            on_sale_at: s.on_sale_at,
            cancelled: s.cancelled,
        }));
    }

    /// Seats left at `slot`, as of now.
    #[inline]
    pub fn available(&self, slot: u32) -> u32 {
        self.seats.get(slot)
    }

    /// Sets the seats left at `slot`, at once for every snapshot sharing the counts; returns
    /// the count it replaced.
    pub fn set_available(&self, slot: u32, available: u32) -> u32 {
        self.seats.set(slot, available)
    }

    pub fn remove(&mut self, slot: u32) {
        let i = slot as usize;
        if let Some(r) = self.rows.get_mut(i)
            && r.alive
        {
            r.alive = false;
            self.hits[i] = None;
            self.live -= 1;
        }
    }
}

fn cell(lat: f64, lon: f64) -> (i16, i16) {
    (
        (lat * CELLS_PER_DEGREE).floor() as i16,
        wrap((lon * CELLS_PER_DEGREE).floor() as i16),
    )
}

/// A longitude cell brought into `-HALF_TURN..HALF_TURN`.
fn wrap(lon_cell: i16) -> i16 {
    let half = i32::from(HALF_TURN);
    ((i32::from(lon_cell) + half).rem_euclid(2 * half) - half) as i16
}

fn hit_head(s: &Source) -> String {
    let starts = time::OffsetDateTime::from_unix_timestamp(s.starts_at)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    let v = serde_json::json!({
        "eventId": s.id.to_string(),
        "name": s.name,
        "performers": s.performers,
        "category": s.category.as_str(),
        "startsAt": starts,
        "venue": {
            "name": s.venue,
            "city": s.city,
            "zipCode": s.zip_code,
            "country": s.country,
            "lat": s.lat,
            "lon": s.lon,
        },
        "minPriceCents": s.min_price_cents,
        "maxPriceCents": s.max_price_cents,
        "currency": s.currency,
        "capacity": s.capacity,
    });
    let mut text = v.to_string();
    text.pop(); // the closing brace: seats left and distance follow per query
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(lat: f64, lon: f64) -> Source {
        Source {
            id: uuid::Uuid::new_v4(),
            name: "x".into(),
            performers: vec![],
            category: Category::Concert,
            description: String::new(),
            starts_at: 0,
            venue: "v".into(),
            city: "c".into(),
            zip_code: String::new(),
            country: "FJ".into(),
            lat,
            lon,
            min_price_cents: 1,
            max_price_cents: 1,
            currency: "USD".into(),
            capacity: 1,
            available: 1,
            on_sale_at: 0,
            cancelled: false,
        }
    }

    /// Scans are bound by reading rows: keep them small.
    #[test]
    fn a_row_is_forty_bytes() {
        assert_eq!(std::mem::size_of::<Row>(), 40);
    }

    #[test]
    fn the_grid_reaches_across_the_antimeridian() {
        let mut c = Catalog::default();
        c.set(0, &source(-17.5, 179.9));
        c.set(1, &source(-17.5, -179.9));
        c.set(2, &source(-17.5, 170.0));
        c.set(3, &source(40.0, 179.9));
        let mut near: Vec<u32> = c
            .near(-17.5, 179.95, 0.5, 0.5)
            .expect("small area")
            .iter()
            .flat_map(|run| run.iter().map(|p| p.slot))
            .collect();
        near.sort();
        assert_eq!(near, vec![0, 1]);
        // Any cell, however far out (a float cast saturates), wraps into range.
        for far in [i16::MIN, -721, -360, 359, 360, 720, i16::MAX] {
            assert!((-HALF_TURN..HALF_TURN).contains(&wrap(far)), "{far}");
        }
        assert!(
            c.near(0.0, 0.0, 45.0, 45.0).is_none(),
            "too large for the grid"
        );
    }
}
