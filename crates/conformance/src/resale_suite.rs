//! Resale behaviours every store must have (issue 8): listing within the cap, buying a listing
//! through the ordinary hold and commit (the seller's ticket REISSUED, a new one for the
//! buyer, a payout scheduled), lapsed reservations, the door racing a sale, and cancelling a
//! whole event.

use std::sync::Arc;

use boxoffice_domain::booking::{
    Booking, BookingStatus, HoldError, PaymentStatus, Selection, TicketStatus,
};
use boxoffice_domain::event::Event;
use boxoffice_domain::ids::{ListingId, TicketId};
use boxoffice_domain::ports::{CheckIn, ListRequest, ReleaseError, Store};
use boxoffice_domain::resale::{ListError, Listing, ListingStatus, PayoutStatus, WithdrawError};
use boxoffice_domain::seat::SeatState;
use time::{Duration, OffsetDateTime};

use crate::booking_suite::{
    assert_clean, buy, captured, created, customer, hold_req, seat_state, seats,
};
use crate::fixtures::{concert, now};

async fn list(
    store: &Arc<dyn Store>,
    ticket: TicketId,
    seller: &str,
    price: i64,
    at: OffsetDateTime,
) -> Result<Listing, ListError> {
    store
        .list_ticket(&ListRequest {
            listing_id: ListingId::new_in(ticket.slot()),
            ticket_id: ticket,
            seller: customer(seller),
            price_cents: price,
            fee_basis_points: 1_000,
            now: at,
        })
        .await
        .expect("store")
}

/// A confirmed, captured booking of `seat` for `who`.
async fn bought(
    store: &Arc<dyn Store>,
    e: &Event,
    who: &str,
    seat: &str,
    at: OffsetDateTime,
) -> Booking {
    let b = store
        .hold(&hold_req(e, who, seats(&[seat]), at))
        .await
        .expect("hold");
    buy(store, &b, who, at).await
}

async fn ticket_status(
    store: &Arc<dyn Store>,
    booking: &Booking,
    ticket: TicketId,
) -> TicketStatus {
    store
        .booking(booking.id)
        .await
        .unwrap()
        .unwrap()
        .tickets
        .iter()
        .find(|t| t.id == ticket)
        .map(|t| t.status)
        .expect("ticket")
}

fn listings(ids: &[ListingId]) -> Selection {
    Selection::Listings(ids.to_vec())
}

pub async fn listings_respect_the_cap_and_can_be_withdrawn(store: Arc<dyn Store>) {
    let t = now();
    let e = created(&store, concert(t)).await;
    let b = bought(&store, &e, "alice", "1-A-1", t).await;
    let ticket = b.tickets[0].id;
    // Face value 25,000 and a 120% cap: at most 30,000.
    assert_eq!(
        list(&store, ticket, "alice", 30_001, t).await,
        Err(ListError::AboveCap {
            max_price_cents: 30_000
        })
    );
    assert_eq!(
        list(&store, ticket, "bob", 100, t).await,
        Err(ListError::NotFound),
        "someone else's ticket"
    );
    let l = list(&store, ticket, "alice", 30_000, t)
        .await
        .expect("listed");
    assert_eq!(l.status, ListingStatus::Active);
    assert_eq!(l.fee_cents, 3_000);
    assert_eq!(l.seller_proceeds_cents(), 27_000);
    assert_eq!(
        ticket_status(&store, &b, ticket).await,
        TicketStatus::Listed
    );
    assert_eq!(
        list(&store, ticket, "alice", 20_000, t).await,
        Err(ListError::AlreadyListed)
    );
    let offered = store.event_listings(e.id, t).await.unwrap();
    assert_eq!(offered.iter().map(|l| l.id).collect::<Vec<_>>(), vec![l.id]);
    let map = store.seat_map(&e, t).await.unwrap();
    let seat = map.seats.iter().find(|s| s.id.as_str() == "1-A-1").unwrap();
    assert_eq!(seat.resale, Some((l.id, 30_000)));
    assert_eq!(map.sections[0].resale, 1);
    // A listed booking cannot be refunded until the listing is withdrawn.
    assert!(matches!(
        store.cancel_confirmed(b.id, t).await,
        Err(ReleaseError::TicketListed)
    ));
    assert_eq!(
        store
            .withdraw_listing(l.id, &customer("bob"), t)
            .await
            .unwrap(),
        Err(WithdrawError::NotFound)
    );
    let w = store
        .withdraw_listing(l.id, &customer("alice"), t)
        .await
        .unwrap()
        .expect("withdrawn");
    assert_eq!(w.status, ListingStatus::Withdrawn);
    assert_eq!(ticket_status(&store, &b, ticket).await, TicketStatus::Valid);
    assert!(store.event_listings(e.id, t).await.unwrap().is_empty());
    let mine = store.seller_listings(&customer("alice")).await.unwrap();
    assert_eq!(mine[0].status, ListingStatus::Withdrawn);
    assert_clean(&store).await;
}

