//! The shared store suite, against a fresh PostgreSQL database per test. Every statement the
//! store sends is recorded, and a test fails if one on an event's tables does not filter by
//! the event (`testing::StatementCheck`): the booking path stays ready to be distributed by
//! `event_id`.

use std::sync::Arc;

use boxoffice_conformance::Harness;
use boxoffice_store_postgres::testing::{StatementCheck, TestDatabase};
use boxoffice_store_postgres::{PgOptions, PgStore, StatementLog};

async fn fresh_store() -> Harness {
    checked_store().await.0
}

/// A fresh store whose statements are checked when the harness is dropped, and their log.
async fn checked_store() -> (Harness, StatementLog) {
    let db = TestDatabase::create().await;
    let log = StatementLog::default();
    let store = PgStore::connect(
        &db.url,
        PgOptions {
            pool_size: 4,
            statement_log: Some(log.clone()),
            ..PgOptions::default()
        },
    )
    .await
    .expect("connect to test database");
    let harness = Harness {
        store: Arc::new(store.clone()),
        feed: Arc::new(store),
        guard: Box::new(StatementCheck {
            log: log.clone(),
            database: db,
        }),
    };
    (harness, log)
}

boxoffice_conformance::store_suite!(fresh_store);

/// The hot path (hold, pay, confirm, capture) looks a row up by a bare id exactly once: the
/// commit's claim of its idempotency key finds the booking by id and learns its event; every
/// other statement names the event, and none scans across events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_finds_its_booking_by_id_once() {
    use boxoffice_conformance::booking_suite::{buy, hold_req, seats};
    use boxoffice_conformance::fixtures::{concert, now};
    use boxoffice_domain::ports::Store;
    use boxoffice_store_postgres::testing::unfiltered_statements;

    let (harness, log) = checked_store().await;
    let store: Arc<dyn Store> = harness.store.clone();
    let t = now();
    let e = concert(t);
    store.create_event(&e).await.expect("create");
    log.take();
    let held = store
        .hold(&hold_req(&e, "alice", seats(&["1-A-1", "1-A-2"]), t))
        .await
        .expect("hold");
    buy(&store, &held, "alice", t).await;
    let sent = log.take();
    assert!(sent.len() >= 6, "recorded: {sent:#?}");
    assert!(unfiltered_statements(&sent).is_empty(), "{sent:#?}");
    let by_key: Vec<&String> = sent
        .iter()
        .filter(|s| s.trim_start().starts_with("/* by key */"))
        .collect();
    assert_eq!(by_key.len(), 1, "{by_key:#?}");
    assert!(
        by_key[0].contains("INSERT INTO idempotency_keys"),
        "{by_key:#?}"
    );
    assert!(
        !sent.iter().any(|s| {
            let s = s.trim_start();
            s.starts_with("/* scan */") || s.starts_with("/* fan-out */")
        }),
        "{sent:#?}"
    );
    drop(harness);
}
