//! The change feed of the PostgreSQL store.
//!
//! Outbox positions come from a sequence, and sequence values are handed out before commit:
//! position 12 can become visible after position 13, so "everything after the last position
//! I saw" would skip 12. Instead every outbox row carries the id of the transaction that wrote
//! it (`tx_id`), and a cursor is a *transaction snapshot* (`pg_current_snapshot()`, text form
//! `xmin:xmax:xip,…`): "every transaction that had finished by this snapshot is applied".
//!
//! A [`FeedRead`] is a `REPEATABLE READ READ ONLY` transaction; its own snapshot S2 is its
//! cursor. The changes it returns after an earlier cursor S1 are the rows whose transaction is
//! finished in S2 (exactly the rows S2 can see) but was not finished in S1:
//! `NOT pg_visible_in_snapshot(tx_id, S1)`, narrowed with `tx_id >= pg_snapshot_xmin(S1)` for
//! the index. A transaction still running at S2 — however low its positions — is left for a
//! later read, and a transaction finished at S1 is never returned again. Because events and
//! availability are read in the same transaction, a rebuild scan and its cursor agree too.
//!
//! Retention: readers record their snapshot in `feed_readers`. Snapshots of one cluster are
//! ordered (a later one sees every transaction an earlier one saw finished), so the pruner
//! takes the earliest snapshot H of the live readers (or the current one when there is none),
//! deletes the old enough rows whose transaction is finished in H — exactly what every live
//! reader has applied — and records H in `feed_horizon`. A cursor that does not contain the
//! horizon may have lost rows: its read reports [`FeedRead::fell_behind`]. Readers that are
//! themselves behind the horizon hold nothing back; they rebuild.
//!
//! Readers wake on `LISTEN boxoffice_outbox` (a statement trigger on the outbox NOTIFYs, and
//! PostgreSQL delivers notifications at commit) over a connection of their own, reconnecting
//! when it drops; a periodic timeout in the caller covers notifications lost in between.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use boxoffice_domain::event::{Category, Event, EventSpec, Policies, Section, SectionKind, Venue};
use boxoffice_domain::feed::{
    CatalogEntry, Change, ChangeFeed, FeedCursor, FeedRead, Pruned, Retention,
};
use boxoffice_domain::ids::{CustomerId, EventId};
use boxoffice_domain::money::PriceCents;
use boxoffice_domain::ports::StoreError;
use futures_util::StreamExt;
use tokio::sync::{OnceCell, watch};
use tokio_postgres::{AsyncMessage, NoTls, Row};
use uuid::Uuid;

use crate::exec::{Conn, Exec};
use crate::{PgStore, corrupt, pg_error};

/// The channel the outbox trigger of migration V2 notifies.
const LISTEN: &str = "LISTEN boxoffice_outbox";

/// Outbox rows deleted per transaction.
const PRUNE_BATCH: i64 = 5_000;

/// A transaction snapshot in `pg_snapshot`'s text form, `xmin:xmax:xip,…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    xmin: u64,
    xmax: u64,
    xip: Vec<u64>,
}

impl Snapshot {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().splitn(3, ':');
        let xmin = parts.next()?.parse().ok()?;
        let xmax = parts.next()?.parse().ok()?;
        let xip = match parts.next()? {
            "" => Vec::new(),
            list => list
                .split(',')
                .map(|x| x.parse().ok())
                .collect::<Option<Vec<u64>>>()?,
        };
        (xmin <= xmax).then_some(Self { xmin, xmax, xip })
    }

    /// Whether every transaction finished in `earlier` is finished in `self` too.
    pub(crate) fn contains(&self, earlier: &Snapshot) -> bool {
        earlier.xmax <= self.xmax
            && self
                .xip
                .iter()
                .all(|x| *x >= earlier.xmax || earlier.xip.contains(x))
    }
}

/// The LISTEN side: one connection per process, started on first use, that bumps a counter on
/// every notification.
pub(crate) struct Listener {
    /// Where to listen; `None` behind a transaction pooler without a direct URL: waits then
    /// last their whole timeout (the caller polls).
    config: Option<tokio_postgres::Config>,
    wakeups: OnceCell<watch::Receiver<u64>>,
}

impl Listener {
    pub(crate) fn new(config: Option<tokio_postgres::Config>) -> Self {
        Self {
            config,
            wakeups: OnceCell::new(),
        }
    }

