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
//!
//! Pruning deletes rows at or below the lowest position of the live readers, in batches, and
//! raises `feed_horizon` to the highest position deleted: a cursor below it has lost changes.
//! The newest row is always kept, so the highest position (the cursor of a fresh read, and
//! what `wait` compares) never goes back.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use boxoffice_domain::event::Event;
use boxoffice_domain::feed::{
    CatalogEntry, Change, ChangeFeed, FeedCursor, FeedRead, Pruned, Retention,
};
use boxoffice_domain::ids::EventId;
use boxoffice_domain::ports::StoreError;
use rusqlite::{Connection, params};

use crate::codec::{id, store_error, ts};
use crate::{SqliteStore, catalog, connect};

/// How often a waiting reader looks for new outbox rows.
const POLL: Duration = Duration::from_millis(20);
/// Outbox rows deleted per write transaction, so that pruning a long backlog never holds the
/// single writer for long.
const PRUNE_BATCH: i64 = 5_000;

#[async_trait]
impl ChangeFeed for SqliteStore {
    async fn read(&self, since: Option<&FeedCursor>) -> Result<Box<dyn FeedRead>, StoreError> {
        let path = self.inner.path.clone();
        let since = since.cloned();
        let read = tokio::task::spawn_blocking(move || -> Result<SqliteRead, StoreError> {
            let conn = connect(&path)?;
            // A deferred transaction takes its snapshot at its first read, and keeps it.
            conn.execute_batch("BEGIN").map_err(store_error)?;
            let (store_id, last, horizon): (String, i64, i64) = conn
                .query_row(
                    "SELECT (SELECT store_id FROM feed_identity),
                            (SELECT coalesce(max(position), 0) FROM outbox),
                            (SELECT position FROM feed_horizon)",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .map_err(store_error)?;
            let after = match &since {
                Some(c) if c.store_id == store_id => c.position.parse::<i64>().ok(),
                _ => None,
            };
            // Changes after a cursor behind the pruned rows would be incomplete: none are given.
            let behind = after.is_some_and(|p| p < horizon);
            let after = after.filter(|_| !behind);
            Ok(SqliteRead {
                behind,
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

    async fn record_reader(
        &self,
        reader: &str,
        cursor: &FeedCursor,
        now: time::OffsetDateTime,
    ) -> Result<(), StoreError> {
        let Ok(position) = cursor.position.parse::<i64>() else {
            return Ok(());
        };
        let (reader, store_id) = (reader.to_owned(), cursor.store_id.clone());
        self.write(move |tx| {
            tx.prepare_cached(
                "INSERT INTO feed_readers (reader_id, position, updated_at)
                 SELECT ?1, ?2, ?3 FROM feed_identity WHERE store_id = ?4
                 ON CONFLICT (reader_id) DO UPDATE
                    SET position = excluded.position, updated_at = excluded.updated_at",
            )
            .and_then(|mut s| s.execute(params![reader, position, ts(now), store_id]))
            .map_err(store_error)?;
            Ok(())
        })
        .await
    }

    async fn prune(
        &self,
        retention: Retention,
        now: time::OffsetDateTime,
    ) -> Result<Pruned, StoreError> {
        let silent_since = ts(now - retention.reader_ttl);
        let young_since = ts(now - retention.min_age);
        let mut pruned = Pruned::default();
        loop {
            let (deleted, remaining) = self
                .write(move |tx| -> Result<(u64, u64), StoreError> {
                    tx.execute(
                        "DELETE FROM feed_readers WHERE updated_at < ?1",
                        [silent_since],
                    )
                    .map_err(store_error)?;
                    let q = |sql: &str,
                             p: &[&dyn rusqlite::ToSql]|
                     -> Result<Option<i64>, StoreError> {
                        tx.query_row(sql, p, |r| r.get(0)).map_err(store_error)
                    };
                    let horizon = q("SELECT position FROM feed_horizon", &[])?.unwrap_or(0);
                    // Readers already behind the horizon rebuild anyway: they hold nothing back.
                    let slowest = q(
                        "SELECT min(position) FROM feed_readers WHERE position >= ?1",
                        &[&horizon],
                    )?;
                    let Some(newest) = q("SELECT max(position) FROM outbox", &[])? else {
                        return Ok((0, 0));
                    };
                    let bound = slowest.map_or(newest - 1, |m| m.min(newest - 1));
                    let gone: Vec<i64> = tx
                        .prepare_cached(
                            "DELETE FROM outbox WHERE position IN (
                                SELECT position FROM outbox
                                WHERE position <= ?1 AND created_at < ?2
                                ORDER BY position LIMIT ?3)
                             RETURNING position",
                        )
                        .and_then(|mut s| {
                            s.query_map(params![bound, young_since, PRUNE_BATCH], |r| r.get(0))?
                                .collect()
                        })
                        .map_err(store_error)?;
                    if let Some(&top) = gone.iter().max()
                        && top > horizon
                    {
                        tx.execute("UPDATE feed_horizon SET position = ?1", [top])
                            .map_err(store_error)?;
                    }
                    let remaining = q("SELECT count(*) FROM outbox", &[])?.unwrap_or(0);
                    Ok((gone.len() as u64, remaining as u64))
                })
                .await?;
            pruned.rows += deleted;
            pruned.remaining = remaining;
            if deleted < PRUNE_BATCH as u64 {
                return Ok(pruned);
            }
        }
    }
}

struct SqliteRead {
    conn: Arc<Mutex<Connection>>,
    cursor: FeedCursor,
    /// Rows after the cursor the read was opened with were pruned.
    behind: bool,
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

    fn fell_behind(&self) -> bool {
        self.behind
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
