//! Payment-repair behaviours every store must have (issue 7): an unanswered payment frees its
//! seats but is never given up while money may be held; failed settlement attempts back off
//! one payment at a time; keys stay 4xx after they are purged; time is judged inside the
//! transaction; a used ticket is never refunded; money gone at the provider revokes the
//! booking; a booking is read in one snapshot; the limit is checked before the seats.

use std::sync::Arc;

use boxoffice_domain::booking::{BookingStatus, HoldError, PaymentStatus, TicketStatus};
use boxoffice_domain::ports::{
    CheckIn, CommitBegin, CommitError, CommitOutcome, ReleaseError, Settlement, Store,
};
use boxoffice_domain::rules::Revocation;
use boxoffice_domain::seat::SeatState;
use time::Duration;

use crate::booking_suite::{
    approved, assert_clean, buy, captured, commit_req, created, finish, hold_req, seat_state,
    seats, start,
};
use crate::fixtures::{concert, now};

/// Defect 4: no answer from the provider and the hold runs out. The seats go back on sale,
/// but the payment stays open (STARTED, nothing stored under the key) until the provider
/// answers; a late approval then buys the seats if they are still free.
pub async fn unresolved_payments_free_the_seats_but_stay_open(store: Arc<dyn Store>) {
    let t = now();
    let e = created(&store, concert(t)).await;
    let b = store
        .hold(&hold_req(&e, "alice", seats(&["1-A-1"]), t))
        .await
        .expect("hold");
    let (booking, payment) = start(&store, b.id, "alice", "k-unresolved", t).await;
    // While the hold runs, no answer changes nothing.
    let early = store
        .finish_commit(&finish(&booking, payment.id, Settlement::Unresolved, t))
        .await
        .expect("early");
    assert!(matches!(early.outcome, CommitOutcome::Unresolved(_)));
    assert_eq!(early.payment.status, PaymentStatus::Started);
    assert_eq!(
        store.booking(b.id).await.unwrap().unwrap().status,
        BookingStatus::Pending
    );
    // After it ran out: the seats are free again, the payment still open.
    let late = t + Duration::minutes(10);
    let lapsed = store
        .finish_commit(&finish(&booking, payment.id, Settlement::Unresolved, late))
        .await
        .expect("lapse");
    assert!(matches!(lapsed.outcome, CommitOutcome::Unresolved(_)));
    assert_eq!(lapsed.payment.status, PaymentStatus::Started);
    assert_eq!(
        store.booking(b.id).await.unwrap().unwrap().status,
        BookingStatus::Expired
    );
    assert_eq!(seat_state(&store, &e, "1-A-1", late).await, SeatState::Open);
    // Nothing final is stored: a replay of the key is still in flight.
    let mut replay = commit_req(b.id, "alice", "k-unresolved", late);
    replay.fingerprint = format!("fp-{}", b.id);
    assert!(matches!(
        store.begin_commit(&replay).await,
        Err(CommitError::InFlight)
    ));
    // The payment is still asked about.
    let open = store
        .unsettled_payments(late + Duration::hours(1), late + Duration::hours(1), 10)
        .await
        .expect("unsettled");
    assert!(open.iter().any(|p| p.id == payment.id));
    assert_clean(&store).await;
    // The provider finally answers: approved, and the seat is still free, so it is bought.
    let done = store
        .finish_commit(&finish(&booking, payment.id, approved(&booking), late))
        .await
        .expect("late approval");
    assert!(
        matches!(done.outcome, CommitOutcome::Confirmed(_)),
        "{:?}",
        done.outcome
    );
    assert_eq!(
        done.response.status, 200,
        "the first final answer is stored"
    );
    assert!(matches!(
        store.begin_commit(&replay).await,
        Ok(CommitBegin::Replay(r)) if r.status == 200
    ));
    captured(&store, payment.key(), late).await;
    assert_clean(&store).await;
}

