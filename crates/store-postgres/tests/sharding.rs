//! Event sharding: placement by rendezvous hashing over the shards' identities, the schema's
//! promise that every sales table is keyed by `event_id`, and adding a shard — lookups keep
//! working before the move, `verify` says a rebalance is due, the rebalance moves exactly the
//! events the new shard owns (nothing moves between the old shards) with all their rows, and
//! afterwards everything reads back the same and `verify` is clean.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use boxoffice_conformance::booking_suite::{buy, hold_req, seats};
use boxoffice_conformance::fixtures::{concert, now};
use boxoffice_domain::ids::{CustomerId, ShardSlot};
use boxoffice_domain::ports::Store;
use boxoffice_domain::seat::SeatState;
use boxoffice_store_postgres::sharded::{EVENT_TABLES, owner_of};
use boxoffice_store_postgres::testing::TestDatabase;
use boxoffice_store_postgres::{PgOptions, PgStore, ShardedStore};

#[test]
fn a_new_shard_takes_only_the_slots_it_wins_and_slots_spread_evenly() {
    let keys: Vec<u64> = vec![0x1234_5678, 0x9abc_def0, 0x0fed_cba9];
    let with_new: Vec<u64> = keys.iter().copied().chain([0x5555_aaaa]).collect();
    let mut moved = 0usize;
    let mut per_shard = [0usize; 4];
    for slot in 0..=u16::MAX {
        let before = owner_of(&keys, ShardSlot(slot));
        let after = owner_of(&with_new, ShardSlot(slot));
        per_shard[after] += 1;
        if before != after {
            assert_eq!(after, 3, "slot {slot} moved between old shards");
            moved += 1;
        }
    }
    let share = moved as f64 / 65_536.0;
    assert!(
        (0.2..0.3).contains(&share),
        "the new shard took {share:.3} of the slots"
    );
    for n in per_shard {
        let share = n as f64 / 65_536.0;
        assert!((0.2..0.3).contains(&share), "uneven: {per_shard:?}");
    }
}

#[tokio::test]
async fn every_sales_table_is_keyed_by_event_id() {
    let db = TestDatabase::create().await;
    PgStore::connect(&db.url, PgOptions::default())
        .await
        .expect("migrate");
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let rows = client
        .query(
            "SELECT table_name::text, bool_or(column_name = 'event_id')
             FROM information_schema.columns WHERE table_schema = 'public'
             GROUP BY table_name",
            &[],
        )
        .await
        .expect("columns");
    let with: BTreeSet<String> = rows.iter().filter(|r| r.get(1)).map(|r| r.get(0)).collect();
    let without: BTreeSet<String> = rows
        .iter()
        .filter(|r| !r.get::<_, bool>(1))
        .map(|r| r.get(0))
        .collect();
    // What an event owns moves with it: exactly the tables a rebalance copies, plus the
    // change feed's outbox (per database).
    let expected: BTreeSet<String> = EVENT_TABLES
        .iter()
        .map(|t| (*t).to_owned())
        .chain(["outbox".to_owned()])
        .collect();
    assert_eq!(with, expected, "tables keyed by event_id");
    // Everything else is per database, not per event: a new table of sales must carry
    // event_id (and be added to EVENT_TABLES), or be added here with the reason.
    let per_database: BTreeSet<String> = [
        "venues",        // copied with each event that moves
        "customers",     // unused since V1
        "cluster_keys",  // every shard registers the same keys
        "feed_identity", // the database's identity: its shard key
        "feed_horizon",  // the change feed's retention, per database
        "feed_readers",
        "refinery_schema_history", // migrations, per database
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(without, per_database, "tables not keyed by event_id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_a_shard_moves_only_its_events_and_keeps_every_booking() {
    let (a, b, c) = tokio::join!(
        TestDatabase::create(),
        TestDatabase::create(),
        TestDatabase::create()
    );
    let opts = PgOptions {
        pool_size: 4,
        ..PgOptions::default()
    };
    let two = ShardedStore::connect(&[a.url.clone(), b.url.clone()], opts.clone())
        .await
        .expect("two shards");
    let t = now();
    let two_store: Arc<dyn Store> = Arc::new(two.clone());
    let mut sold = Vec::new();
    for i in 0..24 {
        let e = concert(t);
        two_store.create_event(&e).await.expect("event");
        let held = two_store
            .hold(&hold_req(
                &e,
                &format!("fan-{i}"),
                seats(&["1-A-1", "1-A-2"]),
                t,
            ))
            .await
            .expect("hold");
        let booking = buy(&two_store, &held, &format!("fan-{i}"), t).await;
        sold.push((e, booking));
    }
    assert!(two.verify(t).await.expect("verify").is_empty());

    // A third shard: about a third of the events now belong there.
    let three = ShardedStore::connect(&[a.url.clone(), b.url.clone(), c.url.clone()], opts)
        .await
        .expect("three shards");
    let three_store: Arc<dyn Store> = Arc::new(three.clone());
    let misplaced = three.misplaced().await.expect("misplaced");
    let mut new_shard = None;
    for (i, s) in three.shards().enumerate() {
        if s.event_ids().await.expect("ids").is_empty() {
            new_shard = Some(i);
        }
    }
    let new_shard = new_shard.expect("the new shard is empty");
    assert!(
        !misplaced.is_empty(),
        "some of 24 events belong on the new shard"
    );
    for (_, _, to) in &misplaced {
        assert_eq!(*to, new_shard, "events only move to the new shard");
    }
    // Before the move: reads still find everything, and verify says what to do.
    for (e, booking) in &sold {
        let got = three_store
            .booking(booking.id)
            .await
            .expect("read")
            .expect("booking");
        assert_eq!(got.status, booking.status);
        assert!(three_store.event(e.id).await.expect("event").is_some());
    }
    let findings = three.verify(t).await.expect("verify");
    assert_eq!(findings.len(), misplaced.len(), "{findings:?}");
    assert!(findings.iter().all(|f| f.rule == "event-on-wrong-shard"));

    let done = three.rebalance().await.expect("rebalance");
    assert_eq!(done.moved.len(), misplaced.len());
    assert!(three.misplaced().await.expect("misplaced").is_empty());
    assert!(
        three.verify(t).await.expect("verify").is_empty(),
        "clean after the move"
    );
    let on_new: HashSet<_> = three
        .shards()
        .nth(new_shard)
        .expect("shard")
        .event_ids()
        .await
        .expect("ids")
        .into_iter()
        .collect();
    for (id, _, _) in &done.moved {
        assert!(on_new.contains(id), "{id} is on the new shard");
    }
    // Everything reads back the same, from the shard that owns it.
    for (i, (e, booking)) in sold.iter().enumerate() {
        let got = three_store
            .booking(booking.id)
            .await
            .expect("read")
            .expect("booking");
        assert_eq!(got.status, booking.status);
        assert_eq!(got.tickets.len(), 2);
        let map = three_store.seat_map(e, t).await.expect("map");
        let sold_seats = map
            .seats
            .iter()
            .filter(|s| s.state == SeatState::Sold)
            .count();
        assert_eq!(sold_seats, 2, "event {i}: its sold seats moved with it");
        let tickets = three_store
            .tickets_of(&CustomerId::parse(&format!("fan-{i}")).expect("customer"))
            .await
            .expect("tickets");
        assert_eq!(tickets.len(), 2);
    }
    // A second run has nothing to do.
    assert!(three.rebalance().await.expect("again").moved.is_empty());
}
