//! SQLite-specific change feed behaviour: availability as the booking tables hold it, and the
//! seats payload. Raw SQL stands in for the booking code.

use boxoffice_conformance::fixtures::{concert, now};
use boxoffice_domain::feed::{Change, ChangeFeed};
use boxoffice_domain::ports::Store;
use boxoffice_domain::ports::change::{AvailabilityDelta, SectionDelta};
use boxoffice_store_sqlite::SqliteStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn availability_counts_open_seats_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("boxoffice.db");
    let store = SqliteStore::open(&path).expect("open");
    let e = concert(now());
    store.create_event(&e).await.expect("create");
    let start = store.read(None).await.expect("read").cursor().clone();
    let micros = |d: i64| (time::OffsetDateTime::now_utc().unix_timestamp() + d) * 1_000_000;
    let c = rusqlite::Connection::open(&path).expect("open raw");
    let id = e.id.0.as_bytes().to_vec();
    let set = |state: &str, expires: i64, seats: &[&str]| {
        for s in seats {
            c.execute(
                "UPDATE seats SET state = ?1, booking_id = randomblob(16), hold_expires_at = ?2
                 WHERE event_id = ?3 AND seat_id = ?4",
                rusqlite::params![state, expires, id, s],
            )
            .expect("update");
        }
    };
    set("SOLD", micros(0), &["1-A-1", "1-A-2", "2-GA-1"]);
    set("HOLD", micros(300), &["1-B-1", "1-B-2"]);
    set("HOLD", micros(-60), &["1-C-1", "1-C-2", "1-C-3", "1-C-4"]);
    c.execute(
        "INSERT INTO outbox (event_id, kind, payload, created_at) VALUES (?1, 'seats.changed', ?2, 0)",
        rusqlite::params![id, r#"{"sections": [{"section": 1, "available": -2}]}"#],
    )
    .expect("outbox");

    let mut read = store.read(Some(&start)).await.expect("read");
    assert_eq!(
        read.events(&[e.id]).await.expect("events")[0].available,
        291,
        "expired holds count until swept"
    );
    assert_eq!(
        read.all_events(None, 5).await.expect("all")[0].available,
        291
    );
    assert_eq!(
        read.changes(10).await.expect("changes"),
        vec![Change::SeatsChanged(
            e.id,
            AvailabilityDelta {
                sections: vec![SectionDelta {
                    section: 1,
                    available: -2
                }]
            }
        )]
    );
}
