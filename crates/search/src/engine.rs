//! Running one search against one snapshot: tantivy for the words, the catalog rows for
//! everything else.
//!
//! Relevance is computed from *which* query words matched *where* and *how*, never from
//! corpus statistics: a word counts 4 when it is exactly in the name or performers, 2 when it
//! is exactly elsewhere (venue, city, description), 2.5/1.5 as the prefix of a word there (the
//! word being typed), and 1.5/1 as a typo (one edit for words of 4–7 letters, two from 8).
//! An event's score is the sum over the words. So exact matches rank above fuzzy ones, and —
//! unlike BM25 — an event's score does not move when other events are added, which keeps
//! cursor pagination by score stable.
//!
//! All query words must match; if that finds nothing, any word may (ranked by how many did),
//! so one unknown word does not blank out a query that otherwise matches well.

use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::query::{
    AutomatonWeight, ConstScoreQuery, DfaWrapper, DisjunctionMaxQuery, EnableScoring,
    FuzzyTermQuery, Query, TermQuery, Weight,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocId, Score, Searcher, SegmentOrdinal, SegmentReader, Term};

use crate::catalog::{Catalog, Row};
use crate::query::{Cursor, SearchRequest, Sort};
use crate::schema::{Fields, analyzer};
use crate::typos::Vocabulary;

/// At most this many words of a query are used.
const MAX_WORDS: usize = 8;

/// Price bands for facets, on the cheapest section, in minor units: [from, to).
pub const PRICE_BANDS: [(i64, Option<i64>); 5] = [
    (0, Some(2_500)),
    (2_500, Some(5_000)),
    (5_000, Some(10_000)),
    (10_000, Some(20_000)),
    (20_000, None),
];

/// A total sort key: (primary, secondary, event id), ascending.
pub type SortKey = (i64, i64, u128);

/// What a search produced, before rendering.
#[derive(Debug)]
pub struct Outcome {
    /// Slots of the page, in order, with their distances (a geo search). Kept small: cached
    /// answers hold it, and the next page's cursor is all that needs a sort key.
    pub page: Vec<(u32, Option<f64>)>,
    pub next: Option<Cursor>,
    pub total: u64,
    pub categories: [u64; 9],
    pub price_bands: [u64; PRICE_BANDS.len()],
}

/// The words of a query, analysed like the indexed text.
pub fn words(q: &str) -> Vec<String> {
    let mut a = analyzer();
    let mut stream = a.token_stream(q);
    let mut out: Vec<String> = Vec::new();
    while stream.advance() {
        let t = stream.token().text.clone();
        if !out.contains(&t) {
            out.push(t);
        }
        if out.len() == MAX_WORDS {
            break;
        }
    }
    out
}

/// Levenshtein automata by (word, distance, prefix). Building one costs up to a millisecond
/// for long words at two typos, and the same words come back (popular searches, the same
/// typos), so each is built once and shared by every field and every search.
#[derive(Default)]
pub struct Automata {
    built: Mutex<HashMap<(String, u8, bool), Arc<DfaWrapper>>>,
}

impl std::fmt::Debug for Automata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Automata")
            .field("built", &self.built.lock().len())
            .finish()
    }
}

/// Automata kept; past this the cache starts over (they are rebuilt on demand). Few: a
/// two-typo automaton of a long word holds a thousand or more states of 1 KB each, so two
/// thousand of them (distinct searches, each typo new) held gigabytes; and since each word's
/// matches are kept per index generation ([`WordMatches`]), an automaton is needed again only
/// after the index changes.
const MAX_AUTOMATA: usize = 32;

impl Automata {
    fn get(&self, word: &str, distance: u8, prefix: bool) -> Option<Arc<DfaWrapper>> {
        let key = (word.to_owned(), distance, prefix);
        if let Some(a) = self.built.lock().get(&key) {
            return Some(a.clone());
        }
        // A throwaway field: the automaton only looks at the term's text.
        let term = Term::from_field_text(Field::from_field_id(0), word);
        let q = if prefix {
            FuzzyTermQuery::new_prefix(term, distance, true)
        } else {
            FuzzyTermQuery::new(term, distance, true)
        };
        let dfa = Arc::new(q.automaton().ok()?);
        let mut built = self.built.lock();
        if built.len() >= MAX_AUTOMATA {
            built.clear();
        }
        built.insert(key, dfa.clone());
        Some(dfa)
    }
}

