//! Event search: an embedded tantivy index on every node, kept fresh from the store's change
//! feed, answering `GET /v1/events` without touching the database.
//!
//! How it fits together:
//!
//! - [`schema`]: one tantivy document per event — `title` (name, performers) and `text`
//!   (everything searchable) analysed with accents folded and case lowered; the event id for
//!   replacing it; its *slot*; and its whole [`schema::Source`] stored, so that a node can
//!   restart from its index alone.
//! - [`catalog`]: the in-memory rows (one per slot) that filters, sorts, facets and hits read,
//!   including seats left. Immutable snapshots, swapped atomically by the indexer.
//! - `indexer`: the one writer (quickwit's habit: one index writer task), on its own thread.
//!   It follows the store's [`ChangeFeed`] — rebuild from one consistent scan when there is no
//!   usable index, then catch up and tail by cursor — and stores the cursor in each tantivy
//!   commit, atomically with the documents.
//! - [`query`]: the HTTP parameters parsed into a [`query::SearchRequest`] that cannot be
//!   invalid, and the opaque cursor.
//! - [`engine`]: one search against one snapshot: words through tantivy (exact, prefix and
//!   typo-tolerant terms, scored by what matched where), then one pass over the matching rows
//!   for filters, disjunctive facet counts and a bounded top-k by a total sort key.
//! - `runtime`: searches run on a fixed pool of CPU threads, off the async runtime, behind a
//!   bounded queue; rendered answers are cached per index generation, since popular searches
//!   repeat and any change retires every cached answer at once.
//!
//! Nothing here reads the store on a search: the booking tables are never locked or scanned
//! by a query.

pub mod catalog;
pub mod engine;
mod indexer;
mod phases;
pub mod query;
mod runtime;
pub mod schema;
pub mod typos;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};

use arc_swap::ArcSwap;
use boxoffice_domain::event::Category;
use boxoffice_domain::feed::ChangeFeed;
use boxoffice_domain::ports::StoreError;
use bytes::Bytes;
use tantivy::{IndexReader, ReloadPolicy};

use crate::catalog::Catalog;
use crate::engine::{Outcome, PRICE_BANDS};
use crate::phases::Phase;
use crate::query::SearchRequest;
use crate::runtime::{Cache, Pool};
use crate::schema::Fields;

pub use query::ParamError;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// Every search thread is busy and the queue is full: come back shortly.
    #[error("search is overloaded")]
    Overloaded,
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("{0}")]
    Internal(String),
}

/// Where the index lives and how searches are run.
#[derive(Debug, Clone)]
pub struct SearchConfig {
    /// The index directory (`<data-dir>/search-index`).
    pub dir: PathBuf,
    /// Search threads; one per core by default.
    pub threads: usize,
    /// Searches waiting for a thread beyond which new ones are refused with 503.
    pub queue: usize,
    /// Rendered answers kept for repeated searches; 0 turns the cache off.
    pub cache_entries: usize,
    /// How often events whose seats changed are read again from the store, bounding any
    /// drift between seat deltas and the store's own count (expired holds).
    pub reconcile_every: std::time::Duration,
    /// This node's stable id as a change-feed reader. When set, the indexer records how far
    /// its index has come (`ChangeFeed::record_reader`), so that the outbox is pruned only
    /// behind it; when unset, it holds nothing back (and rebuilds if it falls behind).
    pub reader_id: Option<String>,
}

impl SearchConfig {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            queue: 4_096,
            cache_entries: 20_000,
            reconcile_every: std::time::Duration::from_secs(30),
            reader_id: None,
        }
    }
}

pub(crate) struct Shared {
    fields: Fields,
    reader: IndexReader,
    catalog: ArcSwap<Catalog>,
    /// Moves on whenever the events searches see change (not their seat counts, which are
    /// read live); the caches key on it.
    generation: AtomicU64,
    /// Moves on whenever an event sells out or comes back: `availableOnly` answers key on it
    /// too.
    seats_generation: AtomicU64,
    ready: AtomicBool,
    /// Whether the indexer is waiting for the store to signal a change: then the index has
    /// everything the store had when the wait began, and keeps up as long as it waits.
    waiting: AtomicBool,
    /// When the index was last known to hold everything the store had: the start of the
    /// indexer's last successful step, or the end of its last wait.
    current_at: parking_lot::Mutex<std::time::Instant>,
    cache: Cache,
    pool: Pool,
    automata: engine::Automata,
    /// The index's words filed for typo lookups, once built for the current generation.
    vocabularies: Arc<typos::Vocabularies>,
    words: engine::WordMatches,
    slot_maps: engine::SlotMaps,
    /// Facet counts of recent browsing filters, per generation, for the pages after the first.
    counts: parking_lot::Mutex<std::collections::HashMap<(u64, u64), (u64, engine::Counts)>>,
}

/// The search handle the API holds: cheap to clone.
#[derive(Clone)]
pub struct SearchIndex {
    shared: Arc<Shared>,
    indexer: Arc<IndexerThread>,
}

