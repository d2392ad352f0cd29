//! The change feed of the embedded store.
//!
//! SQLite has one writer at a time, so outbox positions become visible strictly in order and
//! the cursor is simply the last position applied. A [`FeedRead`] is a read transaction on a
//! connection of its own: WAL mode gives it one snapshot for its whole life, so its changes,
//! its events and its cursor are all seen at the same instant. Dropping it closes the
//! connection, which ends the transaction.
//!
//! Readers live in the same process as the writers; waiting for a change polls the outbox's
//! highest position (an index lookup) every few milliseconds, which also notices writes by
//! other processes on the same file (`boxoffice seed` while serving).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use boxoffice_domain::event::Event;
use boxoffice_domain::feed::{CatalogEntry, Change, ChangeFeed, FeedCursor, FeedRead};
use boxoffice_domain::ids::EventId;
use boxoffice_domain::ports::StoreError;
use rusqlite::{Connection, params};

use crate::codec::{id, store_error};
use crate::{SqliteStore, catalog, connect};

/// How often a waiting reader looks for new outbox rows.
const POLL: Duration = Duration::from_millis(20);

#[async_trait]
impl ChangeFeed for SqliteStore {
    async fn read(&self, since: Option<&FeedCursor>) -> Result<Box<dyn FeedRead>, StoreError> {
        let path = self.inner.path.clone();
        let since = since.cloned();
        let read = tokio::task::spawn_blocking(move || -> Result<SqliteRead, StoreError> {
            let conn = connect(&path)?;
            // A deferred transaction takes its snapshot at its first read, and keeps it.
            conn.execute_batch("BEGIN").map_err(store_error)?;
            let (store_id, last): (String, i64) = conn
                .query_row(
                    "SELECT (SELECT store_id FROM feed_identity),
                            (SELECT coalesce(max(position), 0) FROM outbox)",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(store_error)?;
            let after = match &since {
                Some(c) if c.store_id == store_id => c.position.parse::<i64>().ok(),
                _ => None,
            };
            Ok(SqliteRead {
                conn: Arc::new(Mutex::new(conn)),
                cursor: FeedCursor {
                    store_id,
                    position: last.to_string(),
                },
                next: after,
                last,
            })
        })
        .await
        .map_err(|e| StoreError::Internal(format!("sqlite task failed: {e}")))??;
        Ok(Box::new(read))
    }

    async fn wait(&self, cursor: &FeedCursor, timeout: Duration) -> Result<(), StoreError> {
        let seen: i64 = cursor.position.parse().unwrap_or(i64::MAX);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let last: i64 = self
                .read(|c| {
                    c.query_row("SELECT coalesce(max(position), 0) FROM outbox", [], |r| {
                        r.get(0)
                    })
                })
                .await?;
            if last != seen || tokio::time::Instant::now() >= deadline {
                return Ok(());
            }
            tokio::time::sleep(POLL.min(deadline - tokio::time::Instant::now())).await;
        }
    }
}

struct SqliteRead {
    conn: Arc<Mutex<Connection>>,
    cursor: FeedCursor,
    /// The last position returned by `changes`; `None` when opened without a usable cursor.
    next: Option<i64>,
    /// The highest position this read sees.
    last: i64,
}

impl std::fmt::Debug for SqliteRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteRead")
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}

impl SqliteRead {
    async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let c = conn
                .lock()
                .map_err(|_| StoreError::Internal("feed connection poisoned".into()))?;
            f(&c)
        })
        .await
        .map_err(|e| StoreError::Internal(format!("sqlite task failed: {e}")))?
    }
}

#[async_trait]
impl FeedRead for SqliteRead {
    fn cursor(&self) -> &FeedCursor {
        &self.cursor
    }

    async fn changes(&mut self, limit: usize) -> Result<Vec<Change>, StoreError> {
        let Some(after) = self.next else {
            return Ok(Vec::new());
        };
        let last = self.last;
        let rows = self
            .with(move |c| {
                let mut stmt = c
                    .prepare_cached(
                        "SELECT position, event_id, kind, payload FROM outbox
                         WHERE position > ?1 AND position <= ?2 ORDER BY position LIMIT ?3",
                    )
                    .map_err(store_error)?;
                let rows = stmt
                    .query_map(params![after, last, limit as i64], |r| {
                        let bytes: Vec<u8> = r.get(1)?;
                        Ok((
                            r.get::<_, i64>(0)?,
                            bytes,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                        ))
                    })
                    .map_err(store_error)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(store_error)?;
                Ok(rows)
            })
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (position, event, kind, payload) in rows {
            self.next = Some(position);
            let event_id = uuid::Uuid::from_slice(&event)
                .map_err(|_| StoreError::Internal("outbox row with a malformed event id".into()))?;
            out.push(Change::decode(EventId(event_id), &kind, &payload));
        }
        Ok(out)
    }

    async fn events(&mut self, ids: &[EventId]) -> Result<Vec<CatalogEntry>, StoreError> {
        let ids = ids.to_vec();
        self.with(move |c| {
            let mut out = Vec::with_capacity(ids.len());
            for event_id in ids {
                if let Some(event) = catalog::load_event(c, event_id).map_err(store_error)? {
                    out.push(entry(c, event)?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn all_events(
        &mut self,
        after: Option<EventId>,
        limit: usize,
    ) -> Result<Vec<CatalogEntry>, StoreError> {
        self.with(move |c| {
            let after = after.map(|e| id(e.0)).unwrap_or([0u8; 16]);
            let ids = c
                .prepare_cached(
                    "SELECT event_id FROM events WHERE event_id > ?1 ORDER BY event_id LIMIT ?2",
                )
                .map_err(store_error)?
                .query_map(params![after, limit as i64], |r| r.get::<_, Vec<u8>>(0))
                .map_err(store_error)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(store_error)?;
            let mut out = Vec::with_capacity(ids.len());
            for raw in ids {
                let event_id = EventId(
                    uuid::Uuid::from_slice(&raw)
                        .map_err(|_| StoreError::Internal("malformed event id".into()))?,
                );
                if let Some(event) = catalog::load_event(c, event_id).map_err(store_error)? {
                    out.push(entry(c, event)?);
                }
            }
            Ok(out)
        })
        .await
    }
}

/// The event with its available places: all of them until its seats are laid out; then the
/// OPEN seats. A hold past its expiry still counts as taken here, exactly as the outbox deltas
/// count it: it becomes available (+n) when the sweeper returns it to OPEN, and a buyer who
/// takes it over before that changes nothing. Counting it here as well would count it twice.
fn entry(c: &Connection, event: Event) -> Result<CatalogEntry, StoreError> {
    let key = id(event.id.0);
    let laid_out: bool = c
        .prepare_cached("SELECT seats_laid_out FROM events WHERE event_id = ?1")
        .map_err(store_error)?
        .query_row([key], |r| r.get(0))
        .map_err(store_error)?;
    let available = if laid_out {
        c.prepare_cached("SELECT count(*) FROM seats WHERE event_id = ?1 AND state = 'OPEN'")
            .map_err(store_error)?
            .query_row(params![key], |r| r.get::<_, i64>(0))
            .map_err(store_error)? as u64
    } else {
        u64::from(event.spec.capacity())
    };
    Ok(CatalogEntry { event, available })
}
