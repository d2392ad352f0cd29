//! The live seat map: one follower of the change feed per node, fanned out to every client
//! watching an event on this node.
//!
//! The follower wakes when the outbox moves, reads what changed since its cursor, and for each
//! event somebody here watches re-reads the seat map once and sends the difference (seats whose
//! status changed, and each section's counts) to that event's watchers. Each watcher has a small
//! buffer: a client too slow to keep up is dropped (its stream ends; the browser reconnects and
//! starts from a fresh map) rather than buffered without bound.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use boxoffice_domain::event::Event;
use boxoffice_domain::feed::{ChangeFeed, FeedCursor};
use boxoffice_domain::ids::EventId;
use boxoffice_domain::ports::{SeatMap, Store, StoreError};
use serde::Serialize;
use tokio::sync::broadcast;

/// Updates a watcher may fall behind by before it is dropped.
pub const WATCHER_BUFFER: usize = 64;

/// A seat whose status changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeatChange {
    pub seat_id: String,
    /// The section's name.
    pub section: String,
    /// OPEN, HOLD, PENDING, SOLD or RESALE.
    pub status: String,
}

/// A section's counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SectionCounts {
    /// The section's name.
    pub section: String,
    pub capacity: u32,
    pub available: u32,
    pub held: u32,
    pub sold: u32,
}

/// One update of an event's seat map.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeatUpdate {
    #[serde(skip)]
    pub seq: u64,
    pub event_id: EventId,
    /// Seats whose status changed since the previous update (all of them are in the map a
    /// client reads from `/v1/events/{eventId}/seats`).
    pub seats: Vec<SeatChange>,
    /// Every section's counts, as of this update.
    pub sections: Vec<SectionCounts>,
}

struct Watched {
    event: Arc<Event>,
    tx: broadcast::Sender<Arc<SeatUpdate>>,
    last: Option<SeatMap>,
    seq: u64,
}

/// The node's live seat maps.
pub struct SeatStreams {
    store: Arc<dyn Store>,
    feed: OnceLock<Arc<dyn ChangeFeed>>,
    watched: Arc<Mutex<HashMap<EventId, Watched>>>,
    follower: OnceLock<()>,
}

impl std::fmt::Debug for SeatStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeatStreams").finish_non_exhaustive()
    }
}

impl SeatStreams {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            feed: OnceLock::new(),
            watched: Arc::new(Mutex::new(HashMap::new())),
            follower: OnceLock::new(),
        }
    }

    /// The change feed to follow (the store's own). Without one, nothing streams.
    pub fn follow(&self, feed: Arc<dyn ChangeFeed>) {
        let _ = self.feed.set(feed);
    }

    /// Watches `event`: the current counts first, then every change. `None` if this node
    /// follows no change feed.
    pub async fn watch(
        &self,
        event: Arc<Event>,
    ) -> Result<Option<(Arc<SeatUpdate>, broadcast::Receiver<Arc<SeatUpdate>>)>, StoreError> {
        let Some(feed) = self.feed.get().cloned() else {
            return Ok(None);
        };
        self.follower.get_or_init(|| {
            tokio::spawn(follow(feed, self.store.clone(), self.watched.clone()));
        });
        // An event someone here already watches: its last map is current to the feed, so a
        // rush of new watchers costs no reads.
        {
            let watched = self.watched.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(w) = watched.get(&event.id)
                && let Some(last) = &w.last
            {
                let first = Arc::new(update(&event, None, last, w.seq));
                return Ok(Some((first, w.tx.subscribe())));
            }
        }
        let map = self.store.seat_map(&event, event_now()).await?;
        let first = Arc::new(update(&event, None, &map, 0));
        let mut watched = self.watched.lock().unwrap_or_else(|p| p.into_inner());
        let w = watched.entry(event.id).or_insert_with(|| Watched {
            event: event.clone(),
            tx: broadcast::channel(WATCHER_BUFFER).0,
            last: None,
            seq: 0,
        });
        if w.last.is_none() {
            w.last = Some(map);
        }
        Ok(Some((first, w.tx.subscribe())))
    }
}

fn event_now() -> time::OffsetDateTime {
    boxoffice_domain::event::to_micros(time::OffsetDateTime::now_utc())
}

/// The difference between two maps of one event, with the new counts.
fn update(event: &Event, before: Option<&SeatMap>, after: &SeatMap, seq: u64) -> SeatUpdate {
    let name = |n: u16| {
        event
            .spec
            .sections
            .iter()
            .find(|s| s.number == n)
            .map(|s| s.name.clone())
            .unwrap_or_default()
    };
    let mut seats = Vec::new();
    if let Some(before) = before {
        let old: HashMap<&str, _> = before
            .seats
            .iter()
            .map(|s| (s.id.as_str(), (s.state, s.resale)))
            .collect();
        for s in &after.seats {
            if old.get(s.id.as_str()) != Some(&(s.state, s.resale)) {
                seats.push(SeatChange {
                    seat_id: s.id.to_string(),
                    section: name(s.section),
                    status: crate::routes::events::seat_status(s).to_owned(),
                });
            }
        }
    }
    SeatUpdate {
        seq,
        event_id: event.id,
        seats,
        sections: after
            .sections
            .iter()
            .map(|s| SectionCounts {
                section: name(s.section),
                capacity: s.capacity,
                available: s.available,
                held: s.held,
                sold: s.sold,
            })
            .collect(),
    }
}

