//! Booking behaviours every store must have: holds, limits, expiry, idempotent commits,
//! settlement, release, cancellation, check-in, and a clean invariant check after each.

use std::collections::BTreeMap;
use std::sync::Arc;

use boxoffice_domain::booking::{
    BookingStatus, HoldError, HoldRequest, NewTicket, PaymentStatus, Selection, TicketStatus,
};
use boxoffice_domain::event::{Event, SectionSpec};
use boxoffice_domain::ids::{BookingId, CustomerId, PaymentId, SeatId, TicketId};
use boxoffice_domain::ports::{
    CheckIn, CommitBegin, CommitError, CommitFinish, CommitOutcome, CommitRequest, ReleaseError,
    RenderCommit, Settlement, Store, StoredResponse,
};
use boxoffice_domain::seat::SeatState;
use time::{Duration, OffsetDateTime};

use crate::fixtures::{concert, event_with, now};

pub fn customer(name: &str) -> CustomerId {
    CustomerId::parse(name).expect("valid id")
}

pub fn seats(ids: &[&str]) -> Selection {
    Selection::Seats(
        ids.iter()
            .map(|s| SeatId::parse(s).expect("seat id"))
            .collect(),
    )
}

pub fn hold_req(e: &Event, who: &str, selection: Selection, at: OffsetDateTime) -> HoldRequest {
    HoldRequest {
        booking_id: BookingId::new_in(e.id.slot()),
        event: Arc::new(e.clone()),
        customer: customer(who),
        selection,
        now: at,
        expires_at: at + Duration::minutes(5),
    }
}

pub fn commit_req(booking: BookingId, who: &str, key: &str, at: OffsetDateTime) -> CommitRequest {
    CommitRequest {
        customer: customer(who),
        booking_id: booking,
        idempotency_key: key.to_owned(),
        fingerprint: format!("fp-{booking}"),
        payment_id: PaymentId::new_in(booking.slot()),
        provider_key: format!("psp-{}", uuid::Uuid::new_v4()),
        provider: "sandbox".into(),
        method: "pm_card_visa".into(),
        now: at,
        queued: false,
    }
}

/// A renderer that writes the outcome's kind and booking status, like an API would.
pub fn render() -> RenderCommit {
    Arc::new(|o: &CommitOutcome| {
        let (status, text) = match o {
            CommitOutcome::Confirmed(b) => (200, format!("confirmed {} {}", b.id, b.tickets.len())),
            CommitOutcome::NotPaid { booking, reason } => (
                402,
                format!("declined {} {reason}", booking.status.as_str()),
            ),
            CommitOutcome::Lapsed(b) => (409, format!("lapsed {}", b.id)),
            CommitOutcome::Unresolved(b) => (202, format!("pending {}", b.id)),
        };
        StoredResponse {
            status,
            body: text.into_bytes(),
        }
    })
}

pub fn approved(booking: &boxoffice_domain::booking::Booking) -> Settlement {
    Settlement::Approved {
        provider_ref: format!("pi_{}", uuid::Uuid::new_v4().simple()),
        tickets: booking
            .seats
            .iter()
            .map(|s| {
                let id = TicketId::new_in(booking.event_id.slot());
                NewTicket {
                    id,
                    seat_id: s.seat_id.clone(),
                    token: format!("token-{}-{id}", s.seat_id),
                }
            })
            .collect(),
    }
}

pub fn finish(
    booking: &boxoffice_domain::booking::Booking,
    payment: PaymentId,
    settlement: Settlement,
    at: OffsetDateTime,
) -> CommitFinish {
    CommitFinish {
        booking_id: booking.id,
        event_id: booking.event_id,
        payment_id: payment,
        settlement,
        now: at,
        render: render(),
    }
}

pub(crate) async fn created(store: &Arc<dyn Store>, e: Event) -> Event {
    store.create_event(&e).await.expect("create event");
    e
}

pub(crate) async fn assert_clean(store: &Arc<dyn Store>) {
    let findings = store.verify(now()).await.expect("verify");
    assert!(findings.is_empty(), "invariants broken: {findings:#?}");
}

pub(crate) async fn seat_state(
    store: &Arc<dyn Store>,
    e: &Event,
    seat: &str,
    at: OffsetDateTime,
) -> SeatState {
    let map = store.seat_map(e, at).await.expect("seat map");
    map.seats
        .iter()
        .find(|s| s.id.as_str() == seat)
        .map(|s| s.state)
        .expect("seat in map")
}

/// Begins a commit that must start; returns the pending booking and its payment.
pub(crate) async fn start(
    store: &Arc<dyn Store>,
    booking: BookingId,
    who: &str,
    key: &str,
    at: OffsetDateTime,
) -> (
    boxoffice_domain::booking::Booking,
    boxoffice_domain::booking::Payment,
) {
    match store
        .begin_commit(&commit_req(booking, who, key, at))
        .await
        .expect("begin")
    {
        CommitBegin::Started { booking, payment } => (*booking, *payment),
        other => panic!("expected a started commit, got {other:?}"),
    }
}

