//! The change feed behaviours every backend must show; see `boxoffice_domain::feed`.

use std::sync::Arc;
use std::time::Duration;

use boxoffice_domain::feed::{Change, ChangeFeed, FeedCursor};
use boxoffice_domain::ids::EventId;
use boxoffice_domain::ports::Store;

use crate::fixtures::{concert, now};

/// Every change after `since` that a read returns, and the read's cursor.
async fn drain(feed: &dyn ChangeFeed, since: &FeedCursor) -> (Vec<Change>, FeedCursor) {
    let mut read = feed.read(Some(since)).await.expect("read");
    let mut all = Vec::new();
    loop {
        // A small page, so that paging itself is exercised.
        let page = read.changes(2).await.expect("changes");
        if page.is_empty() {
            break;
        }
        all.extend(page);
    }
    (all, read.cursor().clone())
}

async fn cursor_now(feed: &dyn ChangeFeed) -> FeedCursor {
    feed.read(None).await.expect("read").cursor().clone()
}

pub async fn feed_reports_each_created_event_once(
    store: Arc<dyn Store>,
    feed: Arc<dyn ChangeFeed>,
) {
    let start = cursor_now(&*feed).await;
    let (nothing, same) = drain(&*feed, &start).await;
    assert!(nothing.is_empty(), "{nothing:?}");
    assert_eq!(same.store_id, start.store_id);

    let t = now();
    let one = concert(t);
    store.create_event(&one).await.expect("create");
    let bulk: Vec<_> = (0..5).map(|_| concert(t)).collect();
    store.create_events_bulk(&bulk).await.expect("bulk");

    let (changes, c1) = drain(&*feed, &start).await;
    let mut ids: Vec<EventId> = changes
        .iter()
        .map(|c| match c {
            Change::EventChanged(id) => *id,
            other => panic!("unexpected change {other:?}"),
        })
        .collect();
    assert_eq!(ids.len(), 6, "{changes:?}");
    // In the order they were written. A sharded store (cursor `shards:…`) has an order within
    // each database only: its events lie on different shards, read one shard after another.
    if !start.store_id.starts_with("shards:") {
        assert_eq!(
            ids[0], one.id,
            "changes come in the order they were written"
        );
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6);

    // From the new cursor: nothing again.
    let (again, _) = drain(&*feed, &c1).await;
    assert!(again.is_empty(), "{again:?}");

    // The events as of a read, with all places available (the bulk ones are not laid out).
    let mut read = feed.read(Some(&c1)).await.expect("read");
    let mut want = vec![one.id, bulk[2].id, EventId::new()];
    want.sort();
    let got = read.events(&want).await.expect("events");
    assert_eq!(got.len(), 2, "unknown ids are left out");
    for entry in got {
        let expected = if entry.event.id == one.id {
            &one
        } else {
            &bulk[2]
        };
        assert_eq!(&entry.event, expected);
        assert_eq!(entry.available, u64::from(expected.spec.capacity()));
    }
}

pub async fn feed_snapshot_excludes_later_writes(store: Arc<dyn Store>, feed: Arc<dyn ChangeFeed>) {
    let t = now();
    let before = concert(t);
    store.create_event(&before).await.expect("create");
    let start = cursor_now(&*feed).await;

    // A read is one instant: what is written while it is open is not in it...
    let mut read = feed.read(Some(&start)).await.expect("read");
    let later = concert(t);
    store.create_event(&later).await.expect("create later");
    assert!(read.changes(100).await.expect("changes").is_empty());
    assert!(read.events(&[later.id]).await.expect("events").is_empty());
    let all = read.all_events(None, 100).await.expect("all");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].event.id, before.id);
    let cursor = read.cursor().clone();
    drop(read);

    // ...and is exactly what the next read after its cursor returns.
    let (changes, _) = drain(&*feed, &cursor).await;
    assert_eq!(changes, vec![Change::EventChanged(later.id)]);
}

pub async fn feed_pages_through_the_whole_catalog(
    store: Arc<dyn Store>,
    feed: Arc<dyn ChangeFeed>,
) {
    let t = now();
    let events: Vec<_> = (0..23).map(|_| concert(t)).collect();
    store.create_events_bulk(&events).await.expect("bulk");
    let mut read = feed.read(None).await.expect("read");
    assert!(read.changes(10).await.expect("changes").is_empty());
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = read.all_events(after, 5).await.expect("page");
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 5);
        after = page.last().map(|e| e.event.id);
        seen.extend(page);
    }
    let mut want: Vec<_> = events.iter().map(|e| e.id).collect();
    want.sort();
    let got: Vec<_> = seen.iter().map(|e| e.event.id).collect();
    assert_eq!(got, want, "every event once, in id order");
    for entry in &seen {
        let original = events
            .iter()
            .find(|e| e.id == entry.event.id)
            .expect("known");
        assert_eq!(&entry.event, original);
        assert_eq!(entry.available, u64::from(original.spec.capacity()));
    }
}

pub async fn feed_cursor_of_another_database_is_not_used(
    store: Arc<dyn Store>,
    feed: Arc<dyn ChangeFeed>,
) {
    store.create_event(&concert(now())).await.expect("create");
    let real = cursor_now(&*feed).await;
    let foreign = FeedCursor {
        store_id: "some-other-database".into(),
        position: real.position.clone(),
    };
    let mut read = feed.read(Some(&foreign)).await.expect("read");
    assert_ne!(
        read.cursor().store_id,
        foreign.store_id,
        "the reader can tell that it must rebuild"
    );
    assert!(read.changes(10).await.expect("changes").is_empty());
}

