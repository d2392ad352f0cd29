//! PostgreSQL-specific change feed behaviour: transactions that commit out of position order,
//! and availability as the booking tables hold it. Raw SQL stands in for the booking code.

use std::time::Duration;

use boxoffice_conformance::fixtures::{concert, now};
use boxoffice_domain::feed::{Change, ChangeFeed, FeedCursor};
use boxoffice_domain::ids::EventId;
use boxoffice_domain::ports::Store;
use boxoffice_domain::ports::change::{AvailabilityDelta, SectionDelta};
use boxoffice_store_postgres::testing::TestDatabase;
use boxoffice_store_postgres::{PgOptions, PgStore};
use tokio_postgres::NoTls;

async fn store(db: &TestDatabase) -> PgStore {
    PgStore::connect(
        &db.url,
        PgOptions {
            pool_size: 4,
            ..PgOptions::default()
        },
    )
    .await
    .expect("connect")
}

async fn raw(db: &TestDatabase) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&db.url, NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
}

async fn drain(feed: &PgStore, since: &FeedCursor) -> (Vec<Change>, FeedCursor) {
    let mut read = feed.read(Some(since)).await.expect("read");
    let mut all = Vec::new();
    loop {
        let page = read.changes(1).await.expect("changes");
        if page.is_empty() {
            return (all, read.cursor().clone());
        }
        all.extend(page);
    }
}

const INSERT: &str =
    "INSERT INTO outbox (event_id, kind, payload) VALUES ($1, 'event.changed', '{}')";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_committing_late_is_read_once_and_not_skipped() {
    let db = TestDatabase::create().await;
    let feed = store(&db).await;
    let c0 = feed.read(None).await.expect("read").cursor().clone();
    let (early, late) = (EventId::new(), EventId::new());
    let mut a = raw(&db).await;
    let mut b = raw(&db).await;
    // A takes the lower position first but commits last.
    let ta = a.transaction().await.expect("begin a");
    ta.execute(INSERT, &[&early.0]).await.expect("insert a");
    let tb = b.transaction().await.expect("begin b");
    tb.execute(INSERT, &[&late.0]).await.expect("insert b");
    tb.commit().await.expect("commit b");

    let (changes, c1) = drain(&feed, &c0).await;
    assert_eq!(changes, vec![Change::EventChanged(late)]);
    ta.commit().await.expect("commit a");
    let (changes, c2) = drain(&feed, &c1).await;
    assert_eq!(
        changes,
        vec![Change::EventChanged(early)],
        "the earlier position is not skipped"
    );
    let (changes, _) = drain(&feed, &c2).await;
    assert!(changes.is_empty(), "and not read twice: {changes:?}");

    // An aborted transaction's rows never appear.
    let tx = a.transaction().await.expect("begin");
    tx.execute(INSERT, &[&EventId::new().0])
        .await
        .expect("insert");
    tx.rollback().await.expect("rollback");
    let (changes, _) = drain(&feed, &c2).await;
    assert!(changes.is_empty(), "{changes:?}");
}