/// Begins and settles a commit as approved; returns the confirmed booking.
pub async fn buy(
    store: &Arc<dyn Store>,
    booking: &boxoffice_domain::booking::Booking,
    who: &str,
    at: OffsetDateTime,
) -> boxoffice_domain::booking::Booking {
    let req = commit_req(booking.id, who, &format!("key-{}", booking.id), at);
    let CommitBegin::Started { booking, payment } = store.begin_commit(&req).await.expect("begin")
    else {
        panic!("expected a started commit");
    };
    let done = store
        .finish_commit(&finish(&booking, payment.id, approved(&booking), at))
        .await
        .expect("finish");
    let CommitOutcome::Confirmed(b) = done.outcome else {
        panic!("expected confirmation, got {:?}", done.outcome);
    };
    captured(store, payment.key(), at).await;
    b
}

/// Records the capture of an authorized payment, as the API does after a confirmation.
pub async fn captured(
    store: &Arc<dyn Store>,
    payment: boxoffice_domain::booking::PaymentKey,
    at: OffsetDateTime,
) {
    assert!(
        store
            .set_payment_status(
                payment,
                &[PaymentStatus::Authorized],
                PaymentStatus::Captured,
                at
            )
            .await
            .expect("capture"),
        "the payment was authorized"
    );
}

pub async fn holds_exact_seats_all_or_nothing(store: Arc<dyn Store>) {
    let t = now();
    let e = created(&store, concert(t)).await;
    let b = store
        .hold(&hold_req(&e, "alice", seats(&["1-A-1", "1-A-2"]), t))
        .await
        .expect("hold");
    assert_eq!(b.status, BookingStatus::Hold);
    assert_eq!(b.seats.len(), 2);
    assert_eq!(b.total_cents, 50_000);
    assert_eq!(b.expires_at, t + Duration::minutes(5));
    assert_eq!(seat_state(&store, &e, "1-A-1", t).await, SeatState::Hold);

    // One of three taken: nothing held, and the taken one is named.
    let err = store
        .hold(&hold_req(&e, "bob", seats(&["1-A-3", "1-A-2", "1-A-4"]), t))
        .await
        .expect_err("conflict");
    match err {
        HoldError::Unavailable(s) => assert_eq!(s, vec![SeatId::parse("1-A-2").unwrap()]),
        other => panic!("{other:?}"),
    }
    assert_eq!(seat_state(&store, &e, "1-A-3", t).await, SeatState::Open);
    let err = store
        .hold(&hold_req(&e, "bob", seats(&["1-A-3", "9-Z-99"]), t))
        .await
        .expect_err("no such seat");
    assert!(matches!(err, HoldError::NoSuchSeats(s) if s.len() == 1));
    let map = store.seat_map(&e, t).await.expect("map");
    assert_eq!((map.sections[0].available, map.sections[0].held), (198, 2));
    assert_clean(&store).await;
}

pub async fn best_available_prefers_front_adjacent_seats(store: Arc<dyn Store>) {
    let t = now();
    let e = created(&store, concert(t)).await;
    // Take the middle of row A so that four adjacent seats no longer fit around it there.
    store
        .hold(&hold_req(&e, "alice", seats(&["1-A-8", "1-A-12"]), t))
        .await
        .expect("hold");
    let b = store
        .hold(&hold_req(
            &e,
            "bob",
            Selection::BestAvailable {
                section: 1,
                quantity: 4,
            },
            t,
        ))
        .await
        .expect("best available");
    let mut numbers: Vec<u32> = b.seats.iter().map(|s| s.number).collect();
    numbers.sort();
    assert!(
        b.seats.iter().all(|s| s.row.as_deref() == Some("A")),
        "{b:?}"
    );
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "adjacent: {numbers:?}"
    );
    assert_eq!(
        numbers,
        vec![13, 14, 15, 16],
        "closest block to the centre of row A"
    );

    // General admission: any places; then more than are left.
    let ga = store
        .hold(&hold_req(
            &e,
            "carol",
            Selection::BestAvailable {
                section: 2,
                quantity: 8,
            },
            t,
        ))
        .await
        .expect("GA hold");
    assert_eq!(ga.seats.len(), 8);
    assert!(ga.seats.iter().all(|s| s.row.is_none() && s.section == 2));
    let small = created(
        &store,
        event_with(
            t,
            vec![SectionSpec::general_admission("Pit", 3, 1_000).unwrap()],
        ),
    )
    .await;
    let err = store
        .hold(&hold_req(
            &small,
            "dave",
            Selection::BestAvailable {
                section: 1,
                quantity: 4,
            },
            t,
        ))
        .await
        .expect_err("not enough");
    assert!(
        matches!(
            err,
            HoldError::NotEnough {
                requested: 4,
                available: 3
            }
        ),
        "{err:?}"
    );
    assert_clean(&store).await;
}

