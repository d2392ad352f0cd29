//! Waiting-room behaviours every store must have (issue 9): one place per customer, admission
//! first in line first and never past the rate or the free seats (also when several rounds run
//! at once), a lapsed admission queued again at the back, and the event's policy stored.

use std::sync::Arc;

use boxoffice_domain::event::{Event, WaitingRoom};
use boxoffice_domain::ids::QueueId;
use boxoffice_domain::ports::Store;
use boxoffice_domain::queue::{AdmitRound, LATE_KEYS_FROM, QueueEntry, QueueJoin, RoomCounts};
use time::{Duration, OffsetDateTime};

use crate::booking_suite::customer;
use crate::fixtures::{concert, now};

/// A concert with a waiting room (120 a minute, 10-minute admissions), on sale an hour ago.
pub fn rush(t: OffsetDateTime) -> Event {
    let mut e = concert(t);
    e.spec.policies.waiting_room = Some(
        WaitingRoom::new(e.spec.on_sale_at - Duration::hours(1), 120, 10).expect("valid room"),
    );
    e
}

async fn join(
    store: &Arc<dyn Store>,
    e: &Event,
    who: &str,
    key: i64,
    at: OffsetDateTime,
) -> QueueEntry {
    store
        .join_queue(&QueueJoin {
            id: QueueId::new_in(e.id.slot()),
            event_id: e.id,
            customer: customer(who),
            sort_key: key,
            now: at,
            lapsed_before: at - Duration::minutes(10),
        })
        .await
        .expect("join")
}

async fn round(
    store: &Arc<dyn Store>,
    e: &Event,
    allowance: u64,
    free: u64,
    at: OffsetDateTime,
) -> RoomCounts {
    store
        .admit_from_queue(&AdmitRound {
            event_id: e.id,
            now: at,
            allowance,
            free_seats: free,
            active_since: at - Duration::minutes(10),
        })
        .await
        .expect("admit")
}

pub async fn the_waiting_room_policy_reads_back(store: Arc<dyn Store>) {
    let e = rush(now());
    store.create_event(&e).await.expect("create");
    let back = store.event(e.id).await.expect("read").expect("exists");
    assert_eq!(
        back.spec.policies.waiting_room,
        e.spec.policies.waiting_room
    );
    assert_eq!(back, e);
}

pub async fn joining_twice_keeps_the_place(store: Arc<dyn Store>) {
    let t = now();
    let e = rush(t);
    store.create_event(&e).await.expect("create");
    let first = join(&store, &e, "alice", 42, t).await;
    let again = join(&store, &e, "alice", 7, t + Duration::seconds(5)).await;
    assert_eq!(first, again, "a second join returns the same place");
    assert_eq!(first.sort_key, 42);
    let read = store.queue_entry(first.id).await.expect("read");
    assert_eq!(read.as_ref(), Some(&first));
    assert_eq!(store.queue_entry(QueueId::new()).await.expect("read"), None);
    let other = join(&store, &e, "bob", 41, t).await;
    assert_ne!(other.id, first.id);
    assert_eq!(store.queue_position(&other).await.expect("pos"), 0);
    assert_eq!(store.queue_position(&first).await.expect("pos"), 1);
    assert_eq!(
        store.queue_waiting_keys(e.id).await.expect("keys"),
        vec![41, 42]
    );
}

pub async fn admission_goes_in_order_within_the_rate_and_the_free_seats(store: Arc<dyn Store>) {
    let t = now();
    let e = rush(t);
    store.create_event(&e).await.expect("create");
    // Joined in this order, but placed by key: carol (1), alice (2), dave (3), bob (late).
    let alice = join(&store, &e, "alice", 2, t).await;
    let bob = join(&store, &e, "bob", LATE_KEYS_FROM + 5, t).await;
    let carol = join(&store, &e, "carol", 1, t).await;
    let dave = join(&store, &e, "dave", 3, t).await;
    assert_eq!(store.queue_position(&bob).await.unwrap(), 3);

    let c = round(&store, &e, 2, 100, t).await;
    assert_eq!(
        c,
        RoomCounts {
            admitted: 2,
            waiting: 2
        }
    );
    let admitted = |id: QueueId| {
        let store = store.clone();
        async move {
            store
                .queue_entry(id)
                .await
                .unwrap()
                .unwrap()
                .admitted_at
                .is_some()
        }
    };
    assert!(admitted(carol.id).await && admitted(alice.id).await);
    assert!(!admitted(dave.id).await && !admitted(bob.id).await);
    assert_eq!(store.queue_position(&bob).await.unwrap(), 1);
    assert_eq!(store.queue_position(&dave).await.unwrap(), 0);

    // The rate owes two more, but only three seats are free and two buyers are shopping.
    let c = round(&store, &e, 4, 3, t + Duration::seconds(1)).await;
    assert_eq!(
        c,
        RoomCounts {
            admitted: 3,
            waiting: 1
        }
    );
    assert!(admitted(dave.id).await && !admitted(bob.id).await);
    // Nothing owed, nothing let in.
    let c = round(&store, &e, 3, 100, t + Duration::seconds(2)).await;
    assert_eq!(
        c,
        RoomCounts {
            admitted: 3,
            waiting: 1
        }
    );
    // Once the first admissions lapse they no longer count against the free seats.
    let c = round(&store, &e, 10, 1, t + Duration::minutes(11)).await;
    assert_eq!(
        c,
        RoomCounts {
            admitted: 4,
            waiting: 0
        }
    );
    assert!(admitted(bob.id).await);
}