/// How long dropping the last [`SearchIndex`] waits for the indexer thread to finish.
const STOP_ON_DROP: std::time::Duration = std::time::Duration::from_secs(10);

/// The indexer thread, seen from the handles: told to stop, and joined, by
/// [`SearchIndex::stop`] or when the last handle is dropped. Only handles hold it (never the
/// indexer itself, nor a search), so that it is never dropped on the thread it joins.
struct IndexerThread {
    stop: tokio::sync::watch::Sender<bool>,
    /// Disconnected once the thread has ended; and the thread, until joined.
    running: parking_lot::Mutex<Option<(mpsc::Receiver<()>, std::thread::JoinHandle<()>)>>,
}

impl IndexerThread {
    fn stop(&self, timeout: std::time::Duration) -> bool {
        self.stop.send_replace(true);
        let Some((done, thread)) = self.running.lock().take() else {
            return true;
        };
        match done.recv_timeout(timeout) {
            Err(mpsc::RecvTimeoutError::Timeout) => {
                tracing::warn!(
                    seconds = timeout.as_secs_f64(),
                    "the search indexer did not stop in time; leaving it behind"
                );
                false
            }
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                if thread.join().is_err() {
                    tracing::warn!("the search indexer had panicked");
                }
                true
            }
        }
    }
}

impl Drop for IndexerThread {
    fn drop(&mut self) {
        self.stop(STOP_ON_DROP);
    }
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("events", &self.shared.catalog.load().live)
            .field(
                "generation",
                &self.shared.generation.load(Ordering::Relaxed),
            )
            .finish_non_exhaustive()
    }
}

impl SearchIndex {
    /// Opens (or creates) the index in `config.dir`, loads it, and starts the indexer
    /// following `feed`: it catches up from the index's cursor, or rebuilds the index when
    /// there is none, then tails the feed until [`SearchIndex::stop`] or until the last handle
    /// is dropped.
    pub fn open(config: &SearchConfig, feed: Arc<dyn ChangeFeed>) -> Result<Self, SearchError> {
        let (index, fields) = indexer::open_index(&config.dir)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let shared = Arc::new(Shared {
            fields,
            reader,
            catalog: ArcSwap::from_pointee(Catalog::default()),
            generation: AtomicU64::new(0),
            seats_generation: AtomicU64::new(0),
            ready: AtomicBool::new(false),
            waiting: AtomicBool::new(false),
            current_at: parking_lot::Mutex::new(std::time::Instant::now()),
            cache: Cache::new(config.cache_entries),
            pool: Pool::new(config.threads, config.queue),
            automata: engine::Automata::default(),
            vocabularies: Arc::default(),
            words: engine::WordMatches::default(),
            slot_maps: engine::SlotMaps::default(),
            counts: Default::default(),
        });
        let indexer = indexer::Indexer::load(
            &index,
            fields,
            &shared,
            config.reconcile_every,
            config.reader_id.clone(),
        )?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let (done, running) = mpsc::channel();
        let thread = indexer
            .spawn(feed, stopped, done)
            .map_err(|e| SearchError::Internal(format!("spawning the search indexer: {e}")))?;
        let indexer = Arc::new(IndexerThread {
            stop,
            running: parking_lot::Mutex::new(Some((running, thread))),
        });
        Ok(Self { shared, indexer })
    }

    /// Stops the indexer and waits (blocking, at most `timeout`) for its thread to end;
    /// `false` if it did not end in time. Searches keep answering from what it had indexed.
    ///
    /// The indexer drives its IO on the runtime it was opened from: call this (or drop the
    /// last handle, which does the same) before that runtime shuts down, from a blocking
    /// context (`tokio::task::spawn_blocking`). Stopping twice is harmless.
    pub fn stop(&self, timeout: std::time::Duration) -> bool {
        self.indexer.stop(timeout)
    }

    /// Whether the indexer has caught up with the store at least once since start.
    pub fn is_ready(&self) -> bool {
        self.shared.ready.load(Ordering::Acquire)
    }

    /// How far behind the store the index may be: zero while the indexer waits for changes
    /// (it has applied everything), otherwise the time since it last had (the start of its
    /// last successful step). It grows while the indexer is stalled or failing; `None` until
    /// the index has been built (see [`Self::is_ready`]).
    pub fn lag(&self) -> Option<std::time::Duration> {
        if !self.is_ready() {
            return None;
        }
        if self.shared.waiting.load(Ordering::Acquire) {
            return Some(std::time::Duration::ZERO);
        }
        Some(self.shared.current_at.lock().elapsed())
    }