pub async fn customer_limit_counts_holds_and_purchases(store: Arc<dyn Store>) {
    let t = now();
    let e = created(&store, concert(t)).await; // limit 8
    let first = store
        .hold(&hold_req(
            &e,
            "alice",
            seats(&["1-A-1", "1-A-2", "1-A-3"]),
            t,
        ))
        .await
        .expect("hold 3");
    buy(&store, &first, "alice", t).await;
    store
        .hold(&hold_req(
            &e,
            "alice",
            Selection::BestAvailable {
                section: 2,
                quantity: 5,
            },
            t,
        ))
        .await
        .expect("hold 5 more: 8 in all");
    let err = store
        .hold(&hold_req(&e, "alice", seats(&["1-B-1"]), t))
        .await
        .expect_err("ninth");
    assert!(
        matches!(
            err,
            HoldError::LimitExceeded {
                limit: 8,
                already: 8
            }
        ),
        "{err:?}"
    );
    // Someone else is unaffected.
    store
        .hold(&hold_req(&e, "bob", seats(&["1-B-1"]), t))
        .await
        .expect("bob");
    assert_clean(&store).await;
}

pub async fn parallel_holds_cannot_beat_the_limit(store: Arc<dyn Store>) {
    let t = now();
    let e = created(&store, concert(t)).await; // limit 8
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let store = store.clone();
            let req = hold_req(&e, "alice", seats(&[&format!("1-C-{}", i % 20 + 1)]), t);
            let req = if i >= 20 {
                hold_req(
                    &e,
                    "alice",
                    Selection::BestAvailable {
                        section: 2,
                        quantity: 1,
                    },
                    t,
                )
            } else {
                req
            };
            tokio::spawn(async move { store.hold(&req).await })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => ok += 1,
            Err(HoldError::LimitExceeded { .. }) => {}
            Err(other) => panic!("unexpected: {other:?}"),
        }
    }
    assert_eq!(ok, 8, "exactly the limit");
    assert_clean(&store).await;
}

pub async fn parallel_holds_on_one_seat_have_one_winner(store: Arc<dyn Store>) {
    let t = now();
    let e = created(&store, concert(t)).await;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            let req = hold_req(&e, &format!("c{i}"), seats(&["1-E-5", "1-E-6"]), t);
            tokio::spawn(async move { store.hold(&req).await })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => ok += 1,
            Err(HoldError::Unavailable(_)) => {}
            Err(other) => panic!("unexpected: {other:?}"),
        }
    }
    assert_eq!(ok, 1);
    assert_clean(&store).await;
}

/// Holds of every kind arriving at once on an event already on sale (a store may write
/// concurrent holds together): each gets the answer it would get alone, and together they
/// never pass a limit, a seat count or a seat.
pub async fn a_burst_of_holds_answers_each_as_alone(store: Arc<dyn Store>) {
    let t = now();
    let e = created(&store, concert(t)).await; // Floor 10 x 20, Lawn 100 places, limit 8
    // The first hold lays the seats out; the burst comes after it.
    store
        .hold(&hold_req(&e, "early", seats(&["1-J-20"]), t))
        .await
        .expect("hold");
    let best = |section: u16, quantity: u32| Selection::BestAvailable { section, quantity };
    // (what it is, the request)
    let mut reqs: Vec<(&str, HoldRequest)> = Vec::new();
    for i in 0..12 {
        let who = format!("pair{i}");
        reqs.push((
            "one pair",
            hold_req(&e, &who, seats(&["1-E-5", "1-E-6"]), t),
        ));
    }
    for i in 1..=12 {
        let seat = format!("1-C-{i}");
        reqs.push(("limit", hold_req(&e, "alice", seats(&[&seat]), t)));
    }
    for i in 0..10 {
        reqs.push(("floor", hold_req(&e, &format!("floor{i}"), best(1, 2), t)));
    }
    for i in 0..13 {
        reqs.push(("lawn", hold_req(&e, &format!("lawn{i}"), best(2, 8), t)));
    }
    reqs.push(("taken", hold_req(&e, "late", seats(&["1-J-20"]), t)));
    reqs.push(("missing", hold_req(&e, "lost", seats(&["1-Z-99"]), t)));
    let tasks: Vec<_> = reqs
        .iter()
        .map(|(kind, req)| {
            let (store, req, kind) = (store.clone(), req.clone(), *kind);
            tokio::spawn(async move { (kind, req.selection.quantity(), store.hold(&req).await) })
        })
        .collect();
    let mut held: BTreeMap<&str, u32> = BTreeMap::new();
    let mut seats_held = Vec::new();
    for task in tasks {
        let (kind, quantity, out) = task.await.expect("task");
        match (kind, out) {
            (_, Ok(b)) => {
                assert_eq!(b.status, BookingStatus::Hold);
                assert_eq!(b.seats.len() as u32, quantity, "{kind}: {b:?}");
                let read = store.booking(b.id).await.expect("read").expect("booking");
                assert_eq!(read, b, "{kind}: answered as written");
                seats_held.extend(b.seats.iter().map(|s| s.seat_id.clone()));
                *held.entry(kind).or_default() += 1;
            }
            ("one pair" | "taken", Err(HoldError::Unavailable(_))) => {}
            ("limit", Err(HoldError::LimitExceeded { limit: 8, .. })) => {}
            // Told how many were left when it looked (others may not have finished yet).
            ("lawn", Err(HoldError::NotEnough { requested: 8, .. })) => {}
            ("missing", Err(HoldError::NoSuchSeats(s))) => assert_eq!(s.len(), 1),
            (kind, Err(other)) => panic!("{kind}: unexpected {other:?}"),
        }
    }
    assert_eq!(held.get("one pair"), Some(&1), "one winner for one pair");
    assert_eq!(held.get("limit"), Some(&8), "exactly alice's limit");
    assert_eq!(
        held.get("floor"),
        Some(&10),
        "room for every pair on the floor"
    );
    assert_eq!(
        held.get("lawn"),
        Some(&12),
        "twelve of eight in a lawn of 100"
    );
    assert_eq!(held.get("taken"), None);
    let mut distinct = seats_held.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), seats_held.len(), "no seat held twice");
    let map = store.seat_map(&e, t).await.expect("map");
    let lawn = map.sections.iter().find(|s| s.section == 2).expect("lawn");
    assert_eq!((lawn.held, lawn.available), (96, 4));
    assert_clean(&store).await;
}