/// Defect 3: a payment whose settlement failed waits for its own next attempt, so a pile of
/// failing payments cannot keep the others from being repaired; the backlog is reported.
pub async fn deferred_payments_wait_their_turn(store: Arc<dyn Store>) {
    let t = now();
    let e = created(&store, concert(t)).await;
    let mut payments = Vec::new();
    for (who, seat) in [("alice", "1-A-1"), ("bob", "1-A-2")] {
        let b = store
            .hold(&hold_req(&e, who, seats(&[seat]), t))
            .await
            .expect("hold");
        payments.push(start(&store, b.id, who, "k", t).await.1);
    }
    let later = t + Duration::minutes(1);
    let due = |at| {
        let store = store.clone();
        async move {
            store
                .unsettled_payments(at, at, 10)
                .await
                .expect("unsettled")
                .iter()
                .map(|p| (p.id, p.attempts))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(due(later).await.len(), 2);
    store
        .defer_payment(
            payments[0].key(),
            t + Duration::hours(1),
            "provider unavailable",
        )
        .await
        .expect("defer");
    assert_eq!(
        due(later).await,
        vec![(payments[1].id, 0)],
        "the deferred payment waits; the other is due"
    );
    let both = due(t + Duration::hours(2)).await;
    assert_eq!(both.len(), 2);
    assert!(both.contains(&(payments[0].id, 1)), "one attempt recorded");
    let backlog = store.payment_backlog().await.expect("backlog");
    assert!(backlog.unsettled >= 2);
    assert!(backlog.oldest.is_some_and(|o| o >= t && o <= now()));
}

/// Defect 9: a key reused after its record was purged is refused (4xx), never a 500 from the
/// provider key it derives colliding with the first payment's.
pub async fn a_reused_key_after_purge_is_refused(store: Arc<dyn Store>) {
    let t = now();
    let e = created(&store, concert(t)).await;
    let first = store
        .hold(&hold_req(&e, "alice", seats(&["1-A-1"]), t))
        .await
        .expect("hold");
    let mut req = commit_req(first.id, "alice", "reused-key", t);
    req.provider_key = "psp-alice-reused-key".into();
    let CommitBegin::Started { booking, payment } = store.begin_commit(&req).await.expect("begin")
    else {
        panic!("expected a started commit");
    };
    store
        .finish_commit(&finish(&booking, payment.id, approved(&booking), t))
        .await
        .expect("finish");
    // Two days later the key's record is purged …
    let later = t + Duration::hours(49);
    store.expire_holds(later, 100).await.expect("sweep");
    // … and the customer uses the same key for a new booking.
    let second = store
        .hold(&hold_req(&e, "alice", seats(&["1-A-2"]), later))
        .await
        .expect("hold");
    let mut again = commit_req(second.id, "alice", "reused-key", later);
    again.provider_key = "psp-alice-reused-key".into();
    let err = store.begin_commit(&again).await.expect_err("reused");
    assert!(matches!(err, CommitError::KeyReused), "{err:?}");
    let b = store.booking(second.id).await.unwrap().unwrap();
    assert_eq!(b.status, BookingStatus::Hold, "nothing changed");
}

/// Defect 10: a commit is judged at the time it acts inside the transaction, not at a time
/// read before it waited for the database.
pub async fn commits_are_judged_at_the_time_they_act(store: Arc<dyn Store>) {
    let real = now();
    let e = created(&store, concert(real - Duration::minutes(20))).await;
    // A hold made ten minutes ago, which ran out five minutes ago …
    let b = store
        .hold(&hold_req(
            &e,
            "alice",
            seats(&["1-A-1"]),
            real - Duration::minutes(10),
        ))
        .await
        .expect("hold");
    // … and a commit whose clock was read before the hold ran out, but acts now.
    let err = store
        .begin_commit(&commit_req(
            b.id,
            "alice",
            "stale-clock",
            real - Duration::minutes(6),
        ))
        .await
        .expect_err("the hold ran out");
    assert!(matches!(err, CommitError::Gone), "{err:?}");
}

/// Defect 10: only an unpaid HOLD is ever ended by another hold: a booking whose payment is
/// in flight keeps its seats even after its hold time, until the provider answers.
pub async fn a_new_hold_never_ends_a_pending_booking(store: Arc<dyn Store>) {
    let t = now();
    let e = created(&store, concert(t)).await;
    let b = store
        .hold(&hold_req(&e, "alice", seats(&["1-A-1"]), t))
        .await
        .expect("hold");
    let (_, payment) = start(&store, b.id, "alice", "k", t + Duration::minutes(4)).await;
    let late = t + Duration::minutes(6);
    store
        .hold(&hold_req(&e, "alice", seats(&["1-A-2"]), late))
        .await
        .expect("another hold");
    store.expire_holds(late, 100).await.expect("sweep");
    assert_eq!(
        store.booking(b.id).await.unwrap().unwrap().status,
        BookingStatus::Pending
    );
    assert_eq!(
        seat_state(&store, &e, "1-A-1", late).await,
        SeatState::Pending
    );
    assert_eq!(
        store.payment(payment.id).await.unwrap().unwrap().status,
        PaymentStatus::Started
    );
    assert_clean(&store).await;
}

/// Defect 5: a booking with a ticket scanned at the door cannot be cancelled for a refund.
pub async fn used_tickets_are_not_refunded(store: Arc<dyn Store>) {
    let t = now();
    let e = created(&store, concert(t)).await;
    let b = store
        .hold(&hold_req(&e, "alice", seats(&["1-A-1", "1-A-2"]), t))
        .await
        .expect("hold");
    let b = buy(&store, &b, "alice", t).await;
    assert!(matches!(
        store.check_in(b.tickets[0].id, e.id, t).await.unwrap(),
        CheckIn::Admitted(_)
    ));
    let err = store.cancel_confirmed(b.id, t).await.expect_err("used");
    assert!(matches!(err, ReleaseError::TicketUsed), "{err:?}");
    let after = store.booking(b.id).await.unwrap().unwrap();
    assert_eq!(after.status, BookingStatus::Confirmed);
    assert!(after.tickets.iter().all(|t| t.status != TicketStatus::Void));
    assert_clean(&store).await;
}

/// Defect 2: when the money behind a confirmed booking is gone (capture finally refused,
/// refunded or disputed at the provider), its tickets are void, its seats back on sale, and
/// the booking says why — and doing it twice changes nothing.
pub async fn revocations_void_tickets_and_reopen_seats(store: Arc<dyn Store>) {
    let t = now();
    let e = created(&store, concert(t)).await;
    // Confirmed but not captured yet; then the capture is refused for good.
    let b = store
        .hold(&hold_req(&e, "alice", seats(&["1-A-1", "1-A-2"]), t))
        .await
        .expect("hold");
    let (booking, payment) = start(&store, b.id, "alice", "k", t).await;
    let settlement = approved(&booking);
    let Settlement::Approved { provider_ref, .. } = &settlement else {
        unreachable!()
    };
    let provider_ref = provider_ref.clone();
    store
        .finish_commit(&finish(&booking, payment.id, settlement, t))
        .await
        .expect("confirm");
    let found = store
        .payment_by_ref(&provider_ref, None)
        .await
        .expect("by ref")
        .expect("found");
    assert_eq!(found.id, payment.id);
    // A refund at the provider cannot revoke a capture that never happened … but a refused
    // capture can.
    let revoked = store
        .revoke(payment.key(), Revocation::CaptureFailed, t)
        .await
        .expect("revoke")
        .expect("changed");
    assert_eq!(revoked.status, BookingStatus::Cancelled);
    assert_eq!(
        revoked.status_reason.as_deref(),
        Some("payment-capture-failed")
    );
    assert!(
        revoked
            .tickets
            .iter()
            .all(|t| t.status == TicketStatus::Void)
    );
    assert_eq!(seat_state(&store, &e, "1-A-1", t).await, SeatState::Open);
    assert_eq!(
        store.payment(payment.id).await.unwrap().unwrap().status,
        PaymentStatus::Voided
    );
    assert!(
        store
            .revoke(payment.key(), Revocation::CaptureFailed, t)
            .await
            .expect("again")
            .is_none(),
        "twice changes nothing"
    );
    assert_clean(&store).await;
    // A paid booking whose customer's bank disputes the charge.
    let c = store
        .hold(&hold_req(&e, "bob", seats(&["1-B-1"]), t))
        .await
        .expect("hold");
    let c_payment = {
        let (booking, payment) = start(&store, c.id, "bob", "k", t).await;
        store
            .finish_commit(&finish(&booking, payment.id, approved(&booking), t))
            .await
            .expect("confirm");
        captured(&store, payment.key(), t).await;
        payment.key()
    };
    assert!(
        store
            .revoke(c_payment, Revocation::CaptureFailed, t)
            .await
            .unwrap()
            .is_none(),
        "a captured payment cannot fail its capture"
    );
    let disputed = store
        .revoke(c_payment, Revocation::Disputed, t)
        .await
        .expect("revoke")
        .expect("changed");
    assert_eq!(disputed.status, BookingStatus::Cancelled);
    assert_eq!(disputed.status_reason.as_deref(), Some("payment-disputed"));
    assert_eq!(
        store.payment(c_payment.id).await.unwrap().unwrap().status,
        PaymentStatus::Refunded
    );
    assert_eq!(seat_state(&store, &e, "1-B-1", t).await, SeatState::Open);
    // The freed seats sell again.
    let d = store
        .hold(&hold_req(&e, "carol", seats(&["1-A-1", "1-B-1"]), t))
        .await
        .expect("seats back on sale");
    buy(&store, &d, "carol", t).await;
    assert_clean(&store).await;
}

/// Defect 14: a booking is read in one snapshot: never CONFIRMED without its tickets.
pub async fn booking_reads_are_one_snapshot(store: Arc<dyn Store>) {
    let t = now();
    let e = created(&store, concert(t)).await;
    let mut bookings = Vec::new();
    for n in 1..=20 {
        let b = store
            .hold(&hold_req(
                &e,
                &format!("buyer-{n}"),
                seats(&[&format!("1-C-{n}")]),
                t,
            ))
            .await
            .expect("hold");
        bookings.push((n, b));
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = bookings
        .iter()
        .map(|(_, b)| {
            let (store, stop, id) = (store.clone(), stop.clone(), b.id);
            tokio::spawn(async move {
                let mut reads = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let b = store.booking(id).await.expect("read").expect("exists");
                    if b.status == BookingStatus::Confirmed {
                        assert_eq!(b.tickets.len(), b.seats.len(), "confirmed without tickets");
                    }
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for (n, b) in &bookings {
        buy(&store, b, &format!("buyer-{n}"), t).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        assert!(r.await.expect("reader") > 0);
    }
}

/// Both stores check the customer's limit before the seats: a customer at their limit asking
/// for seats someone else holds hears about the limit.
pub async fn limit_exceeded_while_seats_are_taken_is_the_limit(store: Arc<dyn Store>) {
    let t = now();
    let e = created(&store, concert(t)).await;
    let ids: Vec<String> = (1..=8).map(|n| format!("1-D-{n}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    store
        .hold(&hold_req(&e, "alice", seats(&ids), t))
        .await
        .expect("eight");
    store
        .hold(&hold_req(&e, "bob", seats(&["1-E-1"]), t))
        .await
        .expect("bob");
    let err = store
        .hold(&hold_req(&e, "alice", seats(&["1-E-1"]), t))
        .await
        .expect_err("over the limit and taken");
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
    assert_clean(&store).await;
}