/// Terms of `field` accepted by a shared automaton.
#[derive(Clone)]
struct AutomatonQuery {
    field: Field,
    dfa: Arc<DfaWrapper>,
}

impl std::fmt::Debug for AutomatonQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutomatonQuery")
            .field("field", &self.field)
            .finish_non_exhaustive()
    }
}

impl Query for AutomatonQuery {
    fn weight(&self, _scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(AutomatonWeight::<DfaWrapper>::new(
            self.field,
            self.dfa.clone(),
        )))
    }
}

/// A word found as typed in at least this share of events (1 in 200) is taken as meant:
/// common words ("tour", "live", "city") are spelt right far more often than not, and
/// expanding them to every neighbour ("four", "hour", "lives") costs the most and finds the
/// least.
const COMMON_WORD_SHARE: u64 = 200;

fn word_query(
    searcher: &Searcher,
    f: &Fields,
    automata: &Automata,
    vocabulary: Option<&Vocabulary>,
    word: &str,
    last: bool,
) -> Box<dyn Query> {
    let title = Term::from_field_text(f.title, word);
    let text = Term::from_field_text(f.text, word);
    let common =
        searcher.doc_freq(&text).unwrap_or(0) >= (searcher.num_docs() / COMMON_WORD_SHARE).max(50);
    let exact = |t: Term, score: f32| -> Box<dyn Query> {
        Box::new(ConstScoreQuery::new(
            Box::new(TermQuery::new(t, IndexRecordOption::Basic)),
            score,
        ))
    };
    let mut alternatives = vec![exact(title.clone(), 4.0), exact(text.clone(), 2.0)];
    let len = word.chars().count();
    let mut approximate = |dfa: Option<Arc<DfaWrapper>>, title_score: f32, text_score: f32| {
        if let Some(dfa) = dfa {
            for (field, score) in [(f.title, title_score), (f.text, text_score)] {
                let q = AutomatonQuery {
                    field,
                    dfa: dfa.clone(),
                };
                alternatives.push(Box::new(ConstScoreQuery::new(Box::new(q), score)));
            }
        }
    };
    if last && len >= 2 && !common {
        approximate(automata.get(word, 0, true), 2.5, 1.5);
    }
    if len >= 4 && !common {
        let distance = if len >= 8 { 2 } else { 1 };
        match vocabulary {
            // The index's words within `distance` of this one, each looked up exactly.
            Some(v) => {
                for near in v.near(word, distance) {
                    alternatives.push(exact(Term::from_field_text(f.title, near), 1.5));
                    alternatives.push(exact(Term::from_field_text(f.text, near), 1.0));
                }
            }
            None => approximate(automata.get(word, distance, false), 1.5, 1.0),
        }
    }
    drop((title, text));
    Box::new(DisjunctionMaxQuery::new(alternatives))
}

/// Collects (slot, score) of every matching document.
struct Slots;

struct SegmentSlots {
    slots: Column<u64>,
    out: Vec<(u32, f32)>,
}

impl Collector for Slots {
    type Fruit = Vec<(u32, f32)>;
    type Child = SegmentSlots;

    fn for_segment(
        &self,
        _ord: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<SegmentSlots> {
        Ok(SegmentSlots {
            slots: reader.fast_fields().u64("slot")?,
            out: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        true
    }

    fn merge_fruits(&self, fruits: Vec<Vec<(u32, f32)>>) -> tantivy::Result<Vec<(u32, f32)>> {
        Ok(fruits.concat())
    }
}

impl SegmentCollector for SegmentSlots {
    type Fruit = Vec<(u32, f32)>;

    fn collect(&mut self, doc: DocId, score: Score) {
        if let Some(slot) = self.slots.first(doc) {
            self.out.push((slot as u32, score));
        }
    }

    fn harvest(self) -> Vec<(u32, f32)> {
        self.out
    }
}

/// What each query word matched, per index generation: `(slot, score)` sorted by slot. The
/// same words come back in different searches (an artist with another city, filter or sort),
/// and looking one up — typo and prefix automata walked over two term dictionaries — is the
/// dearest part of a text search; combining the lists of a query's words is cheap.
#[derive(Default)]
pub struct WordMatches {
    known: Mutex<WordMap>,
}

/// The documents a word matched, as (slot, score) sorted by slot.
type Found = Arc<Vec<(u32, f32)>>;

#[derive(Default)]
struct WordMap {
    generation: u64,
    /// By (word, whether it was the query's last word: that one matches as a prefix too).
    map: HashMap<(String, bool), Found>,
    /// Pairs held, to bound the memory.
    pairs: usize,
}

impl std::fmt::Debug for WordMatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WordMatches")
            .field("words", &self.known.lock().map.len())
            .finish()
    }
}

/// (slot, score) pairs kept for words, in all (12 bytes each with the overhead).
const MAX_WORD_PAIRS: usize = 2_000_000;

impl WordMatches {
    fn get(&self, word: &str, last: bool, generation: u64) -> Option<Found> {
        let known = self.known.lock();
        if known.generation != generation {
            return None;
        }
        known.map.get(&(word.to_owned(), last)).cloned()
    }

