//! The one writer: follows the store's change feed and keeps the tantivy index and the
//! in-memory catalog up to date.
//!
//! It runs on a thread of its own (its IO driven by the application's runtime), so that
//! tantivy's blocking calls never stall request handling. Its loop: apply everything after the cursor in
//! one consistent read, publish, commit, then wait for the store to signal a change (or a
//! second to pass).
//!
//! - New or changed events (`event.changed`) are read again, in the same read as the changes,
//!   and their documents replaced. Their availability comes with them and already includes
//!   this read's seat deltas, which are therefore skipped for them.
//! - Seat deltas (`seats.changed`) adjust the catalog row in place and are visible to the next
//!   search at once; the document is rewritten at the next commit only so that the index on
//!   disk matches its cursor.
//! - Each commit stores the cursor in the commit payload, atomically with the documents. At
//!   start the index is loaded and caught up from that cursor; with no usable index (none, a
//!   schema change, another database) it is rebuilt from one consistent scan.
//! - The committed cursor is recorded in the store as this node's reader position (every few
//!   seconds at most), so that the outbox is pruned only behind it. If the feed was pruned
//!   past the cursor anyway (the node was away longer than the reader retention), the read
//!   says so and the index is rebuilt.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak, mpsc};
use std::time::{Duration, Instant};

use boxoffice_domain::feed::{Change, ChangeFeed, FeedCursor, FeedRead};
use boxoffice_domain::ids::EventId;
use serde::{Deserialize, Serialize};
use tantivy::schema::Term;
use tantivy::{Index, IndexWriter, TantivyDocument};
use tokio::sync::watch;
use uuid::Uuid;

use crate::catalog::Catalog;
use crate::schema::{Fields, SCHEMA_VERSION, Source};
use crate::{SearchError, Shared};

/// Changes read per page, and events per page of a rebuild.
const PAGE: usize = 2_000;
/// The shortest time between two reads of the feed.
const MIN_STEP: Duration = Duration::from_millis(50);
/// How long the indexer sleeps between looks when the store does not signal.
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// Seat-only changes are visible at once (in the shared seat counts); their documents are
/// rewritten this often, only so that the index on disk matches the cursor it commits. Each
/// such commit leaves a small segment that every text search then visits until merged, so not
/// too often; a restart applies the deltas since the last commit again from the feed.
const AVAILABILITY_COMMIT_EVERY: Duration = Duration::from_secs(30);
/// The shortest time between two records of this reader's position, and the longest (so that
/// a reader with nothing to apply still counts as alive).
const RECORD_EVERY: Duration = Duration::from_secs(5);
const RECORD_AT_LEAST_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    schema: u32,
    cursor: FeedCursor,
}

pub(crate) struct Indexer {
    shared: Weak<Shared>,
    fields: Fields,
    writer: IndexWriter,
    catalog: Catalog,
    /// Every live event: its slot, its seats and a fingerprint of the rest. Its text is in the
    /// index (or in `unsaved`), not kept here a second time.
    events: HashMap<Uuid, Known>,
    /// Events added or replaced since the last commit, which the committed index does not hold
    /// yet: a seat count rewritten before that commit takes their text from here.
    unsaved: HashMap<Uuid, Source>,
    next_slot: u32,
    cursor: Option<FeedCursor>,
    /// Events whose seats changed since the last commit.
    dirty: HashSet<Uuid>,
    /// Documents were added or deleted since the last commit.
    docs_pending: bool,
    /// The catalog's rows changed (not only seat counts) since it was last published.
    catalog_changed: bool,
    /// Some event's seats left went to zero or back from it since searches were last told
    /// (`availableOnly` answers depend on it).
    sold_out_changed: bool,
    /// Merge every segment into one after the next commit (after a rebuild).
    merge_after_commit: bool,
    /// Events that got seat deltas since they were last read from the store.
    seats_touched: HashSet<Uuid>,
    last_reconcile: Instant,
    reconcile_every: Duration,
    last_commit: Instant,
    /// This node's id as a feed reader; `None` records nothing.
    reader_id: Option<String>,
    /// The cursor of the last commit: what a restart would resume from.
    committed: Option<FeedCursor>,
    /// The cursor last recorded in the store, and when.
    recorded: Option<(FeedCursor, Instant)>,
}