pub async fn parallel_admission_rounds_never_exceed_the_allowance(store: Arc<dyn Store>) {
    let t = now();
    let e = rush(t);
    store.create_event(&e).await.expect("create");
    for i in 0..30 {
        join(&store, &e, &format!("fan-{i}"), i, t).await;
    }
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        let e = e.clone();
        tasks.push(tokio::spawn(
            async move { round(&store, &e, 12, 1000, t).await },
        ));
    }
    for task in tasks {
        task.await.expect("round");
    }
    let c = round(&store, &e, 12, 1000, t).await;
    assert_eq!(
        c,
        RoomCounts {
            admitted: 12,
            waiting: 18
        }
    );
    // The first twelve by key, no one else.
    let keys = store.queue_waiting_keys(e.id).await.unwrap();
    assert_eq!(keys, (12..30).collect::<Vec<i64>>());
}

pub async fn a_lapsed_admission_queues_again_at_the_back(store: Arc<dyn Store>) {
    let t = now();
    let e = rush(t);
    store.create_event(&e).await.expect("create");
    let alice = join(&store, &e, "alice", 1, t).await;
    join(&store, &e, "bob", 2, t).await;
    round(&store, &e, 1, 100, t).await;
    // Still admitted: joining again changes nothing.
    let again = join(
        &store,
        &e,
        "alice",
        LATE_KEYS_FROM + 9,
        t + Duration::minutes(5),
    )
    .await;
    assert_eq!(again.id, alice.id);
    assert!(again.admitted_at.is_some());
    // Lapsed: queued again behind bob.
    let later = t + Duration::minutes(11);
    let back = join(&store, &e, "alice", LATE_KEYS_FROM + 10, later).await;
    assert_eq!(back.id, alice.id, "the same place id");
    assert_eq!(back.admitted_at, None);
    assert_eq!(back.sort_key, LATE_KEYS_FROM + 10);
    assert_eq!(store.queue_position(&back).await.unwrap(), 1);
}

pub async fn a_queued_payment_is_marked(store: Arc<dyn Store>) {
    use boxoffice_domain::ports::CommitBegin;

    use crate::booking_suite::{commit_req, hold_req, seats};
    let t = now();
    let plain = concert(t);
    store.create_event(&plain).await.expect("create");
    let b = store
        .hold(&hold_req(&plain, "alice", seats(&["1-A-1"]), t))
        .await
        .expect("hold");
    let mut req = commit_req(b.id, "alice", "queued-1", t);
    req.queued = true;
    let Ok(CommitBegin::Started { payment, .. }) = store.begin_commit(&req).await else {
        panic!("the commit starts");
    };
    assert!(payment.queued, "queued when the node says so");
    let read = store
        .payment(payment.id)
        .await
        .expect("read")
        .expect("exists");
    assert!(read.queued, "the mark is stored");
    let b2 = store
        .hold(&hold_req(&plain, "bob", seats(&["1-A-2"]), t))
        .await
        .expect("hold");
    let Ok(CommitBegin::Started { payment, .. }) = store
        .begin_commit(&commit_req(b2.id, "bob", "plain-1", t))
        .await
    else {
        panic!("the commit starts");
    };
    assert!(!payment.queued, "an ordinary commit is not queued");
    assert!(!store.payment(payment.id).await.unwrap().unwrap().queued);

    // Every commit of a waiting-room event is queued, whatever the node says: the store decides
    // it as it records the payment.
    let room = rush(t);
    store.create_event(&room).await.expect("create");
    let b3 = store
        .hold(&hold_req(&room, "carol", seats(&["1-A-1"]), t))
        .await
        .expect("hold");
    let Ok(CommitBegin::Started { payment, .. }) = store
        .begin_commit(&commit_req(b3.id, "carol", "room-1", t))
        .await
    else {
        panic!("the commit starts");
    };
    assert!(payment.queued, "a waiting-room event's commit is queued");
    assert!(store.payment(payment.id).await.unwrap().unwrap().queued);
}