    fn put(&self, word: &str, last: bool, generation: u64, found: Found) {
        let mut known = self.known.lock();
        if known.generation != generation || known.pairs + found.len() > MAX_WORD_PAIRS {
            if generation < known.generation {
                return;
            }
            known.map.clear();
            known.pairs = 0;
            known.generation = generation;
        }
        known.pairs += found.len();
        known.map.insert((word.to_owned(), last), found);
    }
}

/// Every document `query` matches, as (slot, score) sorted by slot.
fn slots(searcher: &Searcher, query: &dyn Query) -> tantivy::Result<Vec<(u32, f32)>> {
    let mut found = searcher.search(query, &Slots)?;
    found.sort_unstable_by_key(|&(slot, _)| slot);
    // A slot is one event: should two documents of it be alive, it counts once.
    found.dedup_by(|b, a| {
        if a.0 == b.0 {
            a.1 = a.1.max(b.1);
            true
        } else {
            false
        }
    });
    Ok(found)
}

/// The slots in all of `lists` (sorted by slot), scores summed.
fn intersect(lists: &[&[(u32, f32)]]) -> Vec<(u32, f32)> {
    let Some((first, rest)) = lists.split_first() else {
        return Vec::new();
    };
    let mut out: Vec<(u32, f32)> = first.to_vec();
    for list in rest {
        let mut j = 0;
        out.retain_mut(|(slot, score)| {
            while j < list.len() && list[j].0 < *slot {
                j += 1;
            }
            if j < list.len() && list[j].0 == *slot {
                *score += list[j].1;
                true
            } else {
                false
            }
        });
        if out.is_empty() {
            break;
        }
    }
    out
}

/// The slots in any of `lists`, scores summed; with `within`, only those slots (a zip code's),
/// each scored by the words it has, none needed.
fn union(lists: &[&[(u32, f32)]], within: Option<&[(u32, f32)]>) -> Vec<(u32, f32)> {
    if let Some(within) = within {
        // Every list merged into the zip code's (all sorted by slot): one linear walk each.
        let mut out = within.to_vec();
        for list in lists {
            let mut j = 0;
            for (slot, score) in &mut out {
                while j < list.len() && list[j].0 < *slot {
                    j += 1;
                }
                if j < list.len() && list[j].0 == *slot {
                    *score += list[j].1;
                }
            }
        }
        return out;
    }
    let mut out: Vec<(u32, f32)> = lists.concat();
    out.sort_unstable_by_key(|&(slot, _)| slot);
    out.dedup_by(|b, a| {
        if a.0 == b.0 {
            a.1 += b.1;
            true
        } else {
            false
        }
    });
    out
}

/// The events matching the query's words (and zip code, which is a term of its own), with
/// their scores: all words first, then any. `None` when there is nothing to look up, and the
/// caller scans every event.
///
/// A document's score is the sum over the words of the best way each matched (as a boolean
/// query of one disjunction per word would score it); each word's matches come from `known`
/// when an earlier search of this `generation` looked it up.
#[allow(clippy::too_many_arguments)]
pub fn matches(
    searcher: &Searcher,
    fields: &Fields,
    automata: &Automata,
    vocabulary: Option<&Vocabulary>,
    known: &WordMatches,
    generation: u64,
    q: Option<&str>,
    zip: Option<&str>,
) -> tantivy::Result<Option<Vec<(u32, f32)>>> {
    let words = q.map(words).unwrap_or_default();
    if words.is_empty() && zip.is_none() {
        return Ok(if q.is_some() { Some(Vec::new()) } else { None });
    }
    let zip = match zip {
        Some(z) => Some(slots(
            searcher,
            &TermQuery::new(
                Term::from_field_text(fields.zip, z),
                IndexRecordOption::Basic,
            ),
        )?),
        None => None,
    };
    // A zip code's documents score nothing of their own.
    let zip: Option<Vec<(u32, f32)>> =
        zip.map(|z| z.into_iter().map(|(slot, _)| (slot, 0.0)).collect());
    let n = words.len();
    let (mut hits, mut misses) = (0, 0);
    let mut lists: Vec<Found> = Vec::with_capacity(n);
    for (i, w) in words.iter().enumerate() {
        let last = i + 1 == n;
        let found = match known.get(w, last, generation) {
            Some(found) => {
                hits += 1;
                found
            }
            None => {
                misses += 1;
                let q = word_query(searcher, fields, automata, vocabulary, w, last);
                let found = Arc::new(slots(searcher, &*q)?);
                known.put(w, last, generation, found.clone());
                found
            }
        };
        lists.push(found);
    }
    crate::phases::words(hits, misses);
    let mut all: Vec<&[(u32, f32)]> = lists.iter().map(|l| l.as_slice()).collect();
    if let Some(z) = &zip {
        all.push(z);
    }
    // Fewest first: the intersection shrinks fastest.
    all.sort_by_key(|l| l.len());
    let found = intersect(&all);
    if !found.is_empty() || n <= 1 {
        return Ok(Some(found));
    }
    let words: Vec<&[(u32, f32)]> = lists.iter().map(|l| l.as_slice()).collect();
    Ok(Some(union(&words, zip.as_deref())))
}

/// Great-circle distance in kilometres.
pub fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    6_371.008_8 * 2.0 * a.sqrt().min(1.0).asin()
}