pub async fn expired_holds_never_block_and_are_swept(store: Arc<dyn Store>) {
    let t = now();
    let e = created(&store, concert(t)).await;
    let old = store
        .hold(&hold_req(&e, "alice", seats(&["1-A-1", "1-A-2"]), t))
        .await
        .expect("hold");
    let later = t + Duration::minutes(6);
    assert_eq!(
        seat_state(&store, &e, "1-A-1", later).await,
        SeatState::Open
    );
    // Someone else takes one of the lapsed seats before any sweeper ran.
    store
        .hold(&hold_req(&e, "bob", seats(&["1-A-1"]), later))
        .await
        .expect("lapsed seat is free");
    // The lapsed booking cannot be paid for.
    let err = store
        .begin_commit(&commit_req(old.id, "alice", "k1", later))
        .await
        .expect_err("gone");
    assert!(matches!(err, CommitError::Gone), "{err:?}");
    // The sweeper expires it and frees what it still held.
    assert_eq!(store.expire_holds(later, 100).await.expect("sweep"), 1);
    let swept = store.booking(old.id).await.expect("read").expect("exists");
    assert_eq!(swept.status, BookingStatus::Expired);
    assert_eq!(
        seat_state(&store, &e, "1-A-2", later).await,
        SeatState::Open
    );
    assert_eq!(
        seat_state(&store, &e, "1-A-1", later).await,
        SeatState::Hold
    );
    assert_eq!(store.expire_holds(later, 100).await.expect("sweep"), 0);
    // Alice's limit is whole again: her own lapsed hold does not count.
    let mut one = e.clone();
    one.spec.policies.max_tickets_per_customer = 1;
    store
        .hold(&hold_req(&one, "alice", seats(&["1-B-1"]), later))
        .await
        .expect("alice again");
    assert_clean(&store).await;
}

pub async fn bulk_created_events_lay_out_seats_on_first_hold(store: Arc<dyn Store>) {
    let t = now();
    let e = concert(t);
    store
        .create_events_bulk(std::slice::from_ref(&e))
        .await
        .expect("bulk");
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let store = store.clone();
            let req = hold_req(&e, &format!("c{i}"), seats(&[&format!("1-D-{}", i + 1)]), t);
            tokio::spawn(async move { store.hold(&req).await })
        })
        .collect();
    for task in tasks {
        task.await
            .expect("task")
            .expect("hold on a lazily laid-out event");
    }
    let map = store.seat_map(&e, t).await.expect("map");
    assert_eq!(map.seats.len(), 200);
    assert_eq!(map.sections[0].held, 6);
    assert_clean(&store).await;
}

