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

use tantivy::index::SegmentId;
use tantivy::postings::{BlockSegmentPostings, TermInfo};
use tantivy::query::{DfaWrapper, FuzzyTermQuery};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{InvertedIndexReader, Searcher, SegmentReader, Term};

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

/// Levenshtein automata by (word, distance). Building one costs up to a millisecond for long
/// words at two typos, and the same words come back (popular searches, the same typos), so
/// each is built once and shared by every field and every search. They are only used until
/// the index's vocabulary is built ([`Vocabulary`]), which finds typos without them.
#[derive(Default)]
pub struct Automata {
    built: Mutex<HashMap<(String, u8), Arc<DfaWrapper>>>,
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
    fn get(&self, word: &str, distance: u8) -> Option<Arc<DfaWrapper>> {
        let key = (word.to_owned(), distance);
        if let Some(a) = self.built.lock().get(&key) {
            return Some(a.clone());
        }
        // A throwaway field: the automaton only looks at the term's text.
        let term = Term::from_field_text(Field::from_field_id(0), word);
        let dfa = Arc::new(FuzzyTermQuery::new(term, distance, true).automaton().ok()?);
        let mut built = self.built.lock();
        if built.len() >= MAX_AUTOMATA {
            built.clear();
        }
        built.insert(key, dfa.clone());
        Some(dfa)
    }
}

/// Which terms of a field match a query word one way.
enum Terms {
    /// This term.
    Exact(String),
    /// Every term that starts with this (the word being typed).
    Prefix(String),
    /// Every term the automaton accepts (typos, before the vocabulary is built).
    Near(Arc<DfaWrapper>),
}

/// One way a query word matches: the terms, their field and the score they give. A document's
/// score for the word is the best of the ways it matches (a disjunction-max).
struct Way {
    field: Field,
    terms: Terms,
    score: f32,
}

/// Each segment's slot of each document (`u32::MAX` for none), read once per segment from its
/// `slot` fast field: a word's matches are turned into slots one array read each, instead of
/// opening the column per lookup and decoding a value per document.
#[derive(Default)]
pub struct SlotMaps {
    maps: Mutex<HashMap<SegmentId, Arc<[u32]>>>,
}

impl std::fmt::Debug for SlotMaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotMaps")
            .field("segments", &self.maps.lock().len())
            .finish()
    }
}

impl SlotMaps {
    fn get(&self, searcher: &Searcher, segment: &SegmentReader) -> tantivy::Result<Arc<[u32]>> {
        let id = segment.segment_id();
        if let Some(map) = self.maps.lock().get(&id) {
            return Ok(map.clone());
        }
        let column = segment.fast_fields().u64("slot")?;
        let map: Arc<[u32]> = (0..segment.max_doc())
            .map(|doc| column.first(doc).map_or(u32::MAX, |s| s as u32))
            .collect();
        let mut maps = self.maps.lock();
        // Segments merged away are forgotten once the searcher no longer has them.
        if maps.len() >= 2 * searcher.segment_readers().len() + 8 {
            let current: Vec<SegmentId> = searcher
                .segment_readers()
                .iter()
                .map(|r| r.segment_id())
                .collect();
            maps.retain(|id, _| current.contains(id));
        }
        maps.insert(id, map.clone());
        Ok(map)
    }
}

/// A word found as typed in at least this share of events (1 in 200) is taken as meant:
/// common words ("tour", "live", "city") are spelt right far more often than not, and
/// expanding them to every neighbour ("four", "hour", "lives") costs the most and finds the
/// least.
const COMMON_WORD_SHARE: u64 = 200;

fn word_ways(
    searcher: &Searcher,
    f: &Fields,
    automata: &Automata,
    vocabulary: Option<&Vocabulary>,
    word: &str,
    last: bool,
) -> Vec<Way> {
    let text = Term::from_field_text(f.text, word);
    let common =
        searcher.doc_freq(&text).unwrap_or(0) >= (searcher.num_docs() / COMMON_WORD_SHARE).max(50);
    let way = |field: Field, terms: Terms, score: f32| Way {
        field,
        terms,
        score,
    };
    let mut ways = vec![
        way(f.title, Terms::Exact(word.to_owned()), 4.0),
        way(f.text, Terms::Exact(word.to_owned()), 2.0),
    ];
    let len = word.chars().count();
    if last && len >= 2 && !common {
        ways.push(way(f.title, Terms::Prefix(word.to_owned()), 2.5));
        ways.push(way(f.text, Terms::Prefix(word.to_owned()), 1.5));
    }
    if len >= 4 && !common {
        let distance = if len >= 8 { 2 } else { 1 };
        match vocabulary {
            // The index's words within `distance` of this one, each looked up exactly.
            Some(v) => {
                for near in v.near(word, distance) {
                    ways.push(way(f.title, Terms::Exact(near.to_owned()), 1.5));
                    ways.push(way(f.text, Terms::Exact(near.to_owned()), 1.0));
                }
            }
            None => {
                if let Some(dfa) = automata.get(word, distance) {
                    ways.push(way(f.title, Terms::Near(dfa.clone()), 1.5));
                    ways.push(way(f.text, Terms::Near(dfa), 1.0));
                }
            }
        }
    }
    ways
}