/// Follows the change feed for as long as the node runs.
async fn follow(
    feed: Arc<dyn ChangeFeed>,
    store: Arc<dyn Store>,
    watched: Arc<Mutex<HashMap<EventId, Watched>>>,
) {
    let mut cursor: Option<FeedCursor> = None;
    loop {
        if let Some(c) = &cursor
            && let Err(e) = feed.wait(c, Duration::from_secs(1)).await
        {
            tracing::warn!(error = %e, "seat stream: waiting on the change feed failed");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        match changed_events(&*feed, cursor.as_ref()).await {
            Ok((next, touched)) => {
                let resync = cursor.is_none() || touched.is_none();
                cursor = Some(next);
                publish(&store, &watched, touched.filter(|_| !resync)).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "seat stream: reading the change feed failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The events changed after `since` and the cursor after them; `None` for the events when the
/// follower must look at every watched event (it just started, or fell behind the outbox).
async fn changed_events(
    feed: &dyn ChangeFeed,
    since: Option<&FeedCursor>,
) -> Result<(FeedCursor, Option<Vec<EventId>>), StoreError> {
    let mut read = feed.read(since).await?;
    let cursor = read.cursor().clone();
    if since.is_none() || read.fell_behind() || since.is_some_and(|s| s.store_id != cursor.store_id)
    {
        return Ok((cursor, None));
    }
    let mut touched = Vec::new();
    loop {
        let page = read.changes(1000).await?;
        if page.is_empty() {
            break;
        }
        for c in page {
            let id = c.event_id();
            if !touched.contains(&id) {
                touched.push(id);
            }
        }
    }
    Ok((cursor, Some(touched)))
}

/// Sends each watched event that changed (all of them when `touched` is `None`) its update,
/// and forgets events nobody watches any more.
async fn publish(
    store: &Arc<dyn Store>,
    watched: &Arc<Mutex<HashMap<EventId, Watched>>>,
    touched: Option<Vec<EventId>>,
) {
    let targets: Vec<(EventId, Arc<Event>)> = {
        let mut w = watched.lock().unwrap_or_else(|p| p.into_inner());
        w.retain(|_, v| v.tx.receiver_count() > 0);
        w.iter()
            .filter(|(id, _)| touched.as_ref().is_none_or(|t| t.contains(id)))
            .map(|(id, v)| (*id, v.event.clone()))
            .collect()
    };
    for (id, event) in targets {
        let map = match store.seat_map(&event, event_now()).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(event_id = %id, error = %e, "seat stream: reading the seat map failed");
                continue;
            }
        };
        let mut w = watched.lock().unwrap_or_else(|p| p.into_inner());
        let Some(v) = w.get_mut(&id) else { continue };
        v.seq += 1;
        let u = update(&event, v.last.as_ref(), &map, v.seq);
        v.last = Some(map);
        let _ = v.tx.send(Arc::new(u));
    }
}

/// A watcher's updates until its channel closes or it falls behind: a client that lags is
/// dropped, never buffered for.
pub fn updates(
    rx: broadcast::Receiver<Arc<SeatUpdate>>,
) -> impl futures_util::Stream<Item = Arc<SeatUpdate>> {
    futures_util::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Ok(u) => Some((u, rx)),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                metrics::counter!("seat_stream_dropped_total").increment(1);
                tracing::debug!(missed = n, "seat stream: a slow client was dropped");
                None
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    fn u(seq: u64) -> Arc<SeatUpdate> {
        Arc::new(SeatUpdate {
            seq,
            event_id: EventId::new(),
            seats: vec![],
            sections: vec![],
        })
    }

    #[tokio::test]
    async fn a_watcher_that_keeps_up_gets_every_update() {
        let (tx, rx) = broadcast::channel(WATCHER_BUFFER);
        let mut s = Box::pin(updates(rx));
        for i in 0..3 {
            tx.send(u(i)).unwrap();
        }
        for i in 0..3 {
            assert_eq!(s.next().await.unwrap().seq, i);
        }
        drop(tx);
        assert!(s.next().await.is_none());
    }

    #[tokio::test]
    async fn a_watcher_that_falls_behind_is_dropped_not_buffered() {
        let (tx, rx) = broadcast::channel(WATCHER_BUFFER);
        let mut s = Box::pin(updates(rx));
        for i in 0..(WATCHER_BUFFER as u64 + 10) {
            tx.send(u(i)).unwrap();
        }
        assert!(s.next().await.is_none(), "the stream ends at the gap");
    }
}