pub async fn feed_wait_wakes_on_a_change(store: Arc<dyn Store>, feed: Arc<dyn ChangeFeed>) {
    let cursor = cursor_now(&*feed).await;
    let waiter = {
        let feed = feed.clone();
        let cursor = cursor.clone();
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            feed.wait(&cursor, Duration::from_secs(30))
                .await
                .expect("wait");
            started.elapsed()
        })
    };
    store.create_event(&concert(now())).await.expect("create");
    let waited = tokio::time::timeout(Duration::from_secs(20), waiter)
        .await
        .expect("the waiter wakes well before its timeout")
        .expect("join");
    assert!(waited < Duration::from_secs(20), "{waited:?}");
    // With the change already there, waiting returns at once.
    tokio::time::timeout(
        Duration::from_secs(10),
        feed.wait(&cursor, Duration::from_secs(30)),
    )
    .await
    .expect("returns at once")
    .expect("wait");
}

/// Outbox retention: rows every live reader has applied and that are old enough are pruned;
/// a reader whose cursor is behind the pruned rows is told so, one that kept up is not.
pub async fn feed_prunes_what_every_reader_applied(
    store: Arc<dyn Store>,
    feed: Arc<dyn ChangeFeed>,
) {
    use boxoffice_domain::feed::Retention;
    let t = now();
    let minutes = |m: i64| time::Duration::minutes(m);
    let retention = Retention {
        reader_ttl: Duration::from_secs(3600),
        min_age: Duration::from_secs(600),
    };
    let c0 = cursor_now(&*feed).await;
    let (e1, e2, e3) = (concert(t), concert(t), concert(t));
    store.create_event(&e1).await.expect("create");
    store.create_event(&e2).await.expect("create");
    let c1 = cursor_now(&*feed).await;
    store.create_event(&e3).await.expect("create");

    feed.record_reader("fast", &c1, t).await.expect("record");
    feed.record_reader("slow", &c0, t).await.expect("record");
    // Too young: nothing goes, whatever the readers have applied.
    let p = feed.prune(retention, t).await.expect("prune");
    assert_eq!(p.rows, 0, "{p:?}");
    // Old enough, but the slow reader has applied none of it.
    let p = feed.prune(retention, t + minutes(20)).await.expect("prune");
    assert_eq!(p.rows, 0, "{p:?}");
    let read = feed.read(Some(&c0)).await.expect("read");
    assert!(!read.fell_behind());
    drop(read);
    let (all, _) = drain(&*feed, &c0).await;
    assert_eq!(all.len(), 3, "{all:?}");

    // Once the slow reader has come as far, what both applied goes; the rest stays.
    feed.record_reader("slow", &c1, t + minutes(20))
        .await
        .expect("record");
    let p = feed.prune(retention, t + minutes(20)).await.expect("prune");
    assert_eq!(p.rows, 2, "{p:?}");
    assert_eq!(p.remaining, 1, "{p:?}");
    let read = feed.read(Some(&c1)).await.expect("read");
    assert!(!read.fell_behind(), "a reader that kept up is not behind");
    drop(read);
    let (rest, _) = drain(&*feed, &c1).await;
    assert_eq!(rest, vec![Change::EventChanged(e3.id)]);
    // A cursor from before the pruned rows cannot be caught up from: the reader must rebuild.
    let mut read = feed.read(Some(&c0)).await.expect("read");
    assert!(
        read.fell_behind(),
        "a cursor behind pruned rows is detected"
    );
    assert!(read.changes(10).await.expect("changes").is_empty());
    // A fresh read (a rebuild) is never behind, and sees everything in its scan.
    let mut fresh = feed.read(None).await.expect("read");
    assert!(!fresh.fell_behind());
    assert_eq!(fresh.all_events(None, 10).await.expect("all").len(), 3);
    let rebuilt = fresh.cursor().clone();
    drop(fresh);
    assert!(!feed.read(Some(&rebuilt)).await.expect("read").fell_behind());

    // Pruning again changes nothing; a repeated prune is harmless.
    let p = feed.prune(retention, t + minutes(20)).await.expect("prune");
    assert_eq!(p.rows, 0, "{p:?}");
}

/// A reader silent for longer than the reader TTL stops holding rows back (and is told it
/// fell behind when it returns); a cursor of another database is never recorded.
pub async fn feed_forgets_silent_readers(store: Arc<dyn Store>, feed: Arc<dyn ChangeFeed>) {
    use boxoffice_domain::feed::Retention;
    let t = now();
    let retention = Retention {
        reader_ttl: Duration::from_secs(3600),
        min_age: Duration::from_secs(600),
    };
    let c0 = cursor_now(&*feed).await;
    feed.record_reader("gone", &c0, t).await.expect("record");
    let foreign = FeedCursor {
        store_id: "some-other-database".into(),
        position: c0.position.clone(),
    };
    feed.record_reader("foreign", &foreign, t + time::Duration::hours(2))
        .await
        .expect("a foreign cursor is ignored, not an error");
    for _ in 0..3 {
        store.create_event(&concert(t)).await.expect("create");
    }
    let c1 = cursor_now(&*feed).await;
    store.create_event(&concert(t)).await.expect("create");
    let later = t + time::Duration::hours(2);
    feed.record_reader("alive", &c1, later)
        .await
        .expect("record");
    let p = feed.prune(retention, later).await.expect("prune");
    assert_eq!(p.rows, 3, "the silent reader holds nothing back: {p:?}");
    assert!(feed.read(Some(&c0)).await.expect("read").fell_behind());
    assert!(!feed.read(Some(&c1)).await.expect("read").fell_behind());
    // With no live reader at all, every old enough row may go (the newest may be kept).
    let much_later = later + time::Duration::hours(2);
    let p = feed.prune(retention, much_later).await.expect("prune");
    assert!(p.remaining <= 1, "{p:?}");
}