impl std::fmt::Debug for Indexer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Indexer")
            .field("events", &self.events.len())
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}

/// What the indexer keeps of a live event between commits (the rest is in the index).
#[derive(Debug, Clone, Copy)]
struct Known {
    slot: u32,
    available: u32,
    capacity: u32,
    cancelled: bool,
    /// [`Source::fingerprint`]: everything but the seat count.
    fingerprint: u64,
}

impl Known {
    fn of(slot: u32, source: &Source) -> Self {
        Self {
            slot,
            available: source.available,
            capacity: source.capacity,
            cancelled: source.cancelled,
            fingerprint: source.fingerprint(),
        }
    }
}

/// The indexing thread's memory arena.
const WRITER_ARENA_BYTES: usize = 16_000_000;

impl Indexer {
    /// Loads what the index at `index` holds: documents, catalog, cursor.
    pub(crate) fn load(
        index: &Index,
        fields: Fields,
        shared: &Arc<Shared>,
        reconcile_every: Duration,
        reader_id: Option<String>,
    ) -> Result<Self, SearchError> {
        // A previous indexer on this directory (a handle just dropped in this process) lets go
        // of the writer lock within a second or so.
        let started = Instant::now();
        // One indexing thread with a 16 MB arena (tantivy's least is 15 MB): a rebuild of
        // 100,000 events flushes a few more segments and merges them, no slower, and the node
        // holds about 100 MB less anonymous memory afterwards than with a 64 MB arena
        // (measured, `bench/RESULTS.md`; whether the allocator or tantivy kept it is unproven).
        let writer = loop {
            match index.writer_with_num_threads(1, WRITER_ARENA_BYTES) {
                Ok(w) => break w,
                Err(tantivy::TantivyError::LockFailure(..))
                    if started.elapsed() < Duration::from_secs(10) =>
                {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(e.into()),
            }
        };
        let mut me = Self {
            shared: Arc::downgrade(shared),
            fields,
            writer,
            catalog: Catalog::default(),
            events: HashMap::new(),
            unsaved: HashMap::new(),
            next_slot: 0,
            cursor: None,
            dirty: HashSet::new(),
            docs_pending: false,
            catalog_changed: false,
            sold_out_changed: false,
            merge_after_commit: false,
            seats_touched: HashSet::new(),
            last_reconcile: Instant::now(),
            reconcile_every,
            last_commit: Instant::now(),
            reader_id,
            committed: None,
            recorded: None,
        };
        // What a previous writer committed while we waited is what we load.
        shared.reader.reload()?;
        let payload: Option<Payload> = index
            .load_metas()?
            .payload
            .and_then(|p| serde_json::from_str(&p).ok());
        let Some(payload) = payload.filter(|p| p.schema == SCHEMA_VERSION) else {
            return Ok(me);
        };
        let searcher = shared.reader.searcher();
        for segment in searcher.segment_readers() {
            let store = segment
                .get_store_reader(64)
                .map_err(|e| SearchError::Internal(e.to_string()))?;
            for doc in store.iter::<TantivyDocument>(segment.alive_bitset()) {
                let doc = doc?;
                if let Some((slot, source)) = Source::from_document(&doc, &fields) {
                    me.catalog.set(slot, &source);
                    me.next_slot = me.next_slot.max(slot + 1);
                    me.events.insert(source.id, Known::of(slot, &source));
                }
            }
        }
        me.committed = Some(payload.cursor.clone());
        me.cursor = Some(payload.cursor);
        me.publish();
        tracing::info!(events = me.events.len(), "search index loaded");
        Ok(me)
    }

    /// Starts the indexer on a thread of its own. It stops when `stop` turns true or its
    /// sender is dropped (see [`crate::SearchIndex::stop`]), or once every handle to the index
    /// has been dropped; `done` is dropped as the thread ends.
    ///
    /// Its IO runs on the caller's runtime (the connections it opens are driven there, so
    /// they never stall while this thread is busy in tantivy), its blocking work on its own
    /// thread, never on a runtime worker. That runtime must therefore outlive it: whoever
    /// shuts the runtime down stops the indexer first.
    pub(crate) fn spawn(
        self,
        feed: Arc<dyn ChangeFeed>,
        stop: watch::Receiver<bool>,
        done: mpsc::Sender<()>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let handle = tokio::runtime::Handle::try_current().ok();
        std::thread::Builder::new()
            .name("search-indexer".into())
            .spawn(move || {
                let _done = done;
                match handle {
                    Some(handle) => handle.block_on(self.run(feed, stop)),
                    None => match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt.block_on(self.run(feed, stop)),
                        Err(e) => tracing::error!(error = %e, "the search indexer cannot start"),
                    },
                }
            })
    }