pub async fn commit_is_idempotent_and_settles_once(store: Arc<dyn Store>) {
    let t = now();
    let e = created(&store, concert(t)).await;
    let b = store
        .hold(&hold_req(&e, "alice", seats(&["1-A-1", "1-A-2"]), t))
        .await
        .expect("hold");
    let req = commit_req(b.id, "alice", "key-1", t);
    let CommitBegin::Started { booking, payment } = store.begin_commit(&req).await.expect("begin")
    else {
        panic!("not started");
    };
    assert_eq!(booking.status, BookingStatus::Pending);
    assert_eq!(payment.status, PaymentStatus::Started);
    assert_eq!(payment.amount_cents, 50_000);
    assert_eq!(seat_state(&store, &e, "1-A-1", t).await, SeatState::Pending);
    // While in flight: the same key is 409, another key is "payment in progress".
    assert!(matches!(
        store.begin_commit(&req).await,
        Err(CommitError::InFlight)
    ));
    assert!(matches!(
        store
            .begin_commit(&commit_req(b.id, "alice", "key-2", t))
            .await,
        Err(CommitError::PaymentInProgress)
    ));
    // Someone else's booking id: not found, whatever the key.
    assert!(matches!(
        store
            .begin_commit(&commit_req(b.id, "mallory", "key-1", t))
            .await,
        Err(CommitError::NotFound)
    ));
    let settlement = approved(&booking);
    let done = store
        .finish_commit(&finish(&booking, payment.id, settlement.clone(), t))
        .await
        .expect("finish");
    let CommitOutcome::Confirmed(confirmed) = &done.outcome else {
        panic!("{:?}", done.outcome);
    };
    assert_eq!(confirmed.status, BookingStatus::Confirmed);
    assert_eq!(confirmed.tickets.len(), 2);
    assert!(
        confirmed
            .tickets
            .iter()
            .all(|t| t.status == TicketStatus::Valid)
    );
    assert_eq!(done.payment.status, PaymentStatus::Authorized);
    assert_eq!(seat_state(&store, &e, "1-A-2", t).await, SeatState::Sold);
    // Settling again (the reconciler racing the request) changes nothing.
    let again = store
        .finish_commit(&finish(&booking, payment.id, approved(&booking), t))
        .await
        .expect("finish again");
    assert_eq!(again.response, done.response);
    let read = store.booking(b.id).await.expect("read").expect("exists");
    assert_eq!(read.tickets, confirmed.tickets, "no second set of tickets");
    // Replays: byte for byte; another body under the key is refused.
    match store.begin_commit(&req).await.expect("replay") {
        CommitBegin::Replay(r) => assert_eq!(r, done.response),
        other => panic!("{other:?}"),
    }
    let mut other_body = req.clone();
    other_body.fingerprint = "something else".into();
    assert!(matches!(
        store.begin_commit(&other_body).await,
        Err(CommitError::KeyReused)
    ));
    assert!(matches!(
        store
            .begin_commit(&commit_req(b.id, "alice", "key-3", t))
            .await,
        Err(CommitError::AlreadyConfirmed)
    ));
    store
        .set_payment_status(
            payment.key(),
            &[PaymentStatus::Authorized],
            PaymentStatus::Captured,
            t,
        )
        .await
        .expect("capture");
    assert_clean(&store).await;
}

pub async fn parallel_commits_with_one_key_start_once(store: Arc<dyn Store>) {
    let t = now();
    let e = created(&store, concert(t)).await;
    let b = store
        .hold(&hold_req(&e, "alice", seats(&["1-A-1"]), t))
        .await
        .expect("hold");
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let store = store.clone();
            let mut req = commit_req(b.id, "alice", "same-key", t);
            req.fingerprint = "same-body".into();
            tokio::spawn(async move { store.begin_commit(&req).await })
        })
        .collect();
    let mut started = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(CommitBegin::Started { .. }) => started += 1,
            Err(CommitError::InFlight) => {}
            other => panic!("unexpected: {other:?}"),
        }
    }
    assert_eq!(started, 1);
}