/// The filters of a request, prepared for a scan.
struct Filters {
    zip: Option<u32>,
    /// (lat, lon, radius, lat span, lon span) for a quick box test before the exact distance.
    geo: Option<(f64, f64, Option<f64>, f64, f64)>,
    categories: u16,
    price_min: i64,
    price_max: i64,
    starts_after: i64,
    starts_before: i64,
    available_only: bool,
}

/// How one row fares: rejected by a filter other than category and price, or which of those
/// two it passes (facets count each while ignoring its own filter).
enum Verdict {
    Out,
    In {
        category: bool,
        price: bool,
        distance: Option<f64>,
    },
}

impl Filters {
    fn new(req: &SearchRequest, catalog: &Catalog, now: i64) -> Option<Self> {
        let zip = match &req.zip_code {
            // An unknown zip code matches nothing.
            Some(z) => Some(catalog.zip_id(z)?),
            None => None,
        };
        Some(Filters {
            zip,
            geo: req.geo.map(|g| {
                let r = g.radius_km.unwrap_or(f64::INFINITY);
                let lat_span = r / 111.0;
                let lon_span = r / (111.32 * g.lat.to_radians().cos().max(0.01));
                (g.lat, g.lon, g.radius_km, lat_span, lon_span)
            }),
            categories: req.categories,
            price_min: req.price_min.unwrap_or(i64::MIN),
            price_max: req.price_max.unwrap_or(i64::MAX),
            starts_after: req.starts_after.unwrap_or(now),
            starts_before: req.starts_before.unwrap_or(i64::MAX),
            available_only: req.available_only,
        })
    }

    #[inline(always)]
    fn judge(&self, catalog: &Catalog, slot: u32, r: &Row) -> Verdict {
        if !r.alive
            || r.starts_at < self.starts_after
            || r.starts_at > self.starts_before
            || (self.available_only && catalog.available(slot) == 0)
            || self.zip.is_some_and(|z| z != r.zip)
        {
            return Verdict::Out;
        }
        let mut distance = None;
        if let Some((lat, lon, radius, lat_span, lon_span)) = self.geo {
            let (rlat, rlon) = (f64::from(r.lat), f64::from(r.lon));
            if let Some(radius) = radius {
                if (rlat - lat).abs() > lat_span {
                    return Verdict::Out;
                }
                let dlon = (rlon - lon).abs();
                if dlon.min(360.0 - dlon) > lon_span {
                    return Verdict::Out;
                }
                let d = distance_km(lat, lon, rlat, rlon);
                if d > radius {
                    return Verdict::Out;
                }
                distance = Some(d);
            } else {
                distance = Some(distance_km(lat, lon, rlat, rlon));
            }
        }
        Verdict::In {
            category: self.categories == 0 || self.categories & (1 << r.category) != 0,
            price: r.max_price >= self.price_min && r.min_price <= self.price_max,
            distance,
        }
    }
}