pub async fn buying_a_listing_reissues_the_ticket_and_schedules_a_payout(store: Arc<dyn Store>) {
    let t = now();
    let e = created(&store, concert(t)).await;
    let b = bought(&store, &e, "alice", "1-A-1", t).await;
    let old = b.tickets[0].clone();
    let l = list(&store, old.id, "alice", 28_000, t)
        .await
        .expect("listed");
    assert!(matches!(
        store
            .hold(&hold_req(&e, "alice", listings(&[l.id]), t))
            .await,
        Err(HoldError::OwnListing)
    ));
    let held = store
        .hold(&hold_req(&e, "bob", listings(&[l.id]), t))
        .await
        .expect("bob holds the listing");
    assert_eq!(held.status, BookingStatus::Hold);
    assert_eq!(held.total_cents, 28_000);
    assert!(held.resale);
    assert_eq!(
        store.listing(l.id).await.unwrap().unwrap().status,
        ListingStatus::Reserved
    );
    assert!(matches!(
        store
            .hold(&hold_req(&e, "carol", listings(&[l.id]), t))
            .await,
        Err(HoldError::ListingsUnavailable(ids)) if ids == vec![l.id]
    ));
    assert_eq!(
        store
            .withdraw_listing(l.id, &customer("alice"), t)
            .await
            .unwrap(),
        Err(WithdrawError::NotActive(ListingStatus::Reserved))
    );
    let bought = buy(&store, &held, "bob", t).await;
    assert_eq!(bought.status, BookingStatus::Confirmed);
    let new = &bought.tickets[0];
    assert_ne!(new.id, old.id);
    assert_ne!(new.token, old.token);
    assert_eq!(new.status, TicketStatus::Valid);
    assert_eq!(new.customer, customer("bob"));
    assert_eq!(
        ticket_status(&store, &b, old.id).await,
        TicketStatus::Reissued
    );
    assert_eq!(
        store.listing(l.id).await.unwrap().unwrap().status,
        ListingStatus::Sold
    );
    let payouts = store.payouts_of(&customer("alice")).await.unwrap();
    assert_eq!(payouts.len(), 1);
    assert_eq!(payouts[0].amount_cents, 25_200);
    assert_eq!(payouts[0].status, PayoutStatus::Scheduled);
    assert!(payouts[0].available_at > e.spec.starts_at);
    assert_eq!(seat_state(&store, &e, "1-A-1", t).await, SeatState::Sold);
    assert!(store.event_listings(e.id, t).await.unwrap().is_empty());
    // The old ticket is dead at the door; the new one gets in.
    assert!(matches!(
        store.check_in(old.id, e.id, t).await.unwrap(),
        CheckIn::Reissued(_)
    ));
    // A resale purchase is final; the seller's booking can no longer be refunded.
    assert!(matches!(
        store.cancel_confirmed(bought.id, t).await,
        Err(ReleaseError::ResaleFinal)
    ));
    assert!(matches!(
        store.cancel_confirmed(b.id, t).await,
        Err(ReleaseError::TicketReissued)
    ));
    assert_clean(&store).await;
    // The buyer may list it again — capped by the seat's face value, not by what bob paid —
    // and a third customer buys it.
    assert_eq!(
        list(&store, new.id, "bob", 30_001, t).await,
        Err(ListError::AboveCap {
            max_price_cents: 30_000
        })
    );
    let again = list(&store, new.id, "bob", 30_000, t)
        .await
        .expect("relisted");
    let c = store
        .hold(&hold_req(&e, "carol", listings(&[again.id]), t))
        .await
        .expect("carol holds");
    let c = buy(&store, &c, "carol", t).await;
    assert_eq!(c.tickets.len(), 1);
    assert!(matches!(
        store.check_in(c.tickets[0].id, e.id, t).await.unwrap(),
        CheckIn::Admitted(_)
    ));
    assert_clean(&store).await;
}

