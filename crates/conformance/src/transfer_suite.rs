//! Transfer behaviours every store must have (issue 8): offering a ticket, accepting it (the
//! sender's ticket REISSUED, a new one for the recipient on the same seat and booking),
//! cancelling, lapsing when the event starts, the door and a listing racing an accept, and the
//! revocations offline scanners follow. `verify` stays clean after each.

use std::sync::Arc;

use boxoffice_domain::booking::{Booking, NewTicket, TicketStatus};
use boxoffice_domain::event::Event;
use boxoffice_domain::ids::{ListingId, TicketId, TransferId};
use boxoffice_domain::ports::{CheckIn, ListRequest, ReleaseError, Store};
use boxoffice_domain::resale::{ListError, Transfer, TransferStatus};
use boxoffice_domain::transfers::{AcceptRequest, OfferRequest, RevocationCursor, TransferError};
use time::{Duration, OffsetDateTime};

use crate::booking_suite::{assert_clean, buy, created, customer, hold_req, seats};
use crate::fixtures::{concert, now};

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

async fn offer(
    store: &Arc<dyn Store>,
    ticket: TicketId,
    from: &str,
    to: &str,
    at: OffsetDateTime,
) -> Result<Transfer, TransferError> {
    store
        .offer_transfer(&OfferRequest {
            transfer_id: TransferId::new_in(ticket.slot()),
            ticket_id: ticket,
            from: customer(from),
            to: customer(to),
            now: at,
        })
        .await
        .expect("store")
}

async fn accept(
    store: &Arc<dyn Store>,
    transfer: &Transfer,
    who: &str,
    at: OffsetDateTime,
) -> Result<(Transfer, boxoffice_domain::booking::Ticket), TransferError> {
    let old = store
        .ticket(transfer.ticket_id)
        .await
        .unwrap()
        .expect("ticket");
    let id = TicketId::new_in(transfer.ticket_id.slot());
    store
        .accept_transfer(&AcceptRequest {
            transfer_id: transfer.id,
            recipient: customer(who),
            new_ticket: NewTicket {
                id,
                seat_id: old.seat_id,
                token: format!("token-{id}"),
            },
            now: at,
        })
        .await
        .expect("store")
}

pub async fn offer_accept_reissues_the_ticket(store: Arc<dyn Store>) {
    let t = now();
    let e = created(&store, concert(t)).await;
    let b = bought(&store, &e, "alice", "1-A-1", t).await;
    let old = b.tickets[0].clone();

    assert_eq!(
        offer(&store, old.id, "bob", "carol", t).await,
        Err(TransferError::NotFound),
        "someone else's ticket"
    );
    assert_eq!(
        offer(&store, TicketId::new(), "alice", "bob", t).await,
        Err(TransferError::NotFound)
    );
    assert_eq!(
        offer(&store, old.id, "alice", "alice", t).await,
        Err(TransferError::ToSelf)
    );
    let tr = offer(&store, old.id, "alice", "bob", t)
        .await
        .expect("offer");
    assert_eq!(tr.status, TransferStatus::Pending);
    assert_eq!((tr.from.as_str(), tr.to.as_str()), ("alice", "bob"));
    assert_eq!(tr.event_id, e.id);
    assert_eq!(
        offer(&store, old.id, "alice", "carol", t).await,
        Err(TransferError::AlreadyPending),
        "one pending transfer per ticket"
    );
    // Pending: the ticket is still alice's, and cannot be listed meanwhile.
    let listed = store
        .list_ticket(&ListRequest {
            listing_id: ListingId::new_in(old.id.slot()),
            ticket_id: old.id,
            seller: customer("alice"),
            price_cents: 20_000,
            fee_basis_points: 1_000,
            now: t,
        })
        .await
        .unwrap();
    assert_eq!(listed.err(), Some(ListError::TransferPending));
    assert_eq!(
        accept(&store, &tr, "carol", t).await.err(),
        Some(TransferError::NotFound),
        "only the recipient accepts"
    );

    let at = t + Duration::seconds(1);
    let (done, new) = accept(&store, &tr, "bob", at).await.expect("accept");
    assert_eq!(done.status, TransferStatus::Accepted);
    assert_eq!(done.new_ticket_id, Some(new.id));
    assert_eq!(new.status, TicketStatus::Valid);
    assert_eq!(new.customer.as_str(), "bob");
    assert_eq!(
        (new.seat_id.clone(), new.booking_id),
        (old.seat_id.clone(), old.booking_id)
    );
    assert_ne!(new.id, old.id);
    assert_ne!(new.token, old.token);
    let old_now = store.ticket(old.id).await.unwrap().unwrap();
    assert_eq!(old_now.status, TicketStatus::Reissued);
    assert_eq!(store.transfer(tr.id).await.unwrap(), Some(done.clone()));
    assert_eq!(
        accept(&store, &tr, "bob", at).await.err(),
        Some(TransferError::NotPending(TransferStatus::Accepted)),
        "never accepted twice"
    );
    // The recipient sees it among their tickets; the sender can neither pass it on again
    // nor refund the booking it came from.
    let bobs = store.tickets_of(&customer("bob")).await.unwrap();
    assert_eq!(bobs.iter().map(|t| t.id).collect::<Vec<_>>(), vec![new.id]);
    assert_eq!(
        offer(&store, old.id, "alice", "carol", at).await,
        Err(TransferError::NotTransferable(TicketStatus::Reissued))
    );
    assert!(matches!(
        store.cancel_confirmed(b.id, at).await,
        Err(ReleaseError::TicketReissued)
    ));
    // Bob may pass it on in turn.
    let again = offer(&store, new.id, "bob", "carol", at)
        .await
        .expect("offer");
    let (_, third) = accept(&store, &again, "carol", at).await.expect("accept");
    assert_eq!(third.seat_id, old.seat_id);
    // Both transfers, newest first, for the one in the middle.
    let mine = store.transfers_of(&customer("bob")).await.unwrap();
    assert_eq!(
        mine.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![again.id, tr.id]
    );
    // The door: the new ticket gets in, the old ones do not.
    assert!(matches!(
        store.check_in(old.id, e.id, at).await.unwrap(),
        CheckIn::Reissued(_)
    ));
    assert!(matches!(
        store.check_in(third.id, e.id, at).await.unwrap(),
        CheckIn::Admitted(_)
    ));
    assert_clean(&store).await;
}