    async fn subscribe(&self) -> watch::Receiver<u64> {
        self.wakeups
            .get_or_init(|| async {
                let (tx, rx) = watch::channel(0u64);
                match self.config.clone() {
                    Some(config) => drop(tokio::spawn(listen(config, tx))),
                    // Nobody will send; keep the sender so that waits time out rather than
                    // end at once.
                    None => drop(tokio::spawn(async move { tx.closed().await })),
                }
                rx
            })
            .await
            .clone()
    }
}

/// Keeps a LISTEN connection open for as long as someone may wait, reconnecting after errors.
async fn listen(config: tokio_postgres::Config, tx: watch::Sender<u64>) {
    loop {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let mut messages =
                    futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                let listen = client.batch_execute(LISTEN);
                tokio::pin!(listen);
                // Drive the connection while LISTEN is sent; then only notifications arrive.
                let mut listening = false;
                loop {
                    tokio::select! {
                        r = &mut listen, if !listening => {
                            if let Err(e) = r {
                                tracing::warn!(error = %e, "LISTEN failed");
                                break;
                            }
                            listening = true;
                            // Anything may have happened while we were not listening.
                            tx.send_modify(|n| *n += 1);
                        }
                        m = messages.next() => match m {
                            Some(Ok(AsyncMessage::Notification(_))) => tx.send_modify(|n| *n += 1),
                            Some(Ok(_)) => {}
                            Some(Err(e)) => {
                                tracing::warn!(error = %e, "change feed listener lost its connection");
                                break;
                            }
                            None => break,
                        },
                        _ = tx.closed() => return,
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "change feed listener cannot connect"),
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[async_trait]
impl ChangeFeed for PgStore {
    async fn read(&self, since: Option<&FeedCursor>) -> Result<Box<dyn FeedRead>, StoreError> {
        // A rebuild scan (no cursor) may come from the replica: its snapshot is a cursor of
        // the primary's too (transaction ids are the cluster's), from an instant earlier.
        let client = match since {
            None => self.catalog_client().await?.0,
            Some(_) => self.client().await?,
        };
        let mut read = PgRead {
            client: Some(client),
            cursor: FeedCursor {
                store_id: String::new(),
                position: String::new(),
            },
            since: None,
            next: (String::from("0"), 0),
            behind: false,
        };
        let c = read.client()?;
        c.begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(pg_error)?;
        // The first statement fixes the transaction's snapshot; name it.
        let row = c
            .query_one(
                "SELECT pg_current_snapshot()::text, (SELECT store_id::text FROM feed_identity),
                        (SELECT position FROM feed_horizon)",
                &[],
            )
            .await
            .map_err(pg_error)?;
        read.cursor = FeedCursor {
            position: row.get(0),
            store_id: row.get(1),
        };
        read.since = since
            .filter(|c| c.store_id == read.cursor.store_id)
            .map(|c| c.position.clone());
        if let Some(since) = &read.since {
            let horizon: Option<String> = row.get(2);
            read.behind = match (Snapshot::parse(since), horizon.as_deref()) {
                // A cursor that is not a snapshot cannot be caught up from.
                (None, _) => true,
                (Some(_), None) => false,
                (Some(since), Some(h)) => Snapshot::parse(h).is_none_or(|h| !since.contains(&h)),
            };
            if read.behind {
                // Reading changes after such a cursor would be wrong (or fail): none are given.
                read.since = None;
            }
        }
        Ok(Box::new(read))
    }

    async fn wait(&self, cursor: &FeedCursor, timeout: Duration) -> Result<(), StoreError> {
        // Subscribe before looking, so that a commit between the look and the wait still
        // wakes us.
        let mut wakeups = self.feed.subscribe().await;
        wakeups.borrow_and_update();
        let c = self.client().await?;
        // In index order with a limit, not `EXISTS`: without statistics on the outbox (a bulk
        // load, autovacuum off or not yet round) the planner expected 15-22 % of the rows to
        // match and scanned the whole table on every look, 17 ms at 100,000 rows.
        let pending = c
            .query_opt(
                "SELECT 1 FROM outbox
                 WHERE tx_id >= pg_snapshot_xmin($1::text::pg_snapshot)
                   AND NOT pg_visible_in_snapshot(tx_id, $1::text::pg_snapshot)
                 ORDER BY tx_id LIMIT 1",
                &[&cursor.position],
            )
            .await
            .map_err(pg_error)?
            .is_some();
        drop(c);
        if !pending {
            let _ = tokio::time::timeout(timeout, wakeups.changed()).await;
        }
        Ok(())
    }

    async fn record_reader(
        &self,
        reader: &str,
        cursor: &FeedCursor,
        now: time::OffsetDateTime,
    ) -> Result<(), StoreError> {
        if Snapshot::parse(&cursor.position).is_none() {
            return Ok(());
        }
        let c = self.client().await?;
        c.execute(
            "INSERT INTO feed_readers (reader_id, position, updated_at)
             SELECT $1, $2, $3 FROM feed_identity WHERE store_id::text = $4
             ON CONFLICT (reader_id) DO UPDATE
                SET position = excluded.position, updated_at = excluded.updated_at",
            &[&reader, &cursor.position, &now, &cursor.store_id],
        )
        .await
        .map_err(pg_error)?;
        Ok(())
    }

    async fn prune(
        &self,
        retention: Retention,
        now: time::OffsetDateTime,
    ) -> Result<Pruned, StoreError> {
        let silent_since = now - retention.reader_ttl;
        let young_since = now - retention.min_age;
        let mut pruned = Pruned::default();
        let mut c = self.client().await?;
        loop {
            let tx = c.transaction().await.map_err(pg_error)?;
            tx.execute(
                "DELETE FROM feed_readers WHERE updated_at < $1",
                &[&silent_since],
            )
            .await
            .map_err(pg_error)?;
            // One pruner at a time; the horizon only moves forward.
            let row = tx
                .query_one(
                    "SELECT position, pg_current_snapshot()::text FROM feed_horizon FOR UPDATE",
                    &[],
                )
                .await
                .map_err(pg_error)?;
            let horizon = row
                .get::<_, Option<String>>(0)
                .and_then(|h| Snapshot::parse(&h));
            let current = Snapshot::parse(row.get(1))
                .ok_or_else(|| StoreError::Internal("unreadable snapshot".into()))?;
            let readers = tx
                .query("SELECT position FROM feed_readers", &[])
                .await
                .map_err(pg_error)?;
            // The earliest snapshot of the live readers that are not behind the horizon.
            let mut h: Option<Snapshot> = None;
            for r in &readers {
                let Some(s) = Snapshot::parse(r.get(0)) else {
                    continue;
                };
                if horizon.as_ref().is_some_and(|hz| !s.contains(hz)) {
                    continue;
                }
                h = match h {
                    Some(earliest) if s.contains(&earliest) => Some(earliest),
                    _ => Some(s),
                };
            }
            let h = h.unwrap_or(current);
            let text = format!(
                "{}:{}:{}",
                h.xmin,
                h.xmax,
                h.xip
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            );
            let deleted = tx
                .execute(
                    "DELETE FROM outbox WHERE position IN (
                        SELECT position FROM outbox
                        WHERE tx_id < pg_snapshot_xmax($1::text::pg_snapshot)
                          AND pg_visible_in_snapshot(tx_id, $1::text::pg_snapshot)
                          AND created_at < $2
                        ORDER BY position LIMIT $3)",
                    &[&text, &young_since, &PRUNE_BATCH],
                )
                .await
                .map_err(pg_error)?;
            if deleted > 0 && horizon.as_ref().is_none_or(|hz| h.contains(hz)) {
                tx.execute("UPDATE feed_horizon SET position = $1", &[&text])
                    .await
                    .map_err(pg_error)?;
            }
            tx.commit().await.map_err(pg_error)?;
            pruned.rows += deleted;
            if deleted < PRUNE_BATCH as u64 {
                break;
            }
        }
        let remaining: i64 = c
            .query_one("SELECT count(*) FROM outbox", &[])
            .await
            .map_err(pg_error)?
            .get(0);
        pruned.remaining = remaining as u64;
        Ok(pruned)
    }
}

struct PgRead {
    client: Option<Conn>,
    cursor: FeedCursor,
    /// The snapshot changes are read after; `None` when opened without a usable cursor.
    since: Option<String>,
    /// Keyset position of the last change returned: (tx_id, position).
    next: (String, i64),
    /// Rows after the cursor the read was opened with were pruned.
    behind: bool,
}

impl std::fmt::Debug for PgRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgRead")
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}

impl Drop for PgRead {
    fn drop(&mut self) {
        // The connection goes back to the pool only after its transaction has ended.
        if let Some(client) = self.client.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                let _ = client.batch_execute("ROLLBACK").await;
            });
        }
    }
}

