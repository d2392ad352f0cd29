//! `availableOnly` follows real holds and releases within a second, while other writes go on:
//! seat counts are read live by every search (no new snapshot, no re-indexing), and answers
//! cached for `availableOnly` are retired when an event sells out or comes back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use boxoffice_domain::booking::{HoldRequest, Selection};
use boxoffice_domain::event::{
    Category, Event, EventParts, EventSpec, Policies, SectionSpec, Venue,
};
use boxoffice_domain::ids::{BookingId, CustomerId, EventId};
use boxoffice_domain::ports::Store;
use boxoffice_search::query::SearchRequest;
use boxoffice_search::{SearchConfig, SearchIndex};
use boxoffice_store_sqlite::SqliteStore;
use serde_json::Value;
use time::OffsetDateTime;

fn event(name: &str, places: u32) -> Event {
    let now = boxoffice_domain::event::to_micros(OffsetDateTime::now_utc());
    let venue = Venue::new(
        "Lumen Field",
        "800 Occidental Ave S",
        "Seattle",
        "98134",
        "US",
        47.5952,
        -122.3316,
    )
    .expect("venue");
    let spec = EventSpec::new(
        EventParts {
            name: name.into(),
            performers: vec![name.into()],
            category: Category::Concert,
            description: String::new(),
            starts_at: now + time::Duration::days(30),
            on_sale_at: None,
            currency: "USD".parse().expect("currency"),
            venue,
            sections: vec![
                SectionSpec::general_admission("Floor", places, 5_000).expect("section"),
            ],
            policies: Policies::DEFAULT,
        },
        now,
    )
    .expect("event");
    Event {
        id: EventId::new(),
        organizer: CustomerId::parse("org").expect("id"),
        created_at: now,
        spec,
        cancelled_at: None,
    }
}

fn hold(e: &Event, who: &str, quantity: u32) -> HoldRequest {
    let now = OffsetDateTime::now_utc();
    HoldRequest {
        booking_id: BookingId::new(),
        event: Arc::new(e.clone()),
        customer: CustomerId::parse(who).expect("customer"),
        selection: Selection::BestAvailable {
            section: 1,
            quantity,
        },
        now,
        expires_at: now + time::Duration::minutes(5),
    }
}

async fn search(index: &SearchIndex, q: &[(&str, &str)]) -> Value {
    let pairs: Vec<(String, String)> = q
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let req = SearchRequest::parse(&pairs).expect("valid search");
    let body = index.search(req).await.expect("search");
    serde_json::from_slice(&body).expect("json")
}

fn listed(r: &Value, id: EventId) -> bool {
    r["events"]
        .as_array()
        .expect("events")
        .iter()
        .any(|e| e["eventId"] == id.0.to_string())
}

/// Polls until `cond` holds for the answer to `q`, at most `within`; returns how long it took.
async fn until(
    index: &SearchIndex,
    q: &[(&str, &str)],
    within: Duration,
    what: &str,
    cond: impl Fn(&Value) -> bool,
) -> Duration {
    let started = tokio::time::Instant::now();
    loop {
        let r = search(index, q).await;
        if cond(&r) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{what} not within {within:?}: {r}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sold_out_leaves_available_only_and_a_release_brings_it_back_under_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("boxoffice.db")).expect("store");
    let small = event("Glass Animals", 4);
    let busy = event("Busy Arena Night", 100_000);
    store.create_event(&small).await.expect("create");
    store.create_event(&busy).await.expect("create");
    let mut config = SearchConfig::new(dir.path().join("index"));
    config.cache_entries = 1_000;
    let index = SearchIndex::open(&config, Arc::new(store.clone())).expect("open index");
    let q = [("q", "glass animals"), ("availableOnly", "true")];
    until(
        &index,
        &q,
        Duration::from_secs(10),
        "the event indexed",
        |r| listed(r, small.id),
    )
    .await;

    // Writes on the side the whole time: holds and releases on another event (seat deltas
    // every few milliseconds) and new events (new catalog snapshots).
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let writer = {
        let (store, stop, writes, busy) =
            (store.clone(), stop.clone(), writes.clone(), busy.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let b = store
                    .hold(&hold(&busy, &format!("side-{}", i % 50), 1))
                    .await
                    .expect("side hold");
                if i.is_multiple_of(2) {
                    store
                        .release(b.id, OffsetDateTime::now_utc())
                        .await
                        .expect("side release");
                }
                if i.is_multiple_of(25) {
                    store
                        .create_event(&event(&format!("Side Show {i}"), 10))
                        .await
                        .expect("side event");
                }
                writes.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    // Searches on the side too, so that answers are cached and must be retired.
    let searcher = {
        let (index, stop) = (index.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                search(&index, &[("q", "glass animals"), ("availableOnly", "true")]).await;
                search(&index, &[("availableOnly", "true"), ("sort", "date")]).await;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };

    for round in 0..3 {
        // Every place held: sold out, gone from availableOnly (and from its facets) within 1 s.
        let a = store
            .hold(&hold(&small, &format!("buyer-a{round}"), 2))
            .await
            .expect("hold");
        let b = store
            .hold(&hold(&small, &format!("buyer-b{round}"), 2))
            .await
            .expect("hold");
        until(&index, &q, Duration::from_secs(1), "sold out", |r| {
            !listed(r, small.id)
        })
        .await;
        let browse = [("availableOnly", "true"), ("sort", "date")];
        until(
            &index,
            &browse,
            Duration::from_secs(1),
            "sold out (browsing)",
            |r| !listed(r, small.id),
        )
        .await;
        // Still found without the filter, with no seats left.
        let all = search(&index, &[("q", "glass animals")]).await;
        assert!(listed(&all, small.id), "{all}");
        assert_eq!(all["events"][0]["seatsLeft"], 0, "{all}");

        // One place released: back within 1 s, with its seat counted.
        store
            .release(a.id, OffsetDateTime::now_utc())
            .await
            .expect("release");
        until(&index, &q, Duration::from_secs(1), "back on sale", |r| {
            listed(r, small.id) && r["events"][0]["seatsLeft"] == 2
        })
        .await;
        until(
            &index,
            &browse,
            Duration::from_secs(1),
            "back (browsing)",
            |r| listed(r, small.id),
        )
        .await;
        store
            .release(b.id, OffsetDateTime::now_utc())
            .await
            .expect("release");
        until(&index, &q, Duration::from_secs(1), "all places back", |r| {
            r["events"][0]["seatsLeft"] == 4
        })
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("writer");
    searcher.await.expect("searcher");
    assert!(
        writes.load(Ordering::Relaxed) > 10,
        "the side writes ran meanwhile"
    );
}