pub async fn cancelled_and_lapsed_transfers_cannot_be_accepted(store: Arc<dyn Store>) {
    let t = now();
    let e = created(&store, concert(t)).await;
    let b = bought(&store, &e, "alice", "1-A-2", t).await;
    let ticket = b.tickets[0].id;
    let tr = offer(&store, ticket, "alice", "bob", t).await.unwrap();
    assert_eq!(
        store
            .cancel_transfer(tr.id, &customer("bob"), t)
            .await
            .unwrap()
            .err(),
        Some(TransferError::NotFound),
        "only the sender cancels"
    );
    let cancelled = store
        .cancel_transfer(tr.id, &customer("alice"), t)
        .await
        .unwrap()
        .expect("cancel");
    assert_eq!(cancelled.status, TransferStatus::Cancelled);
    assert_eq!(
        accept(&store, &tr, "bob", t).await.err(),
        Some(TransferError::NotPending(TransferStatus::Cancelled))
    );
    assert_eq!(
        store
            .cancel_transfer(tr.id, &customer("alice"), t)
            .await
            .unwrap()
            .err(),
        Some(TransferError::NotPending(TransferStatus::Cancelled))
    );
    assert_eq!(
        store.ticket(ticket).await.unwrap().unwrap().status,
        TicketStatus::Valid
    );

    // Offered again; the event starts before bob accepts: it lapses.
    let tr = offer(&store, ticket, "alice", "bob", t).await.unwrap();
    let later = e.spec.starts_at + Duration::minutes(1);
    assert_eq!(
        store
            .cancel_transfer(tr.id, &customer("alice"), later)
            .await
            .unwrap()
            .err(),
        Some(TransferError::NotPending(TransferStatus::Expired))
    );
    assert_eq!(
        accept(&store, &tr, "bob", later).await.err(),
        Some(TransferError::EventStarted)
    );
    assert_eq!(
        store.transfer(tr.id).await.unwrap().unwrap().status,
        TransferStatus::Expired,
        "written down once touched"
    );
    assert_eq!(
        offer(&store, ticket, "alice", "bob", later).await,
        Err(TransferError::EventStarted)
    );
    assert_clean(&store).await;
}

pub async fn the_door_and_an_accept_never_both_win(store: Arc<dyn Store>) {
    let t = now();
    let e = created(&store, concert(t)).await;
    for round in 0..8 {
        let seat = format!("1-B-{}", round + 1);
        let b = bought(&store, &e, "alice", &seat, t).await;
        let ticket = b.tickets[0].id;
        let tr = offer(&store, ticket, "alice", "bob", t).await.unwrap();
        let (door, acc) = tokio::join!(
            store.check_in(ticket, e.id, t),
            accept(&store, &tr, "bob", t)
        );
        let admitted = matches!(door.unwrap(), CheckIn::Admitted(_));
        match acc {
            Ok(_) => assert!(!admitted, "round {round}: both won"),
            Err(TransferError::NotTransferable(TicketStatus::Used)) => {
                assert!(admitted);
                // The transfer can never complete: it ended with the scan.
                assert_eq!(
                    store.transfer(tr.id).await.unwrap().unwrap().status,
                    TransferStatus::Cancelled
                );
            }
            Err(other) => panic!("round {round}: {other:?}"),
        }
    }
    assert_clean(&store).await;
}

pub async fn revocations_page_through_void_and_reissued_tickets(store: Arc<dyn Store>) {
    let t = now();
    let e = created(&store, concert(t)).await;
    let other = created(&store, concert(t)).await;
    let mut expected = Vec::new();
    for i in 0..5 {
        let at = t + Duration::seconds(i);
        let b = bought(&store, &e, "alice", &format!("1-C-{}", i + 1), at).await;
        let tr = offer(&store, b.tickets[0].id, "alice", "bob", at)
            .await
            .unwrap();
        accept(&store, &tr, "bob", at).await.unwrap();
        expected.push((b.tickets[0].id, TicketStatus::Reissued));
    }
    // A refunded booking's ticket is void.
    let b = bought(&store, &e, "carol", "1-D-1", t).await;
    store
        .cancel_confirmed(b.id, t + Duration::seconds(10))
        .await
        .unwrap();
    expected.push((b.tickets[0].id, TicketStatus::Void));
    // Another event's and live tickets are not listed.
    let o = bought(&store, &other, "alice", "1-A-1", t).await;
    let tr = offer(&store, o.tickets[0].id, "alice", "bob", t)
        .await
        .unwrap();
    accept(&store, &tr, "bob", t).await.unwrap();

    let mut seen = Vec::new();
    let mut cursor: Option<RevocationCursor> = None;
    loop {
        let page = store.revocations(e.id, cursor, 2).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        let last = page.last().unwrap();
        cursor = Some(RevocationCursor {
            at: last.at,
            ticket_id: last.ticket_id,
        });
        seen.extend(page.into_iter().map(|r| (r.ticket_id, r.status)));
    }
    assert_eq!(seen, expected, "every revocation once, in time order");
    assert!(
        store
            .revocations(e.id, cursor, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_clean(&store).await;
}