/// A burst of commits of every kind at once (a store may start and settle concurrent commits
/// together): each gets exactly the answer it would get alone, and a group's odd cases (a key
/// or a booking twice, someone else's booking, a lapsed hold, a reused key, a decline) disturb
/// neither each other nor the common case.
pub async fn a_burst_of_commits_answers_each_as_alone(store: Arc<dyn Store>) {
    let t = now();
    let e = created(&store, concert(t)).await;
    let mut held = Vec::new();
    for i in 0..24u32 {
        let row = char::from(b'A' + (i / 10) as u8);
        let (a, b) = (
            format!("1-{row}-{}", i % 10 * 2 + 1),
            format!("1-{row}-{}", i % 10 * 2 + 2),
        );
        let who = format!("buyer{i}");
        let b = store
            .hold(&hold_req(&e, &who, seats(&[&a, &b]), t))
            .await
            .expect("hold");
        held.push((who, b));
    }
    let id = |i: usize| held[i].1.id;
    let who = |i: usize| held[i].0.as_str();
    // (what it is, the request)
    let mut reqs: Vec<(&str, CommitRequest)> = (0..18)
        .map(|i| ("plain", commit_req(id(i), who(i), &format!("k-{i}"), t)))
        .collect();
    reqs.push(("booking twice", commit_req(id(18), who(18), "k-18a", t)));
    reqs.push(("booking twice", commit_req(id(18), who(18), "k-18b", t)));
    for _ in 0..2 {
        let mut r = commit_req(id(19), who(19), "k-19", t);
        r.fingerprint = "same-body".into();
        reqs.push(("key twice", r));
    }
    reqs.push(("plain", commit_req(id(20), who(20), "k-20", t)));
    reqs.push(("not theirs", commit_req(id(20), "intruder", "k-20", t)));
    reqs.push((
        "lapsed",
        commit_req(id(21), who(21), "k-21", t + Duration::minutes(6)),
    ));
    reqs.push(("key reused", commit_req(id(22), who(22), "k-22", t)));
    let mut other_body = commit_req(id(22), who(22), "k-22", t);
    other_body.fingerprint = "another body".into();
    reqs.push(("key reused", other_body));

    let tasks: Vec<_> = reqs
        .into_iter()
        .map(|(kind, req)| {
            let store = store.clone();
            tokio::spawn(async move { (kind, store.begin_commit(&req).await) })
        })
        .collect();
    let mut started = Vec::new();
    let mut refused: Vec<(&str, String)> = Vec::new();
    for task in tasks {
        match task.await.expect("task") {
            (_, Ok(CommitBegin::Started { booking, payment })) => {
                assert_eq!(booking.status, BookingStatus::Pending);
                assert_eq!(payment.status, PaymentStatus::Started);
                assert_eq!(payment.booking_id, booking.id);
                assert_eq!(payment.amount_cents, 50_000);
                started.push((*booking, *payment));
            }
            (kind, Ok(other)) => panic!("{kind}: unexpected {other:?}"),
            (kind, Err(e)) => refused.push((kind, format!("{e:?}"))),
        }
    }
    refused.sort();
    assert_eq!(
        refused,
        vec![
            ("booking twice", "PaymentInProgress".to_owned()),
            ("key reused", "KeyReused".to_owned()),
            ("key twice", "InFlight".to_owned()),
            ("lapsed", "Gone".to_owned()),
            ("not theirs", "NotFound".to_owned()),
        ]
    );
    // 18 plain, and one each of: the booking twice, the key twice, 20 and the reused key.
    assert_eq!(started.len(), 22);
    let mut ids: Vec<BookingId> = started.iter().map(|(b, _)| b.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 22, "every booking started once");

    // Settled at once too: all approved but one decline.
    let declined = id(1);
    let tasks: Vec<_> = started
        .iter()
        .map(|(b, p)| {
            let store = store.clone();
            let settlement = if b.id == declined {
                Settlement::Declined {
                    reason: "card declined".into(),
                }
            } else {
                approved(b)
            };
            let fin = finish(b, p.id, settlement, t);
            tokio::spawn(async move { store.finish_commit(&fin).await })
        })
        .collect();
    let mut responses = std::collections::HashMap::new();
    for ((b, p), task) in started.iter().zip(tasks) {
        let done = task.await.expect("task").expect("finish");
        if b.id == declined {
            assert!(
                matches!(&done.outcome, CommitOutcome::NotPaid { booking, .. }
                if booking.status == BookingStatus::Hold)
            );
            assert_eq!(done.payment.status, PaymentStatus::Declined);
        } else {
            let CommitOutcome::Confirmed(c) = &done.outcome else {
                panic!("expected confirmation, got {:?}", done.outcome);
            };
            assert_eq!(c.tickets.len(), 2);
            assert_eq!(done.payment.status, PaymentStatus::Authorized);
            assert_eq!(done.payment.id, p.id);
            assert_eq!(done.response.status, 200);
            captured(&store, p.key(), t).await;
        }
        responses.insert(b.id, done.response);
    }
    // What was stored is what a replay gets, byte for byte.
    let replay = store
        .begin_commit(&commit_req(id(0), who(0), "k-0", t))
        .await
        .expect("replay");
    let CommitBegin::Replay(stored) = replay else {
        panic!("expected a replay, got {replay:?}");
    };
    assert_eq!(Some(&stored), responses.get(&id(0)));
    for (i, state) in [
        (0, SeatState::Sold),
        (1, SeatState::Hold),
        (17, SeatState::Sold),
        (23, SeatState::Hold),
    ] {
        for seat in &held[i].1.seats {
            assert_eq!(
                seat_state(&store, &e, seat.seat_id.as_str(), t).await,
                state
            );
        }
    }
    let b23 = store.booking(id(23)).await.expect("read").expect("booking");
    assert_eq!(b23.status, BookingStatus::Hold);
    assert_clean(&store).await;
}

pub async fn declines_return_the_hold_and_lapsed_approvals_retake_seats(store: Arc<dyn Store>) {
    let t = now();
    let e = created(&store, concert(t)).await;
    let b = store
        .hold(&hold_req(&e, "alice", seats(&["1-A-1", "1-A-2"]), t))
        .await
        .expect("hold");
    let (booking, payment) = start(&store, b.id, "alice", "k-decline", t).await;
    let declined = store
        .finish_commit(&finish(
            &booking,
            payment.id,
            Settlement::Declined {
                reason: "card declined".into(),
            },
            t,
        ))
        .await
        .expect("finish");
    assert_eq!(declined.response.status, 402);
    assert_eq!(declined.payment.status, PaymentStatus::Declined);
    let held = store.booking(b.id).await.expect("read").expect("exists");
    assert_eq!(held.status, BookingStatus::Hold, "the buyer may retry");
    assert_eq!(seat_state(&store, &e, "1-A-1", t).await, SeatState::Hold);
    // Retry with another key; this time no answer comes before the hold runs out, and the
    // reconciler gives up on the attempt: the seats go back on sale.
    let (booking, payment) = start(&store, b.id, "alice", "k-retry", t).await;
    let late = t + Duration::minutes(10);
    let gave_up = store
        .finish_commit(&finish(
            &booking,
            payment.id,
            Settlement::Failed {
                reason: "no answer".into(),
            },
            late,
        ))
        .await
        .expect("give up");
    assert!(matches!(gave_up.outcome, CommitOutcome::NotPaid { .. }));
    let expired = store.booking(b.id).await.expect("read").expect("exists");
    assert_eq!(expired.status, BookingStatus::Expired);
    assert_eq!(seat_state(&store, &e, "1-A-1", late).await, SeatState::Open);
    assert_clean(&store).await;
    // Then the approval arrives after all: the seats are still free, so it takes them again.
    let done = store
        .finish_commit(&finish(&booking, payment.id, approved(&booking), late))
        .await
        .expect("late approval");
    let CommitOutcome::Confirmed(confirmed) = &done.outcome else {
        panic!("{:?}", done.outcome);
    };
    assert_eq!(confirmed.tickets.len(), 2);
    assert_eq!(
        done.response.status, 402,
        "a stored final answer never changes, even when a late approval buys the seats"
    );
    assert_eq!(seat_state(&store, &e, "1-A-1", late).await, SeatState::Sold);
    store
        .set_payment_status(
            payment.key(),
            &[PaymentStatus::Authorized],
            PaymentStatus::Captured,
            late,
        )
        .await
        .expect("capture");
    assert_clean(&store).await;
}

