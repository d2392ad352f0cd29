//! The change feed: how a reader outside the store (the search indexer of every node) follows
//! the catalog and seat availability without ever touching the booking tables on a hot path.
//!
//! Every change is written to the store's outbox in the same transaction as the change itself
//! (see [`crate::ports::change`]). A reader keeps a [`FeedCursor`] — an opaque position that
//! says "every change up to here has been applied" — and asks the store for what came after.
//!
//! The unit of reading is a [`FeedRead`]: one consistent view of the store (one database
//! snapshot). Everything a read returns — the changes since a cursor, the current state of
//! events, a full catalog scan for rebuilds — is seen at the same instant, and
//! [`FeedRead::cursor`] names exactly that instant. This is what makes the two ways of
//! catching up exact:
//!
//! - *rebuild*: open a read with no cursor, page through [`FeedRead::all_events`] and keep
//!   [`FeedRead::cursor`]: every change not in the scan comes after that cursor;
//! - *catch up*: open a read after the cursor, apply [`FeedRead::changes`]; for events named
//!   by an `event.changed` change, load their current state with [`FeedRead::events`] in the
//!   same read (its availability already includes this read's seat deltas for that event).
//!
//! No change is applied twice and none is missed, even on PostgreSQL, where outbox positions
//! become visible out of order.
//!
//! The outbox does not grow without bound: each reader records how far it has come
//! ([`ChangeFeed::record_reader`]) and [`ChangeFeed::prune`] deletes what every reader seen
//! lately has applied (never rows younger than [`Retention::min_age`]). A reader that was away
//! longer than [`Retention::reader_ttl`] no longer holds rows back; when it comes back, its read
//! says [`FeedRead::fell_behind`] and it rebuilds.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::event::Event;
use crate::ids::EventId;
use crate::ports::StoreError;
use crate::ports::change::AvailabilityDelta;

/// How far a reader has come. Both parts are opaque to readers; they are compared and stored,
/// never interpreted outside the store that issued them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FeedCursor {
    /// Identifies the database (not the connection): a cursor from another database, or from
    /// a database that was recreated, means nothing here and forces a rebuild.
    pub store_id: String,
    /// The backend's position: an outbox position (SQLite), or a transaction snapshot
    /// (PostgreSQL).
    pub position: String,
}

/// One outbox row, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The event's catalog entry was created or changed: read it again.
    EventChanged(EventId),
    /// Places of the event became available (positive) or unavailable (negative).
    SeatsChanged(EventId, AvailabilityDelta),
    /// A kind this reader does not know (written by a newer version); skipped.
    Other(EventId, String),
}

impl Change {
    pub fn event_id(&self) -> EventId {
        match self {
            Change::EventChanged(id) | Change::SeatsChanged(id, _) | Change::Other(id, _) => *id,
        }
    }

    /// Decodes an outbox row. A malformed seats payload is reported as [`Change::Other`]
    /// rather than failing the whole feed.
    pub fn decode(event_id: EventId, kind: &str, payload: &str) -> Self {
        use crate::ports::change::{EVENT_CHANGED, SEATS_CHANGED};
        match kind {
            EVENT_CHANGED => Change::EventChanged(event_id),
            SEATS_CHANGED => match serde_json::from_str(payload) {
                Ok(delta) => Change::SeatsChanged(event_id, delta),
                Err(_) => Change::Other(event_id, kind.to_owned()),
            },
            other => Change::Other(event_id, other.to_owned()),
        }
    }
}

/// An event as the catalog holds it, with how many places are available right now.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogEntry {
    pub event: Event,
    /// Available places over all sections, at the read's instant: every place of an event
    /// whose seats are not laid out yet; otherwise the seats that are open or whose hold has
    /// expired.
    pub available: u64,
}

/// How long the outbox keeps changes; see [`ChangeFeed::prune`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// A reader that has not recorded its position for this long stops holding rows back (and
    /// is forgotten); if it comes back behind the pruned rows it rebuilds.
    pub reader_ttl: Duration,
    /// Rows younger than this are kept whatever the readers say, so that a node that has just
    /// started (or restarted from an older index) can still catch up instead of rebuilding.
    pub min_age: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            reader_ttl: Duration::from_secs(3600),
            min_age: Duration::from_secs(600),
        }
    }
}

/// What one [`ChangeFeed::prune`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pruned {
    /// Outbox rows deleted.
    pub rows: u64,
    /// Outbox rows left.
    pub remaining: u64,
}

/// A consistent view of the store; see the module documentation.
#[async_trait]
pub trait FeedRead: Send + std::fmt::Debug {
    /// The instant this read sees: apply everything it returned, then store this cursor.
    fn cursor(&self) -> &FeedCursor;

    /// Whether changes after the cursor this read was opened with have been pruned: the read
    /// cannot bring the reader up to date and the reader must rebuild (open a read without a
    /// cursor). Always false for a read opened without a cursor or with another database's.
    fn fell_behind(&self) -> bool;

    /// The next page of changes after the cursor the read was opened with, up to
    /// [`FeedRead::cursor`], in the order they were written (per transaction). Empty when all
    /// have been returned, and always empty for a read opened without a cursor.
    async fn changes(&mut self, limit: usize) -> Result<Vec<Change>, StoreError>;

    /// The current state of these events (those that exist), as of this read.
    async fn events(&mut self, ids: &[EventId]) -> Result<Vec<CatalogEntry>, StoreError>;

    /// Every event, ordered by id, in pages: the events after `after`, at most `limit`.
    async fn all_events(
        &mut self,
        after: Option<EventId>,
        limit: usize,
    ) -> Result<Vec<CatalogEntry>, StoreError>;
}

/// A store whose outbox can be followed.
#[async_trait]
pub trait ChangeFeed: Send + Sync + std::fmt::Debug + 'static {
    /// Opens a consistent read. With `since`, its [`FeedRead::changes`] are those after that
    /// cursor; a cursor from another database yields a read whose cursor's `store_id` differs
    /// from it, and the caller must rebuild.
    async fn read(&self, since: Option<&FeedCursor>) -> Result<Box<dyn FeedRead>, StoreError>;

    /// Returns when changes after `cursor` may have been written, or after `timeout`,
    /// whichever comes first. Spurious wake-ups are allowed: callers read and see.
    async fn wait(&self, cursor: &FeedCursor, timeout: Duration) -> Result<(), StoreError>;

    /// Records that the reader `reader` (a stable id per node) has applied everything up to
    /// `cursor`, at `now`. A cursor of another database is ignored.
    async fn record_reader(
        &self,
        reader: &str,
        cursor: &FeedCursor,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Deletes outbox rows that every reader recorded within `retention.reader_ttl` of `now`
    /// has applied and that are older than `retention.min_age`, and forgets readers silent
    /// longer than the TTL. With no live reader, every row older than the minimum age goes.
    /// Safe to run on several nodes at once.
    async fn prune(&self, retention: Retention, now: OffsetDateTime) -> Result<Pruned, StoreError>;
}
