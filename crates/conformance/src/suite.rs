//! The behaviours. Each function gets an empty store and panics on any deviation.

use std::sync::Arc;

use boxoffice_domain::event::SectionSpec;
use boxoffice_domain::ids::EventId;
use boxoffice_domain::ports::Store;
use boxoffice_domain::seat::SeatState;

use crate::fixtures::{concert, event_with, now};

pub async fn created_event_reads_back_identically(store: Arc<dyn Store>) {
    let e = concert(now());
    store.create_event(&e).await.expect("create");
    let back = store.event(e.id).await.expect("read").expect("exists");
    assert_eq!(back, e);
}

pub async fn seat_map_lists_every_seat_and_counts_sections(store: Arc<dyn Store>) {
    let t = now();
    let e = concert(t);
    store.create_event(&e).await.expect("create");
    let map = store.seat_map(&e, t).await.expect("read");
    assert_eq!(map.event_id, e.id);
    // Numbered seats are listed, general admission is counted.
    assert_eq!(map.seats.len(), 200);
    assert!(map.seats.iter().all(|s| s.state == SeatState::Open));
    assert_eq!(map.seats[0].id.as_str(), "1-A-1");
    assert_eq!(map.seats[0].row.as_deref(), Some("A"));
    assert_eq!(map.seats[199].id.as_str(), "1-J-20");
    assert_eq!(map.sections.len(), 2);
    assert_eq!(
        (map.sections[0].capacity, map.sections[0].available),
        (200, 200)
    );
    assert_eq!(
        (map.sections[1].capacity, map.sections[1].available),
        (100, 100)
    );
    let mut ids: Vec<_> = map.seats.iter().map(|s| s.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200, "seat ids are unique");
}

pub async fn bulk_created_events_are_complete_and_open(store: Arc<dyn Store>) {
    let t = now();
    let events: Vec<_> = (0..50).map(|_| concert(t)).collect();
    store.create_events_bulk(&events).await.expect("bulk");
    for e in &events {
        assert_eq!(&store.event(e.id).await.expect("read").expect("exists"), e);
    }
    let map = store.seat_map(&events[7], t).await.expect("read");
    assert_eq!(map.seats.len(), 200);
    assert_eq!(map.sections[1].available, 100);
}

pub async fn bulk_creation_can_be_repeated(store: Arc<dyn Store>) {
    let t = now();
    let first: Vec<_> = (0..10).map(|_| concert(t)).collect();
    store.create_events_bulk(&first).await.expect("bulk");
    // The same ids again (one changed in content) plus new ones: stored ones stay as they are.
    let mut again = first.clone();
    again[3].spec.name = "Changed".into();
    again.extend((0..5).map(|_| concert(t)));
    store.create_events_bulk(&again).await.expect("bulk again");
    for e in first.iter().chain(&again[10..]) {
        assert_eq!(&store.event(e.id).await.expect("read").expect("exists"), e);
    }
    let map = store.seat_map(&again[12], t).await.expect("read");
    assert_eq!(map.sections[0].available, 200);
}

pub async fn unknown_event_is_none(store: Arc<dyn Store>) {
    assert!(store.event(EventId::new()).await.expect("read").is_none());
}

pub async fn events_at_one_venue_share_it(store: Arc<dyn Store>) {
    let t = now();
    let a = concert(t);
    let b = concert(t);
    store.create_event(&a).await.expect("first");
    store
        .create_event(&b)
        .await
        .expect("second at the same venue");
    assert_eq!(
        store
            .event(b.id)
            .await
            .expect("read")
            .expect("exists")
            .spec
            .venue,
        a.spec.venue
    );
}

pub async fn stadium_sized_event_is_laid_out(store: Arc<dyn Store>) {
    let t = now();
    let e = event_with(
        t,
        vec![
            SectionSpec::seated("Lower Bowl", 100, 300, 15_000).expect("section"),
            SectionSpec::general_admission("Field", 20_000, 9_000).expect("section"),
        ],
    );
    store.create_event(&e).await.expect("create");
    let map = store.seat_map(&e, t).await.expect("read");
    assert_eq!(map.seats.len(), 30_000);
    assert_eq!(map.sections[0].available, 30_000);
    assert_eq!(map.sections[1].available, 20_000);
    assert_eq!(map.seats.last().expect("seats").id.as_str(), "1-CV-300");
}