pub async fn approval_after_release_is_lapsed_when_seats_are_gone(store: Arc<dyn Store>) {
    let t = now();
    let e = created(&store, concert(t)).await;
    let b = store
        .hold(&hold_req(&e, "alice", seats(&["1-G-1"]), t))
        .await
        .expect("hold");
    let (booking, payment) = start(&store, b.id, "alice", "k", t).await;
    // The attempt is given up (outcome unknown, hold expired) …
    let late = t + Duration::minutes(6);
    store
        .finish_commit(&CommitFinish {
            settlement: Settlement::Failed {
                reason: "no answer".into(),
            },
            ..finish(&booking, payment.id, approved(&booking), late)
        })
        .await
        .expect("release");
    // … a second payment attempt on another booking buys the seat …
    let other = store
        .hold(&hold_req(&e, "bob", seats(&["1-G-1"]), late))
        .await
        .expect("seat free again");
    buy(&store, &other, "bob", late).await;
    // … and alice's approval arrives after all: the seat is gone, so the caller must void it.
    let again = store
        .finish_commit(&finish(&booking, payment.id, approved(&booking), late))
        .await
        .expect("again");
    assert!(
        matches!(again.outcome, CommitOutcome::Lapsed(_)),
        "{:?}",
        again.outcome
    );
    assert_eq!(again.payment.status, PaymentStatus::Authorized);
    assert_eq!(
        store.booking(b.id).await.unwrap().unwrap().status,
        BookingStatus::Expired
    );
    store
        .set_payment_status(
            payment.key(),
            &[PaymentStatus::Authorized],
            PaymentStatus::Voided,
            late,
        )
        .await
        .expect("voided");
    // Settling once more changes nothing.
    let third = store
        .finish_commit(&finish(&booking, payment.id, approved(&booking), late))
        .await
        .expect("third");
    assert!(matches!(third.outcome, CommitOutcome::Lapsed(_)));
    assert_clean(&store).await;
}

pub async fn release_and_cancel(store: Arc<dyn Store>) {
    let t = now();
    let e = created(&store, concert(t)).await;
    let b = store
        .hold(&hold_req(&e, "alice", seats(&["1-A-1", "1-A-2"]), t))
        .await
        .expect("hold");
    let released = store.release(b.id, t).await.expect("release");
    assert_eq!(released.status, BookingStatus::Cancelled);
    assert_eq!(seat_state(&store, &e, "1-A-1", t).await, SeatState::Open);
    let twice = store.release(b.id, t).await.expect("release twice");
    assert_eq!(twice.status, BookingStatus::Cancelled);
    assert!(matches!(
        store.release(BookingId::new(), t).await,
        Err(ReleaseError::NotFound)
    ));
    // A pending booking cannot be released; a confirmed one needs cancel_confirmed.
    let p = store
        .hold(&hold_req(&e, "alice", seats(&["1-B-1"]), t))
        .await
        .expect("hold");
    store
        .begin_commit(&commit_req(p.id, "alice", "kp", t))
        .await
        .expect("begin");
    assert!(matches!(
        store.release(p.id, t).await,
        Err(ReleaseError::PaymentInProgress)
    ));
    let c = store
        .hold(&hold_req(&e, "bob", seats(&["1-C-1", "1-C-2"]), t))
        .await
        .expect("hold");
    let bought = buy(&store, &c, "bob", t).await;
    assert!(matches!(
        store.release(c.id, t).await,
        Err(ReleaseError::WrongStatus(BookingStatus::Confirmed))
    ));
    let (cancelled, payment) = store.cancel_confirmed(c.id, t).await.expect("cancel");
    assert_eq!(cancelled.status, BookingStatus::Cancelled);
    assert!(
        cancelled
            .tickets
            .iter()
            .all(|t| t.status == TicketStatus::Void)
    );
    assert_eq!(bought.tickets.len(), 2);
    let payment = payment.expect("the payment to refund");
    assert_eq!(
        payment.status,
        PaymentStatus::Captured,
        "as it was before the cancel"
    );
    assert_eq!(
        store
            .payment(payment.id)
            .await
            .expect("read")
            .expect("exists")
            .status,
        PaymentStatus::RefundPending
    );
    assert_eq!(seat_state(&store, &e, "1-C-1", t).await, SeatState::Open);
    let (again, none) = store.cancel_confirmed(c.id, t).await.expect("cancel twice");
    assert_eq!(again.status, BookingStatus::Cancelled);
    assert!(none.is_none());
    assert!(
        store
            .set_payment_status(
                payment.key(),
                &[PaymentStatus::RefundPending],
                PaymentStatus::Refunded,
                t
            )
            .await
            .expect("refunded")
    );
    // The seats can be bought again.
    let d = store
        .hold(&hold_req(&e, "carol", seats(&["1-C-1"]), t))
        .await
        .expect("hold again");
    buy(&store, &d, "carol", t).await;
    assert_eq!(
        store
            .unsettled_payments(t + Duration::hours(1), t + Duration::hours(1), 10)
            .await
            .expect("unsettled")
            .iter()
            .map(|p| p.status)
            .collect::<Vec<_>>(),
        vec![PaymentStatus::Started],
        "only the pending commit is unsettled"
    );
}