/// Transaction ids are numbers, not text: where their digits grow (999,999 → 1,000,000) a page
/// still ends at the highest id read, so the next page skips nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_come_in_transaction_order_where_the_ids_gain_a_digit() {
    let db = TestDatabase::create().await;
    let feed = store(&db).await;
    let c0 = feed.read(None).await.expect("read").cursor().clone();
    let c = raw(&db).await;
    let current: i64 = c
        .query_one("SELECT pg_current_xact_id()::text::bigint", &[])
        .await
        .expect("xid")
        .get(0);
    // The next power of ten: transactions that have not happened yet, so the cursor has not
    // seen them; the column is set by hand to stand for them.
    let mut ten = 10i64;
    while ten <= current + 2 {
        ten *= 10;
    }
    let mut expected = Vec::new();
    for tx in [ten - 2, ten - 1, ten, ten + 1] {
        let id = EventId::new();
        c.execute(
            "INSERT INTO outbox (tx_id, event_id, kind, payload)
             VALUES ($1::text::xid8, $2, 'event.changed', '{}')",
            &[&tx.to_string(), &id.0],
        )
        .await
        .expect("insert");
        expected.push(Change::EventChanged(id));
    }
    let (changes, _) = drain(&feed, &c0).await;
    assert_eq!(changes, expected);
    // The look for anything new before waiting finds them too.
    tokio::time::timeout(
        Duration::from_secs(10),
        feed.wait(&c0, Duration::from_secs(60)),
    )
    .await
    .expect("not waiting for what is there")
    .expect("wait");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_running_writer_does_not_hold_back_others() {
    let db = TestDatabase::create().await;
    let feed = store(&db).await;
    let c0 = feed.read(None).await.expect("read").cursor().clone();
    let mut a = raw(&db).await;
    let ta = a.transaction().await.expect("begin");
    ta.execute(INSERT, &[&EventId::new().0])
        .await
        .expect("insert");
    let e = concert(now());
    feed.create_event(&e).await.expect("create");
    let (changes, _) = drain(&feed, &c0).await;
    assert_eq!(changes, vec![Change::EventChanged(e.id)]);
    // It wakes waiters too.
    tokio::time::timeout(
        Duration::from_secs(10),
        feed.wait(&c0, Duration::from_secs(60)),
    )
    .await
    .expect("woken")
    .expect("wait");
    ta.rollback().await.expect("rollback");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn availability_counts_open_seats_only() {
    let db = TestDatabase::create().await;
    let feed = store(&db).await;
    let e = concert(now());
    feed.create_event(&e).await.expect("create");
    let c = raw(&db).await;
    c.batch_execute(&format!(
        "UPDATE seats SET state = 'SOLD', booking_id = gen_random_uuid(), hold_expires_at = now()
           WHERE event_id = '{id}' AND seat_id IN ('1-A-1', '1-A-2', '2-GA-1');
         UPDATE seats SET state = 'HOLD', booking_id = gen_random_uuid(),
                hold_expires_at = now() + interval '5 minutes'
           WHERE event_id = '{id}' AND seat_id IN ('1-B-1', '1-B-2');
         UPDATE seats SET state = 'HOLD', booking_id = gen_random_uuid(),
                hold_expires_at = now() - interval '1 minute'
           WHERE event_id = '{id}' AND seat_id IN ('1-C-1', '1-C-2', '1-C-3', '1-C-4');
         INSERT INTO outbox (event_id, kind, payload)
           VALUES ('{id}', 'seats.changed', '{{\"sections\": [{{\"section\": 1, \"available\": -2}}]}}');",
        id = e.id
    ))
    .await
    .expect("book by hand");
    let mut read = feed.read(None).await.expect("read");
    let got = read.events(&[e.id]).await.expect("events");
    assert_eq!(
        got[0].available,
        300 - 3 - 2 - 4,
        "expired holds count until swept"
    );
    let page = read.all_events(None, 10).await.expect("all");
    assert_eq!(page[0].available, 291);

    let start = FeedCursor {
        store_id: read.cursor().store_id.clone(),
        position: "1:1:".into(),
    };
    let (changes, _) = drain(&feed, &start).await;
    assert_eq!(
        changes.last(),
        Some(&Change::SeatsChanged(
            e.id,
            AvailabilityDelta {
                sections: vec![SectionDelta {
                    section: 1,
                    available: -2
                }]
            }
        ))
    );
}

/// Pruning follows snapshots, not positions: a row of a transaction that was still running at
/// a reader's cursor is not pruned, however low its position and however old, until the
/// reader has applied it; and that reader is not told it fell behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_keeps_a_late_commit_the_reader_has_not_seen() {
    use boxoffice_domain::feed::Retention;
    let db = TestDatabase::create().await;
    let feed = store(&db).await;
    let early = EventId::new();
    let mut a = raw(&db).await;
    // A takes a low position and commits late.
    let ta = a.transaction().await.expect("begin a");
    ta.execute(INSERT, &[&early.0]).await.expect("insert a");
    feed.create_event(&concert(now())).await.expect("create");
    let c1 = feed.read(None).await.expect("read").cursor().clone();
    feed.record_reader("node", &c1, now())
        .await
        .expect("record");
    ta.commit().await.expect("commit a");
    // Long after, with min_age 0: only what the reader's snapshot saw finished may go.
    let retention = Retention {
        reader_ttl: Duration::from_secs(3600),
        min_age: Duration::ZERO,
    };
    let later = now() + time::Duration::minutes(1);
    let p = feed.prune(retention, later).await.expect("prune");
    assert_eq!(p.rows, 1, "the committed event's row: {p:?}");
    assert_eq!(p.remaining, 1, "A's row stays: {p:?}");
    let mut read = feed.read(Some(&c1)).await.expect("read");
    assert!(!read.fell_behind());
    let mut got = Vec::new();
    loop {
        let page = read.changes(10).await.expect("changes");
        if page.is_empty() {
            break;
        }
        got.extend(page);
    }
    assert_eq!(got, vec![Change::EventChanged(early)]);
    let c2 = read.cursor().clone();
    drop(read);
    // Once the reader has applied it, it goes too.
    feed.record_reader("node", &c2, later)
        .await
        .expect("record");
    let p = feed.prune(retention, later).await.expect("prune");
    assert_eq!((p.rows, p.remaining), (1, 0), "{p:?}");
}