/// Every live document matching any of `ways`, as (slot, best score) sorted by slot. The
/// postings are read straight from each segment's term dictionary: no query, weight, scorer or
/// collector, whose per-lookup allocations (a zeroed bitset per automaton, the buffers of a
/// union) cost more than the postings themselves.
fn lookup(
    searcher: &Searcher,
    slot_maps: &SlotMaps,
    ways: &[Way],
) -> tantivy::Result<Vec<(u32, f32)>> {
    let mut found: Vec<(u32, f32)> = Vec::new();
    for segment in searcher.segment_readers() {
        let slots = slot_maps.get(searcher, segment)?;
        let alive = segment.alive_bitset();
        let mut add = |mut postings: BlockSegmentPostings, score: f32| {
            loop {
                let docs = postings.docs();
                if docs.is_empty() {
                    break;
                }
                for &doc in docs {
                    if alive.is_none_or(|a| a.is_alive(doc))
                        && let Some(&slot) = slots.get(doc as usize)
                        && slot != u32::MAX
                    {
                        found.push((slot, score));
                    }
                }
                postings.advance();
            }
        };
        let mut infos: Vec<TermInfo> = Vec::new();
        // Each field's inverted index once per segment: a word has up to dozens of ways (its
        // typo neighbours), in two fields.
        let mut indexes: Vec<(Field, Arc<InvertedIndexReader>)> = Vec::with_capacity(2);
        for way in ways {
            let index = match indexes.iter().find(|(f, _)| *f == way.field) {
                Some((_, index)) => index.clone(),
                None => {
                    let index = segment.inverted_index(way.field)?;
                    indexes.push((way.field, index.clone()));
                    index
                }
            };
            let dictionary = index.terms();
            infos.clear();
            match &way.terms {
                Terms::Exact(t) => infos.extend(dictionary.get(t.as_bytes())?),
                Terms::Prefix(p) => {
                    let mut stream = dictionary.range().ge(p.as_bytes()).into_stream()?;
                    while stream.advance() && stream.key().starts_with(p.as_bytes()) {
                        infos.push(stream.value().clone());
                    }
                }
                Terms::Near(dfa) => {
                    let mut stream = dictionary.search(&**dfa).into_stream()?;
                    while stream.advance() {
                        infos.push(stream.value().clone());
                    }
                }
            }
            for info in &infos {
                add(
                    index.read_block_postings_from_terminfo(info, IndexRecordOption::Basic)?,
                    way.score,
                );
            }
        }
    }
    found.sort_by_key(|&(slot, _)| slot);
    // A slot is one event: matched several ways (or by two documents), it counts once, at its
    // best.
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

/// What each query word matched, per index generation: `(slot, score)` sorted by slot. The
/// same words come back in different searches (an artist with another city, filter or sort),
/// and looking one up — its typo neighbours, prefix terms and their postings in two fields — is
/// the dearest part of a text search; combining the lists of a query's words is cheap.
#[derive(Default)]
pub struct WordMatches {
    known: Mutex<WordMap>,
}

/// The documents a word matched, as (slot, score) sorted by slot.
type Found = Arc<Vec<(u32, f32)>>;

/// Two halves, recent and older, each of at most half the pairs: a full recent half becomes the
/// older one (what was older is dropped), and a word found in the older half moves back to the
/// recent one. Words in use stay across the turnover; clearing everything at once made every
/// popular word a miss again each time the bound was reached.
#[derive(Default)]
struct WordMap {
    generation: u64,
    /// By (word, whether it was the query's last word: that one matches as a prefix too).
    recent: HashMap<(String, bool), Found>,
    older: HashMap<(String, bool), Found>,
    /// Pairs held in `recent`, to bound the memory.
    pairs: usize,
}

impl WordMap {
    fn keep(&mut self, key: (String, bool), found: Found) {
        if self.pairs + found.len() > MAX_WORD_PAIRS / 2 {
            self.older = std::mem::take(&mut self.recent);
            self.pairs = 0;
        }
        self.pairs += found.len();
        self.recent.insert(key, found);
    }
}

impl std::fmt::Debug for WordMatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let known = self.known.lock();
        f.debug_struct("WordMatches")
            .field("words", &(known.recent.len() + known.older.len()))
            .finish()
    }
}