pub async fn details_and_check_in(store: Arc<dyn Store>) {
    let t = now();
    let e = created(&store, concert(t)).await;
    let b = store
        .hold(&hold_req(&e, "alice", seats(&["1-A-1", "1-A-2"]), t))
        .await
        .expect("hold");
    let b = buy(&store, &b, "alice", t).await;
    let updated = store
        .update_details(
            b.id,
            Some("alice@example.com".into()),
            vec![(SeatId::parse("1-A-2").unwrap(), Some("Bob".into()))],
            t,
        )
        .await
        .expect("update");
    assert_eq!(updated.contact_email.as_deref(), Some("alice@example.com"));
    let named = updated
        .tickets
        .iter()
        .find(|t| t.seat_id.as_str() == "1-A-2")
        .expect("ticket");
    assert_eq!(named.attendee_name.as_deref(), Some("Bob"));
    let mine = store.tickets_of(&customer("alice")).await.expect("tickets");
    assert_eq!(mine.len(), 2);
    assert!(
        store
            .tickets_of(&customer("bob"))
            .await
            .expect("none")
            .is_empty()
    );

    let ticket = b.tickets[0].id;
    assert!(matches!(
        store.check_in(ticket, e.id, t).await.unwrap(),
        CheckIn::Admitted(_)
    ));
    assert!(matches!(
        store.check_in(ticket, e.id, t).await.unwrap(),
        CheckIn::AlreadyUsed(_)
    ));
    assert_eq!(
        store.check_in(TicketId::new(), e.id, t).await.unwrap(),
        CheckIn::Unknown
    );
    // A used ticket is never refunded; a cancelled booking's tickets are void at the door.
    assert!(matches!(
        store.cancel_confirmed(b.id, t).await,
        Err(ReleaseError::TicketUsed)
    ));
    let c = store
        .hold(&hold_req(&e, "alice", seats(&["1-H-9"]), t))
        .await
        .expect("hold");
    let c = buy(&store, &c, "alice", t).await;
    store.cancel_confirmed(c.id, t).await.expect("cancel");
    assert!(matches!(
        store.check_in(c.tickets[0].id, e.id, t).await.unwrap(),
        CheckIn::Void(_)
    ));
}

/// A door admits to one event: another event's ticket is refused, whatever its state, and is
/// left exactly as it was, so it still gets in at its own event's door.
pub async fn check_in_is_bound_to_its_event(store: Arc<dyn Store>) {
    let t = now();
    let e = created(&store, concert(t)).await;
    let other = created(&store, concert(t)).await;
    let b = store
        .hold(&hold_req(&e, "alice", seats(&["1-A-1"]), t))
        .await
        .expect("hold");
    let b = buy(&store, &b, "alice", t).await;
    let ticket = b.tickets[0].id;
    match store.check_in(ticket, other.id, t).await.unwrap() {
        CheckIn::WrongEvent(found) => {
            assert_eq!(found.event_id, e.id);
            assert_eq!(found.status, b.tickets[0].status, "nothing changed");
            assert_eq!(found.checked_in_at, None);
        }
        other => panic!("another event's ticket: {other:?}"),
    }
    let stored = store.booking(b.id).await.unwrap().expect("booking");
    assert_eq!(stored.tickets[0].checked_in_at, None);
    assert!(matches!(
        store.check_in(ticket, e.id, t).await.unwrap(),
        CheckIn::Admitted(_)
    ));
    // Once used, it is still another event's ticket at the wrong door.
    assert!(matches!(
        store.check_in(ticket, other.id, t).await.unwrap(),
        CheckIn::WrongEvent(_)
    ));
}