impl PgRead {
    fn client(&self) -> Result<&Conn, StoreError> {
        self.client
            .as_ref()
            .ok_or_else(|| StoreError::Internal("feed read already closed".into()))
    }
}

#[async_trait]
impl FeedRead for PgRead {
    fn cursor(&self) -> &FeedCursor {
        &self.cursor
    }

    fn fell_behind(&self) -> bool {
        self.behind
    }

    async fn changes(&mut self, limit: usize) -> Result<Vec<Change>, StoreError> {
        let Some(since) = &self.since else {
            return Ok(Vec::new());
        };
        let c = self.client()?;
        // `outbox.tx_id`: a bare `tx_id` would name the text column of the select list, and
        // text order puts 1000000 before 999999, so a page could end past changes not read.
        // The first page starts at the cursor's xmin rather than at 0, so that the index scan
        // starts there too (it took the row bound and filtered the whole outbox).
        let stmt = "SELECT tx_id::text, position, event_id, kind, payload::text FROM outbox
                 WHERE tx_id >= pg_snapshot_xmin($1::text::pg_snapshot)
                   AND NOT pg_visible_in_snapshot(tx_id, $1::text::pg_snapshot)
                   AND (tx_id, position) >
                       (greatest($2::text::xid8, pg_snapshot_xmin($1::text::pg_snapshot)), $3)
                 ORDER BY outbox.tx_id, outbox.position
                 LIMIT $4";
        let rows = c
            .query(stmt, &[since, &self.next.0, &self.next.1, &(limit as i64)])
            .await
            .map_err(pg_error)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            self.next = (r.get(0), r.get(1));
            let kind: &str = r.get(3);
            let payload: &str = r.get(4);
            out.push(Change::decode(EventId(r.get(2)), kind, payload));
        }
        Ok(out)
    }

    async fn events(&mut self, ids: &[EventId]) -> Result<Vec<CatalogEntry>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = ids.iter().map(|e| e.0).collect();
        let c = self.client()?;
        let stmt = &format!("{EVENT_COLUMNS} WHERE e.event_id = ANY($1) ORDER BY e.event_id");
        let rows = c.query(stmt, &[&ids]).await.map_err(pg_error)?;
        entries(c, rows).await
    }

    async fn all_events(
        &mut self,
        after: Option<EventId>,
        limit: usize,
    ) -> Result<Vec<CatalogEntry>, StoreError> {
        let after = after.map(|e| e.0).unwrap_or(Uuid::nil());
        let c = self.client()?;
        let stmt = &format!(
            "/* scan */ {EVENT_COLUMNS} WHERE e.event_id > $1 ORDER BY e.event_id LIMIT $2"
        );
        let rows = c
            .query(stmt, &[&after, &(limit as i64)])
            .await
            .map_err(pg_error)?;
        entries(c, rows).await
    }
}

