//! PostgreSQL-only: best-available picks skip rows other transactions have locked, so a pick
//! can lose some of its seats to the crowd. Defect 6 of issue 7: on its last try such a pick
//! used to start over and leave the seats it had already taken held by a booking that did
//! not list them — held by nobody, off sale until someone noticed.

use std::sync::Arc;

use boxoffice_conformance::fixtures::{concert, now};
use boxoffice_domain::booking::{HoldRequest, Selection};
use boxoffice_domain::ids::{BookingId, CustomerId};
use boxoffice_domain::ports::Store;
use boxoffice_store_postgres::testing::TestDatabase;
use boxoffice_store_postgres::{PgOptions, PgStore};
use time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pick_that_loses_seats_to_the_crowd_keeps_none_off_sale() {
    let db = TestDatabase::create().await;
    let store = PgStore::connect(&db.url, PgOptions::default())
        .await
        .expect("connect");
    let t = now();
    let event = concert(t);
    store.create_event(&event).await.expect("event");
    // Another buyer is in the middle of taking the centre seat of the front row: its row is
    // locked for as long as this test wants.
    let (blocker, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    blocker.batch_execute("BEGIN").await.expect("begin");
    blocker
        .execute(
            "SELECT 1 FROM seats WHERE event_id = $1 AND seat_id = '1-A-10' FOR UPDATE",
            &[&event.id.0],
        )
        .await
        .expect("lock a seat");
    // A best-available pick of four wants the centre block around it, loses that seat on
    // every try, and on the last one takes what it can.
    let booking = store
        .hold(&HoldRequest {
            booking_id: BookingId::new(),
            event: Arc::new(event.clone()),
            customer: CustomerId::parse("alice").unwrap(),
            selection: Selection::BestAvailable {
                section: 1,
                quantity: 4,
            },
            now: t,
            expires_at: t + Duration::minutes(5),
        })
        .await
        .expect("hold");
    assert_eq!(booking.seats.len(), 4);
    blocker.batch_execute("ROLLBACK").await.expect("rollback");
    // Every held seat belongs to a booking that lists it.
    let findings = store.verify(t).await.expect("verify");
    assert!(findings.is_empty(), "{findings:#?}");
    let map = store.seat_map(&event, t).await.expect("map");
    assert_eq!(
        map.sections[0].held, 4,
        "exactly the booking's four seats are held"
    );
}