/// (slot, score) pairs kept for words, in all (12 bytes each with the overhead).
const MAX_WORD_PAIRS: usize = 2_000_000;

impl WordMatches {
    fn get(&self, word: &str, last: bool, generation: u64) -> Option<Found> {
        let mut known = self.known.lock();
        if known.generation != generation {
            return None;
        }
        let key = (word.to_owned(), last);
        if let Some(found) = known.recent.get(&key) {
            return Some(found.clone());
        }
        let found = known.older.remove(&key)?;
        known.keep(key, found.clone());
        Some(found)
    }

    fn put(&self, word: &str, last: bool, generation: u64, found: Found) {
        let mut known = self.known.lock();
        if known.generation != generation {
            if generation < known.generation {
                return;
            }
            *known = WordMap {
                generation,
                ..WordMap::default()
            };
        }
        known.keep((word.to_owned(), last), found);
    }
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
    slot_maps: &SlotMaps,
    generation: u64,
    q: Option<&str>,
    zip: Option<&str>,
) -> tantivy::Result<Option<Vec<(u32, f32)>>> {
    let words = q.map(words).unwrap_or_default();
    if words.is_empty() && zip.is_none() {
        return Ok(if q.is_some() { Some(Vec::new()) } else { None });
    }
    // A zip code's documents score nothing of their own.
    let zip = match zip {
        Some(z) => Some(lookup(
            searcher,
            slot_maps,
            &[Way {
                field: fields.zip,
                terms: Terms::Exact(z.to_owned()),
                score: 0.0,
            }],
        )?),
        None => None,
    };
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
                let ways = word_ways(searcher, fields, automata, vocabulary, w, last);
                let found = Arc::new(lookup(searcher, slot_maps, &ways)?);
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
    EARTH_KM * 2.0 * a.sqrt().min(1.0).asin()
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
    /// Whether the sort needs each event's distance (others are computed for the page only).
    need_distance: bool,
    /// A radius's centre as a unit vector, and the squared chord lengths below which an event
    /// is surely within the radius and above which surely not (see [`Filters::chord_test`]).
    circle: Option<([f64; 3], f64, f64)>,
}

/// What the grid's quick test says of an event and a radius.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Within {
    /// Surely within: only the distance is left to compute, if the sort needs it.
    Yes,
    /// Not tested, or too close to the edge to tell: the exact test decides.
    Unsure,
}

/// Mean earth radius in kilometres, as [`distance_km`] uses it.
const EARTH_KM: f64 = 6_371.008_8;