pub async fn a_lapsed_reservation_puts_the_listing_back(store: Arc<dyn Store>) {
    let t = now();
    let e = created(&store, concert(t)).await;
    let b = bought(&store, &e, "alice", "1-A-1", t).await;
    let l = list(&store, b.tickets[0].id, "alice", 25_000, t)
        .await
        .expect("listed");
    let held = store
        .hold(&hold_req(&e, "bob", listings(&[l.id]), t))
        .await
        .expect("bob");
    let late = t + Duration::minutes(6);
    assert_eq!(
        store.event_listings(e.id, late).await.unwrap().len(),
        1,
        "on offer again once bob's hold ran out"
    );
    let c = store
        .hold(&hold_req(&e, "carol", listings(&[l.id]), late))
        .await
        .expect("carol takes it over");
    store.expire_holds(late, 100).await.unwrap();
    assert_eq!(
        store.booking(held.id).await.unwrap().unwrap().status,
        BookingStatus::Expired
    );
    assert_eq!(
        store.listing(l.id).await.unwrap().unwrap().booking_id,
        Some(c.id),
        "bob's lapse does not free carol's reservation"
    );
    // Carol releases it: on offer again.
    store.release(c.id, late).await.expect("release");
    assert_eq!(
        store.listing(l.id).await.unwrap().unwrap().status,
        ListingStatus::Active
    );
    assert_clean(&store).await;
}

pub async fn the_door_and_a_sale_never_both_win(store: Arc<dyn Store>) {
    let t = now();
    let e = created(&store, concert(t)).await;
    let b = bought(&store, &e, "alice", "1-A-1", t).await;
    let l = list(&store, b.tickets[0].id, "alice", 25_000, t)
        .await
        .expect("listed");
    let held = store
        .hold(&hold_req(&e, "bob", listings(&[l.id]), t))
        .await
        .expect("bob");
    // Alice walks in with her (listed) ticket: she is admitted and the listing is withdrawn.
    assert!(matches!(
        store.check_in(b.tickets[0].id, e.id, t).await.unwrap(),
        CheckIn::Admitted(_)
    ));
    assert_eq!(
        store.listing(l.id).await.unwrap().unwrap().status,
        ListingStatus::Withdrawn
    );
    // Bob's payment then cannot buy it: the booking ends and the payment is to be voided.
    let req = crate::booking_suite::commit_req(held.id, "bob", "k", t);
    let boxoffice_domain::ports::CommitBegin::Started { booking, payment } =
        store.begin_commit(&req).await.expect("begin")
    else {
        panic!("expected a started commit");
    };
    let done = store
        .finish_commit(&crate::booking_suite::finish(
            &booking,
            payment.id,
            crate::booking_suite::approved(&booking),
            t,
        ))
        .await
        .expect("finish");
    assert!(
        matches!(
            done.outcome,
            boxoffice_domain::ports::CommitOutcome::Lapsed(_)
        ),
        "{:?}",
        done.outcome
    );
    assert_eq!(
        store.booking(held.id).await.unwrap().unwrap().status,
        BookingStatus::Expired
    );
    store
        .set_payment_status(
            payment.key(),
            &[PaymentStatus::Authorized],
            PaymentStatus::Voided,
            t,
        )
        .await
        .unwrap();
    assert_clean(&store).await;
}

pub async fn cancelling_an_event_refunds_voids_and_claws_back(store: Arc<dyn Store>) {
    let t = now();
    let e = created(&store, concert(t)).await;
    let a = bought(&store, &e, "alice", "1-A-1", t).await;
    let sold = bought(&store, &e, "dave", "1-A-2", t).await;
    let l = list(&store, sold.tickets[0].id, "dave", 25_000, t)
        .await
        .expect("listed");
    let resold = store
        .hold(&hold_req(&e, "erin", listings(&[l.id]), t))
        .await
        .expect("erin");
    let resold = buy(&store, &resold, "erin", t).await;
    let listed = bought(&store, &e, "frank", "1-A-3", t).await;
    let open = list(&store, listed.tickets[0].id, "frank", 20_000, t)
        .await
        .expect("listed");
    let hold = store
        .hold(&hold_req(&e, "gina", seats(&["1-B-1"]), t))
        .await
        .expect("hold");
    let owed = store.cancel_event(e.id, t).await.expect("cancel");
    // alice, dave, erin and frank paid: four refunds.
    assert_eq!(owed.len(), 4);
    assert!(
        owed.iter()
            .all(|p| p.status == PaymentStatus::RefundPending)
    );
    for b in [&a, &sold, &resold, &listed] {
        let b = store.booking(b.id).await.unwrap().unwrap();
        assert_eq!(b.status, BookingStatus::Cancelled);
        assert_eq!(b.status_reason.as_deref(), Some("event-cancelled"));
        assert!(b.tickets.iter().all(|t| !t.status.admits()));
    }
    assert_eq!(
        store.booking(hold.id).await.unwrap().unwrap().status,
        BookingStatus::Cancelled
    );
    assert_eq!(
        store.listing(open.id).await.unwrap().unwrap().status,
        ListingStatus::Withdrawn
    );
    assert_eq!(
        store.payouts_of(&customer("dave")).await.unwrap()[0].status,
        PayoutStatus::ClawedBack
    );
    let cancelled = store.event(e.id).await.unwrap().unwrap();
    assert!(cancelled.cancelled_at.is_some());
    assert!(
        store
            .cancelled_events(t - Duration::hours(1))
            .await
            .unwrap()
            .contains(&e.id)
    );
    assert!(matches!(
        store
            .hold(&hold_req(&e, "hank", seats(&["1-C-1"]), t))
            .await,
        Err(HoldError::EventCancelled)
    ));
    assert!(
        store.cancel_event(e.id, t).await.unwrap().is_empty(),
        "twice changes nothing"
    );
    assert_clean(&store).await;
}