    /// Events currently searchable.
    pub fn len(&self) -> usize {
        self.shared.catalog.load().live
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs a search and renders its answer as the JSON body of `GET /v1/events`.
    pub async fn search(&self, req: SearchRequest) -> Result<Bytes, SearchError> {
        let started = std::time::Instant::now();
        let shared = &self.shared;
        let generation = shared.generation_for(&req);
        let key = req.cache_key();
        if let Some(outcome) = shared.cache.get(&key, generation) {
            phases::answer(true);
            // Seats left and sale status are rendered as they are now.
            let body = render_timed(&outcome, &shared.catalog.load());
            phases::record(Phase::Total, started.elapsed());
            return Ok(body);
        }
        phases::answer(false);
        let s = self.shared.clone();
        let (outcome, body) = shared
            .pool
            .run(move || {
                phases::record(Phase::Queue, started.elapsed());
                run(&s, &req, generation)
            })
            .await
            .ok_or(SearchError::Overloaded)??;
        shared.cache.put(key, generation, outcome);
        phases::record(Phase::Total, started.elapsed());
        Ok(body)
    }
}

impl Shared {
    /// What a cached answer to `req` must have been computed under: the events' generation,
    /// and for `availableOnly` which events had seats left.
    fn generation_for(&self, req: &SearchRequest) -> (u64, u64) {
        (
            self.generation.load(Ordering::Acquire),
            if req.available_only {
                self.seats_generation.load(Ordering::Acquire)
            } else {
                0
            },
        )
    }
}

fn run(
    shared: &Shared,
    req: &SearchRequest,
    generation: (u64, u64),
) -> Result<(Arc<Outcome>, Bytes), SearchError> {
    let catalog = shared.catalog.load_full();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let started = std::time::Instant::now();
    let matches = if req.q.is_some() || req.zip_code.is_some() {
        let searcher = shared.reader.searcher();
        let vocabulary = shared
            .vocabularies
            .get(&searcher, shared.fields.text, generation.0);
        let found = engine::matches(
            &searcher,
            &shared.fields,
            &shared.automata,
            vocabulary.as_deref(),
            &shared.words,
            &shared.slot_maps,
            generation.0,
            req.q.as_deref(),
            req.zip_code.as_deref(),
        )?;
        phases::record(Phase::Text, started.elapsed());
        found
    } else {
        None
    };
    let browsing = matches.is_none();
    let key = (req.filters_fingerprint(), generation.1);
    let known = if browsing {
        match shared.counts.lock().get(&key) {
            Some((g, counts)) if *g == generation.0 => Some(*counts),
            _ => None,
        }
    } else {
        None
    };
    let mut timing = engine::Timing::default();
    let outcome = engine::execute(req, &catalog, matches.as_deref(), now, known, &mut timing);
    if let Some(filter) = timing.filter {
        phases::record(Phase::Filter, filter);
    }
    phases::record(Phase::Sort, timing.sort);
    if browsing && known.is_none() {
        let mut counts = shared.counts.lock();
        if counts.len() >= 10_000 {
            counts.clear();
        }
        counts.insert(key, (generation.0, outcome.counts()));
    }
    let body = render_timed(&outcome, &catalog);
    Ok((Arc::new(outcome), body))
}

fn render_timed(outcome: &Outcome, catalog: &Catalog) -> Bytes {
    let started = std::time::Instant::now();
    let body = render(
        outcome,
        catalog,
        time::OffsetDateTime::now_utc().unix_timestamp(),
    );
    phases::record(Phase::Render, started.elapsed());
    body
}

/// Renders an answer; `saleStatus` is computed at `now` (unix seconds).
fn render(o: &Outcome, catalog: &Catalog, now: i64) -> Bytes {
    use std::fmt::Write;
    let mut s = String::with_capacity(512 + o.page.len() * 512);
    s.push_str("{\"events\":[");
    for (i, (slot, distance)) in o.page.iter().enumerate() {
        let Some(Some(hit)) = catalog.hits.get(*slot as usize) else {
            continue;
        };
        if i > 0 {
            s.push(',');
        }
        s.push_str(&hit.json_head);
        let row = &catalog.rows[*slot as usize];
        let left = catalog.available(*slot);
        let _ = write!(
            s,
            ",\"seatsLeft\":{left},\"saleStatus\":\"{}\"",
            hit.sale_status(row.starts_at, now)
        );
        if let Some(d) = distance {
            let _ = write!(s, ",\"distanceKm\":{:.1}", d);
        }
        s.push('}');
    }
    s.push_str("],\"nextCursor\":");
    match &o.next {
        Some(c) => {
            let _ = write!(s, "\"{}\"", c.encode());
        }
        None => s.push_str("null"),
    }
    let _ = write!(s, ",\"total\":{},\"facets\":{{\"category\":{{", o.total);
    for (i, c) in Category::ALL.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "\"{}\":{}", c.as_str(), o.categories[i]);
    }
    s.push_str("},\"priceBand\":[");
    for (i, ((from, to), n)) in PRICE_BANDS.iter().zip(o.price_bands).enumerate() {
        if i > 0 {
            s.push(',');
        }
        match to {
            Some(to) => {
                let _ = write!(s, "{{\"minCents\":{from},\"maxCents\":{to},\"count\":{n}}}");
            }
            None => {
                let _ = write!(s, "{{\"minCents\":{from},\"maxCents\":null,\"count\":{n}}}");
            }
        }
    }
    s.push_str("]}}");
    Bytes::from(s)
}