/// Slack on a chord length for the grid's unit vectors, which are `f32` (their rounding moves
/// a chord by about 1e-7): events this close to the edge get the exact test.
const CHORD_SLACK: f64 = 1e-5;

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
            need_distance: req.sort == Sort::Distance,
            circle: req.geo.and_then(|g| {
                let radius = g.radius_km?;
                let angle = radius / EARTH_KM;
                if angle >= std::f64::consts::PI {
                    // The whole globe: every chord (at most 2) is within.
                    return Some((crate::catalog::unit_vector(g.lat, g.lon), 5.0, 5.0));
                }
                let chord = 2.0 * (angle / 2.0).sin();
                let inner = (chord - CHORD_SLACK).max(0.0);
                let outer = chord + CHORD_SLACK;
                Some((
                    crate::catalog::unit_vector(g.lat, g.lon),
                    inner * inner,
                    outer * outer,
                ))
            }),
        })
    }

    /// The radius test from an event's unit vector: `None` when it is surely outside. The
    /// chord between two points of the unit sphere grows with the angle between them, so
    /// comparing squared chords is the great-circle test without a sine or a square root.
    #[inline(always)]
    fn chord_test(&self, unit: [f32; 3]) -> Option<Within> {
        let Some((c, inner, outer)) = self.circle else {
            return Some(Within::Unsure);
        };
        let d2 = (0..3)
            .map(|i| {
                let d = f64::from(unit[i]) - c[i];
                d * d
            })
            .sum::<f64>();
        if d2 > outer {
            None
        } else if d2 < inner {
            Some(Within::Yes)
        } else {
            Some(Within::Unsure)
        }
    }

    #[inline(always)]
    fn judge(&self, catalog: &Catalog, slot: u32, r: &Row, within: Within) -> Verdict {
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
            if within == Within::Yes || radius.is_none() {
                // Within (or no radius): the distance only matters to a sort by distance.
                if self.need_distance {
                    distance = Some(distance_km(lat, lon, rlat, rlon));
                }
            } else if let Some(radius) = radius {
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
            }
        }
        Verdict::In {
            category: self.categories == 0 || self.categories & (1 << r.category) != 0,
            price: r.priced_within(self.price_min, self.price_max),
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

/// Sold-out events a browse with `availableOnly` takes away from counts made without looking at
/// seats; with more, it counts row by row.
const SOLD_OUT_TAKEN_AWAY: usize = 4_096;

/// A browse's counts without the full pass over its rows, where its filters allow: no zip code
/// or radius, and for a sort by price a date window that holds at least a quarter of the events
/// (the page is then found by walking the price order, which only the window's events pass).
/// The window's facets come from the date order's block marks ([`Catalog::facets_between`]);
/// with a price filter, those within it are counted in one tight pass over the window
/// ([`Catalog::priced_between`]); with `availableOnly`, the sold-out events in the window are
/// taken away.
fn counted(req: &SearchRequest, filters: &Filters, catalog: &Catalog) -> Option<Counts> {
    if filters.zip.is_some() || filters.circle.is_some() {
        return None;
    }
    let (after, before) = (filters.starts_after, filters.starts_before);
    if req.sort == Sort::Price && catalog.starting_between(after, before).0.len() * 4 < catalog.live
    {
        return None;
    }
    // Every event of the window, and those within the price filter.
    let mut all = catalog.facets_between(after, before);
    let mut within = if filters.price_min == i64::MIN && filters.price_max == i64::MAX {
        None
    } else {
        Some(catalog.priced_between(after, before, filters.price_min, filters.price_max))
    };
    if filters.available_only {
        let taken = catalog.for_each_sold_out(SOLD_OUT_TAKEN_AWAY, |slot| {
            if let Some(r) = catalog.rows.get(slot as usize)
                && r.alive
                && (after..=before).contains(&r.starts_at)
            {
                let (c, b) = (usize::from(r.category), usize::from(r.band));
                all[c][b] -= 1;
                if let Some(within) = within.as_mut()
                    && r.priced_within(filters.price_min, filters.price_max)
                {
                    within[c][b] -= 1;
                }
            }
        });
        if !taken {
            return None;
        }
    }
    let within = within.unwrap_or(all);
    let wanted = |c: usize| filters.categories == 0 || filters.categories & (1 << c) != 0;
    let mut counts = Counts {
        total: 0,
        categories: [0; 9],
        price_bands: [0; PRICE_BANDS.len()],
    };
    for c in 0..all.len() {
        // A category's count ignores the category filter; a price band's, the price filter.
        counts.categories[c] = within[c].iter().map(|&n| u64::from(n)).sum();
        if wanted(c) {
            counts.total += counts.categories[c];
            for (b, &n) in all[c].iter().enumerate() {
                counts.price_bands[b] += u64::from(n);
            }
        }
    }
    Some(counts)
}

/// Runs `req` over `catalog`, with `matches` the text matches (`None` when browsing).
///
/// Browsing by date or price with `known` counts (from an earlier page of the same filters, or
/// [`counted`] without looking at the rows) walks the catalog in that order from the cursor and
/// stops at the page's end; otherwise one pass over every candidate counts facets and keeps the
/// best `limit + 1` in a bounded heap.
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
    let walkable = matches.is_none()
        && req.sort != Sort::Distance
        && req.geo.is_none_or(|g| g.radius_km.is_none());
    let known = match known {
        Some(counts) => Some(counts),
        None if walkable => counted(req, &filters, catalog),
        None => None,
    };
    if let (true, Some(counts)) = (walkable, known) {
        // The counts are known: the page is the first `keep` events past the cursor that pass
        // every filter, walked in the sort's order.
        let started = Instant::now();
        let mut page = Vec::with_capacity(keep);
        // Without a cursor, every event the counts hold is on the way: no need to look further.
        let wanted = if after.is_none() {
            keep.min(usize::try_from(counts.total).unwrap_or(usize::MAX))
        } else {
            keep
        };
        let mut take = |slot: u32, r: &Row| {
            if let Verdict::In {
                category: true,
                price: true,
                ..
            } = filters.judge(catalog, slot, r, Within::Unsure)
            {
                page.push((sort_key(req, catalog, slot, 0.0, None), slot));
            }
            page.len() < wanted
        };
        let mut complete = true;
        if wanted > 0 {
            if req.sort == Sort::Price {
                let order = catalog.by_price();
                let from = match after {
                    Some(a) => {
                        order.partition_point(|&s| sort_key(req, catalog, s, 0.0, None) <= a)
                    }
                    None => 0,
                };
                // The price order reads scattered rows, each a cache miss: a walk that passes
                // this many without filling the page costs more than the one pass over the
                // window's rows below, and gives way to it.
                let budget = (catalog
                    .starting_between(filters.starts_after, filters.starts_before)
                    .0
                    .len()
                    / 8)
                .max(1_024);
                complete = false;
                for (walked, &slot) in order[from..].iter().enumerate() {
                    if walked == budget {
                        break;
                    }
                    if !take(slot, &rows[slot as usize]) {
                        complete = true;
                        break;
                    }
                }
                complete |= from + budget >= order.len();
            } else {
                // By date (as a browse by relevance is, all scores being equal): the window's
                // rows, read in order from the cursor.
                let (slots, window) =
                    catalog.starting_between(filters.starts_after, filters.starts_before);
                let from = match after {
                    Some(a) => {
                        slots.partition_point(|&s| sort_key(req, catalog, s, 0.0, None) <= a)
                    }
                    None => 0,
                };
                for (&slot, r) in slots[from..].iter().zip(&window[from..]) {
                    if !take(slot, r) {
                        break;
                    }
                }
            }
        }
        if complete {
            out.total = counts.total;
            out.categories = counts.categories;
            out.price_bands = counts.price_bands;
            finish(req, catalog, page, &mut out);
            timing.sort = started.elapsed();
            return out;
        }
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
    let mut visit = |slot: u32, r: &Row, score: f32, within: Within| {
        let Verdict::In {
            category,
            price,
            distance,
        } = filters.judge(catalog, slot, r, within)
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
                    visit(slot, &rows[slot as usize], score, Within::Unsure);
                }
            }
        }
        (None, Some(runs)) => {
            // The grid's cells around the centre, each a run of copied rows read in order;
            // most events outside the radius are told by their unit vectors alone.
            for p in runs.into_iter().flatten() {
                if let Some(within) = filters.chord_test(p.unit) {
                    visit(p.slot, &p.row, 0.0, within);
                }
            }
        }
        (None, None) => {
            // Only the events of the date window (by default, those not started yet), read
            // front to back from the date-ordered copy of their rows.
            let (slots, window) =
                catalog.starting_between(filters.starts_after, filters.starts_before);
            for (&slot, r) in slots.iter().zip(window) {
                visit(slot, r, 0.0, Within::Unsure);
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

    const DOCS: [(&str, &str); 10] = [
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

    /// An index of [`DOCS`], document `i` at slot `i`; `split`: over several segments, the
    /// slots in reverse, and document 3 deleted.
    fn index_of_docs(split: bool) -> (Searcher, Fields) {
        let (schema, f) = crate::schema::schema();
        let index = tantivy::Index::create_in_ram(schema);
        crate::schema::register(&index);
        let mut w = index.writer(15_000_000).expect("writer");
        for (i, (title, text)) in DOCS.iter().enumerate() {
            let mut d = tantivy::TantivyDocument::default();
            d.add_text(f.id, i.to_string());
            d.add_text(f.title, title);
            d.add_text(f.text, format!("{title} {text}"));
            d.add_u64(f.slot, if split { 100 - i as u64 } else { i as u64 });
            w.add_document(d).expect("add");
            if split && i % 4 == 3 {
                w.commit().expect("commit");
            }
        }
        if split {
            w.delete_term(Term::from_field_text(f.id, "3"));
        }
        w.commit().expect("commit");
        (index.reader().expect("reader").searcher(), f)
    }

    /// Reading postings straight from the term dictionaries finds what tantivy's own
    /// disjunction-max query of the same terms finds, with the same scores: over several
    /// segments, with a deleted document, for exact words, prefixes and typos (by the
    /// vocabulary and by the automata).
    #[test]
    fn direct_lookups_match_tantivys_queries() {
        use tantivy::collector::TopDocs;
        use tantivy::query::{ConstScoreQuery, DisjunctionMaxQuery, Query, TermQuery};
        let (searcher, f) = index_of_docs(true);
        assert!(searcher.segment_readers().len() > 1);
        let vocabulary = Vocabulary::build(&searcher, f.text, 1).expect("vocabulary");
        let automata = Automata::default();
        let maps = SlotMaps::default();
        let mut compared = 0;
        for word in [
            "tayler",
            "swfit",
            "swift",
            "sta",
            "stadium",
            "beyonse",
            "metalica",
            "tour",
            "philadelfia",
            "madisn",
            "col",
            "x",
            "rutherfrod",
            "bjork",
        ] {
            for last in [false, true] {
                for vocabulary in [None, Some(&vocabulary)] {
                    let ways = word_ways(&searcher, &f, &automata, vocabulary, word, last);
                    let got = lookup(&searcher, &maps, &ways).expect("lookup");
                    let disjuncts: Vec<Box<dyn Query>> = ways
                        .iter()
                        .map(|way| {
                            let q: Box<dyn Query> = match &way.terms {
                                Terms::Exact(t) => Box::new(TermQuery::new(
                                    Term::from_field_text(way.field, t),
                                    IndexRecordOption::Basic,
                                )),
                                Terms::Prefix(p) => Box::new(FuzzyTermQuery::new_prefix(
                                    Term::from_field_text(way.field, p),
                                    0,
                                    true,
                                )),
                                Terms::Near(_) => Box::new(FuzzyTermQuery::new(
                                    Term::from_field_text(way.field, word),
                                    if word.chars().count() >= 8 { 2 } else { 1 },
                                    true,
                                )),
                            };
                            Box::new(ConstScoreQuery::new(q, way.score)) as Box<dyn Query>
                        })
                        .collect();
                    let top = searcher
                        .search(
                            &DisjunctionMaxQuery::new(disjuncts),
                            &TopDocs::with_limit(100).order_by_score(),
                        )
                        .expect("search");
                    let mut want: Vec<(u32, f32)> = top
                        .into_iter()
                        .map(|(score, at)| {
                            let column = searcher
                                .segment_reader(at.segment_ord)
                                .fast_fields()
                                .u64("slot")
                                .expect("slot");
                            (column.first(at.doc_id).expect("a slot") as u32, score)
                        })
                        .collect();
                    want.sort_by_key(|&(slot, _)| slot);
                    assert_eq!(
                        got,
                        want,
                        "{word} last={last} vocabulary={}",
                        vocabulary.is_some()
                    );
                    compared += got.len();
                }
            }
        }
        assert!(compared > 50, "the words find documents: {compared}");
    }

    /// The typo lookups through the index's vocabulary find exactly what the automata find,
    /// with the same scores.
    #[test]
    fn typo_lookups_from_the_vocabulary_match_the_automata() {
        let (searcher, f) = index_of_docs(false);
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
                &SlotMaps::default(),
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
                &SlotMaps::default(),
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
        let day = 86_400;
        let base = 1_800_000_000;
        // Several events share each start: ties are broken by id.
        let catalog = random_catalog(600, 37, |_, next| {
            (
                40.0,
                -75.0,
                base + day * next(120) as i64 + 3_600 * next(3) as i64,
            )
        });
        let at = |d: i64| rfc3339(base + d * day);
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
                    let pairs = vec![
                        ("startsAfter".to_owned(), at(from)),
                        ("startsBefore".to_owned(), at(to)),
                        ("sort".to_owned(), sort.to_owned()),
                        ("limit".to_owned(), "7".to_owned()),
                    ];
                    let what = format!("{from}..{to} {sort} {extra:?}");
                    answers_as_every_row(&catalog, pairs, &extra, now, &what);
                }
            }
        }
    }

    /// A browse without a zip or radius filter takes its counts from the date order's block
    /// marks (with a price filter, from one pass over the window's prices; with
    /// `availableOnly`, taking the sold-out events away), then walks to its page: it must answer
    /// exactly what a scan of every row answers, page after page, whatever the window (within a
    /// block, across many, at the ends), category, price, sort and seats.
    #[test]
    fn browses_counted_from_block_marks_answer_as_every_row_does() {
        let day = 86_400;
        let base = 1_800_000_000;
        let catalog = random_catalog(5_000, 29, |_, next| {
            (
                40.0,
                -75.0,
                base + day * next(200) as i64 + 3_600 * next(3) as i64,
            )
        });
        // A few sold out (taken away from the marks' counts), the rest with seats left.
        for slot in 0..5_000 {
            catalog.set_available(slot, u32::from(slot % 17 != 3));
        }
        let at = |d: i64| rfc3339(base + d * day);
        let now = base - day;
        let mut counted_pages = 0;
        for sold_out_many in [false, true] {
            if sold_out_many {
                // More sold out than are taken away: counted row by row instead.
                for slot in 0..5_000 {
                    catalog.set_available(slot, u32::from(slot % 3 == 0));
                }
            }
            for (from, to) in [
                (0, 1),
                (3, 4),
                (10, 40),
                (0, 150),
                (0, 199),
                (150, 400),
                (300, 400),
            ] {
                for sort in ["date", "price", "relevance"] {
                    for extra in [
                        vec![],
                        vec![("category", "concert,sports")],
                        vec![("category", "theater"), ("availableOnly", "true")],
                        vec![("availableOnly", "true")],
                        vec![("priceMax", "9000")],
                        vec![
                            ("category", "sports"),
                            ("priceMin", "12000"),
                            ("priceMax", "20000"),
                        ],
                        vec![("priceMin", "5000"), ("availableOnly", "true")],
                    ] {
                        let mut pairs = vec![
                            ("startsAfter".to_owned(), at(from)),
                            ("startsBefore".to_owned(), at(to)),
                            ("sort".to_owned(), sort.to_owned()),
                        ];
                        pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
                        let what =
                            format!("{from}..{to} {sort} {extra:?} many sold out: {sold_out_many}");
                        let mut all = pairs.clone();
                        all.push(("limit".to_owned(), "100".to_owned()));
                        let all = SearchRequest::parse(&all).expect("a valid search");
                        let want = every_row(&all, &catalog, now);
                        // Pages of 7, each from the cursor of the one before, with nothing known.
                        pairs.push(("limit".to_owned(), "7".to_owned()));
                        let mut req = SearchRequest::parse(&pairs).expect("a valid search");
                        let mut seen = Vec::new();
                        for _ in 0..4 {
                            let filters = Filters::new(&req, &catalog, now).expect("filters");
                            counted_pages +=
                                usize::from(counted(&req, &filters, &catalog).is_some());
                            let got =
                                execute(&req, &catalog, None, now, None, &mut Timing::default());
                            assert_eq!(got.counts(), want.counts(), "{what}");
                            seen.extend(got.page.iter().copied());
                            let Some(next) = got.next else { break };
                            req.cursor = Some(next);
                        }
                        let n = seen.len();
                        assert_eq!(seen, want.page[..n.min(want.page.len())], "{what}");
                        assert!(
                            n == want.page.len() || n == 28,
                            "{what}: {n} of {}",
                            want.page.len()
                        );
                    }
                }
            }
        }
        // Most pages were counted from the marks (the rest: price sorts of narrow windows, and
        // too many sold out).
        assert!(counted_pages > 700, "{counted_pages}");
    }

    /// A radius search reads the grid's cells and tells most events by their unit vectors; it
    /// must answer exactly what the exact distance over every row answers, near the edge of
    /// the radius and across the antimeridian too.
    #[test]
    fn radius_searches_answer_as_the_exact_distance_over_every_row_does() {
        let base = 1_800_000_000;
        // Most around Philadelphia, some around Fiji on both sides of the antimeridian.
        let catalog = random_catalog(2_000, 41, |slot, next| {
            let (lat, lon) = if slot % 5 == 0 {
                let lon = 179.0 + next(2_000) as f64 / 1_000.0;
                (
                    -18.5 + next(2_000) as f64 / 1_000.0,
                    if lon > 180.0 { lon - 360.0 } else { lon },
                )
            } else {
                (
                    37.0 + next(6_000) as f64 / 1_000.0,
                    -78.0 + next(6_000) as f64 / 1_000.0,
                )
            };
            (lat, lon, base + 86_400 * next(60) as i64)
        });
        let now = base - 86_400;
        let mut inside = 0;
        for (lat, lon) in [
            (40.0, -75.0),
            (39.95, -75.17),
            (-17.8, 179.9),
            (-17.8, -179.95),
        ] {
            for radius in ["0.5", "5", "25", "80", "250"] {
                for sort in ["distance", "date", "price", "relevance"] {
                    for extra in [
                        vec![],
                        vec![("category", "concert,sports")],
                        vec![("priceMax", "9000"), ("availableOnly", "true")],
                    ] {
                        let pairs = vec![
                            ("lat".to_owned(), lat.to_string()),
                            ("lon".to_owned(), lon.to_string()),
                            ("radiusKm".to_owned(), radius.to_owned()),
                            ("sort".to_owned(), sort.to_owned()),
                            ("limit".to_owned(), "9".to_owned()),
                        ];
                        let what = format!("{lat},{lon} r={radius} {sort} {extra:?}");
                        inside += answers_as_every_row(&catalog, pairs, &extra, now, &what).total;
                    }
                }
            }
        }
        assert!(inside > 10_000, "the radii hold events: {inside}");
    }

    fn rfc3339(unix: i64) -> String {
        time::OffsetDateTime::from_unix_timestamp(unix)
            .expect("time")
            .format(&time::format_description::well_known::Rfc3339)
            .expect("format")
    }

    /// `events` events of random category, prices and seats, placed and dated by `place`
    /// (given the slot and the random source); every `removed`th removed again.
    fn random_catalog(
        events: u32,
        removed: usize,
        mut place: impl FnMut(u32, &mut dyn FnMut(u64) -> u64) -> (f64, f64, i64),
    ) -> Catalog {
        use boxoffice_domain::event::Category;
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let mut catalog = Catalog::default();
        for slot in 0..events {
            let (lat, lon, starts_at) = place(slot, &mut next);
            let min = 500 + 500 * next(60) as i64;
            let source = crate::schema::Source {
                id: uuid::Uuid::from_u128(u128::from(next(u64::MAX)) << 64 | u128::from(slot)),
                name: format!("e{slot}"),
                performers: vec![],
                category: Category::ALL[next(8) as usize],
                description: String::new(),
                starts_at,
                venue: "v".into(),
                city: "c".into(),
                zip_code: String::new(),
                country: "US".into(),
                lat,
                lon,
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
        for slot in (0..events).step_by(removed) {
            catalog.remove(slot);
        }
        catalog
    }

    /// Runs the search of `pairs` and `extra` over `catalog` and checks its page, cursor and
    /// facets against [`every_row`]'s; returns the reference.
    fn answers_as_every_row(
        catalog: &Catalog,
        mut pairs: Vec<(String, String)>,
        extra: &[(&str, &str)],
        now: i64,
        what: &str,
    ) -> Outcome {
        pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let req = SearchRequest::parse(&pairs).expect("a valid search");
        let got = execute(&req, catalog, None, now, None, &mut Timing::default());
        let want = every_row(&req, catalog, now);
        assert_eq!(got.page, want.page, "{what}");
        assert_eq!(got.next.map(|c| c.key), want.next.map(|c| c.key), "{what}");
        assert_eq!(got.counts(), want.counts(), "{what}");
        want
    }

    /// The reference for the tests above: every row judged (the exact distance for a radius),
    /// in slot order, every passing one sorted.
    fn every_row(req: &SearchRequest, catalog: &Catalog, now: i64) -> Outcome {
        let filters = Filters::new(req, catalog, now).expect("filters");
        let mut out = Outcome::empty();
        let mut all = Vec::new();
        for (slot, r) in catalog.rows.iter().enumerate() {
            let slot = slot as u32;
            if let Verdict::In {
                category,
                price,
                distance,
            } = filters.judge(catalog, slot, r, Within::Unsure)
            {
                if price {
                    out.categories[r.category as usize] += 1;
                }
                if category {
                    out.price_bands[price_band(r.min_price)] += 1;
                }
                if category && price {
                    out.total += 1;
                    let distance = req.geo.map(|_| distance.unwrap_or(0.0));
                    all.push((sort_key(req, catalog, slot, 0.0, distance), slot));
                }
            }
        }
        all.sort();
        all.truncate(req.limit + 1);
        finish(req, catalog, all, &mut out);
        out
    }

    /// The word matches keep what is in use when their bound is reached, drop what is not,
    /// and never hold more than the bound.
    #[test]
    fn word_matches_keep_the_words_in_use_within_their_bound() {
        let words = WordMatches::default();
        let list = |n: usize| -> Found { Arc::new(vec![(0, 1.0); n]) };
        let fifth = MAX_WORD_PAIRS / 5;
        let held = |w: &WordMatches| {
            let k = w.known.lock();
            k.recent
                .values()
                .chain(k.older.values())
                .map(|f| f.len())
                .sum::<usize>()
        };
        words.put("a", false, 1, list(fifth));
        words.put("b", false, 1, list(fifth));
        words.put("c", false, 1, list(fifth));
        // "a" is used again after the turnover; "b" is not.
        assert!(words.get("a", false, 1).is_some());
        words.put("d", false, 1, list(fifth));
        assert!(held(&words) <= MAX_WORD_PAIRS, "{}", held(&words));
        assert!(words.get("b", false, 1).is_none(), "unused: dropped");
        for w in ["a", "c", "d"] {
            assert!(words.get(w, false, 1).is_some(), "{w}");
        }
        assert!(
            words.get("a", true, 1).is_none(),
            "the last word's matches are apart"
        );
        // Another generation starts empty, and an older one's matches are not kept.
        assert!(words.get("a", false, 2).is_none());
        words.put("e", false, 2, list(1));
        words.put("f", false, 1, list(1));
        assert!(words.get("e", false, 2).is_some());
        assert!(words.get("a", false, 2).is_none() && words.get("f", false, 2).is_none());
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