/// A buyer who is paying keeps the listings reserved past the hold's time (money may be
/// moving), and a payout is clawed back when the buyer's money goes back.
pub async fn a_paying_buyer_keeps_the_listing_and_refunds_claw_back(store: Arc<dyn Store>) {
    let t = now();
    let e = created(&store, concert(t)).await;
    let b = bought(&store, &e, "alice", "1-A-1", t).await;
    let l = list(&store, b.tickets[0].id, "alice", 25_000, t)
        .await
        .expect("listed");
    let held = store
        .hold(&hold_req(&e, "bob", listings(&[l.id]), t))
        .await
        .expect("bob");
    let req = crate::booking_suite::commit_req(held.id, "bob", "k", t);
    let boxoffice_domain::ports::CommitBegin::Started { booking, payment } =
        store.begin_commit(&req).await.expect("begin")
    else {
        panic!("expected a started commit");
    };
    // Long after the hold's time, the provider still has not answered.
    let late = t + Duration::minutes(30);
    assert!(store.event_listings(e.id, late).await.unwrap().is_empty());
    assert!(matches!(
        store
            .hold(&hold_req(&e, "carol", listings(&[l.id]), late))
            .await,
        Err(HoldError::ListingsUnavailable(_))
    ));
    assert_eq!(
        store
            .withdraw_listing(l.id, &customer("alice"), late)
            .await
            .unwrap(),
        Err(WithdrawError::NotActive(ListingStatus::Reserved))
    );
    let settlement = crate::booking_suite::approved(&booking);
    let boxoffice_domain::ports::Settlement::Approved { provider_ref, .. } = &settlement else {
        unreachable!()
    };
    let provider_ref = provider_ref.clone();
    let done = store
        .finish_commit(&crate::booking_suite::finish(
            &booking, payment.id, settlement, late,
        ))
        .await
        .expect("approved");
    assert!(matches!(
        done.outcome,
        boxoffice_domain::ports::CommitOutcome::Confirmed(_)
    ));
    captured(&store, payment.key(), late).await;
    assert_eq!(
        store.payouts_of(&customer("alice")).await.unwrap()[0].status,
        PayoutStatus::Scheduled
    );
    // Bob's bank pulls the money back: his booking is revoked and alice is not paid.
    let found = store
        .payment_by_ref(&provider_ref, None)
        .await
        .unwrap()
        .unwrap();
    store
        .revoke(
            found.key(),
            boxoffice_domain::rules::Revocation::Disputed,
            late,
        )
        .await
        .unwrap()
        .expect("revoked");
    assert_eq!(
        store.payouts_of(&customer("alice")).await.unwrap()[0].status,
        PayoutStatus::ClawedBack
    );
    assert_clean(&store).await;
}

/// The organizer's reads: their events, and what an event sold — first sales (captured money
/// only) apart from resales (volume and fees).
pub async fn organizer_reports_count_sales_and_resales(store: Arc<dyn Store>) {
    let t = now();
    let e = created(&store, concert(t)).await;
    let organizer = crate::fixtures::organizer();
    assert_eq!(
        store.organizer_events(&organizer, 10).await.unwrap(),
        vec![e.id]
    );
    assert!(
        store
            .organizer_events(&customer("alice"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let empty = store.event_sales(e.id).await.unwrap();
    assert_eq!(empty, boxoffice_domain::ports::EventSales::default());
    let b = bought(&store, &e, "alice", "1-A-1", t).await;
    let sales = store.event_sales(e.id).await.unwrap();
    assert_eq!(sales.bookings, 1);
    assert_eq!(sales.revenue_cents, b.total_cents);
    assert_eq!(sales.resales, 0);
    let l = list(&store, b.tickets[0].id, "alice", 28_000, t)
        .await
        .expect("listed");
    let held = store
        .hold(&hold_req(&e, "bob", listings(&[l.id]), t))
        .await
        .expect("bob holds the listing");
    buy(&store, &held, "bob", t).await;
    let sales = store.event_sales(e.id).await.unwrap();
    assert_eq!(sales.bookings, 1, "a resale purchase is not a first sale");
    assert_eq!(sales.revenue_cents, b.total_cents);
    assert_eq!(sales.resales, 1);
    assert_eq!(sales.resale_volume_cents, 28_000);
    assert_eq!(sales.resale_fees_cents, 2_800);
}