pub(crate) fn price_band(min_price: i64) -> usize {
    PRICE_BANDS
        .iter()
        .rposition(|(from, _)| min_price >= *from)
        .unwrap_or(0)
}

/// How many events match, by category and price band (see [`Outcome`]). They depend on the
/// filters only, not on the order or the page, so browsing can reuse them page after page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub total: u64,
    pub categories: [u64; 9],
    pub price_bands: [u64; PRICE_BANDS.len()],
}

impl Outcome {
    /// No page, nothing counted.
    fn empty() -> Self {
        Self {
            page: Vec::new(),
            next: None,
            total: 0,
            categories: [0; 9],
            price_bands: [0; PRICE_BANDS.len()],
        }
    }

    pub fn counts(&self) -> Counts {
        Counts {
            total: self.total,
            categories: self.categories,
            price_bands: self.price_bands,
        }
    }
}

fn sort_key(
    req: &SearchRequest,
    catalog: &Catalog,
    slot: u32,
    score: f32,
    distance: Option<f64>,
) -> SortKey {
    let (a, b) = sort_head(req, &catalog.rows[slot as usize], score, distance);
    (a, b, catalog.ids[slot as usize])
}

/// A sort key without its final tie-breaker (the event id): enough to tell that a row cannot
/// make the page when it sorts after the heap's worst.
#[inline]
fn sort_head(req: &SearchRequest, r: &Row, score: f32, distance: Option<f64>) -> (i64, i64) {
    match req.sort {
        // Scores are sums of a few fixed weights: exact in thousandths.
        Sort::Relevance => (-((score * 1000.0).round() as i64), r.starts_at),
        Sort::Date => (r.starts_at, 0),
        Sort::Price => (r.min_price, r.starts_at),
        Sort::Distance => (
            (distance.unwrap_or(0.0) * 1000.0).round() as i64,
            r.starts_at,
        ),
    }
}