const EVENT_COLUMNS: &str = "SELECT e.event_id, e.organizer_id, e.name, e.performers, e.category,
        e.description, e.starts_at, e.on_sale_at, e.currency, e.max_tickets_per_customer,
        e.refund_window_hours, e.resale_max_price_percent, e.created_at,
        v.name, v.address, v.city, v.zip_code, v.country, v.lat, v.lon, e.seats_laid_out,
        e.cancelled_at, e.waiting_room
    FROM events e JOIN venues v ON v.venue_id = e.venue_id";

/// Completes event rows with their sections and availability, in two more statements.
async fn entries(c: &Conn, rows: Vec<Row>) -> Result<Vec<CatalogEntry>, StoreError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
    let laid_out: Vec<Uuid> = rows
        .iter()
        .filter(|r| r.get::<_, bool>(20))
        .map(|r| r.get(0))
        .collect();
    let stmt = "SELECT event_id, section_no, name, kind, rows, seats_per_row, capacity, price_cents
             FROM sections WHERE event_id = ANY($1) ORDER BY event_id, section_no";
    let mut sections: HashMap<Uuid, Vec<Section>> = HashMap::with_capacity(ids.len());
    for s in c.query(stmt, &[&ids]).await.map_err(pg_error)? {
        let kind = match s.get::<_, &str>(3) {
            "SEATED" => SectionKind::Seated {
                rows: s.get::<_, i32>(4) as u32,
                seats_per_row: s.get::<_, i32>(5) as u32,
            },
            _ => SectionKind::GeneralAdmission {
                capacity: s.get::<_, i32>(6) as u32,
            },
        };
        sections.entry(s.get(0)).or_default().push(Section {
            number: s.get::<_, i16>(1) as u16,
            name: s.get(2),
            kind,
            price: PriceCents::new(s.get(7)).map_err(|_| corrupt("price"))?,
        });
    }
    let mut available: HashMap<Uuid, i64> = HashMap::new();
    if !laid_out.is_empty() {
        let stmt = // OPEN only: an expired hold counts as taken until the sweeper frees it, as
                // the outbox deltas count it (see the SQLite feed).
                // Resale listings on offer (ACTIVE on the books) are available too.
                "SELECT event_id, count(*) FROM (
                     SELECT event_id FROM seats WHERE event_id = ANY($1) AND state = 'OPEN'
                     UNION ALL
                     SELECT event_id FROM listings WHERE event_id = ANY($1) AND status = 'ACTIVE'
                 ) a GROUP BY event_id";
        for r in c.query(stmt, &[&laid_out]).await.map_err(pg_error)? {
            available.insert(r.get(0), r.get(1));
        }
    }
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let event_id: Uuid = r.get(0);
        let performers: serde_json::Value = r.get(3);
        let currency: &str = r.get(8);
        let event = Event {
            id: EventId(event_id),
            organizer: CustomerId::parse(r.get(1)).map_err(|_| corrupt("organizer"))?,
            created_at: r.get(12),
            spec: EventSpec {
                name: r.get(2),
                performers: serde_json::from_value(performers)
                    .map_err(|_| corrupt("performers"))?,
                category: Category::parse(r.get(4)).map_err(|_| corrupt("category"))?,
                description: r.get(5),
                starts_at: r.get(6),
                on_sale_at: r.get(7),
                currency: currency.parse().map_err(|_| corrupt("currency"))?,
                venue: Venue {
                    name: r.get(13),
                    address: r.get(14),
                    city: r.get(15),
                    zip_code: r.get(16),
                    country: r.get(17),
                    lat: r.get(18),
                    lon: r.get(19),
                },
                sections: sections.remove(&event_id).unwrap_or_default(),
                policies: Policies {
                    max_tickets_per_customer: r.get::<_, i32>(9) as u32,
                    refund_window_hours: r.get::<_, i32>(10) as u32,
                    resale_max_price_percent: r.get::<_, i32>(11) as u32,
                    waiting_room: crate::catalog::waiting_room_from(r.get(22))?,
                },
            },
            cancelled_at: r.get(21),
        };
        let avail = if r.get::<_, bool>(20) {
            available.get(&event_id).copied().unwrap_or(0).max(0) as u64
        } else {
            u64::from(event.spec.capacity())
        };
        out.push(CatalogEntry {
            event,
            available: avail,
        });
    }
    Ok(out)
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::Snapshot;

    fn snap(s: &str) -> Snapshot {
        Snapshot::parse(s).expect(s)
    }

    #[test]
    fn snapshots_parse_and_order() {
        assert_eq!(snap("10:10:").xip, Vec::<u64>::new());
        assert_eq!(snap("10:15:10,12").xip, vec![10, 12]);
        assert!(Snapshot::parse("garbage").is_none());
        assert!(Snapshot::parse("15:10:").is_none());
        let earlier = snap("10:15:10,12");
        // 12 finished since; 10 still running; 15..20 finished.
        let later = snap("10:20:10");
        assert!(later.contains(&earlier));
        assert!(!earlier.contains(&later));
        assert!(earlier.contains(&earlier));
        // 12 still running later, but finished earlier: impossible in one cluster, and not
        // containment.
        assert!(!snap("10:20:12").contains(&snap("10:15:10")));
        assert!(snap("16:20:").contains(&earlier));
    }
}
