//! Resale over HTTP on every backend (issue 8): list within the cap, buy through attempt and
//! commit, the old ticket dies at the door, payouts, and an organizer cancelling the event.

use boxoffice_api::auth::Role;
use boxoffice_api::booking::provider_key;
use boxoffice_domain::payments::PaymentState;
use serde_json::{Value, json};

use crate::common::{Backend, TestApp, eras_tour, status_json};

crate::on_every_backend!(
    a_ticket_is_resold_end_to_end,
    listing_refusals,
    an_organizer_cancels_the_event,
);

fn customer(app: &TestApp, name: &str) -> String {
    app.token(name, &[Role::Customer])
}

async fn buy(app: &TestApp, token: &str, who: &str, body: Value, key: &str) -> Value {
    let (status, held) = app.post("/v1/attempt", token, &body).await;
    assert_eq!(status, 201, "{held}");
    let res = app
        .http
        .post(app.url("/v1/commit"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(&json!({"bookingId": held["bookingId"], "paymentMethod": "pm_card_visa"}))
        .send()
        .await
        .unwrap();
    let (status, paid) = status_json(res).await;
    assert_eq!(status, 200, "{who}: {paid}");
    assert_eq!(paid["status"], "CONFIRMED");
    paid
}

async fn delete(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    let res = app
        .http
        .delete(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    status_json(res).await
}

async fn scan(app: &TestApp, token: &str, event: &str) -> (u16, Value) {
    let scanner = app.token("door-1", &[Role::Scanner]);
    app.post(
        "/v1/checkin",
        &scanner,
        &json!({"token": token, "eventId": event}),
    )
    .await
}

async fn verify_clean(app: &TestApp) {
    let findings = app
        .store
        .verify(boxoffice_domain::ports::Clock::now(&*app.clock))
        .await
        .unwrap();
    assert!(findings.is_empty(), "{findings:#?}");
}

async fn a_ticket_is_resold_end_to_end(backend: Backend) {
    let app = TestApp::start(backend).await;
    let event = app.event(&eras_tour()).await;
    let (alice, bob) = (customer(&app, "alice"), customer(&app, "bob"));
    let paid = buy(
        &app,
        &alice,
        "alice",
        json!({"eventId": event, "seatIds": ["1-A-1"]}),
        "a1",
    )
    .await;
    let ticket = paid["tickets"][0]["ticketId"].as_str().unwrap().to_owned();
    let old_token = paid["tickets"][0]["token"].as_str().unwrap().to_owned();

    // Face value 25,000 with a 120% cap.
    let (status, p) = app
        .post(
            "/v1/postTicket",
            &alice,
            &json!({"originalTicketId": ticket, "resalePriceCents": 30_001}),
        )
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (422, Some("resale-price-above-cap"))
    );
    assert_eq!(p["maxPriceCents"], 30_000);
    let (status, p) = app
        .post(
            "/v1/postTicket",
            &bob,
            &json!({"originalTicketId": ticket, "resalePriceCents": 100}),
        )
        .await;
    assert_eq!(status, 404, "{p}");
    let (status, listing) = app
        .post(
            "/v1/postTicket",
            &alice,
            &json!({"originalTicketId": ticket, "resalePriceCents": 30_000}),
        )
        .await;
    assert_eq!(status, 201, "{listing}");
    for field in [
        "listingId",
        "ticketId",
        "eventId",
        "seatId",
        "section",
        "row",
        "number",
        "createdAt",
    ] {
        assert!(!listing[field].is_null(), "{field} missing: {listing}");
    }
    assert_eq!(listing["status"], "ACTIVE");
    assert_eq!(listing["priceCents"], 30_000);
    assert_eq!(listing["feeCents"], 3_000);
    assert_eq!(listing["sellerProceedsCents"], 27_000);
    assert_eq!(listing["section"], "Floor");
    let id = listing["listingId"].as_str().unwrap().to_owned();
    let (status, p) = app
        .post(
            "/v1/postTicket",
            &alice,
            &json!({"originalTicketId": ticket, "resalePriceCents": 20_000}),
        )
        .await;
    assert_eq!((status, p["code"].as_str()), (409, Some("already-listed")));

    // On offer: in the event's listings and on the seat map.
    let (_, offered) = app.get(&format!("/v1/events/{event}/listings")).await;
    assert_eq!(offered["listings"][0]["listingId"], id.as_str());
    let (_, map) = app.get(&format!("/v1/events/{event}/seats")).await;
    let seat = map["seats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["seatId"] == "1-A-1")
        .unwrap()
        .clone();
    assert_eq!(seat["status"], "RESALE");
    assert_eq!(seat["priceCents"], 30_000);
    assert_eq!(seat["listingId"], id.as_str());

    // Not your own; then bob holds it and alice can no longer withdraw it.
    let (status, p) = app
        .post(
            "/v1/attempt",
            &alice,
            &json!({"eventId": event, "listingId": id}),
        )
        .await;
    assert_eq!((status, p["code"].as_str()), (409, Some("own-listing")));
    let bought = buy(
        &app,
        &bob,
        "bob",
        json!({"eventId": event, "listingIds": [id]}),
        "b1",
    )
    .await;
    assert_eq!(bought["totalCents"], 30_000);
    let new_token = bought["tickets"][0]["token"].as_str().unwrap();
    assert_ne!(new_token, old_token);
    assert_ne!(bought["tickets"][0]["ticketId"], ticket.as_str());
    let (status, p) = delete(&app, &alice, &format!("/v1/listings/{id}")).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (409, Some("listing-not-active"))
    );

    // The seller sees it sold and the payout scheduled.
    let (_, mine) = app.get_as("/v1/listings", &alice).await;
    assert_eq!(mine["listings"][0]["status"], "SOLD");
    let (_, payouts) = app.get_as("/v1/payouts", &alice).await;
    assert_eq!(payouts["payouts"][0]["amountCents"], 27_000);
    assert_eq!(payouts["payouts"][0]["status"], "SCHEDULED");
    assert!(payouts["payouts"][0]["availableAt"].is_string());
    let (_, mine) = app.get_as("/v1/tickets", &alice).await;
    assert_eq!(mine["tickets"][0]["status"], "REISSUED");

    // The old barcode is dead at the door; the new one gets in.
    let (status, p) = scan(&app, &old_token, &event).await;
    assert_eq!((status, p["code"].as_str()), (409, Some("ticket-reissued")));
    let (status, p) = scan(&app, new_token, &event).await;
    assert_eq!(status, 200, "{p}");
    verify_clean(&app).await;
    // A day after the event the payout is paid through the provider.
    app.clock.advance(time::Duration::days(367));
    app.state.booking.reconcile().await.unwrap();
    let (_, payouts) = app.get_as("/v1/payouts", &alice).await;
    assert_eq!(payouts["payouts"][0]["status"], "PAID");
    verify_clean(&app).await;
}

async fn listing_refusals(backend: Backend) {
    let app = TestApp::start(backend).await;
    let mut no_resale = eras_tour();
    no_resale["policies"]["resaleMaxPricePercent"] = json!(0);
    let event = app.event(&no_resale).await;
    let alice = customer(&app, "alice");
    let paid = buy(
        &app,
        &alice,
        "alice",
        json!({"eventId": event, "seatIds": ["1-A-1"]}),
        "a1",
    )
    .await;
    let ticket = paid["tickets"][0]["ticketId"].as_str().unwrap();
    let (status, p) = app
        .post(
            "/v1/postTicket",
            &alice,
            &json!({"originalTicketId": ticket, "resalePriceCents": 100}),
        )
        .await;
    assert_eq!((status, p["code"].as_str()), (409, Some("resale-off")));
    for bad in [
        json!({"originalTicketId": ticket}),
        json!({"originalTicketId": ticket, "resalePriceCents": -1}),
        json!({"originalTicketId": ticket, "resalePriceCents": "12"}),
        json!({"originalTicketId": ticket, "resalePriceCents": 10, "extra": 1}),
    ] {
        let (status, p) = app.post("/v1/postTicket", &alice, &bad).await;
        assert!((400..500).contains(&status), "{bad}: {status} {p}");
    }
    let (status, _) = app
        .post(
            "/v1/attempt",
            &alice,
            &json!({"eventId": event, "listingIds": ["not-a-uuid"]}),
        )
        .await;
    assert_eq!(status, 400);
    let (status, p) = app
        .post(
            "/v1/attempt",
            &alice,
            &json!({"eventId": event, "listingIds": [uuid::Uuid::new_v4()]}),
        )
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (404, Some("listing-not-found"))
    );
    let (status, _) = delete(
        &app,
        &alice,
        &format!("/v1/listings/{}", uuid::Uuid::new_v4()),
    )
    .await;
    assert_eq!(status, 404);
    verify_clean(&app).await;
}

async fn an_organizer_cancels_the_event(backend: Backend) {
    let app = TestApp::start(backend).await;
    let event = app.event(&eras_tour()).await;
    let alice = customer(&app, "alice");
    let paid = buy(
        &app,
        &alice,
        "alice",
        json!({"eventId": event, "seatIds": ["1-A-1", "1-A-2"]}),
        "a1",
    )
    .await;
    let booking = paid["bookingId"].as_str().unwrap();
    let token = paid["tickets"][0]["token"].as_str().unwrap().to_owned();
    // Only its organizer (or an admin) may cancel it.
    let (status, _) = app
        .post(&format!("/v1/events/{event}/cancel"), &alice, &json!({}))
        .await;
    assert_eq!(status, 403);
    let other = app.token("org-2", &[Role::Organizer]);
    let (status, _) = app
        .post(&format!("/v1/events/{event}/cancel"), &other, &json!({}))
        .await;
    assert_eq!(status, 404);
    let (status, done) = app
        .post(
            &format!("/v1/events/{event}/cancel"),
            &app.organizer(),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["saleStatus"], "CANCELLED");
    assert_eq!(done["refundsStarted"], 1);
    let (_, detail) = app.get(&format!("/v1/events/{event}")).await;
    assert_eq!(detail["saleStatus"], "CANCELLED");
    // Search shows it cancelled too, and never as available.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, found) = app.get("/v1/events?q=eras").await;
        let hit = found["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["eventId"] == event.as_str())
            .cloned();
        if hit.as_ref().is_some_and(|h| h["saleStatus"] == "CANCELLED") {
            assert_eq!(hit.unwrap()["seatsLeft"], 0);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "search: {found}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (_, b) = app.get_as(&format!("/v1/booking/{booking}"), &alice).await;
    assert_eq!(b["status"], "CANCELLED");
    assert_eq!(b["statusReason"], "event-cancelled");
    assert!(matches!(
        app.state
            .booking
            .payments
            .lookup(&provider_key("alice", "a1"))
            .await
            .unwrap(),
        PaymentState::Refunded { .. }
    ));
    let (status, p) = scan(&app, &token, &event).await;
    assert_eq!((status, p["code"].as_str()), (409, Some("ticket-void")));
    let (status, p) = app
        .post(
            "/v1/attempt",
            &alice,
            &json!({"eventId": event, "seatIds": ["1-B-1"]}),
        )
        .await;
    assert_eq!((status, p["code"].as_str()), (409, Some("event-cancelled")));
    // Again: nothing more to do.
    let (status, again) = app
        .post(
            &format!("/v1/events/{event}/cancel"),
            &app.organizer(),
            &json!({}),
        )
        .await;
    assert_eq!((status, again["refundsStarted"].as_u64()), (200, Some(0)));
    verify_clean(&app).await;
}