/// Runs `req` over `catalog`, with `matches` the text matches (`None` when browsing).
///
/// Browsing by date or price with `known` counts (from an earlier page of the same filters)
/// walks the catalog in that order from the cursor and stops at the page's end; otherwise one
/// pass over every candidate counts facets and keeps the best `limit + 1` in a bounded heap.
pub fn execute(
    req: &SearchRequest,
    catalog: &Catalog,
    matches: Option<&[(u32, f32)]>,
    now: i64,
    known: Option<Counts>,
    timing: &mut Timing,
) -> Outcome {
    let mut out = Outcome::empty();
    let Some(filters) = Filters::new(req, catalog, now) else {
        return out;
    };
    let after = req.cursor.map(|c| c.key);
    let keep = req.limit + 1;
    let rows = &catalog.rows;
    if let (None, Some(counts)) = (matches, known)
        && req.sort != Sort::Distance
        && req.geo.is_none_or(|g| g.radius_km.is_none())
    {
        let started = Instant::now();
        let order = if req.sort == Sort::Price {
            catalog.by_price()
        } else {
            catalog.by_date()
        };
        let from = match after {
            Some(a) => order.partition_point(|&s| sort_key(req, catalog, s, 0.0, None) <= a),
            None => 0,
        };
        let mut page = Vec::with_capacity(keep);
        for &slot in &order[from..] {
            if let Verdict::In {
                category: true,
                price: true,
                ..
            } = filters.judge(catalog, slot, &rows[slot as usize])
            {
                page.push((sort_key(req, catalog, slot, 0.0, None), slot));
                if page.len() == keep {
                    break;
                }
            }
        }
        out.total = counts.total;
        out.categories = counts.categories;
        out.price_bands = counts.price_bands;
        finish(req, catalog, page, &mut out);
        timing.sort = started.elapsed();
        return out;
    }
    // Browsing within a radius: only the events in the grid cells the circle touches.
    let near = match (matches, req.geo, filters.geo) {
        (None, Some(g), Some((_, _, Some(_), lat_span, lon_span))) => {
            catalog.near(g.lat, g.lon, lat_span, lon_span)
        }
        _ => None,
    };
    // One pass over the candidates: the filters (all but category and price, which facets
    // count while ignoring their own filter), the facet counts and the best `keep` in a bounded
    // heap, without a list of what passed (a full scan would make one of 100,000 rows).
    let started = Instant::now();
    let mut heap: BinaryHeap<(SortKey, u32)> = BinaryHeap::with_capacity(keep + 1);
    let mut visit = |slot: u32, r: &Row, score: f32| {
        let Verdict::In {
            category,
            price,
            distance,
        } = filters.judge(catalog, slot, r)
        else {
            return;
        };
        if price && let Some(c) = out.categories.get_mut(r.category as usize) {
            *c += 1;
        }
        if category && let Some(n) = out.price_bands.get_mut(usize::from(r.band)) {
            *n += 1;
        }
        if !(category && price) {
            return;
        }
        out.total += 1;
        let distance = req.geo.map(|_| distance.unwrap_or(0.0));
        let (a, b) = sort_head(req, r, score, distance);
        if let Some(top) = heap.peek()
            && heap.len() == keep
            && (a, b) > (top.0.0, top.0.1)
        {
            return;
        }
        let key = (a, b, catalog.ids[slot as usize]);
        if after.is_some_and(|a| key <= a) {
            return;
        }
        if heap.len() < keep {
            heap.push((key, slot));
        } else if heap.peek().is_some_and(|top| key < top.0) {
            heap.pop();
            heap.push((key, slot));
        }
    };
    match (matches, near) {
        (Some(m), _) => {
            // Text matches are scattered over the rows: one cache miss each. A chunk's rows
            // are first read only for the cheapest filter, so that their misses overlap (the
            // reads are independent), then judged in full from the cache.
            const CHUNK: usize = 16;
            for chunk in m.chunks(CHUNK) {
                let mut dated = [false; CHUNK];
                for (d, &(slot, _)) in dated.iter_mut().zip(chunk) {
                    *d = rows.get(slot as usize).is_some_and(|r| {
                        r.starts_at >= filters.starts_after && r.starts_at <= filters.starts_before
                    });
                }
                for (&(slot, score), _) in chunk.iter().zip(dated).filter(|(_, d)| *d) {
                    visit(slot, &rows[slot as usize], score);
                }
            }
        }
        (None, Some(slots)) => {
            for slot in slots {
                if let Some(r) = rows.get(slot as usize) {
                    visit(slot, r, 0.0);
                }
            }
        }
        (None, None) => {
            // Only the events of the date window (by default, those not started yet), read
            // front to back from the date-ordered copy of their rows.
            let (slots, window) =
                catalog.starting_between(filters.starts_after, filters.starts_before);
            for (&slot, r) in slots.iter().zip(window) {
                visit(slot, r, 0.0);
            }
        }
    }
    timing.filter = Some(started.elapsed());
    let started = Instant::now();
    finish(req, catalog, heap.into_sorted_vec(), &mut out);
    timing.sort = started.elapsed();
    out
}

/// Where one search's time went, phase by phase (see `crate::phases`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Timing {
    /// The pass over the candidates: filters, facet counts and the bounded top-k heap (none
    /// when browsing with known counts walks the date or price order instead).
    pub filter: Option<std::time::Duration>,
    /// Ordering the page (the heap's contents, or a browse walk in date or price order).
    pub sort: std::time::Duration,
}