    /// Follows the feed until told to stop. A stop lands between two awaits, never inside
    /// a tantivy commit: what is committed is consistent with its cursor, and what was not
    /// committed yet is simply applied again by the next start.
    async fn run(self, feed: Arc<dyn ChangeFeed>, mut stop: watch::Receiver<bool>) {
        tokio::select! {
            biased;
            // Also resolves (with an error) when the sender is gone.
            _ = stop.wait_for(|stop| *stop) => {}
            () = self.follow(feed) => {}
        }
        tracing::debug!("search indexer stopped");
    }

    async fn follow(mut self, feed: Arc<dyn ChangeFeed>) {
        let mut failures = 0u32;
        let mut last_step = Instant::now()
            .checked_sub(MIN_STEP)
            .unwrap_or_else(Instant::now);
        loop {
            if self.shared.strong_count() == 0 {
                return;
            }
            // Under a stream of changes (a booking rush notifies on every commit) this gathers
            // them into batches, so that publishing a catalog snapshot stays a small cost.
            tokio::time::sleep(MIN_STEP.saturating_sub(last_step.elapsed())).await;
            last_step = Instant::now();
            match self.step(&*feed).await {
                Ok(()) => {
                    failures = 0;
                    if let Some(s) = self.shared.upgrade() {
                        // The step read the store as it was when it began.
                        *s.current_at.lock() = last_step;
                        s.ready.store(true, Ordering::Release);
                    }
                }
                Err(e) => {
                    failures += 1;
                    if failures == 1 || failures.is_multiple_of(60) {
                        tracing::warn!(error = %e, failures, "search indexer step failed; retrying");
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            }
            if let Some(cursor) = &self.cursor {
                let mut wait = if self.dirty.is_empty() {
                    IDLE_WAIT
                } else {
                    AVAILABILITY_COMMIT_EVERY.saturating_sub(self.last_commit.elapsed())
                };
                if !self.seats_touched.is_empty() {
                    wait = wait.min(
                        self.reconcile_every
                            .saturating_sub(self.last_reconcile.elapsed()),
                    );
                }
                if let Some(s) = self.shared.upgrade() {
                    s.waiting.store(true, Ordering::Release);
                }
                let waited = feed.wait(cursor, wait.max(Duration::from_millis(10))).await;
                match self.shared.upgrade() {
                    Some(s) => {
                        // Nothing was missed while waiting: a change ends the wait.
                        *s.current_at.lock() = Instant::now();
                        s.waiting.store(false, Ordering::Release);
                    }
                    None => return,
                }
                if let Err(e) = waited {
                    tracing::debug!(error = %e, "waiting for changes failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    async fn step(&mut self, feed: &dyn ChangeFeed) -> Result<(), SearchError> {
        match self.cursor.clone() {
            None => self.rebuild(feed).await?,
            Some(cursor) => {
                let read = feed.read(Some(&cursor)).await?;
                if read.cursor().store_id != cursor.store_id {
                    tracing::info!("the search index belongs to another database; rebuilding");
                    drop(read);
                    self.rebuild(feed).await?;
                } else if read.fell_behind() {
                    tracing::info!(
                        "the change feed was pruned past the search index's cursor; rebuilding"
                    );
                    drop(read);
                    self.rebuild(feed).await?;
                } else if read.cursor() != &cursor || self.reconcile_due() {
                    self.catch_up(read).await?;
                }
            }
        }
        self.maybe_commit().await?;
        self.record_position(feed).await;
        Ok(())
    }

    /// Tells the store how far the committed index has come, at most every [`RECORD_EVERY`]
    /// and at least every [`RECORD_AT_LEAST_EVERY`]. A failure is only logged: the worst it
    /// does is let the outbox be pruned past this node, which then rebuilds.
    async fn record_position(&mut self, feed: &dyn ChangeFeed) {
        let (Some(reader), Some(committed)) = (&self.reader_id, &self.committed) else {
            return;
        };
        let due = match &self.recorded {
            None => true,
            Some((cursor, at)) => {
                (cursor != committed && at.elapsed() >= RECORD_EVERY)
                    || at.elapsed() >= RECORD_AT_LEAST_EVERY
            }
        };
        if !due {
            return;
        }
        let now = boxoffice_domain::event::to_micros(time::OffsetDateTime::now_utc());
        match feed.record_reader(reader, committed, now).await {
            Ok(()) => self.recorded = Some((committed.clone(), Instant::now())),
            Err(e) => tracing::debug!(error = %e, "recording the feed reader's position failed"),
        }
    }

    async fn rebuild(&mut self, feed: &dyn ChangeFeed) -> Result<(), SearchError> {
        let started = Instant::now();
        let mut read = feed.read(None).await?;
        self.writer.delete_all_documents()?;
        self.catalog = Catalog::default();
        self.events.clear();
        self.unsaved.clear();
        self.dirty.clear();
        self.seats_touched.clear();
        self.next_slot = 0;
        let mut after: Option<EventId> = None;
        loop {
            let page = read.all_events(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.event.id);
            for entry in &page {
                // Every document was deleted above and each event comes once: nothing to
                // replace, so no delete is queued (tantivy keeps each one until the commit).
                self.add(Source::from_entry(entry), false)?;
            }
        }
        self.cursor = Some(read.cursor().clone());
        self.docs_pending = true;
        self.merge_after_commit = true;
        self.publish();
        tracing::info!(
            events = self.events.len(),
            seconds = started.elapsed().as_secs_f64(),
            "search index rebuilt"
        );
        Ok(())
    }

    fn reconcile_due(&self) -> bool {
        !self.seats_touched.is_empty() && self.last_reconcile.elapsed() >= self.reconcile_every
    }

    async fn catch_up(&mut self, mut read: Box<dyn FeedRead>) -> Result<(), SearchError> {
        // Events read again in this read: their availability already includes every seat
        // change of the read.
        let mut reread: HashSet<EventId> = HashSet::new();
        if self.reconcile_due() {
            self.reconcile(&mut *read, &mut reread).await?;
        }
        loop {
            let page = read.changes(PAGE).await?;
            if page.is_empty() {
                break;
            }
            let mut fresh = Vec::new();
            let mut deltas: Vec<(EventId, i64)> = Vec::new();
            for change in page {
                match change {
                    Change::EventChanged(id) => {
                        if reread.insert(id) {
                            fresh.push(id);
                        }
                    }
                    Change::SeatsChanged(id, delta) => {
                        let n: i64 = delta.sections.iter().map(|s| i64::from(s.available)).sum();
                        deltas.push((id, n));
                    }
                    Change::Other(_, kind) => {
                        tracing::debug!(%kind, "outbox change of an unknown kind skipped");
                    }
                }
            }
            if !fresh.is_empty() {
                let entries = read.events(&fresh).await?;
                let found: HashSet<Uuid> = entries.iter().map(|e| e.event.id.0).collect();
                for entry in &entries {
                    self.add(Source::from_entry(entry), true)?;
                }
                for id in fresh.iter().filter(|id| !found.contains(&id.0)) {
                    self.delete(id.0)?;
                }
            }
            for (id, n) in deltas {
                if !reread.contains(&id) {
                    self.adjust(id.0, n);
                }
            }
        }
        self.cursor = Some(read.cursor().clone());
        // A PostgreSQL cursor moves with every transaction in the database, and seat deltas
        // are already in the shared counts: only changed events make a new snapshot (and
        // retire the cached answers); an event sold out or back retires those of
        // `availableOnly` searches only.
        if self.catalog_changed {
            self.publish();
        } else if std::mem::take(&mut self.sold_out_changed)
            && let Some(s) = self.shared.upgrade()
        {
            s.seats_generation.fetch_add(1, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Reads the events whose seats changed lately again, taking the store's count of
    /// available places as of this read. Deltas are exact for the changes the booking code
    /// records, but a hold that expires is available to the store (it counts expired holds as
    /// open) before anything writes its release, and a rebuild counts it as available while its
    /// release may still be on its way as a delta; reading the count again bounds any such
    /// drift to `SearchConfig::reconcile_every`.
    async fn reconcile(
        &mut self,
        read: &mut dyn FeedRead,
        reread: &mut HashSet<EventId>,
    ) -> Result<(), SearchError> {
        let ids: Vec<EventId> = self.seats_touched.drain().map(EventId).collect();
        self.last_reconcile = Instant::now();
        for chunk in ids.chunks(PAGE) {
            let entries = read.events(chunk).await?;
            for entry in &entries {
                let source = Source::from_entry(entry);
                match self.events.get(&source.id) {
                    Some(known) if known.available == source.available => {}
                    // Only the count drifted: no new document, no new snapshot.
                    Some(known) if known.fingerprint == source.fingerprint() => {
                        self.set_seats(source.id, source.available);
                    }
                    _ => {
                        self.add(source, true)?;
                    }
                }
            }
            reread.extend(chunk.iter().copied());
        }
        Ok(())
    }

    /// Adds an event's document; `replace` first deletes any it had (not needed in a rebuild).
    fn add(&mut self, source: Source, replace: bool) -> Result<(), SearchError> {
        let slot = match self.events.get(&source.id) {
            Some(known) => known.slot,
            None => {
                self.next_slot += 1;
                self.next_slot - 1
            }
        };
        if replace {
            self.writer.delete_term(Term::from_field_text(
                self.fields.id,
                &source.id.to_string(),
            ));
        }
        self.writer
            .add_document(source.document(&self.fields, slot))?;
        self.catalog.set(slot, &source);
        self.catalog_changed = true;
        self.dirty.remove(&source.id);
        self.seats_touched.remove(&source.id);
        self.events.insert(source.id, Known::of(slot, &source));
        self.unsaved.insert(source.id, source);
        self.docs_pending = true;
        Ok(())
    }

    fn delete(&mut self, id: Uuid) -> Result<(), SearchError> {
        if let Some(known) = self.events.remove(&id) {
            self.unsaved.remove(&id);
            self.writer
                .delete_term(Term::from_field_text(self.fields.id, &id.to_string()));
            self.catalog.remove(known.slot);
            self.catalog_changed = true;
            self.dirty.remove(&id);
            self.docs_pending = true;
        }
        Ok(())
    }

    fn adjust(&mut self, id: Uuid, delta: i64) {
        if let Some(known) = self.events.get(&id)
            && !known.cancelled
        {
            let n = (i64::from(known.available) + delta).clamp(0, i64::from(known.capacity));
            self.set_seats(id, n as u32);
            if self.seats_touched.is_empty() {
                // Counted from the first change since the last reconciliation.
                self.last_reconcile = Instant::now();
            }
            self.seats_touched.insert(id);
        }
    }

    /// Sets an event's seats left: visible to the next search (the counts are shared with the
    /// published snapshot); its document is rewritten at the next availability commit.
    fn set_seats(&mut self, id: Uuid, n: u32) {
        if let Some(known) = self.events.get_mut(&id) {
            known.available = n;
            let before = self.catalog.set_available(known.slot, n);
            self.sold_out_changed |= (before == 0) != (n == 0);
            self.dirty.insert(id);
        }
    }

    /// Makes the catalog as it is now the one searches read.
    fn publish(&mut self) {
        self.catalog_changed = false;
        self.sold_out_changed = false;
        if let Some(s) = self.shared.upgrade() {
            s.catalog.store(Arc::new(self.catalog.clone()));
            s.generation.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// What the committed index holds for event `id`.
    fn committed_source(
        &self,
        searcher: &tantivy::Searcher,
        id: Uuid,
    ) -> Result<Option<Source>, SearchError> {
        let term = Term::from_field_text(self.fields.id, &id.to_string());
        let query = tantivy::query::TermQuery::new(term, tantivy::schema::IndexRecordOption::Basic);
        let found = searcher.search(&query, &tantivy::collector::DocSetCollector)?;
        let Some(address) = found.into_iter().next() else {
            return Ok(None);
        };
        let doc: TantivyDocument = searcher.doc(address)?;
        Ok(Source::from_document(&doc, &self.fields).map(|(_, source)| source))
    }

    async fn maybe_commit(&mut self) -> Result<(), SearchError> {
        let due = self.docs_pending
            || (!self.dirty.is_empty() && self.last_commit.elapsed() >= AVAILABILITY_COMMIT_EVERY);
        let Some(cursor) = self.cursor.clone().filter(|_| due) else {
            return Ok(());
        };
        // Documents whose text changed, rather than only their stored seat counts.
        let text_changed = self.docs_pending;
        // `dirty` and `unsaved` are let go only once the commit has succeeded: a failed one is
        // tried again with the same documents (a rewrite is a delete and an add, so twice is
        // once), and never with text older than what was added.
        let searcher = self.shared.upgrade().map(|s| s.reader.searcher());
        for &id in &self.dirty {
            let Some(known) = self.events.get(&id).copied() else {
                continue;
            };
            // The text comes from what this commit adds, or else from the committed index.
            let source = match self.unsaved.get(&id) {
                Some(source) => Some(source.clone()),
                None => match &searcher {
                    Some(searcher) => self.committed_source(searcher, id)?,
                    None => None,
                },
            };
            let Some(mut source) = source else {
                tracing::warn!(event = %id, "an event's document is not in the index; its seat count is not rewritten");
                continue;
            };
            source.available = known.available;
            self.writer
                .delete_term(Term::from_field_text(self.fields.id, &id.to_string()));
            self.writer
                .add_document(source.document(&self.fields, known.slot))?;
        }
        let payload = serde_json::to_string(&Payload {
            schema: SCHEMA_VERSION,
            cursor: cursor.clone(),
        })
        .map_err(|e| SearchError::Internal(e.to_string()))?;
        let mut prepared = self.writer.prepare_commit()?;
        prepared.set_payload(&payload);
        prepared.commit()?;
        self.dirty.clear();
        self.unsaved.clear();
        self.committed = Some(cursor);
        self.docs_pending = false;
        self.last_commit = Instant::now();
        if std::mem::take(&mut self.merge_after_commit) {
            // Fresh from a rebuild the index is a handful of segments; one is faster to search
            // (one term dictionary per query word instead of several). Awaited, not waited
            // for: a stop lands during a long merge too (the merge is tantivy's, on its own
            // threads, and what is committed stays consistent either way).
            let segments = self.writer.index().searchable_segment_ids()?;
            if segments.len() > 1 {
                let started = Instant::now();
                self.writer.merge(&segments).await?;
                tracing::info!(
                    segments = segments.len(),
                    seconds = started.elapsed().as_secs_f64(),
                    "search index merged"
                );
            }
        }
        if let Some(s) = self.shared.upgrade() {
            s.reader.reload()?;
            // A commit of rewritten seat counts changes no match: cached answers and word
            // matches stay good.
            if text_changed {
                s.generation.fetch_add(1, Ordering::AcqRel);
            }
        }
        Ok(())
    }
}

/// Opens the index in `dir`, or creates it (wiping what cannot be read).
pub(crate) fn open_index(dir: &Path) -> Result<(Index, Fields), SearchError> {
    let (schema, fields) = crate::schema::schema();
    std::fs::create_dir_all(dir).map_err(|e| SearchError::Internal(e.to_string()))?;
    let opened = tantivy::directory::MmapDirectory::open(dir)
        .map_err(|e| SearchError::Internal(e.to_string()))
        .and_then(|d| Index::open_or_create(d, schema.clone()).map_err(SearchError::from));
    let index = match opened {
        Ok(index) => index,
        Err(e) => {
            tracing::warn!(error = %e, dir = %dir.display(), "unreadable search index; starting afresh");
            std::fs::remove_dir_all(dir).map_err(|e| SearchError::Internal(e.to_string()))?;
            std::fs::create_dir_all(dir).map_err(|e| SearchError::Internal(e.to_string()))?;
            Index::create_in_dir(dir, schema)?
        }
    };
    crate::schema::register(&index);
    Ok((index, fields))
}