/// Cuts the sorted candidates to a page, with the cursor of the next one if there is more.
fn finish(
    req: &SearchRequest,
    catalog: &Catalog,
    mut page: Vec<(SortKey, u32)>,
    out: &mut Outcome,
) {
    if page.len() > req.limit {
        page.truncate(req.limit);
        out.next = page.last().map(|(key, _)| Cursor {
            key: *key,
            query: req.fingerprint(),
        });
    }
    out.page = page
        .into_iter()
        .map(|(_, slot)| {
            let d = req.geo.map(|g| {
                let r = &catalog.rows[slot as usize];
                distance_km(g.lat, g.lon, f64::from(r.lat), f64::from(r.lon))
            });
            (slot, d)
        })
        .collect();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_fold_accents_and_case() {
        assert_eq!(words("Björk  BEYONCÉ björk"), vec!["bjork", "beyonce"]);
    }

    #[test]
    fn distances() {
        // Seattle to Portland is about 234 km.
        let d = distance_km(47.6062, -122.3321, 45.5152, -122.6784);
        assert!((d - 233.8).abs() < 2.0, "{d}");
        assert!(distance_km(10.0, 10.0, 10.0, 10.0) < 1e-9);
    }

    /// The typo lookups through the index's vocabulary find exactly what the automata find,
    /// with the same scores.
    #[test]
    fn typo_lookups_from_the_vocabulary_match_the_automata() {
        let (schema, f) = crate::schema::schema();
        let index = tantivy::Index::create_in_ram(schema);
        crate::schema::register(&index);
        let mut w = index.writer(15_000_000).expect("writer");
        let docs = [
            (
                "Taylor Swift | The Eras Tour",
                "Madison Square Garden New York",
            ),
            ("Tayler Holder Live", "Wembley Stadium London"),
            (
                "Beyoncé | Renaissance World Tour",
                "Gillette Stadium Boston",
            ),
            ("Björk | Cornucopia", "Moda Center Portland"),
            (
                "Bruce Springsteen and the E Street Band",
                "Lincoln Financial Field Philadelphia",
            ),
            ("Metallica | M72 World Tour", "SoFi Stadium Inglewood"),
            ("Coldplay | Music of the Spheres", "Rose Bowl Pasadena"),
            ("Coldplay tribute night", "Madison Theatre Covington"),
            (
                "Ed Sheeran | Mathematics Tour",
                "Metlife Stadium East Rutherford",
            ),
            ("Philharmonic Gala", "Philadelphia Academy of Music"),
        ];
        for (i, (title, text)) in docs.iter().enumerate() {
            let mut d = tantivy::TantivyDocument::default();
            d.add_text(f.id, i.to_string());
            d.add_text(f.title, title);
            d.add_text(f.text, format!("{title} {text}"));
            d.add_u64(f.slot, i as u64);
            w.add_document(d).expect("add");
        }
        w.commit().expect("commit");
        let searcher = index.reader().expect("reader").searcher();
        let vocabulary = Vocabulary::build(&searcher, f.text, 1).expect("vocabulary");
        assert!(vocabulary.len() > 40, "{vocabulary:?}");
        let automata = Automata::default();
        let queries = [
            "tayler swfit",
            "taylro",
            "swift",
            "beyonse",
            "bjrk",
            "springstien",
            "sprinsgteen",
            "metalica",
            "metallicca tuor",
            "coldpaly",
            "cldplay spheres",
            "madisn sqare",
            "philadelfia",
            "philadelphai",
            "wemblee stadum",
            "eras tour",
            "sheran mathematcs",
            "stadium",
            "gillete",
            "pasadna rose",
            "musci",
            "inglewod",
            "tour",
            "rutherfrod e",
        ];
        for q in queries {
            let by_automata = matches(
                &searcher,
                &f,
                &automata,
                None,
                &WordMatches::default(),
                1,
                Some(q),
                None,
            )
            .expect("automata");
            let by_vocabulary = matches(
                &searcher,
                &f,
                &automata,
                Some(&vocabulary),
                &WordMatches::default(),
                1,
                Some(q),
                None,
            )
            .expect("vocabulary");
            assert_eq!(by_automata, by_vocabulary, "{q}");
            assert!(
                by_automata.is_some_and(|m| !m.is_empty()),
                "{q} finds something"
            );
        }
    }

    /// A browse walks only its date window of the date-ordered rows; it must answer exactly
    /// what a scan of every row answers: the page, the cursor, the total and
    /// the facets, whatever the sort, category, price or availability filter, live or not.
    #[test]
    fn date_windows_answer_as_a_scan_of_every_row_does() {
        use boxoffice_domain::event::Category;
        let day = 86_400;
        let base = 1_800_000_000;
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let mut catalog = Catalog::default();
        for slot in 0..600u32 {
            let min = 500 + 500 * next(60) as i64;
            let source = crate::schema::Source {
                id: uuid::Uuid::from_u128(u128::from(next(u64::MAX)) << 64 | u128::from(slot)),
                name: format!("e{slot}"),
                performers: vec![],
                category: Category::ALL[next(8) as usize],
                description: String::new(),
                // Several events share each start: ties are broken by id.
                starts_at: base + day * next(120) as i64 + 3_600 * next(3) as i64,
                venue: "v".into(),
                city: "c".into(),
                zip_code: String::new(),
                country: "US".into(),
                lat: 40.0,
                lon: -75.0,
                min_price_cents: min,
                max_price_cents: min + 500 * next(20) as i64,
                currency: "USD".into(),
                capacity: 10,
                available: next(3) as u32,
                on_sale_at: 0,
                cancelled: false,
            };
            catalog.set(slot, &source);
        }
        for slot in (0..600).step_by(37) {
            catalog.remove(slot);
        }
        let at = |d: i64| {
            time::OffsetDateTime::from_unix_timestamp(base + d * day)
                .expect("time")
                .format(&time::format_description::well_known::Rfc3339)
                .expect("format")
        };
        let now = base - day;
        for (from, to) in [
            (0, 1),
            (3, 4),
            (10, 40),
            (50, 51),
            (0, 119),
            (119, 130),
            (200, 300),
        ] {
            for sort in ["date", "price", "relevance"] {
                for extra in [
                    vec![],
                    vec![("category", "concert,sports")],
                    vec![("priceMax", "9000"), ("availableOnly", "true")],
                ] {
                    let mut pairs = vec![
                        ("startsAfter".to_owned(), at(from)),
                        ("startsBefore".to_owned(), at(to)),
                        ("sort".to_owned(), sort.to_owned()),
                        ("limit".to_owned(), "7".to_owned()),
                    ];
                    pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
                    let req = SearchRequest::parse(&pairs).expect("a valid search");
                    let got = execute(&req, &catalog, None, now, None, &mut Timing::default());
                    let want = every_row(&req, &catalog, now);
                    let what = format!("{from}..{to} {sort} {extra:?}");
                    assert_eq!(got.page, want.page, "{what}");
                    assert_eq!(got.next.map(|c| c.key), want.next.map(|c| c.key), "{what}");
                    assert_eq!(got.counts(), want.counts(), "{what}");
                }
            }
        }
    }

    /// The reference for the test above: every row judged, in slot order, every passing one
    /// sorted.
    fn every_row(req: &SearchRequest, catalog: &Catalog, now: i64) -> Outcome {
        let filters = Filters::new(req, catalog, now).expect("filters");
        let mut out = Outcome::empty();
        let mut all = Vec::new();
        for (slot, r) in catalog.rows.iter().enumerate() {
            let slot = slot as u32;
            if let Verdict::In {
                category, price, ..
            } = filters.judge(catalog, slot, r)
            {
                if price {
                    out.categories[r.category as usize] += 1;
                }
                if category {
                    out.price_bands[price_band(r.min_price)] += 1;
                }
                if category && price {
                    out.total += 1;
                    all.push((sort_key(req, catalog, slot, 0.0, None), slot));
                }
            }
        }
        all.sort();
        all.truncate(req.limit + 1);
        finish(req, catalog, all, &mut out);
        out
    }

    #[test]
    fn union_sums_the_scores_of_each_slot_and_keeps_a_zip_codes_slots_only() {
        let a = [(1, 4.0), (3, 2.0), (7, 1.5)];
        let b = [(3, 4.0), (5, 1.0), (7, 2.0), (9, 2.0)];
        let c = [(0, 1.0), (9, 4.0)];
        assert_eq!(
            union(&[&a, &b, &c], None),
            vec![(0, 1.0), (1, 4.0), (3, 6.0), (5, 1.0), (7, 3.5), (9, 6.0)]
        );
        let zip = [(2, 0.0), (3, 0.0), (9, 0.0), (10, 0.0)];
        assert_eq!(
            union(&[&a, &b, &c], Some(&zip)),
            vec![(2, 0.0), (3, 6.0), (9, 6.0), (10, 0.0)]
        );
        assert!(union(&[], None).is_empty());
    }

    #[test]
    fn bands() {
        assert_eq!(price_band(0), 0);
        assert_eq!(price_band(2_499), 0);
        assert_eq!(price_band(2_500), 1);
        assert_eq!(price_band(1_000_000), 4);
    }
}
